"""Office hours of the province's administration (for the simulator); the working days are
``pipeline.calendar_file``'s.

Office hours (giờ hành chính): 07:30–11:30 and 13:00–17:00 local time (8 hours with a
lunch break), Monday to Friday, except the public holidays of ``deploy/holidays.csv``,
which also lists the Saturdays worked in exchange for a bridging day (``working_day``).
A year the file does not list is judged on weekends only with one logged warning per year;
the history simulator refuses it (``WorkCalendar.covers``).
"""

from __future__ import annotations

from datetime import time

__all__ = ["OFFICE_HOURS", "WORKDAY_SECONDS"]

#: the working intervals of a working day, local time
OFFICE_HOURS: tuple[tuple[time, time], ...] = ((time(7, 30), time(11, 30)), (time(13, 0), time(17, 0)))
WORKDAY_SECONDS = sum((e.hour * 3600 + e.minute * 60) - (s.hour * 3600 + s.minute * 60) for s, e in OFFICE_HOURS)
