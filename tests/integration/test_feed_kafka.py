"""replay and simulate against the real broker: bytes and keys arrive exactly."""

from __future__ import annotations

import json
import uuid
from collections import Counter
from dataclasses import replace

import pytest

from pipeline.config import Settings, UserError
from pipeline.feed.replay import replay_file
from pipeline.feed.simulate import run_simulation

pytestmark = pytest.mark.integration


def _fresh_topic(settings, name: str):
    from pipeline.infra.kafka import ensure_topics

    topic = f"test.feed.{name}.{uuid.uuid4().hex[:8]}"
    ensure_topics(settings.kafka_bootstrap, [topic], settings.partitions)
    return replace(settings, topic=topic)


def _consume(settings, expected: int, timeout_s: float = 30.0) -> list:
    """Every record of the topic, in (partition, offset) order."""
    import time

    from kafka import KafkaConsumer

    consumer = KafkaConsumer(
        settings.topic,
        bootstrap_servers=settings.kafka_bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
        consumer_timeout_ms=3000,
    )
    records = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(records) < expected and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=1000).values():
                records.extend(batch)
        # nothing more than expected arrives
        for batch in consumer.poll(timeout_ms=1000).values():
            records.extend(batch)
    finally:
        consumer.close()
    return sorted(records, key=lambda r: (r.partition, r.offset))


def test_replay_sends_every_line_as_is_keyed_by_case_id(infra, tmp_path):
    settings = _fresh_topic(infra, "replay")
    lines = [
        b'{"schema_version":1,"event_id":"e1","event_type":"received","case_id":"HS-1"}',
        b'{"case_id": "HS-2", "spaced": true}',
        '{"case_id":"Hồ-sơ-3","note":"tiếng Việt"}'.encode(),
        b'{"case_id":"HS-1","n":2}',
        b"this is not json",
        b'[{"case_id":"HS-9"}]',
        b'{"case_id":"HS-bad","x":"\xff"}',
        b'{"case_id":"HS-2","n":3}',
        b'{"no_case_id":true}',
        b'{"case_id":"HS-big","pad":"' + b"x" * 70_000 + b'"}',
    ]
    path = tmp_path / "small.jsonl"
    path.write_bytes(b"\n".join(lines[:3]) + b"\n\n" + b"\n".join(lines[3:]) + b"\n")

    assert replay_file(settings, path, progress=False) == len(lines)
    records = _consume(settings, len(lines))

    assert len(records) == len(lines)
    assert Counter(r.value for r in records) == Counter(lines)
    expected_keys = {
        lines[0]: b"HS-1", lines[1]: b"HS-2", lines[2]: "Hồ-sơ-3".encode(), lines[3]: b"HS-1",
        lines[4]: None, lines[5]: None, lines[6]: None, lines[7]: b"HS-2", lines[8]: None,
        lines[9]: b"HS-big",
    }
    for record in records:
        assert record.key == expected_keys[record.value]
    # one case -> one partition, in file order
    for key in (b"HS-1", b"HS-2"):
        same = [r for r in records if r.key == key]
        assert len({r.partition for r in same}) == 1
        assert [r.value for r in same] == [line for line in lines if expected_keys[line] == key]


def test_replay_with_rate_delivers_every_line(infra, tmp_path):
    # the pacing itself is tested with an injected clock (tests/unit/test_feed.py)
    settings = _fresh_topic(infra, "rate")
    path = tmp_path / "rate.jsonl"
    path.write_bytes(b"".join(b'{"case_id":"C%d"}\n' % i for i in range(31)))
    assert replay_file(settings, path, rate=20.0, progress=False) == 31
    assert len(_consume(settings, 31)) == 31


def test_unreachable_kafka_is_a_one_line_user_error(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_bytes(b'{"case_id":"A"}\n')
    settings = replace(Settings(), kafka_bootstrap="127.0.0.1:1")
    with pytest.raises(UserError) as info:
        replay_file(settings, path)
    assert str(info.value).startswith("cannot reach Kafka at 127.0.0.1:1: run `python -m pipeline infra up`")


def test_simulation_delivers_what_it_reports(infra):
    from pipeline.contract.events import parse_event

    settings = _fresh_topic(infra, "simulate")
    sent = run_simulation(settings, rate=50.0, duration=3.0, units=5, incidents=[], seed=3, progress=False)
    assert sent > 0  # how many per second is tested with an injected clock (tests/unit/test_feed.py)
    records = _consume(settings, sent)
    assert len(records) == sent
    now_us = __import__("time").time_ns() // 1000
    for record in records:
        event = parse_event(record.value, key=record.key, now_us=now_us)  # valid, keyed by case_id
        assert json.loads(record.value)["case_id"] == event.case_id
