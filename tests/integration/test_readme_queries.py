"""Every example command of the analysts' page (docs/analysts.md) runs against real stored facts and
returns what the scenario says it must (a query that returns nothing fails).

The scenario runs from April to July 2025, across the merger of 1 July (the new province's
units, such as ``TTPVHCC``, receive dossiers in July), plus a few events of units not in force
at their time, so each example has rows to show."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Callable

import pytest

from pipeline.contract.localtime import LOCAL_TZ
from pipeline.core.indicators import NAMES_VI
from pipeline.feed.replay import replay_file
from pipeline.feed.scenario import Scenario, build_scenario
from pipeline.store.units import load_units
from tests.integration.workerproc import ROOT, WorkerProcess, isolated_settings, run_cli

pytestmark = pytest.mark.integration

SECTIONS = ("## ClickHouse tables and example queries", "## The province's units")


@dataclass(frozen=True)
class Example:
    comment: str  # the README's `#` line above the command(s)
    args: list[str]  # after `python -m pipeline`


def readme_examples() -> list[Example]:
    text = (ROOT / "docs" / "analysts.md").read_text(encoding="utf-8")
    blocks = []
    for heading in SECTIONS:
        section = text.split(heading, 1)[1]
        blocks.append(re.search(r"```sh\n(.*?)```", section, re.S).group(1))
    commands: list[tuple[str, str]] = []
    comment = ""
    for line in "\n".join(blocks).splitlines():
        if not line.strip():
            continue
        if line.startswith("#"):
            comment = line.lstrip("# ").strip()
        elif line.startswith("python -m pipeline"):
            commands.append((comment, line))
        else:
            commands[-1] = (commands[-1][0], commands[-1][1] + "\n" + line)
    return [Example(comment, shlex.split(command)[3:]) for comment, command in commands]


@dataclass(frozen=True)
class Table:
    columns: list[str]
    rows: list[list[str]]


def table(stdout: str) -> Table:
    """The ``--format table`` output of ``sql``: header, rule, rows, ``(n rows)``."""
    lines = stdout.rstrip("\n").splitlines()
    assert re.fullmatch(r"\(\d+ rows?\)", lines[-1]), stdout
    split = lambda line: [cell.strip() for cell in line.split(" | ")]  # noqa: E731
    return Table(split(lines[0]), [split(line) for line in lines[2:-1]])


# -- what the scenario holds -------------------------------------------------------------
OLD_UNIT = "BG_H_YEN_THE"  # a district of Bắc Giang, ended on 2025-06-30
MISSPELT_UNIT = "BG_H_YEN_THEE"  # never in the registry


IN_FORCE_UNIT = "TTPVHCC"  # the new province's service centre, from 2025-07-01


def extra_events(scenario: Scenario) -> list[dict]:
    """Three dossiers received on 10 July, due on 24 July, still open at the end of the stream
    (so their ``cases`` rows, written at the clock of 31 July, are overdue): one at a unit in
    force, one at an old district used after the merger, one at a misspelt code."""
    template = next(e for e in scenario.valid_events if e["event_type"] == "received")
    extras = []
    for unit in (IN_FORCE_UNIT, OLD_UNIT, MISSPELT_UNIT):
        extras.append(dict(template, event_id=str(uuid.uuid4()), case_id=f"HS-README-{unit}", unit_id=unit,
                           occurred_at="2025-07-10T09:00:00+07:00", due_at="2025-07-24T09:00:00+07:00"))
    return extras


@dataclass
class Facts:
    events: list[dict]  # the accepted events
    reasons: dict[str, int]  # rejection reason -> count
    district_ids: set[str]
    unit_names: dict[str, str]  # unit id -> name_vi of its latest registry row


def local_day(event: dict):
    return datetime.fromisoformat(event["occurred_at"]).astimezone(LOCAL_TZ).date()


# -- one check per README example, by its comment ------------------------------------------
def events_per_type_on_the_latest_day(facts: Facts, out: str, _run) -> None:
    last = max(local_day(e) for e in facts.events)
    expected = Counter(e["event_type"] for e in facts.events if local_day(e) == last)
    got = table(out)
    assert got.columns == ["event_type", "n"]
    assert {t: int(n) for t, n in got.rows} == dict(expected) and expected


def overdue_open_cases_per_unit(facts: Facts, out: str, run) -> None:
    got = table(out)
    assert got.columns == ["unit_id", "ten_don_vi", "qua_han"]
    by_unit = {unit: (name, int(n)) for unit, name, n in got.rows}
    # the registry join names every unit in force; units not in force count under `unknown`
    assert by_unit[IN_FORCE_UNIT][0] == facts.unit_names[IN_FORCE_UNIT] and by_unit[IN_FORCE_UNIT][1] >= 1
    assert by_unit["unknown"][1] >= 2, got.rows
    assert all(name == facts.unit_names[unit] for unit, (name, _n) in by_unit.items() if unit != "unknown")
    counts = [n for _name, n in by_unit.values()]
    assert counts == sorted(counts, reverse=True)
    total = run("sql", "SELECT count() FROM cases FINAL WHERE status = 'open' AND overdue", "--format", "csv")
    assert sum(counts) == int(total.splitlines()[1])


def rejected_by_reason(facts: Facts, out: str, _run) -> None:
    got = table(out)
    assert got.columns == ["reason", "n"]
    assert {r: int(n) for r, n in got.rows} == facts.reasons and facts.reasons


def on_time_ratio_per_unit(facts: Facts, out: str, _run) -> None:
    got = table(out)
    assert got.columns == ["unit", "dat", "tong", "ty_le"]
    counted = [(int(d), int(t), float(r)) for _u, d, t, r in got.rows if int(t) > 0]
    assert counted, got.rows
    assert all(d <= t and r == round(d / t, 3) for d, t, r in counted)
    assert "all" in {u for u, *_ in got.rows}


def batch_indicators_table(facts: Facts, out: str, run) -> None:
    rows = [line for line in out.splitlines()[3:] if line.strip()]
    assert rows and all("TTPVHCC" in line for line in rows), out
    fractions = [re.search(r"(\d+)/(\d+)", line).groups() for line in rows]
    assert any(int(d) > 0 for _n, d in fractions), out
    assert any(line.startswith(NAMES_VI["on_time"]) for line in rows), out


def batch_indicators_json(facts: Facts, out: str, _run) -> None:
    rows = json.loads(out)
    assert rows and {(r["window"], r["sector"]) for r in rows} == {("mtd", "dat_dai")}
    assert sum(r["denominator"] for r in rows) > 0, rows
    assert {r["indicator"] for r in rows} >= {"on_time"}


def district_units(facts: Facts, out: str, _run) -> None:
    got = table(out)
    assert got.columns == ["unit_id", "name_vi", "successor"]
    assert {u for u, *_ in got.rows} == facts.district_ids
    assert all(name.startswith("Ủy ban nhân dân") for _u, name, _s in got.rows)


def unknown_unit_events(facts: Facts, out: str, _run) -> None:
    got = table(out)
    assert got.columns == ["unit_id", "n"]
    assert {u: int(n) for u, n in got.rows} == {OLD_UNIT: 1, MISSPELT_UNIT: 1}


CHECKS: dict[str, Callable[[Facts, str, Callable[..., str]], None]] = {
    "events per type on the latest day with events": events_per_type_on_the_latest_day,
    "overdue open cases per unit, with the unit's Vietnamese name": overdue_open_cases_per_unit,
    "rejected messages by reason in the last day": rejected_by_reason,
    "on-time ratio per unit this month, from the snapshots (latest snapshot per series)": on_time_ratio_per_unit,
    "the batch indicators, as a person reads them, or as JSON for scripts": None,  # two commands, below
    "2025 dossiers of the former districts, with the communes that took them over": district_units,
    "events whose unit was not in force at their time (misspelt codes, old units used after 1 July)":
        unknown_unit_events,
}


def check_of(example: Example):
    if example.args[0] == "indicators":
        return batch_indicators_json if "json" in example.args else batch_indicators_table
    return CHECKS[example.comment]


def test_every_readme_example_has_a_check():
    examples = readme_examples()
    assert len(examples) >= 8
    assert {e.comment for e in examples} == set(CHECKS)


def test_readme_examples_return_what_the_scenario_holds(infra, tmp_path):
    examples = readme_examples()
    settings = isolated_settings(infra, "readme", clock="event", snapshot_interval=1.0)
    scenario = build_scenario(seed=3, cases=1000, start="2025-04-01", months=4)
    extras = extra_events(scenario)
    path = tmp_path / "scenario.jsonl"
    lines = scenario.lines + [json.dumps(e, ensure_ascii=False).encode() for e in extras]
    path.write_bytes(b"\n".join(lines) + b"\n")
    units = load_units(settings.units_file)
    facts = Facts(
        events=scenario.valid_events + extras,
        reasons=dict(scenario.expected_reasons),
        district_ids={u.unit_id for u in units if u.kind == "district"},
        unit_names={u.unit_id: u.name_vi for u in sorted(units, key=lambda u: u.valid_from)},
    )

    def run(*args: str) -> str:
        return run_cli(settings, *args).stdout

    worker = WorkerProcess(settings).start()
    try:
        replay_file(settings, str(path), progress=False)
        worker.wait_processed(len(lines))
        worker.wait_for(
            lambda: run("sql", "SELECT count() AS n FROM indicator_snapshots", "--format", "csv").splitlines()[1] != "0",
            30,
            "a snapshot written",
        )
        for example in examples:
            result: subprocess.CompletedProcess = run_cli(settings, *example.args, check=False)
            assert result.returncode == 0, f"{example.args}: {result.stderr}"
            check_of(example)(facts, result.stdout, run)
    finally:
        worker.stop()
