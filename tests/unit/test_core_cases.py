"""pipeline.core.cases / outcomes: one test per rule of docs/indicators.md."""

from __future__ import annotations

import itertools
import json
import random

import pytest

from pipeline.contract.events import CaseEvent, parse_time
from pipeline.core.cases import CaseState, case_outcomes_and_open, case_summary, held_since_us
from pipeline.core.outcomes import Outcome, diff_outcomes
from pipeline.calendar_file import apology_rule

H = 3600 * 1_000_000
D = 24 * H
RET = 35 * D  # default hold retention
RULE = apology_rule(1)  # apology_coverage v1.2 with deploy/holidays.csv
T0 = parse_time("2025-03-10T09:00:00+07:00")
FAR = T0 + 400 * D  # a clock long after everything (held events released)


def case_outcomes(state: CaseState, now: int, retention: int, *, apology=None) -> list[Outcome]:
    return case_outcomes_and_open(state, now, retention, apology=apology or RULE)[0]


def us(text: str) -> int:
    return parse_time(text)


_seq = itertools.count()


def ev(event_type: str, t: int, unit: str = "U1", case: str = "C1", eid: str | None = None, **fields) -> CaseEvent:
    if eid is None:
        eid = f"e{next(_seq):06d}"
    return CaseEvent(eid, event_type, case, unit, t, "test", fields)


def received(t: int = T0, unit: str = "U1", sector: str = "dat_dai", due: int | None = None, channel: str = "direct",
             mode: str | None = None, case: str = "C1", eid: str | None = None, **flags) -> CaseEvent:
    f = {"procedure_code": "P1", "sector": sector, "channel": channel, "due_at": T0 + 5 * D if due is None else due,
         "has_fee": False, "digitized": False, "reused_data": False, "vneid_authenticated": False}
    if channel == "online":
        f["online_mode"] = mode or "full"
    f.update(flags)
    return ev("received", t, unit, case, eid, **f)


def state_of(*events: CaseEvent, case: str = "C1") -> CaseState:
    s = CaseState.new(case)
    for e in events:
        assert s.add(e)
    return s


def outs(*events: CaseEvent, now: int = FAR, case: str = "C1") -> list[Outcome]:
    return case_outcomes(state_of(*events, case=case), now, RET, apology=RULE)


def by_ind(outcomes: list[Outcome]) -> dict[str, list[Outcome]]:
    d: dict[str, list[Outcome]] = {}
    for o in outcomes:
        d.setdefault(o.indicator, []).append(o)
    return d


def one(outcomes: list[Outcome], indicator: str) -> Outcome:
    found = [o for o in outcomes if o.indicator == indicator]
    assert len(found) == 1, (indicator, outcomes)
    return found[0]


# --------------------------------------------------------------------------- owner


def test_owner_unit_and_sector_come_from_received():
    o = outs(
        received(unit="U1", sector="dat_dai"),
        ev("payment", T0 + H, unit="U2", method="online", amount_vnd=1000),
        ev("resolved", T0 + 2 * H, unit="U3"),
        ev("rated", T0 + 3 * H, unit="KIOSK", rating=5),
    )
    assert o and {(x.unit, x.sector) for x in o} == {("U1", "dat_dai")}


def test_transfer_does_not_move_attribution():
    o = outs(
        received(unit="U1", sector="xay_dung"),
        ev("transferred", T0 + H, unit="U1", to_unit_id="U2"),
        ev("resolved", T0 + 2 * H, unit="U2"),
        ev("result_returned", T0 + 3 * H, unit="U2", electronic_result=True),
    )
    assert {(x.unit, x.sector) for x in o} == {("U1", "xay_dung")}
    assert one(o, "on_time").hit and one(o, "e_result").hit


def test_only_the_earliest_received_counts():
    o = outs(
        received(t=T0 + H, unit="U2", sector="ho_tich", eid="r-a"),
        received(t=T0, unit="U1", sector="dat_dai", eid="r-z"),
    )
    assert {(x.unit, x.sector, x.time_us) for x in o} == {("U1", "dat_dai", T0)}
    assert len(one_of_each := by_ind(o)["remote"]) == 1 and one_of_each[0].time_us == T0


def test_received_tie_is_broken_by_smallest_event_id():
    o = outs(received(unit="U2", eid="r-b"), received(unit="U1", eid="r-a"))
    assert {x.unit for x in o} == {"U1"}
    assert len(by_ind(o)["digitized"]) == 1


def test_rejected_case_yields_nothing():
    assert outs(
        received(),
        ev("rejected", T0 + H),
        ev("payment", T0 + 2 * H, method="online"),
        ev("resolved", T0 + 3 * H),
        ev("result_returned", T0 + 4 * H, electronic_result=True),
        ev("rated", T0 + 5 * H, rating=5),
    ) == []
    # also without a received: held events never come out
    s = state_of(ev("rejected", T0), ev("payment", T0 + H, method="online"), ev("rated", T0 + H, rating=5))
    assert case_outcomes(s, FAR, RET, apology=RULE) == []
    assert held_since_us(s) is None
    assert case_summary(s, FAR).status == "rejected"


def test_rejected_case_is_never_open():
    s = state_of(received(due=T0 + H), ev("rejected", T0 + 1))
    summ = case_summary(s, T0 + 10 * D)
    assert summ.status == "rejected" and not summ.overdue


# --------------------------------------------------------------------------- receipt indicators


def test_receipt_indicators_direct_channel():
    o = outs(received(channel="direct", digitized=True, reused_data=False, vneid_authenticated=True))
    assert sorted(x.indicator for x in o) == ["data_reuse", "digitized", "full_online", "remote"]
    assert all(x.time_us == T0 for x in o)
    assert one(o, "digitized").hit and not one(o, "data_reuse").hit
    assert not one(o, "remote").hit and not one(o, "full_online").hit


def test_receipt_indicators_online_full_and_partial():
    full = outs(received(channel="online", mode="full", vneid_authenticated=True, reused_data=True))
    assert one(full, "full_online").hit and one(full, "remote").hit and one(full, "vneid_auth").hit
    assert one(full, "data_reuse").hit
    part = outs(received(channel="online", mode="partial"))
    assert not one(part, "full_online").hit and one(part, "remote").hit and not one(part, "vneid_auth").hit


def test_vneid_only_for_online_received():
    o = outs(received(channel="postal", vneid_authenticated=True))
    assert "vneid_auth" not in by_ind(o)


# --------------------------------------------------------------------------- finish


def test_finish_is_earliest_of_resolved_stopped_withdrawn_over_result_returned():
    o = outs(
        received(),
        ev("result_returned", T0 + H),
        ev("withdrawn", T0 + 3 * H),
        ev("stopped", T0 + 2 * H),
        ev("resolved", T0 + 4 * H),
    )
    assert one(o, "on_time").time_us == T0 + 2 * H
    assert one(o, "early").time_us == T0 + 2 * H
    s = case_summary(state_of(received(), ev("result_returned", T0 + H), ev("withdrawn", T0 + 3 * H)), FAR)
    assert (s.finish_type, s.finished_at_us) == ("withdrawn", T0 + 3 * H)


def test_result_returned_is_finish_when_nothing_else():
    o = outs(received(), ev("result_returned", T0 + 3 * H), ev("result_returned", T0 + 2 * H))
    assert one(o, "on_time").time_us == T0 + 2 * H
    s = case_summary(state_of(received(), ev("result_returned", T0 + 2 * H)), FAR)
    assert (s.status, s.finish_type) == ("finished", "result_returned")


def test_unfinished_case_has_no_finish_outcomes():
    o = outs(received(), ev("supplement_requested", T0 + H))
    assert not {"on_time", "early", "apology_coverage"} & set(by_ind(o))
    assert case_summary(state_of(received()), T0 + H).status == "open"


# --------------------------------------------------------------------------- pauses


def test_pause_opened_and_closed_extends_due():
    due = T0 + D
    base = [received(due=due), ev("supplement_requested", T0 + H), ev("supplement_received", T0 + 5 * H)]
    # finished 4h after the due: inside the 4h pause -> on time
    assert one(outs(*base, ev("resolved", due + 4 * H)), "on_time").hit
    assert not one(outs(*base, ev("resolved", due + 4 * H + 1)), "on_time").hit
    s = case_summary(state_of(*base, ev("resolved", due)), FAR)
    assert s.paused_us == 4 * H and s.effective_due_us == due + 4 * H and s.supplement_requests == 1


def test_supplement_received_without_open_pause_is_ignored():
    s = case_summary(state_of(received(), ev("supplement_received", T0 + H), ev("resolved", T0 + 2 * H)), FAR)
    assert s.paused_us == 0 and s.supplement_requests == 0


def test_request_while_pause_open_opens_nothing_new():
    s = case_summary(
        state_of(
            received(),
            ev("supplement_requested", T0 + H),
            ev("supplement_requested", T0 + 2 * H),
            ev("supplement_received", T0 + 3 * H),
            ev("supplement_received", T0 + 4 * H),  # nothing open: ignored
            ev("resolved", T0 + 5 * H),
        ),
        FAR,
    )
    assert s.paused_us == 2 * H and s.supplement_requests == 2


def test_pause_open_at_finish_is_closed_at_finish():
    due = T0 + D
    evs = [received(due=due), ev("supplement_requested", due - H), ev("resolved", due + 2 * H)]
    s = case_summary(state_of(*evs), FAR)
    assert s.paused_us == 3 * H and s.effective_due_us == due + 3 * H
    assert one(outs(*evs), "on_time").hit


def test_supplement_events_after_finish_are_ignored():
    due = T0 + D
    evs = [received(due=due), ev("resolved", due + H), ev("supplement_requested", due + 2 * H),
           ev("supplement_received", due + 3 * H)]
    s = case_summary(state_of(*evs), FAR)
    assert s.paused_us == 0 and s.supplement_requests == 0
    assert not one(outs(*evs), "on_time").hit


def test_request_at_the_finish_instant_counts():
    evs = [received(), ev("supplement_requested", T0 + H), ev("supplement_received", T0 + 2 * H),
           ev("supplement_requested", T0 + 3 * H), ev("resolved", T0 + 3 * H)]
    s = case_summary(state_of(*evs), FAR)
    assert s.supplement_requests == 2 and s.paused_us == H
    assert not one(outs(*evs), "on_time").hit


def test_second_request_makes_the_case_late():
    evs = [received(), ev("supplement_requested", T0 + H), ev("supplement_received", T0 + 2 * H),
           ev("supplement_requested", T0 + 3 * H), ev("supplement_received", T0 + 4 * H),
           ev("resolved", T0 + 5 * H)]  # long before the due
    o = outs(*evs)
    assert not one(o, "on_time").hit and not one(o, "early").hit
    assert "apology_coverage" in by_ind(o)  # late -> apology outcome


def test_open_pause_of_unfinished_case_counts_up_to_now():
    due = T0 + D
    s = state_of(received(due=due), ev("supplement_requested", T0 + H))
    now = due + 10 * H
    summ = case_summary(s, now)
    assert summ.paused_us == now - (T0 + H) and summ.effective_due_us == due + now - (T0 + H)
    assert summ.status == "open" and not summ.overdue


# --------------------------------------------------------------------------- on time / early


def test_effective_due_boundary_is_inclusive():
    due = T0 + D
    assert one(outs(received(due=due), ev("resolved", due)), "on_time").hit
    o = outs(received(due=due), ev("resolved", due + 1))
    assert not one(o, "on_time").hit and not one(o, "early").hit


def test_early_compares_local_calendar_dates():
    # finish 23:30 local on the 10th (16:30Z, same UTC date as the due),
    # due 00:10 local on the 11th (17:10Z on the 10th): early
    fin, due = us("2025-03-10T23:30:00+07:00"), us("2025-03-11T00:10:00+07:00")
    assert fin == us("2025-03-10T16:30:00Z") and due == us("2025-03-10T17:10:00Z")
    o = outs(received(t=fin - D, due=due), ev("resolved", fin))
    assert one(o, "on_time").hit and one(o, "early").hit
    # same local date (00:05 and 23:50 local on the 11th, different UTC dates): not early
    fin2, due2 = us("2025-03-11T00:05:00+07:00"), us("2025-03-11T23:50:00+07:00")
    assert fin2 == us("2025-03-10T17:05:00Z")
    o = outs(received(t=fin2 - D, due=due2), ev("resolved", fin2))
    assert one(o, "on_time").hit and not one(o, "early").hit


def test_early_uses_effective_due():
    due = us("2025-03-11T08:00:00+07:00")
    fin = us("2025-03-11T09:00:00+07:00")  # same day as the due, after it...
    evs = [received(t=fin - 3 * D, due=due), ev("supplement_requested", fin - 2 * D),
           ev("supplement_received", fin - D)]  # ...but a 1-day pause moves the due to the 12th
    o = outs(*evs, ev("resolved", fin))
    assert one(o, "on_time").hit and one(o, "early").hit


def test_early_requires_on_time():
    evs = [received(due=T0 + 5 * D), ev("supplement_requested", T0 + H), ev("supplement_requested", T0 + 2 * H),
           ev("resolved", T0 + 3 * H)]
    assert not one(outs(*evs), "early").hit


# --------------------------------------------------------------------------- apology


@pytest.mark.parametrize(
    "due,apology,hit",
    [
        # the spec's example: due Tuesday 10 June 2025 17:00 -> Monday 9 June 23:59:59 at the latest
        ("2025-06-10T17:00:00+07:00", "2025-06-09T23:59:59.999999+07:00", True),
        ("2025-06-10T17:00:00+07:00", "2025-06-10T00:00:00+07:00", False),
        ("2025-06-10T08:00:00+07:00", "2025-06-10T07:00:00+07:00", False),  # before the due, same day: too late
        # due Monday: the Friday before
        ("2025-06-16T09:00:00+07:00", "2025-06-13T16:00:00+07:00", True),
        ("2025-06-16T09:00:00+07:00", "2025-06-14T10:00:00+07:00", False),
        # due Wednesday 3 September 2025: 1 and 2 September are holidays -> Friday 29 August
        ("2025-09-03T10:00:00+07:00", "2025-08-29T23:00:00+07:00", True),
        ("2025-09-03T10:00:00+07:00", "2025-09-01T09:00:00+07:00", False),
        # due Monday 28 April 2025: Saturday 26 April is a make-up working day
        ("2025-04-28T10:00:00+07:00", "2025-04-26T20:00:00+07:00", True),
        ("2025-04-28T10:00:00+07:00", "2025-04-27T08:00:00+07:00", False),
    ],
)
def test_apology_counts_only_by_the_working_day_before_the_effective_due(due, apology, hit):
    due_us = us(due)
    fin = due_us + 5 * D  # late
    o = outs(received(t=due_us - 10 * D, due=due_us), ev("apology_issued", us(apology), new_due_at=fin),
             ev("resolved", fin))
    assert not one(o, "on_time").hit
    a = one(o, "apology_coverage")
    assert a.hit is hit and a.time_us == fin


def test_apology_after_the_finish_or_none_is_a_miss_and_the_lead_is_configurable():
    due = us("2025-06-12T17:00:00+07:00")  # a Thursday
    fin = due + 2 * D
    base = (received(t=due - 10 * D, due=due), ev("resolved", fin))
    assert one(outs(*base), "apology_coverage").hit is False  # late, no apology
    wed = ev("apology_issued", us("2025-06-11T15:00:00+07:00"), new_due_at=fin)
    o = case_outcomes(state_of(*base, wed), FAR, RET, apology=RULE)
    assert one(o, "apology_coverage").hit is True
    two = apology_rule(2)  # two working days before Thursday: Tuesday
    assert one(case_outcomes(state_of(*base, wed), FAR, RET, apology=two), "apology_coverage").hit is False
    tue = ev("apology_issued", us("2025-06-10T15:00:00+07:00"), new_due_at=fin)
    assert one(case_outcomes(state_of(*base, tue), FAR, RET, apology=two), "apology_coverage").hit is True
    zero = apology_rule(0)  # the due date itself
    late_same_day = ev("apology_issued", us("2025-06-12T22:00:00+07:00"), new_due_at=fin)
    assert one(case_outcomes(state_of(*base, late_same_day), FAR, RET, apology=zero), "apology_coverage").hit is True
    assert one(case_outcomes(state_of(*base, late_same_day), FAR, RET, apology=RULE), "apology_coverage").hit is False


def test_pauses_move_the_apology_deadline_with_the_effective_due():
    due = us("2025-06-10T17:00:00+07:00")  # Tuesday
    ap = ev("apology_issued", us("2025-06-11T10:00:00+07:00"), new_due_at=due + 9 * D)  # Wednesday
    events = [received(t=due - 10 * D, due=due), ap,
              ev("supplement_requested", due - 5 * D), ev("supplement_received", due - 3 * D),  # +2 days: due Thursday
              ev("resolved", due + 5 * D)]
    assert one(outs(*events), "apology_coverage").hit is True


def test_on_time_case_has_no_apology_outcome():
    o = outs(received(), ev("apology_issued", T0 + H, new_due_at=T0 + 9 * D), ev("resolved", T0 + 2 * H))
    assert "apology_coverage" not in by_ind(o)


# --------------------------------------------------------------------------- per-event indicators


def test_payments_each_count_and_online_method_hits():
    o = outs(received(), ev("payment", T0 + H, method="online", amount_vnd=5),
             ev("payment", T0 + 2 * H, method="offline", amount_vnd=5))
    assert sorted((x.time_us, x.hit) for x in by_ind(o)["online_payment"]) == [(T0 + H, True), (T0 + 2 * H, False)]


def test_ratings_each_count_and_four_or_more_hits():
    o = outs(received(), *[ev("rated", T0 + r * H, rating=r) for r in (1, 2, 3, 4, 5)])
    assert [x.hit for x in sorted(by_ind(o)["satisfaction"])] == [False, False, False, True, True]


def test_e_result_uses_earliest_result_returned():
    o = outs(received(), ev("result_returned", T0 + 2 * H, electronic_result=True),
             ev("result_returned", T0 + H, electronic_result=False))
    e = one(o, "e_result")
    assert e.time_us == T0 + H and not e.hit
    assert "e_result" not in by_ind(outs(received(), ev("resolved", T0 + H)))


# --------------------------------------------------------------------------- held events


def test_held_events_wait_for_retention_then_go_to_own_unit_with_unknown_sector():
    p = ev("payment", T0, unit="PAY", method="online")
    r = ev("rated", T0 + H, unit="KIOSK", rating=2)
    rr1 = ev("result_returned", T0 + 2 * H, unit="U9", electronic_result=True)
    rr2 = ev("result_returned", T0 + 3 * H, unit="U8", electronic_result=False)
    fin = ev("resolved", T0 + 30 * H)
    s = state_of(p, r, rr1, rr2, fin, ev("apology_issued", T0, new_due_at=T0 + D))
    assert case_outcomes(s, T0 + RET, RET, apology=RULE) == []  # occurred_at + retention == T: still held
    assert held_since_us(s) == T0
    assert held_since_us(s, T0 + RET, RET) == T0
    o = case_outcomes(s, T0 + RET + 1, RET, apology=RULE)  # only the payment is released
    assert o == [Outcome("online_payment", "PAY", "unknown", T0, True)]
    assert held_since_us(s, T0 + RET + 1, RET) == T0 + H
    o = case_outcomes(s, FAR, RET, apology=RULE)
    assert sorted(o) == sorted([
        Outcome("online_payment", "PAY", "unknown", T0, True),
        Outcome("satisfaction", "KIOSK", "unknown", T0 + H, False),
        Outcome("e_result", "U9", "unknown", T0 + 2 * H, True),  # only the first return
    ])
    assert held_since_us(s, FAR, RET) is None
    assert case_summary(s, FAR).status == "held"


def test_received_arriving_later_moves_outcomes_to_owner():
    s = state_of(ev("payment", T0 + H, unit="PAY", method="online"), ev("rated", T0 + 2 * H, unit="K", rating=5))
    before = case_outcomes(s, FAR, RET, apology=RULE)
    assert {(x.unit, x.sector) for x in before} == {("PAY", "unknown"), ("K", "unknown")}
    s.add(received(unit="U1", sector="ho_tich"))
    after = case_outcomes(s, FAR, RET, apology=RULE)
    assert {(x.unit, x.sector) for x in after} == {("U1", "ho_tich")}
    assert held_since_us(s) is None
    changes = diff_outcomes(before, after)
    assert sorted(o for o, sign in changes if sign == -1) == sorted(before)
    assert sorted(o for o, sign in changes if sign == 1) == sorted(after)


def test_held_case_without_received_yields_no_receipt_or_finish_outcomes():
    o = outs(ev("resolved", T0), ev("supplement_requested", T0 - H), ev("apology_issued", T0, new_due_at=T0))
    assert o == []


# --------------------------------------------------------------------------- feedback


def test_feedback_belongs_to_unit_of_earliest_feedback_received_and_no_sector():
    due = T0 + 3 * D
    o = outs(
        ev("feedback_received", T0 + H, unit="U2", case="F1", eid="b", due_at=due + D),
        ev("feedback_received", T0, unit="U1", case="F1", eid="a", due_at=due),
        ev("feedback_answered", due, unit="U3", case="F1"),
        ev("feedback_answered", due + 1, unit="U3", case="F1"),
        case="F1",
    )
    assert sorted(o) == [Outcome("feedback_on_time", "U1", "", due, True),
                         Outcome("feedback_on_time", "U1", "", due + 1, False)]
    s = case_summary(state_of(ev("feedback_received", T0, unit="U1", case="F1", due_at=due), case="F1"), FAR)
    assert (s.status, s.unit, s.sector) == ("feedback_open", "U1", "")


def test_feedback_answered_without_feedback_received_yields_nothing():
    s = state_of(ev("feedback_answered", T0, case="F2"), case="F2")
    assert case_outcomes(s, FAR, RET, apology=RULE) == []
    assert held_since_us(s) is None


# --------------------------------------------------------------------------- order independence


def _random_case(rng: random.Random, case: str) -> list[CaseEvent]:
    t = T0 + rng.randrange(0, 10 * D)
    evs = []
    kind = rng.random()
    if kind < 0.1:
        evs.append(ev("feedback_received", t, unit="U1", case=case, due_at=t + 2 * D))
        for _ in range(rng.randrange(0, 3)):
            evs.append(ev("feedback_answered", t + rng.randrange(0, 4 * D), case=case))
        return evs
    if kind < 0.9:
        evs.append(received(t=t, unit=rng.choice(["U1", "U2"]), channel=rng.choice(["direct", "online"]),
                            due=t + rng.randrange(1, 5) * D, case=case, digitized=rng.random() < .5))
    if rng.random() < 0.3:
        evs.append(received(t=t + rng.choice([0, H]), unit="U3", case=case))  # duplicate receipts
    pool = ["supplement_requested", "supplement_received", "payment", "resolved", "result_returned",
            "stopped", "withdrawn", "apology_issued", "rated", "transferred"]
    if rng.random() < 0.05:
        pool.append("rejected")
    for _ in range(rng.randrange(2, 9)):
        typ = rng.choice(pool)
        # coarse times so ties (broken by event_id) happen
        tt = t + rng.randrange(-2, 30) * 4 * H
        f = {"payment": {"method": rng.choice(["online", "offline"])},
             "result_returned": {"electronic_result": rng.random() < .5},
             "rated": {"rating": rng.randint(1, 5)},
             "apology_issued": {"new_due_at": tt + D},
             "transferred": {"to_unit_id": "U7"}}.get(typ, {})
        evs.append(ev(typ, tt, unit=rng.choice(["U1", "U5"]), case=case, **f))
    return evs


def test_arrival_order_does_not_matter():
    rng = random.Random(20250310)
    for i in range(150):
        evs = _random_case(rng, f"C{i}")
        now = T0 + rng.choice([5 * D, 40 * D, 60 * D])
        ref_state = state_of(*evs, case=f"C{i}")
        ref = case_outcomes(ref_state, now, RET, apology=RULE)
        ref_summary = case_summary(ref_state, now)
        ref_held = held_since_us(ref_state, now, RET)
        for _ in range(12):
            perm = evs[:]
            rng.shuffle(perm)
            s = CaseState.new(f"C{i}")
            for e in perm:
                s.add(e)
                s = CaseState.from_dict(json.loads(json.dumps(s.to_dict())))  # as the worker does
            assert case_outcomes(s, now, RET, apology=RULE) == ref  # identical, order included
            assert case_summary(s, now) == ref_summary
            assert held_since_us(s, now, RET) == ref_held


def test_the_open_entry_agrees_with_the_summary():
    """The open-case entry (clock-free) says what ``case_summary`` says at any clock: open or
    not, and overdue or not, after every event of random cases (open ones included)."""
    rng = random.Random(20261207)
    seen_open = seen_closed = seen_overdue = 0
    for i in range(200):
        s = CaseState.new(f"C{i}")
        for e in _random_case(rng, f"C{i}"):
            s.add(e)
            for now in (T0, T0 + 5 * D, FAR):
                _outcomes, entry = case_outcomes_and_open(s, now, RET, apology=RULE)
                summary = case_summary(s, now)
                assert (entry is not None) == (summary.status == "open")
                if entry is not None:
                    overdue = entry.overdue_after_us is not None and entry.overdue_after_us < now
                    assert overdue == summary.overdue, (entry, summary)
                    seen_overdue += overdue
                seen_open += entry is not None
                seen_closed += entry is None
    assert seen_open and seen_closed and seen_overdue


def test_all_permutations_of_a_small_case():
    evs = [received(due=T0 + D), ev("supplement_requested", T0 + H), ev("supplement_received", T0 + H),
           ev("payment", T0 + H, method="online"), ev("resolved", T0 + D + H),
           ev("apology_issued", T0 + D + H, new_due_at=T0 + 2 * D)]
    ref = outs(*evs)
    for perm in itertools.permutations(evs):
        assert outs(*perm) == ref


# --------------------------------------------------------------------------- state mechanics


def test_add_is_idempotent_per_event_id():
    s = CaseState.new("C1")
    e = received()
    assert s.add(e) is True
    before = s.to_dict()
    assert s.add(e) is False
    assert s.add(ev("resolved", T0 + H, eid=e.event_id)) is False  # same id, other content
    assert s.to_dict() == before and e.event_id in s and e.event_id in s.event_ids and len(s) == 1


def test_add_rejects_event_of_another_case():
    with pytest.raises(ValueError):
        CaseState.new("C1").add(received(case="C2"))


def _json_only(x) -> bool:
    if x is None or isinstance(x, (str, bool, int)):
        return True
    if isinstance(x, list):
        return all(_json_only(v) for v in x)
    if isinstance(x, dict):
        return all(isinstance(k, str) and _json_only(v) for k, v in x.items())
    return False


def test_to_dict_round_trip_is_json_only():
    s = state_of(received(channel="online", mode="partial", vneid_authenticated=True),
                 ev("payment", T0 + H, method="online", amount_vnd=7), ev("rated", T0 + 2 * H, rating=4),
                 ev("feedback_received", T0, due_at=T0 + D), ev("result_returned", T0 + 3 * H),
                 ev("transferred", T0 + H, to_unit_id="U2"))
    d = s.to_dict()
    assert _json_only(d)
    back = CaseState.from_dict(json.loads(json.dumps(d)))
    assert back == s and back.to_dict() == d
    assert case_outcomes(back, FAR, RET, apology=RULE) == case_outcomes(s, FAR, RET, apology=RULE)


def test_summary_open_overdue_and_apology():
    due = T0 + D
    s = state_of(received(due=due, channel="online", mode="full"))
    assert case_summary(s, due).overdue is False  # effective due == T: not yet overdue
    summ = case_summary(s, due + 1)
    assert summ.overdue and summ.status == "open" and summ.unit == "U1" and summ.sector == "dat_dai"
    assert summ.channel == "online" and summ.procedure_code == "P1" and summ.received_at_us == T0
    assert summ.on_time is None and not summ.has_apology and summ.event_count == 1
    s.add(ev("apology_issued", due + 2, new_due_at=due + D))
    assert case_summary(s, due + 3).has_apology
    s.add(ev("resolved", due + 5))
    summ = case_summary(s, FAR)
    assert summ.status == "finished" and summ.on_time is False and summ.early is False and not summ.overdue
    assert summ.has_apology and summ.finished_at_us == due + 5


def test_summary_feedback_answered():
    s = state_of(ev("feedback_received", T0, case="F", due_at=T0 + D), ev("feedback_answered", T0 + H, case="F"),
                 case="F")
    summ = case_summary(s, FAR)
    assert summ.status == "feedback_answered" and summ.on_time is True and summ.finished_at_us == T0 + H


# --------------------------------------------------------------------------- diff


def test_diff_outcomes_is_a_multiset_difference():
    a = Outcome("satisfaction", "U1", "x", 1, True)
    b = Outcome("satisfaction", "U1", "x", 2, False)
    c = Outcome("online_payment", "U1", "x", 3, True)
    assert diff_outcomes([a, b], [b, a]) == []
    assert diff_outcomes([a, a, b], [a, c, c]) == [(a, -1), (b, -1), (c, 1), (c, 1)]
    assert diff_outcomes([], [b, a]) == [(a, 1), (b, 1)]
    assert diff_outcomes(iter([a]), iter([])) == [(a, -1)]


def test_diff_outcomes_matches_counter_reference():
    from collections import Counter

    from pipeline.core.outcomes import make_outcome

    rng = random.Random(5)
    pool = [Outcome(i, u, "s", t, h) for i in ("a", "b") for u in ("U1", "U2") for t in (1, 2) for h in (False, True)]
    assert all(make_outcome(o.indicator, o.unit, o.sector, o.time_us, o.hit) == o for o in pool)
    for _ in range(500):
        old = [rng.choice(pool) for _ in range(rng.randrange(0, 8))]
        new = old[:] if rng.random() < 0.5 else []
        new += [rng.choice(pool) for _ in range(rng.randrange(0, 4))]
        rng.shuffle(new) if rng.random() < 0.3 else None
        got = diff_outcomes(old, new)
        want = [(o, -1) for o in sorted((Counter(old) - Counter(new)).elements())]
        want += [(o, 1) for o in sorted((Counter(new) - Counter(old)).elements())]
        assert got == want
