"""The Faust worker: a thin shell around :class:`~pipeline.stream.processor.Processor`.

Faust carries the stream, the consumer group and the offsets; the worker keeps no
Faust table. Per message: process it (the live view changes at once), send invalid
ones to the dead-letter topic, buffer the ClickHouse rows and the changed case
records. A flush (every ``TTHC_BATCH_SIZE`` messages or ``TTHC_FLUSH_INTERVAL``
seconds) writes the rows, then the case records to their changelog
(``state.CaseStore``, the one durable truth), and only then acks the messages, so
committed offsets never run ahead of the facts or the truth. On every assignment
the worker recovers the records of its partitions and rebuilds the live view from
them before it processes a message. ClickHouse calls run on one dedicated thread:
the chDB engine is in-process and its client is synchronous.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import faust

from pipeline import kafka_clients
from pipeline.config import Settings, UserError
from pipeline.core.cases import case_summary
from pipeline.core.targets import Targets, TargetsError
from pipeline.targets_file import load_targets
from pipeline.core.registry import UnitRegistry
from pipeline.core.view import indicator_figures
from pipeline.store.client import connect
from pipeline.store.readonly import ClientRunner, check_read_only, json_safe
from pipeline.store.schema import ensure_schema
from pipeline.store.units import load_units, sync_units
from pipeline.store.writer import AcceptedEvent, FactWriter, InvalidRow
from pipeline.stream.metrics import CONTENT_TYPE, LiveExposition, LiveFigures, WorkerMetrics
from pipeline.stream.registry_metrics import install_registry_metrics
from pipeline.stream.processor import (
    ACCEPTED,
    DUPLICATE,
    INVALID,
    REDELIVERED,
    LiveState,
    Processor,
    RawMessage,
    StoredCase,
    rebuild,
)
from pipeline.stream.repository import CachedRepository, case_store, new_live_state, stored_cases, stored_clocks
from pipeline.stream import guard as faults, webguard  # issue 13: faults, HTTP access (own modules)
from pipeline.stream.labels import bound_figures  # issue 13
from pipeline.store.client import describe_dsn  # issue 13
from pipeline.secrets import install_log_redaction, redact  # issue 13

log = logging.getLogger("pipeline.worker")
RETRY_MAX_S = 30.0
GC_THRESHOLD = 10_000  # allocations between young-generation collections (CPython: 700)
TAKE_MAX = 2_000  # messages handed to the loop at once
TAKE_WITHIN_S = 0.05  # or what arrived within this time (bounds the event -> gauge delay)


def _now_us() -> int:
    return time.time_ns() // 1000


@dataclass
class _Pending:
    """Rows waiting for the next flush, and the Faust events to ack after it."""

    events: list[AcceptedEvent] = field(default_factory=list)
    invalid: list[InvalidRow] = field(default_factory=list)
    cases: dict[tuple[int, str], StoredCase] = field(default_factory=dict)
    acks: list[Any] = field(default_factory=list)
    timestamps: list[float] = field(default_factory=list)
    started: float = 0.0

    def __len__(self) -> int:
        return len(self.acks)


class Worker:
    def __init__(self, settings: Settings, targets: Targets) -> None:
        self.settings = settings
        self.targets = targets
        self.metrics = WorkerMetrics(self._current_figures)
        self.exposition = LiveExposition(targets)
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="clickhouse")
        self.client = None
        self.writer: FactWriter | None = None
        self.store = case_store(settings)
        self.repository = CachedRepository(self.store)
        self.live = self._new_live_state(0)
        registry = UnitRegistry(load_units(settings.units_file))
        self.processor = Processor(
            self.repository, self.live, event_clock=settings.clock == "event", unit_label=registry.label
        )
        self.pending = _Pending()
        self.flush_lock = asyncio.Lock()
        self.ready = False  # ClickHouse open
        self.store_started = False
        self.view_ready = asyncio.Event()  # the live state matches the assignment
        self.partitions: frozenset[int] = frozenset()  # partitions the live state covers
        self.generation = 0
        self.rebuilding = False
        self.rebuilds = 0
        self.last_rebuild_s: float | None = None
        self.processed = 0  # messages handled by this process (any outcome)
        self.writing = 0  # messages whose rows are being written right now
        self.failure: str | None = None
        self._flush_task: asyncio.Future | None = None
        self.web = webguard.web_access(settings)  # issue 13
        self.guard = faults.WorkerGuard(kafka_clients.aiokafka_options(settings), settings.dlq_topic, self.metrics.registry, lambda: self.app.producer)  # issue 13
        self.app = self._build_app()

    def _new_live_state(self, clock_us: int) -> LiveState:
        return new_live_state(self.settings, clock_us)

    # -- Faust wiring --------------------------------------------------------------
    def _build_app(self) -> faust.App:
        s = self.settings
        app = faust.App(
            s.app_id,
            **kafka_clients.faust_options(s),  # brokers, credentials, replication, acks=all
            store="memory://",
            datadir=str((s.data_dir / "faust" / s.app_id).resolve()),
            topic_partitions=s.partitions,
            web_bind=self.web.host,  # issue 13: TTHC_WEB_HOST (loopback unless a token guards /sql)
            web_host=self.web.host,
            web_port=s.web_port,
            consumer_auto_offset_reset="earliest",
            stream_buffer_maxsize=max(4096, s.batch_size * 2),
            broker_commit_interval=1.0,
            # A worker that died without leaving the group holds its partitions until
            # this expires; 15 s (Faust's default is 60) lets a restart resume sooner.
            broker_session_timeout=s.session_timeout,
            # Buffered messages are acked only after their rows and records are
            # written, so Faust must not wait for them on stop or rebalance; whatever
            # was not acked is read again and recognised as a redelivery.
            stream_wait_empty=False,
            producer_linger_ms=10,
        )
        # internal=True: Faust creates the topics (with these partitions) when missing,
        # so a worker started before any producer still subscribes to its input.
        raw = dict(key_serializer="raw", value_serializer="raw", partitions=s.partitions, internal=True,
                   config=kafka_clients.topic_configs(s))
        self.topic = app.topic(s.topic, **raw)
        self.dlq = app.topic(s.dlq_topic, **raw)
        # tthc_unit_info and tthc_consumer_lag (pipeline/stream/registry_metrics.py)
        install_registry_metrics(self.metrics.registry, app, topic=s.topic, units_file=s.units_file, clock_us=self.clock_us)
        app.agent(self.topic, name="process-case-events")(self._agent)
        app.on_partitions_revoked.connect(self._on_partitions_revoked)
        app.on_partitions_assigned.connect(self._on_partitions_assigned)
        app.timer(s.flush_interval)(self._flush_timer)
        app.timer(s.snapshot_interval)(self._write_snapshots)
        app.timer(faults.PROBE_INTERVAL)(self.guard.probe_broker)  # issue 13
        app.task(self._start_store)
        app.task(self._start_state)
        # Faust stores page handlers on a View class, so they must be plain functions.
        app.page("/metrics")(lambda web, request: self._metrics_page(web, request))
        app.page("/healthz")(lambda web, request: self._health_page(web, request))
        app.page("/sql")(self._sql_view())
        return app

    def clock_us(self) -> int:
        if self.settings.clock == "event":
            return self.live.view.clock_us
        return _now_us()

    async def _in_store_thread(self, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)

    async def _start_store(self) -> None:
        def start() -> None:
            self.client = connect(self.settings.effective_clickhouse_dsn)
            ensure_schema(self.client)
            self.writer = FactWriter(self.client)
            units = load_units(self.settings.units_file)
            sync_units(self.client, units)

        try:
            await self._in_store_thread(start)
        except Exception as exc:  # no store, no worker: stop with the reason
            log.error("error: cannot open ClickHouse: %s", exc)
            await self.app.crash(exc)
            return
        self.ready = True
        log.info("ClickHouse ready at %s", describe_dsn(self.settings.effective_clickhouse_dsn))

    async def _start_state(self) -> None:
        try:
            await self.dlq.maybe_declare()  # now, with the replication policy (not the broker's defaults on first use)
            await self.store.start()
        except Exception as exc:
            log.error("error: cannot open the case changelog: %s", exc)
            await self.app.crash(exc)
            return
        self.store_started = True

    # -- assignment: recover the records, rebuild the live view ---------------------
    async def _on_partitions_revoked(self, app, revoked, **kwargs) -> None:
        # Write what is buffered while this worker still owns the partitions: the next
        # owner recovers their records only after this returns, so writes from here
        # can never land behind its own in a changelog.
        await self.flush()
        self.view_ready.clear()
        self.generation += 1

    async def _on_partitions_assigned(self, app, assigned, **kwargs) -> None:
        self.view_ready.clear()
        self.generation += 1
        partitions = frozenset(tp.partition for tp in assigned if tp.topic == self.settings.topic)
        asyncio.ensure_future(self._rebuild(self.generation, partitions))

    async def _rebuild(self, generation: int, partitions: frozenset[int]) -> None:
        """Recover the records of ``partitions`` and derive a fresh live state from them."""
        self.rebuilding = True
        try:
            while not self.store_started:
                await asyncio.sleep(0.1)
            started = time.monotonic()
            for partition in sorted(partitions):
                stats = await self.store.recover(partition)
                log.info("partition %d: %d changelog records recovered", partition, stats.records)
                if generation != self.generation:
                    return
            self.store.close_partitions_except(partitions)
            live = self._new_live_state(0)
            clocks = stored_clocks(self.store, partitions)
            cases = stored_cases(self.store, partitions)
            count = 0
            for count in rebuild(
                live,
                cases,
                clocks,
                event_clock=self.settings.clock == "event",
                wall_now_us=_now_us(),
                previous_clock_us=self.live.view.clock_us,
            ):
                await asyncio.sleep(0)
                if generation != self.generation:
                    return
            if generation != self.generation:
                return
            self.live = live
            self.processor.live = live
            self.repository.clear()
            # the rebuilt state is long-lived: keep the cyclic collector from walking it
            # again and again (a full collection over millions of rows costs seconds)
            gc.collect()
            gc.freeze()
            self.partitions = partitions
            self.rebuilds += 1
            self.last_rebuild_s = time.monotonic() - started
            self.view_ready.set()
            log.info(
                "live state rebuilt from %d cases of partitions %s in %.2fs",
                count, sorted(partitions), self.last_rebuild_s,
            )
        except Exception as exc:
            self.failure = f"{type(exc).__name__}: {exc}"
            log.exception("rebuilding the live state failed; stopping the worker")
            await self.app.crash(exc)
        finally:
            if generation == self.generation:
                self.rebuilding = False

    # -- the agent -----------------------------------------------------------------
    async def _agent(self, stream) -> None:
        try:
            await self._consume(stream)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # A worker that silently stops consuming is worse than one that stops:
            # crash the app so the process exits non-zero and its supervisor restarts
            # it; unacked messages are then read again (see processor.py).
            self.failure = f"{type(exc).__name__}: {exc}"
            log.exception("processing failed; stopping the worker")
            await self.app.crash(exc)
            raise

    async def _consume(self, stream) -> None:
        # Messages come in batches (``noack_take``: at most TAKE_MAX, or what arrived
        # within TAKE_WITHIN s), so the loop's own costs are paid once per batch; each
        # message is still processed on its own (the live view changes at once) and
        # acked only by the flush that wrote its rows and its case record.
        self._stream = stream
        take_max = max(1, min(self.settings.batch_size, TAKE_MAX))
        async for events in stream.noack_take(take_max, within=TAKE_WITHIN_S):
            if not self.view_ready.is_set():
                await self.view_ready.wait()
            invalid = self._process_batch(events)
            self.guard.dead_letters.reserve(invalid)  # issue 13: the flush that takes their acks settles their dead letters
            if invalid:
                # no flush may ack a rejected message before its dead letter is sent
                async with self.flush_lock:
                    for message, result in invalid:
                        await self._send_dead_letter(message, result.reason, result.detail)
            if len(self.pending) >= self.settings.batch_size:
                await self._flush_behind()

    async def _flush_behind(self) -> None:
        """Start a flush that runs while the loop goes on processing (its ClickHouse
        write is on the store thread, its changelog send on the broker); wait first for
        the previous one, so at most one batch is in flight and one is filling."""
        previous = self._flush_task
        if previous is not None and not previous.done():
            await asyncio.shield(previous)
        self._flush_task = asyncio.ensure_future(self.flush())
        self._flush_task.add_done_callback(self._flush_done)

    def _flush_done(self, task: asyncio.Future) -> None:
        if task.cancelled() or task.exception() is None:
            return
        exc = task.exception()
        self.failure = f"{type(exc).__name__}: {exc}"
        log.error("flushing failed; stopping the worker", exc_info=exc)
        asyncio.ensure_future(self.app.crash(exc))

    def _process_batch(self, events) -> list:
        """Process ``events`` in order (no await in between, so no flush can split
        them); the invalid ones, to send to the dead-letter topic."""
        started = time.perf_counter()
        pending = self.pending
        if not pending.acks:
            pending.started = time.monotonic()
        process, partitions = self.processor.process, self.partitions
        invalid, rows, cases, acks, timestamps = [], pending.events, pending.cases, pending.acks, pending.timestamps
        counts = {ACCEPTED: 0, DUPLICATE: 0, INVALID: 0, REDELIVERED: 0}
        unknown = handled = 0
        wall_now_us = _now_us()
        for event in events:
            message = event.message
            partition = message.partition
            if partition not in partitions:
                continue  # buffered before a rebalance took the partition away: not ours
            result = process(RawMessage(message.key, message.value, partition, message.offset), wall_now_us=wall_now_us)
            outcome = result.outcome
            counts[outcome] += 1
            if outcome == INVALID:
                self.metrics.invalid.labels(result.reason).inc()
                invalid.append((message, result))
                pending.invalid.append(
                    InvalidRow(
                        topic=message.topic,
                        partition=partition,
                        offset=message.offset,
                        key=message.key,
                        reason=result.reason,
                        detail=result.detail,
                        raw=message.value or b"",
                    )
                )
            elif outcome != DUPLICATE:
                ev = result.event
                if outcome == ACCEPTED and result.unit_label != ev.unit_id:
                    unknown += 1
                cases[(partition, ev.case_id)] = result.case
                rows.append(AcceptedEvent(ev, partition, message.offset, result.unit_label))
            acks.append(event)
            timestamps.append(message.timestamp)
            handled += 1
        for outcome in (ACCEPTED, DUPLICATE, INVALID):
            if counts[outcome]:
                self.metrics.events.labels(outcome).inc(counts[outcome])
        if counts[REDELIVERED]:
            self.metrics.redelivered.inc(counts[REDELIVERED])
        if unknown:
            self.metrics.unknown_units.inc(unknown)
        self.processed += handled
        if handled:
            per_message = (time.perf_counter() - started) / handled
            observe = self.metrics.processing.observe
            for _ in range(handled):
                observe(per_message)
        return invalid

    async def _send_dead_letter(self, message, reason: str, detail: str) -> None:
        await self.guard.dead_letters.send(message, reason, detail)  # issue 13: delivery awaited before the ack

    async def _flush_timer(self) -> None:
        if self.pending.acks and time.monotonic() - self.pending.started >= self.settings.flush_interval:
            await self.flush()
        if self.view_ready.is_set():
            self.live.prune_ids(self.clock_us())

    async def flush(self) -> None:
        """Write the buffered rows, then the changed case records, then ack."""
        async with self.flush_lock:
            batch, self.pending = self.pending, _Pending()
            letters = self.guard.dead_letters.take()  # issue 13
            records = self.repository.take_staged()
            clocks = {p: self.live.partition_clock[p] for p in records if p in self.live.partition_clock}
            if not batch.acks and not records:
                return
            self.writing = len(batch)
            while not self.ready:
                await asyncio.sleep(0.2)
            now_us = self.clock_us()
            version = time.time_ns()
            case_rows = [case_summary(case.state, now_us) for case in batch.cases.values()]
            await self._retrying("ClickHouse write", self._in_store_thread, self._write_batch, batch, case_rows, version)
            await self._retrying("changelog write", faults.commit_renewing, self.store, records, clocks)  # issue 13: fresh producer after a failure
            self.repository.committed(records)
            await self.guard.dead_letters.settle(letters)  # issue 13: every dead letter delivered before the acks
            written = time.time()
            for timestamp in batch.timestamps:
                self.metrics.latency.observe(max(0.0, written - timestamp))
            for event in batch.acks:
                await self._stream.ack(event)
            self.writing = 0

    async def _retrying(self, what: str, fn, *args) -> None:
        """Await ``fn(*args)`` until it succeeds; the messages stay unacked meanwhile."""
        delay = 0.5
        while True:
            try:
                await fn(*args)
                self.guard.recovered(what)  # issue 13
                return
            except Exception as exc:
                self.guard.failing(what, exc)  # issue 13
                if what.startswith("ClickHouse"):
                    self.metrics.write_errors.inc()
                log.exception("%s failed; retrying in %.1fs", what, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_S)

    def _write_batch(self, batch: _Pending, case_rows: list, version: int) -> None:
        writer = self.writer
        for table, rows, write in (
            ("case_events", batch.events, writer.write_events),
            ("invalid_events", batch.invalid, writer.write_invalid),
            ("cases", case_rows, lambda rows: writer.write_cases(rows, version=version)),
        ):
            if rows:
                write(rows)
                self.metrics.rows_written.labels(table).inc(len(rows))
                self.metrics.inserts.labels(table).inc()

    # -- gauges and snapshots ------------------------------------------------------
    def _view_at_clock(self):
        """(view, open-case counts, on_time_766 open part) at the clock, or None while
        the live state is being rebuilt: what both the exporter and the snapshots read."""
        if not self.view_ready.is_set():
            return None
        view = self.live.view
        view.advance(self.clock_us())
        return view, self.live.open_cases.counts(view.clock_us, view.units()), self.live.extra_at(view.clock_us)

    def _current_figures(self):
        """Figures at the clock (None while the live state is being rebuilt)."""
        current = self._view_at_clock()
        if current is None:
            return None
        view, open_counts, extra = current
        return LiveFigures(
            clock_us=view.clock_us,
            indicators=bound_figures(indicator_figures(view, self.targets, extra), self.targets),  # issue 13: sectors bounded
            open_cases=open_counts,
        )

    async def _write_snapshots(self) -> None:
        if not self.ready:
            return
        current = self._current_figures()
        if current is None:
            return
        figures = current.indicators
        if figures:
            try:
                await self._in_store_thread(self.writer.write_snapshots, figures, current.clock_us)
            except Exception as exc:  # issue 13: a failed snapshot is skipped (counted, shown), never fatal
                self.metrics.write_errors.inc()  # issue 13
                self.guard.failing("ClickHouse write", exc)  # issue 13
                log.error("snapshot write failed; skipped: %s", exc)  # issue 13
                return  # issue 13
            self.metrics.rows_written.labels("indicator_snapshots").inc(len(figures))
            self.metrics.inserts.labels("indicator_snapshots").inc()

    # -- HTTP ----------------------------------------------------------------------
    async def _metrics_page(self, web, request):
        current = self._view_at_clock()
        live_text = self.exposition.render(*current) if current is not None else ""
        return web.bytes(self.metrics.render(live_text), content_type=CONTENT_TYPE)

    async def _health_page(self, web, request):
        if self.failure:
            status = "failed"
        elif self.ready and self.view_ready.is_set():
            status = "ok"
        else:
            status = "starting"
        return web.json(self.guard.health(  # issue 13: "degraded" + problems, redacted
            {
                "status": status,
                "failure": self.failure,
                "clock": self.settings.clock,
                "clock_us": self.clock_us(),
                "processed": self.processed,
                "pending": len(self.pending) + self.writing,
                "flushing": self.flush_lock.locked(),
                "rebuilding": self.rebuilding,
                "partitions": sorted(self.partitions),
                "rebuilds": self.rebuilds,
                "last_rebuild_seconds": self.last_rebuild_s,
            }
        ))

    def _sql_view(self):
        worker = self

        class SqlView(faust.web.View):
            async def post(self, request):
                refusal = worker.web.refusal(request.headers.get("Authorization"))  # issue 13
                if refusal is not None:  # issue 13
                    return self.json({"error": refusal}, status=401)  # issue 13
                body = await request.json()
                sql = body.get("query", "")
                try:
                    check_read_only(sql)
                    if not worker.ready:
                        raise UserError("the worker is still starting; try again in a moment")
                    runner = ClientRunner(worker.client, settings=worker.web.limits.settings())  # issue 13: bounds
                    columns, rows = await worker._in_store_thread(
                        runner.query, sql, body.get("parameters")
                    )
                except UserError as exc:
                    return self.json({"error": redact(str(exc))}, status=400)  # issue 13: redact
                except Exception as exc:  # the engine's own message, one line
                    return self.json({"error": redact(str(exc).strip().splitlines()[0][:500])}, status=400)  # issue 13: redact
                return self.json({"columns": columns, "rows": json_safe(rows)})

        return SqlView


def run_worker(settings: Settings) -> int:
    # The live state is millions of small long-lived objects and the hot path allocates
    # a few per event: collect the young generation less often (measured in BENCHMARKS.md).
    gc.set_threshold(GC_THRESHOLD, 20, 100)
    try:
        targets = load_targets(settings.targets_file)
    except TargetsError as exc:
        raise UserError(str(exc)) from None
    if not settings.units_file.exists():
        raise UserError(f"units registry not found: {settings.units_file}")
    (settings.data_dir / "faust").mkdir(parents=True, exist_ok=True)
    install_log_redaction()  # issue 13: no secret in any log line
    settings = kafka_clients.preflight(settings)  # unreachable or refused: one error line; auto replication resolved
    worker = Worker(settings, targets)
    faust_worker = faust.Worker(worker.app, loglevel="WARNING", quiet=True)
    print(
        f"worker: {settings.topic} on {settings.kafka_bootstrap} -> {describe_dsn(settings.effective_clickhouse_dsn)}; "  # issue 13
        f"metrics at {settings.web_url}/metrics (clock: {settings.clock})",
        flush=True,
    )
    faust_worker.execute_from_commandline()
    return 0
