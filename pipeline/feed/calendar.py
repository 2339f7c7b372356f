"""Office hours and the holidays file of the province's administration (for the simulator).

The working-day rule itself, :class:`~pipeline.core.localtime.WorkCalendar`, lives with
local time in ``pipeline.core.localtime``; this module reads ``deploy/holidays.csv`` into it.

Office hours (giờ hành chính): 07:30–11:30 and 13:00–17:00 local time (8 hours with a
lunch break), Monday to Friday, except the public holidays of ``deploy/holidays.csv``,
which also lists the Saturdays worked in exchange for a bridging day (``working_day``).
A year the file does not list is judged on weekends only with one logged warning per year;
the history simulator refuses it (``WorkCalendar.covers``).
"""

from __future__ import annotations

import csv
from datetime import date, time
from os import PathLike
from pathlib import Path

from pipeline.core.localtime import WorkCalendar  # the working-day rule; this module reads the file

__all__ = ["OFFICE_HOURS", "WORKDAY_SECONDS", "WorkCalendar", "load_calendar", "DEFAULT_HOLIDAYS_FILE"]

#: the working intervals of a working day, local time
OFFICE_HOURS: tuple[tuple[time, time], ...] = ((time(7, 30), time(11, 30)), (time(13, 0), time(17, 0)))
WORKDAY_SECONDS = sum((e.hour * 3600 + e.minute * 60) - (s.hour * 3600 + s.minute * 60) for s, e in OFFICE_HOURS)


def _default_file() -> Path:
    from pipeline.config import PROJECT_ROOT

    return PROJECT_ROOT / "deploy" / "holidays.csv"


DEFAULT_HOLIDAYS_FILE = _default_file()


def load_calendar(path: str | PathLike[str] | None = None) -> WorkCalendar:
    """Read ``deploy/holidays.csv`` (``date,kind,name_vi``; ``#`` comments). Raises
    ``pipeline.config.UserError`` on a malformed file."""
    from pipeline.config import UserError

    p = Path(path) if path is not None else DEFAULT_HOLIDAYS_FILE
    try:
        text = p.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{p}: cannot read the holidays file ({exc})") from None
    lines = ["" if ln.lstrip().startswith("#") else ln for ln in text.splitlines()]
    holidays: set[date] = set()
    saturdays: set[date] = set()
    names: dict[date, str] = {}
    header = None
    reader = csv.reader(lines)
    for row in reader:
        if not row or all(not c.strip() for c in row):
            continue
        cells = [c.strip() for c in row]
        where = f"{p}:{reader.line_num}"
        if header is None:
            if cells != ["date", "kind", "name_vi"]:
                raise UserError(f"{where}: the header must be date,kind,name_vi")
            header = cells
            continue
        if len(cells) != 3:
            raise UserError(f"{where}: expected 3 fields, got {len(cells)}")
        try:
            day = date.fromisoformat(cells[0])
        except ValueError:
            raise UserError(f"{where}: date must be YYYY-MM-DD, got {cells[0]!r}") from None
        if day in names:
            raise UserError(f"{where}: {day} is listed twice")
        if cells[1] == "holiday":
            if day.weekday() >= 5:
                raise UserError(f"{where}: {day} is a weekend day; list only weekdays off")
            holidays.add(day)
        elif cells[1] == "working_day":
            if day.weekday() < 5:
                raise UserError(f"{where}: {day} is a weekday; a working_day is a weekend day worked")
            saturdays.add(day)
        else:
            raise UserError(f"{where}: kind must be holiday or working_day, got {cells[1]!r}")
        names[day] = cells[2]
    return WorkCalendar(frozenset(holidays), frozenset(saturdays), names, frozenset(d.year for d in names), str(p))
