"""The worker's /metrics text: the fast live exposition equals prometheus_client's own."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from pipeline.config import PROJECT_ROOT
from pipeline.core.outcomes import Outcome
from pipeline.targets_file import load_targets
from pipeline.core.view import IndicatorView, OpenCaseCounts, indicator_figures
from pipeline.stream.metrics import LiveExposition, LiveFigures, WorkerMetrics
from tests.metrics_reference import reference_text

DAY = 86_400 * 1_000_000
T = 1_750_000_000 * 1_000_000
TARGETS = load_targets(PROJECT_ROOT / "deploy" / "targets.toml")


def _view() -> IndicatorView:
    view = IndicatorView(hold_retention_us=35 * DAY, clock_us=T)
    for i in range(30):
        view.apply(Outcome("on_time", "U1", "dat_dai", T - i * DAY, i % 4 != 0), +1)
        view.apply(Outcome("satisfaction", 'U"2\\', "dat_dai", T - i * 3600 * 1_000_000, True), +1)
    view.apply(Outcome("feedback_on_time", "U1", "", T - 200 * DAY, False), +1)  # only in ytd: 0/0 elsewhere
    view.apply(Outcome("online_payment", "U3", "ho_tich", T + DAY, True), +1)  # future: 0/0 everywhere
    return view


def test_the_live_exposition_is_byte_for_byte_what_the_collector_gives():
    view = _view()
    counts = {"U1": OpenCaseCounts(3, 2, 1, 1), 'U"2\\': OpenCaseCounts(0, 0, 0)}
    reference = reference_text(LiveFigures(view.clock_us, indicator_figures(view, TARGETS), counts))
    fast = LiveExposition(TARGETS).render(view, counts)
    assert fast == reference
    families = {f.name: f for f in text_string_to_metric_families(fast)}
    below = {
        (s.labels["unit"], s.labels["sector"], s.labels["window"]): s.value
        for s in families["tthc_indicator_below_target"].samples
        if s.labels["indicator"] == "on_time"
    }
    assert below[("U1", "all", "30d")] == 1.0  # 22/30 fails > 95% with 30 >= min volume
    assert below[("U1", "all", "24h")] == 0.0  # one dossier pages nobody
    due_soon = {s.labels["unit"]: s.value for s in families["tthc_due_soon_open_cases"].samples}
    assert due_soon == {"U1": 1.0, 'U"2\\': 0.0}


def test_a_rendering_reflects_later_changes_and_new_series():
    view = _view()
    exposition = LiveExposition(TARGETS)
    first = exposition.render(view, {})
    view.apply(Outcome("remote", "U9", "ho_tich", T, True), +1)
    second = exposition.render(view, {})
    assert 'unit="U9"' not in first and 'tthc_indicator_numerator{indicator="remote",sector="all",unit="U9",window="1h"} 1.0' in second


def test_metrics_without_a_live_view_still_export_the_counters():
    metrics = WorkerMetrics()
    text = metrics.render().decode()
    assert "tthc_events_total" in text and "tthc_indicator_numerator" not in text


def test_a_rebuilt_view_is_rendered_with_its_own_series():
    exposition = LiveExposition(TARGETS)
    first = IndicatorView(hold_retention_us=35 * DAY, clock_us=T)
    first.apply(Outcome("remote", "U1", "ho_tich", T, True), +1)
    exposition.render(first, {})
    rebuilt = IndicatorView(hold_retention_us=35 * DAY, clock_us=T)  # slots in another order
    rebuilt.apply(Outcome("remote", "U2", "ho_tich", T, False), +1)
    rebuilt.apply(Outcome("remote", "U1", "ho_tich", T, True), +1)
    assert exposition.render(rebuilt, {}) == reference_text(LiveFigures(rebuilt.clock_us, indicator_figures(rebuilt, TARGETS), {}))


def test_extra_counts_of_open_cases_are_rendered_like_the_collector_does():
    view = _view()
    view.ensure_cell("on_time_766", "U4", "ho_tich")
    extra = {("on_time_766", "U4", "all"): (2, 3), ("on_time_766", "all", "all"): (2, 3)}
    fast = LiveExposition(TARGETS).render(view, {}, extra)
    assert fast == reference_text(LiveFigures(view.clock_us, indicator_figures(view, TARGETS, extra), {}))
    assert 'tthc_indicator_denominator{indicator="on_time_766",sector="all",unit="U4",window="7d"} 3.0' in fast
