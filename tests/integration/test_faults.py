"""Faults against the real parts: the broker stopped for 30 s, ClickHouse's disk full, a
dead-letter topic the broker refuses. Each test prints its measured recovery time
(``-s`` shows it; docs/faults.md); no timing is asserted.

The flood of hostile messages is in test_faults_flood.py.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import os
import subprocess
import time

import pytest

from pipeline.feed.replay import replay_file
from pipeline.feed.scenario import build_scenario
from pipeline.infra.manager import _services, up
from pipeline.infra.processes import stop
from tests.integration.faultkit import (
    Expected,
    Stopwatch,
    alert_expr,
    assert_exact,
    committed_offsets,
    end_offsets,
    produce_raw,
    prometheus_query,
    read_dead_letters,
)
from tests.integration.workerproc import WorkerProcess, isolated_settings, sql_json

pytestmark = pytest.mark.integration

OUTAGE_S = 30.0


def _write(path, lines):
    path.write_bytes(b"\n".join(lines) + b"\n")
    return str(path)


def _problems(worker: WorkerProcess) -> dict[str, str]:
    health = worker.health()
    return {p["problem"]: p["detail"] for p in health.get("problems", [])} if health.get("status") == "degraded" else {}


def test_broker_stopped_for_30s_mid_stream_then_worker_recovers_by_itself(infra, tmp_path):
    scenario = build_scenario(seed=31, cases=3000)
    expected = Expected.of(scenario)
    settings = isolated_settings(infra, "outage", clock="event", batch_size=200, flush_interval=0.3)
    half = len(scenario.lines) // 2
    replay_file(settings, _write(tmp_path / "a.jsonl", scenario.lines[:half]), progress=False)
    worker = WorkerProcess(settings).start()
    kafka = _services(infra)["kafka"]
    try:
        worker.wait_for(lambda: worker.health().get("processed", 0) >= half * 0.3, 300, "30% of the first half")
        down = Stopwatch()  # from the SIGTERM
        stop(kafka, timeout=60)  # SIGTERM; the broker shuts down cleanly (a real outage of the service)
        stopped = down.seconds()
        worker.wait_for(lambda: "kafka" in _problems(worker), 60, "/healthz to report the broker")
        reported = down.seconds()
        detail = _problems(worker)["kafka"]
        assert "broker unreachable" in detail and settings.kafka_bootstrap in detail
        assert worker.counter("tthc_kafka_up") == 0
        print(f"\n[outage] SIGTERM: the broker took {stopped:.1f}s to stop; /healthz degraded {reported:.1f}s after the "
              f"SIGTERM: {detail!r}")
        time.sleep(max(0.0, OUTAGE_S - down.seconds()))
        assert worker.process.poll() is None, "the worker must ride out the outage, not exit"
        assert "kafka" in _problems(worker), "still degraded at the end of the outage"
        up(infra)  # the infra manager starts the broker again (same data, same port)
        back = Stopwatch()
        # the second half arrives after the broker is back
        replay_file(settings, _write(tmp_path / "b.jsonl", scenario.lines[half:]), progress=False)
        worker.wait_for(
            lambda: worker.health().get("status") == "ok" and worker.health().get("pending") == 0
            and worker.counter("tthc_kafka_up") == 1,
            300, "the worker healthy again",
        )
        healthy = back.seconds()
        assert_exact(worker, settings, expected)
        exact = back.seconds()
        print(f"[outage] broker down {OUTAGE_S:.0f}s (reported after {reported:.1f}s); after it came back: "
              f"/healthz ok in {healthy:.1f}s, every fact and gauge exact in {exact:.1f}s")
    finally:
        if kafka.pid() is None:
            up(infra)
        worker.stop()


class _SmallDisk:
    """A size-limited directory (tmpfs) under the worker's embedded ClickHouse, and a
    filler file that takes all its free space: the engine's writes then fail for real
    (``NOT_ENOUGH_SPACE``), until the filler is removed. Needs root (mount), as CI runs."""

    def __init__(self, path, size_mb: int = 256) -> None:
        self.path = path
        self.size_mb = size_mb
        self.filler = path / "filler"

    def __enter__(self) -> "_SmallDisk":
        self.path.mkdir(parents=True, exist_ok=True)
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={self.size_mb}m", "tmpfs", str(self.path)], check=True)
        return self

    def fill(self) -> None:
        st = os.statvfs(self.path)
        with open(self.filler, "wb") as f:
            os.posix_fallocate(f.fileno(), 0, st.f_bavail * st.f_frsize)

    def free(self) -> None:
        self.filler.unlink()

    def __exit__(self, *exc) -> None:
        subprocess.run(["umount", "-l", str(self.path)], check=False)


def test_clickhouse_disk_full_then_freed_offsets_hold_alert_expression_true_and_all_lands_once(infra, tmp_path):
    scenario = build_scenario(seed=32, cases=2000)
    expected = Expected.of(scenario)
    settings = isolated_settings(infra, "diskfull", clock="event", batch_size=200, flush_interval=0.3)
    third = len(scenario.lines) // 3
    with _SmallDisk(settings.data_dir / "clickhouse") as disk:
        worker = WorkerProcess(settings).start()
        try:
            replay_file(settings, _write(tmp_path / "a.jsonl", scenario.lines[:third]), progress=False)
            worker.wait_processed(third)
            ends = end_offsets(settings)
            worker.wait_for(lambda: committed_offsets(settings) == ends, 60, "offsets of the written part committed")
            errors_before = worker.counter("tthc_clickhouse_write_errors_total")

            disk.fill()
            failing = Stopwatch()
            replay_file(settings, _write(tmp_path / "b.jsonl", scenario.lines[third:]), progress=False)
            worker.wait_for(lambda: worker.counter("tthc_clickhouse_write_errors_total") >= errors_before + 3, 120,
                            "ClickHouse write errors")
            problems = _problems(worker)
            assert "ClickHouse write" in problems and "NOT_ENOUGH_SPACE" in problems["ClickHouse write"], problems
            expr = alert_expr("TthcClickHouseWriteErrors")
            instance = f"127.0.0.1:{settings.web_port}"
            worker.wait_for(lambda: any(r["metric"].get("instance") == instance for r in prometheus_query(settings, expr)),
                            120, "the alert expression true in Prometheus")
            # nothing acked past the unwritten facts, however long it lasts
            assert worker.process.poll() is None
            assert committed_offsets(settings) == ends
            assert worker.health()["pending"] > 0
            print(f"\n[disk full] write errors {worker.counter('tthc_clickhouse_write_errors_total') - errors_before:.0f}, "
                  f"alert expression true after {failing.seconds():.1f}s, offsets held at {ends}")

            disk.free()
            freed = Stopwatch()
            worker.wait_for(lambda: worker.health().get("status") == "ok" and worker.health().get("pending") == 0
                            and worker.health().get("processed", 0) >= len(scenario.lines), 300, "writes recovered")
            recovered = freed.seconds()
            assert_exact(worker, settings, expected)
            assert committed_offsets(settings) == end_offsets(settings)
            print(f"[disk full] space freed: all written and /healthz ok in {recovered:.1f}s, "
                  f"exact in {freed.seconds():.1f}s")
        finally:
            worker.stop()


def _set_topic_config(settings, topic: str, **configs: str) -> None:
    from kafka import KafkaAdminClient
    from kafka.admin import ConfigResource, ConfigResourceType

    from pipeline.infra.kafka import ensure_topics

    ensure_topics(settings.kafka_bootstrap, [topic], settings.partitions)  # else the first send auto-creates it
    with KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap) as admin:
        # incremental: only these keys change; a topic config not set before is not "unknown"
        admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic, configs=configs)], raise_on_unknown=False,
                            incremental=True)


def test_dead_letter_topic_refusing_writes_blocks_acks_until_the_rejection_lands(infra, tmp_path):
    scenario = build_scenario(seed=33, cases=300, malformed_rate=0.0, duplicate_rate=0.0)
    expected = Expected.of(scenario)
    settings = isolated_settings(infra, "dlq", clock="event", batch_size=50, flush_interval=0.3)
    worker = WorkerProcess(settings).start()  # Faust creates the dead-letter topic
    try:
        half = len(scenario.lines) // 2
        replay_file(settings, _write(tmp_path / "a.jsonl", scenario.lines[:half]), progress=False)
        worker.wait_processed(half)
        # the broker refuses every write to the dead-letter topic: no record fits in 16 bytes
        _set_topic_config(settings, settings.dlq_topic, **{"max.message.bytes": "16"})
        refused = Stopwatch()
        bad = [(b"dlq-probe-1", b'{"not": "an event"'), (None, b"\xff\xfe not utf-8")]
        placed = produce_raw(settings, bad)
        replay_file(settings, _write(tmp_path / "b.jsonl", scenario.lines[half:]), progress=False)
        worker.wait_for(lambda: "dead-letter topic" in _problems(worker), 120, "/healthz to report the dead-letter topic")
        detail = _problems(worker)["dead-letter topic"]
        assert settings.dlq_topic in detail and "not written" in detail
        worker.wait_for(lambda: worker.counter("tthc_dead_letter_errors_total") >= 2, 60, "dead-letter errors counted")
        assert worker.counter("tthc_dead_letters_unwritten") >= 1
        time.sleep(3)  # longer than the commit interval: still nothing acked past the rejections
        committed = committed_offsets(settings)
        for partition, offset in placed:
            assert committed.get(partition, 0) <= offset, (partition, offset, committed)
        assert read_dead_letters(settings, 0, timeout=3) == []
        print(f"\n[dlq] refused: reported {refused.seconds():.1f}s after the refusal started; offsets held at {committed}")

        _set_topic_config(settings, settings.dlq_topic, **{"max.message.bytes": "1048588"})
        writable = Stopwatch()
        worker.wait_for(lambda: worker.health().get("status") == "ok" and worker.health().get("pending") == 0
                        and worker.counter("tthc_dead_letters_unwritten") == 0, 120, "dead letters delivered")
        recovered = writable.seconds()
        letters = read_dead_letters(settings, len(bad))
        assert {(d.partition, d.offset, d.reason) for d in letters} == {
            (placed[0][0], placed[0][1], "invalid_json"), (placed[1][0], placed[1][1], "not_utf8")
        }
        assert_exact(worker, settings, expected)
        assert committed_offsets(settings) == end_offsets(settings)
        print(f"[dlq] writable again: rejections delivered and offsets moving in {recovered:.1f}s")
    finally:
        worker.stop()


def test_one_megabyte_message_never_blocks_the_acks(infra):
    """Issue 20, finding 2: a 1,000,108-byte message (under the broker's limit, over the
    contract's and over Faust's producer default) followed by 10,000 valid ones. Before,
    its dead letter (the whole message) was refused by the producer and retried forever,
    and nothing was acked again. Now: every valid one acked and counted exactly, the big
    one whole in invalid_events and a 4 KiB excerpt with its size and hash in the DLQ."""
    from pipeline.contract.rejected import DLQ_MAX_MESSAGE_BYTES, EXCERPT_BYTES
    from pipeline.kafka_clients import topic_max_message_bytes

    full = build_scenario(seed=35, cases=2500, malformed_rate=0.0, duplicate_rate=0.0)
    assert len(full.lines) == len(full.valid_events) >= 10_000  # one valid event per line, in order
    scenario = dataclasses.replace(full, lines=full.lines[:10_000], valid_events=full.valid_events[:10_000])
    expected = Expected.of(scenario)
    settings = isolated_settings(infra, "bigdlq", clock="event")
    big = json.dumps({"schema_version": 1, "event_id": "big-1", "event_type": "received", "case_id": "big-1",
                      "note": "y" * 999_950}).encode()
    big += b" " * (1_000_108 - len(big))  # trailing JSON whitespace up to the size
    assert len(big) == 1_000_108
    items = [(b"big-1", big)] + [(json.loads(line)["case_id"].encode(), line) for line in scenario.lines]
    worker = WorkerProcess(settings).start()
    try:
        # the worker created its dead-letter topic with the limit set on purpose, and read it back
        assert asyncio.run(topic_max_message_bytes(settings, settings.dlq_topic)) == DLQ_MAX_MESSAGE_BYTES
        sent = Stopwatch()
        placed = produce_raw(settings, items)
        worker.wait_processed(len(items), timeout=600)
        ends = end_offsets(settings)
        worker.wait_for(lambda: committed_offsets(settings) == ends, 120, "every message acked (committed = end)")
        acked_s = sent.seconds()
        assert_exact(worker, settings, expected)
        assert worker.counter("tthc_events_total", outcome="accepted") == 10_000
        assert worker.counter("tthc_invalid_events_total", reason="too_large") == 1
        assert worker.counter("tthc_events_total", outcome="invalid") == 1
        assert worker.counter("tthc_dead_letters_unwritten") == 0
        assert worker.counter("tthc_dead_letter_errors_total") == 0
        rows = sql_json(settings, "SELECT kafka_partition AS p, kafka_offset AS o, reason, length(raw) AS n, "
                                  "raw_size, raw_sha256 FROM invalid_events FINAL")
        assert [(int(r["p"]), int(r["o"]), r["reason"], int(r["n"]), int(r["raw_size"]), r["raw_sha256"])
                for r in rows] == [(*placed[0], "too_large", len(big), len(big), "")]  # kept whole (under 1 MiB)
        letters = read_dead_letters(settings, 1, timeout=60)
        assert [(d.partition, d.offset, d.reason) for d in letters] == [(*placed[0], "too_large")]
        headers = dict(letters[0].headers)
        assert letters[0].value == big[:EXCERPT_BYTES]
        assert headers["tthc-original-size"] == b"1000108" and headers["tthc-truncated"] == b"value"
        assert headers["tthc-original-sha256"] == hashlib.sha256(big).hexdigest().encode()
        print(f"\n[bigdlq] a 1,000,108-byte message + 10,000 valid: all processed and acked {acked_s:.1f}s after "
              f"the first send; exact (gauges = oracle = batch) {sent.seconds():.1f}s after it")
    finally:
        worker.stop()
