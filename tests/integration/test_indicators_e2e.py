"""Streaming equals batch equals the oracle, through the real broker, with a restart halfway."""

from __future__ import annotations

import json

import pytest

from pipeline.contract.events import format_time, parse_time
from pipeline.feed.replay import replay_file
from pipeline.feed.scenario import build_scenario
from tests.integration.workerproc import WorkerProcess, isolated_settings, run_cli
from tests.oracle import expected_indicators, expected_open_cases

pytestmark = pytest.mark.integration

WINDOWS = ("1h", "24h", "7d", "30d", "mtd", "qtd", "ytd")


def _nonzero(figures: dict) -> dict:
    return {key: value for key, value in figures.items() if value[1] > 0}


def _streaming(worker: WorkerProcess) -> dict:
    numerators, denominators = {}, {}
    for (name, labels), value in worker.metrics().items():
        if name in ("tthc_indicator_numerator", "tthc_indicator_denominator"):
            label = dict(labels)
            key = (label["indicator"], label["unit"], label["sector"], label["window"])
            (numerators if name.endswith("numerator") else denominators)[key] = int(value)
    return {key: (numerators[key], denominators[key]) for key in denominators}


def _open_cases(worker: WorkerProcess) -> dict:
    names = ("tthc_open_cases", "tthc_overdue_open_cases", "tthc_overdue_without_apology_cases")
    result: dict[str, list[int]] = {}
    for (name, labels), value in worker.metrics().items():
        if name in names:
            result.setdefault(dict(labels)["unit"], [0, 0, 0])[names.index(name)] = int(value)
    return {unit: tuple(v) for unit, v in result.items() if any(v)}


def test_streaming_batch_and_oracle_agree_across_a_restart(infra, tmp_path):
    scenario = build_scenario(seed=11, cases=3000)
    settings = isolated_settings(infra, "indicators", clock="event", batch_size=500, flush_interval=0.5)
    half = len(scenario.lines) // 2
    first, second = tmp_path / "first.jsonl", tmp_path / "second.jsonl"
    first.write_bytes(b"\n".join(scenario.lines[:half]) + b"\n")
    second.write_bytes(b"\n".join(scenario.lines[half:]) + b"\n")
    t_us = max(parse_time(e["occurred_at"]) for e in scenario.valid_events)
    at = format_time(t_us)

    worker = WorkerProcess(settings).start()
    try:
        replay_file(settings, str(first), progress=False)
        worker.wait_processed(half)
    finally:
        assert worker.stop() == 0

    replay_file(settings, str(second), progress=False)  # arrives while the worker is down
    worker = WorkerProcess(settings).start()
    try:
        worker.wait_processed(len(scenario.lines) - half)
        worker.wait_for(
            lambda: worker.counter("tthc_clock_seconds") == pytest.approx(t_us / 1e6, abs=1e-6),
            30,
            "event clock at the scenario's last occurred_at",
        )
        streaming = _nonzero(_streaming(worker))
        open_cases = _open_cases(worker)
        batch_rows = json.loads(
            run_cli(settings, "indicators", "--window", ",".join(WINDOWS), "--at", at, "--format", "json").stdout
        )
    finally:
        worker.stop()

    oracle = _nonzero(expected_indicators(scenario.valid_events, at=at, windows=WINDOWS))
    batch = _nonzero(
        {(r["indicator"], r["unit"], r["sector"], r["window"]): (r["numerator"], r["denominator"]) for r in batch_rows}
    )
    assert len(oracle) > 500  # the scenario exercises many series
    assert {k[0] for k in oracle} == {
        "on_time", "on_time_766", "early", "online_payment", "full_online", "remote", "satisfaction", "e_result",
        "digitized", "data_reuse", "vneid_auth", "apology_coverage", "feedback_on_time",
    }
    assert batch == oracle
    assert streaming == oracle
    expected_open = {u: c for u, c in expected_open_cases(scenario.valid_events, at=at).items() if any(c)}
    assert open_cases == expected_open
