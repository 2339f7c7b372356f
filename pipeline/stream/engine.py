"""The worker's engine process: everything the worker does with a message, apart from
Faust (see ``worker.py`` for the Faust process, ``channel.py`` for the link).

Per batch (in the order the Faust process sent them): process each message (the live
view changes at once), buffer the ClickHouse rows and the changed case records, answer
``Done`` (what was skipped or rejected). A flush (every ``TTHC_BATCH_SIZE`` messages or
``TTHC_FLUSH_INTERVAL`` seconds) hands them to the ``Checkpoint`` (``checkpoint.py``:
facts, then case records, then ``Flushed`` so the Faust process settles dead letters
and acks). On every assignment the engine recovers the records of its partitions and
rebuilds the live view from them before it processes a message.

The parts around it: ``batches.process_batch`` (a batch through the processor into the
rows of the next flush), ``facts.FactStore`` (the ClickHouse thread), ``answers.Answers``
(the questions of the Faust process), ``gcpolicy.FreezePolicy`` (the collector kept off
the live state).

Started by the Faust process with its end of a socket pair; it stops when that end
closes (and the kernel kills it if its parent dies), so it never outlives the worker.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import logging
import os
import signal
import socket
import sys
import time

import uvloop

from pipeline.config import Settings
from pipeline.core.cases import case_summary
from pipeline.core.registry import UnitRegistry
from pipeline.core.sectors import SectorLabels
from pipeline.core.targets import Targets
from pipeline.core.view import indicator_figures
from pipeline.secrets import install_log_redaction
from pipeline.store.sqlreader import SqlReader
from pipeline.store.units import load_units
from pipeline.stream import channel, gcpolicy
from pipeline.stream.answers import Answers
from pipeline.stream.checkpoint import RECORDS, Checkpoint, Flush
from pipeline.stream.facts import FactStore
from pipeline.stream.guard import Problems
from pipeline.stream.labels import bound_figures, registered_sectors
from pipeline.stream.metrics import LiveExposition, LiveFigures, WorkerMetrics
from pipeline.stream.batches import Pending, process_batch
from pipeline.stream.processor import Processor, rebuild
from pipeline.stream.score_metrics import score_exposition
from pipeline.stream.repository import CachedRepository, case_store, new_live_state, stored_cases, stored_clocks
from pipeline.stream.retry import SOON
from pipeline.targets_file import load_targets

log = logging.getLogger("pipeline.worker")
PENDING_MAX_BATCHES = 4  # rows of this many full batches wait at most for a running flush
FENCED = "fenced"  # the problem shown while partitions were lost to another worker
FENCED_REJOIN_S = 120.0  # a fenced worker not assigned anew within this time stops


def _now_us() -> int:
    return time.time_ns() // 1000


class Engine:
    def __init__(self, settings: Settings, targets: Targets, link: channel.Link) -> None:
        self.settings = settings
        self.targets = targets
        self.link = link
        self.metrics = WorkerMetrics(self._current_figures)
        self.exposition = LiveExposition(targets)
        self._score: tuple[object, str] = (None, "")  # (the view it was computed on, the 766 families)
        self.problems = Problems()
        self.facts = FactStore(settings, self.metrics)
        self.sql_reader = SqlReader(settings.effective_clickhouse_dsn)  # POST /sql: never on the writer's thread
        self.store = case_store(settings)
        self.repository = CachedRepository(self.store)
        self.checkpoint = Checkpoint(
            write_facts=self.facts.write, store=self.store, repository=self.repository, problems=self.problems,
            acknowledge=self._acknowledge, on_facts_failure=lambda _exc: self.metrics.write_errors.inc(),
        )
        self.answers = Answers(self)
        self.gc = gcpolicy.FreezePolicy()
        self.live = new_live_state(settings, 0)
        registry = UnitRegistry(load_units(settings.units_file))
        self.processor = Processor(
            self.repository, self.live, event_clock=settings.clock == "event", unit_label=registry.label,
            sectors=SectorLabels(registered_sectors()),  # sectors outside the registry mapped at the door
        )
        self.pending = Pending()
        self.flush_lock = asyncio.Lock()
        self.store_started = asyncio.Event()
        self.view_ready = asyncio.Event()  # the live state matches the assignment
        self.partitions: frozenset[int] = frozenset()  # partitions the live state covers
        self.assigned: frozenset[int] = frozenset()  # partitions of the current assignment (none while revoked)
        self.generation = 0
        self.rebuilding = False
        self.rebuilds = 0
        self.last_rebuild_s: float | None = None
        self.processed = 0
        self.writing = 0
        self.failure: str | None = None
        self.fenced: frozenset[int] = frozenset()  # partitions lost to another worker, until the next assignment
        self.batches: asyncio.Queue = asyncio.Queue()
        self._flush_task: asyncio.Future | None = None
        self._tasks: set[asyncio.Future] = set()

    # -- lifecycle -----------------------------------------------------------------
    async def run(self) -> None:
        for coro in (self._start_store(), self._start_state(), self._process_loop(), self._timers()):
            self._spawn(coro)
        while True:
            try:
                message = await self.link.receive()
            except EOFError:
                return  # the Faust process is gone or stopping: so is the engine
            if isinstance(message, channel.Batch):
                await self.batches.put(message)
            elif isinstance(message, channel.Assign):
                self.assigned = message.partitions
                self.view_ready.clear()
                self.generation += 1
                self._spawn(self._rebuild(self.generation, message.partitions))
            elif isinstance(message, channel.Revoke):
                self._spawn(self._revoke(message.request))
            elif isinstance(message, channel.QUESTIONS):
                self._spawn(self._answer(message))

    def _spawn(self, coro) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Future) -> None:
        self._tasks.discard(task)
        if task.cancelled() or task.exception() is None:
            return
        self._spawn(self.fail(task.exception()))

    async def fail(self, exc: BaseException | str) -> None:
        """Tell the Faust process why, and stop: a worker that silently stops is worse."""
        reason = exc if isinstance(exc, str) else f"{type(exc).__name__}: {exc}"
        if self.failure is None:
            self.failure = reason
            if not isinstance(exc, str):
                log.error("engine failed; stopping the worker", exc_info=exc)
        try:
            await asyncio.wait_for(self.link.send(channel.Failed(reason)), 5)
        finally:
            os._exit(1)

    async def _start_store(self) -> None:
        try:
            await self.facts.start()
        except Exception as exc:  # no store, no worker: stop with the reason
            log.error("error: cannot open ClickHouse: %s", exc)
            await self.fail(f"cannot open ClickHouse: {exc}")

    async def _start_state(self) -> None:
        try:
            await SOON.run(RECORDS, self.store.start, self.problems)
        except Exception as exc:
            log.error("error: cannot open the case changelog: %s", exc)
            await self.fail(f"cannot open the case changelog: {exc}")
            return
        self.store_started.set()

    # -- assignment: recover the records, rebuild the live view ---------------------
    async def _revoke(self, request: int) -> None:
        # Write what is buffered while this worker still owns the partitions: the next
        # owner recovers their records only after the answer, so writes from here can
        # never land behind its own in a changelog. No batch is processed from the
        # first line on (until the next assignment's rebuild), so the flush takes all.
        self.view_ready.clear()
        self.generation += 1
        self.assigned = frozenset()
        await self.flush()
        await self.link.send(channel.Revoked(request))

    async def _rebuild(self, generation: int, partitions: frozenset[int]) -> None:
        """Recover the records of ``partitions`` and derive a fresh live state from them."""
        self.rebuilding = True
        try:
            await self.store_started.wait()
            started = time.monotonic()
            async with self.flush_lock:  # no commit while the writers change
                if generation != self.generation:
                    return
                # first fence any earlier owner, then read: the recovery sees all it committed
                await SOON.run(RECORDS, lambda: self.store.own(partitions), self.problems)
            for partition in sorted(partitions):
                stats = await SOON.run(RECORDS, lambda p=partition: self.store.recover(p), self.problems)
                log.info("partition %d: %d changelog records recovered", partition, stats.records)
                if generation != self.generation:
                    return
            self.store.close_partitions_except(partitions)
            live = new_live_state(self.settings, 0)
            count = 0
            for count in rebuild(
                live,
                stored_cases(self.store, partitions),
                stored_clocks(self.store, partitions),
                event_clock=self.settings.clock == "event",
                wall_now_us=_now_us(),
                previous_clock_us=self.live.view.clock_us,
            ):
                await asyncio.sleep(0)
                if generation != self.generation:
                    return
            self.live = live
            self.processor.live = live
            self.repository.clear()
            # the rebuilt state is long-lived: keep the cyclic collector from walking it
            # again and again (a full collection over millions of rows costs seconds)
            self.gc.freeze()
            self.partitions = partitions
            if self.fenced:
                self.fenced = frozenset()
                self.problems.recovered(FENCED)
            self.rebuilds += 1
            self.last_rebuild_s = time.monotonic() - started
            self.view_ready.set()
            log.info("live state rebuilt from %d cases of partitions %s in %.2fs",
                     count, sorted(partitions), self.last_rebuild_s)
        finally:
            if generation == self.generation:
                self.rebuilding = False

    # -- batches -------------------------------------------------------------------
    async def _process_loop(self) -> None:
        while True:
            batch = await self.batches.get()
            if not self.view_ready.is_set():
                await self.view_ready.wait()
            done = self._process_batch(batch)
            await self.link.send(done)
            if len(self.pending) >= PENDING_MAX_BATCHES * self.settings.batch_size:
                # the writes are behind (a slow or failing store): wait for them, so the
                # rows held in memory stay bounded and nothing more is read meanwhile
                previous = self._flush_task
                if previous is not None and not previous.done():
                    await asyncio.shield(previous)
            self._flush_behind()

    def _flush_behind(self, _finished: asyncio.Future | None = None) -> None:
        """Start a flush when a batch is full and none is running: it runs while the next
        batches are processed (its ClickHouse write is on the store thread, its changelog
        send on the broker), and when it ends the next full batch starts at once. One
        flush at a time: they write, and the Faust process acks, in order."""
        previous = self._flush_task
        if previous is not None and not previous.done():
            return
        if len(self.pending) < self.settings.batch_size:
            return
        self._flush_task = asyncio.ensure_future(self.flush())
        self._flush_task.add_done_callback(self._task_done)
        self._flush_task.add_done_callback(self._flush_behind)

    def _process_batch(self, batch: channel.Batch) -> channel.Done:
        before = self.pending.count
        done = process_batch(batch, self.pending, self.processor, self.partitions, self.settings.topic,
                             self.metrics)
        self.processed += self.pending.count - before
        return done

    async def _timers(self) -> None:
        """The flush interval (and the daily prune of old ids), and the snapshots."""
        next_snapshot = time.monotonic() + self.settings.snapshot_interval
        while True:
            await asyncio.sleep(min(self.settings.flush_interval, self.settings.snapshot_interval))
            pending = self.pending
            if pending.count and time.monotonic() - pending.started >= self.settings.flush_interval:
                await self.flush()
            if self.view_ready.is_set():
                self.live.prune_ids(self.clock_us())
            if time.monotonic() >= next_snapshot:
                next_snapshot = time.monotonic() + self.settings.snapshot_interval
                await self._write_snapshots()

    # -- the flush: the checkpoint writes what the batches buffered -------------------
    async def flush(self) -> None:
        async with self.flush_lock:
            batch, self.pending = self.pending, Pending()
            records = self.repository.take_staged()
            if not batch.count and not records:
                return
            self.writing = len(batch)
            await self.facts.wait_ready()
            now_us = self.clock_us()
            live = self.live
            flush = Flush(
                events=batch.events,
                invalid=batch.invalid,
                cases=[case_summary(case.state, now_us) for case in batch.cases.values()],
                records=records,
                clocks={p: live.partition_clock[p] for p in records if p in live.partition_clock},
                written_ms=time.time_ns() // 1_000_000,
                upto=batch.last_seq,
            )
            await self.checkpoint.commit(flush)
            written = time.time()
            for timestamp in batch.timestamps:
                self.metrics.latency.observe(max(0.0, written - timestamp))
            self.writing = 0
            self.gc.freeze()

    async def _acknowledge(self, flush: Flush) -> None:
        """The engine's end of the checkpoint: the Faust process settles the dead letters
        and acks every batch up to ``flush.upto`` (``Worker._settle``), except the
        messages of partitions fenced off, and then rejoins the group."""
        if flush.fenced:
            self._drop_fenced(flush.fenced)
        if flush.upto or flush.fenced:
            await self.link.send(channel.Flushed(flush.upto, flush.fenced))

    def _drop_fenced(self, partitions: frozenset[int]) -> None:
        """Another worker owns ``partitions`` now (its writer fenced this one's): their
        records are not written, their messages not acked, and the live view, which
        counts them in, is neither exported nor used until the next assignment rebuilds
        it from the changelog (the Faust process rejoins the group for that)."""
        lost = partitions & self.assigned
        if not lost:  # rows of an assignment that is over (revoked since): their messages are read again
            log.warning("records of partitions %s not written: no longer held here", sorted(partitions))
            return
        self.fenced |= lost
        self.partitions = self.partitions - lost
        self.view_ready.clear()
        self.generation += 1  # a rebuild under way is for an assignment that is over
        text = (f"partitions {sorted(self.fenced)} were taken over by another worker: "
                "their state is dropped, the worker rejoins its group")
        log.error("fenced: %s", text)
        self.problems.failing(FENCED, text)
        self._spawn(self._await_assignment(self.generation))

    async def _await_assignment(self, generation: int) -> None:
        """A fenced worker that gets no new assignment stops (its supervisor restarts it)."""
        await asyncio.sleep(FENCED_REJOIN_S)
        if self.generation == generation and self.fenced:
            await self.fail(f"fenced from partitions {sorted(self.fenced)} and no new assignment "
                            f"within {FENCED_REJOIN_S:.0f}s")

    # -- gauges, snapshots, answers --------------------------------------------------
    def clock_us(self) -> int:
        if self.settings.clock == "event":
            return self.live.view.clock_us
        return _now_us()

    def view_at_clock(self):
        """(view, open-case counts, on_time_766 open part) at the clock, or None while
        the live state is being rebuilt: what both the exporter and the snapshots read."""
        if not self.view_ready.is_set():
            return None
        view = self.live.view
        view.advance(self.clock_us())
        return view, self.live.open_cases.counts(view.clock_us, view.units()), self.live.extra_at(view.clock_us)

    def _current_figures(self) -> LiveFigures | None:
        current = self.view_at_clock()
        if current is None:
            return None
        view, open_counts, extra = current
        return LiveFigures(
            clock_us=view.clock_us,
            indicators=bound_figures(indicator_figures(view, self.targets, extra), self.targets),
            open_cases=open_counts,
        )

    def score_text(self) -> str:
        """The 766 score families of the last snapshot tick, while they describe the live
        view as it is now (a rebuilt view, after a rebalance, has none until the next tick)."""
        view, text = self._score
        return text if view is self.live.view and self.view_ready.is_set() else ""

    async def _write_snapshots(self) -> None:
        current = self._current_figures()
        if current is not None:  # a monthly score: refreshed with the snapshots, not per scrape
            self._score = (self.live.view, score_exposition(current))
        if not self.facts.ready:
            return
        if current is None or not current.indicators:
            return
        try:
            await self.facts.write_snapshots(current.indicators, current.clock_us)
        except Exception as exc:  # a failed snapshot is skipped (counted, shown), never fatal
            self.metrics.write_errors.inc()
            self.problems.failing("ClickHouse write", exc)
            log.error("snapshot write failed; skipped: %s", exc)

    async def _answer(self, ask: channel.Question) -> None:
        await self.link.send(await self.answers.answer(ask))

    def health(self) -> dict:
        return {
            "ready": self.facts.ready and self.view_ready.is_set(),
            "failure": self.failure,
            "clock_us": self.clock_us(),
            "processed": self.processed,
            "pending": len(self.pending) + self.writing,
            "flushing": self.flush_lock.locked(),
            "rebuilding": self.rebuilding,
            "partitions": sorted(self.partitions),
            "fenced": sorted(self.fenced),
            "rebuilds": self.rebuilds,
            "last_rebuild_seconds": self.last_rebuild_s,
            "view_scopes": len(self.live.view),  # bounded by the registries (issue 20)
            "problems": self.problems.entries(),
        }


def _die_with_parent(parent: int) -> None:
    """SIGKILL this process when the worker's process dies, however it dies (Linux)."""
    PR_SET_PDEATHSIG = 1
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # pragma: no cover - not Linux: the closed link still stops it
        pass
    if os.getppid() != parent:  # the parent died before the line above
        os._exit(1)


async def _main(fd: int) -> None:
    sock = socket.socket(fileno=fd)
    link = await channel.Link.open(sock)
    settings = await link.receive()
    engine = Engine(settings, load_targets(settings.targets_file), link)
    await engine.run()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipeline.stream.engine")
    parser.add_argument("--fd", type=int, required=True)
    parser.add_argument("--parent", type=int, required=True)
    args = parser.parse_args(argv)
    _die_with_parent(args.parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the Faust process decides when to stop (it closes the link)
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    gcpolicy.configure()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="[%(asctime)s] [%(process)d] [%(levelname)s] %(message)s")
    install_log_redaction()
    try:
        uvloop.run(_main(args.fd))
    except KeyboardInterrupt:  # pragma: no cover
        pass
    os._exit(0)  # no interpreter teardown: the store thread and the clients just stop


if __name__ == "__main__":
    sys.exit(main())
