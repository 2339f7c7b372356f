"""Local time of the province: the one definition of the UTC+7 offset and the day length.

Asia/Ho_Chi_Minh is a fixed UTC+7 with no daylight saving time, so local calendar
arithmetic is plain integer arithmetic on epoch microseconds. Every module that needs
the offset, the day length, a local date or a local midnight imports it from here
(``pipeline.core.windows`` re-exports the names it always had). This module imports
only the standard library, so the contract and the adapters may import it too.
"""

from __future__ import annotations

import datetime as _dt
import logging
from dataclasses import dataclass, field
from functools import lru_cache

__all__ = [
    "US",
    "HOUR_US",
    "DAY_US",
    "LOCAL_OFFSET_US",
    "LOCAL_TZ",
    "EPOCH_ORDINAL",
    "local_day_number",
    "local_month_index",
    "local_date",
    "local_midnight_us",
    "days_us",
    "WorkCalendar",
    "end_of_next_working_day_us",
    "next_working_day",
]

US = 1_000_000  # microseconds in a second
HOUR_US = 3600 * US
DAY_US = 24 * HOUR_US
LOCAL_OFFSET_US = 7 * 3600 * US  # Asia/Ho_Chi_Minh, UTC+7, no DST
LOCAL_TZ = _dt.timezone(_dt.timedelta(microseconds=LOCAL_OFFSET_US), "Asia/Ho_Chi_Minh")
EPOCH_ORDINAL = _dt.date(1970, 1, 1).toordinal()


def days_us(days: int | float) -> int:
    """A number of days in microseconds."""
    return int(days * DAY_US)


def local_day_number(us: int) -> int:
    """Days since 1970-01-01 of the local (UTC+7) calendar date of ``us``."""
    return (us + LOCAL_OFFSET_US) // DAY_US


@lru_cache(maxsize=8192)
def _month_index_of_day(day_number: int) -> int:
    d = _dt.date.fromordinal(EPOCH_ORDINAL + day_number)
    return d.year * 12 + d.month - 1


def local_month_index(us: int) -> int:
    """``year * 12 + month - 1`` of the local (UTC+7) calendar month of ``us``.

    Consecutive months have consecutive indices; a quarter starts at an index
    divisible by 3, a year at one divisible by 12."""
    return _month_index_of_day((us + LOCAL_OFFSET_US) // DAY_US)


def local_date(us: int) -> _dt.date:
    """The calendar date of ``us`` (epoch µs) in Asia/Ho_Chi_Minh."""
    return _dt.date.fromordinal(EPOCH_ORDINAL + (us + LOCAL_OFFSET_US) // DAY_US)


def local_midnight_us(d: _dt.date) -> int:
    """Epoch µs of local midnight at the start of the calendar date ``d``."""
    return (d.toordinal() - EPOCH_ORDINAL) * DAY_US - LOCAL_OFFSET_US


_WARNED_YEARS: set[int] = set()


def _warn_missing_year(year: int, source: str) -> None:
    """Log once per year that the holidays of ``year`` are unknown (weekends only are off)."""
    if year not in _WARNED_YEARS:
        _WARNED_YEARS.add(year)
        logging.getLogger("pipeline.calendar").warning(
            "%s lists no public holidays for %d: working days of %d count weekends only as days off; "
            "add the year's announced holidays", source or "the holidays file", year, year,
        )


@dataclass(frozen=True)
class WorkCalendar:
    """Working days: Monday to Friday, except the listed holidays, plus the listed weekend
    days worked in exchange for a bridging day (read from ``deploy/holidays.csv`` by
    ``pipeline.calendar_file.load_calendar``)."""

    holidays: frozenset[_dt.date] = field(default_factory=frozenset)  # weekdays off
    working_saturdays: frozenset[_dt.date] = field(default_factory=frozenset)  # weekend days worked
    names: dict[_dt.date, str] = field(default_factory=dict, compare=False)
    #: the years whose holidays are listed (read from the file); empty: a weekends-only calendar
    #: (tests, no file). A day of another year is judged on weekends only, with one warning per
    #: year logged (``covers`` lets a caller refuse instead, as the history simulator does)
    years: frozenset[int] = field(default_factory=frozenset)
    source: str = field(default="", compare=False)  # where the holidays came from, for messages

    def covers(self, year: int) -> bool:
        """True when the calendar knows ``year``'s holidays (or is weekends-only by design)."""
        return not self.years or year in self.years

    def is_working_day(self, day: _dt.date) -> bool:
        if self.years and day.year not in self.years:
            _warn_missing_year(day.year, self.source)
        if day in self.working_saturdays:
            return True
        return day.weekday() < 5 and day not in self.holidays

    def working_days(self, start: _dt.date, end: _dt.date) -> list[_dt.date]:
        """The working days in [start, end)."""
        out = []
        for n in range(start.toordinal(), end.toordinal()):
            day = _dt.date.fromordinal(n)
            if self.is_working_day(day):
                out.append(day)
        return out


def next_working_day(calendar: WorkCalendar, day: _dt.date) -> _dt.date:
    """The first working day of ``calendar`` after ``day``."""
    d = day + _dt.timedelta(days=1)
    for _ in range(400):
        if calendar.is_working_day(d):
            return d
        d += _dt.timedelta(days=1)
    raise ValueError(f"no working day within 400 days after {day}")


def end_of_next_working_day_us(now_us: int, calendar: WorkCalendar) -> int:
    """Local midnight at the end of the first working day after the local date of
    ``now_us``: the horizon of "sắp trễ" (due by the end of the next working day), for the
    live gauge, the unit board's list and the report alike."""
    return local_midnight_us(next_working_day(calendar, local_date(now_us)) + _dt.timedelta(days=1))
