"""The simulator's process steps come from one source for both formats
(``pipeline.feed.steps``), and the report's late list turns them into lines with the worst
working days late (``pipeline.reports.data``)."""

from __future__ import annotations

import random
from datetime import date, datetime, timedelta
from pathlib import Path

from pipeline.calendar_file import load_calendar
from pipeline.contract.events import CaseEvent, parse_time
from pipeline.contract.localtime import LOCAL_TZ
from pipeline.feed.dvcqg import case_calls, simulated_catalogue
from pipeline.feed.lifecycle import LifecycleGenerator, WorkingClock, load_province
from pipeline.feed.steps import PROCESSING_TEXT, RESUMED_TEXT, case_steps, step_events, with_steps
from pipeline.reports.data import _late_handlers, working_days_after
from pipeline.sources.dvcqg.records import split_call
from pipeline.sources.dvcqg.translator import Registries, Translator
from pipeline.store.procedures import load_procedures
from pipeline.store.sectors import load_sectors
from pipeline.store.steps import LateDay, LateSteps
from pipeline.store.units import load_units

REPO = Path(__file__).resolve().parents[2]
UNITS = REPO / "deploy" / "units.csv"
_FIELDS = ("step_id", "handler_name", "handler_title", "department", "started_at", "step_due_at", "finished_at",
           "status_code")


def _dossiers(n: int) -> list[list[dict]]:
    rng = random.Random(7)
    generator = LifecycleGenerator(rng, [], clock=WorkingClock(), province=load_province(UNITS))
    start = datetime(2025, 3, 3, 8, 0, tzinfo=LOCAL_TZ)
    return [generator.case(f"HS-ST-{i:05d}", start + timedelta(seconds=rng.randrange(0, 200 * 86400)))
            for i in range(n)]


def _step_view(record: dict) -> tuple:
    """A step event's content, times as instants to the second (DVCQG dates carry whole seconds)."""
    out = []
    for name in _FIELDS:
        value = record.get(name)
        if name.endswith("_at") and value is not None:
            value = parse_time(value) // 1_000_000
        out.append(value)
    return tuple(out)


def test_contract_steps_equal_the_dvcqg_twins_steps_after_translation():
    units = load_units(UNITS)
    codes = {u.unit_id: u.dvcqg_code for u in units if u.dvcqg_code}
    sectors = [s.sector for s in load_sectors()]
    registries = Registries({v: k for k, v in codes.items()}, {}, simulated_catalogue(load_procedures(), sectors),
                            load_calendar())
    compared = late = 0
    for events in _dossiers(300):
        if events[0]["unit_id"] not in codes:
            continue
        contract = step_events(events)
        for record in contract:
            CaseEvent.from_record(record)  # valid contract v1.2 events
        translator, state, translated = Translator(registries), None, []
        for call in case_calls(events, codes, sectors):
            records, bad = split_call(call.body, arrived_us=parse_time(call.at.isoformat()), account="sim")
            assert bad == []
            for record in records:
                out = translator.apply(record, state)
                state = out.state
                translated += [e for e in out.events if e["event_type"] == "step"]
        assert sorted(map(_step_view, contract), key=repr) == sorted(map(_step_view, translated), key=repr)
        compared += len(contract)
        late += sum(1 for r in contract if r.get("finished_at") and r.get("step_due_at")
                    and parse_time(r["finished_at"]) > parse_time(r["step_due_at"]))
    assert compared > 500 and late > 0


def test_steps_leave_the_other_events_alone_and_close_when_the_dossier_ends():
    for events in _dossiers(200):
        merged = with_steps(events)
        assert [e for e in merged if e["event_type"] != "step"] == events
        assert [e["occurred_at"] for e in merged] == sorted(
            (e["occurred_at"] for e in merged), key=lambda t: parse_time(t))
        kinds = {e["event_type"] for e in events}
        steps = case_steps(events)
        assert all(s.handler_name.startswith("Cán bộ Thử nghiệm ") for s in steps)
        if "received" not in kinds:
            assert steps == [] or all(s.text.startswith("Gửi phiếu xin lỗi") for s in steps)
            continue
        ended = kinds & {"rejected", "withdrawn", "stopped", "resolved", "result_returned"}
        processing = [s for s in steps if s.text in (PROCESSING_TEXT, RESUMED_TEXT)]
        assert processing[0].finished_at is None and processing[0].text == PROCESSING_TEXT
        if ended:
            assert processing[-1].finished_at is not None
        # each step is reported open once and done at most once; supplements split the processing
        opened = [s for s in processing if s.finished_at is None]
        rounds = sum(1 for e in events if e["event_type"] == "supplement_received")
        assert 1 <= len(opened) <= 1 + rounds
        assert len(processing) - len(opened) <= len(opened)
        for first, then in zip(opened, opened[1:]):
            # the next step is due later by exactly the pause between them
            pause = parse_time(then.started_at) - parse_time(
                next(s.finished_at for s in processing if s.started_at == first.started_at and s.finished_at))
            assert parse_time(then.due_at) - parse_time(first.due_at) == pause


def test_a_late_list_line_takes_the_worst_working_days_and_merges_moved_units():
    calendar = load_calendar()
    # due Friday 25 April 2025, finished Monday 5 May: Saturday 26 April is worked (swapped for
    # 2 May), 28 and 29 April, 30 April to 2 May are holidays, then the weekend, then 5 May
    assert working_days_after(calendar, date(2025, 4, 25), date(2025, 5, 5)) == 4
    assert working_days_after(calendar, date(2025, 4, 25), date(2025, 4, 25)) == 0  # late within its due day
    old = LateSteps("OLD", "Phòng A", "Cán bộ Thử nghiệm 01", "Chuyên viên", 3, 1, 0,
                    (LateDay(date(2025, 4, 25), date(2025, 5, 5)),))
    new = LateSteps("NEW", "Phòng A", "Cán bộ Thử nghiệm 01", "Chuyên viên", 2, 0, 1,
                    (LateDay(date(2025, 6, 2), date(2025, 6, 3)),))
    calm = LateSteps("NEW", "Phòng B", "Cán bộ Thử nghiệm 02", "Chuyên viên", 4, 0, 0, ())
    lines = _late_handlers([calm, new, old], calendar, {"OLD": "NEW"})
    assert [(h.steps.unit, h.steps.department, h.steps.handled, h.steps.late, h.worst_days) for h in lines] == [
        ("NEW", "Phòng A", 6, 2, 4),  # the ceased unit's line moved onto its successor
        ("NEW", "Phòng B", 4, 0, None),
    ]
    assert lines[0].share == 2 / 6 and lines[1].share == 0
    separate = _late_handlers([calm, new, old], calendar, {})
    assert [h.steps.unit for h in separate] == ["NEW", "NEW", "OLD"] and separate[0].worst_days == 1
