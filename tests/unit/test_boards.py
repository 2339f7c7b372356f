"""The boards as code: committed JSON = generator output, targets as thresholds, Vietnamese names.

Every query of the boards is executed against real data in
``tests/integration/test_board_queries.py``; this file checks the generated artefacts.
"""

from __future__ import annotations

import json
import math
from decimal import Decimal
from pathlib import Path

import pytest

from pipeline.boards.build import BOARDS, DASHBOARDS_DIR, generate
from pipeline.boards.panels import UNIT_UID, unit_board_url
from pipeline.boards.provision import PROVISIONING_DIR, provisioning_files
from pipeline.boards.queries import (
    CLICKHOUSE_TYPE,
    CLICKHOUSE_UID,
    PROMETHEUS_TYPE,
    PROMETHEUS_UID,
    below_target_expr,
    expand_clickhouse_macros,
    panel_queries,
    substitute_variables,
)
from pipeline.cli import main
from pipeline.config import load_settings
from pipeline.core.indicators import INDICATORS, NAMES_VI
from pipeline.core.targets import parse_targets
from pipeline.targets_file import load_targets

TARGETS = load_targets(load_settings(environ={}).targets_file)
EXPECTED = {
    "tthc-tong-quan.json": ("tthc-tong-quan", "Tổng quan tỉnh"),
    "tthc-don-vi.json": ("tthc-don-vi", "Chi tiết đơn vị"),
    "tthc-linh-vuc.json": ("tthc-linh-vuc", "Lĩnh vực"),
    "tthc-van-hanh.json": ("tthc-van-hanh", "Vận hành hệ thống"),
}


def _boards(targets=TARGETS) -> dict[str, dict]:
    return {name: json.loads(text) for name, text in generate(targets).items()}


def _panels(board: dict) -> list[dict]:
    out = []
    for panel in board["panels"]:
        out.append(panel)
        out.extend(panel.get("panels") or [])
    return out


def _panel(board: dict, title: str) -> dict:
    (found,) = [p for p in _panels(board) if p.get("title") == title]
    return found


def _green_from(panel: dict) -> float:
    steps = panel["fieldConfig"]["defaults"]["thresholds"]["steps"]
    assert steps[0] == {"value": None, "color": "red"}
    assert steps[1]["color"] == "green"
    return steps[1]["value"]


def test_committed_boards_and_provisioning_equal_the_generator_output():
    """Drift: edit pipeline/boards, then run `python -m pipeline grafana build`."""
    committed = {p.name: p.read_text(encoding="utf-8") for p in DASHBOARDS_DIR.glob("*.json")}
    assert committed == generate(TARGETS), "dashboards/ is stale: run python -m pipeline grafana build"
    for relative, text in provisioning_files().items():
        assert (PROVISIONING_DIR / relative).read_text(encoding="utf-8") == text, relative


def test_build_command_writes_the_same_files(tmp_path: Path, capsys):
    assert main(["grafana", "build", "--out", str(tmp_path)]) == 0
    assert {p.name: p.read_text(encoding="utf-8") for p in tmp_path.glob("*.json")} == generate(TARGETS)
    assert "tthc-tong-quan.json" in capsys.readouterr().out


def test_four_boards_with_their_uids_titles_and_variables():
    boards = _boards()
    assert {name: (b["uid"], b["title"]) for name, b in boards.items()} == EXPECTED
    assert [spec.file_name for spec in BOARDS] == list(EXPECTED)
    variables = {b["uid"]: [v["name"] for v in b.get("templating", {}).get("list", [])] for b in boards.values()}
    assert variables["tthc-don-vi"] == ["unit", "window"]
    assert variables["tthc-tong-quan"] == ["window"] and variables["tthc-linh-vuc"] == ["window"]
    unit_var = boards["tthc-don-vi.json"]["templating"]["list"][0]
    assert unit_var["query"].startswith("label_values(") and unit_var["datasource"]["uid"] == PROMETHEUS_UID
    # alert texts link to the drill-down with the unit's label
    assert unit_board_url("XA_A") == f"/d/{UNIT_UID}?var-unit=XA_A"


def test_every_panel_has_a_vietnamese_title_description_and_a_known_data_source():
    for name, board in _boards().items():
        ids = [p["id"] for p in _panels(board) if p["type"] != "row"]
        assert len(ids) == len(set(ids)), f"{name}: duplicate panel ids"
        for panel in _panels(board):
            assert panel.get("title"), name
            if panel["type"] == "row":
                continue
            assert panel.get("description"), f"{name}: {panel['title']} has no description"
            x, w = panel["gridPos"]["x"], panel["gridPos"]["w"]
            assert 0 <= x and x + w <= 24, f"{name}: {panel['title']} overflows the grid"
            assert panel["targets"], f"{name}: {panel['title']} has no query"
        for target in panel_queries(board):
            source = target["datasource"]
            assert (source["type"], source["uid"]) in {(PROMETHEUS_TYPE, PROMETHEUS_UID), (CLICKHOUSE_TYPE, CLICKHOUSE_UID)}
            if source["type"] == CLICKHOUSE_TYPE:  # the official plugin's query model
                assert target["editorType"] == "sql" and target["rawSql"].lstrip().upper().startswith("SELECT")
                assert (target["format"], target["queryType"]) in {(1, "table"), (0, "timeSeries")}
            else:
                assert target["expr"]


def test_indicator_panels_carry_the_readme_names_and_the_targets_as_thresholds():
    boards = _boards()
    overview, unit = boards["tthc-tong-quan.json"], boards["tthc-don-vi.json"]
    for indicator in INDICATORS:
        op, value = TARGETS.target_for(indicator, "all")
        green = _green_from(_panel(overview, NAMES_VI[indicator]))
        assert _green_from(_panel(unit, NAMES_VI[indicator])) == green
        if op == ">":  # strict: exactly the target is not enough
            assert green > value and green == math.nextafter(value, math.inf)
        else:
            assert green == value
    # the status map colours each indicator's column by its own target, shown by its name
    matrix = _panel(overview, "Bản đồ trạng thái: đơn vị × chỉ số")
    by_column = {o["matcher"]["options"]: o["properties"] for o in matrix["fieldConfig"]["overrides"]}
    assert set(by_column) == set(INDICATORS)
    assert {"id": "displayName", "value": NAMES_VI["vneid_auth"]} in by_column["vneid_auth"]


def test_sector_board_draws_the_sector_targets():
    sectors = _boards()["tthc-linh-vuc.json"]
    satisfaction = _panel(sectors, NAMES_VI["satisfaction"])
    assert _green_from(satisfaction) == 0.95
    overrides = {o["matcher"]["options"]: o["properties"][0]["value"]["steps"][1]["value"] for o in satisfaction["fieldConfig"]["overrides"]}
    assert overrides == {"dat_dai": 0.85, "xay_dung": 0.85, "dau_tu": 0.85}
    assert "85%" in sectors["description"]
    # feedback has no sector scopes, so no sector panel for it
    assert not [p for p in _panels(sectors) if p.get("title") == NAMES_VI["feedback_on_time"]]


def test_a_new_plan_changes_the_boards_without_code():
    text = Path(load_settings(environ={}).targets_file).read_text().replace("value = 0.95", "value = 0.9", 1)
    import tomllib

    changed = parse_targets(tomllib.loads(text, parse_float=Decimal))
    overview = _boards(changed)["tthc-tong-quan.json"]
    assert _green_from(_panel(overview, NAMES_VI["on_time"])) == math.nextafter(0.9, math.inf)
    assert "<= 0.9)" in below_target_expr(changed, 'unit!="all"')


def test_below_target_expression_follows_the_targets_and_min_volume():
    expr = below_target_expr(TARGETS, 'unit="all",sector!="all"', ("dat_dai",))
    assert 'indicator="on_time",unit="all",sector!="all"} <= 0.95' in expr  # "> 95%" fails at <= 0.95
    assert 'indicator="online_payment",unit="all",sector!="all"} < 0.8' in expr  # ">= 80%" fails below
    assert 'indicator="digitized",unit="all",sector!="all"} != 1.0' in expr  # "= 100%"
    assert 'indicator="satisfaction",unit="all",sector!="all",sector!~"dat_dai"} < 0.95' in expr
    assert 'indicator="satisfaction",unit="all",sector!="all",sector="dat_dai"} < 0.85' in expr
    assert expr.endswith(f">= {TARGETS.min_volume})")


def test_clickhouse_macros_expand_as_the_plugin_does():
    sql = "SELECT $__timeInterval(t) AS time FROM x WHERE $__timeFilter(t) AND d >= $__fromTime AND $__dateFilter(d)"
    assert expand_clickhouse_macros(sql, from_s=1735689600, to_s=1735776000, interval_s=60) == (
        "SELECT toStartOfInterval(toDateTime(t), INTERVAL 60 second) AS time FROM x "
        "WHERE t >= toDateTime(1735689600) AND t <= toDateTime(1735776000) AND d >= toDateTime(1735689600) "
        "AND d >= toDate('2025-01-01') AND d <= toDate('2025-01-02')"
    )
    with pytest.raises(ValueError, match="unknown ClickHouse macro"):
        expand_clickhouse_macros("SELECT $__nope(x)", from_s=0, to_s=1, interval_s=1)


def test_variables_substitute_like_grafana():
    text = 'x{unit="$unit",window="${window}"} $__rate_interval WHERE u = ${unit:sqlstring}'
    assert substitute_variables(text, {"unit": "O'B", "window": "ytd"}) == (
        "x{unit=\"O'B\",window=\"ytd\"} $__rate_interval WHERE u = 'O''B'"
    )
