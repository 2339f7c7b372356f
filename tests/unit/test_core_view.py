"""The incremental view equals a rebuild from scratch and a brute-force count at many clocks."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

import pytest

from pipeline.calendar_file import apology_rule
from pipeline.core.cases import CaseState, case_outcomes_and_open, case_summary
from pipeline.core.outcomes import Outcome
from pipeline.core.view import ALL, IndicatorView, OpenCaseCounts, OpenCaseIndex, SeriesKey, scopes_of
from pipeline.core.windows import WINDOWS, window_contains
from pipeline.contract.events import CaseEvent

HOUR = 3600 * 1_000_000
DAY = 24 * HOUR
RETENTION = 35 * DAY
LOCAL = timezone(timedelta(hours=7))


def _us(*args) -> int:
    return int(datetime(*args, tzinfo=LOCAL).timestamp() * 1_000_000)


def _brute(live: list[Outcome], now_us: int) -> dict[SeriesKey, tuple[int, int]]:
    """Count every live outcome in every window, the held ones once t + retention < T."""
    out: dict[SeriesKey, list[int]] = {}
    for o in live:
        for indicator, unit, sector in scopes_of(o.indicator, o.unit, o.sector):
            for window in WINDOWS:
                cell = out.setdefault(SeriesKey(indicator, unit, sector, window), [0, 0])
                counted = window_contains(window, o.time_us, now_us)
                if o.sector == "unknown":
                    counted = counted and o.time_us + RETENTION < now_us
                if counted:
                    cell[0] += o.hit
                    cell[1] += 1
    return {k: (v[0], v[1]) for k, v in out.items()}


def _rebuilt(live: list[Outcome], now_us: int) -> dict[SeriesKey, tuple[int, int]]:
    view = IndicatorView(hold_retention_us=RETENTION, clock_us=now_us)
    for o in live:
        view.apply(o, +1)
    return view.totals_dict()


def _random_outcome(rng: random.Random, around_us: int) -> Outcome:
    return Outcome(
        indicator=rng.choice(["on_time", "satisfaction", "feedback_on_time"]),
        unit=rng.choice(["U1", "U2", "U3"]),
        sector=rng.choice(["dat_dai", "ho_tich", "unknown"]) if rng.random() < 0.9 else "",
        time_us=around_us + rng.randint(-80 * DAY, 2 * DAY),
        hit=rng.random() < 0.7,
    )


@pytest.mark.parametrize("seed", range(6))
def test_incremental_view_equals_rebuild_and_brute_force_across_boundaries(seed):
    rng = random.Random(seed)
    # clocks that cross a month, a quarter and a year boundary (local time), and
    # land exactly on window edges
    start = _us(2024, 11, 20, 9, 0)
    clock = start
    view = IndicatorView(hold_retention_us=RETENTION, clock_us=clock)
    live: list[Outcome] = []
    checks = 0
    for step in range(400):
        roll = rng.random()
        if roll < 0.55 or not live:
            o = _random_outcome(rng, clock)
            view.apply(o, +1)
            live.append(o)
        elif roll < 0.7:
            o = live.pop(rng.randrange(len(live)))  # a retraction (the case changed)
            view.apply(o, -1)
        else:
            jump = rng.choice([1, HOUR, DAY, 7 * DAY, 13 * DAY, rng.randint(1, 3 * DAY)])
            clock += jump
            view.advance(clock)
        if step % 25 == 24:
            expected = {k: v for k, v in _brute(live, clock).items() if v != (0, 0)}
            got = {k: v for k, v in view.totals_dict().items() if v != (0, 0)}
            assert got == expected
            assert {k: v for k, v in _rebuilt(live, clock).items() if v != (0, 0)} == expected
            checks += 1
    assert clock > _us(2025, 1, 1)  # the walk crossed the year boundary
    assert checks == 16


def test_edges_are_exact_to_the_microsecond():
    t = _us(2025, 3, 31, 23, 59, 59)
    view = IndicatorView(hold_retention_us=RETENTION, clock_us=t)
    view.apply(Outcome("on_time", "U1", "dat_dai", t, True), +1)
    key = SeriesKey("on_time", "U1", ALL, "1h")
    assert view.totals_dict()[key] == (1, 1)
    view.advance(t + HOUR - 1)
    assert view.totals_dict()[key] == (1, 1)
    view.advance(t + HOUR)  # T - 1h < t fails at exactly one hour
    assert view.totals_dict()[key] == (0, 0)
    assert view.totals_dict()[SeriesKey("on_time", "U1", ALL, "mtd")] == (0, 0)  # now April
    assert view.totals_dict()[SeriesKey("on_time", "U1", ALL, "qtd")] == (0, 0)  # now Q2
    assert view.totals_dict()[SeriesKey("on_time", "U1", ALL, "ytd")] == (1, 1)


def test_a_held_outcome_counts_only_after_its_retention():
    t = _us(2025, 1, 2, 8, 0)
    view = IndicatorView(hold_retention_us=RETENTION, clock_us=t)
    view.apply(Outcome("satisfaction", "U1", "unknown", t, True), +1)
    ytd = SeriesKey("satisfaction", "U1", ALL, "ytd")
    view.advance(t + RETENTION)
    assert view.totals_dict()[ytd] == (0, 0)
    view.advance(t + RETENTION + 1)
    assert view.totals_dict()[ytd] == (1, 1)


def test_a_future_outcome_counts_once_the_clock_reaches_it():
    now = _us(2025, 5, 5, 10, 0)
    view = IndicatorView(hold_retention_us=RETENTION, clock_us=now)
    view.apply(Outcome("on_time", "U1", "dat_dai", now + HOUR, False), +1)
    key = SeriesKey("on_time", ALL, ALL, "24h")
    assert view.totals_dict()[key] == (0, 0)
    view.advance(now + HOUR)
    assert view.totals_dict()[key] == (0, 1)


def _event(event_id: str, event_type: str, t: int, **fields) -> CaseEvent:
    return CaseEvent(
        event_id=event_id,
        event_type=event_type,
        case_id="C1",
        unit_id="U1",
        occurred_at_us=t,
        source=None,
        fields=fields,
    )


@pytest.mark.parametrize("seed", range(30))
def test_open_case_threshold_agrees_with_the_case_summary_at_every_clock(seed):
    rng = random.Random(seed)
    base = _us(2025, 6, 2, 8, 0)
    state = CaseState.new("C1")
    state.add(
        _event("r", "received", base, sector="dat_dai", procedure_code="P", channel="direct", due_at=base + 3 * DAY)
    )
    for i in range(rng.randint(0, 4)):
        kind = rng.choice(["supplement_requested", "supplement_received", "apology_issued"])
        state.add(_event(f"e{i}", kind, base + rng.randint(0, 6 * DAY)))
    entry = case_outcomes_and_open(state, 0, 0, apology=apology_rule(1))[1]
    assert entry is not None
    for _ in range(200):
        now = base + rng.randint(-DAY, 10 * DAY)
        summary = case_summary(state, now)
        overdue = entry.overdue_after_us is not None and entry.overdue_after_us < now
        assert overdue == summary.overdue
        assert entry.has_apology == summary.has_apology
    index = OpenCaseIndex()
    index.set("C1", entry)
    now = base + 5 * DAY
    counts = index.counts(now)["U1"]
    assert counts.open == 1
    assert counts.overdue == int(case_summary(state, now).overdue)
    index.set("C1", None)
    assert "U1" not in index.counts(now)
    assert index.counts(now, units=["U1"])["U1"].open == 0


def test_an_outcome_counts_in_its_unit_its_sector_and_the_province_feedback_in_no_sector():
    assert scopes_of("on_time", "U1", "dat_dai") == (
        ("on_time", "U1", ALL),
        ("on_time", ALL, "dat_dai"),
        ("on_time", ALL, ALL),
    )
    assert scopes_of("feedback_on_time", "U1", "") == (("feedback_on_time", "U1", ALL), ("feedback_on_time", ALL, ALL))
    view = IndicatorView(hold_retention_us=RETENTION, clock_us=_us(2025, 2, 1))
    view.apply(Outcome("on_time", "U1", "dat_dai", _us(2025, 1, 31), True), +1)
    view.apply(Outcome("on_time", "U2", "dat_dai", _us(2025, 1, 31), False), +1)
    totals = view.totals_dict()
    assert totals[SeriesKey("on_time", ALL, "dat_dai", "ytd")] == (1, 2)  # sums, never ratios
    assert totals[SeriesKey("on_time", ALL, ALL, "ytd")] == (1, 2)
    assert totals[SeriesKey("on_time", "U2", ALL, "ytd")] == (0, 1)
    assert totals[SeriesKey("on_time", ALL, "dat_dai", "mtd")] == (0, 0)


def test_due_soon_counts_open_cases_due_by_the_end_of_the_next_working_day():
    from datetime import date, datetime, timedelta, timezone

    from pipeline.core.cases import OpenCase
    from pipeline.contract.localtime import WorkCalendar, end_of_next_working_day_us

    vn = timezone(timedelta(hours=7))

    def at(*args) -> int:
        return int(datetime(*args, tzinfo=vn).timestamp() * 1_000_000)

    # Friday 24 April 2026, 10:00: Saturday, Sunday and Monday 27 (Giỗ Tổ made up) are off,
    # so the next working day is Tuesday 28 and the horizon Wednesday 29, 00:00
    calendar = WorkCalendar(holidays=frozenset({date(2026, 4, 27)}))
    now = at(2026, 4, 24, 10, 0)
    assert end_of_next_working_day_us(now, calendar) == at(2026, 4, 29, 0, 0)
    assert end_of_next_working_day_us(now, WorkCalendar()) == at(2026, 4, 28, 0, 0)
    index = OpenCaseIndex(calendar)
    dues = {"late": at(2026, 4, 24, 9, 0), "today": at(2026, 4, 24, 16, 0), "tuesday": at(2026, 4, 28, 16, 0),
            "wednesday": at(2026, 4, 29, 9, 0), "paused": None}
    for case_id, due in dues.items():
        index.set(case_id, OpenCase("U1", "dat_dai", due, False))
    index.set("other", OpenCase("U2", "ho_tich", at(2026, 4, 24, 11, 0), True))
    counts = index.counts(now)
    assert counts["U1"] == OpenCaseCounts(open=5, overdue=1, overdue_without_apology=1, due_soon=2)
    assert counts["U2"].due_soon == 1
    assert OpenCaseIndex(WorkCalendar()).counts(now) == {}
    weekends_only = OpenCaseIndex(WorkCalendar())
    for case_id, due in dues.items():
        weekends_only.set(case_id, OpenCase("U1", "dat_dai", due, False))
    assert weekends_only.counts(now)["U1"].due_soon == 1  # Monday 27 counted a working day: Tuesday is too late
    # later the same day the horizon is the same; a case due now is due soon, not overdue
    assert index.counts(at(2026, 4, 24, 16, 0))["U1"] == OpenCaseCounts(5, 1, 1, 2)
    assert index.counts(at(2026, 4, 24, 16, 0) + 1)["U1"] == OpenCaseCounts(5, 2, 2, 1)
