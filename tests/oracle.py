"""The test oracle: docs/indicators.md, implemented a third time, as plainly as possible.

It imports nothing from ``pipeline``: it reads contract events as plain dicts (the
JSON objects of the messages, or ``CaseEvent.to_record()`` dicts), handles times as
timezone-aware ``datetime``, and recomputes everything from scratch on every call.
It is meant to be obviously right, not fast.

* :func:`expected_indicators` -> ``{(indicator, unit, sector, window): (numerator, denominator)}``
  for the unit scope ``(unit, "all")``, the sector scope ``("all", sector)`` (not for
  feedback) and the province ``("all", "all")``. Only series with a denominator > 0
  are present; a missing key means ``(0, 0)``.
* :func:`expected_open_cases` -> ``{unit: (open, overdue, overdue_without_apology)}``
  for the units with at least one open case.

``apology_coverage`` (v1.2) needs the working days: ``holidays`` is a pair of sets of
dates (weekdays off, weekend days worked), read by default from ``deploy/holidays.csv``
here with the plain ``csv`` module, and ``apology_lead`` the working days of lead
(default 1).

The events given must be valid contract events. Duplicates (same ``event_id``) are
dropped here too, first one in list order wins. Only events with ``occurred_at ≤ T``
are considered; ``at=None`` means T = the latest ``occurred_at`` (the event clock).
"""

from __future__ import annotations

import csv
import re
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

LOCAL = timezone(timedelta(hours=7))  # Asia/Ho_Chi_Minh, UTC+7, no DST

ALL_WINDOWS = ("1h", "24h", "7d", "30d", "mtd", "qtd", "ytd")
ROLLING = {"1h": timedelta(hours=1), "24h": timedelta(hours=24), "7d": timedelta(days=7), "30d": timedelta(days=30)}

FEEDBACK_TYPES = ("feedback_received", "feedback_answered")


HOLIDAYS_FILE = Path(__file__).resolve().parents[1] / "deploy" / "holidays.csv"


def read_holidays(path=HOLIDAYS_FILE) -> tuple[set[date], set[date]]:
    """(weekdays off, weekend days worked) of a ``date,kind,name_vi`` file."""
    off, worked = set(), set()
    with open(path, encoding="utf-8") as f:
        rows = [line for line in f if not line.lstrip().startswith("#")]
    for row in csv.DictReader(rows):
        day = date.fromisoformat(row["date"].strip())
        (off if row["kind"].strip() == "holiday" else worked).add(day)
    return off, worked


def is_working_day(day: date, holidays) -> bool:
    off, worked = holidays
    return day in worked or (day.weekday() < 5 and day not in off)


def apology_last_day(effective_due: datetime, holidays, lead: int) -> date:
    """The last local date an apology may carry: ``lead`` working days before the due's date."""
    day = local_date(effective_due)
    found = 0
    while found < lead:
        day -= timedelta(days=1)
        if is_working_day(day, holidays):
            found += 1
    return day


def apology_counts(events: list[dict], effective_due: datetime, holidays, lead: int) -> bool:
    last = apology_last_day(effective_due, holidays, lead)
    return any(local_date(when(e)) <= last for e in of_type(events, "apology_issued"))


# --------------------------------------------------------------------------- time


def to_time(value) -> datetime:
    """An RFC 3339 string (or an aware datetime) -> aware datetime."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("naive datetime")
        return value
    text = str(value).strip()
    if text[-1:] in ("Z", "z"):
        text = text[:-1] + "+00:00"
    text = text.replace("t", "T", 1) if "T" not in text else text
    # keep at most 6 fractional digits (the contract truncates to microseconds)
    text = re.sub(r"(\.\d{6})\d+", r"\1", text)
    result = datetime.fromisoformat(text)
    if result.tzinfo is None:
        raise ValueError(f"timestamp without offset: {value!r}")
    return result


def when(event: dict) -> datetime:
    return to_time(event["occurred_at"])


def order_key(event: dict):
    """Earliest = smallest occurred_at, ties broken by smallest event_id."""
    return (when(event), event["event_id"])


def earliest(events: list[dict]) -> dict | None:
    if not events:
        return None
    return sorted(events, key=order_key)[0]


def local_date(t: datetime):
    return t.astimezone(LOCAL).date()


def in_window(t: datetime, clock: datetime, window: str) -> bool:
    if t > clock:
        return False
    if window in ROLLING:
        return clock - ROLLING[window] < t
    a, b = t.astimezone(LOCAL), clock.astimezone(LOCAL)
    if window == "mtd":
        return (a.year, a.month) == (b.year, b.month)
    if window == "qtd":
        return a.year == b.year and (a.month - 1) // 3 == (b.month - 1) // 3
    if window == "ytd":
        return a.year == b.year
    raise ValueError(f"unknown window {window!r}")


# --------------------------------------------------------------------------- cases


def _prepare(events: list[dict], at) -> tuple[datetime, dict[str, list[dict]], dict[str, list[dict]]]:
    """Drop duplicates, fix T, keep events with occurred_at <= T, group them by case."""
    unique: list[dict] = []
    seen: set[str] = set()
    for event in events:
        if event["event_id"] in seen:
            continue
        seen.add(event["event_id"])
        unique.append(event)
    if at is None:
        clock = max(when(e) for e in unique)
    else:
        clock = to_time(at)
    dossiers: dict[str, list[dict]] = {}
    feedbacks: dict[str, list[dict]] = {}
    for event in unique:
        if when(event) > clock:
            continue
        if event["event_type"] in FEEDBACK_TYPES:
            feedbacks.setdefault(event["case_id"], []).append(event)
        else:
            dossiers.setdefault(event["case_id"], []).append(event)
    return clock, dossiers, feedbacks


def of_type(events: list[dict], *types: str) -> list[dict]:
    return [e for e in events if e["event_type"] in types]


def finish_of(events: list[dict]) -> dict | None:
    """Earliest resolved/stopped/withdrawn; if none, the earliest result_returned."""
    finish = earliest(of_type(events, "resolved", "stopped", "withdrawn"))
    if finish is None:
        finish = earliest(of_type(events, "result_returned"))
    return finish


def paused_time(events: list[dict], finish: datetime | None, clock: datetime) -> timedelta:
    """Total pause length: supplement events up to the finish (all when unfinished)."""
    supplements = of_type(events, "supplement_requested", "supplement_received")
    if finish is not None:
        supplements = [e for e in supplements if when(e) <= finish]
    total = timedelta(0)
    open_since = None
    for event in sorted(supplements, key=order_key):
        if event["event_type"] == "supplement_requested":
            if open_since is None:
                open_since = when(event)
        else:  # supplement_received
            if open_since is not None:
                total += when(event) - open_since
                open_since = None
    if open_since is not None:
        end = finish if finish is not None else clock
        total += end - open_since
    return total


def dossier_outcomes(events: list[dict], clock: datetime, retention: timedelta, holidays=None,
                     apology_lead: int = 1) -> list[tuple]:
    """Outcomes (indicator, unit, sector, time, hit) of one dossier at clock T."""
    if holidays is None:
        holidays = read_holidays()
    if of_type(events, "rejected"):
        return []  # never accepted: no outcome at all
    outcomes = []
    received = earliest(of_type(events, "received"))
    first_return = earliest(of_type(events, "result_returned"))

    if received is None:
        # held events: after the retention, attributed to their own unit, sector "unknown"
        for event in of_type(events, "payment", "rated"):
            if when(event) + retention < clock:
                outcomes.append(_event_outcome(event, event["unit_id"], "unknown"))
        if first_return is not None and when(first_return) + retention < clock:
            outcomes.append(("e_result", first_return["unit_id"], "unknown", when(first_return),
                             first_return.get("electronic_result") is True))
        return outcomes

    unit, sector = received["unit_id"], received["sector"]
    t_receipt = when(received)
    online = received.get("channel") == "online"
    outcomes.append(("full_online", unit, sector, t_receipt, online and received.get("online_mode") == "full"))
    outcomes.append(("remote", unit, sector, t_receipt, online))
    outcomes.append(("digitized", unit, sector, t_receipt, received.get("digitized") is True))
    outcomes.append(("data_reuse", unit, sector, t_receipt, received.get("reused_data") is True))
    if online:
        outcomes.append(("vneid_auth", unit, sector, t_receipt, received.get("vneid_authenticated") is True))
    for event in of_type(events, "payment", "rated"):
        outcomes.append(_event_outcome(event, unit, sector))
    if first_return is not None:
        outcomes.append(("e_result", unit, sector, when(first_return), first_return.get("electronic_result") is True))

    finish_event = finish_of(events)
    if finish_event is not None:
        finish = when(finish_event)
        requests = len([e for e in of_type(events, "supplement_requested") if when(e) <= finish])
        effective_due = to_time(received["due_at"]) + paused_time(events, finish, clock)
        on_time = finish <= effective_due and requests <= 1
        early = on_time and local_date(finish) < local_date(effective_due)
        outcomes.append(("on_time", unit, sector, finish, on_time))
        outcomes.append(("on_time_766", unit, sector, finish, on_time))
        outcomes.append(("early", unit, sector, finish, early))
        if not on_time:  # v1.2: the apology must be dated by the lead-th working day before the due
            apology = apology_counts(events, effective_due, holidays, apology_lead)
            outcomes.append(("apology_coverage", unit, sector, finish, apology))
    else:
        # on_time_766: open at T, counted at T (in every window); late once past its
        # effective due at T (an open pause counts up to T) or with two requests
        requests = len(of_type(events, "supplement_requested"))
        effective_due = to_time(received["due_at"]) + paused_time(events, None, clock)
        on_time_now = requests <= 1 and effective_due >= clock
        outcomes.append(("on_time_766", unit, sector, clock, on_time_now))
        if not on_time_now:  # late at T: apology_coverage counts it at T too
            outcomes.append(("apology_coverage", unit, sector, clock,
                             apology_counts(events, effective_due, holidays, apology_lead)))
    return outcomes


def _event_outcome(event: dict, unit: str, sector: str) -> tuple:
    if event["event_type"] == "payment":
        return ("online_payment", unit, sector, when(event), event["method"] == "online")
    return ("satisfaction", unit, sector, when(event), event["rating"] >= 4)


def feedback_outcomes(events: list[dict]) -> list[tuple]:
    """One outcome per feedback_answered; none without a feedback_received."""
    received = earliest(of_type(events, "feedback_received"))
    if received is None:
        return []
    due = to_time(received["due_at"])
    return [
        ("feedback_on_time", received["unit_id"], "", when(answer), when(answer) <= due)
        for answer in of_type(events, "feedback_answered")
    ]


def all_outcomes(events: list[dict], at=None, hold_retention_days: float = 35, holidays=None,
                 apology_lead: int = 1) -> tuple[datetime, list[tuple]]:
    clock, dossiers, feedbacks = _prepare(events, at)
    retention = timedelta(days=hold_retention_days)
    if holidays is None:
        holidays = read_holidays()
    outcomes = []
    for case_events in dossiers.values():
        outcomes.extend(dossier_outcomes(case_events, clock, retention, holidays, apology_lead))
    for feedback_events in feedbacks.values():
        outcomes.extend(feedback_outcomes(feedback_events))
    return clock, outcomes


# --------------------------------------------------------------------------- public


def expected_indicators(
    events: list[dict],
    at=None,
    windows=ALL_WINDOWS,
    hold_retention_days: float = 35,
    sectors=None,
    holidays=None,
    apology_lead: int = 1,
) -> dict[tuple[str, str, str, str], tuple[int, int]]:
    """{(indicator, unit, sector, window): (numerator, denominator)}, denominators > 0.

    ``sectors``: the registered sector codes; when given, a sector outside them counts
    in the sector scope ``unknown`` (with the held outcomes), as the worker exports and
    stores it. None: every sector as the events carry it."""
    if isinstance(windows, str):
        windows = tuple(w.strip() for w in windows.split(","))
    clock, outcomes = all_outcomes(events, at, hold_retention_days, holidays, apology_lead)
    counts: dict[tuple[str, str, str, str], list[int]] = {}
    for indicator, unit, sector, t, hit in outcomes:
        if sectors is not None and sector not in ("", "unknown") and sector not in sectors:
            sector = "unknown"
        scopes = [(unit, "all"), ("all", "all")]
        if sector != "":
            scopes.append(("all", sector))
        for window in windows:
            if not in_window(t, clock, window):
                continue
            for scope_unit, scope_sector in scopes:
                pair = counts.setdefault((indicator, scope_unit, scope_sector, window), [0, 0])
                pair[0] += 1 if hit else 0
                pair[1] += 1
    return {key: (pair[0], pair[1]) for key, pair in counts.items()}


def expected_open_cases(events: list[dict], at=None) -> dict[str, tuple[int, int, int]]:
    """{owner unit: (open, overdue, overdue without apology)} at clock T."""
    clock, dossiers, _ = _prepare(events, at)
    result: dict[str, list[int]] = {}
    for case_events in dossiers.values():
        received = earliest(of_type(case_events, "received"))
        if received is None or of_type(case_events, "rejected") or finish_of(case_events) is not None:
            continue
        effective_due = to_time(received["due_at"]) + paused_time(case_events, None, clock)
        overdue = effective_due < clock
        apology = bool(of_type(case_events, "apology_issued"))
        counts = result.setdefault(received["unit_id"], [0, 0, 0])
        counts[0] += 1
        counts[1] += 1 if overdue else 0
        counts[2] += 1 if overdue and not apology else 0
    return {unit: tuple(counts) for unit, counts in result.items()}


# --------------------------------------------------------------------------- the volume table


VOLUME_COLUMNS = ("carried", "received_online", "received_direct", "received_postal", "resolved_early",
                  "resolved_on_time", "resolved_late", "withdrawn", "stopped", "open_within", "open_overdue",
                  "rejected")


def expected_volume(events: list[dict], start, end) -> dict[tuple[str, str], dict[str, int]]:
    """The volume table (docs/indicators.md) of the period ``start <= t <= end``:
    {(unit, sector): {column: count}} for every (unit, sector) with a non-zero count."""
    start, end = to_time(start), to_time(end)
    _clock, dossiers, _ = _prepare(events, end)
    table: dict[tuple[str, str], dict[str, int]] = {}

    def count(unit, sector, column):
        row = table.setdefault((unit, sector), dict.fromkeys(VOLUME_COLUMNS, 0))
        row[column] += 1

    for case_events in dossiers.values():
        received = earliest(of_type(case_events, "received"))
        rejected = earliest(of_type(case_events, "rejected"))
        if received is None and rejected is None:
            continue
        unit = received["unit_id"] if received is not None else rejected["unit_id"]
        sector = received["sector"] if received is not None else ""
        if rejected is not None:
            if when(rejected) >= start:
                count(unit, sector, "rejected")
            continue  # never accepted: in no other column
        t_received = when(received)
        finish_event = finish_of(case_events)
        finish = when(finish_event) if finish_event is not None else None
        if t_received < start and (finish is None or finish >= start):
            count(unit, sector, "carried")
        if t_received >= start:
            channel = received.get("channel")
            count(unit, sector, {"online": "received_online", "direct": "received_direct"}.get(channel, "received_postal"))
        if finish is not None and finish >= start:
            kind = finish_event["event_type"]
            if kind in ("withdrawn", "stopped"):
                count(unit, sector, kind)
            else:
                requests = len([e for e in of_type(case_events, "supplement_requested") if when(e) <= finish])
                effective_due = to_time(received["due_at"]) + paused_time(case_events, finish, end)
                on_time = finish <= effective_due and requests <= 1
                early = on_time and local_date(finish) < local_date(effective_due)
                count(unit, sector, "resolved_early" if early else "resolved_on_time" if on_time else "resolved_late")
        if finish is None:
            requests = len(of_type(case_events, "supplement_requested"))
            effective_due = to_time(received["due_at"]) + paused_time(case_events, None, end)
            late = requests > 1 or effective_due < end
            count(unit, sector, "open_overdue" if late else "open_within")
    return table
