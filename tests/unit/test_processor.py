"""The worker's per-message logic on plain dicts: outcomes, dedupe, redelivery, order."""

from __future__ import annotations

import copy
import itertools
import json
import random

from pipeline.contract.events import parse_time
from pipeline.stream.processor import (
    ACCEPTED,
    DAY_US,
    DUPLICATE,
    INVALID,
    REDELIVERED,
    Processor,
    RawMessage,
    Tables,
)

NOW = parse_time("2025-09-01T00:00:00Z")


def _tables() -> Tables:
    return Tables(cases={}, seen={}, counters={}, open_cases={}, clock={})


def _processor(tables: Tables | None = None) -> Processor:
    return Processor(tables or _tables(), dedupe_retention_days=35)


def _message(event: dict, partition: int = 0, offset: int = 0) -> RawMessage:
    return RawMessage(event["case_id"].encode(), json.dumps(event).encode(), partition, offset)


def _event(event_id, event_type, at, case_id="C1", unit="U1", **fields) -> dict:
    return {"schema_version": 1, "event_id": event_id, "event_type": event_type, "case_id": case_id,
            "unit_id": unit, "occurred_at": at, **fields}


CASE = [
    _event("r", "received", "2025-08-01T08:00:00+07:00", procedure_code="p", sector="ho_tich",
           channel="online", online_mode="full", due_at="2025-08-05T17:00:00+07:00", digitized=True),
    _event("p", "payment", "2025-08-01T09:00:00+07:00", method="online", amount_vnd=1000),
    _event("s", "resolved", "2025-08-04T10:00:00+07:00"),
    _event("t", "result_returned", "2025-08-04T11:00:00+07:00", electronic_result=True),
    _event("q", "rated", "2025-08-04T12:00:00+07:00", unit="KIOSK", rating=5),
]


def test_invalid_message_changes_no_state():
    processor = _processor()
    result = processor.process(RawMessage(b"C1", b"{not json", 0, 0), wall_now_us=NOW)
    assert (result.outcome, result.reason) == (INVALID, "invalid_json")
    assert processor.tables == _tables()


def test_accepted_event_updates_case_seen_counters_open_and_clock():
    processor = _processor()
    result = processor.process(_message(CASE[0], partition=2, offset=5), wall_now_us=NOW)
    assert result.outcome == ACCEPTED
    tables = processor.tables
    assert set(tables.cases) == {"C1"} and tables.seen["r"][:2] == [2, 5]
    assert tables.open_cases == {"C1": "U1"}
    assert tables.counters and all(key.startswith("2|") for key in tables.counters)
    assert processor.event_time() == parse_time(CASE[0]["occurred_at"])
    processor.process(_message(CASE[2], partition=2, offset=6), wall_now_us=NOW)
    assert tables.open_cases == {}  # resolved: no longer open


def test_duplicate_and_redelivery_change_nothing():
    processor = _processor()
    for offset, event in enumerate(CASE):
        processor.process(_message(event, offset=offset), wall_now_us=NOW)
    before = copy.deepcopy(processor.tables)
    assert processor.process(_message(CASE[1], offset=99), wall_now_us=NOW).outcome == DUPLICATE
    changed = dict(CASE[4], rating=1)
    assert processor.process(_message(changed, offset=100), wall_now_us=NOW).outcome == DUPLICATE
    redelivered = processor.process(_message(CASE[1], offset=1), wall_now_us=NOW)
    assert redelivered.outcome == REDELIVERED and redelivered.case is not None
    assert processor.tables == before


def test_duplicate_after_seen_retention_is_still_caught_by_the_case():
    processor = _processor()
    processor.process(_message(CASE[0]), wall_now_us=NOW)
    processor.tables.seen.clear()  # as if the id had expired from the seen-set
    assert processor.process(_message(CASE[0], offset=7), wall_now_us=NOW).outcome == DUPLICATE


def test_arrival_order_does_not_change_state_or_counters():
    reference = None
    orders = list(itertools.permutations(CASE))
    for order in random.Random(3).sample(orders, 25):
        processor = _processor()
        for offset, event in enumerate(order):
            processor.process(_message(event, offset=offset), wall_now_us=NOW)
        if reference is None:
            reference = processor.tables.counters
        assert processor.tables.counters == reference
    # the rating was produced by a kiosk but belongs to the case's owner unit
    assert any("|satisfaction|U1|ho_tich|" in key for key in reference)
    assert not any("KIOSK" in key for key in reference)


def test_housekeeping_drops_old_ids_of_its_own_partition_only():
    processor = _processor()
    processor.process(_message(CASE[0], partition=0, offset=0), wall_now_us=NOW)
    processor.process(_message(dict(CASE[1], case_id="C2"), partition=1, offset=0), wall_now_us=NOW)
    later = parse_time(CASE[1]["occurred_at"]) + 40 * DAY_US
    processor.housekeeping(0, later)
    assert "r" not in processor.tables.seen and "p" in processor.tables.seen
    assert processor.housekeeping(0, later + DAY_US) == 0  # not again within a week


def test_write_behind_cache_reads_its_own_writes_and_iterates_merged():
    from pipeline.stream.writebehind import WriteBehind

    table = {"a": 1, "b": 2}
    cache = WriteBehind(table)
    cache["c"] = 3
    del cache["a"]
    assert dict(cache.items()) == {"b": 2, "c": 3} and sorted(cache.values()) == [2, 3]
    assert "a" not in cache and cache.get("a") is None and len(cache) == 2
    assert table == {"a": 1, "b": 2}  # nothing written before the flush
