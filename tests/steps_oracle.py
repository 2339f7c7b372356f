"""Late process steps computed from the raw contract ``step`` events, independently of the
SQL (``pipeline.store.steps``): for the report's late list and the unit board's panels.

The latest report of a step wins (its ``occurred_at``, then the one that carries
``finished_at``). A step is late in the period [start, end] seen at ``t`` when it finished
in the period after its due, or is open at ``t`` (not started after ``t``, not finished by
``t``) past its due. Working days late: the working days of ``deploy/holidays.csv`` after
the local due date up to the local finish date (open: ``t``'s date).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Iterable

from pipeline.calendar_file import load_calendar
from pipeline.contract.localtime import LOCAL_TZ

__all__ = ["OracleStep", "latest_steps", "late_by_official", "open_overdue_cases"]


@dataclass(frozen=True)
class OracleStep:
    case_id: str
    unit: str
    department: str
    handler_name: str
    started: datetime
    due: datetime | None
    finished: datetime | None


def _time(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def latest_steps(events: Iterable[dict]) -> list[OracleStep]:
    latest: dict[tuple[str, str], dict] = {}
    for e in events:
        if e.get("event_type") != "step":
            continue
        key = (e["case_id"], e["step_id"])
        was = latest.get(key)
        if was is None or (_time(e["occurred_at"]), "finished_at" in e) > (_time(was["occurred_at"]), "finished_at" in was):
            latest[key] = e
    return [
        OracleStep(e["case_id"], e["unit_id"], e.get("department") or "", e.get("handler_name") or "",
                   _time(e["started_at"]), _time(e.get("step_due_at")), _time(e.get("finished_at")))
        for e in latest.values()
    ]


def _working_days_after(due: date, until: date) -> int:
    calendar = load_calendar()
    return sum(1 for n in range(1, (until - due).days + 1) if calendar.is_working_day(due + timedelta(days=n)))


def late_by_official(
    events: Iterable[dict], start: datetime, end: datetime, t: datetime
) -> dict[tuple[str, str, str], tuple[int, int, int, int]]:
    """(unit, department, official) -> (steps handled, finished late, open past due, worst
    working days late), for those with a late step; ``end`` inclusive."""
    out: dict[tuple[str, str, str], list[int]] = {}
    for s in latest_steps(events):
        if s.started > t:
            continue
        done = s.finished is not None and start <= s.finished <= end
        late_done = done and s.due is not None and s.finished > s.due
        open_late = (s.finished is None or s.finished > t) and s.due is not None and s.due < t
        if not (done or open_late):
            continue
        row = out.setdefault((s.unit, s.department, s.handler_name), [0, 0, 0, -1])
        row[0] += 1
        row[1] += late_done
        row[2] += open_late
        if late_done or open_late:
            until = (s.finished if late_done else t).astimezone(LOCAL_TZ).date()
            row[3] = max(row[3], _working_days_after(s.due.astimezone(LOCAL_TZ).date(), until))
    return {k: (v[0], v[1], v[2], v[3]) for k, v in out.items() if v[1] + v[2]}


def open_overdue_cases(events: Iterable[dict], t: datetime, unit: str) -> list[str]:
    """The dossiers of ``unit`` with a step open at ``t`` past its due (one entry per step)."""
    return sorted(
        s.case_id for s in latest_steps(events)
        if s.unit == unit and s.started <= t and (s.finished is None or s.finished > t)
        and s.due is not None and s.due < t
    )
