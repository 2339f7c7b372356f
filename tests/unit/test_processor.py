"""The worker's per-message logic on plain dicts: outcomes, dedupe, redelivery, order, rebuild."""

from __future__ import annotations

import itertools
import json
import random
import zlib

from pipeline.contract.events import parse_time
from pipeline.contract.localtime import DAY_US
from pipeline.core.view import ALL, OpenCaseCounts, SeriesKey
from pipeline.contract.events import message_key
from pipeline.feed.scenario import build_scenario
from pipeline.stream.processor import (
    ACCEPTED,
    DUPLICATE,
    INVALID,
    REDELIVERED,
    DictRepository,
    LiveState,
    Processor,
    RawMessage,
    StoredCase,
    rebuild,
)

NOW = parse_time("2025-09-01T00:00:00Z")
RETENTION = 35 * DAY_US


def _live() -> LiveState:
    return LiveState(hold_retention_us=RETENTION, dedupe_retention_us=RETENTION)


def _processor(event_clock: bool = True) -> Processor:
    return Processor(DictRepository(), _live(), event_clock=event_clock)


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


def _nonzero(live: LiveState) -> dict:
    return {k: v for k, v in live.view.totals_dict().items() if v != (0, 0)}


def test_invalid_message_changes_no_state():
    processor = _processor()
    result = processor.process(RawMessage(b"C1", b"{not json", 0, 0), wall_now_us=NOW)
    assert (result.outcome, result.reason) == (INVALID, "invalid_json")
    assert processor.repository.records == {} and len(processor.live.view) == 0


def test_accepted_event_stores_the_record_and_updates_view_open_cases_and_clock():
    processor = _processor()
    result = processor.process(_message(CASE[0], partition=2, offset=5), wall_now_us=NOW)
    assert result.outcome == ACCEPTED
    stored = processor.repository.get(2, "C1")
    assert stored.offsets == {"r": 5} and len(stored.state) == 1
    live = processor.live
    received_at = parse_time(CASE[0]["occurred_at"])
    assert live.event_time == received_at == live.view.clock_us
    assert live.partition_clock == {2: received_at}
    assert live.open_cases.counts(received_at)["U1"].open == 1
    assert _nonzero(live)[SeriesKey("full_online", "U1", ALL, "24h")] == (1, 1)
    processor.process(_message(CASE[2], partition=2, offset=6), wall_now_us=NOW)
    assert live.open_cases.counts(live.view.clock_us, ["U1"])["U1"].open == 0  # resolved


def test_duplicate_and_redelivery_change_nothing():
    processor = _processor()
    for offset, event in enumerate(CASE):
        processor.process(_message(event, offset=offset), wall_now_us=NOW)
    records = dict(processor.repository.records[0])
    figures = _nonzero(processor.live)
    assert processor.process(_message(CASE[1], offset=99), wall_now_us=NOW).outcome == DUPLICATE
    changed = dict(CASE[4], rating=1)
    assert processor.process(_message(changed, offset=100), wall_now_us=NOW).outcome == DUPLICATE
    redelivered = processor.process(_message(CASE[1], offset=1), wall_now_us=NOW)
    assert redelivered.outcome == REDELIVERED and redelivered.case is not None
    assert processor.repository.records[0] == records
    assert _nonzero(processor.live) == figures


def test_an_id_seen_under_another_case_is_a_duplicate_until_its_retention_ends():
    processor = _processor()
    processor.process(_message(CASE[0], partition=0), wall_now_us=NOW)
    other = dict(CASE[0], case_id="C2")
    assert processor.process(_message(other, partition=1), wall_now_us=NOW).outcome == DUPLICATE
    later = parse_time(CASE[0]["occurred_at"]) + RETENTION + DAY_US
    assert processor.live.prune_ids(later) == 1
    assert processor.process(_message(other, partition=1, offset=1), wall_now_us=NOW).outcome == ACCEPTED
    # within its own case an id is remembered for the life of the case
    assert processor.process(_message(CASE[0], partition=0, offset=9), wall_now_us=NOW).outcome == DUPLICATE


def test_arrival_order_does_not_change_the_figures():
    reference = None
    for order in random.Random(3).sample(list(itertools.permutations(CASE)), 25):
        processor = _processor()
        for offset, event in enumerate(order):
            processor.process(_message(event, offset=offset), wall_now_us=NOW)
        processor.live.view.advance(NOW)
        figures = _nonzero(processor.live)
        if reference is None:
            reference = figures
        assert figures == reference
    # the rating was produced by a kiosk but belongs to the case's owner unit
    assert reference[SeriesKey("satisfaction", "U1", ALL, "30d")] == (1, 1)
    assert not any(key.unit == "KIOSK" for key in reference)


def test_a_record_survives_its_encoding():
    processor = _processor()
    for offset, event in enumerate(CASE):
        processor.process(_message(event, offset=offset), wall_now_us=NOW)
    stored = processor.repository.get(0, "C1")
    again = StoredCase.from_bytes(stored.to_bytes())
    assert again.state == stored.state and again.offsets == stored.offsets
    rule = processor.live.apology
    assert again.outcomes(rule) == stored.outcomes(rule)


def _replayed(scenario) -> Processor:
    """A processor that took every line of the scenario, keyed and partitioned by case."""
    processor = _processor()
    for offset, line in enumerate(scenario.lines):
        key = message_key(line)
        partition = zlib.crc32(key) % 3 if key else 0
        processor.process(RawMessage(key, line, partition, offset), wall_now_us=NOW)
    return processor


def test_a_rebuild_from_the_records_equals_the_incremental_state():
    scenario = build_scenario(seed=4, cases=300)
    processor = _replayed(scenario)
    live = processor.live
    fresh = _live()
    cases = [
        (partition, StoredCase.from_bytes(data))
        for partition, records in processor.repository.records.items()
        for data in records.values()
    ]
    counts = list(rebuild(fresh, cases, live.partition_clock, event_clock=True, wall_now_us=NOW, chunk=100))
    assert counts[-1] == len(cases) and len(counts) == len(cases) // 100 + 1
    assert fresh.view.clock_us == live.view.clock_us
    assert _nonzero(fresh) == _nonzero(live)
    now = live.view.clock_us
    # every unit with an open case counts the same; units known only with zeros may differ (the live view
    # keeps a unit once seen, e.g. in an event later superseded; the rebuild knows the kept records' units)
    rebuilt = fresh.open_cases.counts(now, fresh.view.units())
    incremental = live.open_cases.counts(now, live.view.units())
    assert rebuilt.keys() <= incremental.keys()
    assert {u: c for u, c in rebuilt.items() if c != OpenCaseCounts()} == {u: c for u, c in incremental.items() if c != OpenCaseCounts()}
    assert any(c != OpenCaseCounts() for c in incremental.values())
    live.prune_ids(now)  # the rebuild keeps only the ids within the dedupe retention
    assert fresh.ids.keys() == live.ids.keys()


def test_the_live_figures_equal_the_oracle_on_every_series_on_time_766_included():
    from pipeline.contract.events import format_time
    from tests.oracle import expected_indicators

    scenario = build_scenario(seed=9, cases=400)
    processor = _replayed(scenario)
    live = processor.live
    now = live.view.clock_us
    at = format_time(now)
    got = {k: v for k, v in live.view.totals_dict(live.extra_at(now)).items() if v[1] > 0}
    expected = {k: v for k, v in expected_indicators(scenario.valid_events, at=at).items() if v[1] > 0}
    assert any(key[0] == "on_time_766" for key in expected)
    assert {tuple(k): v for k, v in got.items()} == expected


def test_a_unit_leaving_late_dossiers_open_looks_fine_on_on_time_but_not_on_on_time_766():
    processor = _processor()
    offset = 0
    for i in range(25):  # finished on time
        for event in (
            _event(f"r{i}", "received", "2025-08-01T08:00:00+07:00", case_id=f"F{i}", procedure_code="p",
                   sector="ho_tich", channel="direct", due_at="2025-08-05T17:00:00+07:00"),
            _event(f"s{i}", "resolved", "2025-08-04T10:00:00+07:00", case_id=f"F{i}"),
        ):
            processor.process(_message(event, offset=offset), wall_now_us=NOW)
            offset += 1
    for i in range(10):  # left open, long past due
        event = _event(f"o{i}", "received", "2025-07-01T08:00:00+07:00", case_id=f"O{i}", procedure_code="p",
                       sector="ho_tich", channel="direct", due_at="2025-07-03T17:00:00+07:00")
        processor.process(_message(event, offset=offset), wall_now_us=NOW)
        offset += 1
    live = processor.live
    totals = live.view.totals_dict(live.extra_at(live.view.clock_us))
    assert totals[SeriesKey("on_time", "U1", ALL, "30d")] == (25, 25)
    assert totals[SeriesKey("on_time_766", "U1", ALL, "30d")] == (25, 35)
    # the open ones count in every window at T, also in the sector and province scopes
    assert totals[SeriesKey("on_time_766", ALL, "ho_tich", "1h")] == (25, 35)
    assert totals[SeriesKey("on_time_766", ALL, ALL, "ytd")] == (25, 35)
    assert processor.live.open_cases.counts(live.view.clock_us)["U1"].overdue == 10


def test_a_unit_outside_the_registry_at_the_events_time_is_attributed_to_unknown():
    from datetime import date
    from types import SimpleNamespace

    from pipeline.core.registry import UnitRegistry

    registry = UnitRegistry([SimpleNamespace(unit_id="U1", valid_from=date(2025, 1, 1), valid_to=date(2025, 7, 31))])
    processor = Processor(DictRepository(), _live(), event_clock=True, unit_label=registry.label)
    inside = processor.process(_message(CASE[0]), wall_now_us=NOW)  # U1, 1 August: no longer in force
    typo = _event("x", "received", "2025-07-01T08:00:00+07:00", case_id="C2", unit="U1'; DROP", procedure_code="p",
                  sector="ho_tich", channel="direct", due_at="2025-07-05T17:00:00+07:00")
    bad = processor.process(_message(typo, partition=1), wall_now_us=NOW)
    ok = _event("y", "received", "2025-07-01T08:00:00+07:00", case_id="C3", procedure_code="p",
                sector="ho_tich", channel="direct", due_at="2025-07-05T17:00:00+07:00")
    good = processor.process(_message(ok, partition=2), wall_now_us=NOW)
    assert (inside.unit_label, bad.unit_label, good.unit_label) == ("unknown", "unknown", "U1")
    assert inside.event.unit_id == "U1"  # the fact keeps the unit as sent
    units = {key.unit for key in _nonzero(processor.live)}
    assert units == {"unknown", "U1", ALL}
    assert _nonzero(processor.live)[SeriesKey("remote", "unknown", ALL, "ytd")] == (1, 2)  # one online of two


def test_a_step_event_is_stored_and_changes_no_indicator():
    """Contract v1.2: ``step`` events are facts of the case, with no outcome of their own."""
    step_fields = dict(step_id="st-1", handler_name="Cán bộ Thử nghiệm 07", department="Phòng Tư pháp",
                       started_at="2025-08-01T08:00:00+07:00", step_due_at="2025-08-02T17:00:00+07:00")
    steps = [
        _event("k1", "step", "2025-08-01T08:00:00+07:00", **step_fields),
        _event("k2", "step", "2025-08-03T09:00:00+07:00", finished_at="2025-08-03T09:00:00+07:00", **step_fields),
    ]
    plain, with_steps = _processor(), _processor()
    for offset, ev in enumerate(CASE):
        plain.process(_message(ev, offset=offset), wall_now_us=NOW)
    for offset, ev in enumerate(steps[:1] + CASE + steps[1:]):
        assert with_steps.process(_message(ev, offset=offset), wall_now_us=NOW).outcome == ACCEPTED
    assert _nonzero(with_steps.live) == _nonzero(plain.live) != {}
    case = with_steps.repository.get(0, "C1")
    assert {"k1", "k2"} <= case.state.event_ids
    assert with_steps.process(_message(steps[0], offset=99), wall_now_us=NOW).outcome == DUPLICATE
    # a case with steps only (its received not yet seen) yields nothing either
    alone = _processor()
    alone.process(_message({**steps[0], "case_id": "C9"}), wall_now_us=NOW)
    assert _nonzero(alone.live) == {}
