"""Bounded labels: sectors outside deploy/sectors.csv are exported summed under ``unknown``."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from pipeline.config import PROJECT_ROOT
from pipeline.core.outcomes import Outcome
from pipeline.targets_file import load_targets
from pipeline.core.view import IndicatorView, indicator_figures
from pipeline.store.sectors import load_sectors
from pipeline.stream.labels import bound_figures
from pipeline.stream.metrics import LiveExposition, LiveFigures
from tests.metrics_reference import reference_text

DAY = 86_400 * 1_000_000
T = 1_750_000_000 * 1_000_000
TARGETS = load_targets(PROJECT_ROOT / "deploy" / "targets.toml")
HOSTILE = ["'; DROP TABLE case_events; --", 'x"} or vector(1) #', "ctl\n\x00\x1b[31m", "{job=~\".+\"}", "dat_dai2"]
SECTORS = {s.sector for s in load_sectors()}


def _view(with_native_unknown: bool) -> IndicatorView:
    view = IndicatorView(hold_retention_us=35 * DAY, clock_us=T)
    for i in range(20):
        view.apply(Outcome("on_time", "U1", "dat_dai", T - i * DAY, i % 3 != 0), +1)
        view.apply(Outcome("on_time", "U2", HOSTILE[i % len(HOSTILE)], T - i * DAY, True), +1)
        view.apply(Outcome("remote", "U3", HOSTILE[i % 2], T - i * 3600 * 1_000_000, i % 2 == 0), +1)
    if with_native_unknown:  # an outcome held past the retention: sector "unknown" of the view itself
        view.apply(Outcome("on_time", "U1", "unknown", T - 40 * DAY, False), +1)
    return view


def _families(text: str) -> dict:
    return {f.name: f for f in text_string_to_metric_families(text)}


def test_foreign_sectors_are_summed_under_unknown_and_both_writers_agree_byte_for_byte():
    for native in (False, True):
        view = _view(native)
        figures = indicator_figures(view, TARGETS)
        bounded = bound_figures(figures, TARGETS)
        reference = reference_text(LiveFigures(view.clock_us, bounded, {}))
        fast = LiveExposition(TARGETS).render(view, {})
        assert fast == reference
        families = _families(fast)
        for name in ("tthc_indicator_numerator", "tthc_indicator_denominator", "tthc_indicator_below_target"):
            sectors = {s.labels["sector"] for s in families[name].samples}
            assert sectors <= SECTORS | {"all", "unknown"}, sectors
        den = {(s.labels["indicator"], s.labels["unit"], s.labels["sector"], s.labels["window"]): s.value
               for s in families["tthc_indicator_denominator"].samples}
        # nothing lost: province-wide ytd = registered sectors + unknown
        for indicator in ("on_time", "remote"):
            by_sector = sum(v for (i, u, sec, w), v in den.items() if i == indicator and u == "all" and sec != "all" and w == "ytd")
            assert by_sector == den[(indicator, "all", "all", "ytd")]
        assert den[("on_time", "all", "unknown", "ytd")] == 20 + (1 if native else 0)
        assert den[("remote", "all", "unknown", "1h")] == 1  # two hostile sectors, one outcome in the last hour


def test_registered_sectors_pass_unchanged():
    view = IndicatorView(hold_retention_us=35 * DAY, clock_us=T)
    view.apply(Outcome("on_time", "U1", "ho_tich", T, True), +1)
    figures = indicator_figures(view, TARGETS)
    assert bound_figures(figures, TARGETS) is figures
