"""``python -m benchmarks.profile_engine``: the engine's per-message work on a benchmark load,
in one process, without the broker and ClickHouse (CPU time of this process: the machine is shared), to find what makes it cost what it does.

What runs is what the engine process runs per batch (``Engine._process_batch`` and the
flush, ``pipeline/stream/engine.py``): the ``Processor`` with the worker's
``CachedRepository`` (its store an in-memory dict here), then per batch of
``TTHC_BATCH_SIZE`` messages the flush's work on the engine's side: the changed records
encoded (``take_staged``), the case summaries, and the ClickHouse rows of ``FactWriter``
built (its insert discarded). Printed: µs per message of each tenth of the load (does the
cost grow with the data?), of each step, and with ``--cprofile N`` the top N functions by
own time. Not a test and not part of ``make bench``; the figures of BENCHMARKS.md's
"Province load" section come from it.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import time
import zlib
from dataclasses import dataclass

from benchmarks import load
from pipeline.config import Settings
from pipeline.contract.events import message_key
from pipeline.core.cases import case_summary
from pipeline.core.registry import UnitRegistry
from pipeline.core.sectors import SectorLabels
from pipeline.store.units import load_units
from pipeline.store.writer import AcceptedEvent, FactWriter
from pipeline.stream.labels import registered_sectors
from pipeline.stream.processor import ACCEPTED, DUPLICATE, INVALID, Processor, RawMessage
from pipeline.stream.repository import CachedRepository, new_live_state

PARTITIONS = 4


class _MemoryStore:
    """The part of ``state.CaseStore`` the repository reads: records by (partition, case)."""

    def __init__(self) -> None:
        self.records: dict[tuple[int, str], bytes] = {}

    def load(self, partition: int, case_id: str) -> bytes | None:
        return self.records.get((partition, case_id))


class _DiscardingClient:
    def insert(self, table, data, column_names) -> None:
        pass


@dataclass
class Steps:
    process: float = 0.0
    records: float = 0.0
    summaries: float = 0.0
    rows: float = 0.0


def messages_of(lines: list[bytes]) -> list[RawMessage]:
    """The lines as Kafka messages: keyed by case id, spread over the partitions by key."""
    keys = [message_key(line) for line in lines]
    return [RawMessage(key, line, zlib.crc32(key or b"") % PARTITIONS, offset)
            for offset, (key, line) in enumerate(zip(keys, lines))]


def run(messages: list[RawMessage], batch_size: int, steps: Steps, tenths: list[float]) -> int:
    settings = Settings()
    live = new_live_state(settings, 0)
    store = _MemoryStore()
    repository = CachedRepository(store)  # type: ignore[arg-type]
    registry = UnitRegistry(load_units(settings.units_file))
    processor = Processor(repository, live, event_clock=True, unit_label=registry.label,
                          sectors=SectorLabels(registered_sectors()))
    writer = FactWriter(_DiscardingClient())
    wall_now_us = time.time_ns() // 1000
    tenth = max(1, len(messages) // 10)
    tenth_started = time.process_time()
    accepted = 0
    for start in range(0, len(messages), batch_size):
        t0 = time.process_time()
        rows, cases = [], {}
        for message in messages[start : start + batch_size]:
            result = processor.process(message, wall_now_us=wall_now_us)
            if result.outcome == INVALID or result.outcome == DUPLICATE:
                continue
            accepted += result.outcome == ACCEPTED
            cases[(message.partition, result.event.case_id)] = result.case
            rows.append(AcceptedEvent(result.event, message.partition, message.offset, result.unit_label,
                                      result.sector_label))
        t1 = time.process_time()
        encoded = repository.take_staged()
        for partition, records in encoded.items():
            for case_id, data in records.items():
                store.records[(partition, case_id)] = data
        repository.committed(encoded)
        t2 = time.process_time()
        now_us = live.view.clock_us
        summaries = [case_summary(case.state, now_us) for case in cases.values()]
        t3 = time.process_time()
        writer.write_events(rows)
        writer.write_cases(summaries, version=1)
        t4 = time.process_time()
        steps.process += t1 - t0
        steps.records += t2 - t1
        steps.summaries += t3 - t2
        steps.rows += t4 - t3
        done = min(start + batch_size, len(messages))
        while len(tenths) < 10 and done >= tenth * (len(tenths) + 1):
            now = time.process_time()
            tenths.append((now - tenth_started) / tenth * 1e6)
            tenth_started = now
    return accepted


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.profile_engine")
    p.add_argument("--load", choices=("province", "bench"), default="province")
    p.add_argument("--events", type=int, default=70_000)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--batch-size", type=int, default=5000)
    p.add_argument("--cprofile", type=int, default=0, metavar="N", help="print the top N functions by own time")
    p.add_argument("--sort", default="tottime", help="cProfile's order (tottime, cumulative)")
    args = p.parse_args(argv)
    got = load.province_file(args.seed, args.events) if args.load == "province" else load.history_file(args.seed, args.events)
    lines = got.path.read_bytes().splitlines()
    messages = messages_of(lines)
    steps, tenths = Steps(), []
    profiler = cProfile.Profile() if args.cprofile else None
    started = time.process_time()
    if profiler:
        profiler.enable()
    accepted = run(messages, args.batch_size, steps, tenths)
    if profiler:
        profiler.disable()
    total = time.process_time() - started
    n = len(lines)
    print(f"{args.load} load, {n:,} messages ({accepted:,} accepted): {total / n * 1e6:.1f} µs/message"
          f"{' (under cProfile)' if profiler else ''}")
    print("  steps (µs/message): " + ", ".join(f"{k} {v / n * 1e6:.1f}" for k, v in vars(steps).items()))
    print("  each tenth of the load (µs/message): " + " ".join(f"{t:.0f}" for t in tenths))
    if profiler:
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats(args.sort).print_stats(args.cprofile)
        print(out.getvalue())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
