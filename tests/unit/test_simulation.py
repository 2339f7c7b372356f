"""The simulator looks like the province: a year of history, the baseline, the structure in force."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from collections import Counter
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest

from pipeline.config import Settings
from pipeline.contract.events import parse_time
from pipeline.targets_file import load_targets
from pipeline.feed.lifecycle import Incident, LifecycleGenerator
from pipeline.feed.province import Province
from pipeline.feed.scenario import build_scenario
from pipeline.feed.simulate import write_history
from pipeline.store.units import load_registry, load_units
from tests.oracle import expected_indicators

REPO = Path(__file__).resolve().parents[2]
TARGETS = load_targets(REPO / "deploy" / "targets.toml")
VN = timezone(timedelta(hours=7))


def _events(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_bytes().splitlines()]


@pytest.fixture(scope="module")
def january(tmp_path_factory):
    path = tmp_path_factory.mktemp("history") / "jan.jsonl"
    result = write_history(Settings(), 2025, str(path), scale=0.1, days=31, seed=2025, progress=False)
    return result, _events(path)


def test_history_is_time_ordered_and_office_hours(january):
    result, events = january
    assert result.events == len(events) and result.dossiers > 3000
    times = [datetime.fromisoformat(e["occurred_at"]) for e in events]
    assert times == sorted(times)
    receipts = [t for e, t in zip(events, times) if e["event_type"] == "received"]
    assert all(t.date() not in (date(2025, 1, 1), date(2025, 1, 27), date(2025, 1, 31)) for t in receipts)
    assert all(t.weekday() < 5 for t in receipts)
    hours = Counter(t.hour for t in receipts)
    assert hours[12] == 0 and hours[7] > 0 and hours[16] > 0 and hours[17] == 0  # lunch break, 07:30-17:00


def test_baseline_month_meets_most_targets_for_most_units(january):
    """A generated month judged by the oracle: most units meet every target they have volume
    for, none misses more than two, and the province as a whole meets nearly all."""
    _, events = january
    at = "2025-01-31T23:59:59+07:00"
    figures = expected_indicators(events, at=at, windows=("mtd",))
    misses: dict[str, list[str]] = {}
    judged: Counter = Counter()
    for (indicator, unit, sector, _), (num, den) in figures.items():
        if unit == "all" or sector != "all" or den < TARGETS.min_volume:
            continue
        judged[unit] += 1
        misses.setdefault(unit, [])
        if TARGETS.below_target(indicator, sector, num, den):
            misses[unit].append(indicator)
    assert len(judged) >= 20  # the month has volume at most units
    clean = [u for u in misses if not misses[u]]
    assert len(clean) >= 0.6 * len(misses), misses
    # ~360 desks in January: a unit may have up to three weak spots (on_time_766 follows on_time)
    assert max(len(set(m) - {"on_time_766"}) for m in misses.values()) <= 3, misses
    assert 0 < sum(len(m) for m in misses.values())  # a few realistic weak spots
    province_misses = [ind for (ind, u, s, _), (n, d) in figures.items()
                       if u == "all" and s == "all" and TARGETS.below_target(ind, s, n, d)]
    # the province misses only "= 100%" targets, which one weak unit (of ~360 in January) suffices to miss
    assert all(TARGETS.target_for(ind, "all")[0] == "=" for ind in province_misses), province_misses


def test_volumes_follow_population_and_sectors_follow_the_kind_of_unit(january):
    _, events = january
    received = [e for e in events if e["event_type"] == "received"]
    by_unit = Counter(e["unit_id"] for e in received)
    # Bắc Giang city (371,151 residents) receives more than a lowland district, which receives more than a
    # mountain one (estimated populations: Hiệp Hòa has no published figure, Sơn Động's communes have)
    assert by_unit["BG_TP_BAC_GIANG"] > by_unit["BG_H_HIEP_HOA"] > 1.5 * by_unit["BG_H_SON_DONG"] > 0
    assert by_unit["BG_H_SON_DONG"] > by_unit["BG_SO_TTTT"]
    districts = Counter(e["sector"] for e in received if e["unit_id"].startswith(("BG_H_", "BG_TP_", "BG_TX_")))
    assert {"dat_dai", "chung_thuc", "ho_tich"} <= {s for s, _ in districts.most_common(4)}
    # the communes' desks of before 1 July: civil status and certification above all
    communes = Counter(e["sector"] for e in received if e["unit_id"].startswith(("BG_X_", "BN_P_", "BN_X_")))
    assert {s for s, _ in communes.most_common(2)} == {"chung_thuc", "ho_tich"}
    assert {e["sector"] for e in received if e["unit_id"] == "BG_SO_YT"} == {"y_te"}
    # about a million dossiers a year at scale 1 (the registry in force on 2025-07-01)
    province = Province(load_units(REPO / "deploy" / "units.csv"))
    per_year = province.daily_total(date(2025, 7, 1)) * 250
    assert 0.7e6 < per_year < 1.3e6


def test_the_simulator_exercises_the_rules_sectors_apologies_online_shares(january):
    """Land, construction and investment are later and less satisfied (judged against their own
    85 % target, not the general 95 %); apologies mostly at least a working day before the due,
    a few late; online filing plausible: high at the departments, lower at the local desks."""
    from pipeline.feed.lifecycle import WORKDAY_SECONDS, WorkingClock

    _, events = january
    figures = expected_indicators(events, at="2025-01-31T23:59:59+07:00", windows=("mtd",))

    def ratio(indicator, *sectors, unit="all", min_den=100):
        num = sum(figures[(indicator, unit, s, "mtd")][0] for s in sectors)
        den = sum(figures[(indicator, unit, s, "mtd")][1] for s in sectors)
        assert den >= min_den, (indicator, sectors, den)
        return num / den

    special = ("dat_dai", "xay_dung", "dau_tu")
    assert all(TARGETS.target_for("satisfaction", s)[1] == 0.85 for s in special)
    # between the sectors' own 85 % and the general 95 %: the override decides; the usual sectors above
    assert 0.85 <= ratio("satisfaction", *special) < min(0.95, ratio("satisfaction", "ho_tich", "chung_thuc") - 0.02)
    assert all(ratio("satisfaction", s, min_den=20) >= 0.85 for s in special)
    assert ratio("on_time", *special) < ratio("on_time", "ho_tich", "chung_thuc")
    # apologies of late dossiers (no supplement pause, so the due is the received's due_at)
    clock = WorkingClock()
    by_case: dict[str, list[dict]] = {}
    for e in events:
        by_case.setdefault(e["case_id"], []).append(e)
    in_time = late = 0
    for case in by_case.values():
        types = {e["event_type"] for e in case}
        received = next((e for e in case if e["event_type"] == "received"), None)
        apology = next((e for e in case if e["event_type"] == "apology_issued"), None)
        if received is None or apology is None or "supplement_requested" in types:
            continue
        due = datetime.fromisoformat(received["due_at"])
        if clock.after(datetime.fromisoformat(apology["occurred_at"]), WORKDAY_SECONDS) <= due:
            in_time += 1
        else:
            late += 1
    assert in_time >= 30 and late <= 0.1 * (in_time + late), (in_time, late)
    # a unit that misses its apology target: some apologies late (after the due), some only after the finish
    import random

    gen = LifecycleGenerator(random.Random(3), ["U"], incidents=[Incident("U", "apology_coverage", 0.0)])
    after_due = after_finish = 0
    for n in range(3000):
        case = gen.case(f"C{n}", datetime(2025, 3, 3, 8, 0, tzinfo=VN) + timedelta(hours=n))
        received = next((e for e in case if e["event_type"] == "received"), None)
        apology = next((e for e in case if e["event_type"] == "apology_issued"), None)
        finish = next((e for e in case if e["event_type"] == "resolved"), None)
        if received is None or apology is None or finish is None:
            continue
        t_apology = datetime.fromisoformat(apology["occurred_at"])
        after_due += datetime.fromisoformat(received["due_at"]) < t_apology < datetime.fromisoformat(finish["occurred_at"])
        after_finish += t_apology > datetime.fromisoformat(finish["occurred_at"])
    assert after_due > 0 and after_finish > 0
    # online: the province between 75 % and 95 %; the departments above the communes' desks
    assert 0.75 < ratio("remote", "all") < 0.95
    received = [e for e in events if e["event_type"] == "received"]
    dept = [e["channel"] == "online" for e in received if "_SO_" in e["unit_id"]]
    local = [e["channel"] == "online" for e in received if e["unit_id"].startswith(("BG_X_", "BN_X_", "BG_P_", "BN_P_"))]
    assert sum(dept) / len(dept) > sum(local) / len(local) + 0.03 and sum(local) / len(local) > 0.7


def test_history_across_1_july_uses_the_units_in_force(tmp_path):
    path = tmp_path / "h.jsonl"
    write_history(Settings(), 2025, str(path), scale=0.004, days=200, seed=7, progress=False)
    events = _events(path)
    registry = load_registry(REPO / "deploy" / "units.csv")
    assert all(registry.valid_at(e["unit_id"], parse_time(e["occurred_at"])) for e in events)
    assert all(registry.valid_at(e["to_unit_id"], parse_time(e["occurred_at"])) for e in events if "to_unit_id" in e)
    june = {e["unit_id"] for e in events if e["occurred_at"].startswith("2025-06") and e["event_type"] == "received"}
    july = {e["unit_id"] for e in events if e["occurred_at"].startswith("2025-07") and e["event_type"] == "received"}
    assert june and all(u.startswith(("BG_", "BN_")) for u in june)
    assert any(u.startswith("BN_") for u in june) and any(u.startswith(("BG_X_", "BG_P_", "BG_TT_")) for u in june)
    assert july and not any(u.startswith(("BG_", "BN_")) for u in july) and any(u.startswith(("P_", "X_")) for u in july)
    # dossiers received in June and still worked in July: their later events name the successor
    assert any(e["occurred_at"].startswith("2025-07") and e["unit_id"] in ("TTPVHCC", "SO_TC", "SO_XD")
               and e["case_id"] in {x["case_id"] for x in events if x["occurred_at"].startswith("2025-06")}
               for e in events)


def test_a_2025_history_attributes_no_dossier_of_a_real_unit_to_unknown(tmp_path):
    """January to June 2025: every desk of the two former provinces is in the registry, so the
    streaming label of every event is its own unit (none becomes ``unknown``)."""
    path = tmp_path / "h1.jsonl"
    write_history(Settings(), 2025, str(path), scale=0.02, days=181, seed=11, progress=False)
    events = _events(path)
    registry = load_registry(REPO / "deploy" / "units.csv")
    labels = Counter(registry.label(e["unit_id"], parse_time(e["occurred_at"])) for e in events)
    assert labels["unknown"] == 0 and sum(labels.values()) == len(events) > 10_000
    owners = {e["unit_id"] for e in events if e["event_type"] == "received"}
    units = load_units(REPO / "deploy" / "units.csv")
    h1 = {u.unit_id for u in units if u.kind != "province" and u.valid_from < date(2025, 7, 1)}
    # the dossiers reach nearly every desk of the half year: districts, communes, departments of both
    assert len(owners & h1) > 0.9 * len(h1)
    for prefix in ("BG_X_", "BG_P_", "BG_TT_", "BN_X_", "BN_P_", "BN_TT_", "BN_H_", "BN_TX_", "BN_TP_", "BN_SO_"):
        assert any(u.startswith(prefix) for u in owners), prefix


def test_scenario_across_1_july_attributes_every_dossier_to_a_unit_in_force():
    s = build_scenario(seed=4, cases=600, start="2025-06-01", months=2)
    registry = load_registry(REPO / "deploy" / "units.csv")
    assert all(registry.valid_at(e["unit_id"], parse_time(e["occurred_at"])) for e in s.valid_events)
    owners = {e["unit_id"] for e in s.valid_events if e["event_type"] == "received"}
    assert any(u.startswith("BG_") for u in owners) and any(u.startswith(("P_", "X_")) for u in owners)


def test_incident_pushes_one_unit_below_its_target(tmp_path):
    path = tmp_path / "h.jsonl"
    write_history(Settings(), 2025, str(path), scale=0.1, days=31, seed=2025, progress=False,
                  incidents=[Incident("BG_TP_BAC_GIANG", "on_time", 0.5)])
    figures = expected_indicators(_events(path), at="2025-01-31T23:59:59+07:00", windows=("mtd",))
    num, den = figures[("on_time", "BG_TP_BAC_GIANG", "all", "mtd")]
    # half the dossiers are meant to be late; many of those are still open on 31 January
    assert den >= 100 and num / den < 0.8 and TARGETS.below_target("on_time", "all", num, den)
    others = [n / d for (ind, u, s, _), (n, d) in figures.items()
              if ind == "on_time" and s == "all" and u not in ("all", "BG_TP_BAC_GIANG") and d >= 100]
    assert others and min(others) > 0.85


def test_history_cli(tmp_path):
    out = tmp_path / "h.jsonl"
    done = subprocess.run(
        [sys.executable, "-m", "pipeline", "simulate", "--history", "2025", "--out", str(out), "--scale", "0.01",
         "--days", "3"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "simulate: wrote" in done.stdout and out.stat().st_size > 0
    assert "3/3" in done.stderr  # the progress bar (tqdm) on stderr
    bad = subprocess.run([sys.executable, "-m", "pipeline", "simulate", "--history", "2025"], cwd=REPO,
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and bad.stderr.strip().count("\n") == 0 and "--out" in bad.stderr


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_demo_pages_only_for_its_planned_incident(seed):
    """`make demo` (simulate --demo): the live generator with the demo's preset, cases started at
    about the demo's pace (3 a second at 20 events/s), judged each minute of its first 12 like the
    page rule (24h window, minimum volume): no scope but the incident's unit is ever below a target,
    and the incident's is by the end."""
    import uuid

    from pipeline.feed import simulate as sim
    from pipeline.feed.lifecycle import CompressedClock, active_unit_ids, load_province

    incident = sim.parse_incident(sim.DEMO_INCIDENT)
    rng = random.Random(seed)
    gen = LifecycleGenerator(rng, active_unit_ids()[:sim.DEMO_UNITS], clock=CompressedClock(sim.SECONDS_PER_WORKING_DAY),
                             incidents=[incident], new_id=lambda: str(uuid.uuid4()), province=load_province(),
                             baseline=sim.DEMO_BASELINE)
    t0 = datetime(2026, 12, 7, 9, 0, tzinfo=VN)
    events: list[dict] = []
    for n in range(12 * 60 * 3):
        t = t0 + timedelta(seconds=n / 3)
        events += gen.feedback(f"F{n}", t) if rng.random() < sim.FEEDBACK_SHARE else gen.case(f"C{n}", t)
    incident_scope = (incident.indicator, incident.unit, "all")
    for minute in range(2, 13):
        at = t0 + timedelta(minutes=minute)
        seen = [e for e in events if datetime.fromisoformat(e["occurred_at"]) <= at]
        figures = expected_indicators(seen, at=at.isoformat(), windows=("24h",))
        below = {(ind, u, s) for (ind, u, s, _), (num, den) in figures.items()
                 if den >= TARGETS.min_volume and TARGETS.below_target(ind, s, num, den)}
        assert below <= {incident_scope}, (minute, below)
    assert below == {incident_scope}
