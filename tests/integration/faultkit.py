"""Helpers of the fault tests (tests/integration/test_faults*.py): exactness, offsets,
raw produce/consume, RSS, Prometheus queries. Built on workerproc and the e2e helpers."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass

from pipeline.config import Settings
from pipeline.contract.events import format_time, parse_time
from pipeline.feed.scenario import Scenario
from tests.integration.test_indicators_e2e import WINDOWS, _nonzero, _open_cases, _streaming
from tests.integration.workerproc import WorkerProcess, run_cli, sql_json
from tests.oracle import expected_indicators, expected_open_cases


@dataclass(frozen=True)
class Expected:
    """What a worker must show once it has caught up with ``scenario``."""

    scenario: Scenario
    at: str
    oracle: dict
    open_cases: dict

    @classmethod
    def of(cls, scenario: Scenario) -> "Expected":
        t_us = max(parse_time(e["occurred_at"]) for e in scenario.valid_events)
        at = format_time(t_us)
        oracle = _nonzero(expected_indicators(scenario.valid_events, at=at, windows=WINDOWS))
        open_cases = {u: c for u, c in expected_open_cases(scenario.valid_events, at=at).items() if any(c)}
        return cls(scenario, at, oracle, open_cases)


def assert_exact(worker: WorkerProcess, settings: Settings, expected: Expected, timeout: float = 300) -> None:
    """Gauges = oracle = batch on every series, open cases too, and every valid event
    stored exactly once (``case_events`` count = distinct ids = valid events)."""
    worker.wait_for(lambda: _nonzero(_streaming(worker)) == expected.oracle, timeout, "gauges equal to the oracle")
    assert _open_cases(worker) == expected.open_cases
    stored = sql_json(settings, "SELECT count() AS n, uniqExact(event_id) AS ids FROM case_events FINAL")[0]
    assert int(stored["n"]) == int(stored["ids"]) == len(expected.scenario.valid_events)
    rows = json.loads(
        run_cli(settings, "indicators", "--window", ",".join(WINDOWS), "--at", expected.at, "--format", "json").stdout
    )
    batch = {(r["indicator"], r["unit"], r["sector"], r["window"]): (r["numerator"], r["denominator"]) for r in rows}
    assert _nonzero(batch) == expected.oracle


def rss_mb(pid: int) -> float:
    """The worker's RSS: its Faust process and its engine process (the benchmark's measure)."""
    from benchmarks.harness import rss_bytes

    return rss_bytes(pid) / 2**20


def committed_offsets(settings: Settings) -> dict[int, int]:
    """The consumer group's committed offsets on the input topic, by partition."""
    from aiokafka.admin import AIOKafkaAdminClient

    async def run() -> dict:
        admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
        await admin.start()
        try:
            return await admin.list_consumer_group_offsets(settings.app_id)
        finally:
            await admin.close()

    offsets = asyncio.run(run())
    return {tp.partition: meta.offset for tp, meta in offsets.items() if tp.topic == settings.topic and meta.offset >= 0}


def end_offsets(settings: Settings, topic: str | None = None) -> dict[int, int]:
    from kafka import KafkaConsumer, TopicPartition

    topic = topic or settings.topic
    consumer = KafkaConsumer(bootstrap_servers=settings.kafka_bootstrap)
    try:
        parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        return {tp.partition: off for tp, off in consumer.end_offsets(parts).items()}
    finally:
        consumer.close()


def produce_raw(settings: Settings, items: list[tuple[bytes | None, bytes]], chunk: int = 5000) -> list[tuple[int, int]]:
    """Send (key, value) pairs in order to the input topic, fast; their (partition, offset)."""
    from aiokafka import AIOKafkaProducer

    async def run() -> list[tuple[int, int]]:
        producer = AIOKafkaProducer(
            bootstrap_servers=settings.kafka_bootstrap, linger_ms=20, max_batch_size=1 << 20,
            max_request_size=2 << 20, acks="all", enable_idempotence=True,
        )
        await producer.start()
        try:
            placed: list[tuple[int, int]] = []
            for start in range(0, len(items), chunk):
                futures = [await producer.send(settings.topic, value=v, key=k) for k, v in items[start:start + chunk]]
                for meta in await asyncio.gather(*futures):
                    placed.append((meta.partition, meta.offset))
            return placed
        finally:
            await producer.stop()

    return asyncio.run(run())


@dataclass(frozen=True)
class DeadLetter:
    partition: int  # of the source message
    offset: int
    reason: str
    detail: str
    value: bytes = b""  # the letter's value (the message's, or an excerpt of it)
    headers: tuple[tuple[str, bytes], ...] = ()


def read_dead_letters(settings: Settings, count: int, timeout: float = 120) -> list[DeadLetter]:
    """Every message of the dead-letter topic, once at least ``count`` are there (or the timeout)."""
    from aiokafka import AIOKafkaConsumer

    async def run() -> list[DeadLetter]:
        consumer = AIOKafkaConsumer(
            settings.dlq_topic, bootstrap_servers=settings.kafka_bootstrap, auto_offset_reset="earliest",
            enable_auto_commit=False, group_id=None, fetch_max_bytes=16 << 20,
        )
        await consumer.start()
        letters: list[DeadLetter] = []
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                batches = await consumer.getmany(timeout_ms=1000, max_records=10000)
                for records in batches.values():
                    for r in records:
                        h = {k: v.decode("utf-8", "replace") for k, v in r.headers}
                        letters.append(DeadLetter(int(h["tthc-source-partition"]), int(h["tthc-source-offset"]),
                                                  h["tthc-reason"], h["tthc-detail"], r.value or b"",
                                                  tuple(r.headers)))
                if len(letters) >= count and not batches:
                    break
            return letters
        finally:
            await consumer.stop()

    return asyncio.run(run())


def prometheus_query(settings: Settings, expr: str) -> list[dict]:
    url = f"http://127.0.0.1:{settings.prometheus_port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=10) as response:
        answer = json.load(response)
    assert answer["status"] == "success", answer
    return answer["data"]["result"]


def alert_expr(name: str) -> str:
    """The committed rule's expression of alert ``name`` (deploy/prometheus/rules)."""
    import yaml

    from pipeline.config import PROJECT_ROOT

    for path in sorted((PROJECT_ROOT / "deploy" / "prometheus" / "rules").glob("*.yml")):
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                if rule.get("alert") == name:
                    return rule["expr"]
    raise AssertionError(f"no alert {name} in deploy/prometheus/rules")


class Stopwatch:
    def __init__(self) -> None:
        self.t0 = time.monotonic()

    def seconds(self) -> float:
        return time.monotonic() - self.t0
