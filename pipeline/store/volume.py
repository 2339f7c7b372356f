"""The volume table of a period (bảng số liệu tiếp nhận, giải quyết hồ sơ): what every
provincial TTHC report carries, per unit, per sector and for the province.

Columns (docs/indicators.md, "The volume table"), for a period ``start <= t <= end``:

- ``carried``: carried over (kỳ trước chuyển sang) — received before the period's start
  and not finished before it;
- ``received_online`` / ``received_direct`` / ``received_postal``: received in the period,
  by the channel of its ``received``;
- ``resolved_early`` / ``resolved_on_time`` / ``resolved_late``: finished in the period by
  ``resolved`` (or, without one, by its first ``result_returned``), early / on time but not
  early / late by the case rules;
- ``withdrawn`` / ``stopped``: finished in the period by ``withdrawn`` / ``stopped``;
- ``open_within`` / ``open_overdue``: in progress at the period's end (no finish by then),
  not late / late at the end as ``on_time_766`` counts it (past its effective due, an open
  pause counted up to the end, or two supplement requests);
- ``rejected``: a ``rejected`` event in the period (từ chối tiếp nhận). A dossier rejected
  by the period's end counts in no other column: it was never accepted.

Identity per row: carried + received = resolved + withdrawn + stopped + in progress.

One SQL over ``case_events`` (the facts, events with ``occurred_at <= end``), one row per
(unit, sector): unit and sector of the earliest ``received`` (a rejected dossier without
one: the unit of its ``rejected``, sector ``""``). Unit, sector and province rows are sums
of these (:func:`volume_scopes`).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Iterable

from pipeline.contract.localtime import DAY_US as _DAY_US, LOCAL_OFFSET_US as _LOCAL_OFFSET_US
from pipeline.store.readonly import QueryRunner

__all__ = ["VOLUME_SQL", "VolumeRow", "COLUMNS", "volume_rows", "volume_scopes", "ALL", "volume_sql_for_range"]

ALL = "all"


def _local_day(expr: str) -> str:
    x = f"(({expr}) + {_LOCAL_OFFSET_US})"
    return f"(intDiv({x}, {_DAY_US}) - if(modulo({x}, {_DAY_US}) < 0, 1, 0))"


_PAUSES = "Tuple(open Bool, since Int64, paused Int64)"

VOLUME_SQL = f"""
WITH
ev AS
(
    SELECT
        event_id,
        event_type,
        case_id,
        unit_label AS unit_id,
        toUnixTimestamp64Micro(occurred_at) AS t,
        CAST(ifNull(sector, '') AS String) AS sector_s,
        CAST(ifNull(channel, '') AS String) AS channel_s,
        ifNull(toUnixTimestamp64Micro(due_at), toInt64(0)) AS due_us
    FROM case_events FINAL
    WHERE occurred_at <= fromUnixTimestamp64Micro({{end:Int64}}, 'UTC')
),
per_case AS
(
    SELECT
        case_id,
        countIf(event_type = 'received') > 0 AS has_rec,
        argMinIf((unit_id, sector_s, channel_s, due_us, t), (t, event_id), event_type = 'received') AS rec,
        countIf(event_type = 'rejected') > 0 AS rejected,
        argMinIf((t, unit_id), (t, event_id), event_type = 'rejected') AS rej,
        countIf(event_type IN ('resolved', 'stopped', 'withdrawn')) > 0 AS has_end,
        argMinIf((t, event_type), (t, event_id), event_type IN ('resolved', 'stopped', 'withdrawn')) AS fin_end,
        countIf(event_type = 'result_returned') > 0 AS has_rr,
        minIf(t, event_type = 'result_returned') AS rr_t,
        groupArrayIf((t, event_id, event_type = 'supplement_requested'),
                     event_type IN ('supplement_requested', 'supplement_received')) AS sups
    FROM ev
    GROUP BY case_id
),
derived AS
(
    SELECT
        has_end OR has_rr AS finished,
        if(has_end, fin_end.1, rr_t) AS fin_t,
        if(has_end, fin_end.2, 'result_returned') AS fin_type,
        arraySort(arrayFilter(x -> (NOT finished) OR x.1 <= fin_t, sups)) AS walk,
        arrayFold(
            (acc, x) -> if(x.3,
                           if(acc.open, acc, CAST((true, x.1, acc.paused), '{_PAUSES}')),
                           if(acc.open, CAST((false, toInt64(0), acc.paused + (x.1 - acc.since)), '{_PAUSES}'), acc)),
            walk, CAST((false, toInt64(0), toInt64(0)), '{_PAUSES}')) AS fold,
        arrayCount(x -> x.3, walk) AS requests,
        rec.4 + fold.paused + if(fold.open, fin_t - fold.since, 0) AS eff_due,
        (fin_t <= eff_due) AND (requests <= 1) AS on_time,
        on_time AND ({_local_day('fin_t')} < {_local_day('eff_due')}) AS early,
        rec.4 + fold.paused + if(fold.open, {{end:Int64}} - fold.since, 0) AS eff_due_open,
        (requests > 1) OR (eff_due_open < {{end:Int64}}) AS overdue_open,
        if(has_rec, rec.1, rej.2) AS unit,
        if(has_rec, rec.2, '') AS sector,
        has_rec AND NOT rejected AS accepted,
        rejected AS was_rejected,
        rej.1 AS rej_t,
        rec.5 AS rec_t,
        rec.3 AS channel,
        finished AND fin_t < {{start:Int64}} AS finished_before,
        finished AND fin_t >= {{start:Int64}} AS finished_in
    FROM per_case
    WHERE has_rec OR rejected
)
SELECT
    unit,
    sector,
    countIf(accepted AND rec_t < {{start:Int64}} AND NOT finished_before) AS carried,
    countIf(accepted AND rec_t >= {{start:Int64}} AND channel = 'online') AS received_online,
    countIf(accepted AND rec_t >= {{start:Int64}} AND channel = 'direct') AS received_direct,
    countIf(accepted AND rec_t >= {{start:Int64}} AND channel NOT IN ('online', 'direct')) AS received_postal,
    countIf(accepted AND finished_in AND fin_type IN ('resolved', 'result_returned') AND early) AS resolved_early,
    countIf(accepted AND finished_in AND fin_type IN ('resolved', 'result_returned') AND on_time AND NOT early)
        AS resolved_on_time,
    countIf(accepted AND finished_in AND fin_type IN ('resolved', 'result_returned') AND NOT on_time) AS resolved_late,
    countIf(accepted AND finished_in AND fin_type = 'withdrawn') AS withdrawn,
    countIf(accepted AND finished_in AND fin_type = 'stopped') AS stopped,
    countIf(accepted AND NOT finished AND NOT overdue_open) AS open_within,
    countIf(accepted AND NOT finished AND overdue_open) AS open_overdue,
    countIf(was_rejected AND rej_t >= {{start:Int64}}) AS rejected
FROM derived
GROUP BY unit, sector
HAVING carried + received_online + received_direct + received_postal + resolved_early + resolved_on_time
       + resolved_late + withdrawn + stopped + open_within + open_overdue + rejected > 0
ORDER BY unit, sector
"""


def volume_sql_for_range(start_expr: str, end_expr: str) -> str:
    """:data:`VOLUME_SQL` with the period given as SQL expressions of epoch µs instead of
    query parameters (a Grafana panel: ``$__fromTime`` / ``$__toTime``)."""
    return VOLUME_SQL.replace("{start:Int64}", f"({start_expr})").replace("{end:Int64}", f"({end_expr})")


@dataclass(frozen=True)
class VolumeRow:
    """The volume table's counts for one scope (``unit`` / ``sector``: ``all`` for the wider
    scopes)."""

    unit: str
    sector: str
    carried: int = 0
    received_online: int = 0
    received_direct: int = 0
    received_postal: int = 0
    resolved_early: int = 0
    resolved_on_time: int = 0
    resolved_late: int = 0
    withdrawn: int = 0
    stopped: int = 0
    open_within: int = 0
    open_overdue: int = 0
    rejected: int = 0

    @property
    def received(self) -> int:
        return self.received_online + self.received_direct + self.received_postal

    @property
    def total(self) -> int:
        """Dossiers to handle in the period: carried over + received."""
        return self.carried + self.received

    @property
    def resolved(self) -> int:
        return self.resolved_early + self.resolved_on_time + self.resolved_late

    @property
    def open(self) -> int:
        return self.open_within + self.open_overdue

    @property
    def resolved_in_time_ratio(self) -> float | None:
        """Early or on time among the resolved."""
        return (self.resolved_early + self.resolved_on_time) / self.resolved if self.resolved else None


#: the count columns, in the table's order
COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(VolumeRow) if f.name not in ("unit", "sector"))


def volume_rows(runner: QueryRunner, start_us: int, end_us: int) -> list[VolumeRow]:
    """One row per (unit, sector) with anything in the period ``start_us <= t <= end_us``."""
    columns, rows = runner.query(VOLUME_SQL, {"start": int(start_us), "end": int(end_us)})
    return [VolumeRow(unit=r[0], sector=r[1], **{c: int(v) for c, v in zip(COLUMNS, r[2:])}) for r in rows]


def _sum(unit: str, sector: str, rows: Iterable[VolumeRow]) -> VolumeRow:
    totals = dict.fromkeys(COLUMNS, 0)
    for row in rows:
        for c in COLUMNS:
            totals[c] += getattr(row, c)
    return VolumeRow(unit=unit, sector=sector, **totals)


def volume_scopes(rows: Iterable[VolumeRow]) -> dict[tuple[str, str], VolumeRow]:
    """The unit rows ``(unit, all)``, the sector rows ``(all, sector)`` (dossiers without a
    sector, i.e. rejected before any receipt, are in their unit and the province only) and the
    province ``(all, all)``, summed from the (unit, sector) rows."""
    rows = list(rows)
    out: dict[tuple[str, str], VolumeRow] = {}
    for unit in sorted({r.unit for r in rows}):
        out[(unit, ALL)] = _sum(unit, ALL, (r for r in rows if r.unit == unit))
    for sector in sorted({r.sector for r in rows if r.sector}):
        out[(ALL, sector)] = _sum(ALL, sector, (r for r in rows if r.sector == sector))
    out[(ALL, ALL)] = _sum(ALL, ALL, rows)
    return out
