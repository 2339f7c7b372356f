"""Process steps (contract v1.2 ``step`` events) in ClickHouse, and the late-step queries.

The table ``steps`` (``pipeline.store.schema``) holds one row per (``case_id``,
``step_id``): a materialised view copies every ``step`` row written to ``case_events``
into it (so whatever writes the facts — the worker, ``backfill`` — fills it, once), and
``ReplacingMergeTree(version)`` keeps the latest event of the step (``version``: its
``occurred_at`` in µs, doubled, plus one when finished). Read it with ``FINAL``.

A step is **late** when it finished after its ``step_due_at``, or is still open at T with
``step_due_at`` before T. A step without a due date is never late. Officials and
departments live here, in the reports and in the boards' SQL panels — never in
Prometheus labels (unbounded values).

:data:`LATE_STEPS_SQL` counts, per unit × department × official, over a period
[``start``, ``end``) (UTC instants, usually the local month) seen at clock ``t``
(``t`` ≤ ``end``): the steps finished in the period, those finished late, and the steps
open at ``t`` past their due (``open_overdue``), and the distinct (due date, judged date)
pairs of those late steps (local dates: the report turns them into working days late with
its calendar). :func:`late_steps` runs it grouped by official or by department, for the
province or one unit. :data:`OPEN_OVERDUE_STEPS_SQL` lists the open steps past due
at ``t`` one by one. All values travel as query parameters.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from pipeline.store.readonly import QueryRunner

__all__ = [
    "STEPS_DDL",
    "STEPS_VIEW_DDL",
    "STEP_COLUMNS",
    "LATE_STEPS_SQL",
    "OPEN_OVERDUE_STEPS_SQL",
    "LateDay",
    "LateStepRule",
    "late_step_rule",
    "LateSteps",
    "late_steps",
    "by_department",
    "open_overdue_steps",
]

STEP_COLUMNS: tuple[str, ...] = (
    "case_id", "step_id", "event_id", "unit_id", "unit_label", "handler_name", "handler_title", "department",
    "started_at", "step_due_at", "finished_at", "status_code", "version",
)

STEPS_DDL = """
CREATE TABLE IF NOT EXISTS steps
(
    case_id       String,
    step_id       String,
    event_id      String,
    unit_id       String,
    unit_label    LowCardinality(String),
    handler_name  Nullable(String),
    handler_title Nullable(String),
    department    Nullable(String),
    started_at    DateTime64(6, 'UTC'),
    step_due_at   Nullable(DateTime64(6, 'UTC')),
    finished_at   Nullable(DateTime64(6, 'UTC')),
    status_code   Nullable(String),
    version       UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY (case_id, step_id)
"""

# The raw column is the canonical record: timestamps ...Z with six fractional digits.
_TIME = "parseDateTime64BestEffortOrNull(JSONExtract(raw, '{name}', 'Nullable(String)'), 6, 'UTC')"

STEPS_VIEW_DDL = f"""
CREATE MATERIALIZED VIEW IF NOT EXISTS steps_from_events TO steps AS
SELECT
    case_id,
    JSONExtractString(raw, 'step_id') AS step_id,
    event_id,
    unit_id,
    unit_label,
    JSONExtract(raw, 'handler_name', 'Nullable(String)') AS handler_name,
    JSONExtract(raw, 'handler_title', 'Nullable(String)') AS handler_title,
    JSONExtract(raw, 'department', 'Nullable(String)') AS department,
    assumeNotNull({_TIME.format(name='started_at')}) AS started_at,
    {_TIME.format(name='step_due_at')} AS step_due_at,
    {_TIME.format(name='finished_at')} AS finished_at,
    JSONExtract(raw, 'status_code', 'Nullable(String)') AS status_code,
    toUInt64(toUnixTimestamp64Micro(occurred_at)) * 2 + (JSONHas(raw, 'finished_at') ? 1 : 0) AS version
FROM case_events
WHERE event_type = 'step'
"""

@dataclass(frozen=True, slots=True)
class LateStepRule:
    """The one definition of a late step, as SQL conditions over the ``steps`` columns for
    instants given as SQL expressions (query parameters here, Grafana macros on the boards)."""

    done: str  # finished in [start, end)
    late_done: str  # finished in [start, end) after its due
    open_overdue: str  # open at t, past its due


def late_step_rule(start: str, end: str, t: str) -> LateStepRule:
    """:class:`LateStepRule` for the period [``start``, ``end``) seen at ``t`` (SQL expressions)."""
    done = f"finished_at IS NOT NULL AND finished_at >= {start} AND finished_at < {end}"
    return LateStepRule(
        done=done,
        late_done=f"{done} AND step_due_at IS NOT NULL AND finished_at > step_due_at",
        open_overdue=f"started_at <= {t} AND (finished_at IS NULL OR finished_at > {t}) "
                     f"AND step_due_at IS NOT NULL AND step_due_at < {t}",
    )


_T = "fromUnixTimestamp64Micro({t:Int64}, 'UTC')"
_RULE = late_step_rule("fromUnixTimestamp64Micro({start:Int64}, 'UTC')",
                       "fromUnixTimestamp64Micro({end:Int64}, 'UTC')", _T)
_LATE_DONE = _RULE.late_done
_OPEN_OVERDUE = _RULE.open_overdue
_LOCAL_DAY = "toString(toDate({col}, 'Asia/Ho_Chi_Minh'))"

LATE_STEPS_SQL = f"""
SELECT
    unit_label AS unit,
    ifNull(department, '') AS department,
    ifNull(handler_name, '') AS handler_name,
    ifNull(any(handler_title), '') AS handler_title,
    countIf({_RULE.done}) AS steps_done,
    countIf({_LATE_DONE}) AS late_done,
    countIf({_OPEN_OVERDUE}) AS open_overdue,
    groupUniqArrayIf(
        concat({_LOCAL_DAY.format(col='step_due_at')}, ' ',
               if({_LATE_DONE}, {_LOCAL_DAY.format(col='finished_at')}, {_LOCAL_DAY.format(col=_T)})),
        ({_LATE_DONE}) OR ({_OPEN_OVERDUE})) AS late_days
FROM steps FINAL
WHERE started_at <= {_T}
  AND ({{unit:String}} = '' OR unit_label = {{unit:String}})
GROUP BY unit, department, handler_name
HAVING steps_done + open_overdue > 0
ORDER BY late_done + open_overdue DESC, unit, department, handler_name
"""

OPEN_OVERDUE_STEPS_SQL = f"""
SELECT unit_label AS unit, case_id, step_id, ifNull(department, '') AS department,
       ifNull(handler_name, '') AS handler_name, started_at, step_due_at
FROM steps FINAL
WHERE {_OPEN_OVERDUE}
ORDER BY step_due_at, case_id, step_id
"""


@dataclass(frozen=True, slots=True)
class LateDay:
    """A late step's local due date and the date it is judged on: its finish, or T's date
    while it is open (the working days late between them: the report's calendar)."""

    due: date
    until: date


@dataclass(frozen=True, slots=True)
class LateSteps:
    """One line of the late list: an official (``by="official"``) or a department
    (``handler_name`` empty) of a unit over a period."""

    unit: str
    department: str
    handler_name: str
    handler_title: str
    steps_done: int
    late_done: int
    open_overdue: int
    late_days: tuple[LateDay, ...] = ()  # distinct (due, until) dates of its late steps

    @property
    def late(self) -> int:
        return self.late_done + self.open_overdue

    @property
    def handled(self) -> int:
        """Steps handled in the period: finished in it, or open past due at T."""
        return self.steps_done + self.open_overdue


def _late_days(values: Any) -> tuple[LateDay, ...]:
    days = set()
    for text in values or ():
        due, until = str(text).split(" ")
        days.add(LateDay(date.fromisoformat(due), date.fromisoformat(until)))
    return tuple(sorted(days, key=lambda d: (d.due, d.until)))


def late_steps(runner: QueryRunner, start_us: int, end_us: int, at_us: int, *, by: str = "official",
               unit: str | None = None) -> list[LateSteps]:
    """Late steps per official (``by="official"``) or per department (``by="department"``)
    over [start, end) seen at ``at_us`` (see the module doc); only lines with a step;
    ``unit``: that unit's only."""
    if by not in ("official", "department"):
        raise ValueError(f"by must be official or department, got {by!r}")
    at_us = min(int(at_us), int(end_us))
    params = {"start": int(start_us), "end": int(end_us), "t": at_us, "unit": unit or ""}
    _cols, rows = runner.query(LATE_STEPS_SQL, params)
    lines = [LateSteps(str(u), str(d), str(n), str(ti), int(a), int(b), int(c), _late_days(days))
             for u, d, n, ti, a, b, c, days in rows]
    if by == "department":
        lines = by_department(lines)
    lines.sort(key=lambda x: (-x.late, x.unit, x.department, x.handler_name))
    return lines


def by_department(lines: list[LateSteps]) -> list[LateSteps]:
    """Officials' lines summed per (unit, department) (``handler_name`` empty)."""
    merged: dict[tuple[str, str], list[Any]] = {}
    for x in lines:
        acc = merged.setdefault((x.unit, x.department), [0, 0, 0, set()])
        acc[0] += x.steps_done
        acc[1] += x.late_done
        acc[2] += x.open_overdue
        acc[3].update(x.late_days)
    out = [LateSteps(u, d, "", "", a, b, c, tuple(sorted(days, key=lambda x: (x.due, x.until))))
           for (u, d), (a, b, c, days) in merged.items()]
    out.sort(key=lambda x: (-x.late, x.unit, x.department))
    return out


def open_overdue_steps(runner: QueryRunner, at_us: int) -> list[dict[str, Any]]:
    """The steps open at ``at_us`` past their due, oldest due first."""
    cols, rows = runner.query(OPEN_OVERDUE_STEPS_SQL, {"t": int(at_us)})
    return [dict(zip(cols, r)) for r in rows]
