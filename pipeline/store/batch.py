"""Batch indicators: the indicators at a clock T from ``case_events`` alone.

One SQL query does the work (docs/indicators.md, followed rule by rule):

1. ``ev`` — the stored events with ``occurred_at <= T`` (``FINAL``: one row per event).
2. ``per_case`` — per ``case_id``: whether it has a ``rejected``; its earliest
   ``received`` (smallest ``occurred_at``, then smallest ``event_id``: ``argMin`` on the
   tuple); the earliest ``resolved``/``stopped``/``withdrawn`` and the earliest
   ``result_returned``; the supplement events, apologies, payments, ratings; the
   earliest ``feedback_received`` and every ``feedback_answered``.
3. ``derived`` — finish, the pause walk (``arrayFold`` over the supplement events with
   ``occurred_at <= finish`` sorted by (``occurred_at``, ``event_id``)), requests,
   effective due, on time, early (local dates in UTC+7 by integer arithmetic), whether an
   apology counts (``apology_coverage`` v1.2: its local date at or before the
   ``lead``-th working day before the effective due's local date; the working days are
   Monday–Friday minus the ``hol`` day numbers plus the ``sat`` day numbers, passed from
   ``deploy/holidays.csv``); then the case's outcomes as one array of
   ``(indicator, unit, sector, time_us, hit)``, exactly those of
   ``pipeline.core.cases.case_outcomes_and_open`` at clock T, plus ``on_time_766``: a finished
   case's ``on_time`` at its finish, and for a case open at T one outcome at time T
   (so in every window) that is a hit when it has at most one supplement request and
   its effective due at T (pauses so far, an open pause counted up to T) is ≥ T, and
   ``apology_coverage`` for a case open and late at T, also at time T.
4. the outcomes are expanded into their scopes — (unit, ``all``), (``all``, sector)
   unless the sector is ``""`` (feedback), (``all``, ``all``) — and counted per window
   with ``sumForEach`` over the windows' exclusive lower bounds
   (``pipeline.core.windows.window_start_us``): an outcome at t is in window w when
   ``start_w < t`` (all outcome times are ``<= T`` since only events ``<= T`` are read).

Which rows are returned: every (indicator, unit, sector) scope that has **at least one
outcome at T in any window or none** — i.e. at least one outcome produced by the events
``<= T`` (held events only once released) — and for it every requested window, with
zeros where the window holds none (ratio ``None``, ``meets_target`` ``None``,
``below_target`` False). Scopes without any outcome are not listed.

Filters: ``unit=U`` keeps rows whose unit label is U, ``sector=S`` rows whose sector
label is S (``"all"`` selects the wider scopes). Order: indicators in
``INDICATORS`` order; within one, the unit scopes (by unit), then the sector scopes
(by sector), then the province; windows in the order requested.

All user values travel as query parameters.
"""

from __future__ import annotations

from typing import Any, Sequence

from pipeline.config import UserError
from pipeline.core.apology import ApologyRule
from pipeline.core.indicators import INDICATORS
from pipeline.contract.localtime import DAY_US as _DAY_US, EPOCH_ORDINAL, LOCAL_OFFSET_US as _LOCAL_OFFSET_US
from pipeline.core.windows import WINDOWS, window_start_us
from pipeline.store.readonly import QueryRunner

__all__ = ["BATCH_SQL", "PERIOD_WINDOW", "batch_indicators", "parse_windows", "apology_params"]

#: the window name of ``batch_indicators(..., since_us=...)``
PERIOD_WINDOW = "period"



def _local_day(expr: str) -> str:
    """SQL for the local (UTC+7) day number of an epoch-µs expression (floor division)."""
    x = f"(({expr}) + {_LOCAL_OFFSET_US})"
    return f"(intDiv({x}, {_DAY_US}) - if(modulo({x}, {_DAY_US}) < 0, 1, 0))"


def _apology_last_day(due_day: str) -> str:
    """SQL for the local day number of the last day an apology counts for a due on local
    day ``due_day`` (a column): the ``lead``-th working day before it (itself for lead 0).
    Day number 0 (1970-01-01) was a Thursday, so ``(d + 3) mod 7`` is 0 on Mondays."""
    working = (
        f"has({{sat:Array(Int64)}}, {due_day} - k) OR "
        f"(modulo({due_day} - k + 3, 7) < 5 AND NOT has({{hol:Array(Int64)}}, {due_day} - k))"
    )
    # 40 days back hold any lead up to 30 working days plus the longest break (Tết, 9 days)
    return (
        f"({due_day} - if({{lead:UInt8}} = 0, 0, "
        f"arrayFilter(k -> {working}, range(1, toUInt64({{lead:UInt8}}) + 41))[{{lead:UInt8}}]))"
    )


# The named rows the SQL keeps per case (the same facts as core.cases' named rows).
_RECEIVED = (
    "Tuple(unit String, sector String, channel String, mode String, due Int64, "
    "digitized Bool, reused Bool, vneid Bool, t Int64)"
)
_RESULT = "Tuple(t Int64, unit String, electronic Bool)"
_SUPPLEMENT = "Tuple(t Int64, event_id String, request Bool)"  # request: asked (true) or received
_HIT = "Tuple(t Int64, unit String, hit Bool)"  # a payment (online) or a rating (4 or 5)
_FEEDBACK = "Tuple(unit String, due Nullable(Int64))"
_PAUSES = "Tuple(open Bool, since Int64, paused Int64)"  # the supplement walk's accumulator

BATCH_SQL = f"""
WITH
ev AS
(
    SELECT
        event_id,
        event_type,
        case_id,
        unit_label AS unit_id,  -- the unit attributed at ingestion ('unknown' outside the registry)
        toUnixTimestamp64Micro(occurred_at) AS t,
        CAST(ifNull(sector_label, '') AS String) AS sector_s,  -- attributed at ingestion ('unknown' outside the registry)
        CAST(ifNull(channel, '') AS String) AS channel_s,
        CAST(ifNull(online_mode, '') AS String) AS mode_s,
        toUnixTimestamp64Micro(due_at) AS due_us,
        ifNull(digitized, false) AS digitized_b,
        ifNull(reused_data, false) AS reused_b,
        ifNull(vneid_authenticated, false) AS vneid_b,
        CAST(ifNull(method, '') AS String) AS method_s,
        ifNull(electronic_result, false) AS electronic_b,
        rating
    FROM case_events FINAL
    WHERE occurred_at <= fromUnixTimestamp64Micro({{t:Int64}}, 'UTC')
),
per_case AS
(
    SELECT
        case_id,
        countIf(event_type = 'rejected') > 0 AS rejected,
        countIf(event_type = 'received') > 0 AS has_rec,
        argMinIf(
            CAST((unit_id, sector_s, channel_s, mode_s, ifNull(due_us, toInt64(0)), digitized_b, reused_b, vneid_b, t),
                 '{_RECEIVED}'),
            (t, event_id), event_type = 'received') AS rec,
        countIf(event_type IN ('resolved', 'stopped', 'withdrawn')) > 0 AS has_end,
        minIf(t, event_type IN ('resolved', 'stopped', 'withdrawn')) AS end_t,
        countIf(event_type = 'result_returned') > 0 AS has_rr,
        argMinIf(CAST((t, unit_id, electronic_b), '{_RESULT}'), (t, event_id), event_type = 'result_returned') AS rr,
        groupArrayIf(CAST((t, event_id, event_type = 'supplement_requested'), '{_SUPPLEMENT}'),
                     event_type IN ('supplement_requested', 'supplement_received')) AS sups,
        groupArrayIf(t, event_type = 'apology_issued') AS apologies,
        groupArrayIf(CAST((t, unit_id, method_s = 'online'), '{_HIT}'), event_type = 'payment') AS payments,
        groupArrayIf(CAST((t, unit_id, ifNull(rating, 0) >= 4), '{_HIT}'), event_type = 'rated') AS ratings,
        countIf(event_type = 'feedback_received') > 0 AS has_fr,
        argMinIf(CAST((unit_id, due_us), '{_FEEDBACK}'), (t, event_id), event_type = 'feedback_received') AS fr,
        groupArrayIf(t, event_type = 'feedback_answered') AS answers
    FROM ev
    GROUP BY case_id
),
derived AS
(
    SELECT
        has_end OR has_rr AS finished,
        if(has_end, end_t, rr.t) AS fin_t,
        arraySort(arrayFilter(x -> (NOT finished) OR x.t <= fin_t, sups)) AS walk,
        arrayFold(
            (acc, x) -> if(x.request,
                           if(acc.open, acc, CAST((true, x.t, acc.paused), '{_PAUSES}')),
                           if(acc.open, CAST((false, toInt64(0), acc.paused + (x.t - acc.since)), '{_PAUSES}'), acc)),
            walk, CAST((false, toInt64(0), toInt64(0)), '{_PAUSES}')) AS fold,
        fold.paused + if(fold.open, fin_t - fold.since, 0) AS paused,
        arrayCount(x -> x.request, walk) AS requests,
        rec.due + paused AS eff_due,
        (fin_t <= eff_due) AND (requests <= 1) AS on_time,
        rec.due + fold.paused + if(fold.open, {{t:Int64}} - fold.since, 0) AS eff_due_open,
        (requests <= 1) AND (eff_due_open >= {{t:Int64}}) AS on_time_open,
        on_time AND ({_local_day('fin_t')} < {_local_day('eff_due')}) AS early,
        {_local_day('eff_due')} AS due_day,
        {_local_day('eff_due_open')} AS due_day_open,
        arrayExists(a -> {_local_day('a')} <= {_apology_last_day('due_day')}, apologies) AS apology,
        arrayExists(a -> {_local_day('a')} <= {_apology_last_day('due_day_open')}, apologies) AS apology_open,
        rec.unit AS ru,
        rec.sector AS rs,
        rec.t AS rt,
        rec.channel = 'online' AS online,
        {{t:Int64}} - {{hold:Int64}} AS release_before,
        arrayConcat(
            if(rejected, [],
               if(has_rec,
                  arrayConcat(
                      [('full_online', ru, rs, rt, toUInt8(online AND rec.mode = 'full')),
                       ('remote', ru, rs, rt, toUInt8(online)),
                       ('digitized', ru, rs, rt, toUInt8(rec.digitized)),
                       ('data_reuse', ru, rs, rt, toUInt8(rec.reused))],
                      if(online, [('vneid_auth', ru, rs, rt, toUInt8(rec.vneid))], []),
                      if(finished,
                         [('on_time', ru, rs, fin_t, toUInt8(on_time)),
                          ('on_time_766', ru, rs, fin_t, toUInt8(on_time)),
                          ('early', ru, rs, fin_t, toUInt8(early))],
                         [('on_time_766', ru, rs, {{t:Int64}}, toUInt8(on_time_open))]),
                      if(finished AND NOT on_time,
                         [('apology_coverage', ru, rs, fin_t, toUInt8(apology))], []),
                      if(NOT finished AND NOT on_time_open,
                         [('apology_coverage', ru, rs, {{t:Int64}}, toUInt8(apology_open))], []),
                      if(has_rr, [('e_result', ru, rs, rr.t, toUInt8(rr.electronic))], []),
                      arrayMap(p -> ('online_payment', ru, rs, p.t, toUInt8(p.hit)), payments),
                      arrayMap(r -> ('satisfaction', ru, rs, r.t, toUInt8(r.hit)), ratings)),
                  arrayConcat(
                      if(has_rr AND rr.t < release_before,
                         [('e_result', rr.unit, 'unknown', rr.t, toUInt8(rr.electronic))], []),
                      arrayMap(p -> ('online_payment', p.unit, 'unknown', p.t, toUInt8(p.hit)),
                               arrayFilter(p -> p.t < release_before, payments)),
                      arrayMap(r -> ('satisfaction', r.unit, 'unknown', r.t, toUInt8(r.hit)),
                               arrayFilter(r -> r.t < release_before, ratings))))),
            if(has_fr,
               arrayMap(a -> ('feedback_on_time', fr.unit, '', a, toUInt8(ifNull(a <= fr.due, false))), answers),
               [])
        ) AS outcomes
    FROM per_case
),
flat AS
(
    SELECT o.1 AS indicator, o.2 AS unit, o.3 AS sector, o.4 AS time_us, o.5 AS hit
    FROM derived
    ARRAY JOIN outcomes AS o
),
scoped AS
(
    SELECT indicator, s.1 AS scope_unit, s.2 AS scope_sector, time_us, hit
    FROM flat
    ARRAY JOIN if(sector = '',
                  [(unit, 'all'), ('all', 'all')],
                  [(unit, 'all'), ('all', sector), ('all', 'all')]) AS s
)
SELECT
    indicator,
    scope_unit,
    scope_sector,
    sumForEach(arrayMap(lo -> toUInt64(time_us > lo AND hit), {{starts:Array(Int64)}})) AS numerators,
    sumForEach(arrayMap(lo -> toUInt64(time_us > lo), {{starts:Array(Int64)}})) AS denominators
FROM scoped
WHERE ({{by_unit:UInt8}} = 0 OR scope_unit = {{unit:String}})
  AND ({{by_sector:UInt8}} = 0 OR scope_sector = {{sector:String}})
GROUP BY indicator, scope_unit, scope_sector
ORDER BY indicator, scope_unit, scope_sector
"""


def apology_params(apology: ApologyRule) -> dict[str, Any]:
    """The query parameters of the apology rule: ``hol`` and ``sat`` (local day numbers of
    the weekdays off and of the weekend days worked) and ``lead``."""
    epoch = EPOCH_ORDINAL
    cal = apology.calendar
    return {
        "hol": sorted(d.toordinal() - epoch for d in cal.holidays),
        "sat": sorted(d.toordinal() - epoch for d in cal.working_saturdays),
        "lead": apology.lead,
    }


def parse_windows(windows: Sequence[str] | str) -> list[str]:
    """Window names (a sequence or one comma-separated string), deduplicated in order."""
    if isinstance(windows, str):
        windows = windows.split(",")
    out: list[str] = []
    for w in windows:
        w = w.strip()
        if not w:
            continue
        if w not in WINDOWS:
            raise UserError(f"unknown window {w!r} (expected one or more of {', '.join(WINDOWS)})")
        if w not in out:
            out.append(w)
    if not out:
        raise UserError(f"no window given (expected one or more of {', '.join(WINDOWS)})")
    return out


def _sort_key(row: dict[str, Any], window_pos: dict[str, int]) -> tuple:
    unit, sector = row["unit"], row["sector"]
    return (
        INDICATORS.index(row["indicator"]),
        unit == "all",
        unit,
        sector == "all",
        sector,
        window_pos[row["window"]],
    )


def batch_indicators(
    runner: QueryRunner,
    windows: Sequence[str],
    at_us: int,
    *,
    unit: str | None = None,
    sector: str | None = None,
    targets: Any,
    hold_retention_us: int,
    apology: ApologyRule,
    since_us: int | None = None,
) -> list[dict[str, Any]]:
    """The indicators at clock ``at_us`` over ``case_events`` (see the module doc).

    Each row: ``indicator, unit, sector, window, numerator, denominator, ratio``
    (float or None), ``target`` (float), ``op``, ``meets_target`` (bool or None),
    ``below_target`` (bool). ``targets`` is a ``pipeline.core.targets.Targets``;
    ``apology`` the apology rule (working days and lead).

    ``since_us``: instead of ``windows``, one window named ``period`` holding the outcomes
    with ``since_us <= t <= at_us`` (a report period that is no calendar window, such as
    the reporting-regime period from the 15th to the 14th).
    """
    at_us = int(at_us)
    if since_us is not None:
        wins = [PERIOD_WINDOW]
        starts = [int(since_us) - 1]
    else:
        wins = parse_windows(windows)
        starts = [window_start_us(w, at_us) for w in wins]
    params = {
        "t": at_us,
        "hold": int(hold_retention_us),
        "starts": starts,
        "by_unit": 0 if unit is None else 1,
        "unit": unit or "",
        "by_sector": 0 if sector is None else 1,
        "sector": sector or "",
        **apology_params(apology),
    }
    _columns, result = runner.query(BATCH_SQL, params)
    rows: list[dict[str, Any]] = []
    for indicator, scope_unit, scope_sector, numerators, denominators in result:
        if indicator not in INDICATORS:  # cannot happen: the SQL names only INDICATORS
            continue
        op, value = targets.target_for(indicator, scope_sector)
        for w, n, d in zip(wins, numerators, denominators):
            n, d = int(n), int(d)
            rows.append(
                {
                    "indicator": indicator,
                    "unit": scope_unit,
                    "sector": scope_sector,
                    "window": w,
                    "numerator": n,
                    "denominator": d,
                    "ratio": n / d if d else None,
                    "target": float(value),
                    "op": op,
                    "meets_target": targets.meets(indicator, scope_sector, n, d),
                    "below_target": bool(targets.below_target(indicator, scope_sector, n, d)),
                }
            )
    pos = {w: i for i, w in enumerate(wins)}
    rows.sort(key=lambda r: _sort_key(r, pos))
    return rows
