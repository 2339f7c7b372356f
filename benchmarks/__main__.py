"""`make bench`: how fast the pipeline's parts run on this machine.

1. contract: ``parse_event`` on the scenario's messages (messages/s);
2. core: the processor's per-message work on in-memory state (messages/s);
3. end to end: the scenario replayed through the real broker into a real worker
   with the embedded ClickHouse (messages/s, from the first message to all rows written);
4. the live state at province scale (``benchmarks/state.py``): rebuild on assignment
   and ``/metrics`` time with 1,000,000 dossiers of history, bytes per open dossier.

Figures go to stdout and, as JSON, to ``var/bench/results.json``. Benchmarks, not tests:
they assert nothing about speed.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import replace
from pathlib import Path

from pipeline.config import load_settings
from pipeline.contract.events import InvalidEvent, parse_event
from pipeline.feed.scenario import build_scenario
from benchmarks.state import bench_state
from pipeline.stream.processor import DictRepository, LiveState, Processor, RawMessage

ROOT = Path(__file__).resolve().parent.parent


def _keyed(lines: list[bytes]) -> list[RawMessage]:
    messages = []
    for offset, line in enumerate(lines):
        try:
            key = json.loads(line).get("case_id", "").encode()
        except (ValueError, AttributeError):
            key = None
        messages.append(RawMessage(key, line, offset % 4, offset))
    return messages


def bench_contract(messages: list[RawMessage]) -> float:
    now = time.time_ns() // 1000
    started = time.perf_counter()
    for m in messages:
        try:
            parse_event(m.value, key=m.key, now_us=now)
        except InvalidEvent:
            pass
    return len(messages) / (time.perf_counter() - started)


def bench_processor(messages: list[RawMessage]) -> float:
    retention = 35 * 86_400 * 1_000_000
    live = LiveState(hold_retention_us=retention, dedupe_retention_us=retention)
    processor = Processor(DictRepository(), live, event_clock=True)
    now = time.time_ns() // 1000
    started = time.perf_counter()
    for m in messages:
        processor.process(m, wall_now_us=now)
    return len(messages) / (time.perf_counter() - started)


def bench_worker(lines: list[bytes]) -> float:
    os.environ.setdefault("TTHC_DATA_DIR", str(ROOT / "var" / "bench"))
    os.environ.setdefault("TTHC_KAFKA_BOOTSTRAP", "127.0.0.1:39092")
    os.environ.setdefault("TTHC_KAFKA_CONTROLLER_PORT", "39094")
    os.environ.setdefault("TTHC_PROMETHEUS_PORT", "39090")
    os.environ.setdefault("TTHC_ALERTMANAGER_PORT", "39093")
    os.environ.setdefault("TTHC_WEB_PORT", "36066")
    from pipeline.feed.replay import replay_file
    from pipeline.infra.manager import down, up
    from tests.integration.workerproc import WorkerProcess, isolated_settings

    base = load_settings()
    up(base)
    try:
        settings = isolated_settings(replace(base, clock="event"), "bench")
        path = settings.data_dir / "scenario.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"\n".join(lines) + b"\n")
        replay_file(settings, str(path), progress=False)  # queued before the worker starts
        worker = WorkerProcess(settings).start()
        try:
            started = time.perf_counter()
            worker.wait_processed(len(lines), timeout=900)
            return len(lines) / (time.perf_counter() - started)
        finally:
            worker.stop()
    finally:
        down(base)


def main() -> None:
    scenario = build_scenario(seed=7, cases=3000)
    messages = _keyed(scenario.lines)
    results = {
        "messages": len(messages),
        "contract_msgs_per_s": round(bench_contract(messages)),
        "processor_msgs_per_s": round(bench_processor(messages)),
    }
    print(f"contract parse_event : {results['contract_msgs_per_s']:>8,} msg/s")
    print(f"processor (in memory): {results['processor_msgs_per_s']:>8,} msg/s")
    results["worker_msgs_per_s"] = round(bench_worker(scenario.lines))
    print(f"worker end to end    : {results['worker_msgs_per_s']:>8,} msg/s "
          f"({len(messages):,} messages through Kafka, the case changelog and chDB)")
    state = bench_state(int(os.environ.get("TTHC_BENCH_DOSSIERS", "1000000")))
    results["state"] = state
    print(f"rebuild on assignment: {state['rebuild_seconds']} s for {state['dossiers']:,} dossiers "
          f"({state['rebuild_dossiers_per_s']:,}/s), peak RSS {state['peak_rss_mib']} MiB")
    print(f"/metrics render      : {state['scrape_ms_by_history']} ms by dossiers of history "
          f"({state['series']:,} series)")
    print(f"per open dossier     : {state['open_record_bytes_per_dossier']} B record, "
          f"{state['rocksdb_bytes_per_open_dossier']} B on disk, {state['open_memory_bytes_per_dossier']} B in memory")
    out = ROOT / "var" / "bench" / "results.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1) + "\n")
    print(f"written to {out}")


if __name__ == "__main__":
    main()
