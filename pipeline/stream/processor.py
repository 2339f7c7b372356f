"""What the worker does with one message, free of Faust, Kafka and ClickHouse.

The Faust agent (``stream.worker``) hands each message here together with its state
tables; anything shaped like a ``MutableMapping`` works, so unit tests use dicts.
The processor decides accepted / invalid / duplicate, updates the case state and the
bucketed counters, and returns the rows the writer must store. It never does I/O.

Exactly-once *effects* (Faust's exactly-once mode is unreliable):
- ``seen`` maps each accepted event id to the (partition, offset) that first carried it.
  The same id at the same position is a redelivery after a crash (the state already holds
  it; only the ClickHouse row is written again, which the replacing tables absorb); the
  same id anywhere else is a duplicate and changes nothing.
- The case state also knows its event ids, so a duplicate older than the ``seen``
  retention still changes nothing.
- Counters change by the *difference* between the case's outcomes before and after the
  event, so arrival order never matters and re-deriving a case is idempotent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import MutableMapping

from pipeline.contract.events import CaseEvent, InvalidEvent, parse_event
from pipeline.core.cases import CaseState, case_outcomes, case_summary
from pipeline.core.outcomes import diff_outcomes
from pipeline.core.windows import BucketCounters, local_day_number

DAY_US = 86_400 * 1_000_000
HOUSEKEEPING_DAYS = 7
# Held outcomes are stored at once with sector "unknown" and only *counted* once they
# are older than the hold retention (see gauges.py), so the state needs no timed sweep:
# the outcomes of a case are a function of its events alone.
ALL_ATTRIBUTED_US = 2**62

ACCEPTED = "accepted"
INVALID = "invalid"
DUPLICATE = "duplicate"
REDELIVERED = "redelivered"


@dataclass(frozen=True, slots=True)
class RawMessage:
    key: bytes | None
    value: bytes | None
    partition: int
    offset: int


@dataclass(slots=True)
class Result:
    outcome: str
    event: CaseEvent | None = None
    reason: str | None = None
    detail: str | None = None
    case: CaseState | None = None


@dataclass
class Tables:
    """The worker's state. Values are JSON-able (Faust tables serialise them)."""

    cases: MutableMapping[str, dict]
    seen: MutableMapping[str, list]
    counters: MutableMapping[str, dict]
    open_cases: MutableMapping[str, str]
    clock: MutableMapping[str, int] = field(default_factory=dict)


class Processor:
    def __init__(self, tables: Tables, *, dedupe_retention_days: int) -> None:
        self.tables = tables
        self.dedupe_retention_us = dedupe_retention_days * DAY_US
        self._pruned_day: dict[int, int] = {}
        self._event_time: int | None = None

    # -- the clock -----------------------------------------------------------------
    def event_time(self) -> int | None:
        """Latest accepted ``occurred_at`` over all partitions (the event clock's T)."""
        if self._event_time is None:  # first call: read what the table recovered
            values = list(self.tables.clock.values())
            self._event_time = max(values) if values else None
        return self._event_time

    def _advance_clock(self, partition: int, occurred_at_us: int) -> None:
        key = str(partition)
        if occurred_at_us > self.tables.clock.get(key, -(2**63)):
            self.tables.clock[key] = occurred_at_us
            current = self.event_time()
            if current is None or occurred_at_us > current:
                self._event_time = occurred_at_us

    # -- one message ---------------------------------------------------------------
    def process(self, message: RawMessage, *, wall_now_us: int) -> Result:
        try:
            event = parse_event(message.value, key=message.key, now_us=wall_now_us)
        except InvalidEvent as exc:
            return Result(INVALID, reason=exc.reason, detail=exc.detail)

        first_seen = self.tables.seen.get(event.event_id)
        if first_seen is not None:
            if first_seen[0] == message.partition and first_seen[1] == message.offset:
                stored = self.tables.cases.get(event.case_id)
                case = CaseState.from_dict(stored) if stored is not None else None
                return Result(REDELIVERED, event=event, case=case)
            return Result(DUPLICATE, event=event)

        stored = self.tables.cases.get(event.case_id)
        case = CaseState.from_dict(stored) if stored is not None else CaseState.new(event.case_id)
        if event.event_id in case:  # older than the seen-set's retention
            return Result(DUPLICATE, event=event)
        before = case_outcomes(case, ALL_ATTRIBUTED_US, 0)
        case.add(event)
        after = case_outcomes(case, ALL_ATTRIBUTED_US, 0)

        counters = BucketCounters(self.tables.counters, shard=message.partition)
        for outcome, sign in diff_outcomes(before, after):
            counters.apply(outcome, sign)

        self.tables.cases[event.case_id] = case.to_dict()
        self.tables.seen[event.event_id] = [message.partition, message.offset, event.occurred_at_us]
        self._track_open(case, event.case_id)
        self._advance_clock(message.partition, event.occurred_at_us)
        return Result(ACCEPTED, event=event, case=case)

    def _track_open(self, case: CaseState, case_id: str) -> None:
        summary = case_summary(case, 0)
        if summary.status == "open":
            if self.tables.open_cases.get(case_id) != summary.unit:
                self.tables.open_cases[case_id] = summary.unit
        elif case_id in self.tables.open_cases:
            del self.tables.open_cases[case_id]

    # -- housekeeping, run inside stream iteration for the current partition ----------
    def housekeeping(self, partition: int, now_us: int) -> int:
        """Every ``HOUSEKEEPING_DAYS`` of T per partition: prune old counter detail and ids.

        Pruning late only keeps more than needed, so it runs rarely: each run walks the
        partition's counters and seen ids. Only keys of ``partition`` are touched: their
        changelog partition is the current event's, so no worker writes another's state.
        """
        today = local_day_number(now_us)
        last = self._pruned_day.get(partition)
        if last is not None and today - last < HOUSEKEEPING_DAYS:
            return 0
        self._pruned_day[partition] = today
        changed = BucketCounters(self.tables.counters, shard=partition).prune(now_us)
        horizon = now_us - self.dedupe_retention_us
        expired = [
            event_id
            for event_id, (p, _offset, occurred_at_us) in self.tables.seen.items()
            if p == partition and occurred_at_us < horizon
        ]
        for event_id in expired:
            del self.tables.seen[event_id]
        return changed + len(expired)
