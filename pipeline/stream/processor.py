"""What the worker does with one message, free of Faust, Kafka and ClickHouse.

State has two parts:

* **the truth**: one ``StoredCase`` per case (its events and the input offsets that
  carried them), reached through a ``CaseRepository`` (in the worker: a cache in
  front of ``state.CaseStore``, the changelog; in unit tests: a dict);
* **the live view**, derived from the truth only (``LiveState``): indicator totals per
  scope and window (``core.view.IndicatorView``), open cases per unit
  (``core.view.OpenCaseIndex``), recent event ids of every case, and the clocks.
  It is rebuilt from the records on assignment and then kept current by the signed
  outcome deltas of each accepted event.

Exactly-once *effects* without Faust's exactly-once mode:

* an event id already in its case at the *same* offset is a redelivery (the truth
  holds it; the row is written again, which the replacing tables absorb); at another
  offset, or under another case (ids of the last ``TTHC_DEDUPE_RETENTION_DAYS``), it
  is a duplicate and changes nothing;
* the view changes by the difference between a case's outcomes before and after an
  event, so arrival order never matters, and a rebuild equals the increments.
"""

from __future__ import annotations

import orjson
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator, Mapping, NamedTuple, Protocol

from pipeline.contract.events import CaseEvent, InvalidEvent, parse_event
from pipeline.core.apology import DEFAULT_APOLOGY_LEAD, ApologyRule
from pipeline.core.cases import CaseState, OpenCase, case_outcomes_and_open
from pipeline.core.outcomes import Outcome, diff_outcomes
from pipeline.calendar_file import load_calendar
from pipeline.config import UserError
from pipeline.contract.localtime import WorkCalendar
from pipeline.core.sectors import SectorLabels
from pipeline.core.view import APOLOGY_COVERAGE, ON_TIME_766, IndicatorView, OpenCaseIndex
from pipeline.core.windows import local_day_number

# Held outcomes carry sector "unknown" and the view counts them only once they are
# older than the hold retention, so outcomes are a function of the events alone.
ALL_ATTRIBUTED_US = 2**62

ACCEPTED = "accepted"
INVALID = "invalid"
DUPLICATE = "duplicate"
REDELIVERED = "redelivered"


class RawMessage(NamedTuple):  # one per message: a named tuple is made in C
    key: bytes | None
    value: bytes | None
    partition: int
    offset: int


@dataclass(slots=True)
class StoredCase:
    """A case's record: its events, and the offset of the message that carried each
    (all in the case's partition). ``outcomes`` is a cache, never stored."""

    state: CaseState
    offsets: dict[str, int] = field(default_factory=dict)
    _outcomes: list[Outcome] | None = None
    _open: OpenCase | None = None

    @property
    def case_id(self) -> str:
        return self.state.case_id

    def outcomes(self, apology: ApologyRule) -> list[Outcome]:
        """The case's outcomes (``apology``: the apology rule, the same for every call)."""
        if self._outcomes is None:
            self._outcomes, self._open = case_outcomes_and_open(self.state, ALL_ATTRIBUTED_US, 0, apology=apology)
        return self._outcomes

    def open_entry(self, apology: ApologyRule) -> OpenCase | None:
        """``open_case`` of the case (cached with its outcomes)."""
        self.outcomes(apology)
        return self._open

    def add(self, event: CaseEvent, offset: int, apology: ApologyRule) -> tuple[list[Outcome], list[Outcome]]:
        """Add the event; (outcomes before, outcomes after)."""
        before = self.outcomes(apology)
        self.state.add(event)
        self.offsets[event.event_id] = offset
        self._outcomes = None
        return before, self.outcomes(apology)

    def to_bytes(self) -> bytes:
        record = self.state.to_dict()
        record["offsets"] = self.offsets
        return orjson.dumps(record)  # compact UTF-8, as json.dumps(separators=(",", ":"), ensure_ascii=False)

    @classmethod
    def from_bytes(cls, data: bytes) -> "StoredCase":
        record = orjson.loads(data)
        return cls(CaseState.from_dict(record), record.get("offsets", {}))


class CaseRepository(Protocol):
    def get(self, partition: int, case_id: str) -> StoredCase | None: ...

    def put(self, partition: int, case: StoredCase) -> None: ...


class DictRepository:
    """A ``CaseRepository`` on plain dicts (unit tests, benchmarks)."""

    def __init__(self) -> None:
        self.records: dict[int, dict[str, bytes]] = {}

    def get(self, partition: int, case_id: str) -> StoredCase | None:
        data = self.records.get(partition, {}).get(case_id)
        return StoredCase.from_bytes(data) if data is not None else None

    def put(self, partition: int, case: StoredCase) -> None:
        self.records.setdefault(partition, {})[case.case_id] = case.to_bytes()


def _holidays() -> WorkCalendar:
    """deploy/holidays.csv as a WorkCalendar, read once (weekends only if it cannot be read)."""
    if not _HOLIDAYS:
        try:
            _HOLIDAYS.append(load_calendar())
        except UserError:
            _HOLIDAYS.append(WorkCalendar())
    return _HOLIDAYS[0]


_HOLIDAYS: list[WorkCalendar] = []


class _IdEntry(NamedTuple):
    case_id: str
    occurred_at_us: int


class LiveState:
    """Everything derived from the case records of the partitions this worker holds."""

    def __init__(
        self,
        *,
        hold_retention_us: int,
        dedupe_retention_us: int,
        clock_us: int = 0,
        apology: ApologyRule | None = None,
        calendar: WorkCalendar | None = None,
    ) -> None:
        """``apology``: the apology rule (None: ``deploy/holidays.csv`` and the default lead);
        ``calendar``: the working days of "sắp trễ" (None: the holidays file)."""
        calendar = calendar if calendar is not None else _holidays()
        self.apology = apology if apology is not None else ApologyRule(calendar, DEFAULT_APOLOGY_LEAD)
        self.view = IndicatorView(hold_retention_us=hold_retention_us, clock_us=clock_us)
        # the working days of "sắp trễ" (due soon): the holidays file unless given
        self.open_cases = OpenCaseIndex(calendar)
        self.ids: dict[str, _IdEntry] = {}
        self.dedupe_retention_us = dedupe_retention_us
        self.event_time: int | None = None  # latest accepted occurred_at (event clock)
        self.partition_clock: dict[int, int] = {}
        self._pruned_day: int | None = None

    def set_open(self, case: StoredCase) -> None:
        """Record whether the case is open (open cases count in ``on_time_766`` at T, and
        in ``apology_coverage`` once late)."""
        entry = case.open_entry(self.apology)
        self.open_cases.set(case.case_id, entry)
        if entry is not None:
            self.view.ensure_cell(ON_TIME_766, entry.unit, entry.sector)
            if entry.late_766_after_us() is not None:
                self.view.ensure_cell(APOLOGY_COVERAGE, entry.unit, entry.sector)

    def extra_at(self, now_us: int) -> dict[tuple[str, str, str], tuple[int, int]]:
        """What the view's totals need beside the outcomes: open cases of ``on_time_766``
        and ``apology_coverage``."""
        return self.open_cases.extra_at(now_us)

    def add_case(self, partition: int, case: StoredCase, now_us: int) -> None:
        """Count a whole case (rebuild on assignment)."""
        self.view.apply_all((outcome, 1) for outcome in case.outcomes(self.apology))
        self.set_open(case)
        horizon = now_us - self.dedupe_retention_us
        for row in case.state.events:
            if row.t >= horizon:
                self.ids[row.event_id] = _IdEntry(case.case_id, row.t)

    def see_time(self, partition: int, occurred_at_us: int) -> None:
        if occurred_at_us > self.partition_clock.get(partition, -(2**63)):
            self.partition_clock[partition] = occurred_at_us
        if self.event_time is None or occurred_at_us > self.event_time:
            self.event_time = occurred_at_us

    def prune_ids(self, now_us: int) -> int:
        """Once per local day of the clock: forget ids older than the dedupe retention."""
        today = local_day_number(now_us)
        if self._pruned_day == today:
            return 0
        self._pruned_day = today
        horizon = now_us - self.dedupe_retention_us
        expired = [event_id for event_id, entry in self.ids.items() if entry.occurred_at_us < horizon]
        for event_id in expired:
            del self.ids[event_id]
        return len(expired)


@dataclass(slots=True)
class Result:
    outcome: str
    event: CaseEvent | None = None
    reason: str | None = None
    detail: str | None = None
    case: StoredCase | None = None
    unit_label: str | None = None  # the unit the event is attributed to (else "unknown")
    sector_label: str | None = None  # a received's sector as stored with it ("unknown" outside the registry)


class Processor:
    """Decides accepted / invalid / duplicate / redelivered and keeps the live state."""

    def __init__(
        self,
        repository: CaseRepository,
        live: LiveState,
        *,
        event_clock: bool,
        unit_label: Callable[[str, int], str] | None = None,
        sectors: SectorLabels | None = None,
    ) -> None:
        """``unit_label(unit_id, occurred_at_us)``: the unit an event is attributed to —
        its own when the registry has it in force then, else ``unknown`` (bounded
        label values); None: every unit as given (unit tests). ``sectors``: the sector
        registry; a received's code outside it is mapped before the case record and
        the view see it (``core.sectors``); None: every sector as given (unit tests)."""
        self.repository = repository
        self.live = live
        self.event_clock = event_clock
        self.unit_label = unit_label
        self.sectors = sectors

    def process(self, message: RawMessage, *, wall_now_us: int) -> Result:
        try:
            event = parse_event(message.value, key=message.key, now_us=wall_now_us)
        except InvalidEvent as exc:
            return Result(INVALID, reason=exc.reason, detail=exc.detail)

        label = self.unit_label(event.unit_id, event.occurred_at_us) if self.unit_label else event.unit_id
        sector = event.fields.get("sector")
        sector_label = sector if self.sectors is None else self.sectors.public(sector)
        case = self.repository.get(message.partition, event.case_id)
        if case is not None and event.event_id in case.state:
            if case.offsets.get(event.event_id) == message.offset:
                return Result(REDELIVERED, event=event, case=case, unit_label=label, sector_label=sector_label)
            return Result(DUPLICATE, event=event)
        live = self.live
        known = live.ids.get(event.event_id)
        if known is not None and known.case_id != event.case_id:
            return Result(DUPLICATE, event=event)

        if case is None:
            case = StoredCase(CaseState.new(event.case_id))
        attributed = event if label == event.unit_id else event.with_unit(label)
        if sector is not None and self.sectors is not None and sector_label != sector:
            attributed = attributed.with_sector(self.sectors.live(sector))  # bounded state (issue 20)
        before, after = case.add(attributed, message.offset, live.apology)
        live.view.apply_all(diff_outcomes(before, after))
        live.set_open(case)
        live.ids[event.event_id] = _IdEntry(event.case_id, event.occurred_at_us)
        live.see_time(message.partition, event.occurred_at_us)
        self.repository.put(message.partition, case)
        if self.event_clock:
            live.view.advance(live.event_time)
        return Result(ACCEPTED, event=event, case=case, unit_label=label, sector_label=sector_label)


def rebuild(
    live: LiveState,
    cases: Iterable[tuple[int, StoredCase]],
    clocks: Mapping[int, int],
    *,
    event_clock: bool,
    wall_now_us: int,
    previous_clock_us: int = 0,
    chunk: int = 2_000,
) -> Iterator[int]:
    """Fill a fresh ``LiveState`` from case records (on assignment).

    ``clocks``: each partition's latest accepted occurred_at (stored beside the
    records), so the view is built at its final clock in one pass; with the event
    clock, T never goes back (``previous_clock_us``). A generator: it yields the
    number of cases counted so far every ``chunk`` cases and at the end, so an async
    caller can let other work run in between."""
    for partition, clock in clocks.items():
        live.see_time(partition, clock)
    now = max(previous_clock_us, live.event_time or 0) if event_clock else wall_now_us
    live.view.advance(now)
    count = 0
    for partition, case in cases:
        live.add_case(partition, case, now)
        count += 1
        if count % chunk == 0:
            yield count
    yield count
