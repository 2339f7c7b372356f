"""The figures of a period report, computed by SQL from the stored facts.

- indicators: ``pipeline.store.batch.batch_indicators`` over the period's outcomes
  (``since_us = Period.start_us`` up to ``Period.end_us``): exactly the period, calendar or
  reporting-regime. Unit scopes (``sector = all``) and the province (``all``/``all``).
- the volume table (``pipeline.store.volume``) per unit, sector and the province.
- the 766 score (``pipeline.core.score766``) per unit and the province, from the period's
  figures; the units are ranked by it.
- late dossiers (hồ sơ trễ hạn): from ``cases FINAL`` (:data:`LATE_SQL`): finished in the
  period and not on time, or received by the period's end, still open at its end and past
  their effective due then. Working days late: the working days of ``deploy/holidays.csv``
  (``pipeline.calendar_file``) after the due date up to the finish date (open: the report
  date).
- due soon (sắp trễ): open at the period's end, not yet late, effective due by the end of
  the next working day after the report date (:data:`DUE_SOON_SQL`).
- the late list (II.8, cơ quan, cá nhân chậm muộn): process steps (``pipeline.store.steps``)
  per department and per official of each unit over the period as a whole (a quarter or a
  year too): steps finished in the period late, plus steps open at T past their due; the
  worst lateness in working days by the same calendar as the late dossiers.
- repeat misses: scopes below target (``Targets.below_target``: failing with at least
  ``min_volume`` outcomes) this period and the previous one.
- trend: each month of the period (``mtd`` at each month's end).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any, Callable, Sequence

from pipeline.core.apology import ApologyRule
from pipeline.core.indicators import INDICATORS
from pipeline.contract.localtime import WorkCalendar, end_of_next_working_day_us
from pipeline.core.registry import UnitRegistry
from pipeline.core.score766 import Score, rank_scores, score as score_766
from pipeline.core.windows import local_date
from pipeline.reports.period import Period
from pipeline.store.batch import batch_indicators
from pipeline.store.readonly import QueryRunner
from pipeline.store.steps import LateSteps, by_department, late_steps
from pipeline.store.units import Unit
from pipeline.store.volume import VolumeRow, volume_rows, volume_scopes

__all__ = [
    "LATE_SQL",
    "DUE_SOON_SQL",
    "IndicatorFigure",
    "UnitRank",
    "LateCase",
    "RepeatMiss",
    "LateHandler",
    "ReportData",
    "collect_report",
    "local_date",
]

_OPEN_STATUSES = ("open", "held")

# Cases late in the period: finished in it not on time, or open at its end past their effective due.
LATE_SQL = """
SELECT
    c.case_id AS case_id,
    unit_id,
    ifNull(procedure_code, '') AS procedure_code,
    CAST(ifNull(sector, '') AS String) AS sector,
    toUnixTimestamp64Micro(due_at) AS due_us,
    toUnixTimestamp64Micro(effective_due) AS effective_due_us,
    if(finished_at IS NOT NULL AND finished_at <= fromUnixTimestamp64Micro({end:Int64}, 'UTC'),
       toUnixTimestamp64Micro(finished_at), NULL) AS finished_us,
    has_apology,
    supplement_requests,
    a.first_apology_us
FROM cases AS c FINAL
LEFT JOIN
(
    SELECT case_id, min(toUnixTimestamp64Micro(occurred_at)) AS first_apology_us
    FROM case_events FINAL
    WHERE event_type = 'apology_issued' AND occurred_at <= fromUnixTimestamp64Micro({end:Int64}, 'UTC')
    GROUP BY case_id
) AS a ON a.case_id = c.case_id
WHERE received_at IS NOT NULL
  AND received_at <= fromUnixTimestamp64Micro({end:Int64}, 'UTC')
  AND ({by_unit:UInt8} = 0 OR unit_id = {unit:String})
  AND status NOT IN ('rejected', 'feedback_open', 'feedback_answered')
  AND (
        (on_time = false
         AND finished_at >= fromUnixTimestamp64Micro({start:Int64}, 'UTC')
         AND finished_at <= fromUnixTimestamp64Micro({end:Int64}, 'UTC'))
     OR ((finished_at IS NULL OR finished_at > fromUnixTimestamp64Micro({end:Int64}, 'UTC'))
         AND effective_due < fromUnixTimestamp64Micro({end:Int64}, 'UTC'))
  )
ORDER BY unit_id, effective_due, case_id
"""

# Open at the period's end, not late yet, effective due by {soon} (end of the next working day).
DUE_SOON_SQL = """
SELECT
    case_id,
    unit_id,
    ifNull(procedure_code, '') AS procedure_code,
    CAST(ifNull(sector, '') AS String) AS sector,
    toUnixTimestamp64Micro(due_at) AS due_us,
    toUnixTimestamp64Micro(effective_due) AS effective_due_us,
    has_apology,
    supplement_requests
FROM cases FINAL
WHERE received_at IS NOT NULL
  AND received_at <= fromUnixTimestamp64Micro({end:Int64}, 'UTC')
  AND status NOT IN ('rejected', 'feedback_open', 'feedback_answered')
  AND (finished_at IS NULL OR finished_at > fromUnixTimestamp64Micro({end:Int64}, 'UTC'))
  AND supplement_requests <= 1
  AND effective_due >= fromUnixTimestamp64Micro({end:Int64}, 'UTC')
  AND effective_due <= fromUnixTimestamp64Micro({soon:Int64}, 'UTC')
  AND ({by_unit:UInt8} = 0 OR unit_id = {unit:String})
ORDER BY effective_due, unit_id, case_id
"""

UNITS_SQL = """
SELECT unit_id, name_vi, kind, ifNull(parent_id, '') AS parent_id, valid_from, valid_to
FROM units FINAL
ORDER BY unit_id, valid_from
"""


@dataclass(frozen=True)
class IndicatorFigure:
    indicator: str
    unit: str  # "all": the province
    numerator: int
    denominator: int
    ratio: float | None
    op: str
    target: float
    meets_target: bool | None
    below_target: bool


@dataclass(frozen=True)
class UnitRank:
    rank: int
    unit: str
    name: str
    met: int  # targets met
    missed: int  # targets missed (a miss of a "= 100%" target whatever the volume)
    on_time_766: float | None
    score: Score  # the 766 score: the ranking's key


@dataclass(frozen=True)
class LateCase:
    case_id: str
    unit: str
    procedure_code: str
    sector: str
    due_us: int | None
    effective_due_us: int | None
    finished_us: int | None  # None: still open at the period's end
    working_days_late: int
    has_apology: bool
    supplement_requests: int
    apology_in_time: bool = False  # an apology dated by the deadline of apology_coverage v1.2


@dataclass(frozen=True)
class RepeatMiss:
    unit: str
    indicator: str
    current: IndicatorFigure
    previous: IndicatorFigure


@dataclass(frozen=True)
class LateHandler:
    """A line of the late list (II.8): a department (``handler_name`` empty) or an official
    of a unit, with the worst lateness of its late steps in working days."""

    steps: LateSteps
    worst_days: int | None  # None: no late step

    @property
    def share(self) -> float | None:
        """Late steps over the steps handled (finished in the period, or open past due at T)."""
        return self.steps.late / self.steps.handled if self.steps.handled else None


@dataclass(frozen=True)
class LateList:
    """The late list of a period: every department and official with a step in it, late ones
    first within each unit (units by code)."""

    departments: list[LateHandler]
    officials: list[LateHandler]

    @property
    def late_departments(self) -> list[LateHandler]:
        return [h for h in self.departments if h.steps.late]

    @property
    def late_officials(self) -> list[LateHandler]:
        return [h for h in self.officials if h.steps.late]


@dataclass(frozen=True)
class TrendPoint:
    month: Period
    figure: IndicatorFigure | None


@dataclass
class ReportData:
    period: Period
    unit_filter: str | None
    at_us: int  # T: the period's last microsecond, or "now" while the period is running
    report_date: date
    min_volume: int
    unit_names: dict[str, str]
    figures: dict[tuple[str, str], IndicatorFigure]  # (unit, indicator)
    units: list[str]  # units with figures in the period, by rank
    ranking: list[UnitRank]
    late: list[LateCase]
    due_soon: list[LateCase]
    due_soon_by_us: int
    repeat_misses: list[RepeatMiss]
    previous_period: Period
    trend: dict[str, list[TrendPoint]] = field(default_factory=dict)  # indicator -> months
    province_name: str = "Tỉnh Bắc Ninh"  # the registry's province in force at the period's end
    mapped_to: dict[str, str] = field(default_factory=dict)  # ceased unit -> today's unit (--structure today)
    structure_day: date | None = None  # the day whose unit structure the figures are shown on
    volume: dict[tuple[str, str], VolumeRow] = field(default_factory=dict)  # (unit, sector) scopes
    province_score: Score | None = None
    apology_lead: int = 1  # working days before the due an apology must be dated by
    late_list: LateList = field(default_factory=lambda: LateList([], []))

    def name(self, unit: str) -> str:
        return self.unit_names.get(unit, unit)

    def scope(self) -> str:
        """The trend's scope: the unit asked for, else the province."""
        return self.unit_filter or "all"


def _figures(rows: Sequence[dict[str, Any]]) -> dict[tuple[str, str], IndicatorFigure]:
    out: dict[tuple[str, str], IndicatorFigure] = {}
    for r in rows:
        if r["sector"] != "all":
            continue
        out[(r["unit"], r["indicator"])] = IndicatorFigure(
            indicator=r["indicator"],
            unit=r["unit"],
            numerator=r["numerator"],
            denominator=r["denominator"],
            ratio=r["ratio"],
            op=r["op"],
            target=r["target"],
            meets_target=r["meets_target"],
            below_target=r["below_target"],
        )
    return out


def period_figures(
    runner: QueryRunner,
    period: Period,
    *,
    targets: Any,
    hold_retention_us: int,
    apology: ApologyRule,
    at_us: int | None = None,
) -> dict[tuple[str, str], IndicatorFigure]:
    """Every indicator of every unit scope and the province in ``period`` (batch SQL) at
    its end, or at ``at_us`` inside it (the period so far)."""
    t = period.end_us if at_us is None else min(at_us, period.end_us)
    rows = batch_indicators(
        runner, [], t, targets=targets, hold_retention_us=hold_retention_us, apology=apology,
        since_us=period.start_us,
    )
    return {k: f for k, f in _figures(rows).items() if f.denominator > 0}


def unit_names(runner: QueryRunner, period: Period, fallback: Sequence[Unit]) -> dict[str, str]:
    """Registry names of the units in force in the period (latest row valid in it)."""
    _cols, rows = runner.query(UNITS_SQL)
    entries = [(r[0], r[1], _as_date(r[4]), _as_date(r[5]) if r[5] is not None else None) for r in rows]
    if not entries:
        entries = [(u.unit_id, u.name_vi, u.valid_from, u.valid_to) for u in fallback]
    names: dict[str, str] = {}
    first, last = period.first_day, period.last_day
    for unit_id, name, valid_from, valid_to in sorted(entries, key=lambda e: (e[0], e[2])):
        if valid_from <= last and (valid_to is None or valid_to >= first):
            names[unit_id] = name  # later rows (sorted by valid_from) win
        elif unit_id not in names:
            names.setdefault(unit_id, name)
    names["all"] = "Toàn tỉnh"
    names["unknown"] = "Đơn vị ngoài danh mục"
    return names


def _as_date(value: Any) -> date:
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


def working_days_late(calendar: WorkCalendar, due_us: int | None, until: date) -> int:
    """Working days after the due date up to and including ``until``."""
    if due_us is None:
        return 0
    return working_days_after(calendar, local_date(due_us), until)


def working_days_after(calendar: WorkCalendar, due: date, until: date) -> int:
    """Working days after the local date ``due`` up to and including ``until``."""
    if until <= due:
        return 0
    return len(calendar.working_days(due + timedelta(days=1), until + timedelta(days=1)))


def _late_handlers(lines: Sequence[LateSteps], calendar: WorkCalendar, moved: dict[str, str]) -> list[LateHandler]:
    merged: dict[tuple[str, str, str], LateSteps] = {}
    for x in lines:
        unit = moved.get(x.unit, x.unit)
        key = (unit, x.department, x.handler_name)
        was = merged.get(key)
        if was is None:
            merged[key] = LateSteps(unit, x.department, x.handler_name, x.handler_title, x.steps_done, x.late_done,
                                    x.open_overdue, x.late_days)
        else:  # a ceased unit's steps moved onto its successor (--structure today)
            merged[key] = LateSteps(unit, x.department, x.handler_name, was.handler_title or x.handler_title,
                                    was.steps_done + x.steps_done, was.late_done + x.late_done,
                                    was.open_overdue + x.open_overdue, tuple(sorted(set(was.late_days) | set(x.late_days),
                                                                                    key=lambda d: (d.due, d.until))))
    out = [
        LateHandler(x, max((working_days_after(calendar, d.due, d.until) for d in x.late_days), default=None))
        for x in merged.values()
    ]
    out.sort(key=lambda h: (h.steps.unit, -h.steps.late, -(h.worst_days or 0), h.steps.department, h.steps.handler_name))
    return out


def late_list(
    runner: QueryRunner, period: Period, calendar: WorkCalendar, at_us: int, unit: str | None = None,
    moved: dict[str, str] | None = None,
) -> LateList:
    """The late list (II.8) of the period as a whole seen at ``at_us`` (T)."""
    end = period.end_us + 1  # late_steps: [start, end)
    moved = moved or {}
    officials = late_steps(runner, period.start_us, end, at_us, by="official", unit=unit)
    return LateList(
        departments=_late_handlers(by_department(officials), calendar, moved),
        officials=_late_handlers(officials, calendar, moved),
    )


def late_cases(
    runner: QueryRunner,
    period: Period,
    calendar: WorkCalendar,
    unit: str | None = None,
    at_us: int | None = None,
    apology: ApologyRule | None = None,
) -> list[LateCase]:
    """``apology``: judges whether the first apology was in time (``apology_in_time``)."""
    t = period.end_us if at_us is None else at_us
    params = {"start": period.start_us, "end": t, "by_unit": int(unit is not None), "unit": unit or ""}
    _cols, rows = runner.query(LATE_SQL, params)
    out = []
    for case_id, unit_id, proc, sector, due, eff, fin, has_apology, requests, first_apology in rows:
        eff = None if eff is None else int(eff)
        first_apology = int(first_apology) if first_apology and has_apology else None  # 0: no row joined
        until = local_date(int(fin)) if fin is not None else local_date(t)
        out.append(
            LateCase(
                case_id=case_id,
                unit=unit_id,
                procedure_code=proc,
                sector=sector,
                due_us=None if due is None else int(due),
                effective_due_us=eff,
                finished_us=None if fin is None else int(fin),
                working_days_late=working_days_late(calendar, eff, until),
                has_apology=bool(has_apology),
                supplement_requests=int(requests),
                apology_in_time=apology is not None and eff is not None and apology.counts(first_apology, eff),
            )
        )
    return out


def due_soon_cases(
    runner: QueryRunner, period: Period, calendar: WorkCalendar, unit: str | None = None, at_us: int | None = None
) -> tuple[list[LateCase], int]:
    """Open at T (the period's end) and due by the end of the next working day after T's
    date; and that bound (µs)."""
    t = period.end_us if at_us is None else at_us
    soon_us = end_of_next_working_day_us(t, calendar) - 1  # the one definition (pipeline.contract.localtime)
    params = {"end": t, "soon": soon_us, "by_unit": int(unit is not None), "unit": unit or ""}
    _cols, rows = runner.query(DUE_SOON_SQL, params)
    out = [
        LateCase(
            case_id=case_id, unit=unit_id, procedure_code=proc, sector=sector,
            due_us=None if due is None else int(due), effective_due_us=None if eff is None else int(eff),
            finished_us=None, working_days_late=0, has_apology=bool(apology), supplement_requests=int(requests),
        )
        for case_id, unit_id, proc, sector, due, eff, apology, requests in rows
    ]
    return out, soon_us


def map_onto_units(
    figures: dict[tuple[str, str], IndicatorFigure], registry: Sequence[Unit], day: date, targets: Any
) -> tuple[dict[tuple[str, str], IndicatorFigure], dict[str, str]]:
    """The figures on the unit structure in force on ``day``: a unit no longer in force
    then whose successors lead to exactly one unit in force adds its numerators and
    denominators to that unit; one that leads to several (a district split among
    communes) cannot be divided and stays as it is. Returns (figures, {old: new})."""
    lookup = UnitRegistry(registry)
    moved: dict[str, str] = {}
    for unit in sorted({u for u, _i in figures if u not in ("all", "unknown")}):
        if lookup.valid_on(unit, day):
            continue
        ended = [p.valid_to for p in lookup.periods(unit) if p.valid_to is not None and p.valid_to < day]
        successors = lookup.successors_on(unit, max(ended), day) if ended else set()
        if len(successors) == 1:
            moved[unit] = next(iter(successors))
    totals: dict[tuple[str, str], list[int]] = {}
    for (unit, indicator), f in figures.items():
        cell = totals.setdefault((moved.get(unit, unit), indicator), [0, 0])
        cell[0] += f.numerator
        cell[1] += f.denominator
    mapped = {}
    for (unit, indicator), (n, d) in totals.items():
        op, value = targets.target_for(indicator, "all")
        mapped[(unit, indicator)] = IndicatorFigure(
            indicator=indicator,
            unit=unit,
            numerator=n,
            denominator=d,
            ratio=n / d if d else None,
            op=op,
            target=value,
            meets_target=targets.meets(indicator, "all", n, d),
            below_target=targets.below_target(indicator, "all", n, d),
        )
    return mapped, moved


def missed_target(f: IndicatorFigure) -> bool:
    """The figure misses its target in a report: below target with at least the minimum
    volume, or a ``= 100%`` target with any miss at all (docs/indicators.md: the minimum
    volume only holds back paging)."""
    if f.meets_target is not False:
        return False
    return f.below_target or (f.op == "=" and f.target >= 1.0)


def unit_score(figures: dict[tuple[str, str], IndicatorFigure], unit: str) -> Score:
    """The 766 score of ``unit`` (``all``: the province) from the period's figures."""
    return score_766(unit, {i: (f.numerator, f.denominator) for (u, i), f in figures.items() if u == unit})


def rank_units(
    figures: dict[tuple[str, str], IndicatorFigure], units: Sequence[str], names: dict[str, str]
) -> list[UnitRank]:
    """Units by their 766 score (``pipeline.core.score766.rank_scores``: share of the
    assessable points, earned points, code); targets met and missed are shown beside it."""
    scores = rank_scores([unit_score(figures, u) for u in units])
    ranks = []
    for i, s in enumerate(scores):
        own = [figures[(s.unit, ind)] for ind in INDICATORS if (s.unit, ind) in figures]
        f766 = figures.get((s.unit, "on_time_766"))
        ranks.append(UnitRank(
            rank=i + 1, unit=s.unit, name=names.get(s.unit, s.unit),
            met=sum(1 for f in own if f.meets_target), missed=sum(1 for f in own if missed_target(f)),
            on_time_766=f766.ratio if f766 else None, score=s,
        ))
    return ranks


def collect_report(
    runner: QueryRunner,
    period: Period,
    *,
    targets: Any,
    hold_retention_us: int,
    calendar: WorkCalendar,
    apology: ApologyRule,
    registry: Sequence[Unit] = (),
    unit: str | None = None,
    now_us: int | None = None,
    structure_day: date | None = None,
    progress: Callable[[str], None] = lambda step: None,
) -> ReportData:
    """Every figure of the report of ``period`` (optionally one unit's).

    T is the period's last microsecond; when ``now_us`` falls inside the period (a
    running month), T is ``now_us``: the period so far, open dossiers as of now.
    """
    at_us = period.end_us
    if now_us is not None and now_us < period.end_us:
        at_us = max(int(now_us), period.start_us)
    progress("chỉ số kỳ báo cáo")
    figures = period_figures(runner, period, targets=targets, hold_retention_us=hold_retention_us,
                             apology=apology, at_us=at_us)
    mapped_to: dict[str, str] = {}
    if structure_day is not None:  # on request: on the structure of that day (e.g. today's)
        figures, mapped_to = map_onto_units(figures, registry, structure_day, targets)
    if unit is not None:
        figures = {k: f for k, f in figures.items() if k[0] in (unit, "all")}
    names = unit_names(runner, period, registry)
    for new in mapped_to.values():  # a unit of today's structure has today's name
        names[new] = next((u.name_vi for u in registry if u.unit_id == new and u.valid_on(structure_day)), new)
    units = sorted({u for (u, _i) in figures if u != "all"})
    ranking = rank_units(figures, units, names)

    progress("kỳ trước")
    previous = period.previous()
    prev_figures = period_figures(runner, previous, targets=targets, hold_retention_us=hold_retention_us,
                                  apology=apology)
    repeats = [
        RepeatMiss(unit=u, indicator=i, current=f, previous=prev_figures[(u, i)])
        for (u, i), f in sorted(figures.items(), key=lambda kv: (kv[0][0] == "all", kv[0][0], INDICATORS.index(kv[0][1])))
        if missed_target(f) and (u, i) in prev_figures and missed_target(prev_figures[(u, i)])
    ]

    progress("bảng số liệu hồ sơ")
    volume = volume_scopes(
        r for r in volume_rows(runner, period.start_us, at_us) if unit is None or r.unit == unit
    )

    progress("hồ sơ trễ hạn")
    late = late_cases(runner, period, calendar, unit, at_us, apology)
    due_soon, soon_us = due_soon_cases(runner, period, calendar, unit, at_us)

    progress("cơ quan, cá nhân chậm muộn")
    steps_late = late_list(runner, period, calendar, at_us, unit, mapped_to)

    trend: dict[str, list[TrendPoint]] = {i: [] for i in INDICATORS}
    scope = unit or "all"
    for month in period.months():
        progress(f"xu hướng {month.label_vi}")
        if period.kind == "month":
            month_figures = figures
        elif month.start_us > at_us:
            month_figures = {}  # a month that has not begun
        else:
            month_figures = period_figures(
                runner, month, targets=targets, hold_retention_us=hold_retention_us, apology=apology, at_us=at_us
            )
        for i in INDICATORS:
            trend[i].append(TrendPoint(month=month, figure=month_figures.get((scope, i))))

    provinces = [u for u in registry if u.kind == "province" and u.valid_from <= local_date(at_us)]
    provinces.sort(key=lambda u: u.valid_from)
    return ReportData(
        province_name=provinces[-1].name_vi if provinces else "Tỉnh Bắc Ninh",
        period=period,
        unit_filter=unit,
        at_us=at_us,
        report_date=local_date(at_us),
        min_volume=targets.min_volume,
        unit_names=names,
        figures=figures,
        units=[r.unit for r in ranking],
        ranking=ranking,
        late=late,
        due_soon=due_soon,
        due_soon_by_us=soon_us,
        repeat_misses=repeats,
        previous_period=previous,
        trend=trend,
        mapped_to=mapped_to,
        structure_day=structure_day,
        volume=volume,
        province_score=unit_score(figures, "all"),
        apology_lead=apology.lead,
        late_list=steps_late,
    )
