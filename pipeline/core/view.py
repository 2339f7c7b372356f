"""The live indicator view: figures at clock T, kept current by outcome deltas.

Pure (no Kafka, ClickHouse, HTTP, Faust). The worker feeds it the signed outcome
deltas the case logic computes (``diff_outcomes``) and moves its clock; the view
answers "numerator and denominator of every published series at T" in time
proportional to the number of series, whatever the length of history:

* every published scope (unit, sector province-wide, province) has one slot; a
  delta for (indicator, unit, sector) goes to its two or three scope slots;
* rolling windows (``1h 24h 7d 30d``): per slot one running total of the applied
  deltas of the last 30 days, and per window the total of those that have left it
  (a window's figure is their difference), plus a log of those deltas ordered by
  outcome time; when T advances, the deltas that leave a window are added to its
  "left" total (exact to the microsecond). So a delta inside every window (the usual
  case) changes one total per slot, not one per window;
* calendar windows (``mtd qtd ytd``): per-slot month totals, plus per slot the total
  of the quarter's months before T's month and of the year's months before T's
  quarter (mtd is T's month, qtd adds the first, ytd both), rebuilt from the month
  totals when T crosses a month boundary (Asia/Ho_Chi_Minh);
* the figures per window are computed from these when read (``totals``,
  ``columns``), in time proportional to the number of series;
* a delta whose time is after T (future-dated under the wall clock), and a held
  outcome (sector ``unknown``, counted only once ``t + retention < T``), waits in a
  queue ordered by the time it takes effect, and is applied when T gets there.

Open cases per unit come from :class:`OpenCaseIndex` (an index of effective due
times), so "overdue at T" is a binary search, not a walk over cases.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from heapq import heappop, heappush
from typing import Iterable, Iterator, Mapping, NamedTuple

from sortedcontainers import SortedList

from pipeline.core.cases import UNKNOWN_SECTOR, OpenCase
from pipeline.contract.localtime import WorkCalendar, end_of_next_working_day_us, local_day_number, local_midnight_us
from pipeline.core.outcomes import Outcome
from pipeline.core.targets import Targets
from pipeline.core.windows import ROLLING_US, WINDOWS, local_month_index

__all__ = [
    "ALL",
    "APOLOGY_COVERAGE",
    "ON_TIME_766",
    "IndicatorFigure",
    "IndicatorView",
    "OpenCaseCounts",
    "OpenCaseIndex",
    "SeriesKey",
    "SeriesTotals",
    "indicator_figures",
    "scopes_of",
]

ALL = "all"
ON_TIME_766 = "on_time_766"
APOLOGY_COVERAGE = "apology_coverage"
_ROLLING = tuple((w, ROLLING_US[w]) for w in WINDOWS if w in ROLLING_US)
_CALENDAR = tuple(w for w in WINDOWS if w not in ROLLING_US)  # mtd, qtd, ytd
_MAX_ROLLING_US = max(length for _, length in _ROLLING)
_N_ROLLING = len(_ROLLING)  # the calendar windows follow the rolling ones in WINDOWS
NEVER = 2**63 - 1
_ZERO = (0, 0)
assert [length for _, length in _ROLLING] == sorted(length for _, length in _ROLLING)  # _apply_now's prefix


def _month_start_us(month_index: int) -> int:
    """The first instant of the local month ``month_index`` (``local_month_index``'s numbering)."""
    return local_midnight_us(date(month_index // 12, month_index % 12 + 1, 1))


class SeriesKey(NamedTuple):
    indicator: str
    unit: str
    sector: str
    window: str


class SeriesTotals(NamedTuple):
    key: SeriesKey
    numerator: int
    denominator: int


class _Delta(NamedTuple):
    time_us: int
    slots: tuple[int, ...]
    hits: int  # change of the numerator
    count: int  # change of the denominator


def scopes_of(indicator: str, unit: str, sector: str) -> tuple[tuple[str, str, str], ...]:
    """The published scopes an outcome of (indicator, unit, sector) counts in.

    The unit (all its sectors), the sector province-wide (not for feedback, whose
    sector is ``""``), and the province."""
    if sector == "":
        return ((indicator, unit, ALL), (indicator, ALL, ALL))
    return ((indicator, unit, ALL), (indicator, ALL, sector), (indicator, ALL, ALL))


class IndicatorView:
    """Numerator and denominator of every (indicator, scope, window) at clock T."""

    def __init__(self, *, hold_retention_us: int, clock_us: int = 0) -> None:
        self.hold_retention_us = hold_retention_us
        self.clock_us = clock_us
        self._slot_of: dict[tuple[str, str, str], int] = {}
        self._scope_keys: list[tuple[str, str, str]] = []
        self._cell_slots: dict[tuple[str, str, str], tuple[int, ...]] = {}
        # per slot: numerator and denominator of the logged deltas (applied, t within 30
        # days of the clock when applied), and per rolling window those that left it
        self._in_n: list[int] = []
        self._in_d: list[int] = []
        self._left_n: list[list[int]] = [[] for _ in _ROLLING]
        self._left_d: list[list[int]] = [[] for _ in _ROLLING]
        # per slot: the quarter's months before T's month, the year's months before T's quarter
        self._quarter_n: list[int] = []
        self._quarter_d: list[int] = []
        self._year_n: list[int] = []
        self._year_d: list[int] = []
        self._months: list[dict[int, list[int]]] = []  # per slot: month index -> [n, d]
        self._log: dict[int, list[_Delta]] = {}  # time -> [_Delta] applied, within 30 days
        # per rolling window: the times of the log still inside it (a heap: the next to leave first)
        self._inside: list[list[int]] = [[] for _ in _ROLLING]
        self._pending: dict[int, list[_Delta]] = {}  # effective time -> [_Delta] not yet applied
        self._pending_times: list[int] = []  # the keys of _pending, a heap
        self._month = local_month_index(clock_us)
        self._month_start_us = _month_start_us(self._month)

    # -- feeding -------------------------------------------------------------------
    def ensure_cell(self, indicator: str, unit: str, sector: str) -> tuple[int, ...]:
        """The slots of (indicator, unit, sector)'s scopes, created when new."""
        cell = (indicator, unit, sector)
        slots = self._cell_slots.get(cell)
        if slots is None:
            slots = self._cell_slots[cell] = tuple(self._slot(scope) for scope in scopes_of(*cell))
        return slots

    def apply(self, outcome: Outcome, sign: int) -> None:
        """Add (``sign`` = +1) or retract (-1) one outcome."""
        slots = self.ensure_cell(outcome.indicator, outcome.unit, outcome.sector)
        t = outcome.time_us
        delta = _Delta(t, slots, sign if outcome.hit else 0, sign)
        effective = t + self.hold_retention_us + 1 if outcome.sector == UNKNOWN_SECTOR else t
        if effective <= self.clock_us:
            self._apply_now(delta)
        else:
            waiting = self._pending.get(effective)
            if waiting is None:
                self._pending[effective] = [delta]
                heappush(self._pending_times, effective)
            else:
                waiting.append(delta)

    def apply_all(self, changes: Iterable[tuple[Outcome, int]]) -> None:
        for outcome, sign in changes:
            self.apply(outcome, sign)

    def advance(self, now_us: int) -> None:
        """Move the clock forward to ``now_us`` (never back)."""
        old = self.clock_us
        if now_us <= old:
            return
        log = self._log
        for wi, (_, length) in enumerate(_ROLLING):
            # the deltas with t <= now - length leave the window (all logged ones have t <= old)
            inside = self._inside[wi]
            edge = now_us - length
            if not inside or inside[0] > edge:
                continue
            n_w, d_w = self._left_n[wi], self._left_d[wi]
            while inside and inside[0] <= edge:
                t = heappop(inside)
                for delta in log[t]:
                    for s in delta.slots:
                        n_w[s] += delta.hits
                        d_w[s] += delta.count
                if wi == _N_ROLLING - 1:  # left the longest window: no longer needed
                    del log[t]
        self.clock_us = now_us
        month = local_month_index(now_us)
        if month != self._month:
            self._month = month
            self._month_start_us = _month_start_us(month)
            self._rebuild_calendar()
        pending, times = self._pending, self._pending_times
        while times and times[0] <= now_us:
            for delta in pending.pop(heappop(times)):
                self._apply_now(delta)

    # -- reading -------------------------------------------------------------------
    def totals(self, extra: Mapping[tuple[str, str, str], tuple[int, int]] | None = None) -> Iterator[SeriesTotals]:
        """Every published series at T: each scope that ever had an outcome, all windows.

        ``extra``: (numerator, denominator) per scope to add in every window (the open
        cases of ``on_time_766``, counted at T, see ``OpenCaseIndex.on_time_766``)."""
        num, den = self._figures()
        extra = extra or {}
        for slot, scope in enumerate(self._scope_keys):
            indicator, unit, sector = scope
            en, ed = extra.get(scope, (0, 0))
            for wi, window in enumerate(WINDOWS):
                yield SeriesTotals(
                    SeriesKey(indicator, unit, sector, window), num[wi][slot] + en, den[wi][slot] + ed
                )

    def totals_dict(
        self, extra: Mapping[tuple[str, str, str], tuple[int, int]] | None = None
    ) -> dict[SeriesKey, tuple[int, int]]:
        return {s.key: (s.numerator, s.denominator) for s in self.totals(extra)}

    def columns(self) -> tuple[list[tuple[str, str, str]], list[list[int]], list[list[int]]]:
        """(scopes by slot, numerators[window][slot], denominators[window][slot]),
        windows in ``WINDOWS`` order, for exporters (the scopes are the view's own list:
        read only)."""
        num, den = self._figures()
        return self._scope_keys, num, den

    def slot_of(self, scope: tuple[str, str, str]) -> int | None:
        return self._slot_of.get(scope)

    def units(self) -> set[str]:
        """Every unit that has a series."""
        return {unit for _, unit, _ in self._scope_keys if unit != ALL}

    def __len__(self) -> int:
        """Number of scopes (each exported in every window)."""
        return len(self._scope_keys)

    # -- internals -----------------------------------------------------------------
    def _slot(self, scope: tuple[str, str, str]) -> int:
        slot = self._slot_of.get(scope)
        if slot is None:
            slot = self._slot_of[scope] = len(self._scope_keys)
            self._scope_keys.append(scope)
            for series in (self._in_n, self._in_d, self._quarter_n, self._quarter_d, self._year_n, self._year_d,
                           *self._left_n, *self._left_d):
                series.append(0)
            self._months.append({})
        return slot

    def _figures(self) -> tuple[list[list[int]], list[list[int]]]:
        """Numerators and denominators per window (``WINDOWS`` order) and slot, at T."""
        in_n, in_d = self._in_n, self._in_d
        num = [[a - b for a, b in zip(in_n, left)] for left in self._left_n]
        den = [[a - b for a, b in zip(in_d, left)] for left in self._left_d]
        current = self._month
        month = [m.get(current, _ZERO) for m in self._months]
        mtd_n = [m[0] for m in month]
        mtd_d = [m[1] for m in month]
        qtd_n = [a + b for a, b in zip(mtd_n, self._quarter_n)]
        qtd_d = [a + b for a, b in zip(mtd_d, self._quarter_d)]
        num += [mtd_n, qtd_n, [a + b for a, b in zip(qtd_n, self._year_n)]]
        den += [mtd_d, qtd_d, [a + b for a, b in zip(qtd_d, self._year_d)]]
        return num, den

    def _apply_now(self, delta: _Delta) -> None:
        """Count a delta whose time is at or before T in every window holding it."""
        t, slots, dn, dd = delta
        now = self.clock_us
        if t > now - _MAX_ROLLING_US:  # in the 30-day window, maybe in shorter ones
            in_n, in_d = self._in_n, self._in_d
            for s in slots:
                in_n[s] += dn
                in_d[s] += dd
            # the windows that do not hold t (the shorter ones first): it has left them
            first_inside = _N_ROLLING - 1
            for wi in range(_N_ROLLING - 1):
                if t > now - _ROLLING[wi][1]:
                    first_inside = wi
                    break
                n_w, d_w = self._left_n[wi], self._left_d[wi]
                for s in slots:
                    n_w[s] += dn
                    d_w[s] += dd
            log = self._log
            logged = log.get(t)
            if logged is None:  # a new time: it leaves each window holding it when T gets there
                log[t] = [delta]
                for inside in self._inside[first_inside:]:
                    heappush(inside, t)
            else:
                logged.append(delta)
        current = self._month
        # t <= T, so never a later month: T's month counts in the month totals alone
        if t >= self._month_start_us:
            month = current
        else:
            month = local_month_index(t)
            if month >= current - current % 3:
                n_w, d_w = self._quarter_n, self._quarter_d
            elif month >= current - current % 12:
                n_w, d_w = self._year_n, self._year_d
            else:
                n_w = d_w = None
            if n_w is not None:
                for s in slots:
                    n_w[s] += dn
                    d_w[s] += dd
        months = self._months
        for s in slots:
            totals = months[s].get(month)
            if totals is None:
                months[s][month] = [dn, dd]
            else:
                totals[0] += dn
                totals[1] += dd

    def _rebuild_calendar(self) -> None:
        """T entered a new month: recompute the quarter's and the year's earlier months."""
        current = self._month
        quarter = current - current % 3
        year = current - current % 12
        keep_from = year - 12  # the previous year is kept, older dropped
        quarter_n, quarter_d, year_n, year_d = self._quarter_n, self._quarter_d, self._year_n, self._year_d
        for slot, months in enumerate(self._months):
            qn = qd = yn = yd = 0
            for month, (mn, md) in months.items():
                if quarter <= month < current:
                    qn += mn
                    qd += md
                elif year <= month < quarter:
                    yn += mn
                    yd += md
            quarter_n[slot], quarter_d[slot], year_n[slot], year_d[slot] = qn, qd, yn, yd
            for month in [m for m in months if m < keep_from]:
                del months[month]


# ---------------------------------------------------------------------------
# open cases


@dataclass(frozen=True, slots=True)
class OpenCaseCounts:
    open: int = 0
    overdue: int = 0
    overdue_without_apology: int = 0
    #: "sắp trễ": open, not overdue, falling due by the end of the next working day
    due_soon: int = 0


def _sorted(lists: dict, key) -> SortedList:
    """``lists[key]``, a new empty ``SortedList`` when missing (``setdefault`` would
    build one on every call: a few µs each)."""
    found = lists.get(key)
    if found is None:
        found = lists[key] = SortedList()
    return found


class OpenCaseIndex:
    """Open cases per unit, with their overdue thresholds sorted for counting at T.

    A case is overdue at T when its threshold (``OpenCase.overdue_after_us``) is
    before T; cases that cannot be overdue now (no due date, or paused after their
    due) have no threshold. A case is *due soon* (sắp trễ) at T when its threshold is
    at or after T and before the end of the next working day of ``calendar`` (weekends
    and the listed holidays off; without a calendar, weekends only).
    """

    def __init__(self, calendar: WorkCalendar | None = None) -> None:
        self.calendar = calendar if calendar is not None else WorkCalendar()
        self._horizon: tuple[int, int] = (-1, 0)  # (local day number of T, its horizon)
        self._cases: dict[str, OpenCase] = {}
        self._open: dict[str, int] = {}
        self._thresholds: dict[str, SortedList] = {}  # unit -> thresholds
        self._no_apology: dict[str, SortedList] = {}  # unit -> thresholds of cases without apology
        # on_time_766 scope -> late-after times of its open cases
        self._late_766: dict[tuple[str, str, str], SortedList] = {}
        # on_time_766 scope -> apology-hit-from times of its open cases (apology_coverage:
        # an open case late at T counts at T, a hit when its time is at or before T)
        self._apology: dict[tuple[str, str, str], SortedList] = {}

    def set(self, case_id: str, entry: OpenCase | None) -> None:
        """Record a case's open state (``None``: not open)."""
        old = self._cases.get(case_id)
        if old == entry:
            return
        if old is not None:
            self._remove(old)
            del self._cases[case_id]
        if entry is not None:
            self._cases[case_id] = entry
            self._add(entry)

    def _add(self, entry: OpenCase) -> None:
        unit = entry.unit
        self._open[unit] = self._open.get(unit, 0) + 1
        threshold = entry.overdue_after_us if entry.overdue_after_us is not None else NEVER
        _sorted(self._thresholds, unit).add(threshold)
        if not entry.has_apology:
            _sorted(self._no_apology, unit).add(threshold)
        late = entry.late_766_after_us()
        late = NEVER if late is None else late
        hit = entry.apology_hit_from_us
        hit = NEVER if hit is None else hit
        for scope in scopes_of(ON_TIME_766, unit, entry.sector):
            _sorted(self._late_766, scope).add(late)
            _sorted(self._apology, scope).add(hit)

    def _remove(self, entry: OpenCase) -> None:
        self._open[entry.unit] -= 1
        threshold = entry.overdue_after_us if entry.overdue_after_us is not None else NEVER
        self._thresholds[entry.unit].remove(threshold)
        if not entry.has_apology:
            self._no_apology[entry.unit].remove(threshold)
        late = entry.late_766_after_us()
        hit = entry.apology_hit_from_us
        for scope in scopes_of(ON_TIME_766, entry.unit, entry.sector):
            self._late_766[scope].remove(NEVER if late is None else late)
            self._apology[scope].remove(NEVER if hit is None else hit)

    def counts(self, now_us: int, units: Iterable[str] = ()) -> dict[str, OpenCaseCounts]:
        """Open, overdue, overdue-without-apology and due-soon cases per unit at ``now_us``:
        every unit with an open case, and every unit of ``units`` (zeros)."""
        horizon = self.due_soon_horizon_us(now_us)
        result = {}
        for unit in sorted(set(units).union(u for u, n in self._open.items() if n)):
            thresholds = self._thresholds.get(unit)
            no_apology = self._no_apology.get(unit)
            overdue = thresholds.bisect_left(now_us) if thresholds else 0
            result[unit] = OpenCaseCounts(
                open=self._open.get(unit, 0),
                overdue=overdue,
                overdue_without_apology=no_apology.bisect_left(now_us) if no_apology else 0,
                due_soon=thresholds.bisect_left(horizon) - overdue if thresholds else 0,
            )
        return result

    def due_soon_horizon_us(self, now_us: int) -> int:
        """The end of the next working day after ``now_us``'s local date (once per day)."""
        day = local_day_number(now_us)
        if self._horizon[0] != day:
            self._horizon = (day, end_of_next_working_day_us(now_us, self.calendar))
        return self._horizon[1]

    def on_time_766(self, now_us: int) -> dict[tuple[str, str, str], tuple[int, int]]:
        """Per ``on_time_766`` scope: (open cases not late at ``now_us``, open cases).
        They count in every window at T (docs/indicators.md)."""
        result = {}
        for scope, thresholds in self._late_766.items():
            total = len(thresholds)
            if total:
                result[scope] = (total - thresholds.bisect_left(now_us), total)
        return result

    def apology_coverage(self, now_us: int) -> dict[tuple[str, str, str], tuple[int, int]]:
        """Per ``apology_coverage`` scope: (open cases late at ``now_us`` whose apology
        counts, open cases late at ``now_us``), for the scopes with a late open case.
        They count in every window at T (docs/indicators.md, v1.2)."""
        result = {}
        apology = self._apology
        for scope, thresholds in self._late_766.items():
            late = thresholds.bisect_left(now_us)  # late-after < T
            if late:
                hits = apology[scope].bisect_right(now_us)  # hit-from <= T
                result[(APOLOGY_COVERAGE, scope[1], scope[2])] = (hits, late)
        return result

    def extra_at(self, now_us: int) -> dict[tuple[str, str, str], tuple[int, int]]:
        """What the view's totals need beside the outcomes at ``now_us``: the open cases
        of ``on_time_766`` and of ``apology_coverage``."""
        result = self.on_time_766(now_us)
        result.update(self.apology_coverage(now_us))
        return result

    def __len__(self) -> int:
        return len(self._cases)



# ---------------------------------------------------------------------------
# figures with their targets (for /metrics and the snapshots)


@dataclass(frozen=True, slots=True)
class IndicatorFigure:
    indicator: str
    unit: str
    sector: str
    window: str
    numerator: int
    denominator: int
    target: float
    op: str
    below_target: bool

    @property
    def ratio(self) -> float | None:
        return self.numerator / self.denominator if self.denominator else None


def indicator_figures(
    view: IndicatorView,
    targets: Targets,
    extra: Mapping[tuple[str, str, str], tuple[int, int]] | None = None,
) -> list[IndicatorFigure]:
    """Every series of the view at its clock (plus ``extra``, see ``totals``), with
    its target. O(series)."""
    target_of: dict[tuple[str, str], tuple[str, float]] = {}
    figures = []
    for key, numerator, denominator in view.totals(extra):
        indicator, unit, sector, window = key
        target = target_of.get((indicator, sector))
        if target is None:
            target = target_of[(indicator, sector)] = targets.target_for(indicator, sector)
        figures.append(
            IndicatorFigure(
                indicator=indicator,
                unit=unit,
                sector=sector,
                window=window,
                numerator=numerator,
                denominator=denominator,
                target=target[1],
                op=target[0],
                below_target=targets.below_target(indicator, sector, numerator, denominator),
            )
        )
    return figures
