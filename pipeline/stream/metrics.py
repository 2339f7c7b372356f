"""The worker's Prometheus metrics, on a registry of its own (one per worker/test).

Counters are updated as events flow. The indicator and open-case gauges are not
Gauge objects: ``LiveExposition`` writes their text from the live view when Prometheus
scrapes (``core.view``; O(exported series), independent of history).
Ratios are exported for convenience; alert and recording rules use the
numerator and denominator (see ``deploy/prometheus/rules``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.utils import floatToGoString

from pipeline.contract.events import REASONS
from pipeline.core.targets import Targets
from pipeline.core.view import ALL, IndicatorFigure, IndicatorView, OpenCaseCounts
from pipeline.core.windows import WINDOWS
from pipeline.stream.labels import UNKNOWN, foreign_sector, registered_sectors

LABELS = ["indicator", "unit", "sector", "window"]
# The *_created samples only add noise to the province's boards.
disable_created_metrics()

CONTENT_TYPE = "text/plain"  # Prometheus text format 0.0.4 (aiohttp sets the charset itself)

# The live families, in the order they are exposed: (name, help).
CLOCK_FAMILY = ("tthc_clock_seconds", "The pipeline clock T (Unix seconds)")
INDICATOR_FAMILIES = (
    ("tthc_indicator_numerator", "Outcomes meeting the indicator (tử số)"),
    ("tthc_indicator_denominator", "Outcomes counted by the indicator (mẫu số)"),
    ("tthc_indicator_ratio", "numerator / denominator, when the denominator is > 0"),
    ("tthc_indicator_target", "Target ratio of the province's plan (chỉ tiêu)"),
    ("tthc_indicator_below_target", "1 when the ratio fails the target with at least the minimum volume"),
)
OPEN_CASE_FAMILIES = (
    ("tthc_open_cases", "Open cases (hồ sơ đang xử lý)"),
    ("tthc_overdue_open_cases", "Open cases past their effective due (quá hạn)"),
    ("tthc_overdue_without_apology_cases", "Overdue open cases without an apology letter (chưa có phiếu xin lỗi)"),
    ("tthc_due_soon_open_cases", "Open cases falling due by the end of the next working day (sắp trễ)"),
)
#: the OpenCaseCounts field of each OPEN_CASE_FAMILIES family
OPEN_CASE_FIELDS = ("open", "overdue", "overdue_without_apology", "due_soon")


@dataclass(frozen=True, slots=True)
class LiveFigures:
    clock_us: int
    indicators: list[IndicatorFigure]
    open_cases: Mapping[str, OpenCaseCounts]


def _label_value(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r'\"')


def _header(name: str, help_text: str) -> str:
    return f"# HELP {name} {help_text.replace(chr(92), chr(92) * 2)}\n# TYPE {name} gauge\n"


class LiveExposition:
    """The text of the live families, written straight from the view (a test holds it byte for
    byte equal to prometheus_client's own writer, ``tests/metrics_reference.py``).

    prometheus_client's generic writer formats every label of every sample anew
    (about 10 µs a sample here; a province exports ~70,000 live samples); this one
    keeps each series' label text and target, so a scrape costs a few string
    joins per series."""

    def __init__(self, targets: Targets, sectors: frozenset[str] | None = None) -> None:
        """``sectors``: the registered sector codes (default ``deploy/sectors.csv``);
        series of other sectors are exported summed under ``unknown`` (``stream.labels``)."""
        self.targets = targets
        self.sectors = registered_sectors() if sectors is None else sectors
        self._foreign: list[bool] = []  # per slot: its sector is outside the registry
        self._unknown_series: dict[str, list] = {}  # indicator -> series of (indicator, all, unknown)
        # per slot and window: the line starts of the five families, the whole target
        # line, and the below-target rule
        self._series: list[tuple[str, str, str, str, str, Callable[[int, int], bool]]] = []
        self._view: IndicatorView | None = None  # the view whose slots _series follows
        self._numbers: dict[int, str] = {}

    def _number(self, value: int) -> str:
        text = self._numbers.get(value)
        if text is None:
            if len(self._numbers) > 100_000:
                self._numbers.clear()
            text = self._numbers[value] = floatToGoString(value)
        return text

    def _add_series(self, scope: tuple[str, str, str]) -> None:
        self._foreign.append(foreign_sector(scope[2], self.sectors))
        self._series.extend(self._scope_series(scope))

    def _scope_series(self, scope: tuple[str, str, str]) -> list:
        series = []
        indicator, unit, sector = scope
        # labels in name order, as generate_latest writes them
        prefix = f'{{indicator="{_label_value(indicator)}",sector="{_label_value(sector)}",unit="{_label_value(unit)}",window="'
        _op, value = self.targets.target_for(indicator, sector)
        below = self.targets.below_target_check(indicator, sector)
        names = [name for name, _ in INDICATOR_FAMILIES]
        for window in WINDOWS:
            labels = f'{prefix}{window}"}}'
            series.append(
                (
                    f"{names[0]}{labels} ",
                    f"{names[1]}{labels} ",
                    f"{names[2]}{labels} ",
                    f"{names[3]}{labels} {floatToGoString(value)}\n",
                    f"{names[4]}{labels} ",
                    below,
                )
            )
        return series

    def render(
        self,
        view: IndicatorView,
        open_counts: Mapping[str, OpenCaseCounts],
        extra: Mapping[tuple[str, str, str], tuple[int, int]] | None = None,
    ) -> str:
        """``extra``: (numerator, denominator) per scope added in every window, as in
        ``IndicatorView.totals``."""
        if view is not self._view:  # a rebuilt view numbers its slots afresh
            self._view = view
            self._series = []
            self._foreign = []
        scopes, nums, dens = view.columns()
        width = len(WINDOWS)
        for slot in range(len(self._series) // width, len(scopes)):
            self._add_series(scopes[slot])
        series = self._series
        number = self._number
        # slot-major, windows in order: the order of ``IndicatorView.totals``
        count = len(scopes)
        flat_n = [nums[w][slot] for slot in range(count) for w in range(width)]
        flat_d = [dens[w][slot] for slot in range(count) for w in range(width)]
        for scope, (en, ed) in (extra or {}).items():
            slot = view.slot_of(scope)
            if slot is not None:
                for i in range(slot * width, slot * width + width):
                    flat_n[i] += en
                    flat_d[i] += ed
        rows = list(zip(series, flat_n, flat_d))
        if True in self._foreign:
            rows = self._bound_sectors(view, scopes, rows, flat_n, flat_d)
        parts = [_header(*CLOCK_FAMILY), f"{CLOCK_FAMILY[0]} {floatToGoString(view.clock_us / 1e6)}\n"]
        parts.append(_header(*INDICATOR_FAMILIES[0]))
        parts.extend([f"{s[0]}{number(n)}\n" for s, n, _d in rows])
        parts.append(_header(*INDICATOR_FAMILIES[1]))
        parts.extend([f"{s[1]}{number(d)}\n" for s, _n, d in rows])
        parts.append(_header(*INDICATOR_FAMILIES[2]))
        # 0 <= n/d <= 1, where floatToGoString is repr (it differs from 1e6 up)
        parts.extend([f"{s[2]}{n / d!r}\n" for s, n, d in rows if d])
        parts.append(_header(*INDICATOR_FAMILIES[3]))
        parts.extend([s[3] for s, _n, _d in rows])
        parts.append(_header(*INDICATOR_FAMILIES[4]))
        parts.extend([f"{s[4]}{'1.0' if s[5](n, d) else '0.0'}\n" for s, n, d in rows])
        units = sorted(open_counts.items())
        for (name, help_text), field_name in zip(OPEN_CASE_FAMILIES, OPEN_CASE_FIELDS):
            parts.append(_header(name, help_text))
            parts.extend(
                f'{name}{{unit="{_label_value(unit)}"}} {number(getattr(counts, field_name))}\n'
                for unit, counts in units
            )
        return "".join(parts)


    def _bound_sectors(self, view, scopes, rows, flat_n, flat_d):
        """Rows of sectors outside the registry summed under ``unknown`` (in the order of
        ``stream.labels.bound_figures``)."""
        width = len(WINDOWS)
        foreign = self._foreign
        buckets: dict[tuple[str, int], list[int]] = {}
        for slot, is_foreign in enumerate(foreign):
            if is_foreign:
                for wi in range(width):
                    bucket = buckets.setdefault((scopes[slot][0], wi), [0, 0])
                    bucket[0] += flat_n[slot * width + wi]
                    bucket[1] += flat_d[slot * width + wi]
        rows = list(rows)
        for (indicator, wi), (n, d) in list(buckets.items()):
            slot = view.slot_of((indicator, ALL, UNKNOWN))
            if slot is not None:
                i = slot * width + wi
                rows[i] = (rows[i][0], rows[i][1] + n, rows[i][2] + d)
                del buckets[(indicator, wi)]
        kept = [row for i, row in enumerate(rows) if not foreign[i // width]]
        for (indicator, wi), (n, d) in buckets.items():
            series = self._unknown_series.get(indicator)
            if series is None:
                series = self._unknown_series[indicator] = self._scope_series((indicator, ALL, UNKNOWN))
            kept.append((series[wi], n, d))
        return kept


class WorkerMetrics:
    """The worker's counters and histograms (``registry``); ``/metrics`` appends the live
    families written by ``LiveExposition`` (``render(live_text)``)."""

    def __init__(self, figures: Callable[[], LiveFigures | None] | None = None) -> None:
        # ``figures`` is ignored: the engine still passes it (engine.py is being reshaped
        # by its owner; drop the argument there, then here)
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
        self.unknown_units = Counter(
            "tthc_unknown_unit_events",
            "Accepted events whose unit is not in the registry at their time (attributed to unit=unknown)",
            registry=r,
        )
        self.write_errors = Counter(
            "tthc_clickhouse_write_errors", "Failed ClickHouse writes (retried)", registry=r
        )

    def render(self, live_text: str = "") -> bytes:
        """The exposition: counters and histograms, then the live families."""
        return generate_latest(self.registry) + live_text.encode()
