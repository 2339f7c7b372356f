"""The province's working days read from ``deploy/holidays.csv`` into the pure rule,
:class:`~pipeline.contract.localtime.WorkCalendar` (as ``targets_file`` reads ``targets.toml``).

The file lists the public holidays and the weekend days worked in exchange for a bridging day
(``working_day``); years it does not cover have weekends only.
"""

from __future__ import annotations

import csv
from datetime import date
from os import PathLike
from pathlib import Path

from pipeline.config import PROJECT_ROOT, UserError
from pipeline.contract.localtime import WorkCalendar
from pipeline.core.apology import ApologyRule

__all__ = ["WorkCalendar", "load_calendar", "apology_rule", "DEFAULT_HOLIDAYS_FILE"]

DEFAULT_HOLIDAYS_FILE = PROJECT_ROOT / "deploy" / "holidays.csv"


def load_calendar(path: str | PathLike[str] | None = None) -> WorkCalendar:
    """Read ``deploy/holidays.csv`` (``date,kind,name_vi``; ``#`` comments). Raises
    ``pipeline.config.UserError`` on a malformed file."""
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


def apology_rule(lead: int, path: str | PathLike[str] | None = None) -> ApologyRule:
    """The ``apology_coverage`` rule with the working days of ``deploy/holidays.csv``
    (or ``path``) and ``lead`` working days (``Settings.apology_lead``)."""
    return ApologyRule(load_calendar(path), lead)
