"""The reference writer of the worker's live families: prometheus_client's own, fed from
``LiveFigures``. ``pipeline.stream.metrics.LiveExposition`` must write the same bytes."""

from __future__ import annotations

from typing import Iterable

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from pipeline.stream.metrics import CLOCK_FAMILY, INDICATOR_FAMILIES, LABELS, OPEN_CASE_FAMILIES, OPEN_CASE_FIELDS, LiveFigures


class LiveCollector(Collector):
    """The clock, indicator and open-case gauges of ``figures``."""

    def __init__(self, figures: LiveFigures) -> None:
        self.figures = figures

    def collect(self) -> Iterable[GaugeMetricFamily]:
        current = self.figures
        clock = GaugeMetricFamily(*CLOCK_FAMILY)
        clock.add_metric([], current.clock_us / 1e6)
        yield clock
        numerator, denominator, ratio, target, below = (
            GaugeMetricFamily(name, help_text, labels=LABELS) for name, help_text in INDICATOR_FAMILIES
        )
        for figure in current.indicators:
            labels = [figure.indicator, figure.unit, figure.sector, figure.window]
            numerator.add_metric(labels, figure.numerator)
            denominator.add_metric(labels, figure.denominator)
            if figure.ratio is not None:
                ratio.add_metric(labels, figure.ratio)
            target.add_metric(labels, figure.target)
            below.add_metric(labels, 1.0 if figure.below_target else 0.0)
        yield from (numerator, denominator, ratio, target, below)
        families = [GaugeMetricFamily(name, help_text, labels=["unit"]) for name, help_text in OPEN_CASE_FAMILIES]
        for unit, counts in sorted(current.open_cases.items()):
            for family, field_name in zip(families, OPEN_CASE_FIELDS):
                family.add_metric([unit], getattr(counts, field_name))
        yield from families


def reference_text(figures: LiveFigures) -> str:
    registry = CollectorRegistry()
    registry.register(LiveCollector(figures))
    return generate_latest(registry).decode()
