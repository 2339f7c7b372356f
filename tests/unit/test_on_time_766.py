"""on_time_766 in the pure core (pipeline.core.cases.on_time_766_status) against the oracle.

The batch SQL is checked against the oracle in tests/integration/test_store.py."""

from __future__ import annotations

import random

import pytest

from pipeline.contract.events import CaseEvent, format_time
from pipeline.core.cases import LATE_ALWAYS, CaseState, on_time_766_status
from tests.oracle import dossier_outcomes, to_time

US = 1_000_000
H = 3600 * US
D = 24 * H
T0 = 1_754_000_000 * US  # 2025-07-31 local
RETENTION = to_time("2025-02-05T00:00:00+07:00") - to_time("2025-01-01T00:00:00+07:00")


def _case(events: list[tuple]) -> tuple[CaseState, list[dict]]:
    state = CaseState.new("C")
    records = []
    for n, (typ, t, fields) in enumerate(events):
        ev = CaseEvent(f"e{n:03d}", typ, "C", "X_KEP", t, "test", fields)
        state.add(ev)
        records.append(ev.to_record())
    return state, records


def _received(t: int, due: int) -> tuple:
    return ("received", t, dict(procedure_code="1.1", sector="ho_tich", channel="direct", due_at=due,
                                has_fee=False, digitized=True, reused_data=True, vneid_authenticated=False))


def _oracle_766(records: list[dict], now_us: int) -> list[tuple]:
    clock = to_time(format_time(now_us))
    return [(o[3], o[4]) for o in dossier_outcomes([r for r in records], clock, RETENTION) if o[0] == "on_time_766"]


def test_open_case_late_only_once_past_its_effective_due():
    state, _ = _case([_received(T0, T0 + 2 * D)])
    s = on_time_766_status(state)
    assert not s.finished and s.late_after_us == T0 + 2 * D
    assert s.hit_at(T0 + 2 * D) and not s.hit_at(T0 + 2 * D + 1)


def test_open_pause_moves_the_due_with_the_clock():
    state, _ = _case([_received(T0, T0 + 2 * D), ("supplement_requested", T0 + D, {})])
    s = on_time_766_status(state)
    assert s.late_after_us is None and s.effective_due_at(T0 + 30 * D) == T0 + 31 * D
    assert not s.late_at(T0 + 100 * D)
    late, _ = _case([_received(T0, T0 + 2 * D), ("supplement_requested", T0 + 3 * D, {})])
    assert on_time_766_status(late).late_after_us == LATE_ALWAYS  # paused after the due: stays late


def test_two_requests_make_an_open_case_late_and_rejected_or_unreceived_yield_nothing():
    state, _ = _case([_received(T0, T0 + 20 * D), ("supplement_requested", T0 + H, {}),
                      ("supplement_received", T0 + 2 * H, {}), ("supplement_requested", T0 + 3 * H, {})])
    assert on_time_766_status(state).late_at(T0 + 4 * H)
    rejected, _ = _case([_received(T0, T0 + D), ("rejected", T0 + H, {})])
    assert on_time_766_status(rejected) is None
    held, _ = _case([("payment", T0, {"method": "online", "amount_vnd": 1})])
    assert on_time_766_status(held) is None


def test_finished_case_is_its_on_time():
    state, _ = _case([_received(T0, T0 + D), ("resolved", T0 + 2 * D, {})])
    s = on_time_766_status(state)
    assert s.finished and s.finish_us == T0 + 2 * D and s.on_time is False and s.hit_at(T0 + 9 * D) is False
    with pytest.raises(ValueError):
        s.late_at(T0)


@pytest.mark.parametrize("seed", range(6))
def test_core_status_agrees_with_the_oracle_on_random_cases(seed):
    rnd = random.Random(seed)
    types = ["supplement_requested", "supplement_received", "supplement_requested", "supplement_received",
             "resolved", "result_returned", "withdrawn", "stopped", "apology_issued", "payment"]
    checked = 0
    for _ in range(300):
        events = [_received(T0 + rnd.randint(-2 * D, 2 * D), T0 + rnd.randint(-3 * D, 8 * D))]
        for _ in range(rnd.randint(0, 5)):
            typ = rnd.choice(types)
            fields = {"result_returned": {"electronic_result": True}, "apology_issued": {"new_due_at": T0},
                      "payment": {"method": "online", "amount_vnd": 1}}.get(typ, {})
            events.append((typ, T0 + rnd.randint(-D, 10 * D), fields))
        if rnd.random() < 0.5:  # mostly open cases: drop the finishes
            events = [e for e in events if e[0] not in ("resolved", "result_returned", "withdrawn", "stopped")]
        state, records = _case(events)
        last = max(e[1] for e in events)
        s = on_time_766_status(state)
        for now in (last, last + 1, last + rnd.randint(0, 12 * D), T0 + 9 * D):
            if now < last:
                continue
            expected = _oracle_766(records, now)
            got = [(to_time(format_time(s.finish_us if s.finished else now)), s.hit_at(now))]
            assert got == expected
            if not s.finished:
                threshold = s.late_after_us
                assert s.late_at(now) == (threshold is not None and now > threshold)
            checked += 1
    assert checked > 600
