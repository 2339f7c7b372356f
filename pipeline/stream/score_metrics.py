"""Live gauges of the 766 score per unit and group (docs/indicators.md, "The 766 score").

Kept apart from ``metrics.py`` (the engine's area). Families, for the ``mtd`` window (the
month so far, as the portal publishes monthly), every unit and the province (``all``):

- ``tthc_score_766_points{unit,group}``: points earned in the group;
- ``tthc_score_766_assessable{unit,group}``: the maximum of the group's items assessed
  (computable and with dossiers this month);
- ``tthc_score_766_not_computable{group}``: the maximum of the group's items that dossier
  data cannot carry (never exported as a zero score).

Hook still to wire (engine): register ``ScoreCollector(figures)`` on the worker's registry
with the same ``figures`` callable as ``LiveCollector``, and append
``score_exposition(figures())`` to ``LiveExposition``'s text for ``/metrics``.
"""

from __future__ import annotations

from typing import Callable, Iterable

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from pipeline.core.score766 import GROUPS, SOURCE_INDICATORS, Score, score
from pipeline.core.view import ALL, IndicatorFigure

__all__ = ["SCORE_WINDOW", "ScoreCollector", "score_families", "scores_of", "score_exposition"]

SCORE_WINDOW = "mtd"
_SOURCES = frozenset(SOURCE_INDICATORS)


def scores_of(indicators: Iterable[IndicatorFigure], window: str = SCORE_WINDOW) -> list[Score]:
    """The score of every unit and of the province (``all``) from the live figures."""
    per_unit: dict[str, dict[str, tuple[int, int]]] = {}
    for f in indicators:
        if f.window == window and f.sector == ALL and f.indicator in _SOURCES:
            per_unit.setdefault(f.unit, {})[f.indicator] = (f.numerator, f.denominator)
    return [score(unit, figures) for unit, figures in sorted(per_unit.items())]


def score_families(indicators: Iterable[IndicatorFigure], window: str = SCORE_WINDOW) -> list[GaugeMetricFamily]:
    points = GaugeMetricFamily("tthc_score_766_points", "766 score: points earned this month (điểm đạt)",
                               labels=["unit", "group"])
    assessable = GaugeMetricFamily("tthc_score_766_assessable",
                                   "766 score: maximum of the items assessed this month (điểm tính được)",
                                   labels=["unit", "group"])
    blind = GaugeMetricFamily("tthc_score_766_not_computable",
                              "766 score: maximum of the items dossier data cannot carry (không tính được)",
                              labels=["group"])
    for s in scores_of(indicators, window):
        for g in s.groups:
            if g.computable:
                points.add_metric([s.unit, g.group.code], g.earned)
                assessable.add_metric([s.unit, g.group.code], g.assessable)
    for group in GROUPS:
        blind.add_metric([group.code], float(score("", {}).group(group.code).not_computable))
    return [points, assessable, blind]


class ScoreCollector(Collector):
    """The 766 score gauges from ``figures()`` (a ``metrics.LiveFigures`` or None) at each scrape."""

    def __init__(self, figures: Callable[[], object]) -> None:
        self.figures = figures

    def collect(self) -> Iterable[GaugeMetricFamily]:
        current = self.figures()
        if current is None:
            return
        yield from score_families(current.indicators)


def score_exposition(current) -> str:
    """The score families as Prometheus text (for ``LiveExposition``)."""
    if current is None:
        return ""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ScoreCollector(lambda: current))
    return generate_latest(registry).decode("utf-8")
