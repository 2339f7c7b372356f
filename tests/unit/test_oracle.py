"""The oracle against small scenarios computed by hand from docs/indicators.md."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta, timezone

import pytest

from tests.oracle import expected_indicators, expected_open_cases

VN = timezone(timedelta(hours=7))
T0 = datetime(2025, 3, 3, 9, 0, tzinfo=VN)  # a Monday, 09:00 local
H, D, US = timedelta(hours=1), timedelta(days=1), timedelta(microseconds=1)

_ids = itertools.count(1)


def ev(event_type: str, at: datetime, case: str = "C1", unit: str = "U1", eid: str | None = None, **fields) -> dict:
    event = {
        "schema_version": 1,
        "event_id": eid or f"e{next(_ids):05d}",
        "event_type": event_type,
        "case_id": case,
        "unit_id": unit,
        "occurred_at": at.isoformat(),
    }
    for key, value in fields.items():
        event[key] = value.isoformat() if isinstance(value, datetime) else value
    return event


def received(at: datetime = T0, due: datetime | None = None, case: str = "C1", unit: str = "U1",
             sector: str = "dat_dai", channel: str = "direct", **fields) -> dict:
    base = {"procedure_code": "1.000001", "sector": sector, "channel": channel,
            "due_at": due or at + 10 * D, "has_fee": False, "digitized": False,
            "reused_data": False, "vneid_authenticated": False}
    if channel == "online":
        base["online_mode"] = "full"
    base.update(fields)
    return ev("received", at, case=case, unit=unit, **base)


def value(result: dict, indicator: str, unit: str = "U1", sector: str = "all", window: str = "ytd"):
    return result.get((indicator, unit, sector, window), (0, 0))


def of(events, at, **kw):
    return expected_indicators(events, at=at, windows=("1h", "24h", "7d", "30d", "mtd", "qtd", "ytd"), **kw)


# --------------------------------------------------------------------------- receipt indicators


def test_receipt_indicators_and_scopes():
    events = [
        received(case="A", channel="online", online_mode="full", digitized=True, reused_data=True, vneid_authenticated=True),
        received(case="B", channel="online", online_mode="partial", digitized=True, vneid_authenticated=False),
        received(case="C", channel="direct", vneid_authenticated=True, sector="ho_tich"),
        received(case="D", channel="postal", unit="U2", sector="ho_tich", digitized=True),
    ]
    r = of(events, T0 + H)
    assert value(r, "full_online") == (1, 3)
    assert value(r, "remote") == (2, 3)
    assert value(r, "digitized") == (2, 3)
    assert value(r, "data_reuse") == (1, 3)
    assert value(r, "vneid_auth") == (1, 2)  # online dossiers only: C's flag does not count
    assert value(r, "digitized", "U2") == (1, 1)
    assert value(r, "digitized", "all", "ho_tich") == (1, 2)
    assert value(r, "digitized", "all", "dat_dai") == (2, 2)
    assert value(r, "digitized", "all", "all") == (3, 4)
    assert value(r, "vneid_auth", "U2") == (0, 0)  # no series without a denominator
    assert ("vneid_auth", "U2", "all", "ytd") not in r
    assert value(r, "on_time") == (0, 0)  # nothing finished


def test_optional_booleans_absent_are_false_and_only_earliest_received_counts():
    first = received(T0, case="A", channel="online", digitized=True)
    first.pop("reused_data")
    later = received(T0 + H, case="A", channel="direct", unit="U2", digitized=False, reused_data=True)
    r = of([later, first], T0 + 2 * H)
    assert value(r, "digitized") == (1, 1)
    assert value(r, "data_reuse") == (0, 1)
    assert value(r, "remote", "U2") == (0, 0)


def test_earliest_received_tie_broken_by_smallest_event_id():
    a = received(T0, case="A", unit="U1", eid="b-2")
    b = received(T0, case="A", unit="U2", eid="b-1")
    r = of([a, b], T0 + H)
    assert value(r, "remote", "U2") == (0, 1)
    assert value(r, "remote", "U1") == (0, 0)


# --------------------------------------------------------------------------- on time, early, pauses


def test_on_time_and_early_simple():
    due = T0 + 5 * D
    events = [
        received(T0, due, case="A"), ev("resolved", T0 + 2 * D, case="A"),  # early
        received(T0, due, case="B"), ev("resolved", due, case="B"),  # on time (= due), same day
        received(T0, due, case="C"), ev("resolved", due + US, case="C"),  # late by 1 µs
    ]
    r = of(events, T0 + 10 * D)
    assert value(r, "on_time") == (2, 3)
    assert value(r, "early") == (1, 3)
    assert value(r, "apology_coverage") == (0, 1)


def test_early_compares_local_calendar_dates():
    # finish 23:30 local on the 10th (16:30Z), due 00:30 local on the 11th (17:30Z the 10th)
    due1 = datetime(2025, 3, 11, 0, 30, tzinfo=VN)
    # finish 06:00 local on the 11th (23:00Z the 10th), due 08:00 local the 11th (01:00Z the 11th)
    due2 = datetime(2025, 3, 11, 8, 0, tzinfo=VN)
    events = [
        received(T0, due1, case="A"), ev("resolved", datetime(2025, 3, 10, 16, 30, tzinfo=timezone.utc), case="A"),
        received(T0, due2, case="B"), ev("resolved", datetime(2025, 3, 10, 23, 0, tzinfo=timezone.utc), case="B"),
    ]
    r = of(events, datetime(2025, 3, 12, tzinfo=VN))
    assert value(r, "on_time") == (2, 2)
    assert value(r, "early") == (1, 2)  # A only


def test_pause_extends_due_and_second_request_makes_late():
    due = T0 + 5 * D
    events = [
        # A: one day paused -> effective due = due + 1 day; finished 23 h after the due date,
        # on the effective due's local date: on time, not early
        received(T0, due, case="A"),
        ev("supplement_requested", T0 + D, case="A"),
        ev("supplement_received", T0 + 2 * D, case="A"),
        ev("resolved", due + 23 * H, case="A"),
        # B: two requests -> late although finished well before the due date
        received(T0, due, case="B"),
        ev("supplement_requested", T0 + D, case="B"),
        ev("supplement_received", T0 + D + H, case="B"),
        ev("supplement_requested", T0 + 2 * D, case="B"),
        ev("supplement_received", T0 + 2 * D + H, case="B"),
        ev("apology_issued", T0 + 2 * D + 2 * H, case="B", new_due_at=due + D),
        ev("resolved", T0 + 3 * D, case="B"),
        # C: a request after the finish is not counted; the case is on time and early
        received(T0, due, case="C"),
        ev("supplement_requested", T0 + D, case="C"),
        ev("supplement_received", T0 + D + H, case="C"),
        ev("resolved", T0 + 2 * D, case="C"),
        ev("supplement_requested", T0 + 3 * D, case="C"),
    ]
    r = of(events, T0 + 20 * D)
    assert value(r, "on_time") == (2, 3)
    assert value(r, "early") == (1, 3)  # C; A finished on the effective due date
    assert value(r, "apology_coverage") == (1, 1)  # B late, apologised before finishing


def test_overlapping_requests_stray_receipts_and_pause_open_at_finish():
    due = T0 + 2 * D
    events = [
        received(T0, due, case="A"),
        ev("supplement_received", T0 + H, case="A"),  # no pause open: ignored
        ev("supplement_requested", T0 + 2 * H, case="A"),
        # a second request while the pause is open opens nothing new, but it is a request
        ev("supplement_requested", T0 + 3 * H, case="A"),
        ev("supplement_received", T0 + 4 * H, case="A"),
        ev("resolved", due + H, case="A"),  # paused 2 h -> due + 2 h: in time, but 2 requests
        # B: the pause is still open at the finish: closed at the finish
        received(T0, due, case="B"),
        ev("supplement_requested", due - H, case="B"),
        ev("resolved", due + 5 * H, case="B"),  # paused 6 h -> effective due = due + 6 h: on time
    ]
    r = of(events, T0 + 10 * D)
    assert value(r, "on_time") == (1, 2)


def test_finish_is_earliest_resolved_stopped_withdrawn_else_earliest_return():
    due = T0 + 2 * D
    events = [
        # A: returned before due, but resolved after: the finish is the resolved -> late
        received(T0, due, case="A"),
        ev("result_returned", due - H, case="A", electronic_result=True),
        ev("resolved", due + H, case="A"),
        # B: no resolved/stopped/withdrawn: the earliest return is the finish -> on time, early
        received(T0, due, case="B"),
        ev("result_returned", due + D, case="B", electronic_result=False),
        ev("result_returned", T0 + H, case="B", electronic_result=True),
        # C: withdrawn then resolved: the withdrawn is earlier
        received(T0, due, case="C"),
        ev("withdrawn", T0 + D, case="C"),
        ev("resolved", due + 3 * D, case="C"),
        # D: stopped late
        received(T0, due, case="D"),
        ev("stopped", due + D, case="D"),
    ]
    r = of(events, T0 + 10 * D)
    assert value(r, "on_time") == (2, 4)  # B, C
    assert value(r, "early") == (2, 4)
    # e_result: one outcome per case with a return, from its earliest return
    assert value(r, "e_result") == (2, 2)
    assert value(r, "apology_coverage") == (0, 2)


def test_apology_counts_by_the_working_day_before_the_due_and_open_late_cases_count_at_t():
    """apology_coverage v1.2: T0 is Monday 3 March 2025; due Wednesday 5 March 09:00, so an
    apology counts when dated Tuesday 4 March or earlier (lead 1)."""
    due = T0 + 2 * D
    events = [
        received(T0, due, case="A"), ev("apology_issued", T0 + D + 5 * H, case="A", new_due_at=due + D),
        ev("resolved", due + H, case="A"),  # late, apology on Tuesday: a hit
        received(T0, due, case="B"), ev("apology_issued", due - 2 * H, case="B", new_due_at=due + D),
        ev("resolved", due + H, case="B"),  # late, apology on the due day itself: a miss
        received(T0, due, case="C"), ev("apology_issued", T0 + H, case="C", new_due_at=due + D),
        ev("resolved", T0 + D, case="C"),  # on time: no apology outcome at all
        received(T0, due, case="D"), ev("apology_issued", T0 + H, case="D", new_due_at=due + D),  # open, late, in time
        received(T0, due, case="E"),  # open, late, no apology
        received(T0, due + 20 * D, case="F"),  # open, not late: no outcome
    ]
    r = of(events, T0 + 10 * D)
    assert value(r, "apology_coverage") == (2, 4)
    assert value(r, "apology_coverage", window="1h") == (1, 2)  # the open ones count at T, in every window
    assert value(of(events, T0 + 10 * D, apology_lead=0), "apology_coverage") == (3, 4)  # B is in time on the day
    assert value(of(events, T0 + 10 * D, apology_lead=2), "apology_coverage") == (1, 4)  # A's Tuesday is too late


# --------------------------------------------------------------------------- event outcomes


def test_payments_ratings_returns_count_events():
    events = [
        received(T0, case="A", sector="xay_dung"),
        ev("payment", T0 + H, case="A", method="online", amount_vnd=10000),
        ev("payment", T0 + 2 * H, case="A", method="offline", amount_vnd=0),
        ev("rated", T0 + 3 * H, case="A", rating=4),
        ev("rated", T0 + 4 * H, case="A", rating=3),
        ev("rated", T0 + 5 * H, case="A", rating=5),
        ev("result_returned", T0 + 2 * H, case="A", electronic_result=False),
        ev("result_returned", T0 + 3 * H, case="A", electronic_result=True),
    ]
    r = of(events, T0 + D)
    assert value(r, "online_payment") == (1, 2)
    assert value(r, "satisfaction") == (2, 3)
    assert value(r, "satisfaction", "all", "xay_dung") == (2, 3)
    assert value(r, "e_result") == (0, 1)
    # the finish is the earliest return (no resolved): early
    assert value(r, "on_time") == (1, 1)


def test_transferred_keeps_attribution_with_the_owner():
    events = [
        received(T0, case="A", unit="U1", sector="dau_tu"),
        ev("transferred", T0 + H, case="A", unit="U1", to_unit_id="U2"),
        ev("resolved", T0 + D, case="A", unit="U2"),
        ev("result_returned", T0 + D, case="A", unit="U2", electronic_result=True),
        ev("rated", T0 + D + H, case="A", unit="U2", rating=5),
    ]
    r = of(events, T0 + 2 * D)
    for indicator in ("on_time", "e_result", "satisfaction"):
        assert value(r, indicator, "U1") == (1, 1)
        assert value(r, indicator, "U2") == (0, 0)
        assert value(r, indicator, "all", "dau_tu") == (1, 1)


def test_rejected_case_yields_nothing_and_is_never_open():
    events = [
        received(T0, T0 + D, case="A", channel="online"),
        ev("payment", T0 + H, case="A", method="online", amount_vnd=1),
        ev("rejected", T0 + 2 * H, case="A"),
        ev("resolved", T0 + 3 * D, case="A"),
        # rejected without received, with events that would otherwise be held
        ev("rated", T0, case="B", unit="U3", rating=5),
        ev("rejected", T0 + H, case="B", unit="U3"),
    ]
    r = of(events, T0 + 100 * D)
    assert r == {}
    assert expected_open_cases(events, at=T0 + 100 * D) == {}


# --------------------------------------------------------------------------- held events


def test_held_events_attributed_after_retention_to_own_unit_sector_unknown():
    t = T0
    events = [
        ev("payment", t, case="A", unit="U7", method="online", amount_vnd=5),
        ev("rated", t + H, case="A", unit="U8", rating=2),
        ev("result_returned", t + 2 * H, case="A", unit="U8", electronic_result=True),
        ev("result_returned", t + 3 * H, case="A", unit="U9", electronic_result=False),  # not the first
        ev("resolved", t + 2 * H, case="A", unit="U8"),
    ]
    retention = timedelta(days=35)
    r = of(events, t + retention)  # occurred_at + retention < T is false for all
    assert r == {}
    r = of(events, t + retention + US)
    assert value(r, "online_payment", "U7") == (1, 1)
    assert value(r, "online_payment", "all", "unknown") == (1, 1)
    assert value(r, "satisfaction", "U8") == (0, 0)  # not yet: 1 h later than the payment
    r = of(events, t + retention + 3 * H + US)
    assert value(r, "satisfaction", "U8") == (0, 1)
    assert value(r, "e_result", "U8") == (1, 1)
    assert value(r, "e_result", "U9") == (0, 0)
    assert value(r, "e_result", "all", "unknown") == (1, 1)
    assert value(r, "e_result", "all", "all") == (1, 1)
    assert value(r, "on_time", "all", "all") == (0, 0)  # needs the received
    # a shorter retention
    r = of(events, t + 2 * D, hold_retention_days=1)
    assert value(r, "satisfaction", "all", "unknown") == (0, 1)


def test_received_arriving_moves_held_outcomes_to_the_owner():
    events = [
        ev("payment", T0, case="A", unit="U7", method="offline", amount_vnd=5),
        ev("rated", T0 + H, case="A", unit="U7", rating=5),
        received(T0 + 40 * D, T0 + 50 * D, case="A", unit="U1", sector="y_te"),  # occurred later
    ]
    before = of(events, T0 + 39 * D)
    assert value(before, "online_payment", "U7") == (0, 1)
    after = of(events, T0 + 41 * D)
    assert value(after, "online_payment", "U7") == (0, 0)
    assert value(after, "online_payment", "U1") == (0, 1)
    assert value(after, "satisfaction", "all", "y_te") == (1, 1)
    assert value(after, "satisfaction", "all", "unknown") == (0, 0)


# --------------------------------------------------------------------------- feedback


def test_feedback_outcomes():
    due = T0 + 5 * D
    events = [
        ev("feedback_received", T0 + H, case="F1", unit="U2", due_at=due + D),
        ev("feedback_received", T0, case="F1", unit="U1", due_at=due),  # the earliest decides
        ev("feedback_answered", due, case="F1", unit="U3"),  # on the due instant: on time
        ev("feedback_answered", due + US, case="F1", unit="U3"),  # every answer counts
        ev("feedback_answered", T0 + H, case="F2", unit="U1"),  # no feedback_received: nothing
    ]
    r = of(events, T0 + 10 * D)
    assert value(r, "feedback_on_time", "U1") == (1, 2)
    assert value(r, "feedback_on_time", "all", "all") == (1, 2)
    assert value(r, "feedback_on_time", "U2") == (0, 0)
    assert value(r, "feedback_on_time", "U3") == (0, 0)
    assert not any(key[0] == "feedback_on_time" and key[1] == "all" and key[2] != "all" for key in r)


# --------------------------------------------------------------------------- windows and clock


def test_rolling_window_edges_are_exclusive_at_the_start():
    t_clock = T0 + 10 * D
    events = [
        received(T0, case="Z"),
        ev("payment", t_clock - H, case="Z", method="online", amount_vnd=1),  # exactly 1 h before T
        ev("payment", t_clock - H + US, case="Z", method="online", amount_vnd=1),
        ev("payment", t_clock - 7 * D, case="Z", method="offline", amount_vnd=1),
        ev("payment", t_clock + US, case="Z", method="offline", amount_vnd=1),  # after T: ignored
    ]
    r = of(events, t_clock)
    assert value(r, "online_payment", window="1h") == (1, 1)
    assert value(r, "online_payment", window="24h") == (2, 2)
    assert value(r, "online_payment", window="7d") == (2, 2)
    assert value(r, "online_payment", window="30d") == (2, 3)


def test_calendar_windows_use_local_time():
    t_clock = datetime(2025, 4, 1, 0, 10, tzinfo=VN)  # 2025-03-31T17:10Z
    events = [
        received(datetime(2025, 3, 31, 23, 30, tzinfo=VN), case="A"),  # March locally (Q1)
        received(datetime(2025, 4, 1, 0, 5, tzinfo=VN), case="B"),  # April locally (Q2)
        received(datetime(2024, 12, 31, 17, 30, tzinfo=timezone.utc), case="C"),  # 2025-01-01 00:30 local
        received(datetime(2024, 12, 31, 23, 0, tzinfo=VN), case="D"),  # 2024
    ]
    r = of(events, t_clock)
    assert value(r, "remote", window="mtd") == (0, 1)
    assert value(r, "remote", window="qtd") == (0, 1)
    assert value(r, "remote", window="ytd") == (0, 3)
    assert value(r, "remote", window="1h") == (0, 2)
    assert value(r, "remote", window="30d") == (0, 2)


def test_clock_defaults_to_latest_event_and_accepts_z_strings():
    events = [received(T0, case="A"), ev("resolved", T0 + D, case="A")]
    r1 = expected_indicators(events, at=None, windows=("1h",))
    r2 = expected_indicators(events, at=(T0 + D).astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000000Z"),
                             windows=("1h",))
    assert r1 == r2 == {(ind, u, s, "1h"): (1, 1) for ind in ("on_time", "on_time_766", "early")
                        for u, s in (("U1", "all"), ("all", "dat_dai"), ("all", "all"))}


def test_duplicate_event_ids_first_wins():
    a = ev("rated", T0, case="A", eid="same", rating=5)
    b = ev("rated", T0 + H, case="A", eid="same", rating=1)
    r = of([received(T0 - H, case="A"), a, b], T0 + 2 * H)
    assert value(r, "satisfaction") == (1, 1)


# --------------------------------------------------------------------------- open cases


def test_open_cases():
    t_clock = T0 + 10 * D
    events = [
        received(T0, T0 + 20 * D, case="open"),  # open, not overdue
        received(T0, T0 + 5 * D, case="overdue"),  # overdue, no apology
        received(T0, T0 + 5 * D, case="sorry"),
        ev("apology_issued", T0 + 6 * D, case="sorry", new_due_at=T0 + 12 * D),  # overdue with apology
        # paused since day 4 (pause open counted up to T: +6 d) -> effective due day 11: not overdue
        received(T0, T0 + 5 * D, case="paused"),
        ev("supplement_requested", T0 + 4 * D, case="paused"),
        received(T0, T0 + 5 * D, case="done"), ev("stopped", T0 + 6 * D, case="done"),
        received(T0, T0 + 5 * D, case="gone"), ev("rejected", T0 + H, case="gone"),
        received(T0, T0 + 5 * D, case="later", unit="U2"),
        ev("resolved", t_clock + H, case="later", unit="U2"),  # after T: still open at T, overdue
        received(T0, t_clock, case="edge", unit="U2"),  # effective due == T: not overdue (< T)
        ev("payment", T0, case="held", unit="U3", method="online", amount_vnd=1),  # no received
    ]
    assert expected_open_cases(events, at=t_clock) == {"U1": (4, 2, 1), "U2": (2, 1, 1)}


@pytest.mark.parametrize("window", ["1h", "24h", "7d", "30d", "mtd", "qtd", "ytd"])
def test_every_window_sums_scopes(window):
    events = [received(T0, case=str(i), unit=f"U{i % 3}", sector=("dat_dai", "y_te")[i % 2],
                       channel=("online", "direct")[i % 4 == 0]) for i in range(12)]
    r = of(events, T0 + 30 * 60 * timedelta(seconds=1))
    province = value(r, "remote", "all", "all", window)
    units = [value(r, "remote", f"U{i}", "all", window) for i in range(3)]
    sectors = [value(r, "remote", "all", s, window) for s in ("dat_dai", "y_te")]
    assert province == (9, 12)
    assert tuple(map(sum, zip(*units))) == province == tuple(map(sum, zip(*sectors)))
