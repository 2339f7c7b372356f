"""``tthc_unit_info`` and ``tthc_consumer_lag``: two collectors for the worker's registry.

* ``tthc_unit_info{unit, name, kind, parent} 1`` — the units registry
  (``deploy/units.csv``), so alert texts and boards can join the Vietnamese names in
  (``… * on (unit) group_left (name) tthc_unit_info``). Exported: the units whose validity
  period contains the local date (Asia/Ho_Chi_Minh) of the worker's clock T — with the
  event clock, the units of the data's time; before T has a value (event clock, nothing
  processed yet), the rows still open (no ``valid_to``). A unit with two rows valid on the
  same day is exported once, from the row with the latest ``valid_from``.
* ``tthc_consumer_lag{partition}`` — input messages waiting per partition of the input
  topic assigned to this worker: the partition's high watermark (the offset the next
  produced message will get, as the consumer's last fetch response reported it: Faust's
  public ``consumer.highwater``) minus the next offset to process: the last committed one
  (``app.monitor.tp_committed_offsets``, Faust's own sensor); a partition with nothing
  committed yet by this process is left out until it has. Refreshed every few seconds by
  a Faust timer without waiting on the broker (asking it through the consumer thread
  could stall the timer, and the gauge with it); scrapes read the cached figures.

Hook-up (in the worker, once the app, its registry and its clock exist)::

    from pipeline.stream.registry_metrics import install_registry_metrics
    install_registry_metrics(registry, app, topic=settings.topic,
                             units_file=settings.units_file, clock_us=worker.clock_us)
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date
from os import PathLike
from typing import Any, Callable, Iterable, Mapping, Sequence

from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from pipeline.core.windows import local_date
from pipeline.store.units import Unit, load_units

__all__ = [
    "ConsumerLagCollector",
    "LagTracker",
    "RegistryMetrics",
    "UnitInfoCollector",
    "consumer_lag",
    "install_registry_metrics",
    "local_day",
    "units_in_force",
]

log = logging.getLogger("pipeline.worker")
LAG_REFRESH_S = 5.0


# ------------------------------------------------------------------ pure functions


def local_day(clock_us: int) -> date:
    """The calendar date of the instant in Asia/Ho_Chi_Minh."""
    return local_date(clock_us)


def units_in_force(units: Iterable[Unit], clock_us: int) -> list[Unit]:
    """One row per unit: valid on T's local date (or still open when ``clock_us`` <= 0),
    the latest ``valid_from`` winning; sorted by unit id."""
    if clock_us > 0:
        day = local_day(clock_us)
        rows = [u for u in units if u.valid_on(day)]
    else:
        rows = [u for u in units if u.valid_to is None]
    chosen: dict[str, Unit] = {}
    for unit in rows:
        current = chosen.get(unit.unit_id)
        if current is None or unit.valid_from > current.valid_from:
            chosen[unit.unit_id] = unit
    return [chosen[k] for k in sorted(chosen)]


def consumer_lag(highwaters: Mapping[int, int | None], next_offsets: Mapping[int, int | None]) -> dict[int, int]:
    """Messages waiting per partition: high watermark − next offset to process (never < 0).

    A partition whose high watermark is unknown is left out; one with no known next
    offset counts everything up to the high watermark as waiting only if the watermark
    is 0 (an empty partition) — otherwise it is left out too, rather than guessed.
    """
    lag: dict[int, int] = {}
    for partition, high in highwaters.items():
        if high is None:
            continue
        done = next_offsets.get(partition)
        if done is None:
            if high == 0:
                lag[partition] = 0
            continue
        lag[partition] = max(0, int(high) - int(done))
    return lag


# ------------------------------------------------------------------ collectors


class UnitInfoCollector(Collector):
    """``tthc_unit_info{unit,name,kind,parent} 1`` for the units in force at T."""

    def __init__(self, units: Sequence[Unit], clock_us: Callable[[], int]) -> None:
        self.units = list(units)
        self.clock_us = clock_us

    def collect(self) -> Iterable[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "tthc_unit_info",
            "Units registry (deploy/units.csv): units in force at the clock T, value 1",
            labels=["unit", "name", "kind", "parent"],
        )
        for unit in units_in_force(self.units, self.clock_us() or 0):
            family.add_metric([unit.unit_id, unit.name_vi, unit.kind, unit.parent_id or ""], 1)
        yield family


class ConsumerLagCollector(Collector):
    """``tthc_consumer_lag{partition}`` from the figures of the last refresh."""

    def __init__(self) -> None:
        self.lag: dict[int, int] = {}

    def collect(self) -> Iterable[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "tthc_consumer_lag",
            "Input messages waiting per assigned partition: high watermark - next offset to process",
            labels=["partition"],
        )
        for partition, waiting in sorted(self.lag.items()):
            family.add_metric([str(partition)], waiting)
        yield family


@dataclass
class LagTracker:
    """Refreshes a :class:`ConsumerLagCollector` from a Faust app (its consumer and monitor)."""

    app: Any
    topic: str
    collector: ConsumerLagCollector
    failures: int = field(default=0)

    async def refresh(self) -> None:
        try:
            consumer = self.app.consumer
            tps = sorted((tp for tp in consumer.assignment() if tp.topic == self.topic), key=lambda tp: tp.partition)
            if not tps:
                self.collector.lag = {}
                return
            highwaters = {tp: consumer.highwater(tp) for tp in tps}
            committed = self.app.monitor.tp_committed_offsets or {}
            next_offsets: dict[int, int | None] = {tp.partition: committed.get(tp) for tp in tps}
            self.collector.lag = consumer_lag({tp.partition: highwaters.get(tp) for tp in tps}, next_offsets)
        except Exception as exc:  # a rebalance or a broker hiccup: keep the last figures
            self.failures += 1
            log.debug("consumer lag not refreshed: %s", exc)


@dataclass
class RegistryMetrics:
    units: UnitInfoCollector
    lag: ConsumerLagCollector
    tracker: LagTracker


def install_registry_metrics(
    registry: CollectorRegistry,
    app: Any,
    *,
    topic: str,
    units_file: str | PathLike[str],
    clock_us: Callable[[], int],
    interval: float = LAG_REFRESH_S,
) -> RegistryMetrics:
    """Register both collectors on ``registry`` and the lag refresh timer on the Faust ``app``
    (call before the app starts). Raises ``UserError`` for a bad units file."""
    units = UnitInfoCollector(load_units(units_file), clock_us)
    lag = ConsumerLagCollector()
    registry.register(units)
    registry.register(lag)
    tracker = LagTracker(app, topic, lag)
    app.timer(interval)(tracker.refresh)
    return RegistryMetrics(units, lag, tracker)
