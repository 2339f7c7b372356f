"""A deterministic history of the one-stop desks, for tests and demos.

``build_scenario(seed)`` returns the JSONL lines of several months of dossier and
feedback lifecycles (:mod:`pipeline.feed.lifecycle`, office hours) exactly as a
misbehaving world would deliver them, together with what a correct pipeline must
make of them:

* **out of order** — events are shuffled within a sliding window of ~300 lines; about
  1 % are delayed by a further 1 000–4 000 lines; a few ``rated`` events arrive
  right before their case's ``received``; a few cases' ``received`` arrive at the very
  end, more than 35 days (the hold retention) after all their other events, so the
  hold rule fires in a streaming replay and is later undone;
* **orphans** — a few dossiers never get their ``received`` (their payments, ratings
  and returns are held, then attributed to their own unit with sector ``unknown``),
  and a few feedback answers never get their ``feedback_received``;
* **duplicates** — exact byte copies (later in the stream) and same ``event_id`` with
  different content (before or after the original); the first line in replay order
  with an ``event_id`` is the accepted one;
* **malformed messages** — :data:`MALFORMED_KINDS`, each line with exactly one defect,
  so its rejection reason (:data:`pipeline.contract.events.REASONS`) is unambiguous.

All valid events lie in ``[start, start + months)`` (local time); the final clock T is
the latest ``occurred_at`` of the valid events (:attr:`Scenario.final_time`). Unless
``units`` is given, units come from the registry (``deploy/units.csv``): each dossier
and feedback goes to a unit in force on its receipt date, chosen in proportion to its
volume (:mod:`pipeline.feed.province`), and a later event of a unit that has ceased by
then names its successor; receipts follow the working days of ``deploy/holidays.csv``.
"""

from __future__ import annotations

import json
import random
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Callable, Sequence

from pipeline.feed.lifecycle import (
    LOCAL_TZ,
    WORKDAY_SECONDS,
    LifecycleGenerator,
    WorkingClock,
    event_bytes,
    load_province,
)
from pipeline.feed.steps import with_steps

#: kind of malformed line -> the rejection reason it must get
MALFORMED_KINDS: dict[str, str] = {
    "too_large": "too_large",
    "not_utf8": "not_utf8",
    "broken_json": "invalid_json",
    "json_array": "not_object",
    "json_scalar": "not_object",
    "schema_version_2": "unsupported_version",
    "unknown_event_type": "unknown_event_type",
    "missing_case_id": "missing_field",
    "missing_due_at": "missing_field",
    "missing_online_mode": "missing_field",
    "event_id_too_long": "invalid_field",
    "unit_all": "invalid_field",
    "sector_all": "invalid_field",
    "channel_fax": "invalid_field",
    "has_fee_string": "invalid_field",
    "negative_amount": "invalid_field",
    "rating_string": "invalid_field",
    "rating_7": "invalid_field",
    "rating_bool": "invalid_field",
    "occurred_at_no_offset": "invalid_timestamp",
    "due_at_not_a_date": "invalid_timestamp",
    "future_occurred_at": "future_timestamp",
}

SHUFFLE_WINDOW = 300  # lines
#: share of (unit, indicator) weak spots: far more than the province's baseline
#: (lifecycle.WEAK_SHARE), so that every indicator has misses for the tests to count
SCENARIO_WEAK_SHARE = 0.5
HOLD_MARGIN_DAYS = 40  # late receiveds arrive at least this long after their case's other events
_HELD_TYPES = ("payment", "rated", "result_returned")
_FEEDBACK_TYPES = ("feedback_received", "feedback_answered")


@dataclass
class Scenario:
    lines: list[bytes]  # the JSONL lines, in replay order, without newlines
    valid_events: list[dict]  # accepted events (first line wins per event_id), in replay order
    expected_invalid: int  # lines that must be rejected (= len(invalid_lines))
    expected_duplicates: int  # valid lines whose event_id was accepted before
    expected_reasons: dict[str, int]  # rejection reason -> count
    invalid_lines: list[tuple[int, str, str]] = field(default_factory=list)  # (index, kind, reason)
    cases: int = 0  # dossiers (distinct case ids of valid non-feedback events)
    feedbacks: int = 0  # feedback ids among valid events
    start: datetime | None = None
    end: datetime | None = None  # exclusive
    final_time: datetime | None = None  # T: the latest occurred_at of the valid events
    late_received_case_ids: tuple[str, ...] = ()  # received sent last, > 35 days late
    orphan_case_ids: tuple[str, ...] = ()  # dossiers without any received
    rated_first_case_ids: tuple[str, ...] = ()  # a rated sent right before the received

    @property
    def final_time_text(self) -> str:
        return self.final_time.isoformat() if self.final_time else ""

    def write(self, path: str | Path) -> Path:
        """Write the lines as a JSONL file (newline-terminated)."""
        path = Path(path)
        path.write_bytes(b"".join(line + b"\n" for line in self.lines))
        return path


def _when(event: dict) -> datetime:
    return datetime.fromisoformat(event["occurred_at"])


def _add_months(day: date, months: int) -> date:
    years, month0 = divmod(day.month - 1 + months, 12)
    year, month = day.year + years, month0 + 1
    for dd in (day.day, 30, 29, 28):
        try:
            return date(year, month, min(day.day, dd))
        except ValueError:
            continue
    raise ValueError(f"cannot add {months} months to {day}")


def build_scenario(
    seed: int,
    cases: int = 3000,
    start: str = "2025-01-01",
    months: int = 6,
    duplicate_rate: float = 0.03,
    malformed_rate: float = 0.02,
    shuffle: bool = True,
    units: Sequence[str] | None = None,
    weak_share: float = SCENARIO_WEAK_SHARE,
    steps: bool = False,
) -> Scenario:
    """The scenario for ``seed``: same arguments (and unit list) -> same bytes.

    ``steps``: each dossier's process steps too, as contract ``step`` events
    (``pipeline.feed.steps``, the simulator's one source of steps and officials)."""
    if cases < 1 or months < 1:
        raise ValueError("cases and months must be positive")
    rng = random.Random(seed)

    def new_id() -> str:
        return str(uuid.UUID(int=rng.getrandbits(128), version=4))

    clock = WorkingClock()
    if units is not None:
        gen = LifecycleGenerator(rng, list(units), clock=clock, new_id=new_id, weak_share=weak_share)
    else:  # the registry: each dossier goes to a unit in force on its receipt date
        gen = LifecycleGenerator(rng, [], clock=clock, new_id=new_id, province=load_province(), weak_share=weak_share)
    start_day = date.fromisoformat(start)
    end_day = _add_months(start_day, months)
    t_start = datetime.combine(start_day, time(0), LOCAL_TZ)
    t_end = datetime.combine(end_day, time(0), LOCAL_TZ)
    workdays = clock.working_days(start_day, end_day)
    if not workdays:
        raise ValueError("the period has no working day")
    # receipts per working day follow the volume of the units in force that day
    day_weights = [gen.province.daily_total(d) for d in workdays] if gen.province is not None else None

    def receipt_time() -> datetime:
        day = rng.choices(workdays, weights=day_weights)[0] if day_weights else rng.choice(workdays)
        return clock.at_offset(day, rng.randrange(0, WORKDAY_SECONDS - 1800))

    # ---- lifecycles
    by_case: dict[str, list[dict]] = {}
    for index, t in enumerate(sorted(receipt_time() for _ in range(cases))):
        case_id = f"HS-{t:%y%m%d}-{index + 1:05d}"
        lifecycle = gen.case(case_id, t)
        events = [e for e in (with_steps(lifecycle) if steps else lifecycle) if _when(e) < t_end]
        if events:
            by_case[case_id] = events
    n_feedback = max(3, cases // 25)
    feedback_ids: list[str] = []
    for index, t in enumerate(sorted(receipt_time() for _ in range(n_feedback))):
        feedback_id = f"PAKN-{t:%y%m%d}-{index + 1:04d}"
        events = [e for e in gen.feedback(feedback_id, t) if _when(e) < t_end]
        if events:
            by_case[feedback_id] = events
            feedback_ids.append(feedback_id)

    def types(case_id: str) -> list[str]:
        return [e["event_type"] for e in by_case[case_id]]

    dossiers = [c for c in by_case if not c.startswith("PAKN-")]
    late_limit = t_end - timedelta(days=HOLD_MARGIN_DAYS)

    # ---- orphan feedback answers: drop the feedback_received of two answered feedbacks
    answered = [f for f in feedback_ids if "feedback_answered" in types(f)]
    for feedback_id in rng.sample(answered, min(2, len(answered))):
        by_case[feedback_id] = [e for e in by_case[feedback_id] if e["event_type"] != "feedback_received"]

    # ---- orphan dossiers: their received never arrives
    def holdable(case_id: str) -> bool:
        kinds = types(case_id)
        return "received" in kinds and "rejected" not in kinds and any(k in kinds for k in _HELD_TYPES)

    candidates = [c for c in dossiers if holdable(c)]
    orphans = sorted(rng.sample(candidates, min(len(candidates), max(2, cases // 200))))
    for case_id in orphans:
        by_case[case_id] = [e for e in by_case[case_id] if e["event_type"] != "received"]

    # ---- late receiveds: sent after everything else, > 35 days after the case's other events
    taken = set(orphans)
    candidates = [
        c for c in dossiers
        if c not in taken and holdable(c)
        and max(_when(e) for e in by_case[c] if e["event_type"] != "received") < late_limit
    ]
    late_cases = sorted(rng.sample(candidates, min(len(candidates), max(2, cases // 300))))
    taken.update(late_cases)
    late_lines: list[dict] = []
    for case_id in late_cases:
        late_lines.extend(e for e in by_case[case_id] if e["event_type"] == "received")
        by_case[case_id] = [e for e in by_case[case_id] if e["event_type"] != "received"]
    rng.shuffle(late_lines)

    # ---- rated right before its received
    candidates = [c for c in dossiers if c not in taken and "rated" in types(c) and "received" in types(c)]
    rated_first = sorted(rng.sample(candidates, min(len(candidates), max(2, cases // 300))))
    taken.update(rated_first)

    special_ids = {e["event_id"] for c in taken for e in by_case[c]}
    final = messy_lines(
        [e for case_id in by_case for e in by_case[case_id]], rng, new_id,
        duplicate_rate=duplicate_rate, malformed_rate=malformed_rate, shuffle=shuffle,
        special_ids=special_ids, rated_first=rated_first,
    ) + [(event_bytes(e), None) for e in late_lines]

    # ---- what a correct pipeline makes of it
    lines: list[bytes] = []
    valid: list[dict] = []
    invalid_lines: list[tuple[int, str, str]] = []
    seen: set[str] = set()
    duplicates = 0
    for index, (line, tag) in enumerate(final):
        lines.append(line)
        if tag is not None:
            invalid_lines.append((index, tag[0], tag[1]))
            continue
        event = json.loads(line)
        if event["event_id"] in seen:
            duplicates += 1
            continue
        seen.add(event["event_id"])
        valid.append(event)

    reasons = Counter(reason for _, _, reason in invalid_lines)
    return Scenario(
        lines=lines,
        valid_events=valid,
        expected_invalid=len(invalid_lines),
        expected_duplicates=duplicates,
        expected_reasons=dict(sorted(reasons.items())),
        invalid_lines=invalid_lines,
        cases=len({e["case_id"] for e in valid if e["event_type"] not in _FEEDBACK_TYPES}),
        feedbacks=len({e["case_id"] for e in valid if e["event_type"] in _FEEDBACK_TYPES}),
        start=t_start,
        end=t_end,
        final_time=max((_when(e) for e in valid), default=None),
        late_received_case_ids=tuple(late_cases),
        orphan_case_ids=tuple(orphans),
        rated_first_case_ids=tuple(rated_first),
    )


def messy_lines(
    events: list[dict],
    rng: random.Random,
    new_id: Callable[[], str],
    *,
    duplicate_rate: float = 0.03,
    malformed_rate: float = 0.02,
    shuffle: bool = True,
    special_ids: set[str] | frozenset[str] = frozenset(),
    rated_first: Sequence[str] = (),
) -> list[tuple[bytes, tuple[str, str] | None]]:
    """The scenario's mess on ``events`` (any order): time order, a sliding-window shuffle
    (:data:`SHUFFLE_WINDOW`) with about 1 % delayed by 1,000–4,000 lines, the ``rated`` of
    the ``rated_first`` cases moved right before their ``received``, duplicates (exact
    copies later, same id with other content before or after; none of ``special_ids``) and
    malformed lines of every :data:`MALFORMED_KINDS`. (line, (kind, reason) of a malformed
    line, else None), in replay order. Also the benchmarks' province load
    (``benchmarks/load.py``)."""
    stream = sorted(events, key=_when)  # stable: a case's events keep their order on ties
    if shuffle:
        keys = [i + rng.uniform(0, SHUFFLE_WINDOW) for i in range(len(stream))]
        for i in range(len(keys)):
            if rng.random() < 0.01:
                keys[i] += rng.uniform(1000, 4000)
        stream = [e for _, e in sorted(zip(keys, stream), key=lambda pair: pair[0])]
    for case_id in rated_first:
        rated = next(e for e in stream if e["case_id"] == case_id and e["event_type"] == "rated")
        stream.remove(rated)
        position = next(i for i, e in enumerate(stream) if e["case_id"] == case_id and e["event_type"] == "received")
        stream.insert(position, rated)

    entries: list[tuple[float, bytes, tuple[str, str] | None]] = [
        (float(i), event_bytes(e, spaced=rng.random() < 0.15), None) for i, e in enumerate(stream)
    ]
    n_main = len(entries)

    # ---- duplicates
    n_duplicates = round(duplicate_rate * n_main) if duplicate_rate > 0 else 0
    eligible = [i for i, e in enumerate(stream) if e["event_id"] not in special_ids]
    for _ in range(n_duplicates if eligible else 0):
        i = rng.choice(eligible)
        if rng.random() < 2 / 3:  # an exact copy, later
            position = min(n_main - 1, i + rng.randint(1, 2000))
            entries.append((position + rng.random(), entries[i][1], None))
        else:  # same event_id, different content, before or after
            position = max(0, min(n_main - 1, i + rng.randint(-300, 300)))
            entries.append((position + rng.random(), event_bytes(_variant(stream[i])), None))

    # ---- malformed lines
    by_type: dict[str, list[dict]] = {}
    for event in stream:
        by_type.setdefault(event["event_type"], []).append(event)
    n_malformed = max(len(MALFORMED_KINDS), round(malformed_rate * len(entries))) if malformed_rate > 0 else 0
    kinds = list(MALFORMED_KINDS)
    kinds = (kinds + [rng.choice(kinds) for _ in range(max(0, n_malformed - len(kinds)))])[:n_malformed]
    for kind in kinds:
        line = _malformed(kind, rng, by_type, stream, new_id)
        entries.append((rng.uniform(0, n_main), line, (kind, MALFORMED_KINDS[kind])))

    entries.sort(key=lambda entry: entry[0])
    return [(line, tag) for _, line, tag in entries]


def _variant(event: dict) -> dict:
    """Same event_id, different (still valid) content."""
    variant = dict(event)
    variant["source"] = "resend"
    kind = variant["event_type"]
    if kind == "rated":
        variant["rating"] = 1 if variant["rating"] >= 4 else 5
    elif kind == "payment":
        variant["method"] = "offline" if variant["method"] == "online" else "online"
    elif kind == "result_returned":
        variant["electronic_result"] = not variant.get("electronic_result", False)
    elif kind == "received":
        variant["digitized"] = not variant.get("digitized", False)
    return variant


def _malformed(
    kind: str,
    rng: random.Random,
    by_type: dict[str, list[dict]],
    stream: list[dict],
    new_id: Callable[[], str],
) -> bytes:
    """One line with exactly the defect ``kind`` (otherwise a valid event, fresh id)."""

    def template(event_type: str | None = None) -> dict:
        pool = by_type.get(event_type, []) if event_type else stream
        if pool:
            event = dict(rng.choice(pool))
        else:  # no such event in a tiny scenario: dress up another one
            base = dict(rng.choice(stream))
            event = {k: base[k] for k in ("schema_version", "event_type", "case_id", "unit_id", "occurred_at")}
            event["event_type"] = event_type
            if event_type == "received":
                event.update(procedure_code="1.000001", sector="dat_dai", channel="online", online_mode="full",
                             due_at=base["occurred_at"], has_fee=True, digitized=True, reused_data=False,
                             vneid_authenticated=True)
            elif event_type == "rated":
                event["rating"] = 5
            elif event_type == "payment":
                event.update(method="online", amount_vnd=50_000)
        event["event_id"] = new_id()
        return event

    if kind == "too_large":
        event = template()
        event["note"] = "x" * 70_000
        return event_bytes(event)
    if kind == "not_utf8":
        event = template()
        event["source"] = "@@SOURCE@@"
        return event_bytes(event).replace(b"@@SOURCE@@", b"mot-cua\xff")
    if kind == "broken_json":
        line = event_bytes(template())
        return line[:-1] if rng.random() < 0.5 else line.replace(b'":', b'"', 1)
    if kind == "json_array":
        return b"[" + event_bytes(template()) + b"]"
    if kind == "json_scalar":
        return rng.choice((b"null", b"42", b'"received"', b"true"))
    event = template(
        {
            "missing_due_at": "received",
            "missing_online_mode": "received",
            "sector_all": "received",
            "channel_fax": "received",
            "has_fee_string": "received",
            "due_at_not_a_date": "received",
            "negative_amount": "payment",
            "rating_string": "rated",
            "rating_7": "rated",
            "rating_bool": "rated",
        }.get(kind)
    )
    if kind == "schema_version_2":
        event["schema_version"] = 2
    elif kind == "unknown_event_type":
        event["event_type"] = "archived"
    elif kind == "missing_case_id":
        del event["case_id"]
    elif kind == "missing_due_at":
        del event["due_at"]
    elif kind == "missing_online_mode":
        event["channel"] = "online"
        event.pop("online_mode", None)
    elif kind == "event_id_too_long":
        event["event_id"] = event["event_id"] + "-" + "0" * 100
    elif kind == "unit_all":
        event["unit_id"] = "all"
    elif kind == "sector_all":
        event["sector"] = "all"
    elif kind == "channel_fax":
        event["channel"] = "fax"
        event.pop("online_mode", None)
    elif kind == "has_fee_string":
        event["has_fee"] = "yes"
    elif kind == "negative_amount":
        event["amount_vnd"] = -rng.choice((1000, 50_000))
    elif kind == "rating_string":
        event["rating"] = str(event["rating"])
    elif kind == "rating_7":
        event["rating"] = 7
    elif kind == "rating_bool":
        event["rating"] = True
    elif kind == "occurred_at_no_offset":
        event["occurred_at"] = datetime.fromisoformat(event["occurred_at"]).astimezone(LOCAL_TZ).replace(tzinfo=None).isoformat(timespec="seconds")
    elif kind == "due_at_not_a_date":
        year = datetime.fromisoformat(event["due_at"]).year
        event["due_at"] = f"{year}-02-30T10:00:00+07:00"
    elif kind == "future_occurred_at":
        event["occurred_at"] = "2099-01-15" + event["occurred_at"][10:]
    else:
        raise ValueError(f"unknown malformed kind {kind!r}")
    return event_bytes(event)
