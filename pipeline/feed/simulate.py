"""``python -m pipeline simulate``: live synthetic load, events sent in real time.

Many dossier and feedback lifecycles (:mod:`pipeline.feed.lifecycle`) run side by
side; every event is sent when its ``occurred_at`` comes (``occurred_at`` ≈ now) and
the sender keeps a steady ``rate`` events/s: at each send slot the earliest pending
event that is due goes out, and when none is due a new case starts (its ``received``
is sent now). So the number of cases in flight grows until their later events fill
the rate.

Time compression: one working day lasts :data:`SECONDS_PER_WORKING_DAY` (20) real
seconds, so a dossier due in 3–15 working days is due 1–5 minutes after its receipt
and its whole life spans a few minutes; cases meant to finish late really finish
after their (compressed) due date, and the open-case gauges see overdue dossiers.
Cases meant to finish *early* get a due date at its real calendar distance (days),
since ``early`` compares calendar dates (see :mod:`pipeline.feed.lifecycle`).

``--seed`` fixes the lifecycle draws (channels, outcomes, ratings …); event and case
ids are always fresh (a second run never produces duplicates of the first).

``simulate --history YEAR --out FILE`` (:func:`write_history`) instead writes a whole year
of the province as JSONL (no broker): the units in force on each date, volumes in
proportion to population, office hours and holidays (:mod:`pipeline.feed.province`,
:mod:`pipeline.calendar_file`), with a progress bar.
"""

from __future__ import annotations

from datetime import date, timedelta
import heapq
import json
import random
import ssl
import time
import urllib.request
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Callable

from pipeline.config import Settings, UserError
from pipeline.core.indicators import INDICATORS
from pipeline.feed.lifecycle import (
    BASELINES,
    LOCAL_TZ,
    WORKDAY_SECONDS,
    CompressedClock,
    Incident,
    LifecycleGenerator,
    WorkingClock,
    event_bytes,
    load_province,
    active_unit_ids,
)
from pipeline.feed.dvcqg import case_calls, rating_calls
from pipeline.feed.steps import with_steps
from pipeline.intake.calls import load_accounts
from pipeline.feed.replay import _Acks, flush_and_check, open_producer, send_all
from pipeline.progress import progress_bar, summary
from pipeline.store.sectors import load_sectors
from pipeline.store.units import load_units

SECONDS_PER_WORKING_DAY = 20.0
FEEDBACK_SHARE = 0.05  # of new lifecycles

#: ``simulate --demo`` (``make demo``): 60 units (the service centre, the departments and the first
#: wards of the registry), the clean baseline (every target met, even at the minimum volume) and one
#: incident: Phường Kinh Bắc finishes only 30 % of its dossiers early (target > 60 %). Its sectors are
#: shared by many wards, so neither they nor the province fall below a target: its page is the only one
#: (tests/unit/test_simulation.py). Early dossiers are judged as they finish: it pages within minutes.
DEMO_UNITS = 60
DEMO_BASELINE = "clean"
DEMO_INCIDENT = "unit=P_KINH_BAC,indicator=early,level=0.3"
DEFAULT_UNITS = 12


def parse_incident(text: str) -> Incident:
    """``unit=U,indicator=I,level=0.5`` -> :class:`Incident`; :class:`UserError` if malformed."""
    prefix = f"bad --incident {text!r}"
    values: dict[str, str] = {}
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        if "=" not in part:
            raise UserError(f"{prefix}: {part!r} is not key=value (expected unit=U,indicator=I,level=0.5)")
        key, value = (s.strip() for s in part.split("=", 1))
        if key not in ("unit", "indicator", "level"):
            raise UserError(f"{prefix}: unknown key {key!r} (expected unit, indicator, level)")
        if key in values:
            raise UserError(f"{prefix}: {key} given twice")
        values[key] = value
    missing = [k for k in ("unit", "indicator", "level") if not values.get(k)]
    if missing:
        raise UserError(f"{prefix}: missing {', '.join(missing)} (expected unit=U,indicator=I,level=0.5)")
    unit, indicator = values["unit"], values["indicator"]
    if unit == "all":
        raise UserError(f"{prefix}: unit must be a unit code, not 'all'")
    indicators = INDICATORS
    if indicator not in indicators:
        raise UserError(f"{prefix}: unknown indicator {indicator!r} (one of {', '.join(indicators)})")
    try:
        level = float(values["level"])
    except ValueError:
        raise UserError(f"{prefix}: level must be a number in [0, 1], got {values['level']!r}") from None
    if not 0.0 <= level <= 1.0:  # also rejects nan
        raise UserError(f"{prefix}: level must be in [0, 1], got {values['level']}")
    return Incident(unit=unit, indicator=indicator, level=level)


@dataclass(order=True)
class _Pending:
    at: datetime
    seq: int
    event: dict


def _now() -> datetime:
    now = datetime.now(LOCAL_TZ)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def run_simulation(
    settings: Settings,
    rate: float = 20.0,
    duration: float = 60.0,
    units: int = 12,
    incidents=(),
    seed: int | None = None,
    progress: bool = True,
    baseline: str = "realistic",
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    wall: Callable[[], datetime] = _now,
) -> int:
    """Send live events at ~``rate``/s for ``duration`` seconds; return the number sent.

    ``clock``/``sleep`` pace the messages (message *i* leaves at ``start + i / rate``) and
    ``wall`` dates the events (tests inject their own)."""
    if not rate or rate <= 0:
        raise UserError(f"--rate must be positive, got {rate}")
    if not duration or duration <= 0:
        raise UserError(f"--duration must be positive, got {duration}")
    if units < 1:
        raise UserError(f"--units must be positive, got {units}")
    if baseline not in BASELINES:
        raise UserError(f"--baseline must be one of {', '.join(BASELINES)}, got {baseline!r}")
    registry = active_unit_ids(settings.units_file)
    chosen = registry[:units]
    incidents = list(incidents)
    for incident in incidents:
        if incident.unit not in chosen:
            raise UserError(
                f"incident unit {incident.unit!r} is not among the {len(chosen)} simulated units "
                f"({', '.join(chosen)}); raise --units or pick one of them"
            )

    rng = random.Random(seed)
    generator = LifecycleGenerator(
        rng,
        chosen,
        clock=CompressedClock(SECONDS_PER_WORKING_DAY),
        incidents=incidents,
        new_id=lambda: str(uuid.uuid4()),
        province=load_province(settings.units_file),  # volumes and sectors of the chosen units
        baseline=baseline,
    )
    run_tag = uuid.uuid4().hex[:6].upper()
    producer = open_producer(settings)
    acks = _Acks()
    bar = progress_bar("simulate", total=round(rate * duration), unit="ev", enabled=progress)
    pending: list[_Pending] = []
    counter = {"seq": 0, "cases": 0, "feedback": 0}

    def start_lifecycle(now: datetime) -> None:
        if rng.random() < FEEDBACK_SHARE:
            counter["feedback"] += 1
            events = generator.feedback(f"PAKN-SIM-{run_tag}-{counter['feedback']:06d}", now)
        else:
            counter["cases"] += 1
            events = with_steps(generator.case(f"HS-SIM-{run_tag}-{counter['cases']:06d}", now))
        for event in events:
            counter["seq"] += 1
            heapq.heappush(pending, _Pending(datetime.fromisoformat(event["occurred_at"]), counter["seq"], event))

    started = clock()
    sent = 0

    def messages():  # reads ``sent``, counted by the loop below
        while True:
            slot = started + sent / rate
            if slot - started >= duration or clock() - started >= duration + 1.0:
                return
            delay = slot - clock()
            if delay > 0:
                sleep(delay)
            now = wall()
            while not pending or pending[0].at > now:
                start_lifecycle(now)
            event = heapq.heappop(pending).event
            value = json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
            yield event["case_id"].encode("utf-8"), value

    try:
        with bar:
            for _ in send_all(producer, settings.topic, messages(), acks):
                sent += 1
                bar.update(1)
                bar.set_postfix_str(f"{counter['cases']} cases + {counter['feedback']} feedback started, "
                                    f"{len(pending)} events pending", refresh=False)
            flush_and_check(producer, settings.topic, acks)
    finally:
        producer.close(timeout=5)
    elapsed = clock() - started
    summary(
        f"simulate: sent {sent} events ({counter['cases']} cases, {counter['feedback']} feedback, "
        f"{len(chosen)} units) to {settings.topic} in {elapsed:.1f} s ({sent / elapsed if elapsed > 0 else 0:.1f} ev/s)",
        enabled=progress,
    )
    return sent


# --------------------------------------------------------------------------- a year of history

HISTORY_FEEDBACK_SHARE = 0.03  # feedback items per dossier received


def _poisson(rng: random.Random, lam: float) -> int:
    if lam <= 0:
        return 0
    if lam > 30:  # normal approximation
        return max(0, round(rng.gauss(lam, lam ** 0.5)))
    limit, k, p = pow(2.718281828459045, -lam), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


@dataclass
class HistoryResult:
    path: str
    dossiers: int
    feedbacks: int
    events: int
    first_day: str
    last_day: str


def write_history(
    settings: Settings,
    year: int,
    out: str,
    *,
    scale: float = 1.0,
    seed: int = 2025,
    incidents=(),
    progress: bool = True,
    days: int | None = None,
    output_format: str = "contract",
) -> HistoryResult:
    """Write a year (or its first ``days`` days) of dossier lifecycles as JSONL, in
    ``occurred_at`` order, deterministic for (registry, holidays, year, scale, seed).

    ``output_format="dvcqg"``: the same lifecycles as DVCQG sync calls, one request body
    per line (``pipeline.feed.dvcqg``; ``python -m pipeline intake --file`` loads it):
    ``events`` counts the calls; feedback items are drawn (so the dossiers are the same)
    but not written, and the monthly rating summaries come last.

    Every working day each unit in force receives a Poisson number of dossiers with the
    mean of :meth:`pipeline.feed.province.Province.daily_rates` × ``scale``, at office
    hours; events dated after the year end are not written (those dossiers stay open).
    Each dossier's process steps (``pipeline.feed.steps``: reception, processing by a
    synthetic official, apology) are written as contract ``step`` events, or as
    ``CapNhatTienDoHoSoMC`` calls in the DVCQG format.
    """

    if not 0 < scale <= 10:
        raise UserError(f"--scale must be in (0, 10], got {scale}")
    if not 2000 <= year <= 2100:
        raise UserError(f"--history must be a year, got {year}")
    province = load_province(settings.units_file)
    incidents = list(incidents)
    for incident in incidents:
        if incident.unit not in province.by_id:
            raise UserError(f"incident unit {incident.unit!r} is not in the units registry")
    rng = random.Random(seed)
    clock = WorkingClock()
    if not clock.calendar.covers(year):
        raise UserError(
            f"{clock.calendar.source or 'deploy/holidays.csv'} lists no public holidays for {year}: "
            f"add the year's announced holidays and swapped working days before simulating it"
        )
    generator = LifecycleGenerator(
        rng, [], clock=clock, incidents=incidents, province=province,
        new_id=lambda: str(uuid.UUID(int=rng.getrandbits(128), version=4)),
    )
    first = date(year, 1, 1)
    stop = date(year + 1, 1, 1)
    if days is not None:
        stop = min(stop, first + timedelta(days=days))
    all_days = [first + timedelta(days=n) for n in range((stop - first).days)]
    end_of_period = datetime.combine(stop, datetime.min.time(), LOCAL_TZ)
    pending: list[tuple[datetime, int, bytes]] = []
    counts = {"dossiers": 0, "feedbacks": 0, "events": 0, "seq": 0}

    if output_format not in ("contract", "dvcqg"):
        raise UserError(f"--format must be contract or dvcqg, got {output_format!r}")
    dvcqg = output_format == "dvcqg"
    unit_codes = {u.unit_id: u.dvcqg_code for u in load_units(settings.units_file) if u.dvcqg_code}
    sector_codes = [s.sector for s in load_sectors()]
    ratings: list[dict] = []

    def push(events: list[dict]) -> None:
        if dvcqg:
            kept = [e for e in events if datetime.fromisoformat(e["occurred_at"]) < end_of_period]
            ratings.extend(e for e in kept if e["event_type"] == "rated")
            for call in case_calls(kept, unit_codes, sector_codes):
                counts["seq"] += 1
                heapq.heappush(pending, (call.at, counts["seq"], event_bytes(call.body)))
            return
        for event in events:
            at = datetime.fromisoformat(event["occurred_at"])
            if at < end_of_period:
                counts["seq"] += 1
                heapq.heappush(pending, (at, counts["seq"], event_bytes(event)))

    with open(out, "wb") as handle, progress_bar(
        f"simulate {year}", total=len(all_days), unit="day", enabled=progress
    ) as bar:
        for day in all_days:
            if clock.calendar.is_working_day(day):
                for unit, rate in province.daily_rates(day):
                    for _ in range(_poisson(rng, rate * scale)):
                        counts["dossiers"] += 1
                        t = clock.at_offset(day, rng.randrange(0, WORKDAY_SECONDS - 600))
                        case = generator.case(f"HS-{year}-{counts['dossiers']:07d}", t, unit=unit.unit_id)
                        push(case if dvcqg else with_steps(case))  # DVCQG calls: steps from the same source
                        if rng.random() < HISTORY_FEEDBACK_SHARE:
                            counts["feedbacks"] += 1
                            feedback = generator.feedback(f"PAKN-{year}-{counts['feedbacks']:06d}", t, unit=unit.unit_id)
                            if not dvcqg:  # DVCQG calls carry no feedback
                                push(feedback)
            next_midnight = datetime.combine(day + timedelta(days=1), datetime.min.time(), LOCAL_TZ)
            while pending and pending[0][0] < next_midnight:
                handle.write(heapq.heappop(pending)[2] + b"\n")
                counts["events"] += 1
            bar.update(1)
            bar.set_postfix(dossiers=counts["dossiers"], events=counts["events"], refresh=False)
        if dvcqg:  # the units' monthly rating summaries (DongBoDanhGia), once the year is done
            for call in rating_calls(ratings, unit_codes, end_of_period):
                handle.write(event_bytes(call.body) + b"\n")
                counts["events"] += 1
    return HistoryResult(str(out), counts["dossiers"], counts["feedbacks"], counts["events"],
                         all_days[0].isoformat(), all_days[-1].isoformat())


# --------------------------------------------------------------------------- live, as DVCQG calls


class IntakeClient:
    """Posts DVCQG calls to the intake (``TTHC_INTAKE_HOST``:``TTHC_INTAKE_PORT``) as the
    first account of ``TTHC_INTAKE_ACCOUNTS_FILE`` (the local demo's), logging in again when
    the session expires; a call is sent again until the intake answers ``error_code`` 0."""

    def __init__(self, settings: Settings, *, retries: int = 50) -> None:
        if not settings.intake_accounts_file:
            raise UserError("simulate --format dvcqg needs TTHC_INTAKE_ACCOUNTS_FILE (the intake's accounts)")
        accounts = load_accounts(settings.intake_accounts_file)
        self.username, self.password = next(iter(accounts.passwords.items()))
        host = settings.intake_host if settings.intake_host not in ("0.0.0.0", "::", "localhost") else "127.0.0.1"
        scheme = "https" if settings.intake_tls_cert else "http"
        self.url = f"{scheme}://{host}:{settings.intake_port}/dvcqg"
        self.session: str | None = None
        self.retries = retries
        self.resends = 0

    def _post(self, path: str, body: dict) -> dict:
        data = json.dumps(body, ensure_ascii=False).encode("utf-8")
        request = urllib.request.Request(self.url + path, data=data, method="POST",
                                         headers={"Content-Type": "application/json"})
        context = ssl._create_unverified_context() if self.url.startswith("https") else None  # the local demo's
        with urllib.request.urlopen(request, timeout=30, context=context) as response:
            return json.loads(response.read())

    def send(self, body: dict) -> None:
        for _attempt in range(self.retries):
            try:
                if self.session is None:
                    reply = self._post("/login", {"username": self.username, "password": self.password})
                    if reply.get("error_code") != 0:
                        raise UserError(f"the intake refused the login of {self.username}")
                    self.session = reply["session"]
                reply = self._post("/", {**body, "session": self.session})
            except OSError:
                self.resends += 1
                time.sleep(0.5)
                continue
            if reply.get("error_code") == 2:
                self.session = None
                continue
            if reply.get("error_code") == 0:
                return
            if reply.get("error_code") == 6:
                self.resends += 1
                time.sleep(0.5)
                continue
            raise UserError(f"the intake refused a call: {reply.get('error_code')} {reply.get('message')}")
        raise UserError(f"cannot reach the intake at {self.url} (run `python -m pipeline intake`)")


def run_dvcqg_simulation(
    settings: Settings,
    rate: float = 20.0,
    duration: float = 60.0,
    units: int = 12,
    incidents=(),
    seed: int | None = None,
    progress: bool = True,
) -> int:
    """Like :func:`run_simulation`, but the lifecycles go to the intake as DVCQG calls
    (``pipeline.feed.dvcqg``), ~``rate`` calls per second; returns the calls sent."""
    if rate <= 0 or duration <= 0 or units < 1:
        raise UserError("--rate, --duration and --units must be positive")
    chosen = active_unit_ids(settings.units_file)[:units]
    unit_codes = {u.unit_id: u.dvcqg_code for u in load_units(settings.units_file) if u.dvcqg_code}
    sector_codes = [s.sector for s in load_sectors()]
    rng = random.Random(seed)
    generator = LifecycleGenerator(rng, chosen, clock=CompressedClock(SECONDS_PER_WORKING_DAY),
                                   incidents=list(incidents), new_id=lambda: str(uuid.uuid4()),
                                   province=load_province(settings.units_file))
    client = IntakeClient(settings)
    run_tag = uuid.uuid4().hex[:6].upper()
    pending: list[tuple[datetime, int, dict]] = []
    seq = cases = sent = 0
    started = time.monotonic()
    with progress_bar("simulate dvcqg", total=round(rate * duration), unit="call", enabled=progress) as bar:
        while time.monotonic() - started < duration:
            delay = started + sent / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            now = _now()
            while not pending or pending[0][0] > now:
                cases += 1
                for call in case_calls(generator.case(f"HS-SIM-{run_tag}-{cases:06d}", now), unit_codes, sector_codes):
                    seq += 1
                    heapq.heappush(pending, (call.at, seq, call.body))
            client.send(heapq.heappop(pending)[2])
            sent += 1
            bar.update(1)
    summary(f"simulate: sent {sent} DVCQG calls ({cases} dossiers started, {client.resends} resends) to {client.url}",
            enabled=progress)
    return sent
