"""Indicator and open-case figures at clock T, from the worker's state tables.

Pure functions over mappings (no Faust, no Prometheus), shared by the metrics
exporter and the ClickHouse snapshots, so both always show the same numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping

from pipeline.core.cases import UNKNOWN_SECTOR, CaseState, case_summary
from pipeline.core.targets import Targets
from pipeline.core.windows import WINDOWS, parse_bucket_key, scope_totals, window_contains, window_totals

SeriesKey = tuple[str, str, str, str]  # indicator, unit, sector, window


@dataclass(frozen=True, slots=True)
class IndicatorFigure:
    indicator: str
    unit: str
    sector: str
    window: str
    numerator: int
    denominator: int
    target: float
    op: str
    below_target: bool

    @property
    def ratio(self) -> float | None:
        return self.numerator / self.denominator if self.denominator else None


def fine_totals(
    counter_items: Iterable[tuple[str, dict]], now_us: int, hold_retention_us: int
) -> dict[SeriesKey, tuple[int, int]]:
    """(indicator, unit, sector, window) → (numerator, denominator) at the finest level.

    Held outcomes (sector ``unknown``) count only once ``t + retention < T``; their
    per-time detail is kept for that (see ``BucketCounters.prune``).
    """
    regular: list[tuple[str, dict]] = []
    held: dict[SeriesKey, list[int]] = {}
    horizon = now_us - hold_retention_us
    for key, value in counter_items:
        _shard, indicator, unit, sector, _day = parse_bucket_key(key)
        if sector != UNKNOWN_SECTOR:
            regular.append((key, value))
            continue
        for window in WINDOWS:
            totals = held.setdefault((indicator, unit, sector, window), [0, 0])
            for time_text, (hits, count) in value.get("t", {}).items():
                t = int(time_text)
                if t < horizon and window_contains(window, t, now_us):
                    totals[0] += hits
                    totals[1] += count
    result = dict(window_totals(regular, now_us))
    for series, (hits, count) in held.items():
        before = result.get(series, (0, 0))
        result[series] = (before[0] + hits, before[1] + count)
    return result


def indicator_figures(
    counter_items: Iterable[tuple[str, dict]],
    now_us: int,
    *,
    targets: Targets,
    hold_retention_us: int,
) -> list[IndicatorFigure]:
    """Every indicator × scope × window, sorted, with its target."""
    scoped = scope_totals(fine_totals(counter_items, now_us, hold_retention_us))
    figures = []
    for (indicator, unit, sector, window), (numerator, denominator) in sorted(scoped.items()):
        op, value = targets.target_for(indicator, sector)
        figures.append(
            IndicatorFigure(
                indicator=indicator,
                unit=unit,
                sector=sector,
                window=window,
                numerator=numerator,
                denominator=denominator,
                target=value,
                op=op,
                below_target=targets.below_target(indicator, sector, numerator, denominator),
            )
        )
    return figures


@dataclass(frozen=True, slots=True)
class OpenCaseCounts:
    open: int = 0
    overdue: int = 0
    overdue_without_apology: int = 0


def open_case_counts(
    open_cases: Iterable[tuple[str, str]], cases: Mapping[str, dict], now_us: int
) -> dict[str, OpenCaseCounts]:
    """Per unit: open cases, those past their effective due, and of those without apology."""
    tallies: dict[str, list[int]] = {}
    for case_id, unit in open_cases:
        stored = cases.get(case_id)
        if stored is None:
            continue
        summary = case_summary(CaseState.from_dict(stored), now_us)
        tally = tallies.setdefault(unit, [0, 0, 0])
        tally[0] += 1
        if summary.overdue:
            tally[1] += 1
            if not summary.has_apology:
                tally[2] += 1
    return {unit: OpenCaseCounts(*tally) for unit, tally in tallies.items()}
