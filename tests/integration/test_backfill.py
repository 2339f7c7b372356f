"""``backfill``: history loaded straight into the facts and the worker's changelog.

The first half of a scenario is backfilled (twice: the rerun changes nothing), then
the whole file goes through the broker as well. The worker started afterwards rebuilds
from the backfilled records, counts the broker's copies of backfilled events as
duplicates, and ends with gauges = batch = oracle and every valid event stored once.
"""

from __future__ import annotations

import asyncio
import json
import re

import pytest

from pipeline.contract.events import format_time, parse_time
from pipeline.feed.replay import replay_file
from pipeline.feed.scenario import build_scenario
from pipeline.stream.backfill import partition_of
from tests.integration.test_indicators_e2e import WINDOWS, _nonzero, _open_cases, _streaming
from tests.integration.workerproc import WorkerProcess, isolated_settings, run_cli, sql_json
from tests.oracle import expected_indicators, expected_open_cases

pytestmark = pytest.mark.integration


def _counts(stdout: str) -> dict[str, int]:
    found = re.search(
        r"([\d,]+) accepted, ([\d,]+) already there, ([\d,]+) duplicate, ([\d,]+) invalid", stdout
    )
    assert found, stdout
    names = ("accepted", "redelivered", "duplicate", "invalid")
    return {name: int(value.replace(",", "")) for name, value in zip(names, found.groups())}


def _placements(settings, total: int) -> list[tuple[bytes, int]]:
    """(key, partition) of every keyed message of the input topic (``total`` messages)."""
    from aiokafka import AIOKafkaConsumer

    async def read() -> list[tuple[bytes, int]]:
        consumer = AIOKafkaConsumer(
            settings.topic, bootstrap_servers=settings.kafka_bootstrap, auto_offset_reset="earliest",
            enable_auto_commit=False, group_id=None,
        )
        await consumer.start()
        try:
            seen: list[tuple[bytes, int]] = []
            read = 0
            while read < total:
                batches = await consumer.getmany(timeout_ms=2000)
                assert batches, f"the input topic ran dry after {read} of {total} messages"
                messages = [m for ms in batches.values() for m in ms]
                read += len(messages)
                seen += [(m.key, m.partition) for m in messages if m.key is not None]
            return seen
        finally:
            await consumer.stop()

    return asyncio.run(read())


def test_backfill_then_broker_then_worker_end_exact(infra, tmp_path):
    scenario = build_scenario(seed=41, cases=1500)
    lines = scenario.lines
    half = len(lines) // 2
    settings = isolated_settings(infra, "backfill", clock="event")
    first, whole = tmp_path / "first-half.jsonl", tmp_path / "whole.jsonl"
    first.write_bytes(b"\n".join(lines[:half]) + b"\n")
    whole.write_bytes(b"\n".join(lines) + b"\n")

    once = _counts(run_cli(settings, "backfill", str(first)).stdout)
    assert once["accepted"] > 0 and once["redelivered"] == 0
    assert sum(once.values()) == half
    again = _counts(run_cli(settings, "backfill", str(first)).stdout)
    # the same lines again: every accepted one is recognised as already there
    assert again == {**once, "accepted": 0, "redelivered": once["accepted"]}
    stored = sql_json(settings, "SELECT count() AS n, uniqExact(event_id) AS ids FROM case_events FINAL")[0]
    assert int(stored["n"]) == int(stored["ids"]) == once["accepted"]

    replay_file(settings, str(whole), progress=False)
    # backfill puts each case in the partition the broker puts its messages in
    placements = _placements(settings, len(lines))
    assert {partition for _, partition in placements} == set(range(settings.partitions))
    assert all(partition_of(key, settings.partitions) == partition for key, partition in placements)
    t_us = max(parse_time(e["occurred_at"]) for e in scenario.valid_events)
    at = format_time(t_us)
    oracle = _nonzero(expected_indicators(scenario.valid_events, at=at, windows=WINDOWS))
    worker = WorkerProcess(settings).start()
    try:
        worker.wait_for(lambda: _nonzero(_streaming(worker)) == oracle, 300, "gauges equal to the oracle")
        expected_open = {u: c for u, c in expected_open_cases(scenario.valid_events, at=at).items() if any(c)}
        assert _open_cases(worker) == expected_open
        worker.wait_for(lambda: worker.health().get("pending") == 0, 60, "nothing pending")
        stored = sql_json(settings, "SELECT count() AS n, uniqExact(event_id) AS ids FROM case_events FINAL")[0]
        assert int(stored["n"]) == int(stored["ids"]) == len(scenario.valid_events)
        batch_rows = json.loads(
            run_cli(settings, "indicators", "--window", ",".join(WINDOWS), "--at", at, "--format", "json").stdout
        )
        batch = {(r["indicator"], r["unit"], r["sector"], r["window"]): (r["numerator"], r["denominator"]) for r in batch_rows}
        assert _nonzero(batch) == oracle
    finally:
        worker.stop()
