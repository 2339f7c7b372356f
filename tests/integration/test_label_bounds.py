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


# --------------------------------------------------------------------------- issue 20, finding 3

INVENTED = 100_000


def _received(n: int, unit: str, sector: str, procedure: str) -> tuple[bytes, bytes]:
    """A valid ``received`` of its own case, resolved or not (open cases count too)."""
    case = f"bound-{n}"
    day = 3 + n % 20
    event = {
        "schema_version": 1, "event_id": f"{case}-r", "event_type": "received", "case_id": case,
        "unit_id": unit, "occurred_at": f"2025-03-{day:02d}T{8 + n % 9:02d}:{n % 60:02d}:00+07:00",
        "procedure_code": procedure, "sector": sector, "channel": ("direct", "online")[n % 2],
        "due_at": f"2025-03-{day + 5:02d}T17:00:00+07:00",
    }
    if n % 2:
        event["online_mode"] = "full"
    return case.encode(), json.dumps(event, ensure_ascii=False).encode()


def _scrape(worker: WorkerProcess, times: int = 5) -> tuple[float, int]:
    """(the slowest of ``times`` /metrics scrapes in seconds, exported indicator series)."""
    import time

    slowest, text = 0.0, b""
    for _ in range(times):
        started = time.monotonic()
        text = worker._get("/metrics")
        slowest = max(slowest, time.monotonic() - started)
    series = sum(1 for line in text.splitlines() if line.startswith(b"tthc_indicator_denominator{"))
    return slowest, series


def test_100k_invented_sector_and_unit_codes_keep_memory_and_scrape_bounded(infra):
    """Issue 20, finding 3: 100,000 receiveds with distinct invented sector, unit and
    procedure codes after 100,000 ordinary ones, through a real worker. Before, each new
    sector added view slots and cached exposition rows (10,000 gave 910,182 cached
    series and a 1.1 s scrape). Now the view's scopes and the exported series grow by the
    ``unknown`` scopes only; RSS and scrape time of both phases are printed."""
    from datetime import date

    from pipeline.config import PROJECT_ROOT
    from pipeline.core.registry import UnitRegistry
    from tests.integration.faultkit import Stopwatch, rss_mb

    units = UnitRegistry(load_units(PROJECT_ROOT / "deploy" / "units.csv")).units_on(date(2025, 3, 3))
    sectors = [s.sector for s in load_sectors()]
    normal = [_received(n, units[n % len(units)], sectors[n % len(sectors)], f"1.{n % 500:06d}")
              for n in range(INVENTED)]
    invented = [_received(INVENTED + n, f"U-{n}-x", f"sector_{n}_{'é' * (n % 5)}", f"P'{n}--")
                for n in range(INVENTED)]
    settings = isolated_settings(infra, "bounds", clock="event")
    worker = WorkerProcess(settings).start()
    try:
        rss_start = rss_mb(worker.process.pid)
        phases = []
        for name, items, total in (("ordinary", normal, INVENTED), ("invented", invented, 2 * INVENTED)):
            sent = Stopwatch()
            produce_raw(settings, items)
            worker.wait_processed(total, timeout=900)
            seconds = sent.seconds()
            scrape_s, series = _scrape(worker)
            phases.append((name, seconds, rss_mb(worker.process.pid), scrape_s, series,
                           worker.health()["view_scopes"]))
        assert worker.counter("tthc_events_total", outcome="accepted") == 2 * INVENTED
        assert worker.counter("tthc_unknown_unit_events_total") == INVENTED
    finally:
        worker.stop()
    print(f"\n[bounds] worker RSS at start {rss_start:.0f} MB")
    for name, seconds, rss, scrape_s, series, scopes in phases:
        print(f"[bounds] after {INVENTED:,} {name} receiveds ({seconds:.1f}s): RSS {rss:.0f} MB, slowest of 5 "
              f"/metrics scrapes {scrape_s * 1000:.0f} ms, {series:,} exported indicator series, "
              f"{scopes:,} view scopes")
    (_, _, rss_normal, _, series_normal, scopes_normal), (_, _, rss_invented, _, series_invented, scopes_invented) \
        = phases
    # the invented codes add the scopes of unit "unknown" and of the sector outside the
    # registry (one per indicator each), nothing per code
    assert scopes_invented <= scopes_normal + 2 * len(INDICATORS)
    assert series_invented <= series_normal + 2 * len(INDICATORS) * len(WINDOWS)
    assert scopes_invented <= len(INDICATORS) * (len(units) + len(sectors) + 4)
    # generous: the case records and event ids of 100,000 more cases are the normal growth
    assert rss_invented - rss_normal < max(300.0, 2 * (rss_normal - rss_start) + 100)
