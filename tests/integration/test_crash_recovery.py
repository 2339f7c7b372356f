"""A worker killed with SIGKILL mid-stream loses and double-counts nothing once restarted."""

from __future__ import annotations

import json
import signal

import pytest

from pipeline.contract.events import format_time, parse_time
from pipeline.feed.replay import replay_file
from pipeline.feed.scenario import build_scenario
from tests.integration.test_indicators_e2e import _nonzero, _streaming
from tests.integration.workerproc import WorkerProcess, isolated_settings, run_cli, sql_json
from tests.oracle import expected_indicators

pytestmark = pytest.mark.integration

WINDOWS = ("30d", "mtd", "ytd")


def test_sigkill_mid_stream_then_restart_matches_the_oracle(infra, tmp_path):
    scenario = build_scenario(seed=23, cases=1000)
    settings = isolated_settings(infra, "crash", clock="event", batch_size=100, flush_interval=0.3)
    path = tmp_path / "scenario.jsonl"
    path.write_bytes(b"\n".join(scenario.lines) + b"\n")
    at = format_time(max(parse_time(e["occurred_at"]) for e in scenario.valid_events))
    oracle = _nonzero(expected_indicators(scenario.valid_events, at=at, windows=WINDOWS))

    replay_file(settings, str(path), progress=False)
    worker = WorkerProcess(settings).start()
    worker.wait_for(lambda: worker.health().get("processed", 0) >= len(scenario.lines) // 3, 120, "a third processed")
    assert worker.stop(signal.SIGKILL) == -signal.SIGKILL  # no flush, no commit, no goodbye

    worker = WorkerProcess(settings).start()
    try:
        def caught_up() -> bool:
            streaming = _nonzero(_streaming(worker))
            return {k: v for k, v in streaming.items() if k[3] in WINDOWS} == oracle

        worker.wait_for(caught_up, 300, "the restarted worker's gauges to equal the oracle")
        stored = sql_json(settings, "SELECT count() AS n, uniqExact(event_id) AS ids FROM case_events FINAL")[0]
        assert int(stored["n"]) == int(stored["ids"]) == len(scenario.valid_events)
        batch_rows = json.loads(
            run_cli(settings, "indicators", "--window", ",".join(WINDOWS), "--at", at, "--format", "json").stdout
        )
        batch = {(r["indicator"], r["unit"], r["sector"], r["window"]): (r["numerator"], r["denominator"]) for r in batch_rows}
        assert _nonzero(batch) == oracle
    finally:
        worker.stop()
