"""Report pieces that need no engine: periods, Vietnamese formats, working days, ranking, CLI errors."""

from __future__ import annotations

import subprocess
import sys
from datetime import date, datetime

import pytest

from pipeline.config import UserError
from pipeline.core.windows import window_start_us
from pipeline.calendar_file import load_calendar
from pipeline.contract.localtime import WorkCalendar
from pipeline.contract.localtime import next_working_day
from pipeline.reports.data import IndicatorFigure, rank_units, working_days_late
from pipeline.reports.period import LOCAL_TZ, Period, parse_period
from pipeline.reports.render import vn_date, vn_number, vn_percent

ROOT = __import__("pathlib").Path(__file__).resolve().parents[2]


def _us(y, m, d, hh=0, mm=0, ss=0, us=0) -> int:
    return int(datetime(y, m, d, hh, mm, ss, tzinfo=LOCAL_TZ).timestamp()) * 1_000_000 + us


@pytest.mark.parametrize(
    "text,kind,first,last,label,window",
    [
        ("2025-06", "month", date(2025, 6, 1), date(2025, 6, 30), "Tháng 06/2025", "mtd"),
        ("2025-02", "month", date(2025, 2, 1), date(2025, 2, 28), "Tháng 02/2025", "mtd"),
        ("2025-Q2", "quarter", date(2025, 4, 1), date(2025, 6, 30), "Quý II/2025", "qtd"),
        ("2025-q4", "quarter", date(2025, 10, 1), date(2025, 12, 31), "Quý IV/2025", "qtd"),
        ("2025", "year", date(2025, 1, 1), date(2025, 12, 31), "Năm 2025", "ytd"),
    ],
)
def test_periods(text, kind, first, last, label, window):
    p = parse_period(text)
    assert (p.kind, p.first_day, p.last_day, p.label_vi, p.window) == (kind, first, last, label, window)
    assert p.start_us == _us(first.year, first.month, first.day)
    assert p.end_us == _us(last.year, last.month, last.day, 23, 59, 59, 999_999)
    # the calendar window at the period's last microsecond holds exactly the period: start < t <= end
    assert window_start_us(p.window, p.end_us) == p.start_us - 1


def test_months_and_previous():
    assert [m.code for m in parse_period("2025-Q3").months()] == ["2025-07", "2025-08", "2025-09"]
    assert len(parse_period("2025").months()) == 12
    assert parse_period("2025-01").previous() == Period("month", 2024, 12)
    assert parse_period("2025-Q1").previous() == Period("quarter", 2024, 4)
    assert parse_period("2025-Q3").previous() == Period("quarter", 2025, 2)
    assert parse_period("2025").previous() == Period("year", 2024, 1)


@pytest.mark.parametrize("bad", ["", "2025-13", "2025-00", "2025-Q5", "25-06", "2025/06", "June 2025", "1999"])
def test_bad_period_is_a_user_error(bad):
    with pytest.raises(UserError, match="--period"):
        parse_period(bad)


def test_vietnamese_formats():
    assert vn_number(1234.5, 1) == "1.234,5"
    assert vn_number(1234567) == "1.234.567"
    assert vn_number(None) == "—"
    assert vn_percent(0.9567) == "95,7%"
    assert vn_percent(1.0) == "100%"
    assert vn_percent(0.5) == "50%"
    assert vn_percent(None) == "—"
    assert vn_date(_us(2025, 6, 30, 23, 59)) == "30/06/2025"
    assert vn_date(_us(2025, 7, 1, 0, 30)) == "01/07/2025"  # local date, not UTC (30/06 17:30 UTC)


def test_working_days_late_skip_weekends_and_holidays():
    cal = load_calendar()  # deploy/holidays.csv: 30/04, 01/05 and (swapped) 02/05/2025 are off
    due = _us(2025, 4, 29, 17, 0)  # Tuesday
    assert working_days_late(cal, due, date(2025, 4, 29)) == 0  # late within the due day
    assert working_days_late(cal, due, date(2025, 5, 4)) == 0  # holidays, then the weekend
    assert working_days_late(cal, due, date(2025, 5, 5)) == 1  # Monday 05/05
    assert working_days_late(cal, due, date(2025, 5, 6)) == 2
    assert working_days_late(plain := WorkCalendar(), due, date(2025, 5, 6)) == 5
    assert working_days_late(cal, None, date(2025, 5, 5)) == 0
    assert next_working_day(plain, date(2025, 6, 27)) == date(2025, 6, 30)  # Friday -> Monday
    assert next_working_day(cal, date(2025, 4, 29)) == date(2025, 5, 5)


def _f(unit, indicator, n, d, meets, below=False):
    return IndicatorFigure(indicator, unit, n, d, n / d, ">=", 0.8, meets, below)


def test_ranking_by_targets_met_then_missed_then_on_time_766():
    figures = {
        ("A", "on_time"): _f("A", "on_time", 9, 10, True),
        ("A", "on_time_766"): _f("A", "on_time_766", 8, 10, True),
        ("B", "on_time"): _f("B", "on_time", 9, 10, True),
        ("B", "on_time_766"): _f("B", "on_time_766", 9, 10, True),
        ("C", "on_time"): _f("C", "on_time", 1, 30, False, True),
        ("C", "on_time_766"): _f("C", "on_time_766", 29, 30, True),
        ("D", "on_time"): _f("D", "on_time", 1, 3, False, False),
        ("D", "on_time_766"): _f("D", "on_time_766", 29, 30, True),
    }
    ranking = rank_units(figures, ["A", "B", "C", "D"], {"A": "Đơn vị A"})
    assert [r.unit for r in ranking] == ["B", "A", "D", "C"]
    assert [r.rank for r in ranking] == [1, 2, 3, 4]
    assert ranking[1].name == "Đơn vị A" and ranking[0].name == "B"
    assert (ranking[3].met, ranking[3].missed) == (1, 1)


@pytest.mark.parametrize(
    "args,needle",
    [
        (["report", "--period", "2025-13", "--out", "x"], "--period"),
        (["report", "--out", "x"], "--period"),
        (["report", "--period", "2025-06"], "--out"),
    ],
)
def test_cli_errors_are_one_line_exit_2(args, needle, tmp_path):
    result = subprocess.run([sys.executable, "-m", "pipeline", "--data-dir", str(tmp_path), *args],
                            cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1
    assert needle in result.stderr


def test_figures_mapped_onto_todays_units_move_only_to_a_single_successor():
    from datetime import date

    from pipeline.config import PROJECT_ROOT
    from pipeline.targets_file import load_targets
    from pipeline.reports.data import IndicatorFigure, map_onto_units
    from pipeline.store.units import load_units

    targets = load_targets(PROJECT_ROOT / "deploy" / "targets.toml")
    registry = load_units(PROJECT_ROOT / "deploy" / "units.csv")

    def figure(unit, n, d):
        return IndicatorFigure("digitized", unit, n, d, n / d, "=", 1.0, n == d, n != d and d >= 20)

    figures = {
        ("BG_SO_GDDT", "digitized"): figure("BG_SO_GDDT", 30, 30),  # ceased 30 June: one successor
        ("SO_GDDT", "digitized"): figure("SO_GDDT", 5, 10),  # in force today
        ("BG_H_HIEP_HOA", "digitized"): figure("BG_H_HIEP_HOA", 8, 9),  # split among communes
        ("all", "digitized"): figure("all", 43, 49),
    }
    mapped, moved = map_onto_units(figures, registry, date(2025, 9, 1), targets)
    assert moved == {"BG_SO_GDDT": "SO_GDDT"}
    assert (mapped[("SO_GDDT", "digitized")].numerator, mapped[("SO_GDDT", "digitized")].denominator) == (35, 40)
    assert mapped[("SO_GDDT", "digitized")].below_target  # 35/40 fails "= 100%" with 40 outcomes
    assert ("BG_SO_GDDT", "digitized") not in mapped
    assert mapped[("BG_H_HIEP_HOA", "digitized")].denominator == 9  # cannot be divided: kept
    assert mapped[("all", "digitized")].denominator == 49  # the province is unchanged
    unchanged, none = map_onto_units(figures, registry, date(2025, 6, 1), targets)
    assert none == {} and unchanged[("BG_SO_GDDT", "digitized")].denominator == 30


def test_reporting_regime_periods_run_from_the_15th_to_the_14th():
    from datetime import date

    from pipeline.reports.period import parse_period

    june = parse_period("2025-06/bc")
    assert (june.first_day, june.last_day) == (date(2025, 5, 15), date(2025, 6, 14))
    assert june.code == "2025-06-bc" and june.label_vi == "Kỳ báo cáo tháng 06/2025"
    assert "09/2019/NĐ-CP" in june.kind_vi and "dương lịch" in parse_period("2025-06").kind_vi
    jan = parse_period("2025-01/bc")
    assert (jan.first_day, jan.last_day) == (date(2024, 12, 15), date(2025, 1, 14))
    q2 = parse_period("2025-Q2/bc")
    assert (q2.first_day, q2.last_day) == (date(2025, 3, 15), date(2025, 6, 14))
    assert [m.first_day for m in q2.months()] == [date(2025, 3, 15), date(2025, 4, 15), date(2025, 5, 15)]
    year = parse_period("2025/bc")
    assert (year.first_day, year.last_day) == (date(2024, 12, 15), date(2025, 12, 14))
    assert june.previous() == parse_period("2025-05/bc")
    assert june.end_us + 1 == parse_period("2025-07/bc").start_us  # consecutive periods tile time
    calendar = parse_period("2025-06")
    assert (calendar.first_day, calendar.last_day, calendar.window) == (date(2025, 6, 1), date(2025, 6, 30), "mtd")


def test_a_miss_of_a_100_percent_target_is_never_not_enough_volume():
    from pipeline.reports.data import IndicatorFigure
    from pipeline.reports.render import verdict

    def figure(n, d, op, target, below):
        return IndicatorFigure("apology_coverage", "all", n, d, n / d, op, target, n / d >= target if op != "=" else n == d, below)

    assert verdict(figure(5, 6, "=", 1.0, False), 20) == "Không đạt"  # the province's 5 of 6 apologies
    assert verdict(figure(6, 6, "=", 1.0, False), 20) == "Đạt"
    assert verdict(figure(5, 6, ">", 0.95, False), 20) == "Chưa đủ 20 lượt"  # other targets keep the minimum
    assert verdict(figure(50, 60, ">", 0.95, True), 20) == "Không đạt"
