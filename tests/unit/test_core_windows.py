"""pipeline.core.windows: windows, bucket counters, totals and scopes."""

from __future__ import annotations

import copy
import datetime as dt
import random
from zoneinfo import ZoneInfo

import pytest

from pipeline.contract.events import parse_time
from pipeline.core.outcomes import Outcome
from pipeline.core.windows import (
    WINDOWS,
    BucketCounters,
    bucket_key,
    local_date,
    parse_bucket_key,
    scope_totals,
    window_contains,
    window_start_us,
    window_totals,
)

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


# --------------------------------------------------------------------------- BucketCounters


def test_bucket_key_format_and_escaping():
    t = us("2025-03-31T17:30:00Z")
    assert bucket_key(3, "on_time", "U1", "dat_dai", t) == "3|on_time|U1|dat_dai|2025-04-01"
    k = bucket_key(0, "x", "a|b%", "", t)
    assert k.count("|") == 4 and parse_bucket_key(k) == (0, "x", "a|b%", "", "2025-04-01")


def test_apply_then_retract_leaves_mapping_empty():
    m: dict = {}
    bc = BucketCounters(m, shard=2)
    a = Outcome("on_time", "U1", "dat_dai", us("2025-04-01T01:00:00+07:00"), True)
    b = Outcome("on_time", "U1", "dat_dai", us("2025-04-01T02:00:00+07:00"), False)
    bc.apply(a, 1)
    bc.apply(b, 1)
    bc.apply(b, 1)
    key = "2|on_time|U1|dat_dai|2025-04-01"
    assert m == {key: {"n": 1, "d": 3, "t": {str(a.time_us): [1, 1], str(b.time_us): [0, 2]}}}
    snapshot = copy.deepcopy(m)
    bc.apply(b, -1)
    bc.apply(b, 1)
    assert m == snapshot  # retract-then-add: exactly as before
    for o in (a, b, b):
        bc.apply(o, -1)
    assert m == {}


class _AssignOnly(dict):
    """A mapping whose values must never be mutated in place."""

    def __getitem__(self, k):
        return copy.deepcopy(super().__getitem__(k))

    def get(self, k, default=None):
        return copy.deepcopy(super().get(k, default))


def test_apply_never_mutates_values_in_place():
    m: dict = {}
    bc = BucketCounters(m)
    o = Outcome("remote", "U1", "s", us("2025-04-01T01:00:00+07:00"), True)
    bc.apply(o, 1)
    old = m[bc.key_for(o)]
    frozen = copy.deepcopy(old)
    bc.apply(o, 1)
    bc.apply(Outcome("remote", "U1", "s", o.time_us + 1, False), 1)
    assert old == frozen  # the earlier value object was replaced, not changed
    # a mapping that returns copies still ends up right (assignment is all that counts)
    m2 = _AssignOnly()
    bc2 = BucketCounters(m2)
    for _ in range(3):
        bc2.apply(o, 1)
    assert dict.__getitem__(m2, bc2.key_for(o)) == {"n": 3, "d": 3, "t": {str(o.time_us): [3, 3]}}


def test_prune_drops_old_detail_and_old_years():
    now = us("2025-03-15T12:00:00+07:00")
    m: dict = {}
    bc = BucketCounters(m, shard=1)
    other = BucketCounters(m, shard=2)
    days = {
        "keep_detail": now - 32 * D,  # 2025-02-11: exactly 32 days before -> detail kept
        "drop_detail": now - 33 * D,  # 2025-02-10
        "prev_year": us("2024-01-01T00:00:00+07:00"),  # kept (Jan 1 of previous year)
        "too_old": us("2023-12-31T23:59:59+07:00"),  # deleted
    }
    for t in days.values():
        bc.apply(Outcome("remote", "U", "s", t, True), 1)
        other.apply(Outcome("remote", "U", "s", t, True), 1)
    changed = bc.prune(now)
    assert changed == 3  # detail of 2025-02-10 and 2024-01-01 dropped, 2023-12-31 deleted
    assert "t" in m["1|remote|U|s|2025-02-11"]
    assert m["1|remote|U|s|2025-02-10"] == {"n": 1, "d": 1}
    assert m["1|remote|U|s|2024-01-01"] == {"n": 1, "d": 1}
    assert "1|remote|U|s|2023-12-31" not in m
    assert "2|remote|U|s|2023-12-31" in m  # other shards are not touched
    assert bc.prune(now) == 0
    # a pruned day still counts; retracting to zero deletes it
    bc.apply(Outcome("remote", "U", "s", days["drop_detail"], False), 1)
    assert m["1|remote|U|s|2025-02-10"] == {"n": 1, "d": 2}
    bc.apply(Outcome("remote", "U", "s", days["drop_detail"], False), -1)
    bc.apply(Outcome("remote", "U", "s", days["drop_detail"], True), -1)
    assert "1|remote|U|s|2025-02-10" not in m


# --------------------------------------------------------------------------- window_totals


def _brute(outcomes_with_sign, now, windows=WINDOWS):
    out: dict = {}
    cells = set()
    for o, sign in outcomes_with_sign:
        cells.add((o.indicator, o.unit, o.sector))
    for cell in cells:
        for w in windows:
            out[cell + (w,)] = [0, 0]
    for o, sign in outcomes_with_sign:
        for w in windows:
            if window_contains(w, o.time_us, now):
                acc = out[(o.indicator, o.unit, o.sector, w)]
                acc[0] += sign if o.hit else 0
                acc[1] += sign
    return {k: tuple(v) for k, v in out.items()}


@pytest.mark.parametrize("seed", range(12))
def test_window_totals_match_brute_force(seed):
    rng = random.Random(seed)
    # clocks near interesting edges: new year, quarter, month, plain days
    now = rng.choice([
        us("2025-01-01T00:20:00+07:00"), us("2025-04-01T00:00:00+07:00"), us("2025-03-31T23:59:59.999999+07:00"),
        us("2025-07-15T13:00:00+07:00"), us("2025-12-31T23:30:00+07:00"),
    ]) + rng.randrange(-3, 4)
    spots = [now, now - H, now - D, now - 7 * D, now - 30 * D, window_start_us("mtd", now),
             window_start_us("qtd", now), window_start_us("ytd", now)]
    mapping: dict = {}
    shards = [BucketCounters(mapping, shard=s) for s in range(3)]
    live = []
    for _ in range(600):
        if rng.random() < 0.5:
            t = rng.choice(spots) + rng.randrange(-3, 4) * rng.choice([1, 1, 60_000_000, H])
        else:
            t = now + rng.randrange(-400 * D, 2 * D)
        o = Outcome(rng.choice(["on_time", "remote"]), rng.choice(["U1", "U2"]), rng.choice(["a", "b", ""]), t,
                    rng.random() < 0.6)
        bc = rng.choice(shards)
        bc.apply(o, 1)
        live.append((o, bc))
    # retract some (some of them after a prune)
    rng.shuffle(live)
    for o, bc in live[:50]:
        bc.apply(o, -1)
    for bc in shards:
        bc.prune(now)
    for o, bc in live[50:100]:
        bc.apply(o, -1)
    kept = [o for o, _ in live[100:]]
    for bc in shards:
        bc.prune(now)
    got = window_totals(mapping.items(), now)
    want = _brute([(o, 1) for o in kept], now)
    # cells whose every outcome was retracted may vanish; otherwise keys agree
    for k, v in want.items():
        assert got.get(k, (0, 0)) == v, k
    for k, v in got.items():
        assert want.get(k, (0, 0)) == v, k
    # a subset of windows
    sub = window_totals(mapping.items(), now, windows=("30d", "mtd"))
    assert {k: v for k, v in got.items() if k[3] in ("30d", "mtd")} == sub


def test_window_totals_boundaries_exact():
    now = us("2025-04-01T00:30:00+07:00")
    m: dict = {}
    bc = BucketCounters(m)
    for t, hit in [(now, True), (now + 1, True), (now - H, False), (now - H + 1, True), (now - 30 * D, True),
                   (now - 30 * D + 1, False), (us("2025-03-31T23:59:59.999999+07:00"), True)]:
        bc.apply(Outcome("remote", "U1", "s", t, hit), 1)
    tot = window_totals(m.items(), now)
    assert tot[("remote", "U1", "s", "1h")] == (3, 3)  # now, now-H+1 and 23:59:59.999999 local
    assert tot[("remote", "U1", "s", "mtd")] == (1, 1)  # only `now` (now+1 is in the future)
    assert tot[("remote", "U1", "s", "qtd")] == (1, 1)
    assert tot[("remote", "U1", "s", "ytd")] == (4, 6)
    assert tot[("remote", "U1", "s", "30d")] == (3, 5)  # all but now+1 and now-30d


def test_window_totals_keep_zero_cells():
    now = us("2025-06-01T10:00:00+07:00")
    m: dict = {}
    BucketCounters(m).apply(Outcome("early", "U9", "x", us("2024-02-01T10:00:00+07:00"), True), 1)
    tot = window_totals(m.items(), now)
    assert tot == {("early", "U9", "x", w): (0, 0) for w in WINDOWS}


# --------------------------------------------------------------------------- scopes


def test_scope_totals_sum_numerators_and_denominators():
    fine = {
        ("satisfaction", "U1", "dat_dai", "24h"): (3, 4),
        ("satisfaction", "U1", "ho_tich", "24h"): (1, 1),
        ("satisfaction", "U2", "dat_dai", "24h"): (0, 5),
        ("satisfaction", "U3", "ho_tich", "24h"): (0, 0),
        ("feedback_on_time", "U1", "", "24h"): (1, 2),
        ("feedback_on_time", "U2", "", "24h"): (0, 0),
    }
    assert scope_totals(fine) == {
        ("satisfaction", "U1", "all", "24h"): (4, 5),
        ("satisfaction", "U2", "all", "24h"): (0, 5),
        ("satisfaction", "U3", "all", "24h"): (0, 0),
        ("satisfaction", "all", "dat_dai", "24h"): (3, 9),
        ("satisfaction", "all", "ho_tich", "24h"): (1, 1),
        ("satisfaction", "all", "all", "24h"): (4, 10),
        ("feedback_on_time", "U1", "all", "24h"): (1, 2),
        ("feedback_on_time", "U2", "all", "24h"): (0, 0),
        ("feedback_on_time", "all", "all", "24h"): (1, 2),  # no ("all", "") sector scope
    }


def test_prune_keeps_the_detail_of_held_outcomes():
    from pipeline.core.outcomes import Outcome

    counters: dict = {}
    old = 1_735_689_600_000_000  # 2025-01-01T00:00Z
    BucketCounters(counters).apply(Outcome("satisfaction", "U", "unknown", old, True), 1)
    BucketCounters(counters).apply(Outcome("satisfaction", "U", "ho_tich", old, True), 1)
    BucketCounters(counters).prune(old + 60 * 86_400_000_000)
    details = {key.split("|")[3]: "t" in value for key, value in counters.items()}
    assert details == {"unknown": True, "ho_tich": False}
