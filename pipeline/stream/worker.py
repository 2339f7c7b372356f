"""The Faust worker: a thin shell around :class:`~pipeline.stream.processor.Processor`.

Per message: process it (state tables change inside stream iteration, as Faust
requires), send invalid ones to the dead-letter topic, buffer the ClickHouse rows.
A flush (every ``TTHC_BATCH_SIZE`` messages or ``TTHC_FLUSH_INTERVAL`` seconds)
writes the rows and only then acks the messages, so committed offsets never run
ahead of the stored facts. ClickHouse calls run on one dedicated thread: the chDB
engine is in-process and its client is synchronous.
"""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import faust

from pipeline.config import Settings, UserError
from pipeline.contract.events import CaseEvent
from pipeline.core.cases import CaseState, case_summary
from pipeline.core.targets import Targets, TargetsError, load_targets
from pipeline.store.client import connect
from pipeline.store.readonly import ClientRunner, check_read_only, json_safe
from pipeline.store.schema import ensure_schema
from pipeline.store.units import load_units, sync_units
from pipeline.store.writer import FactWriter, InvalidRow
from pipeline.stream.gauges import indicator_figures, open_case_counts
from pipeline.stream.metrics import CONTENT_TYPE, WorkerMetrics
from pipeline.stream.registry_metrics import install_registry_metrics  # issue 7
from pipeline.stream.writebehind import WriteBehind
from pipeline.stream.processor import (
    ACCEPTED,
    DUPLICATE,
    INVALID,
    REDELIVERED,
    Processor,
    RawMessage,
    Tables,
)

log = logging.getLogger("pipeline.worker")
HOUSEKEEPING_EVERY_S = 3600.0  # pruning walks a partition's state: rarely, never on the hot path
GAUGE_MIN_AGE_S = 5.0


def _now_us() -> int:
    return time.time_ns() // 1000


@dataclass
class _Pending:
    """Rows waiting for the next flush, and the Faust events to ack after it."""

    events: list[tuple[CaseEvent, int, int]] = field(default_factory=list)
    invalid: list[InvalidRow] = field(default_factory=list)
    cases: dict[str, CaseState] = field(default_factory=dict)
    acks: list[Any] = field(default_factory=list)
    timestamps: list[float] = field(default_factory=list)
    started: float = 0.0

    def __len__(self) -> int:
        return len(self.acks)


class Worker:
    def __init__(self, settings: Settings, targets: Targets) -> None:
        self.settings = settings
        self.targets = targets
        self.metrics = WorkerMetrics()
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="clickhouse")
        self.client = None
        self.writer: FactWriter | None = None
        self.pending = _Pending()
        self.flush_lock = asyncio.Lock()
        self.ready = False
        self.processed = 0  # messages handled by this process (any outcome)
        self.writing = 0  # messages whose rows are being written right now
        self.housekept: dict[int, float] = {}  # partition -> monotonic time of last housekeeping
        self.failure: str | None = None
        self._gauges_key: tuple[int, int] | None = None
        self._gauges_at = 0.0
        self.app = self._build_app()

    # -- Faust wiring --------------------------------------------------------------
    def _build_app(self) -> faust.App:
        s = self.settings
        app = faust.App(
            s.app_id,
            broker=f"kafka://{s.kafka_bootstrap}",
            store="rocksdb://",
            # per app id: RocksDB files remember changelog offsets of their own group
            datadir=str((s.data_dir / "faust" / s.app_id).resolve()),
            topic_partitions=s.partitions,
            topic_replication_factor=1,
            web_bind="127.0.0.1",
            web_host="127.0.0.1",
            web_port=s.web_port,
            consumer_auto_offset_reset="earliest",
            stream_buffer_maxsize=max(4096, s.batch_size * 2),
            broker_commit_interval=1.0,
            # A worker that died without leaving the group holds its partitions until
            # this expires; 15 s (Faust's default is 60) lets a restart resume sooner.
            broker_session_timeout=15.0,
            # Buffered messages are acked only after their rows are written, so Faust
            # must not wait for them on stop or rebalance; whatever was not acked is
            # read again and recognised as a redelivery (see processor.py).
            stream_wait_empty=False,
            producer_linger_ms=10,
        )
        # internal=True: Faust creates the topics (with these partitions) when missing,
        # so a worker started before any producer still subscribes to its input.
        raw = dict(key_serializer="raw", value_serializer="raw", partitions=s.partitions, internal=True)
        self.topic = app.topic(s.topic, **raw)
        self.dlq = app.topic(s.dlq_topic, **raw)
        table = dict(partitions=s.partitions)  # keys and values as JSON (Faust default)
        self.cached = {
            name: WriteBehind(app.Table(name, default=None, **table), global_reads=name == "seen")
            for name in ("cases", "seen", "counters", "open_cases", "clock")
        }
        self.tables = Tables(**self.cached)
        self.processor = Processor(self.tables, dedupe_retention_days=s.dedupe_retention_days)
        # issue 7: tthc_unit_info and tthc_consumer_lag (pipeline/stream/registry_metrics.py)
        install_registry_metrics(self.metrics.registry, app, topic=s.topic, units_file=s.units_file, clock_us=self.clock_us)
        app.agent(self.topic, name="process-case-events")(self._agent)
        app.on_partitions_revoked.connect(self._on_partitions_revoked)
        app.timer(s.flush_interval)(self._flush_timer)
        app.timer(s.snapshot_interval)(self._write_snapshots)
        app.task(self._start_store)
        # Faust stores page handlers on a View class, so they must be plain functions.
        app.page("/metrics")(lambda web, request: self._metrics_page(web, request))
        app.page("/healthz")(lambda web, request: self._health_page(web, request))
        app.page("/sql")(self._sql_view())
        return app

    def clock_us(self) -> int:
        if self.settings.clock == "event":
            return self.processor.event_time() or 0
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
        log.info("ClickHouse ready at %s", self.settings.effective_clickhouse_dsn)

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
        stream = stream.noack()
        self._stream = stream
        async for event in stream.events():
            message = event.message
            started = time.perf_counter()
            for cache in self.cached.values():
                cache.partition = message.partition
            result = self.processor.process(
                RawMessage(message.key, message.value, message.partition, message.offset),
                wall_now_us=_now_us(),
            )
            pending = self.pending
            if not pending.acks:
                pending.started = time.monotonic()
            if result.outcome == INVALID:
                self.metrics.events.labels(INVALID).inc()
                self.metrics.invalid.labels(result.reason).inc()
                await self._send_dead_letter(message, result.reason, result.detail)
                pending.invalid.append(
                    InvalidRow(
                        topic=message.topic,
                        partition=message.partition,
                        offset=message.offset,
                        key=message.key,
                        reason=result.reason,
                        detail=result.detail,
                        raw=message.value or b"",
                    )
                )
            elif result.outcome == DUPLICATE:
                self.metrics.events.labels(DUPLICATE).inc()
            else:
                if result.outcome == REDELIVERED:
                    self.metrics.redelivered.inc()
                else:
                    self.metrics.events.labels(ACCEPTED).inc()
                if result.case is not None:
                    pending.cases[result.event.case_id] = result.case
                pending.events.append((result.event, message.partition, message.offset))
                last = self.housekept.get(message.partition)
                if last is None or time.monotonic() - last >= HOUSEKEEPING_EVERY_S:
                    self.housekept[message.partition] = time.monotonic()
                    self.processor.housekeeping(message.partition, self.clock_us())
            pending.acks.append(event)
            pending.timestamps.append(message.timestamp)
            self.processed += 1
            self.metrics.processing.observe(time.perf_counter() - started)
            if len(pending) >= self.settings.batch_size:
                await self.flush()

    async def _send_dead_letter(self, message, reason: str, detail: str) -> None:
        headers = [
            ("tthc-reason", reason.encode()),
            ("tthc-detail", detail.encode("utf-8")[:1000]),
            ("tthc-source-topic", message.topic.encode()),
            ("tthc-source-partition", str(message.partition).encode()),
            ("tthc-source-offset", str(message.offset).encode()),
        ]
        await self.dlq.send(key=message.key, value=message.value or b"", headers=headers)

    async def _on_partitions_revoked(self, app, revoked, **kwargs) -> None:
        # Write what is buffered while this worker still owns the partitions: the next
        # owner recovers their state only after this returns, so late writes from here
        # can never land behind its own in a changelog.
        await self.flush()

    async def _flush_timer(self) -> None:
        if self.pending.acks and time.monotonic() - self.pending.started >= self.settings.flush_interval:
            await self.flush()

    async def flush(self) -> None:
        """Write the buffered rows, then ack their messages (retrying until written)."""
        async with self.flush_lock:
            batch, self.pending = self.pending, _Pending()
            if not batch.acks:
                return
            state_changes = {name: cache.take_changes() for name, cache in self.cached.items()}
            self.writing = len(batch)
            while not self.ready:
                await asyncio.sleep(0.2)
            now_us = self.clock_us()
            version = time.time_ns()
            case_rows = [case_summary(case, now_us) for case in batch.cases.values()]
            delay = 0.5
            while True:
                try:
                    await self._in_store_thread(self._write_batch, batch, case_rows, version)
                    break
                except Exception:  # keep the messages unacked and try again
                    self.metrics.write_errors.inc()
                    log.exception("ClickHouse write failed; retrying in %.1fs", delay)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 30.0)
            # The state of these messages goes to the tables (and changelogs) only now,
            # after their rows: see writebehind.py.
            events_by_partition = {event.message.partition: event for event in batch.acks}
            for name, changes in state_changes.items():
                self.cached[name].write(changes, events_by_partition)
            written = time.time()
            for timestamp in batch.timestamps:
                self.metrics.latency.observe(max(0.0, written - timestamp))
            for event in batch.acks:
                await self._stream.ack(event)
            self.writing = 0

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
    def _figures(self):
        now_us = self.clock_us()
        figures = indicator_figures(
            list(self.tables.counters.items()),
            now_us,
            targets=self.targets,
            hold_retention_us=self.settings.hold_retention_us,
        )
        open_counts = open_case_counts(list(self.tables.open_cases.items()), self.tables.cases, now_us)
        return now_us, figures, open_counts

    async def _refresh_gauges(self) -> None:
        """Recompute the gauges when the state or clock moved, at most every few seconds.

        Walking all counters takes about a second per 100k state keys, on the event
        loop; an idle worker always answers with fresh figures.
        """
        key = (self.processed, self.clock_us())
        idle = not self.pending and not self.writing
        if key == self._gauges_key or (not idle and time.monotonic() - self._gauges_at < GAUGE_MIN_AGE_S):
            return
        now_us, figures, open_counts = self._figures()
        self.metrics.update_snapshot(figures, open_counts, now_us)
        self._gauges_key, self._gauges_at = key, time.monotonic()

    async def _write_snapshots(self) -> None:
        if not self.ready:
            return
        now_us, figures, _ = self._figures()
        if figures:
            await self._in_store_thread(self.writer.write_snapshots, figures, now_us)
            self.metrics.rows_written.labels("indicator_snapshots").inc(len(figures))
            self.metrics.inserts.labels("indicator_snapshots").inc()

    # -- HTTP ----------------------------------------------------------------------
    async def _metrics_page(self, web, request):
        await self._refresh_gauges()
        return web.bytes(self.metrics.render(), content_type=CONTENT_TYPE)

    async def _health_page(self, web, request):
        return web.json(
            {
                "status": "failed" if self.failure else ("ok" if self.ready else "starting"),
                "failure": self.failure,
                "clock": self.settings.clock,
                "clock_us": self.clock_us(),
                "processed": self.processed,
                "pending": len(self.pending) + self.writing,
            }
        )

    def _sql_view(self):
        worker = self

        class SqlView(faust.web.View):
            async def post(self, request):
                body = await request.json()
                sql = body.get("query", "")
                try:
                    check_read_only(sql)
                    if not worker.ready:
                        raise UserError("the worker is still starting; try again in a moment")
                    runner = ClientRunner(worker.client)
                    columns, rows = await worker._in_store_thread(
                        runner.query, sql, body.get("parameters")
                    )
                except UserError as exc:
                    return self.json({"error": str(exc)}, status=400)
                except Exception as exc:  # the engine's own message, one line
                    return self.json({"error": str(exc).strip().splitlines()[0][:500]}, status=400)
                return self.json({"columns": columns, "rows": json_safe(rows)})

        return SqlView


def run_worker(settings: Settings) -> int:
    try:
        targets = load_targets(settings.targets_file)
    except TargetsError as exc:
        raise UserError(str(exc)) from None
    if not settings.units_file.exists():
        raise UserError(f"units registry not found: {settings.units_file}")
    (settings.data_dir / "faust").mkdir(parents=True, exist_ok=True)
    worker = Worker(settings, targets)
    faust_worker = faust.Worker(worker.app, loglevel="WARNING", quiet=True)
    print(
        f"worker: {settings.topic} on {settings.kafka_bootstrap} -> {settings.effective_clickhouse_dsn}; "
        f"metrics at {settings.web_url}/metrics (clock: {settings.clock})",
        flush=True,
    )
    faust_worker.execute_from_commandline()
    return 0
