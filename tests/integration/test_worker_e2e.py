"""The walking skeleton end to end: replay → real Kafka → worker → chDB, DLQ and /metrics."""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
from collections import Counter

import pytest
from kafka import KafkaConsumer, TopicPartition

from pipeline.contract.rejected import DEAD_LETTER_VALUE_MAX, EXCERPT_BYTES
from pipeline.core.score766 import GROUPS, SOURCE_INDICATORS, score
from pipeline.feed.replay import replay_file
from tests.integration.workerproc import WorkerProcess, isolated_settings, run_cli, sql_json

pytestmark = pytest.mark.integration


def _event(event_id: str, event_type: str, case_id: str, at: str, unit: str = "TTPVHCC", **fields) -> dict:
    return {
        "schema_version": 1,
        "event_id": event_id,
        "event_type": event_type,
        "case_id": case_id,
        "unit_id": unit,
        "occurred_at": at,
        **fields,
    }


RECEIVED = dict(
    procedure_code="1.001", sector="ho_tich", channel="online", online_mode="full",
    due_at="2025-08-10T17:00:00+07:00", has_fee=True, digitized=True, reused_data=False,
    vneid_authenticated=True,
)

VALID = [
    _event("e1", "received", "C1", "2025-08-01T08:00:00+07:00", **RECEIVED),
    _event("e2", "payment", "C1", "2025-08-01T08:05:00+07:00", method="online", amount_vnd=50000),
    _event("e3", "resolved", "C1", "2025-08-05T10:00:00+07:00"),
    _event("e4", "result_returned", "C1", "2025-08-05T11:00:00+07:00", electronic_result=True),
    _event("e5", "rated", "C1", "2025-08-05T12:00:00+07:00", rating=5),
    _event("e6", "rated", "C2", "2025-08-02T09:00:00+07:00", rating=2),  # before its received
    _event("e7", "received", "C2", "2025-08-01T09:00:00+07:00", unit="XA_A", **{**RECEIVED, "channel": "direct"}),
    _event("e8", "feedback_received", "F1", "2025-08-03T09:00:00Z", due_at="2025-08-13T09:00:00Z"),
    _event("e9", "feedback_answered", "F1", "2025-08-04T09:00:00Z"),
    _event("e10", "supplement_requested", "C2", "2025-08-02T10:00:00+07:00", extra_unknown_field="ignored"),
]

# (line, reason) — each line has exactly one defect.
too_big = json.dumps(_event("x-big", "rated", "C1", "2025-08-05T12:00:00+07:00", rating=5, source="x" * 70000))
MALFORMED = [
    (b'{"schema_version": 1, "event_id": "x1",', "invalid_json"),
    (b"\xff\xfe not utf-8", "not_utf8"),
    (b"[1, 2, 3]", "not_object"),
    (too_big.encode(), "too_large"),
    (json.dumps({**VALID[1], "event_id": "x2", "schema_version": 2}).encode(), "unsupported_version"),
    (json.dumps({**VALID[1], "event_id": "x3", "event_type": "teleported"}).encode(), "unknown_event_type"),
    (json.dumps({k: v for k, v in VALID[0].items() if k != "due_at"} | {"event_id": "x4"}).encode(), "missing_field"),
    (json.dumps({**VALID[4], "event_id": "x5", "rating": "5"}).encode(), "invalid_field"),
    (json.dumps({**VALID[4], "event_id": "x6", "rating": 7}).encode(), "invalid_field"),
    (json.dumps({**VALID[4], "event_id": "x7", "occurred_at": "2025-08-05 12:00:00"}).encode(), "invalid_timestamp"),
    (json.dumps({**VALID[4], "event_id": "x8", "occurred_at": "2099-01-01T00:00:00Z"}).encode(), "future_timestamp"),
    (json.dumps({**VALID[0], "event_id": "x9", "channel": "fax"}).encode(), "invalid_field"),
    (json.dumps({**VALID[0], "event_id": "x10", "has_fee": "yes"}).encode(), "invalid_field"),
    (json.dumps({**VALID[4], "event_id": "x11", "unit_id": "all"}).encode(), "invalid_field"),
    (json.dumps({k: v for k, v in VALID[4].items() if k != "case_id"} | {"event_id": "x12"}).encode(), "missing_field"),
    (b'"just a string"', "not_object"),
]
DUPLICATES = [
    json.dumps(VALID[0]).encode(),  # same bytes again
    json.dumps({**VALID[4], "rating": 1}).encode(),  # same event_id, other content
    json.dumps({**VALID[1], "case_id": "C9"}).encode(),  # same event_id under another case (partition)
]


def _lines() -> list[bytes]:
    lines = [json.dumps(e).encode() for e in VALID[:5]]
    lines += [line for line, _ in MALFORMED[:8]]
    lines += DUPLICATES[:1]
    lines += [json.dumps(e).encode() for e in VALID[5:]]
    lines += [line for line, _ in MALFORMED[8:]]
    lines += DUPLICATES[1:]
    return lines


def _prometheus(settings, query: str) -> list:
    url = f"http://127.0.0.1:{settings.prometheus_port}/api/v1/query?" + urllib.parse.urlencode({"query": query})
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.load(response)["data"]["result"]


def _dlq_messages(settings) -> list:
    consumer = KafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, consumer_timeout_ms=3000)
    partitions = [TopicPartition(settings.dlq_topic, p) for p in consumer.partitions_for_topic(settings.dlq_topic) or []]
    consumer.assign(partitions)
    consumer.seek_to_beginning(*partitions)
    messages = list(consumer)
    consumer.close()
    return messages


EXPECTED_REASONS = Counter(reason for _, reason in MALFORMED)


class Skeleton:
    """One run of the walking skeleton, shared by the tests below (one behaviour each):
    a worker started, the file replayed and processed; :meth:`stop_worker` ends the run."""

    def __init__(self, settings, path, lines: list[bytes]) -> None:
        self.settings, self.path, self.lines = settings, path, lines
        self.worker = WorkerProcess(settings).start()

    def stop_worker(self) -> None:
        self.worker.stop()


@pytest.fixture(scope="module")
def skeleton(infra, tmp_path_factory):
    settings = isolated_settings(infra, "skeleton", clock="event", batch_size=7, flush_interval=0.3, snapshot_interval=1.0)
    path = tmp_path_factory.mktemp("skeleton") / "events.jsonl"
    lines = _lines()
    path.write_bytes(b"\n".join(lines) + b"\n")
    run = Skeleton(settings, path, lines)
    try:
        assert replay_file(settings, str(path), progress=False) == len(lines)
        run.worker.wait_processed(len(lines))
        yield run
    finally:
        run.stop_worker()


@pytest.fixture(scope="module")
def stopped(skeleton):
    """The same run after the worker stopped (the tests above it ran with it up)."""
    skeleton.stop_worker()
    return skeleton


def test_each_message_is_counted_once_by_outcome(skeleton):
    worker = skeleton.worker
    assert worker.counter("tthc_events_total", outcome="accepted") == len(VALID)
    assert worker.counter("tthc_events_total", outcome="invalid") == len(MALFORMED)
    assert worker.counter("tthc_events_total", outcome="duplicate") == len(DUPLICATES)


def test_the_766_score_gauges_are_the_score_of_the_exported_month_figures(skeleton):
    """Issue 24: live 766 gauges per unit and group, from the same figures as the indicator
    gauges (the mtd window), refreshed with the snapshots; what dossier data cannot carry is
    exported as its maximum under ``not_computable``, never as a zero score."""
    worker = skeleton.worker
    worker.wait_for(lambda: any(name == "tthc_score_766_points" for name, _ in worker.metrics()), 30,
                    "the 766 score gauges")
    samples = worker.metrics()
    units = {dict(labels)["unit"] for name, labels in samples if name == "tthc_score_766_points"}
    assert "all" in units and len(units) > 1
    for unit in units:
        figures = {}
        for indicator in SOURCE_INDICATORS:
            labels = dict(indicator=indicator, unit=unit, sector="all", window="mtd")
            den = samples.get(("tthc_indicator_denominator", tuple(sorted(labels.items()))))
            if den is not None:
                num = samples[("tthc_indicator_numerator", tuple(sorted(labels.items())))]
                figures[indicator] = (int(num), int(den))
        expected = score(unit, figures)
        for group in expected.groups:
            key = tuple(sorted(dict(unit=unit, group=group.group.code).items()))
            if group.computable:
                assert samples[("tthc_score_766_points", key)] == pytest.approx(group.earned), (unit, group)
                assert samples[("tthc_score_766_assessable", key)] == pytest.approx(group.assessable), (unit, group)
    blind = {dict(labels)["group"]: value for (name, labels), value in samples.items()
             if name == "tthc_score_766_not_computable"}
    assert set(blind) == {g.code for g in GROUPS} and sum(blind.values()) > 0


def test_invalid_messages_are_counted_by_reason(skeleton):
    for reason, count in EXPECTED_REASONS.items():
        assert skeleton.worker.counter("tthc_invalid_events_total", reason=reason) == count, reason


def test_valid_events_are_stored_once_and_the_first_of_an_id_wins(skeleton):
    rows = sql_json(skeleton.settings, "SELECT event_id, event_type, case_id, rating, raw FROM case_events FINAL ORDER BY event_id")
    assert sorted(r["event_id"] for r in rows) == sorted(e["event_id"] for e in VALID)
    by_id = {r["event_id"]: r for r in rows}
    assert by_id["e5"]["rating"] == 5  # the first e5 won, not the rating-1 duplicate
    assert "extra_unknown_field" not in by_id["e10"]["raw"]  # unknown fields never stored


def test_invalid_messages_are_kept_with_their_reason(skeleton):
    invalid = sql_json(skeleton.settings, "SELECT reason, count() AS n FROM invalid_events FINAL GROUP BY reason")
    assert {r["reason"]: int(r["n"]) for r in invalid} == dict(EXPECTED_REASONS)


def test_prometheus_scrapes_the_worker_and_its_rule_derives_the_province_ratio(skeleton):
    # The real Prometheus scrapes the worker, and its recording rule derives the
    # province's satisfaction from summed numerators and denominators (1 of 2 ratings >= 4).
    settings, worker = skeleton.settings, skeleton.worker
    worker.wait_for(
        lambda: [float(r["value"][1]) for r in _prometheus(settings, 'tthc_events_total{outcome="accepted"}')]
        == [len(VALID)],
        60,
        "Prometheus to scrape the worker",
    )
    ratio = 'tthc:indicator_ratio:by_scope{indicator="satisfaction",unit="all",sector="all",window="ytd"}'
    worker.wait_for(
        lambda: [float(r["value"][1]) for r in _prometheus(settings, ratio)] == [0.5], 60, "the recording rule"
    )


def test_sql_answers_while_the_worker_runs_and_refuses_writes(skeleton):
    settings = skeleton.settings
    refused = run_cli(settings, "sql", "INSERT INTO case_events (event_id) VALUES ('z')", check=False)
    assert refused.returncode == 2 and refused.stderr.startswith("error:") and len(refused.stderr.splitlines()) == 1
    refused = run_cli(settings, "sql", "SELECT 1; DROP TABLE case_events", check=False)
    assert refused.returncode == 2
    table = run_cli(settings, "sql", "SELECT count() AS n FROM case_events FINAL", "--format", "csv")
    assert table.stdout.splitlines() == ["n", str(len(VALID))]


def test_dead_letters_keep_the_original_bytes_and_reason(skeleton):
    dead = _dlq_messages(skeleton.settings)
    assert len(dead) == len(MALFORMED)
    reasons = Counter(dict(m.headers)["tthc-reason"].decode() for m in dead)
    assert reasons == EXPECTED_REASONS
    # original bytes kept; a value over the contract's 64 KiB as a 4 KiB excerpt with its size (issue 20)
    expected = sorted(line if len(line) <= DEAD_LETTER_VALUE_MAX else line[:EXCERPT_BYTES] for line, _ in MALFORMED)
    assert sorted(m.value for m in dead) == expected
    cut = [m for m in dead if "tthc-original-size" in dict(m.headers)]
    assert [int(dict(m.headers)["tthc-original-size"]) for m in cut] == [
        len(line) for line, _ in MALFORMED if len(line) > DEAD_LETTER_VALUE_MAX]


def test_sql_opens_the_embedded_engine_when_no_worker_runs(stopped):
    settings = stopped.settings
    assert int(sql_json(settings, "SELECT count() AS n FROM case_events FINAL")[0]["n"]) == len(VALID)
    refused = run_cli(settings, "sql", "ALTER TABLE case_events DELETE WHERE 1", check=False)
    assert refused.returncode == 2 and refused.stderr.startswith("error:")


def test_the_same_file_again_after_a_restart_adds_nothing(stopped):
    # The same file again while the worker is stopped: every valid line is now a duplicate.
    settings, lines = stopped.settings, stopped.lines
    assert replay_file(settings, str(stopped.path), progress=False) == len(lines)
    worker = WorkerProcess(settings).start()
    try:
        worker.wait_processed(len(lines))
        assert worker.counter("tthc_events_total", outcome="accepted") == 0
        assert worker.counter("tthc_events_total", outcome="duplicate") == len(VALID) + len(DUPLICATES)
        count = sql_json(settings, "SELECT count() AS n FROM case_events FINAL")
        assert int(count[0]["n"]) == len(VALID)
    finally:
        worker.stop()
