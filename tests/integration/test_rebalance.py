"""A real consumer-group rebalance: a second worker joins mid-stream, then leaves.

Partitions move with their case records (the changelog), so after the second worker has
left, the first one holds every partition again and its gauges equal the oracle: nothing
lost, nothing doubled. Each worker has its own embedded ClickHouse here (one engine per
process), so the stored facts are the union of the two; with a ClickHouse server they
share one database.

Faust rebalances have been reported to fail without ``opentracing`` installed (it is a
pinned dependency); this proves a rebalance completes and both workers keep processing.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from pipeline.feed.replay import replay_file
from pipeline.feed.scenario import build_scenario
from pipeline.contract.events import format_time, parse_time
from pipeline.webguard import sql_token
from tests.integration.test_indicators_e2e import WINDOWS, _nonzero, _streaming
from tests.integration.workerproc import WorkerProcess, isolated_settings
from tests.oracle import expected_indicators

pytestmark = pytest.mark.integration


def _stored_ids(worker: WorkerProcess) -> set[str]:
    from pipeline.access import WorkerRunner

    _, rows = WorkerRunner(worker.settings.web_url, sql_token(worker.settings)).query("SELECT event_id FROM case_events FINAL")
    return {row[0] for row in rows}


def test_second_worker_joins_then_leaves_and_nothing_is_lost_or_doubled(infra, tmp_path):
    scenario = build_scenario(seed=5, cases=400)
    base = isolated_settings(infra, "rebalance", clock="event", batch_size=50, flush_interval=0.3)
    first = replace(base, data_dir=base.data_dir / "a")
    second = replace(base, data_dir=base.data_dir / "b", web_port=base.web_port + 1)
    half = len(scenario.lines) // 2
    paths = []
    for name, lines in (("first", scenario.lines[:half]), ("second", scenario.lines[half:])):
        path = tmp_path / f"{name}.jsonl"
        path.write_bytes(b"\n".join(lines) + b"\n")
        paths.append(path)
    expected = {event["event_id"] for event in scenario.valid_events}
    at = format_time(max(parse_time(e["occurred_at"]) for e in scenario.valid_events))
    oracle = _nonzero(expected_indicators(scenario.valid_events, at=at, windows=WINDOWS))

    a = WorkerProcess(first).start()
    b = WorkerProcess(second)
    try:
        replay_file(first, str(paths[0]), progress=False)
        a.wait_processed(half)
        b.start()  # joins the group: partitions move from a to b, with their state
        replay_file(first, str(paths[1]), progress=False)
        a.wait_for(
            lambda: (_stored_ids(a) | _stored_ids(b)) >= expected,
            180,
            "every valid event stored by one of the two workers",
        )
        assert b.health()["processed"] > 0, "the second worker got no partition"
        assert a.health()["status"] == b.health()["status"] == "ok"
        assert (_stored_ids(a) | _stored_ids(b)) == expected  # nothing lost, nothing invented
        assert b.stop() == 0  # leaves the group: its partitions come back to the first worker
        a.wait_for(
            lambda: a.health().get("partitions") == list(range(base.partitions)), 120, "all partitions back"
        )
        a.wait_for(lambda: _nonzero(_streaming(a)) == oracle, 120, "the first worker's gauges to equal the oracle")
        assert a.health()["status"] == "ok"
    finally:
        b.stop()
        a.stop()
