"""The worker's Prometheus metrics, on a registry of its own (one per worker/test).

Counters are updated as events flow. The indicator and open-case gauges are not
Gauge objects: ``LiveCollector`` yields them from the live view when Prometheus
scrapes (``core.view``; O(exported series), independent of history).
Ratios are exported for convenience; alert and recording rules use the
numerator and denominator (see ``deploy/prometheus/rules``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Mapping

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from pipeline.contract.events import REASONS
from pipeline.core.view import IndicatorFigure, OpenCaseCounts

LABELS = ["indicator", "unit", "sector", "window"]
# The *_created samples only add noise to the province's boards.
disable_created_metrics()

CONTENT_TYPE = "text/plain"  # Prometheus text format 0.0.4 (aiohttp sets the charset itself)


@dataclass(frozen=True, slots=True)
class LiveFigures:
    clock_us: int
    indicators: list[IndicatorFigure]
    open_cases: Mapping[str, OpenCaseCounts]


class LiveCollector(Collector):
    """The clock, indicator and open-case gauges, read from ``figures()`` at each scrape.

    ``figures``: a callable returning the figures at the pipeline clock, or None
    while the worker is rebuilding its view (then only the other metrics are
    exported)."""

    def __init__(self, figures: Callable[[], LiveFigures | None]) -> None:
        self.figures = figures

    def collect(self) -> Iterable[GaugeMetricFamily]:
        current = self.figures()
        if current is None:
            return
        clock = GaugeMetricFamily("tthc_clock_seconds", "The pipeline clock T (Unix seconds)")
        clock.add_metric([], current.clock_us / 1e6)
        yield clock
        figures, open_counts = current.indicators, current.open_cases
        numerator = GaugeMetricFamily(
            "tthc_indicator_numerator", "Outcomes meeting the indicator (tử số)", labels=LABELS
        )
        denominator = GaugeMetricFamily(
            "tthc_indicator_denominator", "Outcomes counted by the indicator (mẫu số)", labels=LABELS
        )
        ratio = GaugeMetricFamily(
            "tthc_indicator_ratio", "numerator / denominator, when the denominator is > 0", labels=LABELS
        )
        target = GaugeMetricFamily(
            "tthc_indicator_target", "Target ratio of the province's plan (chỉ tiêu)", labels=LABELS
        )
        below = GaugeMetricFamily(
            "tthc_indicator_below_target",
            "1 when the ratio fails the target with at least the minimum volume",
            labels=LABELS,
        )
        for figure in figures:
            labels = [figure.indicator, figure.unit, figure.sector, figure.window]
            numerator.add_metric(labels, figure.numerator)
            denominator.add_metric(labels, figure.denominator)
            target.add_metric(labels, figure.target)
            below.add_metric(labels, 1.0 if figure.below_target else 0.0)
            if figure.ratio is not None:
                ratio.add_metric(labels, figure.ratio)
        open_cases = GaugeMetricFamily("tthc_open_cases", "Open cases (hồ sơ đang xử lý)", labels=["unit"])
        overdue = GaugeMetricFamily(
            "tthc_overdue_open_cases", "Open cases past their effective due (quá hạn)", labels=["unit"]
        )
        no_apology = GaugeMetricFamily(
            "tthc_overdue_without_apology_cases",
            "Overdue open cases without an apology letter (chưa có phiếu xin lỗi)",
            labels=["unit"],
        )
        for unit, counts in sorted(open_counts.items()):
            open_cases.add_metric([unit], counts.open)
            overdue.add_metric([unit], counts.overdue)
            no_apology.add_metric([unit], counts.overdue_without_apology)
        yield from (numerator, denominator, ratio, target, below, open_cases, overdue, no_apology)


class WorkerMetrics:
    def __init__(self, figures: Callable[[], LiveFigures | None] = lambda: None) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.events = Counter("tthc_events", "Messages processed, by outcome", ["outcome"], registry=r)
        self.invalid = Counter("tthc_invalid_events", "Rejected messages, by reason", ["reason"], registry=r)
        for outcome in ("accepted", "invalid", "duplicate"):
            self.events.labels(outcome)
        for reason in REASONS:
            self.invalid.labels(reason)
        self.redelivered = Counter(
            "tthc_redelivered_events",
            "Messages seen again at the same offset after a restart (state kept, row rewritten)",
            registry=r,
        )
        self.processing = Histogram(
            "tthc_processing_seconds",
            "Time to process one message in the worker (validation and state)",
            buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5),
            registry=r,
        )
        self.latency = Histogram(
            "tthc_event_latency_seconds",
            "From the message's Kafka timestamp to its facts being written to ClickHouse",
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
            registry=r,
        )
        self.rows_written = Counter(
            "tthc_clickhouse_rows_written", "Rows written to ClickHouse", ["table"], registry=r
        )
        self.inserts = Counter("tthc_clickhouse_inserts", "Insert statements to ClickHouse", ["table"], registry=r)
        self.write_errors = Counter(
            "tthc_clickhouse_write_errors", "Failed ClickHouse writes (retried)", registry=r
        )
        r.register(LiveCollector(figures))

    def render(self) -> bytes:
        return generate_latest(self.registry)
