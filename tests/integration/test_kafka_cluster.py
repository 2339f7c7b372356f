"""A real three-broker KRaft cluster on this machine; one broker SIGKILLed mid-stream.

``infra up --brokers 3`` (here ``up(..., kafka_only=True)`` on the test's own data dir
and ports): three combined broker+controller nodes, the project's topics replicated
three times with ``min.insync.replicas=2``. While ``replay`` sends a seeded load at a
steady rate and the worker processes it, the broker leading the most partitions is
killed with SIGKILL; the pipeline must go on by itself with two brokers, the broker
is started again, and at the end nothing is lost or doubled (gauges = batch = oracle
on every series, ``case_events`` = distinct ids = valid events).

The recovery is measured (printed, not asserted: wall-clock time depends on the
machine): the time from the kill until more than two batches were processed after
it — a flush (facts, then case records with acks=all) must have completed by then.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections import Counter
from typing import Iterator

import pytest

from pipeline.config import Settings
from pipeline.feed.replay import replay_file
from pipeline.feed.scenario import build_scenario
from pipeline.infra.manager import running_pids, status, up
from pipeline.kafka_clients import kafka_python_options, topic_policy
from tests.integration.exactness import assert_exact_once_caught_up
from tests.integration.ownkafka import own_kafka_settings, running_kafka
from tests.integration.workerproc import WorkerProcess, isolated_settings

pytestmark = pytest.mark.integration

CASES = 2000
RATE = 400.0  # messages/s: the replay runs through the kill and the restart
BATCH = 200


@pytest.fixture(scope="module")
def cluster() -> Iterator[Settings]:
    yield from running_kafka(own_kafka_settings("cluster3", 10, kafka_brokers=3))


def _describe(settings: Settings, topics: list[str]) -> list[dict]:
    from kafka import KafkaAdminClient

    with KafkaAdminClient(**kafka_python_options(settings)) as admin:
        return admin.describe_topics(topics)


def _topic_min_insync(settings: Settings, topic: str) -> str:
    from kafka import KafkaAdminClient
    from kafka.admin import ConfigResource, ConfigResourceType

    with KafkaAdminClient(**kafka_python_options(settings)) as admin:
        answer = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
    return answer["topic"][topic]["min.insync.replicas"]["value"]


def test_cluster_topics_are_replicated_three_times_with_two_in_sync(cluster):
    assert {name: ok for name, ok in status(cluster).items() if name.startswith("kafka")} == {
        "kafka": True, "kafka-2": True, "kafka-3": True}
    settings = isolated_settings(cluster, "cluster-topics")
    worker = WorkerProcess(settings).start()
    try:
        changelog = f"{settings.app_id}-cases-changelog"
        topics = [settings.topic, settings.dlq_topic, changelog]
        for topic in _describe(settings, topics):
            assert {len(p["replica_nodes"]) for p in topic["partitions"]} == {3}, topic["name"]
            assert _topic_min_insync(settings, topic["name"]) == "2"
    finally:
        worker.stop()
    assert topic_policy(cluster, 3).min_insync == 2


def test_a_broker_killed_mid_stream_loses_and_doubles_nothing(cluster, tmp_path):
    scenario = build_scenario(seed=29, cases=CASES)
    total = len(scenario.lines)
    settings = isolated_settings(cluster, "cluster-kill", clock="event", batch_size=BATCH, flush_interval=0.3)
    path = tmp_path / "scenario.jsonl"
    path.write_bytes(b"\n".join(scenario.lines) + b"\n")

    worker = WorkerProcess(settings).start()
    failures: list[BaseException] = []

    def send() -> None:
        try:
            replay_file(settings, path, rate=RATE, progress=False)
        except BaseException as exc:  # noqa: BLE001 - reported by the test below
            failures.append(exc)

    sender = threading.Thread(target=send, daemon=True)
    try:
        sender.start()
        worker.wait_for(lambda: worker.health().get("processed", 0) >= total * 0.3, 120, "30% processed")

        # the victim: the broker leading most partitions of the input and the changelog
        leaders = Counter(
            p["leader_id"]
            for topic in _describe(settings, [settings.topic, f"{settings.app_id}-cases-changelog"])
            for p in topic["partitions"]
        )
        victim, led = leaders.most_common(1)[0]
        name = "kafka" if victim == 1 else f"kafka-{victim}"
        pid = running_pids(cluster)[name]
        at_kill = worker.health()["processed"]
        killed_at = time.monotonic()
        os.kill(pid, signal.SIGKILL)
        print(f"\nkilled broker {victim} (pid {pid}, leader of {led} of {sum(leaders.values())} partitions) "
              f"at {at_kill} of {total} messages processed")

        # the pipeline goes on with two brokers: more than two batches processed means a
        # flush (facts, then changelog with acks=all on 2 in-sync replicas) completed after the kill
        worker.wait_for(lambda: worker.health().get("processed", 0) > at_kill + 2 * BATCH, 120,
                        "processing to go on with one broker down")
        resumed_at = time.monotonic()
        assert running_pids(cluster)[name] is None  # it really was down meanwhile

        up(cluster, kafka_only=True)  # the killed broker rejoins; the other two were left alone
        assert all(pid for name, pid in running_pids(cluster).items() if name.startswith("kafka"))
        sender.join(timeout=300)
        assert not sender.is_alive(), "replay did not finish"
        assert not failures, f"replay failed: {failures[0]!r}"

        worker.wait_processed(total, timeout=300)
        caught_up_at = time.monotonic()
        assert_exact_once_caught_up(worker, scenario)
    finally:
        worker.stop()
    print(f"recovery after the broker kill: {resumed_at - killed_at:.1f} s from the kill until more than "
          f"{2 * BATCH} further messages were processed (so a flush after the kill had completed); "
          f"caught up {caught_up_at - killed_at:.1f} s after the kill, replay paced at {RATE:.0f} msg/s")
