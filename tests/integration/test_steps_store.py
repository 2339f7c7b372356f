"""The ``steps`` table and the late-step queries on the real chDB engine (contract v1.2)."""

from __future__ import annotations

from datetime import date

import pytest

from pipeline.contract.events import CaseEvent, parse_time
from pipeline.store.client import connect
from pipeline.store.readonly import ClientRunner
from pipeline.store.schema import TABLES, ensure_schema
from pipeline.store.steps import LateDay, late_steps, open_overdue_steps
from pipeline.store.writer import AcceptedEvent, FactWriter

T = parse_time


@pytest.fixture(scope="module")
def ch(tmp_path_factory):
    client = connect(f"chdb://{tmp_path_factory.mktemp('chdb-steps').resolve()}")
    ensure_schema(client)
    for table in TABLES:
        client.command(f"TRUNCATE TABLE {table}")
    return client


def step(event_id, case, step_id, started, due, finished=None, name="Cán bộ Thử nghiệm 01", dept="Phòng Tư pháp",
         unit="X_A"):
    record = {
        "schema_version": 1, "event_id": event_id, "event_type": "step", "case_id": case, "unit_id": unit,
        "occurred_at": finished or started, "step_id": step_id, "handler_name": name, "handler_title": "Công chức",
        "department": dept, "started_at": started, "step_due_at": due,
    }
    if finished:
        record["finished_at"] = finished
    return CaseEvent.from_record(record)


def test_steps_fill_from_case_events_and_late_lists_count_them(ch):
    writer = FactWriter(ch)
    a_open = step("e1", "C1", "s1", "2025-06-02T08:00:00+07:00", "2025-06-03T17:00:00+07:00")
    a_done = step("e2", "C1", "s1", "2025-06-02T08:00:00+07:00", "2025-06-03T17:00:00+07:00",
                  "2025-06-05T09:00:00+07:00")  # late by two days
    b_done = step("e3", "C2", "s1", "2025-06-02T08:00:00+07:00", "2025-06-03T17:00:00+07:00",
                  "2025-06-03T10:00:00+07:00", name="Cán bộ Thử nghiệm 02")  # on time
    c_open = step("e4", "C3", "s1", "2025-06-20T08:00:00+07:00", "2025-06-24T17:00:00+07:00",
                  name="Cán bộ Thử nghiệm 02", dept="Phòng Kinh tế")  # open past due at the end of June
    d_nodue = step("e5", "C4", "s1", "2025-06-20T08:00:00+07:00", None, name="Cán bộ Thử nghiệm 03")
    rows = [AcceptedEvent(e, 0, i) for i, e in enumerate([a_open, a_done, b_done, c_open, d_nodue])]
    writer.write_events(rows)
    writer.write_events(rows[:2])  # written again after a crash: nothing doubles
    assert ch.query("SELECT count() FROM steps FINAL").result_rows == [(4,)]
    c1 = ch.query("SELECT finished_at IS NOT NULL, handler_name FROM steps FINAL WHERE case_id = 'C1'").result_rows
    assert c1 == [(True, "Cán bộ Thử nghiệm 01")]  # the finished event wins over the open one

    runner = ClientRunner(ch)
    june = (T("2025-06-01T00:00:00+07:00"), T("2025-07-01T00:00:00+07:00"))
    officials = {(x.department, x.handler_name): (x.steps_done, x.late_done, x.open_overdue)
                 for x in late_steps(runner, *june, at_us=june[1])}
    assert officials == {
        ("Phòng Tư pháp", "Cán bộ Thử nghiệm 01"): (1, 1, 0),
        ("Phòng Tư pháp", "Cán bộ Thử nghiệm 02"): (1, 0, 0),
        ("Phòng Kinh tế", "Cán bộ Thử nghiệm 02"): (0, 0, 1),
    }
    first = late_steps(runner, *june, at_us=june[1])[0]
    assert first.late == 1 and first.handler_title == "Công chức"
    # the local dates the working days late are counted between: due, then the finish or T's date
    days = {(x.department, x.handler_name): x.late_days for x in late_steps(runner, *june, at_us=june[1] - 1)}
    assert days[("Phòng Tư pháp", "Cán bộ Thử nghiệm 01")] == (LateDay(date(2025, 6, 3), date(2025, 6, 5)),)
    assert days[("Phòng Kinh tế", "Cán bộ Thử nghiệm 02")] == (LateDay(date(2025, 6, 24), date(2025, 6, 30)),)
    assert days[("Phòng Tư pháp", "Cán bộ Thử nghiệm 02")] == ()
    assert {x.unit for x in late_steps(runner, *june, at_us=june[1], unit="X_A")} == {"X_A"}
    assert late_steps(runner, *june, at_us=june[1], unit="X_OTHER") == []
    departments = {x.department: (x.steps_done, x.late) for x in late_steps(runner, *june, at_us=june[1], by="department")}
    assert departments == {"Phòng Tư pháp": (2, 1), "Phòng Kinh tế": (0, 1)}
    # seen on 4 June, C1's step was open and past due; C3's had not started
    at = T("2025-06-04T12:00:00+07:00")
    assert [(r["case_id"], r["step_id"]) for r in open_overdue_steps(runner, at)] == [("C1", "s1")]
    assert [(r["case_id"]) for r in open_overdue_steps(runner, june[1])] == ["C3"]


def test_rating_summaries_latest_report_of_a_month_wins(ch):
    from pipeline.sources.dvcqg.translator import RatingSummary
    from pipeline.store.ratings import write_ratings

    first = RatingSummary("SO_TP", "000.00.09.H24", "2025-06", 100, 80.0, 15.0, 5.0)
    corrected = RatingSummary("SO_TP", "000.00.09.H24", "2025-06", 120, 75.0, 20.0, 5.0)
    assert write_ratings(ch, [first], reported_at_ms=1000) == 1
    write_ratings(ch, [corrected], reported_at_ms=2000)
    write_ratings(ch, [first], reported_at_ms=1000)  # an old report again: still the corrected one
    rows = ch.query("SELECT unit_id, month, raters, very_satisfied_pct FROM dvcqg_ratings FINAL").result_rows
    assert rows == [("SO_TP", "2025-06", 120, 75.0)]
