"""The units registry as a pure lookup: which unit codes are valid at a given time.

Built from already-loaded rows (``pipeline.store.units.load_units`` reads and checks
``deploy/units.csv``); nothing here reads files. A row is anything with the attributes
``unit_id``, ``valid_from`` and ``valid_to`` (``datetime.date``, ``valid_to`` None while
in force, both inclusive) and optionally ``successors`` (a tuple of unit codes).

Validity is judged on the **local calendar date** (Asia/Ho_Chi_Minh, UTC+7, no DST) of
an instant, the way the province's decisions date it: a unit valid until 2025-06-30 is
valid up to 2025-06-30T23:59:59.999999+07:00.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, Iterable

from pipeline.contract.localtime import local_day_number
from pipeline.core.windows import local_date

_LABELS_KEPT = 200_000  # (unit, day) answers remembered by UnitRegistry.label

__all__ = ["UnitRegistry", "Period", "local_date_of_us", "UNKNOWN_UNIT"]

#: the unit label that events with an unregistered unit are attributed to
UNKNOWN_UNIT = "unknown"

#: the Asia/Ho_Chi_Minh calendar date of an epoch-µs instant
local_date_of_us = local_date


@dataclass(frozen=True, slots=True)
class Period:
    valid_from: date
    valid_to: date | None
    successors: tuple[str, ...] = ()

    def covers(self, day: date) -> bool:
        return self.valid_from <= day and (self.valid_to is None or day <= self.valid_to)


class UnitRegistry:
    """Unit code -> its validity periods; answers ``valid_at`` / ``valid_on`` lookups."""

    __slots__ = ("_periods", "_labels")

    def __init__(self, rows: Iterable[Any]) -> None:
        periods: dict[str, list[Period]] = {}
        for row in rows:
            periods.setdefault(row.unit_id, []).append(
                Period(row.valid_from, row.valid_to, tuple(getattr(row, "successors", ()) or ()))
            )
        for plist in periods.values():
            plist.sort(key=lambda p: p.valid_from)
        self._periods = periods
        self._labels: dict[tuple[str, int], str] = {}

    def __contains__(self, unit_id: object) -> bool:
        return unit_id in self._periods

    def __len__(self) -> int:
        return len(self._periods)

    def periods(self, unit_id: str) -> tuple[Period, ...]:
        return tuple(self._periods.get(unit_id, ()))

    def valid_on(self, unit_id: str, day: date) -> bool:
        """True when ``unit_id`` has a period containing the local date ``day``."""
        return any(p.covers(day) for p in self._periods.get(unit_id, ()))

    def valid_at(self, unit_id: str, time_us: int) -> bool:
        """True when ``unit_id`` is in force at the instant ``time_us`` (epoch µs)."""
        return self.valid_on(unit_id, local_date_of_us(time_us))

    def label(self, unit_id: str, time_us: int) -> str:
        """``unit_id`` if valid at ``time_us``, else :data:`UNKNOWN_UNIT` (bounded label values).

        Once per (unit, local day): the worker asks for every event."""
        key = (unit_id, local_day_number(time_us))
        labels = self._labels
        found = labels.get(key)
        if found is None:
            if len(labels) >= _LABELS_KEPT:  # many unknown codes (hostile input): start again
                labels.clear()
            found = labels[key] = unit_id if self.valid_at(unit_id, time_us) else UNKNOWN_UNIT
        return found

    def units_on(self, day: date) -> list[str]:
        """The codes valid on ``day``, in first-seen order."""
        return [u for u, plist in self._periods.items() if any(p.covers(day) for p in plist)]

    def covers(self, unit_id: str, start: date, end: date | None) -> bool:
        """True when the periods of ``unit_id`` cover every day of [start, end] (end None: open)."""
        day = start
        for p in self._periods.get(unit_id, ()):
            if p.valid_to is not None and p.valid_to < day:
                continue
            if p.valid_from > day:
                return False
            if p.valid_to is None:
                return True
            day = p.valid_to + timedelta(days=1)
            if end is not None and day > end:
                return True
        return False

    def successors_on(self, unit_id: str, ended: date, target: date, _depth: int = 0) -> set[str]:
        """Units valid on ``target`` reached from ``unit_id`` (whose period ended on ``ended``)
        by following successors; ``unit_id`` itself when it is valid on ``target``."""
        if self.valid_on(unit_id, target):
            return {unit_id}
        if _depth > 50:  # a cycle: the file is wrong, nothing is reached
            return set()
        out: set[str] = set()
        for p in self._periods.get(unit_id, ()):
            if p.valid_to is None or p.valid_to > target:
                continue
            for succ in p.successors:
                out |= self.successors_on(succ, p.valid_to, target, _depth + 1)
        return out
