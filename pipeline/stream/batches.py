"""One batch of messages through the processor, into the rows the next flush writes.

The messages are processed in order with no await in between, so no flush can split a
batch; a message of a partition this worker does not hold (buffered before a rebalance
took it away) is skipped and never acked, so it is read again by its owner.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from pipeline.store.writer import AcceptedEvent, InvalidRow
from pipeline.stream import channel
from pipeline.stream.metrics import WorkerMetrics
from pipeline.stream.processor import ACCEPTED, DUPLICATE, INVALID, REDELIVERED, Processor, RawMessage

log = logging.getLogger("pipeline.worker")


@dataclass
class Pending:
    """Rows waiting for the next flush, and how many messages they came from."""

    events: list[AcceptedEvent] = field(default_factory=list)
    invalid: list[InvalidRow] = field(default_factory=list)
    cases: dict = field(default_factory=dict)
    timestamps: list[float] = field(default_factory=list)
    count: int = 0
    last_seq: int = 0
    started: float = 0.0

    def __len__(self) -> int:
        return self.count


def process_batch(batch: channel.Batch, pending: Pending, processor: Processor, partitions: frozenset[int],
                  topic: str, metrics: WorkerMetrics) -> channel.Done:
    """Process ``batch`` into ``pending``; the answer for the Faust process."""
    started = time.perf_counter()
    if not pending.count:
        pending.started = time.monotonic()
    process = processor.process
    rows, cases, timestamps = pending.events, pending.cases, pending.timestamps
    skipped, invalid = [], []
    counts = {ACCEPTED: 0, DUPLICATE: 0, INVALID: 0, REDELIVERED: 0}
    unknown = handled = 0
    wall_now_us = time.time_ns() // 1000
    for index, (key, value, partition, offset, timestamp) in enumerate(
        zip(batch.keys, batch.values, batch.partitions, batch.offsets, batch.timestamps)
    ):
        if partition not in partitions:
            skipped.append(index)
            continue
        result = process(RawMessage(key, value, partition, offset), wall_now_us=wall_now_us)
        outcome = result.outcome
        counts[outcome] += 1
        if outcome == INVALID:
            metrics.invalid.labels(result.reason).inc()
            invalid.append((index, result.reason, result.detail))
            pending.invalid.append(InvalidRow(
                topic=topic, partition=partition, offset=offset, key=key,
                reason=result.reason, detail=result.detail, raw=value or b"",
            ))
        elif outcome != DUPLICATE:
            ev = result.event
            if outcome == ACCEPTED and result.unit_label != ev.unit_id:
                unknown += 1
            cases[(partition, ev.case_id)] = result.case
            rows.append(AcceptedEvent(ev, partition, offset, result.unit_label, result.sector_label))
        timestamps.append(timestamp)
        handled += 1
    if skipped:
        log.warning("batch %d: %d messages of partitions not held skipped (never acked: read again)",
                    batch.seq, len(skipped))
    pending.count += handled
    pending.last_seq = batch.seq
    for outcome in (ACCEPTED, DUPLICATE, INVALID):
        if counts[outcome]:
            metrics.events.labels(outcome).inc(counts[outcome])
    if counts[REDELIVERED]:
        metrics.redelivered.inc(counts[REDELIVERED])
    if unknown:
        metrics.unknown_units.inc(unknown)
    if handled:
        per_message = (time.perf_counter() - started) / handled
        observe = metrics.processing.observe
        for _ in range(handled):
            observe(per_message)
    return channel.Done(batch.seq, skipped, invalid, processor.live.view.clock_us)
