"""SIGKILLs while DVCQG calls are loaded and translated: ``intake --file`` killed mid-way
and sent again, then the worker (which translates the raw topic inside its own process,
``pipeline/stream/translation.py``) killed three times at varied points — early (while it
owns and recovers its partitions), and after a varied number of records translated —
then left to finish. Each run must end with exactly the contract event ids the mapping
implies in ``case_events`` (none missing, none extra, none stored twice), every rating
summary in ``dvcqg_ratings``, and the batch indicators of the simulator's own contract
events.

Where the kills land depends on ``TTHC_DVCQG_KILL_SEED`` (default 1):
``scripts/dvcqg-kill-loop.sh N`` runs this test N times with different seeds."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import replace

import pytest

from pipeline.config import load_settings
from pipeline.contract.events import format_time, parse_time
from pipeline.feed.simulate import write_history
from pipeline.infra.manager import up
from tests.integration.test_dvcqg_e2e import CARRIED, expected_events
from tests.integration.workerproc import ROOT, WorkerProcess, isolated_settings, run_cli, settings_env, sql_json
from tests.oracle import expected_indicators

pytestmark = pytest.mark.integration

WINDOWS = ("30d", "ytd")


def _carried(figures: dict) -> dict:
    return {k: v for k, v in figures.items() if k[0] in CARRIED and v[1] > 0}


def _rating_months(calls) -> set[tuple[str, str]]:
    months = set()
    for line in calls.read_text(encoding="utf-8").splitlines():
        body = json.loads(line)
        if body.get("service") == "DongBoDanhGia":
            for item in body["data"]:
                month, year = str(item["NgayTongHop"]).split("-")
                months.add((body["madonvi"], f"{year}-{int(month):02d}"))
    return months


def _intake(settings, calls) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "pipeline", "intake", "--file", str(calls)], cwd=ROOT,
                            env=settings_env(settings), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _kill_when_translated(worker: WorkerProcess, threshold: int, idle_s: float = 20.0) -> str:
    """SIGKILL ``worker`` once it has translated ``threshold`` raw records (a record seen
    before counts too), or once its count stood still for ``idle_s`` (nothing left)."""
    last, since, deadline = -1.0, time.monotonic(), time.monotonic() + 300
    while time.monotonic() < deadline:
        try:
            count = worker.counter("tthc_dvcqg_records_total")
        except OSError:
            count = 0.0
        if count >= threshold:
            worker.stop(signal.SIGKILL)
            return f"after {int(count)} records"
        if count != last:
            last, since = count, time.monotonic()
        elif time.monotonic() - since > idle_s:
            worker.stop(signal.SIGKILL)
            return f"idle at {int(count)} records"
        time.sleep(0.1)
    raise AssertionError("the worker neither translated nor stood still")


def test_sigkills_of_intake_and_worker_while_translating(tmp_path):
    seed = int(os.environ.get("TTHC_DVCQG_KILL_SEED", "1"))
    rng = random.Random(seed)
    base = load_settings()
    up(base, kafka_only=True)
    # a dead member holds its partitions until its session times out: 6 s keeps the restarts quick
    settings = isolated_settings(base, "dvkill", clock="event", batch_size=300, flush_interval=0.3,
                                 session_timeout=6.0)
    settings = replace(settings, intake_accounts_file=str(tmp_path / "none"))
    contract, calls = tmp_path / "events.jsonl", tmp_path / "calls.jsonl"
    write_history(settings, 2025, str(contract), scale=0.01, days=30, seed=7, progress=False)
    write_history(settings, 2025, str(calls), scale=0.01, days=30, seed=7, progress=False, output_format="dvcqg")
    events = [json.loads(line) for line in contract.read_text(encoding="utf-8").splitlines()]
    expected = expected_events(settings, calls)
    assert len(expected) > 500

    # the worker translating while the intake loads the sync log; the intake SIGKILLed
    # mid-way, then the whole log sent again while workers are SIGKILLed at varied points
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    kills = []
    worker = WorkerProcess(settings).start()
    load = _intake(settings, calls)
    time.sleep(rng.uniform(0.5, 3.0))
    load.kill()
    load.wait()
    load = _intake(settings, calls)
    kills.append(_kill_when_translated(worker, rng.randint(1, 3000)))
    worker = WorkerProcess(settings).start(wait_healthy=False)
    time.sleep(rng.uniform(2.0, 10.0))  # early: owning and recovering the partitions, or the first batches
    worker.stop(signal.SIGKILL)
    kills.append("early")
    worker = WorkerProcess(settings).start(wait_healthy=False)
    kills.append(_kill_when_translated(worker, rng.randint(1, 3000)))
    assert load.wait(600) == 0

    worker = WorkerProcess(settings).start()
    try:
        worker.wait_for(
            lambda: int(sql_json(settings, "SELECT uniqExact(event_id) AS n FROM case_events")[0]["n"]) >= len(expected),
            600, f"{len(expected)} contract events stored")
        worker.wait_for(lambda: worker.health().get("pending") == 0, 60, "nothing pending")
        stored = sql_json(settings, "SELECT event_id, count() AS n FROM case_events FINAL GROUP BY event_id")
        ratings = sql_json(settings, "SELECT madonvi, month FROM dvcqg_ratings FINAL")
        at = format_time(max(parse_time(e["occurred_at"]) for e in events))
        batch_rows = json.loads(
            run_cli(settings, "indicators", "--window", ",".join(WINDOWS), "--at", at, "--format", "json").stdout
        )
    finally:
        worker.stop()

    print(f"dvcqg kill run (seed {seed}): kills at {kills}; {len(expected)} events")
    assert {row["event_id"] for row in stored} == set(expected)  # none missing, none extra
    assert all(int(row["n"]) == 1 for row in stored)  # none stored twice
    assert {(row["madonvi"], row["month"]) for row in ratings} == _rating_months(calls)
    oracle = _carried(expected_indicators(events, at=at, windows=WINDOWS))
    batch = _carried({(r["indicator"], r["unit"], r["sector"], r["window"]): (r["numerator"], r["denominator"])
                      for r in batch_rows})
    assert len(oracle) > 50 and batch == oracle
