"""The feed layer without a broker: scenario, lifecycles, incidents, replay/simulate plumbing."""

from __future__ import annotations

import json
import random
from collections import Counter
from dataclasses import replace
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest

from pipeline.config import Settings, UserError
from pipeline.contract.events import parse_time
from pipeline.contract.localtime import LOCAL_TZ
from pipeline.feed import replay as replay_module
from pipeline.feed import simulate as simulate_module
from pipeline.feed.lifecycle import (
    FALLBACK_UNITS,
    CompressedClock,
    Incident,
    LifecycleGenerator,
    WorkingClock,
    active_unit_ids,
)
from pipeline.contract.events import message_key
from pipeline.feed.replay import replay_file
from pipeline.feed.scenario import MALFORMED_KINDS, build_scenario
from pipeline.feed.simulate import parse_incident, run_simulation
from tests.oracle import expected_indicators

pytestmark = pytest.mark.filterwarnings(
    "ignore:read_text is deprecated:DeprecationWarning", "ignore:open_text is deprecated:DeprecationWarning"
)

VN = LOCAL_TZ
REPO = Path(__file__).resolve().parents[2]
UNITS = ("U_CENTRE", "U_A", "U_B", "U_C")


# the clock the contract checks generated events against: after every generated time
NOW_US = parse_time("2030-01-01T00:00:00Z")


@pytest.fixture(scope="module")
def scenario():
    return build_scenario(seed=7, cases=800, units=UNITS)


# --------------------------------------------------------------------------- scenario


def test_same_seed_same_bytes_other_seed_other_bytes():
    a = build_scenario(seed=3, cases=200, units=UNITS)
    b = build_scenario(seed=3, cases=200, units=UNITS)
    c = build_scenario(seed=4, cases=200, units=UNITS)
    assert a.lines == b.lines
    assert a.valid_events == b.valid_events
    assert a.lines != c.lines


def test_counts_add_up_and_every_kind_and_reason_appears(scenario):
    s = scenario
    assert s.expected_invalid == len(s.invalid_lines) == sum(s.expected_reasons.values())
    assert len(s.lines) == len(s.valid_events) + s.expected_duplicates + s.expected_invalid
    assert {kind for _, kind, _ in s.invalid_lines} == set(MALFORMED_KINDS)
    assert set(s.expected_reasons) == set(MALFORMED_KINDS.values())
    assert s.expected_duplicates > 0
    assert s.cases > 700 and s.feedbacks > 10
    ids = [e["event_id"] for e in s.valid_events]
    assert len(ids) == len(set(ids))
    # exactly the invalid lines are listed as such
    assert all(0 <= i < len(s.lines) for i, _, _ in s.invalid_lines)
    assert any(len(s.lines[i]) > 65536 for i, kind, _ in s.invalid_lines if kind == "too_large")


def test_lines_agree_with_the_contract(scenario):
    from pipeline.contract.events import InvalidEvent, parse_event

    invalid = {index: reason for index, _, reason in scenario.invalid_lines}
    now = NOW_US
    for index, line in enumerate(scenario.lines):
        key = message_key(line)
        try:
            parse_event(line, key=key, now_us=now)
            got = None
        except InvalidEvent as exc:
            got = exc.reason
        assert got == invalid.get(index), (index, line[:300])


def test_first_line_per_event_id_is_the_accepted_one(scenario):
    invalid = {index for index, _, _ in scenario.invalid_lines}
    first: dict[str, dict] = {}
    variants = 0
    for index, line in enumerate(scenario.lines):
        if index in invalid:
            continue
        event = json.loads(line)
        if event["event_id"] in first:
            variants += event != first[event["event_id"]]
        else:
            first[event["event_id"]] = event
    assert list(first.values()) == scenario.valid_events
    assert variants > 0  # some duplicates differ in content
    assert scenario.expected_duplicates > variants  # and most are exact copies


def test_scenario_stays_in_its_period_and_has_a_clock(scenario):
    times = [datetime.fromisoformat(e["occurred_at"]) for e in scenario.valid_events]
    assert scenario.start == datetime(2025, 1, 1, tzinfo=VN)
    assert scenario.end == datetime(2025, 7, 1, tzinfo=VN)
    assert all(scenario.start <= t < scenario.end for t in times)
    assert scenario.final_time == max(times)
    assert scenario.final_time > scenario.end - timedelta(days=3)


def test_out_of_order_features(scenario):
    s = scenario
    index_of = {json.loads(line)["event_id"]: i for i, line in enumerate(s.lines)
                if i not in {j for j, _, _ in s.invalid_lines}}
    events = {e["event_id"]: e for e in s.valid_events}
    by_case: dict[str, list[dict]] = {}
    for e in s.valid_events:
        by_case.setdefault(e["case_id"], []).append(e)
    when = lambda e: datetime.fromisoformat(e["occurred_at"])  # noqa: E731
    # late receiveds: sent after a line more than 35 days younger than all their case's other events
    assert len(s.late_received_case_ids) >= 2
    for case_id in s.late_received_case_ids:
        rec = next(e for e in by_case[case_id] if e["event_type"] == "received")
        others = [e for e in by_case[case_id] if e["event_type"] != "received"]
        newest_other = max(when(e) for e in others)
        clock_before = max(when(events[eid]) for eid, i in index_of.items() if i < index_of[rec["event_id"]])
        assert clock_before - newest_other > timedelta(days=35)
        assert all(index_of[e["event_id"]] < index_of[rec["event_id"]] for e in others)
    # rated before received
    for case_id in s.rated_first_case_ids:
        rec = next(e for e in by_case[case_id] if e["event_type"] == "received")
        rated = next(e for e in by_case[case_id] if e["event_type"] == "rated")
        assert index_of[rated["event_id"]] < index_of[rec["event_id"]] and when(rated) > when(rec)
    # orphans: held-type events, no received
    assert s.orphan_case_ids
    for case_id in s.orphan_case_ids:
        kinds = {e["event_type"] for e in by_case[case_id]}
        assert "received" not in kinds and kinds & {"payment", "rated", "result_returned"}
    # and plenty of ordinary disorder
    inversions = sum(1 for a, b in zip(s.valid_events, s.valid_events[1:]) if when(b) < when(a))
    assert inversions > len(s.valid_events) // 5


def test_scenario_exercises_every_indicator_and_rule(scenario):
    r = expected_indicators(scenario.valid_events, at=scenario.final_time, windows=("ytd",))
    indicators = {key[0] for key in r}
    assert len(indicators) == 13  # the twelve of the plan and on_time_766
    assert any(key[2] == "unknown" for key in r)  # held events attributed late
    for indicator in indicators:
        num, den = r[(indicator, "all", "all", "ytd")]
        assert 0 < den and num < den or indicator == "feedback_on_time", indicator
    types = Counter(e["event_type"] for e in scenario.valid_events)
    assert all(types[t] > 0 for t in (
        "received", "rejected", "transferred", "supplement_requested", "supplement_received", "payment",
        "resolved", "result_returned", "stopped", "withdrawn", "apology_issued", "rated",
        "feedback_received", "feedback_answered"))


def test_scenario_write(tmp_path):
    s = build_scenario(seed=1, cases=50, units=UNITS)
    path = s.write(tmp_path / "s.jsonl")
    assert path.read_bytes().split(b"\n")[:-1] == s.lines


def test_default_scenario_uses_units_in_force_at_each_event():
    from pipeline.store.units import load_registry

    registry = load_registry(REPO / "deploy" / "units.csv")
    s = build_scenario(seed=2, cases=300)  # January to June 2025: Bắc Giang's units
    assert all(registry.valid_at(e["unit_id"], parse_time(e["occurred_at"])) for e in s.valid_events)
    units = {e["unit_id"] for e in s.valid_events}
    assert "BG_TTPVHCC" in units and any(u.startswith("BG_H_") for u in units)


# --------------------------------------------------------------------------- lifecycles


@pytest.mark.parametrize("clock", [WorkingClock(), CompressedClock(20.0)], ids=["working", "compressed"])
def test_generated_events_pass_the_contract(clock):
    from pipeline.contract.events import parse_event

    rng = random.Random(5)
    gen = LifecycleGenerator(rng, UNITS, clock=clock)
    start = datetime(2025, 2, 3, 8, 0, tzinfo=VN)
    now = NOW_US
    ids, count = set(), 0
    for n in range(600):
        t = start + timedelta(minutes=17 * n)
        events = gen.case(f"C{n}", t) if n % 10 else gen.feedback(f"F{n}", t)
        assert events
        kinds = [e["event_type"] for e in events]
        # first the receipt, unless the dossier was turned away at the desk (then maybe paid online first)
        assert kinds[0] in ("received", "rejected", "feedback_received") or (
            kinds[0] == "payment" and "rejected" in kinds and "received" not in kinds
        ), kinds
        times = [datetime.fromisoformat(e["occurred_at"]) for e in events]
        assert times == sorted(times)
        for event in events:
            assert event["occurred_at"].endswith("+07:00")
            line = json.dumps(event).encode()
            parsed = parse_event(line, key=event["case_id"].encode(), now_us=now)
            assert parsed.event_type == event["event_type"]
            ids.add(event["event_id"])
            count += 1
        if isinstance(clock, WorkingClock):  # office hours: 07:30-11:30, 13:00-17:00, working days
            for t in times:
                local = t.astimezone(VN)
                hour = local.hour + local.minute / 60 + local.second / 3600
                assert clock.calendar.is_working_day(local.date()), local
                assert 7.5 <= hour <= 11.5 or 13 <= hour <= 17, local
        else:  # the whole life of a case spans minutes
            assert times[-1] - times[0] < timedelta(minutes=10)
    assert len(ids) == count


def test_generator_is_deterministic():
    def draw():
        gen = LifecycleGenerator(random.Random(9), UNITS)
        t = datetime(2025, 2, 3, 9, 0, tzinfo=VN)
        return [gen.case(f"C{n}", t + timedelta(hours=n)) for n in range(50)]

    assert draw() == draw()


def test_working_clock_skips_nights_weekends_lunch_and_holidays():
    clock = WorkingClock()
    friday_4pm = datetime(2025, 3, 7, 16, 0, tzinfo=VN)
    assert clock.after(friday_4pm, 2 * 3600) == datetime(2025, 3, 10, 8, 30, tzinfo=VN)
    assert clock.due(friday_4pm, 1, early=False) == datetime(2025, 3, 10, 16, 0, tzinfo=VN)
    assert clock.align(datetime(2025, 3, 8, 10, 0, tzinfo=VN)) == datetime(2025, 3, 10, 7, 30, tzinfo=VN)
    # the lunch break: 11:00 + 1 working hour = 13:30; 12:00 aligns to 13:00
    assert clock.after(datetime(2025, 3, 10, 11, 0, tzinfo=VN), 3600) == datetime(2025, 3, 10, 13, 30, tzinfo=VN)
    assert clock.align(datetime(2025, 3, 10, 12, 0, tzinfo=VN)) == datetime(2025, 3, 10, 13, 0, tzinfo=VN)
    assert clock.back(datetime(2025, 3, 10, 12, 0, tzinfo=VN)) == datetime(2025, 3, 10, 11, 30, tzinfo=VN)
    assert clock.day_offset(datetime(2025, 3, 10, 14, 0, tzinfo=VN)) == 5 * 3600
    # Tết 2025: Friday 24 January 16:00 + 2 h lands on Monday 3 February
    assert clock.after(datetime(2025, 1, 24, 16, 0, tzinfo=VN), 2 * 3600) == datetime(2025, 2, 3, 8, 30, tzinfo=VN)
    # 30/4-1/5: Saturday 26 April is worked, Friday 2 May is not
    assert clock.align(datetime(2025, 4, 26, 9, 0, tzinfo=VN)) == datetime(2025, 4, 26, 9, 0, tzinfo=VN)
    assert clock.align(datetime(2025, 4, 29, 18, 0, tzinfo=VN)) == datetime(2025, 5, 5, 7, 30, tzinfo=VN)
    # a 5-working-day due from Monday 25 August 2025 skips Quốc khánh (1-2 September)
    assert clock.due(datetime(2025, 8, 25, 9, 0, tzinfo=VN), 5, early=False) == datetime(2025, 9, 3, 9, 0, tzinfo=VN)


def test_holidays_file_and_working_days():
    from pipeline.calendar_file import load_calendar
    from pipeline.feed.calendar import WORKDAY_SECONDS

    cal = load_calendar()
    assert WORKDAY_SECONDS == 8 * 3600
    tet = [date(2025, 1, 25) + timedelta(days=n) for n in range(9)]  # 25/01-02/02/2025
    assert not any(cal.is_working_day(d) for d in tet)
    assert cal.is_working_day(date(2025, 2, 3)) and cal.is_working_day(date(2025, 4, 26))
    for off in ("2025-01-01", "2025-04-07", "2025-04-30", "2025-05-01", "2025-05-02", "2025-09-01", "2025-09-02"):
        assert not cal.is_working_day(date.fromisoformat(off)), off
    days = cal.working_days(date(2025, 1, 1), date(2026, 1, 1))
    assert len(days) == 250  # 261 weekdays - 12 weekdays off + Saturday 26 April
    # 2026 as announced: Tết Dương lịch 1-4/01 (02/01 swapped with Saturday 10/01), Tết 14-22/02,
    # Giỗ Tổ on Sunday 26/04 -> Monday 27/04 off, 30/04-01/05, Quốc khánh 29/08-02/09 (31/08 swapped with 22/08)
    for off in ("2026-01-01", "2026-01-02", "2026-02-16", "2026-02-20", "2026-04-27", "2026-04-30", "2026-05-01",
                "2026-08-31", "2026-09-01", "2026-09-02"):
        assert not cal.is_working_day(date.fromisoformat(off)), off
    assert cal.is_working_day(date(2026, 1, 10)) and cal.is_working_day(date(2026, 8, 22))
    assert cal.is_working_day(date(2026, 2, 23)) and cal.is_working_day(date(2026, 9, 3))
    assert len(cal.working_days(date(2026, 1, 1), date(2027, 1, 1))) == 261 - 13 + 2
    assert cal.covers(2025) and cal.covers(2026) and not cal.covers(2027)


def test_a_year_without_holidays_is_refused_by_the_simulator_and_warned_once_elsewhere(tmp_path, caplog):
    import logging

    from pipeline.contract import localtime
    from pipeline.calendar_file import load_calendar
    from pipeline.feed.simulate import write_history

    with pytest.raises(UserError) as info:
        write_history(Settings(), 2027, str(tmp_path / "h.jsonl"), scale=0.01, days=3, progress=False)
    assert "no public holidays for 2027" in str(info.value) and "holidays.csv" in str(info.value)
    assert "\n" not in str(info.value) and not (tmp_path / "h.jsonl").exists()
    cal = load_calendar()
    localtime._WARNED_YEARS.discard(2027)
    with caplog.at_level(logging.WARNING, logger="pipeline.calendar"):
        assert cal.is_working_day(date(2027, 1, 1)) and not cal.is_working_day(date(2027, 1, 2))
        assert cal.is_working_day(date(2027, 1, 4))
        assert not cal.is_working_day(date(2026, 1, 1))
    warned = [r.getMessage() for r in caplog.records if r.name == "pipeline.calendar"]
    assert len(warned) == 1 and "no public holidays for 2027" in warned[0], warned


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("date,kind,name_vi\n2025-01-04,holiday,x\n", "weekend day"),
        ("date,kind,name_vi\n2025-01-06,working_day,x\n", "is a weekday"),
        ("date,kind,name_vi\n2025-01-06,feast,x\n", "holiday or working_day"),
        ("date,kind,name_vi\n06/01/2025,holiday,x\n", "YYYY-MM-DD"),
        ("date,kind,name_vi\n2025-01-06,holiday,x\n2025-01-06,holiday,y\n", "listed twice"),
        ("day,kind\n", "header must be"),
    ],
)
def test_bad_holidays_file(tmp_path, text, fragment):
    from pipeline.calendar_file import load_calendar

    path = tmp_path / "h.csv"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(UserError) as info:
        load_calendar(path)
    assert fragment in str(info.value) and "\n" not in str(info.value)


def _ratios(events, indicator):
    r = expected_indicators(events, at=max(datetime.fromisoformat(e["occurred_at"]) for e in events),
                            windows=("ytd",), hold_retention_days=3650)
    return {unit: num / den for (ind, unit, sector, _), (num, den) in r.items()
            if ind == indicator and sector == "all" and unit != "all" and den}


@pytest.mark.parametrize(
    "indicator, level, at_most, others_at_least",
    [
        ("satisfaction", 0.2, 0.35, 0.8),
        ("on_time", 0.5, 0.65, 0.85),
        ("early", 0.1, 0.25, 0.5),
        ("online_payment", 0.2, 0.35, 0.6),
        ("full_online", 0.05, 0.12, 0.2),
        ("remote", 0.1, 0.2, 0.4),
        ("e_result", 0.2, 0.35, 0.7),
        ("digitized", 0.2, 0.35, 0.85),
        ("data_reuse", 0.2, 0.35, 0.6),
        ("vneid_auth", 0.2, 0.35, 0.75),
        ("apology_coverage", 0.0, 0.25, 0.45),
        ("feedback_on_time", 0.2, 0.4, 0.75),
    ],
)
def test_incident_drives_one_units_indicator_down(indicator, level, at_most, others_at_least):
    rng = random.Random(11)
    gen = LifecycleGenerator(rng, UNITS, incidents=[Incident("U_B", indicator, level)])
    start = datetime(2025, 1, 6, 8, 0, tzinfo=VN)
    events = []
    for n in range(2000):
        unit = UNITS[n % len(UNITS)]
        t = start + timedelta(minutes=30 * n)
        if indicator == "feedback_on_time":
            events += gen.feedback(f"F{n}", t, unit=unit)
        else:
            events += gen.case(f"C{n}", t, unit=unit)
    ratios = _ratios(events, indicator)
    assert ratios["U_B"] <= at_most, ratios
    assert all(ratio >= others_at_least for unit, ratio in ratios.items() if unit != "U_B"), ratios


# --------------------------------------------------------------------------- units


def test_active_unit_ids_reads_currently_valid_rows(tmp_path):
    path = tmp_path / "units.csv"
    path.write_text(
        "# the province and its units\n"
        "unit_id,name_vi,kind,parent_id,valid_from,valid_to,successor\n"
        "TINH,Tỉnh,province,,2020-01-01,,\n"
        "TTPVHCC,Trung tâm,service_centre,TINH,2025-07-01,,\n"
        "OLD,Cũ,district,TINH,2020-01-01,2025-06-30,TTPVHCC\n"
        "FUTURE,Mới,commune,TINH,2031-01-01,,\n"
        "SO_A,\"Sở A, B\",department,TINH,2020-01-01,,\n",
        encoding="utf-8",
    )
    assert active_unit_ids(path, today=date(2026, 1, 1)) == ["TTPVHCC", "SO_A"]
    assert active_unit_ids(path, today=date(2025, 6, 30)) == ["OLD", "SO_A"]
    assert active_unit_ids(tmp_path / "missing.csv") == list(FALLBACK_UNITS)
    assert active_unit_ids(REPO / "deploy" / "units.csv", today=date(2025, 7, 1))[0] == "TTPVHCC"


# --------------------------------------------------------------------------- incidents


def test_parse_incident():
    assert parse_incident("unit=SO_TP,indicator=satisfaction,level=0.2") == Incident("SO_TP", "satisfaction", 0.2)
    assert parse_incident(" level=1 , indicator=on_time, unit=X ") == Incident("X", "on_time", 1.0)


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("unit=X,indicator=on_time", "missing level"),
        ("unit=X,indicator=speed,level=0.5", "unknown indicator 'speed'"),
        ("unit=X,indicator=on_time,level=1.5", "level must be in [0, 1]"),
        ("unit=X,indicator=on_time,level=-0.1", "level must be in [0, 1]"),
        ("unit=X,indicator=on_time,level=high", "level must be a number"),
        ("unit=X,indicator=on_time,level=nan", "level must be in [0, 1]"),
        ("unit=X,indicator=on_time,level=0.5,colour=red", "unknown key 'colour'"),
        ("unit=X,unit=Y,indicator=on_time,level=0.5", "unit given twice"),
        ("satisfaction", "not key=value"),
        ("", "missing unit, indicator, level"),
        ("unit=all,indicator=on_time,level=0.5", "not 'all'"),
    ],
)
def test_parse_incident_errors_are_one_line(text, fragment):
    with pytest.raises(UserError) as info:
        parse_incident(text)
    message = str(info.value)
    assert fragment in message and "\n" not in message


# --------------------------------------------------------------------------- replay & simulate plumbing


class FakeFuture:
    def __init__(self, error=None):
        self.error = error

    def add_callback(self, fn):
        if self.error is None:
            fn(None)
        return self

    def add_errback(self, fn):
        if self.error is not None:
            fn(self.error)
        return self


class FakeProducer:
    def __init__(self, fail_at: int | None = None):
        self.sent: list[tuple[str, bytes | None, bytes]] = []
        self.fail_at = fail_at
        self.flushed = self.closed = False

    def send(self, topic, value=None, key=None):
        self.sent.append((topic, key, value))
        if self.fail_at is not None and len(self.sent) >= self.fail_at:
            from kafka.errors import KafkaTimeoutError

            return FakeFuture(KafkaTimeoutError("boom"))
        return FakeFuture()

    def flush(self, timeout=None):
        self.flushed = True

    def close(self, timeout=None):
        self.closed = True


def test_message_key():
    assert message_key(b'{"case_id":"HS-1","x":1}') == b"HS-1"
    assert message_key('{"case_id":"Hồ sơ"}'.encode()) == "Hồ sơ".encode()
    assert message_key(b'{"case_id":42}') is None
    assert message_key(b'[{"case_id":"A"}]') is None
    assert message_key(b'{"case_id":"A"') is None
    assert message_key(b'{"case_id":"\xff"}') is None
    assert message_key(b'{"case_id":"\\ud800"}') is None


def test_replay_sends_exact_bytes_with_keys(tmp_path, monkeypatch, capsys):
    fake = FakeProducer()
    monkeypatch.setattr(replay_module, "open_producer", lambda settings: fake)
    lines = [b'{"case_id":"A","v":1}', b"   ", b'{"case_id": "B"}\r', b"not json", b'{"case_id":"A","v":2}']
    path = tmp_path / "in.jsonl"
    path.write_bytes(b"\n".join(lines[:2]) + b"\n\n\n" + b"\n".join(lines[2:]))  # no final newline
    settings = replace(Settings(), topic="t.events")
    assert replay_file(settings, path) == 5
    assert fake.sent == [
        ("t.events", b"A", lines[0]),
        ("t.events", None, b"   "),
        ("t.events", b"B", lines[2]),
        ("t.events", None, b"not json"),
        ("t.events", b"A", lines[4]),
    ]
    assert fake.flushed and fake.closed
    err = capsys.readouterr().err
    assert "5/5" in err and "100%" in err and "all acknowledged" in err


def test_replay_rate_is_smooth(tmp_path, monkeypatch):
    """Message i leaves at start + i / rate: evenly spaced, not bursts per second (an
    injected clock that only moves when the replay sleeps)."""
    now = [100.0]
    sent_at: list[float] = []
    fake = FakeProducer()
    original_send = fake.send

    def send(topic, value=None, key=None):
        sent_at.append(now[0])
        return original_send(topic, value=value, key=key)

    fake.send = send
    monkeypatch.setattr(replay_module, "open_producer", lambda settings: fake)
    path = tmp_path / "in.jsonl"
    path.write_bytes(b"".join(b'{"case_id":"C%d"}\n' % i for i in range(21)))

    def sleep(seconds: float) -> None:
        now[0] += seconds

    replay_file(Settings(), path, rate=50.0, progress=False, clock=lambda: now[0], sleep=sleep)
    assert sent_at == pytest.approx([100.0 + i / 50.0 for i in range(21)])


def test_replay_errors(tmp_path, monkeypatch):
    with pytest.raises(UserError, match="no such file"):
        replay_file(Settings(), tmp_path / "missing.jsonl")
    with pytest.raises(UserError, match="not a file"):
        replay_file(Settings(), tmp_path)
    path = tmp_path / "in.jsonl"
    path.write_bytes(b'{"case_id":"A"}\n' * 3)
    monkeypatch.setattr(replay_module, "open_producer", lambda settings: FakeProducer(fail_at=2))
    with pytest.raises(UserError, match="did not accept"):
        replay_file(Settings(), path, progress=False)


class FakeClock:
    """A monotonic clock that moves only when the code under test sleeps."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


START = datetime(2025, 9, 3, 9, 0, tzinfo=LOCAL_TZ)


def _us(t: datetime) -> int:
    return round(t.timestamp() * 1_000_000)


def test_simulation_sends_live_valid_events_at_the_rate(monkeypatch, capsys):
    from pipeline.contract.events import parse_event

    fake = FakeProducer()
    monkeypatch.setattr(simulate_module, "open_producer", lambda settings: fake)
    settings = replace(Settings(), topic="sim.events")
    incident = Incident(active_unit_ids(settings.units_file)[1], "satisfaction", 0.0)
    clock, wall = FakeClock(100.0), lambda: START + timedelta(seconds=clock.now - 100.0)
    sent = run_simulation(settings, rate=200, duration=1.5, units=3, incidents=[incident], seed=1,
                          clock=clock, sleep=clock.sleep, wall=wall)
    assert sent == len(fake.sent)
    assert sent == 300  # rate x duration, message i at start + i / rate
    assert fake.flushed and fake.closed
    start_us, end_us = _us(START), _us(wall())
    cases = set()
    for topic, key, value in fake.sent:
        event = parse_event(value, key=key, now_us=end_us)
        assert topic == "sim.events"
        assert start_us - 1000 <= event.occurred_at_us <= end_us  # occurred_at ~ the clock, never ahead
        cases.add(event.case_id)
    assert len({json.loads(v)["unit_id"] for _, _, v in fake.sent}) <= 3
    assert len(cases) > 20
    kinds = Counter(json.loads(v)["event_type"] for _, _, v in fake.sent)
    assert kinds["received"] > 0 and len(kinds) >= 3
    assert "simulate: sent" in capsys.readouterr().err
    # ids are fresh on every run even with the same seed
    first_ids = {json.loads(v)["event_id"] for _, _, v in fake.sent}
    fake2 = FakeProducer()
    monkeypatch.setattr(simulate_module, "open_producer", lambda settings: fake2)
    clock = FakeClock(0.0)
    run_simulation(settings, rate=100, duration=0.3, units=3, incidents=[], seed=1, progress=False,
                   clock=clock, sleep=clock.sleep, wall=wall)
    assert not first_ids & {json.loads(v)["event_id"] for _, _, v in fake2.sent}


def test_simulation_rejects_incident_on_unused_unit(monkeypatch):
    monkeypatch.setattr(simulate_module, "open_producer", lambda settings: FakeProducer())
    with pytest.raises(UserError, match="not among the 2 simulated units"):
        run_simulation(Settings(), rate=10, duration=1, units=2,
                       incidents=[Incident("NOT_A_UNIT", "on_time", 0.1)], seed=1)
