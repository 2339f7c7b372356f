"""pipeline.stream.registry_metrics: tthc_unit_info and tthc_consumer_lag on a fresh registry."""

from __future__ import annotations

from datetime import date, datetime

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from pipeline.config import PROJECT_ROOT
from pipeline.store.units import Unit, load_units
from pipeline.stream.registry_metrics import (
    ConsumerLagCollector,
    UnitInfoCollector,
    consumer_lag,
    local_day,
    units_in_force,
)


def _us(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp() * 1_000_000)


def _samples(registry: CollectorRegistry, name: str) -> dict[tuple, float]:
    out = {}
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        for sample in family.samples:
            if sample.name == name:
                out[tuple(sorted(sample.labels.items()))] = sample.value
    return out


UNITS = [
    Unit("A", "Đơn vị A cũ", "district", "TINH", date(2020, 1, 1), date(2025, 6, 30)),
    Unit("A", "Đơn vị A mới", "commune", "TINH", date(2025, 7, 1)),
    Unit("B", "Huyện B", "district", "TINH", date(2020, 1, 1), date(2025, 6, 30)),
    Unit("C", "Sở C", "department", None, date(2025, 3, 1)),
]


def test_local_day_is_vietnam_time() -> None:
    assert local_day(_us("2025-06-30T17:30:00+00:00")) == date(2025, 7, 1)  # 00:30 in Hà Nội
    assert local_day(_us("2025-06-30T16:59:59+00:00")) == date(2025, 6, 30)


def test_units_in_force_follow_the_clock() -> None:
    before = units_in_force(UNITS, _us("2025-06-30T23:59:59+07:00"))
    assert [(u.unit_id, u.name_vi) for u in before] == [("A", "Đơn vị A cũ"), ("B", "Huyện B"), ("C", "Sở C")]
    after = units_in_force(UNITS, _us("2025-07-01T00:00:00+07:00"))
    assert [(u.unit_id, u.name_vi) for u in after] == [("A", "Đơn vị A mới"), ("C", "Sở C")]
    # no clock yet (event clock before the first event): the open rows
    assert [(u.unit_id, u.name_vi) for u in units_in_force(UNITS, 0)] == [("A", "Đơn vị A mới"), ("C", "Sở C")]


def test_overlapping_rows_give_one_series_latest_wins() -> None:
    rows = UNITS + [Unit("C", "Sở C (tên mới)", "department", "TINH", date(2025, 9, 1))]
    chosen = units_in_force(rows, _us("2025-10-01T12:00:00+07:00"))
    assert [(u.unit_id, u.name_vi) for u in chosen] == [("A", "Đơn vị A mới"), ("C", "Sở C (tên mới)")]


def test_unit_info_collector_exports_the_registry() -> None:
    now = {"us": _us("2025-07-15T09:00:00+07:00")}
    registry = CollectorRegistry()
    registry.register(UnitInfoCollector(UNITS, lambda: now["us"]))
    assert _samples(registry, "tthc_unit_info") == {
        (("kind", "commune"), ("name", "Đơn vị A mới"), ("parent", "TINH"), ("unit", "A")): 1.0,
        (("kind", "department"), ("name", "Sở C"), ("parent", ""), ("unit", "C")): 1.0,
    }
    now["us"] = _us("2025-01-15T09:00:00+07:00")  # the clock decides, at every scrape
    assert {dict(k)["unit"] for k in _samples(registry, "tthc_unit_info")} == {"A", "B"}


def test_unit_info_of_the_shipped_registry() -> None:
    units = load_units(PROJECT_ROOT / "deploy" / "units.csv")
    registry = CollectorRegistry()
    registry.register(UnitInfoCollector(units, lambda: _us("2025-09-15T10:00:00+07:00")))
    samples = {dict(k)["unit"]: dict(k) for k in _samples(registry, "tthc_unit_info")}
    assert samples["TTPVHCC"]["name"] == "Trung tâm Phục vụ hành chính công tỉnh Bắc Ninh"
    assert samples["SO_XD"] == {"unit": "SO_XD", "name": "Sở Xây dựng tỉnh Bắc Ninh", "kind": "department", "parent": "BAC_NINH"}
    assert all(u.kind != "district" for u in units_in_force(units, _us("2025-09-15T10:00:00+07:00")))
    assert len(samples) == len({u.unit_id for u in units if u.valid_on(date(2025, 9, 15))})


def test_consumer_lag_is_highwater_minus_next_offset() -> None:
    assert consumer_lag({0: 10, 1: 5, 2: 7, 3: None, 4: 0}, {0: 4, 1: 5, 2: 9, 3: 1, 4: None}) == {
        0: 6,  # six messages waiting
        1: 0,
        2: 0,  # a stale watermark never gives a negative lag
        4: 0,  # empty partition
    }
    assert consumer_lag({0: 3}, {}) == {}  # unknown progress: not guessed


def test_consumer_lag_collector() -> None:
    registry = CollectorRegistry()
    collector = ConsumerLagCollector()
    registry.register(collector)
    assert _samples(registry, "tthc_consumer_lag") == {}
    collector.lag = {1: 3, 0: 0}
    assert _samples(registry, "tthc_consumer_lag") == {(("partition", "0"),): 0.0, (("partition", "1"),): 3.0}

