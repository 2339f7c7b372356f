"""The boards as code: committed JSON = generator output, targets as thresholds, Vietnamese names.

Every query of the boards is executed against real data in
``tests/integration/test_board_queries.py``; this file checks the generated artefacts.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal
from pathlib import Path

import pytest

from pipeline.boards.build import BOARDS, DASHBOARDS_DIR, generate
from pipeline.boards.panels import UNIT_QUERY, UNIT_REGEX, UNIT_UID, unit_board_url
from pipeline.boards.provision import PROVISIONING_DIR, provisioning_files
from pipeline.boards.queries import (
    CLICKHOUSE_TYPE,
    CLICKHOUSE_UID,
    PROMETHEUS_TYPE,
    PROMETHEUS_UID,
    STRICT_STEP,
    below_target_expr,
    expand_clickhouse_macros,
    panel_queries,
    substitute_variables,
)
from pipeline.cli import main
from pipeline.config import load_settings
from pipeline.core.indicators import INDICATORS, NAMES_VI
from pipeline.core.targets import parse_targets
from pipeline.core.windows import WINDOWS
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


def test_build_out_writes_everything_under_out_and_nothing_in_the_repository(tmp_path: Path, capsys, monkeypatch):
    import pipeline.boards.build as build
    import pipeline.boards.provision as provision

    # the repository's own directories point somewhere that must stay empty
    monkeypatch.setattr(build, "DASHBOARDS_DIR", tmp_path / "repo-dashboards")
    monkeypatch.setattr(provision, "PROVISIONING_DIR", tmp_path / "repo-provisioning")
    out = tmp_path / "out"
    assert main(["grafana", "build", "--out", str(out)]) == 0
    assert {p.name: p.read_text(encoding="utf-8") for p in (out / "dashboards").glob("*.json")} == generate(TARGETS)
    for relative, text in provisioning_files().items():
        assert (out / "provisioning" / relative).read_text(encoding="utf-8") == text, relative
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    printed = capsys.readouterr().out.splitlines()
    assert len(printed) == len(BOARDS) + len(provisioning_files())
    assert all(line.startswith(f"grafana: wrote {out}/") for line in printed)


def test_four_boards_with_their_uids_titles_and_variables():
    boards = _boards()
    assert {name: (b["uid"], b["title"]) for name, b in boards.items()} == EXPECTED
    assert [spec.file_name for spec in BOARDS] == list(EXPECTED)
    variables = {b["uid"]: [v["name"] for v in b.get("templating", {}).get("list", [])] for b in boards.values()}
    assert variables["tthc-don-vi"] == ["ds_prometheus", "ds_clickhouse", "unit", "window"]
    assert variables["tthc-tong-quan"] == ["ds_prometheus", "ds_clickhouse", "window"]
    assert variables["tthc-linh-vuc"] == ["ds_prometheus", "window"]
    assert variables["tthc-van-hanh"] == ["ds_prometheus"]
    unit_var = boards["tthc-don-vi.json"]["templating"]["list"][2]
    assert unit_var["query"] == UNIT_QUERY and unit_var["datasource"]["uid"] == "${ds_prometheus}"
    # alert texts link to the drill-down with the unit's label
    assert unit_board_url("XA_A") == f"/d/{UNIT_UID}?var-unit=XA_A"


def test_boards_import_into_any_grafana_through_data_source_variables():
    """No panel names a data source by a fixed uid: each goes through a data source variable
    whose default is the provisioned uid, so file provisioning and Grafana's "Import dashboard"
    both resolve it."""
    for name, board in _boards().items():
        text = json.dumps(board["panels"])
        assert PROMETHEUS_UID not in text and CLICKHOUSE_UID not in text, name
        sources = {v["name"]: v for v in board["templating"]["list"] if v["type"] == "datasource"}
        assert sources["ds_prometheus"]["query"] == PROMETHEUS_TYPE
        assert sources["ds_prometheus"]["current"]["value"] == PROMETHEUS_UID
        if "ds_clickhouse" in sources:
            assert sources["ds_clickhouse"]["current"]["value"] == CLICKHOUSE_UID
        used = {t["datasource"]["uid"] for t in panel_queries(board)}
        assert used <= {f"${{{n}}}" for n in sources}, name


def test_window_picker_in_vietnamese_and_in_the_windows_order():
    for name, board in _boards().items():
        found = [v for v in board["templating"]["list"] if v["name"] == "window"]
        if not found:
            continue
        (window,) = found
        assert window["type"] == "custom"
        assert [o["value"] for o in window["options"]] == list(WINDOWS)
        assert [o["text"] for o in window["options"]][:2] == ["1 giờ", "24 giờ"]
        assert window["current"] == {"text": "Từ đầu năm", "value": "ytd", "selected": True}
        assert window["query"].startswith("1 giờ : 1h, 24 giờ : 24h, ")


def test_unit_picker_shows_the_registry_name_and_queries_by_code():
    import re

    (unit,) = [v for v in _boards()["tthc-don-vi.json"]["templating"]["list"] if v["name"] == "unit"]
    assert unit["regex"] == UNIT_REGEX
    # Grafana renders each query_result series as {label="value",...} value timestamp, labels sorted
    line = '{name="Sở Tư pháp",unit="SO_TP"} 1 1735689600000'
    match = re.search(UNIT_REGEX.strip("/").replace("(?<", "(?P<"), line)
    assert (match["text"], match["value"]) == ("Sở Tư pháp", "SO_TP")


def test_thresholds_print_clean():
    for name, text in generate(TARGETS).items():
        assert not re.search(r"\d\.\d*0000000000\d", text), f"{name}: a threshold printed with float noise"
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
            assert (source["type"], source["uid"]) in {(PROMETHEUS_TYPE, "${ds_prometheus}"), (CLICKHOUSE_TYPE, "${ds_clickhouse}")}
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
            assert value < green < value + 2 * STRICT_STEP and green == round(green, 9)
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
    assert _green_from(_panel(overview, NAMES_VI["on_time"])) == 0.900000001
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
