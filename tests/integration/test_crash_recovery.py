"""A worker killed with SIGKILL three times loses and doubles nothing once it has caught up.

The kills land at different points: mid-stream, right after a restart while the worker
recovers its partitions and rebuilds its view, and while a flush is writing. Where
exactly each lands depends on ``TTHC_CRASH_SEED`` (default 1): ``scripts/crash-loop.sh N``
runs this test N times with different seeds (see docs/internals.md for the counts run).
"""

from __future__ import annotations

import os
import random
import signal
import time

import pytest

from pipeline.feed.replay import replay_file
from pipeline.feed.scenario import build_scenario
from tests.integration.exactness import assert_exact_once_caught_up
from tests.integration.workerproc import WorkerProcess, isolated_settings

pytestmark = pytest.mark.integration

CASES = 5000


def _kill(worker: WorkerProcess) -> None:
    assert worker.stop(signal.SIGKILL) == -signal.SIGKILL  # no flush, no commit, no goodbye


def test_three_sigkills_at_varied_points_then_gauges_batch_and_oracle_agree(infra, tmp_path):
    seed = int(os.environ.get("TTHC_CRASH_SEED", "1"))
    rng = random.Random(seed)
    scenario = build_scenario(seed=23, cases=CASES)
    total = len(scenario.lines)
    # a dead member holds its partitions until its session times out: 6 s (the broker's
    # minimum) rather than 15 keeps four restarts quick
    settings = isolated_settings(
        infra, "crash", clock="event", batch_size=200, flush_interval=0.3, session_timeout=6.0
    )
    path = tmp_path / "scenario.jsonl"
    path.write_bytes(b"\n".join(scenario.lines) + b"\n")
    replay_file(settings, str(path), progress=False)

    # 1. mid-stream, after a seeded share of the messages
    worker = WorkerProcess(settings).start()
    share = rng.uniform(0.1, 0.4)
    worker.wait_for(lambda: worker.health().get("processed", 0) >= total * share, 300, f"{share:.0%} processed")
    _kill(worker)

    # 2. right after the restart, while it recovers its records and rebuilds its view
    # (a rebuild of 5,000 cases is short: polled closely, then a seeded extra delay)
    worker = WorkerProcess(settings).start(wait_healthy=False)
    def rebuilding_or_done() -> bool:
        health = worker.health()
        return bool(health.get("rebuilding")) or health.get("status") == "ok"

    worker.wait_for(rebuilding_or_done, 120, "the restarted worker to begin rebuilding", interval=0.02)
    time.sleep(rng.uniform(0.0, 0.3))
    _kill(worker)

    # 3. while a flush is writing rows or case records: the first flush seen after a
    # seeded number of messages. At least 60 % of the messages are left after the first
    # kill and the worker reads thousands a second, so /healthz is polled closely (at
    # 0.5 s the worker could finish before the Nth flush was seen: a loop of 10 timed out)
    worker = WorkerProcess(settings).start()
    after = rng.randint(1, int(total * 0.3))
    worker.wait_for(lambda: worker.health().get("processed", 0) >= after, 300, f"{after} processed", interval=0.005)
    worker.wait_for(lambda: worker.health().get("flushing"), 60, f"a flush in progress after {after} messages",
                    interval=0.005)
    _kill(worker)

    worker = WorkerProcess(settings).start()
    try:
        assert_exact_once_caught_up(worker, scenario)
    finally:
        worker.stop()
