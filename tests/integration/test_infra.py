"""``pipeline.infra`` against real processes: Kafka round trip, Prometheus rules, Alertmanager."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
import uuid
from pathlib import Path

import pytest

from pipeline.config import PROJECT_ROOT, Settings, UserError
from pipeline.infra.manager import running_pids, status, up, wait_for_kafka

pytestmark = pytest.mark.integration


def _get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as resp:
        assert resp.status == 200
        return json.load(resp)


def test_up_brings_all_services(infra: Settings) -> None:
    assert status(infra) == {"kafka": True, "alertmanager": True, "prometheus": True}
    wait_for_kafka(infra.kafka_bootstrap, timeout=5)


def test_kafka_round_trip(infra: Settings) -> None:
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition

    value = f"ping-{uuid.uuid4()}".encode()
    producer = KafkaProducer(bootstrap_servers=infra.kafka_bootstrap)
    try:
        sent = producer.send(infra.topic, key=b"infra-test", value=value).get(timeout=30)
    finally:
        producer.close()

    consumer = KafkaConsumer(bootstrap_servers=infra.kafka_bootstrap, enable_auto_commit=False)
    try:
        partition = TopicPartition(infra.topic, sent.partition)
        consumer.assign([partition])
        consumer.seek(partition, sent.offset)
        records = consumer.poll(timeout_ms=15000, max_records=1)
    finally:
        consumer.close()
    got = [record.value for batch in records.values() for record in batch]
    assert got == [value]


def test_topics_have_configured_partitions(infra: Settings) -> None:
    from kafka import KafkaAdminClient

    with KafkaAdminClient(bootstrap_servers=infra.kafka_bootstrap) as admin:
        topics = {t["name"]: t for t in admin.describe_topics([infra.topic, infra.dlq_topic])}
    for name in (infra.topic, infra.dlq_topic):
        assert len(topics[name]["partitions"]) == infra.partitions


def test_prometheus_config_and_rules(infra: Settings) -> None:
    base = f"http://127.0.0.1:{infra.prometheus_port}"
    config = _get_json(f"{base}/api/v1/status/config")["data"]["yaml"]
    assert "job_name: tthc-worker" in config
    assert f"127.0.0.1:{infra.web_port}" in config
    groups = _get_json(f"{base}/api/v1/rules")["data"]["groups"]
    rules = {rule["name"] for group in groups if group["name"] == "tthc-recording" for rule in group["rules"]}
    assert "tthc:indicator_ratio:by_scope" in rules


def test_alertmanager_status(infra: Settings) -> None:
    body = _get_json(f"http://127.0.0.1:{infra.alertmanager_port}/api/v2/status")
    assert "tthc-oncall" in body["config"]["original"]


def test_second_up_is_noop(infra: Settings) -> None:
    before = running_pids(infra)
    assert all(before.values())
    up(infra)
    assert running_pids(infra) == before


def test_wait_for_kafka_times_out_with_user_error() -> None:
    with pytest.raises(UserError, match="not answering"):
        wait_for_kafka("127.0.0.1:1", timeout=1)


def test_missing_java_is_one_line_user_error(tmp_path: Path) -> None:
    empty_bin = tmp_path / "bin"
    empty_bin.mkdir()
    env = {
        **os.environ,
        "PATH": str(empty_bin),  # no java (nor anything else) on PATH
        "TTHC_DATA_DIR": str(tmp_path / "data"),
        "TTHC_KAFKA_BOOTSTRAP": "127.0.0.1:39092",
        "TTHC_KAFKA_CONTROLLER_PORT": "39094",
        "TTHC_PROMETHEUS_PORT": "39090",
        "TTHC_ALERTMANAGER_PORT": "39093",
    }
    result = subprocess.run(
        [sys.executable, "-m", "pipeline", "infra", "up"],
        cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 2, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    assert "java" in lines[0]
