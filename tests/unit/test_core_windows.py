"""pipeline.core.windows: local dates and which outcome times each window holds."""

from __future__ import annotations

import datetime as dt
import random
from zoneinfo import ZoneInfo

import pytest

from pipeline.contract.events import parse_time
from pipeline.core.windows import local_date, local_month_index, window_contains, window_start_us

H = 3600 * 1_000_000
D = 24 * H
HCM = ZoneInfo("Asia/Ho_Chi_Minh")


def us(text: str) -> int:
    return parse_time(text)


# --------------------------------------------------------------------------- local dates


def test_local_date_is_utc_plus_7():
    assert local_date(us("2025-03-31T17:30:00Z")) == dt.date(2025, 4, 1)
    assert local_date(us("2025-03-31T16:59:59.999999Z")) == dt.date(2025, 3, 31)
    assert local_date(us("2025-03-31T17:00:00Z")) == dt.date(2025, 4, 1)
    rng = random.Random(7)
    for _ in range(2000):
        t = rng.randrange(us("1990-01-01T00:00:00Z"), us("2060-01-01T00:00:00Z"))
        want = dt.datetime.fromtimestamp(t // 1_000_000, HCM).date()
        assert local_date(t) == want


# --------------------------------------------------------------------------- window_contains


@pytest.mark.parametrize("window,length", [("1h", H), ("24h", D), ("7d", 7 * D), ("30d", 30 * D)])
def test_rolling_windows_are_exact_to_the_microsecond(window, length):
    now = us("2025-05-20T10:11:12.131415Z")
    assert window_contains(window, now, now)  # t == T included
    assert not window_contains(window, now + 1, now)  # future excluded
    assert window_contains(window, now - length + 1, now)
    assert not window_contains(window, now - length, now)  # t == T - length excluded
    assert window_start_us(window, now) == now - length


def test_calendar_windows_in_local_time():
    now = us("2025-03-31T17:30:00Z")  # 2025-04-01 00:30 local: a new month, quarter
    before = us("2025-03-31T16:59:59.999999Z")  # 2025-03-31 23:59:59.999999 local
    start = us("2025-03-31T17:00:00Z")  # 2025-04-01 00:00 local
    for w in ("mtd", "qtd"):
        assert not window_contains(w, before, now)
        assert window_contains(w, start, now)
        assert window_start_us(w, now) == start - 1
    assert window_contains("ytd", before, now)
    assert window_contains("mtd", now, now) and not window_contains("mtd", now + 1, now)
    # year edge: 2024-12-31T17:00Z is Jan 1 2025 local
    ny = us("2024-12-31T17:00:00Z")
    assert window_contains("ytd", ny, ny + H) and not window_contains("ytd", ny - 1, ny + H)
    assert window_start_us("ytd", ny + H) == ny - 1
    # quarter: Feb (local) is in Q1 with Mar, not with Apr
    assert window_contains("qtd", us("2025-02-10T00:00:00+07:00"), us("2025-03-31T23:00:00+07:00"))
    assert not window_contains("qtd", us("2025-03-10T00:00:00+07:00"), us("2025-04-01T00:00:00+07:00"))
    assert window_contains("qtd", us("2025-10-01T00:00:00+07:00"), us("2025-12-31T23:59:59+07:00"))
    assert not window_contains("mtd", us("2024-04-05T00:00:00+07:00"), us("2025-04-06T00:00:00+07:00"))
    with pytest.raises(ValueError):
        window_contains("2d", 0, 1)


def test_month_indices_are_consecutive_in_local_time():
    assert local_month_index(us("2025-03-31T17:00:00Z")) == 2025 * 12 + 3  # April 1st, 00:00 local
    assert local_month_index(us("2025-03-31T16:59:59.999999Z")) == 2025 * 12 + 2
    assert local_month_index(us("2024-12-31T17:00:00Z")) - local_month_index(us("2024-12-31T16:00:00Z")) == 1
