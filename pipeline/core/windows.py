"""Time buckets and windows (docs/indicators.md, "Windows and the clock").

Local time is Asia/Ho_Chi_Minh, a fixed UTC+7 with no DST; its one definition is
``pipeline.contract.localtime``, whose names this module re-exports.

Windows, for the clock T and an outcome time t (both epoch µs):

* ``1h``, ``24h``, ``7d``, ``30d``: ``T - length < t <= T`` (exact to the µs);
* ``mtd``, ``qtd``, ``ytd``: t in the same local calendar month / quarter / year
  as T, and ``t <= T``.

The live figures per window are kept by ``core.view``; the batch SQL
(``store.batch``) and the tests use ``window_start_us`` and ``window_contains``.
"""

from __future__ import annotations

import datetime as _dt

from pipeline.contract.localtime import (  # the one definition of local time; re-exported
    DAY_US as _DAY_US,
    HOUR_US as _HOUR_US,
    LOCAL_OFFSET_US,
    LOCAL_TZ,
    local_date,
    local_day_number,
    local_midnight_us as _local_midnight_us,
    local_month_index,
)

__all__ = [
    "WINDOWS",
    "WINDOW_NAMES_VI",
    "ROLLING_US",
    "LOCAL_OFFSET_US",
    "LOCAL_TZ",
    "local_date",
    "local_day_number",
    "local_month_index",
    "window_contains",
    "window_start_us",
]

WINDOWS: tuple[str, ...] = ("1h", "24h", "7d", "30d", "mtd", "qtd", "ytd")
#: each window as people read it (alert texts, the boards' window picker), in WINDOWS' order
WINDOW_NAMES_VI: dict[str, str] = {
    "1h": "1 giờ",
    "24h": "24 giờ",
    "7d": "7 ngày",
    "30d": "30 ngày",
    "mtd": "từ đầu tháng",
    "qtd": "từ đầu quý",
    "ytd": "từ đầu năm",
}

ROLLING_US: dict[str, int] = {
    "1h": _HOUR_US,
    "24h": 24 * _HOUR_US,
    "7d": 7 * _DAY_US,
    "30d": 30 * _DAY_US,
}
_CALENDAR = ("mtd", "qtd", "ytd")


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
