"""The 766 score (pipeline.core.score766): maxima, the published scoring rule, items
without data, items dossier data cannot carry, and the ranking."""

from __future__ import annotations

import pytest

from pipeline.core.score766 import GROUPS, ITEMS, TOTAL_POINTS, points, rank_scores, score


def test_the_groups_and_items_add_up_to_100_points():
    assert TOTAL_POINTS == 100
    assert sum(i.max_points for i in ITEMS) == 100
    for g in GROUPS:
        assert sum(i.max_points for i in ITEMS if i.group == g.code) == g.max_points, g
    assert {g.code: g.max_points for g in GROUPS} == {
        "CKMB": 18, "TDGQ": 20, "DVCTT": 12, "TTTT": 10, "SOHOA": 22, "HAILONG": 18}
    # confirmed maxima in the press: 2.1 = 20, 5.4 = 6
    assert next(i for i in ITEMS if i.code == "2.1").max_points == 20
    assert next(i for i in ITEMS if i.code == "5.4").max_points == 6


@pytest.mark.parametrize("ratio,maximum,threshold,expected", [
    (0.9, 20, None, 18.0), (1.0, 20, None, 20.0), (0.0, 6, None, 0.0),
    (0.85, 4, 0.8, 4.0), (0.8, 4, 0.8, 4.0), (0.4, 4, 0.8, 2.0), (0.45, 6, 0.9, 3.0),
])
def test_points_follow_the_published_rule(ratio, maximum, threshold, expected):
    assert points(ratio, maximum, threshold) == pytest.approx(expected)


def test_a_unit_score_never_counts_a_not_computable_item_as_zero():
    figures = {"on_time_766": (90, 100), "digitized": (70, 100), "on_time": (95, 100), "satisfaction": (96, 100)}
    s = score("U1", figures)
    ckmb = s.group("CKMB")
    assert not ckmb.computable and ckmb.not_computable == 18 and ckmb.assessable == 0
    tdgq = s.group("TDGQ")
    assert tdgq.earned == pytest.approx(18.0) and tdgq.assessable == 20
    sohoa = s.group("SOHOA")
    assert sohoa.earned == pytest.approx(4 * 0.7 / 0.8) and sohoa.assessable == 4  # only 4.2 had dossiers
    assert sohoa.not_computable == 8
    hl = s.group("HAILONG")
    # 5.4: 100% - (5% late + 4% unhappy) = 91% >= 90%: full points; 5.2 had no feedback
    assert hl.earned == pytest.approx(6.0) and hl.assessable == 6
    assert s.assessable == 30 and s.not_computable == sum(i.max_points for i in ITEMS if i.indicator is None)
    assert s.share == pytest.approx((18 + 3.5 + 6) / 30)


def test_ranking_by_score_puts_a_unit_without_late_dossiers_first():
    """The issue's case: one late dossier (with an apology) must not rank above none late."""
    clean = score("LUC_NGAN", {"on_time_766": (40, 40), "on_time": (40, 40)})
    one_late = score("BG_CITY", {"on_time_766": (39, 40), "on_time": (39, 40), "apology_coverage": (1, 1)})
    assert [s.unit for s in rank_scores([one_late, clean])] == ["LUC_NGAN", "BG_CITY"]
    nothing = score("EMPTY", {})
    assert nothing.share is None and rank_scores([nothing, clean])[-1].unit == "EMPTY"


def test_live_score_gauges_follow_the_views_month_figures():
    """The live families (pipeline/stream/score_metrics.py) from the processor's view."""
    from pipeline.config import PROJECT_ROOT
    from pipeline.targets_file import load_targets
    from pipeline.core.view import indicator_figures
    from pipeline.feed.scenario import build_scenario
    from pipeline.stream.score_metrics import score_exposition, scores_of
    from tests.unit.test_processor import _replayed

    processor = _replayed(build_scenario(seed=9, cases=300))
    live = processor.live
    now = live.view.clock_us
    figures = indicator_figures(live.view, load_targets(PROJECT_ROOT / "deploy" / "targets.toml"), live.extra_at(now))
    scores = {s.unit: s for s in scores_of(figures)}
    assert "all" in scores and len(scores) > 2
    province = {f.indicator: (f.numerator, f.denominator) for f in figures
                if f.unit == "all" and f.sector == "all" and f.window == "mtd"}
    assert scores["all"] == score("all", province)

    class Current:
        indicators = figures

    text = score_exposition(Current())
    line = f'tthc_score_766_points{{group="TDGQ",unit="all"}} '
    assert line in text
    value = float(text.split(line)[1].split("\n")[0])
    assert value == pytest.approx(scores["all"].group("TDGQ").earned)
    assert 'tthc_score_766_not_computable{group="CKMB"} 18.0' in text
    assert 'unit="all",group="CKMB"' not in text and 'group="CKMB",unit="all"' not in text  # never a zero score
