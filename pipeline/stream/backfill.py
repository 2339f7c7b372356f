"""``python -m pipeline backfill FILE``: load a history file straight into the truth.

A year of the province (millions of events) through the broker goes at the worker's
rate; this path skips the broker's per-message work and Faust's. Each line is
processed by the worker's own ``Processor`` (same contract, dedupe, attribution,
case logic), then each chunk goes through the worker's own ``Checkpoint``: the facts to
ClickHouse, then the changed case records to the worker's changelog (and its local
cache). The worker, started afterwards, recovers those records and rebuilds its
live view from them like after any restart.

* A line is placed in the input partition its key (``case_id``) hashes to with the
  Kafka default partitioner, so the record lands where the worker will look for it.
* Its "offset" is ``-(line number)``: never a real Kafka offset, so the same line
  backfilled again is a redelivery (its fact row is written again and replaces
  itself), and the same event sent later through the broker is a duplicate.
* A rejected line goes to ``invalid_events`` with topic ``backfill:<file name>`` and
  offset = its line number (the dead-letter topic is for messages of the broker).

Run it with the worker of the consumer group (``TTHC_APP_ID``) stopped: the worker
would not see records written behind its back until its next assignment, and the
embedded ClickHouse admits one process at a time anyway.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, replace
from pathlib import Path

from aiokafka.partitioner import DefaultPartitioner
from tqdm import tqdm

from pipeline import kafka_clients
from pipeline.config import Settings, UserError
from pipeline.core.cases import case_summary
from pipeline.core.registry import UnitRegistry
from pipeline.contract.events import message_key
from pipeline.core.sectors import SectorLabels
from pipeline.store.client import connect
from pipeline.store.schema import ensure_schema
from pipeline.store.units import load_units, sync_units
from pipeline.store.writer import AcceptedEvent, FactWriter, InvalidRow
from pipeline.stream.checkpoint import Checkpoint, Flush
from pipeline.stream.guard import Problems
from pipeline.stream.labels import registered_sectors
from pipeline.stream.processor import ACCEPTED, DUPLICATE, INVALID, REDELIVERED, Processor, RawMessage, rebuild
from pipeline.stream.repository import CachedRepository, case_store, new_live_state, stored_cases, stored_clocks
from pipeline.stream.retry import RETRY

CHUNK_LINES = 20_000
BACKFILL_RETRY = replace(RETRY, attempts=5)  # a command line ends: a write failing this often stops it


@dataclass
class BackfillResult:
    lines: int = 0
    accepted: int = 0
    redelivered: int = 0
    duplicate: int = 0
    invalid: int = 0
    cases: int = 0  # case records written
    seconds: float = 0.0

    @property
    def rate(self) -> float:
        return self.lines / self.seconds if self.seconds else 0.0


def partition_of(key: bytes | None, partitions: int) -> int:
    """The input partition a message with ``key`` goes to (Kafka's default partitioner,
    murmur2, as the producers of ``replay`` and the one-stop systems use it)."""
    if key is None:
        return 0
    return DefaultPartitioner()(key, list(range(partitions)), list(range(partitions)))


def run_backfill(settings: Settings, file: str, chunk: int = CHUNK_LINES) -> BackfillResult:
    path = Path(file)
    if not path.is_file():
        raise UserError(f"no such file: {file}")
    settings = kafka_clients.preflight(settings)  # unreachable or refused: one error line; auto replication resolved
    result = asyncio.run(_backfill(settings, path, chunk))
    print(
        f"backfill: {result.lines:,} lines in {result.seconds:.1f}s ({result.rate:,.0f}/s): "
        f"{result.accepted:,} accepted, {result.redelivered:,} already there, {result.duplicate:,} duplicate, "
        f"{result.invalid:,} invalid; {result.cases:,} case records written to {settings.app_id}-cases-changelog",
        flush=True,
    )
    return result


async def _backfill(settings: Settings, path: Path, chunk: int) -> BackfillResult:
    started = time.monotonic()
    client = connect(settings.effective_clickhouse_dsn)
    ensure_schema(client)
    sync_units(client, load_units(settings.units_file))
    writer = FactWriter(client)
    store = case_store(settings)
    try:
        await store.start()
    except Exception as exc:
        raise UserError(f"cannot reach Kafka at {settings.kafka_bootstrap}: {exc}") from None
    try:
        partitions = range(settings.partitions)
        await store.own(partitions)  # the writer of every partition: a worker still running is fenced
        for partition in partitions:
            await store.recover(partition)
        # the records already held count for dedupe exactly as in the worker
        live = new_live_state(settings)
        existing = stored_cases(store, partitions)
        for _ in rebuild(live, existing, stored_clocks(store, partitions), event_clock=True,
                         wall_now_us=time.time_ns() // 1000):
            pass
        repository = CachedRepository(store)

        async def write_facts(flush: Flush) -> None:
            writer.write_events(flush.events)
            writer.write_invalid(flush.invalid)
            writer.write_cases(flush.cases, version=flush.case_version)

        # no messages to ack: the rejected lines are in invalid_events
        checkpoint = Checkpoint(write_facts=write_facts, store=store, repository=repository,
                                problems=Problems(), policy=BACKFILL_RETRY)
        registry = UnitRegistry(load_units(settings.units_file))
        processor = Processor(repository, live, event_clock=True, unit_label=registry.label,
                              sectors=SectorLabels(registered_sectors()))
        result = BackfillResult()
        source = f"backfill:{path.name}"
        with path.open("rb") as lines, tqdm(
            total=path.stat().st_size, desc=f"backfill {path.name}", unit="B", unit_scale=True
        ) as bar:
            batch: list[bytes] = []
            for line in lines:
                batch.append(line)
                if len(batch) >= chunk:
                    await _chunk(batch, result, processor, repository, checkpoint, settings, source, bar)
                    batch = []
            if batch:
                await _chunk(batch, result, processor, repository, checkpoint, settings, source, bar)
    finally:
        await store.stop()
    result.seconds = time.monotonic() - started
    return result


async def _chunk(lines, result, processor, repository, checkpoint, settings, source, bar) -> None:
    events, invalid, cases = [], [], {}
    wall_now_us = time.time_ns() // 1000
    for raw in lines:
        result.lines += 1
        number = result.lines
        value = raw.rstrip(b"\r\n")
        key = message_key(value)
        partition = partition_of(key, settings.partitions)
        outcome = processor.process(RawMessage(key, value, partition, -number), wall_now_us=wall_now_us)
        if outcome.outcome == INVALID:
            result.invalid += 1
            invalid.append(InvalidRow(source, 0, number, key, outcome.reason, outcome.detail, value))
        elif outcome.outcome == DUPLICATE:
            result.duplicate += 1
        else:
            if outcome.outcome == REDELIVERED:
                result.redelivered += 1
            else:
                assert outcome.outcome == ACCEPTED
                result.accepted += 1
            cases[(partition, outcome.event.case_id)] = outcome.case
            events.append(AcceptedEvent(outcome.event, partition, -number, outcome.unit_label, outcome.sector_label))
        bar.update(len(raw))
    live = processor.live
    now_us = live.event_time or wall_now_us
    live.prune_ids(now_us)  # ids older than the dedupe retention, as the worker does daily
    records = repository.take_staged()
    flush = await checkpoint.commit(Flush(
        events=events,
        invalid=invalid,
        cases=[case_summary(case.state, now_us) for case in cases.values()],
        records=records,
        clocks=dict(live.partition_clock),
        written_ms=time.time_ns() // 1_000_000,
    ))
    if flush.fenced:  # a worker of the group took the partitions back: its records win
        raise UserError(f"partitions {sorted(flush.fenced)} of {settings.app_id} were taken by a running worker; "
                        "stop the workers of the group and run backfill again")
    result.cases += sum(len(r) for r in records.values())
