"""apology_coverage v1.2 (docs/indicators.md): the live figures (the processor's view and
open-case index) equal the oracle on random dossiers at many clocks, open late dossiers,
moving pauses, holidays and make-up Saturdays included. The batch SQL is held to the oracle
in tests/integration/test_store.py."""

from __future__ import annotations

import json
import random
from datetime import datetime, timedelta, timezone

import pytest

from pipeline.contract.events import format_time, parse_time
from pipeline.core.apology import ApologyRule
from pipeline.contract.localtime import DAY_US, WorkCalendar
from pipeline.calendar_file import apology_rule
from pipeline.stream.processor import DictRepository, LiveState, Processor, RawMessage
from tests.oracle import expected_indicators, read_holidays

VN = timezone(timedelta(hours=7))
RETENTION = 35 * DAY_US


def _event(event_id, event_type, at: datetime, case_id, unit="U1", **fields) -> dict:
    return {"schema_version": 1, "event_id": event_id, "event_type": event_type, "case_id": case_id,
            "unit_id": unit, "occurred_at": at.isoformat(), **fields}


def _random_case(rng: random.Random, n: int, start: datetime) -> list[dict]:
    cid = f"C{n}"
    unit = rng.choice(["U1", "U2", "U3"])
    sector = rng.choice(["dat_dai", "ho_tich"])
    t0 = start + timedelta(hours=rng.uniform(0, 24 * 14))
    due = t0 + timedelta(hours=rng.uniform(4, 24 * 6))
    events = [_event(f"{cid}-r", "received", t0, cid, unit, procedure_code="p", sector=sector, channel="direct",
                     due_at=due.isoformat())]
    for i in range(rng.choice([0, 0, 1, 2, 3])):
        kind = rng.choice(["supplement_requested", "supplement_received"])
        events.append(_event(f"{cid}-s{i}", kind, t0 + timedelta(hours=rng.uniform(0, 24 * 8)), cid, unit))
    if rng.random() < 0.6:
        events.append(_event(f"{cid}-a", "apology_issued", t0 + timedelta(hours=rng.uniform(0, 24 * 10)), cid, unit,
                             new_due_at=(due + timedelta(days=5)).isoformat()))
    if rng.random() < 0.5:
        kind = rng.choice(["resolved", "resolved", "stopped", "withdrawn", "result_returned"])
        fields = {"electronic_result": False} if kind == "result_returned" else {}
        events.append(_event(f"{cid}-f", kind, t0 + timedelta(hours=rng.uniform(1, 24 * 12)), cid, unit, **fields))
    return events


def _live_at(events: list[dict], now_us: int, rule: ApologyRule) -> dict:
    processor = Processor(DictRepository(), LiveState(hold_retention_us=RETENTION, dedupe_retention_us=RETENTION,
                                                      apology=rule), event_clock=False)
    for offset, event in enumerate(events):
        message = RawMessage(event["case_id"].encode(), json.dumps(event).encode(), 0, offset)
        processor.process(message, wall_now_us=now_us)
    live = processor.live
    live.view.advance(now_us)
    totals = live.view.totals_dict(live.extra_at(now_us))
    return {tuple(k): v for k, v in totals.items() if k[0] == "apology_coverage" and v[1] > 0}


@pytest.mark.parametrize("seed,lead", [(1, 1), (2, 1), (3, 2), (4, 0), (5, 1)])
def test_live_apology_coverage_equals_the_oracle_at_every_clock(seed, lead):
    rng = random.Random(seed)
    # late August 2025: Monday 1 and Tuesday 2 September are holidays
    start = datetime(2025, 8, 22, 8, 0, tzinfo=VN)
    events = [e for n in range(60) for e in _random_case(rng, n, start)]
    rule = apology_rule(lead)
    holidays = read_holidays()
    seen_open_late = 0
    for k in range(8):
        now = start + timedelta(hours=rng.uniform(24 * 3, 24 * 24))
        now_us = parse_time(now.isoformat())
        held = [e for e in events if parse_time(e["occurred_at"]) <= now_us]
        expected = {k: v for k, v in expected_indicators(held, at=format_time(now_us), holidays=holidays,
                                                         apology_lead=lead).items()
                    if k[0] == "apology_coverage"}
        assert _live_at(held, now_us, rule) == expected, now
        seen_open_late += expected.get(("apology_coverage", "all", "all", "1h"), (0, 0))[1]
    assert seen_open_late > 0  # open late dossiers were counted at T (only they fall in the 1h window here)


def test_an_open_pause_moves_the_deadline_with_the_clock():
    """Overdue before the pause opened: late at every T, while its effective due (and so the
    apology's deadline) moves on with T; a Thursday apology counts (lead 1) once the moving
    effective due reaches Friday."""
    rule = ApologyRule(WorkCalendar(), 1)  # weekends only
    t0 = datetime(2025, 6, 2, 8, 0, tzinfo=VN)  # Monday
    due = datetime(2025, 6, 3, 17, 0, tzinfo=VN)  # Tuesday
    events = [
        _event("r", "received", t0, "C", procedure_code="p", sector="ho_tich", channel="direct", due_at=due.isoformat()),
        _event("q", "supplement_requested", datetime(2025, 6, 4, 17, 0, tzinfo=VN), "C"),  # 1 day overdue, pause open
        _event("a", "apology_issued", datetime(2025, 6, 5, 10, 0, tzinfo=VN), "C", new_due_at=due.isoformat()),
    ]
    # effective due at T = T - 1 day. The Thursday apology counts for a due on Friday or later:
    # due >= Friday 00:00 <=> T >= Saturday 7 June 00:00
    cases = [(datetime(2025, 6, 6, 23, 59, tzinfo=VN), (0, 1)), (datetime(2025, 6, 7, 0, 0, tzinfo=VN), (1, 1)),
             (datetime(2025, 6, 10, 9, 0, tzinfo=VN), (1, 1))]
    off = (set(), set())
    for now, want in cases:
        now_us = parse_time(now.isoformat())
        got = _live_at(events, now_us, rule)
        assert got[("apology_coverage", "U1", "all", "ytd")] == want, now
        oracle = expected_indicators(events, at=format_time(now_us), holidays=off, apology_lead=1)
        assert oracle[("apology_coverage", "U1", "all", "ytd")] == want, now
