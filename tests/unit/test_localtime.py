"""pipeline.contract.localtime: the one definition of the province's local time."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

from pipeline.contract.events import parse_time
from pipeline.contract import localtime
from pipeline.core import windows
from pipeline.contract.localtime import (
    DAY_US,
    LOCAL_OFFSET_US,
    LOCAL_TZ,
    WorkCalendar,
    days_us,
    local_date,
    local_day_number,
    local_midnight_us,
    local_month_index,
)

PIPELINE = Path(__file__).resolve().parents[2] / "pipeline"
# the ways the UTC+7 offset or the day length could be written again
OFFSET = re.compile(r"hours\s*=\s*7\b|\b7\s*\*\s*3600\b|\b7\s*\*\s*3_600|\b25_?200\b|\b7\s*\*\s*_?HOUR")
DAY = re.compile(r"\b86_?400\b")


def test_the_offset_is_utc_plus_7_and_the_zone_agrees():
    assert LOCAL_OFFSET_US == 7 * 3600 * 1_000_000
    assert LOCAL_TZ.utcoffset(None) == timedelta(hours=7)
    assert DAY_US == 24 * 3600 * 1_000_000
    assert days_us(35) == 35 * DAY_US


def test_local_date_turns_at_local_midnight():
    assert local_date(parse_time("2025-03-09T16:59:59.999999Z")) == date(2025, 3, 9)
    assert local_date(parse_time("2025-03-09T17:00:00Z")) == date(2025, 3, 10)
    assert local_day_number(parse_time("2025-03-10T00:00:00+07:00")) == date(2025, 3, 10).toordinal() - date(1970, 1, 1).toordinal()
    assert local_month_index(parse_time("2025-03-31T17:00:00Z")) == 2025 * 12 + 3  # 1 April local


def test_local_midnight_is_the_start_of_the_local_date():
    for d in (date(1969, 12, 31), date(2025, 1, 1), date(2025, 3, 10)):
        start = local_midnight_us(d)
        assert start == parse_time(f"{d.isoformat()}T00:00:00+07:00")
        assert local_date(start) == d and local_date(start - 1) == d - timedelta(days=1)
        assert datetime.fromtimestamp(start / 1_000_000, tz=LOCAL_TZ).time().hour == 0


def test_working_days_skip_weekends_and_holidays_and_count_worked_saturdays():
    calendar = WorkCalendar(holidays=frozenset({date(2025, 9, 1)}), working_saturdays=frozenset({date(2025, 9, 6)}))
    days = calendar.working_days(date(2025, 8, 29), date(2025, 9, 8))  # Fri 29 Aug .. Sun 7 Sep
    assert days == [date(2025, 8, 29), date(2025, 9, 2), date(2025, 9, 3), date(2025, 9, 4), date(2025, 9, 5),
                    date(2025, 9, 6)]


def test_windows_re_exports_the_same_objects():
    assert windows.LOCAL_TZ is localtime.LOCAL_TZ
    assert windows.LOCAL_OFFSET_US == localtime.LOCAL_OFFSET_US
    assert windows.local_date is localtime.local_date


def test_the_offset_and_the_day_length_are_written_once_in_the_package():
    offsets, days = [], []
    for path in sorted(PIPELINE.rglob("*.py")):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            code = line.split("#", 1)[0]
            where = f"{path.relative_to(PIPELINE.parent)}:{number}"
            if OFFSET.search(code):
                offsets.append(where)
            if DAY.search(code):
                days.append(where)
    assert [w.split(":")[0] for w in offsets] == ["pipeline/contract/localtime.py"], offsets
    assert {w.split(":")[0] for w in days} <= {"pipeline/contract/localtime.py"}, days


def test_utc_stays_utc():
    assert datetime(2025, 1, 1, tzinfo=timezone.utc).astimezone(LOCAL_TZ).hour == 7
