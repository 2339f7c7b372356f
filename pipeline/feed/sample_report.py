"""The sample report of the README (``docs/sample-report/``), from a deterministic scenario.

``python -m pipeline.feed.sample_report [DIR]`` simulates :data:`SAMPLE_DAYS` days of 2025 at
:data:`SAMPLE_SCALE` of the province's volume (``simulate --history``, seed 2025), loads
the facts into a fresh embedded ClickHouse (:func:`load_history`: what the worker stores —
``case_events`` rows and each case's ``cases`` row at the scenario's end — without a
broker) and writes the report of :data:`SAMPLE_PERIOD` and its 766 score page
(``report --kind 766``) into DIR (default ``docs/sample-report``). A test rebuilds them and
compares the HTML and CSV files.
"""

from __future__ import annotations

import json
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from pipeline.calendar_file import apology_rule, load_calendar
from pipeline.config import PROJECT_ROOT, load_settings
from pipeline.contract.events import CaseEvent
from pipeline.core.cases import CaseState, case_summary
from pipeline.feed.simulate import write_history
from pipeline.reports.data import collect_report
from pipeline.reports.period import parse_period
from pipeline.reports.render import write_report
from pipeline.reports.score_page import write_score_page
from pipeline.store.client import connect
from pipeline.store.readonly import ClientRunner
from pipeline.store.schema import ensure_schema
from pipeline.store.units import load_registry, load_units, sync_units
from pipeline.store.writer import FactWriter
from pipeline.targets_file import load_targets

__all__ = ["SAMPLE_PERIOD", "SAMPLE_SCALE", "SAMPLE_DAYS", "SAMPLE_DIR", "LoadedFacts", "load_history",
           "build_sample", "load_into", "SampleFiles"]

SAMPLE_PERIOD = "2025-06"
SAMPLE_SCALE = 0.01
SAMPLE_DAYS = 212  # January to July: June, its quarter and the month after it
SAMPLE_SEED = 2025
SAMPLE_DIR = PROJECT_ROOT / "docs" / "sample-report"


@dataclass(frozen=True)
class LoadedFacts:
    events: int
    cases: int
    last_us: int  # the latest occurred_at: the clock of the cases rows


def load_history(client: Any, path: Path, registry: Any) -> LoadedFacts:
    """Store a JSONL scenario as the worker would with the event clock at its end."""
    writer = FactWriter(client)
    states: dict[str, CaseState] = {}
    rows = []
    last = 0
    seen: set[str] = set()
    with open(path, encoding="utf-8") as fh:
        for offset, line in enumerate(fh):
            if not line.strip():
                continue
            event = CaseEvent.from_record(json.loads(line))
            if event.event_id in seen:
                continue
            seen.add(event.event_id)
            states.setdefault(event.case_id, CaseState.new(event.case_id)).add(event)
            rows.append((event, 0, offset, registry.label(event.unit_id, event.occurred_at_us)))
            last = max(last, event.occurred_at_us)
    for start in range(0, len(rows), 20_000):
        writer.write_events(rows[start:start + 20_000])
    summaries = [case_summary(s, last) for s in states.values()]
    for start in range(0, len(summaries), 20_000):
        writer.write_cases(summaries[start:start + 20_000], version=1, updated_at_us=last)
    return LoadedFacts(events=len(rows), cases=len(summaries), last_us=last)


def load_into(data_dir: Path, history: Path, units_file: Path) -> LoadedFacts:
    """A fresh embedded ClickHouse under ``data_dir`` with the registry and the scenario's facts."""
    client = connect(f"chdb://{Path(data_dir) / 'clickhouse'}")
    ensure_schema(client)
    sync_units(client, load_units(units_file))
    return load_history(client, Path(history), load_registry(units_file))


class SampleFiles(NamedTuple):
    report: Any  # render.ReportFiles of the period report
    score: Any  # render.ReportFiles of the 766 page


def build_sample(out_dir: Path, work_dir: Path, *, pdf: bool = True) -> SampleFiles:
    """Simulate, load into a fresh chDB under ``work_dir`` and write the sample report and
    the sample 766 page."""
    settings = load_settings()
    work_dir.mkdir(parents=True, exist_ok=True)
    history = work_dir / "history.jsonl"
    write_history(settings, 2025, str(history), scale=SAMPLE_SCALE, seed=SAMPLE_SEED, days=SAMPLE_DAYS,
                  progress=False)
    load_into(work_dir, history, settings.units_file)
    client = connect(f"chdb://{work_dir / 'clickhouse'}")
    targets = load_targets(settings.targets_file)
    data = collect_report(
        ClientRunner(client), parse_period(SAMPLE_PERIOD), targets=targets,
        hold_retention_us=settings.hold_retention_us, calendar=load_calendar(),
        apology=apology_rule(settings.apology_lead),
        registry=load_units(settings.units_file),
    )
    return SampleFiles(write_report(data, targets, out_dir, pdf=pdf), write_score_page(data, out_dir, pdf=pdf))


def main(argv: list[str]) -> int:
    out = Path(argv[0]) if argv else SAMPLE_DIR
    with tempfile.TemporaryDirectory(prefix="tthc-sample-") as tmp:
        files = build_sample(out, Path(tmp))
    print(f"sample report: {files.report.html}")
    print(f"sample 766 page: {files.score.html}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
