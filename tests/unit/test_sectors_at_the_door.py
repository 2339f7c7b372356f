"""Issue 20, finding 3: a received's sector outside the registry is mapped at the door, so
the live state (view slots, open-case scopes, the exposition's caches) is bounded by the
registry, and live = batch = oracle for the sector scope ``unknown``.

The real worker with 100,000 invented codes: tests/integration/test_label_bounds.py."""

from __future__ import annotations

import json
import random
import zlib

from pipeline.config import PROJECT_ROOT
from pipeline.contract.events import format_time, parse_time
from pipeline.contract.localtime import DAY_US
from pipeline.core.sectors import UNREGISTERED_SECTOR, SectorLabels, public_sector
from pipeline.core.view import ALL, indicator_figures
from pipeline.contract.events import message_key
from pipeline.feed.scenario import build_scenario
from pipeline.store.sectors import load_sectors
from pipeline.store.schema import CASE_COLUMNS
from pipeline.store.writer import _summary_values, event_row
from pipeline.core.cases import case_summary
from pipeline.stream.labels import bound_figures
from pipeline.stream.metrics import LiveExposition
from pipeline.stream.processor import ACCEPTED, DictRepository, LiveState, Processor, RawMessage, StoredCase, rebuild
from pipeline.targets_file import load_targets
from tests.oracle import expected_indicators

NOW = parse_time("2025-09-01T00:00:00Z")
RETENTION = 35 * DAY_US
KNOWN = frozenset(s.sector for s in load_sectors())
TARGETS = load_targets(PROJECT_ROOT / "deploy" / "targets.toml")


def _processor() -> Processor:
    live = LiveState(hold_retention_us=RETENTION, dedupe_retention_us=RETENTION)
    return Processor(DictRepository(), live, event_clock=True, sectors=SectorLabels(KNOWN))


def _invent(lines: list[bytes], share: float, seed: int = 7) -> list[bytes]:
    """The lines with the sector of about ``share`` of the receiveds replaced by a new invented code each."""
    rng = random.Random(seed)
    out = []
    for n, line in enumerate(lines):
        event = json.loads(line)
        if event.get("event_type") == "received" and rng.random() < share:
            event["sector"] = f"invented_{n}" if n % 2 else f"DAT_DAI'; -- {n}"
            line = json.dumps(event, ensure_ascii=False).encode()
        out.append(line)
    return out


def _feed(processor: Processor, lines: list[bytes]) -> list:
    results = []
    for offset, line in enumerate(lines):
        key = message_key(line)
        results.append(processor.process(RawMessage(key, line, zlib.crc32(key) % 3, offset), wall_now_us=NOW))
    return results


def test_live_figures_equal_the_oracle_with_unregistered_sectors_under_unknown():
    scenario = build_scenario(seed=9, cases=400, malformed_rate=0.0, duplicate_rate=0.0)
    lines = _invent(scenario.lines, 0.3)
    processor = _processor()
    _feed(processor, lines)
    live = processor.live
    now = live.view.clock_us
    figures = bound_figures(indicator_figures(live.view, TARGETS, live.extra_at(now)), TARGETS, KNOWN)
    got = {(f.indicator, f.unit, f.sector, f.window): (f.numerator, f.denominator) for f in figures if f.denominator}
    events = [json.loads(line) for line in lines]
    expected = expected_indicators(events, at=format_time(now), sectors=KNOWN)
    assert any(key[2] == "unknown" for key in expected)  # the test sees some
    assert got == expected
    # without the registry the oracle shows the invented codes: the mapping is what makes them equal
    assert any(k[2].startswith("invented_") for k in expected_indicators(events, at=format_time(now)))


def test_the_view_is_bounded_by_the_registry_whatever_codes_arrive():
    scenario = build_scenario(seed=5, cases=300, malformed_rate=0.0, duplicate_rate=0.0)
    few, many = _processor(), _processor()
    _feed(few, _invent(scenario.lines, 0.02))
    _feed(many, _invent(scenario.lines, 1.0))  # every received has a code of its own
    receiveds = sum(1 for line in scenario.lines if b'"received"' in line)
    assert receiveds > 250
    for processor in (few, many):
        sectors = {sector for _i, _u, sector in processor.live.view.columns()[0]}
        assert sectors <= KNOWN | {ALL, "unknown", UNREGISTERED_SECTOR}
    # all codes invented: one sector scope per indicator, whatever their number
    assert {s for _i, _u, s in many.live.view.columns()[0]} <= {ALL, "unknown", UNREGISTERED_SECTOR}
    assert len(many.live.view) <= len(few.live.view)
    exposition = LiveExposition(TARGETS, KNOWN)
    view = many.live.view
    text = exposition.render(view, many.live.open_cases.counts(view.clock_us, view.units()),
                             many.live.extra_at(view.clock_us))
    assert "invented_" not in text and UNREGISTERED_SECTOR not in text
    assert len(exposition._series) == len(view) * 7  # the cached label text: one entry per slot and window


def test_the_fact_keeps_the_code_sent_the_record_and_labels_the_mapped_one():
    processor = _processor()
    event = {"schema_version": 1, "event_id": "r1", "event_type": "received", "case_id": "C1", "unit_id": "U1",
             "occurred_at": "2025-08-01T08:00:00+07:00", "procedure_code": "p", "sector": "xx_new",
             "channel": "direct", "due_at": "2025-08-05T17:00:00+07:00"}
    registered = dict(event, event_id="r2", case_id="C2", sector="ho_tich")
    other, known = _feed(processor, [json.dumps(event).encode(), json.dumps(registered).encode()])
    assert other.outcome == known.outcome == ACCEPTED
    assert (other.sector_label, known.sector_label) == ("unknown", "ho_tich")
    assert other.event.fields["sector"] == "xx_new"  # the fact row and its raw JSON keep the code sent
    row = event_row(other.event, 0, 0, 0, other.unit_label, other.sector_label)
    assert row[7] == "xx_new" and row[-1] == "unknown"
    assert event_row(known.event, 0, 1, 0)[-1] == "ho_tich"
    assert other.case.state.to_dict() != known.case.state.to_dict()
    record = json.loads(other.case.to_bytes())  # the changelog record: the mapped code, not the one sent
    assert UNREGISTERED_SECTOR in record["events"][0] and "xx_new" not in other.case.to_bytes().decode()
    assert _summary_values(case_summary(other.case.state, NOW), 1, 0)[CASE_COLUMNS.index("sector")] == "unknown"
    assert public_sector(UNREGISTERED_SECTOR) == "unknown" and public_sector("ho_tich") == "ho_tich"


def test_a_rebuild_from_records_with_mapped_sectors_equals_the_incremental_state():
    scenario = build_scenario(seed=4, cases=200, malformed_rate=0.0, duplicate_rate=0.0)
    processor = _processor()
    _feed(processor, _invent(scenario.lines, 0.5))
    live = processor.live
    fresh = LiveState(hold_retention_us=RETENTION, dedupe_retention_us=RETENTION)
    cases = [(p, StoredCase.from_bytes(d)) for p, records in processor.repository.records.items()
             for d in records.values()]
    list(rebuild(fresh, cases, live.partition_clock, event_clock=True, wall_now_us=NOW))
    assert fresh.view.clock_us == live.view.clock_us

    def nonzero(state):
        return {k: v for k, v in state.view.totals_dict().items() if v != (0, 0)}

    assert nonzero(fresh) == nonzero(live)
    assert any(k.sector == UNREGISTERED_SECTOR for k in nonzero(fresh))
