"""``python -m pipeline report --period 2025-06|2025-Q2|2025[/bc] [--kind report|766] [--unit U] --out DIR``."""

from __future__ import annotations

import time
from pathlib import Path

from pipeline.access import open_runner
from pipeline.calendar_file import apology_rule, load_calendar
from pipeline.config import Settings, UserError
from pipeline.core.targets import TargetsError
from pipeline.core.windows import local_date
from pipeline.progress import progress_bar
from pipeline.reports.data import collect_report
from pipeline.reports.period import parse_period
from pipeline.reports.render import write_report
from pipeline.reports.score_page import write_score_page
from pipeline.store.units import load_units
from pipeline.targets_file import load_targets

__all__ = ["run_report"]


def run_report(
    settings: Settings,
    period_text: str,
    unit: str | None,
    out: str,
    *,
    pdf: bool = True,
    now_us: int | None = None,
    structure: str = "period",
    kind: str = "report",
) -> int:
    """``now_us``: the clock that decides whether the period is still running (default: the
    wall clock; with ``TTHC_CLOCK=event``, the latest stored event time). ``structure``:
    ``period`` (the units in force in the period) or ``today`` (figures of units that have
    ceased moved to their one successor in force on the clock's date)."""
    period = parse_period(period_text)
    if not out:
        raise UserError("--out DIR is required")
    try:
        targets = load_targets(settings.targets_file)
    except TargetsError as exc:
        raise UserError(str(exc)) from None
    registry = load_units(settings.units_file)
    calendar = load_calendar()
    runner = open_runner(settings)
    if now_us is None:
        now_us = time.time_ns() // 1000
        if settings.clock == "event":
            _cols, rows = runner.query("SELECT toUnixTimestamp64Micro(max(occurred_at)) FROM case_events")
            if rows and rows[0][0]:
                now_us = int(rows[0][0])
    steps = 5 + (len(period.months()) if period.kind != "month" else 1)
    with progress_bar(f"report {period.code}", total=steps + 1, unit="bước") as bar:
        def progress(step: str) -> None:
            bar.set_postfix_str(step)
            bar.update(1)

        data = collect_report(
            runner, period, targets=targets, hold_retention_us=settings.hold_retention_us,
            calendar=calendar, apology=apology_rule(settings.apology_lead), registry=registry, unit=unit, now_us=now_us, progress=progress,
            structure_day=local_date(now_us) if structure == "today" else None,
        )
        bar.set_postfix_str("HTML, CSV, PDF")
        if kind == "766":
            files = write_score_page(data, Path(out), pdf=pdf)
        else:
            files = write_report(data, targets, Path(out), pdf=pdf)
        bar.update(bar.total - bar.n)
    print(f"report: {period.label_vi}: {len(data.units)} units, {len(data.late)} late dossiers, "
          f"{len(data.due_soon)} due soon, {len(data.late_list.late_officials)} officials and "
          f"{len(data.late_list.late_departments)} departments late")
    print(f"report: wrote {files.html}")
    if files.pdf:
        print(f"report: wrote {files.pdf}")
    for path in files.csv.values():
        print(f"report: wrote {path}")
    return 0
