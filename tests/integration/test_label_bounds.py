"""Hostile but valid events (unknown units and sectors, SQL/PromQL-looking codes, control
characters) through the real worker: every label value on /metrics stays in its closed set."""

from __future__ import annotations

import json

import pytest

from pipeline.contract.events import REASONS
from pipeline.core.indicators import INDICATORS
from pipeline.core.windows import WINDOWS
from pipeline.store.sectors import load_sectors
from pipeline.store.units import load_units
from tests.integration.faultkit import produce_raw
from tests.integration.workerproc import WorkerProcess, isolated_settings

pytestmark = pytest.mark.integration

HOSTILE = [
    "'; DROP TABLE case_events; --",
    'x"} or vector(1) #',
    '{__name__=~".+"}',
    "ctl\x00\x07\x1b[31m\r\n",
    "dat_dai ",
    "DAT_DAI",
]


def _events() -> list[tuple[bytes, bytes]]:
    registered_unit = "BG_TTPVHCC"  # in force in March 2025
    items = []
    for n, text in enumerate(HOSTILE * 4):
        case = f"hostile-{n}"
        unit = text if n % 2 == 0 else registered_unit
        sector = text if n % 3 != 2 else "ho_tich"
        received = {
            "schema_version": 1, "event_id": f"{case}-r", "event_type": "received", "case_id": case,
            "unit_id": unit, "occurred_at": "2025-03-03T09:00:00+07:00", "procedure_code": text[:64],
            "sector": sector, "channel": "online", "online_mode": "full", "due_at": "2025-03-10T17:00:00+07:00",
        }
        resolved = {
            "schema_version": 1, "event_id": f"{case}-s", "event_type": "resolved", "case_id": case,
            "unit_id": unit, "occurred_at": "2025-03-05T10:00:00+07:00",
        }
        for event in (received, resolved):
            items.append((case.encode(), json.dumps(event, ensure_ascii=False).encode()))
    return items


def load_units_ids() -> list[str]:
    from pipeline.config import PROJECT_ROOT

    return [u.unit_id for u in load_units(PROJECT_ROOT / "deploy" / "units.csv")]


def test_hostile_units_and_sectors_never_become_label_values(infra):
    settings = isolated_settings(infra, "labels", clock="event")
    items = _events()
    produce_raw(settings, items)
    worker = WorkerProcess(settings).start()
    try:
        worker.wait_processed(len(items))
        assert worker.counter("tthc_events_total", outcome="accepted") == len(items)
        samples = worker.metrics()
    finally:
        worker.stop()
    units = set(load_units_ids()) | {"all", "unknown"}
    sectors = {s.sector for s in load_sectors()} | {"all", "unknown"}
    closed = {
        "unit": units, "sector": sectors, "indicator": set(INDICATORS), "window": set(WINDOWS),
        "reason": set(REASONS), "outcome": {"accepted", "invalid", "duplicate"},
    }
    seen: dict[str, set[str]] = {}
    for (name, labels), _value in samples.items():
        for label, value in labels:
            seen.setdefault(label, set()).add(value)
            if label in closed:
                assert value in closed[label], (name, label, value)
            elif label == "partition":
                assert value.isdigit()
    assert "unknown" in seen["unit"] and "unknown" in seen["sector"]
    den = {dict(labels)["window"]: v for (name, labels), v in samples.items()
           if name == "tthc_indicator_denominator" and dict(labels)["indicator"] == "full_online"
           and dict(labels)["unit"] == "all" and dict(labels)["sector"] == "unknown"}
    assert den["ytd"] == sum(1 for n in range(len(HOSTILE) * 4) if n % 3 != 2)
