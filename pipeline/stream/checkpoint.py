"""The checkpoint: the one place that knows the order of a flush.

1. facts rows to ClickHouse (idempotent: ``ReplacingMergeTree``, the same rows again
   replace themselves);
2. the changed case records to the changelog (``state.CaseStore``: acks=all, waited
   for; then the local cache);
3. dead letters (bounded, never blocking the processing), then
4. the acks of the messages, after which Faust commits their offsets.

Each step is retried by the one policy (``retry.RETRY``) until it succeeds, and the
next step starts only then: a crash at any point leaves the messages unacked, they are
read again and recognised as redeliveries, and the state is the same.

In the worker, steps 1-2 run in the engine process and steps 3-4 in the Faust process
(which holds the messages and the consumer): the engine's part ends with
``acknowledge(flush)``, which sends ``channel.Flushed(upto)``; the Faust process's
``Worker._settle`` then awaits the batch's dead letters (``guard.DeadLetters.settle``)
and acks the messages up to ``upto``, in order. ``backfill`` has no messages to ack
(its rejected lines go to ``invalid_events``): its ``acknowledge`` is empty.

A partition whose changelog writes were fenced (another worker owns it now, see
``state.Fenced``) is not retried: its records are dropped and ``acknowledge`` gets the
fenced partitions, so their messages are never acked by this worker.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Awaitable, Callable

from pipeline.core.cases import CaseSummary
from pipeline.store.writer import AcceptedEvent, InvalidRow
from pipeline.stream.repository import CachedRepository
from pipeline.stream.retry import RETRY, ProblemBoard, RetryPolicy
from pipeline.stream.state import CaseStore, Fenced

FACTS, RECORDS = "ClickHouse write", "changelog write"
#: above every ``cases`` version written before (wall-clock nanoseconds, below 2**61)
CASE_VERSION_BASE = 1 << 63
_COUNT_BITS, _TIME_BITS = 21, 42  # event count up to 2,097,151; milliseconds until 2109


def case_version(event_count: int, written_ms: int) -> int:
    """The ``cases`` row version (``ReplacingMergeTree(version)``: the highest wins): the
    case's event count first, the write time second. A case only gains events, so a row
    written late from an older state (a worker that lost the partition and does not know
    it yet writes its facts before its fenced changelog write) never replaces a row of
    the case's newer state; between rows of the same events the later write wins."""
    count = min(event_count, (1 << _COUNT_BITS) - 1)
    return CASE_VERSION_BASE | count << _TIME_BITS | (written_ms & ((1 << _TIME_BITS) - 1))


@dataclass
class Flush:
    """Everything one checkpoint writes: the facts rows, the cases rows, the changed case
    records (partition -> case id -> record) and each partition's clock."""

    events: list[AcceptedEvent] = field(default_factory=list)
    invalid: list[InvalidRow] = field(default_factory=list)
    cases: list[CaseSummary] = field(default_factory=list)
    records: dict[int, dict[str, bytes]] = field(default_factory=dict)
    clocks: dict[int, int] = field(default_factory=dict)
    written_ms: int = 0  # wall time of the write: the second part of each case row's version
    upto: int = 0  # the last batch it covers (the engine's batch seq; 0: none)
    fenced: frozenset[int] = frozenset()  # partitions whose records another owner fenced off

    def case_version(self, summary: CaseSummary) -> int:
        return case_version(summary.event_count, self.written_ms)

    def __bool__(self) -> bool:
        return bool(self.events or self.invalid or self.cases or self.records or self.upto)


class Checkpoint:
    def __init__(
        self,
        *,
        write_facts: Callable[[Flush], Awaitable[None]],
        store: CaseStore,
        repository: CachedRepository,
        problems: ProblemBoard,
        acknowledge: Callable[[Flush], Awaitable[None]] | None = None,
        on_facts_failure: Callable[[BaseException], None] | None = None,
        policy: RetryPolicy = RETRY,
    ) -> None:
        self._write_facts = write_facts
        self._store = store
        self._repository = repository
        self._problems = problems
        self._acknowledge = acknowledge
        self._on_facts_failure = on_facts_failure
        self._policy = policy

    async def commit(self, flush: Flush) -> Flush:
        """Write ``flush`` in the order above; returns it with ``fenced`` set."""
        # 1. facts
        await self._policy.run(FACTS, lambda: self._write_facts(flush), self._problems, self._on_facts_failure)
        # 2. case records (the truth)
        fenced = await self._policy.run(RECORDS, lambda: self._write_records(flush), self._problems)
        self._repository.committed(flush.records)
        flush.fenced = fenced
        # 3-4. dead letters, then acks (the Faust process's part in the worker)
        if self._acknowledge is not None:
            await self._acknowledge(flush)
        return flush

    async def _write_records(self, flush: Flush) -> frozenset[int]:
        try:
            await self._store.commit(flush.records, flush.clocks)
        except Fenced as exc:  # the other partitions are written; these never will be by this worker
            return exc.partitions
        except Exception:
            await self._store.renew_producer()  # a fresh producer for the next attempt
            raise
        return frozenset()
