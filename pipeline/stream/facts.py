"""The engine's ClickHouse side: one dedicated thread (the chDB engine is in-process and
its client synchronous) that opens the store, writes a checkpoint's facts, the
indicator snapshots, and answers read-only SQL."""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor

from pipeline.config import Settings
from pipeline.store.client import connect, describe_dsn
from pipeline.store.ratings import write_ratings
from pipeline.store.schema import ensure_schema
from pipeline.store.units import load_units, sync_units
from pipeline.store.writer import FactWriter
from pipeline.stream.checkpoint import Flush
from pipeline.stream.metrics import WorkerMetrics

log = logging.getLogger("pipeline.worker")


class FactStore:
    def __init__(self, settings: Settings, metrics: WorkerMetrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="clickhouse")
        self.client = None
        self.writer: FactWriter | None = None
        self.ready = False

    async def _on_thread(self, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)

    async def start(self) -> None:
        def start() -> None:
            self.client = connect(self.settings.effective_clickhouse_dsn)
            ensure_schema(self.client)
            self.writer = FactWriter(self.client)
            sync_units(self.client, load_units(self.settings.units_file))

        await self._on_thread(start)
        self.ready = True
        log.info("ClickHouse ready at %s", describe_dsn(self.settings.effective_clickhouse_dsn))

    async def wait_ready(self) -> None:
        while not self.ready:
            await asyncio.sleep(0.2)

    async def write(self, flush: Flush) -> None:
        """The checkpoint's step 1: facts, rejected messages, case rows."""
        await self._on_thread(self._write, flush)

    def _write(self, flush: Flush) -> None:
        writer = self.writer
        for table, rows, write in (
            ("case_events", flush.events, writer.write_events),
            ("invalid_events", flush.invalid, writer.write_invalid),
            ("cases", flush.cases, lambda rows: writer.write_cases(rows, version=flush.case_version)),
        ):
            if rows:
                write(rows)
                self.metrics.rows_written.labels(table).inc(len(rows))
                self.metrics.inserts.labels(table).inc()

    async def write_ratings(self, summaries) -> int:
        """DVCQG monthly rating summaries (``dvcqg_ratings``: the latest report wins)."""
        written = await self._on_thread(write_ratings, self.client, summaries)
        self.metrics.rows_written.labels("dvcqg_ratings").inc(written)
        self.metrics.inserts.labels("dvcqg_ratings").inc()
        return written

    async def write_snapshots(self, indicators, clock_us: int) -> None:
        await self._on_thread(self.writer.write_snapshots, indicators, clock_us)
        self.metrics.rows_written.labels("indicator_snapshots").inc(len(indicators))
        self.metrics.inserts.labels("indicator_snapshots").inc()

