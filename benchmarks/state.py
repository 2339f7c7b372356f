"""The live state at province scale: scrape and rebuild cost against history, bytes per dossier.

Synthetic history (no broker needed): ``N`` dossiers over 2025, each received at one
of 130 units in one of 30 sectors, most of them finished, paid, rated and returned;
the records go through ``StoredCase`` encoding into a real local RocksDB partition
cache, exactly as the worker's changelog recovery leaves them. Measured:

* rebuild on assignment: scan + decode + outcomes + view, for all N dossiers;
* ``/metrics`` render time (live families + counters) after 10k, 100k and N dossiers:
  it should not grow with history, only with the number of series;
* bytes per open dossier: its record in RocksDB and its share of the process's memory
  (open-case index, event ids, view), with 200,000 open dossiers.
"""

from __future__ import annotations

import gc
import random
import resource
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from rocksdict import Options, Rdict, WriteBatch

from pipeline.config import PROJECT_ROOT
from pipeline.contract.events import CaseEvent
from pipeline.core.cases import CaseState
from pipeline.targets_file import load_targets
from pipeline.stream.metrics import LiveExposition, WorkerMetrics
from pipeline.stream.processor import LiveState, StoredCase, rebuild

DAY = 86_400 * 1_000_000
HOUR = 3_600 * 1_000_000
YEAR_START = 1_735_664_400 * 1_000_000  # 2025-01-01 00:00 +07:00
UNITS = [f"XA_{i:03d}" for i in range(130)]
SECTORS = [f"linh_vuc_{i:02d}" for i in range(30)]


def _event(case_id: str, n: int, kind: str, unit: str, t: int, **fields) -> CaseEvent:
    return CaseEvent(f"{case_id}-{n}", kind, case_id, unit, t, None, fields)


def synthetic_case(i: int, rng: random.Random, *, open_case: bool = False) -> StoredCase:
    case_id = f"HS-{i:08d}"
    unit = UNITS[i % len(UNITS)]
    received = YEAR_START + rng.randrange(360 * DAY)
    online = rng.random() < 0.7
    state = CaseState.new(case_id)
    events = [
        _event(case_id, 0, "received", unit, received, sector=SECTORS[(i * 7) % len(SECTORS)],
               procedure_code="1.000123", channel="online" if online else "direct",
               online_mode="full" if online else None, due_at=received + 5 * DAY,
               digitized=rng.random() < 0.97, reused_data=rng.random() < 0.8, vneid_authenticated=online),
    ]
    if not open_case:
        done = received + rng.randrange(6 * DAY)
        events += [
            _event(case_id, 1, "payment", unit, received + HOUR, method="online" if rng.random() < 0.85 else "offline"),
            _event(case_id, 2, "resolved", unit, done),
            _event(case_id, 3, "result_returned", unit, done + HOUR, electronic_result=rng.random() < 0.95),
            _event(case_id, 4, "rated", unit, done + 2 * HOUR, rating=rng.choice((5, 5, 5, 4, 3))),
        ]
    offsets = {}
    for n, event in enumerate(events):
        state.add(event)
        offsets[event.event_id] = i * 5 + n
    return StoredCase(state, offsets)


def _render_ms(live: LiveState, exposition: LiveExposition, metrics: WorkerMetrics, repeats: int = 5) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        view = live.view
        metrics.render(exposition.render(view, live.open_cases.counts(view.clock_us, view.units())))
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def bench_state(dossiers: int = 1_000_000, open_dossiers: int = 200_000, progress=print) -> dict:
    targets = load_targets(PROJECT_ROOT / "deploy" / "targets.toml")
    rng = random.Random(11)
    work = Path(tempfile.mkdtemp(prefix="tthc-bench-state-"))
    results: dict = {"dossiers": dossiers}
    try:
        db = Rdict(str(work / "p0"), options=Options(raw_mode=True))
        record_bytes = 0
        started = time.perf_counter()
        batch = WriteBatch(raw_mode=True)
        for i in range(dossiers):
            case = synthetic_case(i, rng)
            data = case.to_bytes()
            record_bytes += len(data)
            batch.put(case.case_id.encode(), data)
            if i % 10_000 == 9_999:
                db.write(batch)
                batch = WriteBatch(raw_mode=True)
                if i % 200_000 == 199_999:
                    progress(f"  state: {i + 1:,} synthetic dossiers written")
        db.write(batch)
        results["write_seconds"] = round(time.perf_counter() - started, 1)
        results["record_bytes_per_dossier"] = round(record_bytes / dossiers)

        now = YEAR_START + 364 * DAY
        exposition, metrics = LiveExposition(targets), WorkerMetrics()
        live = LiveState(hold_retention_us=35 * DAY, dedupe_retention_us=35 * DAY)
        checkpoints = {10_000, 100_000, dossiers}
        render_ms: dict[str, float] = {}
        cases = ((0, StoredCase.from_bytes(data)) for key, data in db.items() if not key.startswith(b"\xff"))
        started = time.perf_counter()
        paused = 0.0
        for count in rebuild(live, cases, {}, event_clock=False, wall_now_us=now, chunk=10_000):
            if count in checkpoints:
                pause = time.perf_counter()
                render_ms[f"{count:,}"] = round(_render_ms(live, exposition, metrics), 1)
                paused += time.perf_counter() - pause
        results["rebuild_seconds"] = round(time.perf_counter() - started - paused, 1)
        results["rebuild_dossiers_per_s"] = round(dossiers / results["rebuild_seconds"])
        results["scrape_ms_by_history"] = render_ms
        results["series"] = len(live.view) * 7
        results["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
        db.close()
        del live, cases
        gc.collect()

        # open dossiers: their records, and what the live state holds for them
        open_db = Rdict(str(work / "open"), options=Options(raw_mode=True))
        live = LiveState(hold_retention_us=35 * DAY, dedupe_retention_us=400 * DAY)
        import tracemalloc

        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        open_bytes = 0
        for i in range(open_dossiers):
            case = synthetic_case(dossiers + i, rng, open_case=True)
            data = case.to_bytes()
            open_bytes += len(data)
            open_db[case.case_id.encode()] = data
            live.add_case(0, case, now)
            del case
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] - before
        tracemalloc.stop()
        open_db.close()
        results["open_dossiers"] = open_dossiers
        results["open_record_bytes_per_dossier"] = round(open_bytes / open_dossiers)
        results["open_memory_bytes_per_dossier"] = round(held / open_dossiers)
        results["rocksdb_bytes_per_open_dossier"] = round(
            sum(f.stat().st_size for f in (work / "open").rglob("*") if f.is_file()) / open_dossiers
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return results


if __name__ == "__main__":
    import json
    import sys

    print(json.dumps(bench_state(int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000), indent=1))
