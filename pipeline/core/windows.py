"""Time buckets and windows (docs/indicators.md, "Windows and the clock").

Local time is Asia/Ho_Chi_Minh, a fixed UTC+7 with no DST, so local calendar
arithmetic is plain integer arithmetic on epoch microseconds.

Windows, for the clock T and an outcome time t (both epoch µs):

* ``1h``, ``24h``, ``7d``, ``30d``: ``T - length < t <= T`` (exact to the µs);
* ``mtd``, ``qtd``, ``ytd``: t in the same local calendar month / quarter / year
  as T, and ``t <= T``.

Counters (``BucketCounters``) are kept per (shard, indicator, unit, sector, local
day), with a per-outcome-time detail so the rolling windows stay exact on their
boundary days. ``window_totals`` reads them back per window; ``scope_totals``
sums the (unit, sector) cells into the published scopes.
"""

from __future__ import annotations

import datetime as _dt
from functools import lru_cache
from typing import Iterable, Mapping, MutableMapping

from pipeline.core.cases import UNKNOWN_SECTOR
from pipeline.core.outcomes import Outcome

__all__ = [
    "WINDOWS",
    "ROLLING_US",
    "DETAIL_KEEP_DAYS",
    "local_date",
    "local_day_number",
    "local_month_index",
    "window_contains",
    "window_start_us",
    "BucketCounters",
    "bucket_key",
    "parse_bucket_key",
    "window_totals",
    "scope_totals",
]

WINDOWS: tuple[str, ...] = ("1h", "24h", "7d", "30d", "mtd", "qtd", "ytd")

_US = 1_000_000
_HOUR_US = 3600 * _US
_DAY_US = 24 * _HOUR_US
LOCAL_OFFSET_US = 7 * _HOUR_US  # Asia/Ho_Chi_Minh, UTC+7, no DST
LOCAL_TZ = _dt.timezone(_dt.timedelta(hours=7), "Asia/Ho_Chi_Minh")

ROLLING_US: dict[str, int] = {
    "1h": _HOUR_US,
    "24h": 24 * _HOUR_US,
    "7d": 7 * _DAY_US,
    "30d": 30 * _DAY_US,
}
_CALENDAR = ("mtd", "qtd", "ytd")

#: days (before the clock's local date) whose per-time detail ``prune`` keeps.
#: The 30d window needs the detail of local day ``today - 30``; 32 leaves two
#: days of slack between the clock given to ``prune`` and the one given to
#: ``window_totals``.
DETAIL_KEEP_DAYS = 32

_EPOCH_ORDINAL = _dt.date(1970, 1, 1).toordinal()


def local_day_number(us: int) -> int:
    """Days since 1970-01-01 of the local (UTC+7) calendar date of ``us``."""
    return (us + LOCAL_OFFSET_US) // _DAY_US


@lru_cache(maxsize=8192)
def _month_index_of_day(day_number: int) -> int:
    d = _dt.date.fromordinal(_EPOCH_ORDINAL + day_number)
    return d.year * 12 + d.month - 1


def local_month_index(us: int) -> int:
    """``year * 12 + month - 1`` of the local (UTC+7) calendar month of ``us``.

    Consecutive months have consecutive indices; a quarter starts at an index
    divisible by 3, a year at one divisible by 12."""
    return _month_index_of_day((us + LOCAL_OFFSET_US) // _DAY_US)


def local_date(us: int) -> _dt.date:
    """The calendar date of ``us`` (epoch µs) in Asia/Ho_Chi_Minh."""
    return _dt.date.fromordinal(_EPOCH_ORDINAL + (us + LOCAL_OFFSET_US) // _DAY_US)


@lru_cache(maxsize=4096)
def _day_str(day_number: int) -> str:
    return _dt.date.fromordinal(_EPOCH_ORDINAL + day_number).isoformat()


def _day_number_of(d: _dt.date) -> int:
    return d.toordinal() - _EPOCH_ORDINAL


def _local_midnight_us(d: _dt.date) -> int:
    return _day_number_of(d) * _DAY_US - LOCAL_OFFSET_US


def _period_first_day(window: str, today: _dt.date) -> _dt.date:
    if window == "mtd":
        return today.replace(day=1)
    if window == "qtd":
        return today.replace(month=(today.month - 1) // 3 * 3 + 1, day=1)
    if window == "ytd":
        return today.replace(month=1, day=1)
    raise ValueError(f"unknown window {window!r}")


def window_start_us(window: str, now_us: int) -> int:
    """Exclusive lower bound: the window holds ``start < t <= now_us``.

    For a calendar window this is one µs before local midnight of the period's
    first day.
    """
    length = ROLLING_US.get(window)
    if length is not None:
        return now_us - length
    first = _period_first_day(window, local_date(now_us))
    return _local_midnight_us(first) - 1


def window_contains(window: str, t_us: int, now_us: int) -> bool:
    """Whether an outcome at ``t_us`` is in ``window`` at clock ``now_us``."""
    if t_us > now_us:
        return False
    length = ROLLING_US.get(window)
    if length is not None:
        return t_us > now_us - length
    if window not in _CALENDAR:
        raise ValueError(f"unknown window {window!r}")
    t, n = local_date(t_us), local_date(now_us)
    if t.year != n.year:
        return False
    if window == "ytd":
        return True
    if window == "qtd":
        return (t.month - 1) // 3 == (n.month - 1) // 3
    return t.month == n.month


# ---------------------------------------------------------------------------
# bucket keys

_SEP = "|"


def _esc(s: str) -> str:
    # unit/sector codes normally contain neither; escape so keys stay parseable
    if "|" in s or "%" in s:
        return s.replace("%", "%25").replace("|", "%7C")
    return s


def _unesc(s: str) -> str:
    if "%" in s:
        return s.replace("%7C", "|").replace("%25", "%")
    return s


def bucket_key(shard: int, indicator: str, unit: str, sector: str, time_us: int) -> str:
    """``f"{shard}|{indicator}|{unit}|{sector}|{YYYY-MM-DD}"`` (local date of time_us).

    A ``|`` or ``%`` inside unit or sector is percent-escaped (``%7C``, ``%25``)."""
    return f"{shard}|{indicator}|{_esc(unit)}|{_esc(sector)}|{_day_str((time_us + LOCAL_OFFSET_US) // _DAY_US)}"


def parse_bucket_key(key: str) -> tuple[int, str, str, str, str]:
    """Inverse of ``bucket_key``: (shard, indicator, unit, sector, "YYYY-MM-DD")."""
    shard, indicator, unit, sector, day = key.split(_SEP)
    return int(shard), indicator, _unesc(unit), _unesc(sector), day


class BucketCounters:
    """Outcome counts per (indicator, unit, sector, local day) over any mutable mapping.

    key   ``f"{shard}|{indicator}|{unit}|{sector}|{YYYY-MM-DD}"``
    value ``{"n": hits, "d": outcomes, "t": {str(time_us): [n, d]}}``

    Values are never mutated in place: every change is written back with
    ``mapping[key] = new_value`` (a Faust table persists only assignments), and a
    value that reaches zero everywhere is deleted, so retract-then-add leaves the
    mapping exactly as it was. A day whose detail was pruned has no ``"t"``; its
    totals still change, its detail is not rebuilt (old days never need it).
    """

    __slots__ = ("mapping", "shard", "_prefix")

    def __init__(self, mapping: MutableMapping[str, dict], shard: int = 0) -> None:
        self.mapping = mapping
        self.shard = shard
        self._prefix = f"{shard}|"

    def key_for(self, outcome: Outcome) -> str:
        return bucket_key(self.shard, outcome.indicator, outcome.unit, outcome.sector, outcome.time_us)

    def apply(self, outcome: Outcome, sign: int) -> None:
        """Add ``sign`` (+1 / -1) to ``d``, and to ``n`` when the outcome is a hit."""
        mapping = self.mapping
        key = (
            f"{self._prefix}{outcome.indicator}|{_esc(outcome.unit)}|{_esc(outcome.sector)}|"
            f"{_day_str((outcome.time_us + LOCAL_OFFSET_US) // _DAY_US)}"
        )
        old = mapping.get(key)
        dn = sign if outcome.hit else 0
        if old is None:
            n, d, detail = dn, sign, {}
        else:
            n, d = old["n"] + dn, old["d"] + sign
            old_detail = old.get("t")
            detail = dict(old_detail) if old_detail is not None else None
        if detail is not None:
            ts = str(outcome.time_us)
            e = detail.get(ts)
            if e is None:
                en, ed = dn, sign
            else:
                en, ed = e[0] + dn, e[1] + sign
            if en == 0 and ed == 0:
                detail.pop(ts, None)
            else:
                detail[ts] = [en, ed]
        if n == 0 and d == 0 and not detail:
            if old is not None:
                del mapping[key]
            return
        new = {"n": n, "d": d}
        if detail is not None:
            new["t"] = detail
        mapping[key] = new

    def apply_all(self, changes: Iterable[tuple[Outcome, int]]) -> None:
        for outcome, sign in changes:
            self.apply(outcome, sign)

    def prune(self, now_us: int) -> int:
        """Drop what no window can need any more (this shard's keys only).

        * the ``t`` detail of days more than ``DETAIL_KEEP_DAYS`` (32) days before
          the local date of ``now_us`` (their n/d stay), except for the sector
          ``unknown`` of held outcomes;
        * whole keys whose day is before Jan 1 of the previous local year.

        Returns the number of keys changed or deleted. Cost: one pass over the keys.
        """
        today = local_date(now_us)
        detail_before = _day_str(_day_number_of(today) - DETAIL_KEEP_DAYS)
        keep_from = _dt.date(today.year - 1, 1, 1).isoformat()
        mapping = self.mapping
        prefix = self._prefix
        changed = 0
        for key in list(mapping.keys()):
            if not key.startswith(prefix):
                continue
            day = key[key.rfind(_SEP) + 1 :]
            if day < keep_from:
                del mapping[key]
                changed += 1
            elif day < detail_before and f"{_SEP}{UNKNOWN_SECTOR}{_SEP}" not in key:
                # held outcomes (sector "unknown") count only once older than the hold
                # retention, so their per-time detail is needed as long as the key lives
                v = mapping[key]
                if "t" in v:
                    mapping[key] = {"n": v["n"], "d": v["d"]}
                    changed += 1
        return changed


# ---------------------------------------------------------------------------
# reading windows back


def window_totals(
    items: Iterable[tuple[str, dict]],
    now_us: int,
    windows: Iterable[str] = WINDOWS,
) -> dict[tuple[str, str, str, str], tuple[int, int]]:
    """Exact (numerator, denominator) per (indicator, unit, sector, window) at clock T.

    ``items`` are (key, value) pairs of ``BucketCounters`` mappings (any shards;
    shards are summed). Every (indicator, unit, sector) present in ``items`` gets
    every requested window, with ``(0, 0)`` when nothing of it falls inside.

    * calendar windows: whole days from the period's first local day up to (not
      including) T's local date, plus the detail entries of T's day with t <= T;
    * rolling windows: whole days strictly between the local dates of T - length
      and T, plus the detail entries of those two boundary days with
      T - length < t <= T.

    Only T's day and the rolling boundary days (at most five distinct days) need
    the per-time detail, which ``prune`` keeps for 32 days (30d needs 30). If a
    boundary day's detail is missing anyway (``prune`` was run with a clock more
    than two days ahead of T), T's own day falls back to its whole-day totals and a
    lower boundary day is left out — not exact; it cannot happen in the worker.

    Cost: O(keys × windows) plus O(detail entries of the boundary days); keys of
    days outside every window (e.g. last year) are skipped after one string
    comparison.
    """
    windows = tuple(windows)
    today_n = local_day_number(now_us)
    today_s = _day_str(today_n)
    today_d = local_date(now_us)
    # per window: (index, first day string, lower bound for the first day or None)
    specs: list[tuple[int, str, int | None]] = []
    for i, w in enumerate(windows):
        length = ROLLING_US.get(w)
        if length is not None:
            lo = now_us - length
            specs.append((i, _day_str(local_day_number(lo)), lo))
        elif w in _CALENDAR:
            specs.append((i, _period_first_day(w, today_d).isoformat(), None))
        else:
            raise ValueError(f"unknown window {w!r}")
    earliest = min((s[1] for s in specs), default=today_s)
    nw = len(windows)

    acc: dict[tuple[str, str, str], list[int]] = {}
    for key, value in items:
        _, indicator, unit, sector, day = key.split(_SEP)
        cell = (indicator, _unesc(unit), _unesc(sector))
        sums = acc.get(cell)
        if sums is None:
            sums = acc[cell] = [0] * (2 * nw)
        if day < earliest or day > today_s:
            continue
        detail_rows: list[tuple[int, int, int]] | None = None
        for i, first, lo in specs:
            if day < first:
                continue
            partial_low = lo is not None and day == first
            if day != today_s and not partial_low:
                sums[2 * i] += value["n"]
                sums[2 * i + 1] += value["d"]
                continue
            if detail_rows is None:
                det = value.get("t")
                if det is None:
                    # pruned detail (see docstring): T's day counts whole, a lower
                    # boundary day is left out
                    if day == today_s and not partial_low:
                        sums[2 * i] += value["n"]
                        sums[2 * i + 1] += value["d"]
                    continue
                detail_rows = [(int(ts), e[0], e[1]) for ts, e in det.items()]
            n = d = 0
            if lo is None:
                for t, en, ed in detail_rows:
                    if t <= now_us:
                        n += en
                        d += ed
            else:
                for t, en, ed in detail_rows:
                    if lo < t <= now_us:
                        n += en
                        d += ed
            sums[2 * i] += n
            sums[2 * i + 1] += d

    out: dict[tuple[str, str, str, str], tuple[int, int]] = {}
    for (indicator, unit, sector), sums in acc.items():
        for i, w in enumerate(windows):
            out[(indicator, unit, sector, w)] = (sums[2 * i], sums[2 * i + 1])
    return out


def scope_totals(
    fine: Mapping[tuple[str, str, str, str], tuple[int, int]],
) -> dict[tuple[str, str, str, str], tuple[int, int]]:
    """Sum (indicator, unit, sector, window) cells into the published scopes.

    For every cell: (unit, "all"); ("all", sector) unless sector is "" (feedback
    has no sector scope); ("all", "all"). Sums numerators and denominators, never
    ratios. Zero cells still create their scope keys (with (0, 0) contributions),
    so a series that drops to zero keeps being reported. Cost: O(cells).
    """
    acc: dict[tuple[str, str, str, str], list[int]] = {}
    for (indicator, unit, sector, window), (n, d) in fine.items():
        targets = [(indicator, unit, "all", window), (indicator, "all", "all", window)]
        if sector != "":
            targets.append((indicator, "all", sector, window))
        for k in targets:
            s = acc.get(k)
            if s is None:
                acc[k] = [n, d]
            else:
                s[0] += n
                s[1] += d
    return {k: (v[0], v[1]) for k, v in acc.items()}
