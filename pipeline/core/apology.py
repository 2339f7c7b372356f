"""The apology rule of ``apology_coverage`` v1.2 (docs/indicators.md): when an apology
letter (phiếu xin lỗi và hẹn lại ngày trả kết quả) still counts.

The one-stop decree wants the letter to reach the applicant *before* the dossier falls
due. An ``apology_issued`` counts when it is dated no later than the end of the working
day that lies ``lead`` working days before the effective due's local date
(Asia/Ho_Chi_Minh; working days from :class:`~pipeline.contract.localtime.WorkCalendar`,
i.e. ``deploy/holidays.csv``). With ``lead`` 0 the due date itself is the last day.

Example (lead 1): effective due Tuesday 10 June 2025 17:00 → the deadline is the end of
Monday 9 June (23:59:59.999999 local); due Monday → the Friday before (or the last
working day before a holiday).

Pure: the calendar is given, nothing is read here.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field

from pipeline.contract.localtime import DAY_US, EPOCH_ORDINAL, LOCAL_OFFSET_US, WorkCalendar, local_day_number

__all__ = ["ApologyRule", "DEFAULT_APOLOGY_LEAD", "MAX_LEAD"]

DEFAULT_APOLOGY_LEAD = 1
#: a lead beyond this many working days is surely a configuration mistake
MAX_LEAD = 30


def _date(day_number: int) -> _dt.date:
    return _dt.date.fromordinal(EPOCH_ORDINAL + day_number)


def _end_of_day_us(day_number: int) -> int:
    """The last microsecond of the local day ``day_number``."""
    return (day_number + 1) * DAY_US - LOCAL_OFFSET_US - 1


@dataclass(frozen=True)
class ApologyRule:
    """``calendar``: the working days; ``lead``: working days before the due date."""

    calendar: WorkCalendar
    lead: int = DEFAULT_APOLOGY_LEAD
    _deadline_days: dict = field(default_factory=dict, compare=False, repr=False)
    _first_days: dict = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        if isinstance(self.lead, bool) or not isinstance(self.lead, int) or not 0 <= self.lead <= MAX_LEAD:
            raise ValueError(f"apology lead must be a whole number of working days from 0 to {MAX_LEAD}, got {self.lead!r}")

    def deadline_day(self, due_day: int) -> int:
        """Local day number of the last day an apology counts for a due on local day ``due_day``:
        the ``lead``-th working day before it (the due day itself when ``lead`` is 0)."""
        cached = self._deadline_days.get(due_day)
        if cached is not None:
            return cached
        day, found = due_day, 0
        while found < self.lead:
            day -= 1
            if self.calendar.is_working_day(_date(day)):
                found += 1
        self._deadline_days[due_day] = day
        return day

    def deadline_us(self, effective_due_us: int) -> int:
        """The last microsecond at which an apology still counts for this effective due."""
        return _end_of_day_us(self.deadline_day(local_day_number(effective_due_us)))

    def counts(self, apology_us: int | None, effective_due_us: int) -> bool:
        """Whether an apology at ``apology_us`` (None: none) counts for this effective due."""
        return apology_us is not None and apology_us <= self.deadline_us(effective_due_us)

    def first_due_day(self, apology_us: int) -> int:
        """The earliest local due day for which an apology at ``apology_us`` counts
        (the deadline day is non-decreasing in the due day)."""
        day = local_day_number(apology_us)
        cached = self._first_days.get(day)
        if cached is not None:
            return cached
        due = day
        while self.deadline_day(due) < day:
            due += 1
        self._first_days[day] = due
        return due

    def first_due_us(self, apology_us: int) -> int:
        """The earliest effective due (local midnight) for which the apology counts."""
        return self.first_due_day(apology_us) * DAY_US - LOCAL_OFFSET_US
