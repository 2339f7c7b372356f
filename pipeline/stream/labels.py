"""Bounded label values: every sector label of the live gauges is in the sector registry.

The contract accepts any sector code (``deploy/sectors.csv`` may lag the one-stop
systems), and the live view keeps whatever code an event carried. What is *exported*
is bounded: the series of a sector outside the registry are summed into the sector
``unknown`` (where the outcomes held for a missing ``received`` also count), so a
hostile or mistyped sector can never create a new label value. Units are bounded at
the input already (``UnitRegistry.label``: an event of a unit not in force is counted
under ``unit="unknown"``); reasons, indicators and windows come from closed lists in
the code.

:func:`bound_figures` does this on a list of figures (the reference writer, the
snapshots); ``LiveExposition`` does the same on its rows, in the same order: the
registered series in place, a summed ``unknown`` series in the place of the view's own
``unknown`` series of that indicator and window if it has one, else appended after
all, in the order the indicators first appear.
"""

from __future__ import annotations

from functools import lru_cache

from pipeline.core.targets import Targets
from pipeline.core.view import ALL, IndicatorFigure
from pipeline.store.sectors import load_sectors

__all__ = ["UNKNOWN", "SCOPE_SECTORS", "bound_figures", "registered_sectors", "foreign_sector"]

UNKNOWN = "unknown"
SCOPE_SECTORS = frozenset({ALL, UNKNOWN, ""})  # labels of scopes, not sectors


@lru_cache(maxsize=1)
def registered_sectors() -> frozenset[str]:
    """The codes of ``deploy/sectors.csv``."""
    return frozenset(s.sector for s in load_sectors())


def foreign_sector(sector: str, known: frozenset[str]) -> bool:
    return sector not in known and sector not in SCOPE_SECTORS


def bound_figures(figures: list[IndicatorFigure], targets: Targets,
                  known: frozenset[str] | None = None) -> list[IndicatorFigure]:
    known = registered_sectors() if known is None else known
    if not any(foreign_sector(f.sector, known) for f in figures):
        return figures
    buckets: dict[tuple[str, str], list[int]] = {}
    for f in figures:
        if foreign_sector(f.sector, known):
            bucket = buckets.setdefault((f.indicator, f.window), [0, 0])
            bucket[0] += f.numerator
            bucket[1] += f.denominator

    def merged(indicator: str, window: str, numerator: int, denominator: int) -> IndicatorFigure:
        op, target = targets.target_for(indicator, UNKNOWN)
        return IndicatorFigure(indicator, ALL, UNKNOWN, window, numerator, denominator, target, op,
                               targets.below_target(indicator, UNKNOWN, numerator, denominator))

    out = []
    for f in figures:
        if foreign_sector(f.sector, known):
            continue
        if f.sector == UNKNOWN and f.unit == ALL and (f.indicator, f.window) in buckets:
            n, d = buckets.pop((f.indicator, f.window))
            f = merged(f.indicator, f.window, f.numerator + n, f.denominator + d)
        out.append(f)
    out.extend(merged(indicator, window, n, d) for (indicator, window), (n, d) in buckets.items())
    return out
