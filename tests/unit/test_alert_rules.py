"""The generated Prometheus rules: no drift, promtool unit tests, every target's edge cases.

promtool comes from the Debian package `prometheus` (`make setup`); a missing promtool
fails these tests, it never skips them.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import pytest
import yaml

from pipeline.alerting.rules import RULE_FILES, RULES_DIR, RUNBOOKS_DIR, RuleOptions, render_rules, target_text, write_rules
from pipeline.config import PROJECT_ROOT
from pipeline.core.indicators import INDICATORS
from pipeline.core.targets import AlertingConfig, TargetsError, parse_targets
from pipeline.targets_file import load_targets
from tests.tools import required_tool

REPO = PROJECT_ROOT

TARGETS = PROJECT_ROOT / "deploy" / "targets.toml"
PROMTOOL_TESTS = PROJECT_ROOT / "tests" / "promtool"


def _promtool() -> str:
    return required_tool("promtool")


def _promtool_test(*files: Path) -> None:
    result = subprocess.run(
        [_promtool(), "test", "rules", *map(str, files)], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == len(files), result.stdout


# ------------------------------------------------------------------ drift


def test_committed_rules_are_what_the_generator_writes() -> None:
    expected = render_rules(load_targets(TARGETS))
    committed = {p.name: p.read_text(encoding="utf-8") for p in RULES_DIR.glob("*.yml")}
    assert sorted(committed) == sorted(expected), "rule files differ: run `python -m pipeline rules`"
    for name, text in expected.items():
        assert committed[name] == text, f"{name} is stale: run `python -m pipeline rules` and commit"


def test_a_changed_target_changes_the_rules(tmp_path: Path) -> None:
    text = TARGETS.read_text(encoding="utf-8").replace('[on_time]           # Hồ sơ giải quyết đúng hạn\nop = ">"\nvalue = 0.95',
                                                       '[on_time]\nop = ">="\nvalue = 0.9')
    assert text != TARGETS.read_text(encoding="utf-8")
    changed = tmp_path / "targets.toml"
    changed.write_text(text, encoding="utf-8")
    rules = render_rules(load_targets(changed))["tthc-recording.yml"]
    assert 'tthc:indicator_ratio:by_scope{indicator="on_time"} < 0.9\n' in rules
    assert "target: ≥ 90%" in rules


def test_cli_writes_the_files(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pipeline", "rules", "--out", str(tmp_path), "--for", "5s"],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(RULE_FILES)
    alerts = yaml.safe_load((tmp_path / "tthc-alerts.yml").read_text(encoding="utf-8"))
    rules = [rule for group in alerts["groups"] for rule in group["rules"]]
    assert {rule["for"] for rule in rules} == {"5s"}
    assert {rule["keep_firing_for"] for rule in rules if "keep_firing_for" in rule} == {"5s"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["rules", "--for", "soon"], "not a duration"),
        (["rules", "--out", "{tmp}"], "targets file not found"),
    ],
)
def test_cli_errors_are_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    env = {"PATH": "/usr/bin:/bin", "TTHC_TARGETS_FILE": str(tmp_path / "missing.toml")}
    argv = [sys.executable, "-m", "pipeline", *(a.replace("{tmp}", str(tmp_path)) for a in args)]
    result = subprocess.run(argv, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60, env=env)
    assert result.returncode == 2
    assert result.stderr.startswith("error: ") and message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------ [alerting]


def _data(**alerting) -> dict:
    base = {ind: {"op": ">=", "value": 1} for ind in INDICATORS}
    if alerting:
        base["alerting"] = alerting
    return base


def test_alerting_defaults_when_the_section_is_absent() -> None:
    assert parse_targets(_data()).alerting == AlertingConfig()
    assert load_targets(TARGETS).alerting.page_windows == ("24h", "7d")


@pytest.mark.parametrize(
    ("alerting", "message"),
    [
        ({"page_windows": ["24h", "2d"]}, "unknown window '2d'"),
        ({"page_windows": []}, "non-empty list"),
        ({"ticket_windows": ["30d", "30d"]}, "listed twice"),
        ({"page_for": "half an hour"}, "must be a duration"),
        ({"overdue_rise": 0}, "positive integer"),
        ({"grafana_url": "grafana"}, "http(s) URL"),
        ({"paging": True}, "unknown key 'paging'"),
    ],
)
def test_alerting_errors_name_the_key(alerting: dict, message: str) -> None:
    with pytest.raises(TargetsError, match="alerting") as info:
        parse_targets(_data(**alerting), source="t.toml")
    assert message in str(info.value) and "\n" not in str(info.value)


def test_options_change_for_and_grafana_only() -> None:
    targets = load_targets(TARGETS)
    base = render_rules(targets)
    fast = render_rules(targets, RuleOptions(for_override="2s", grafana_url="https://grafana.example"))
    assert fast["tthc-recording.yml"] == base["tthc-recording.yml"]
    assert "for: 30m" in base["tthc-alerts.yml"] and "for: 30m" not in fast["tthc-alerts.yml"]
    assert "https://grafana.example/d/tthc-don-vi?var-unit={{ $labels.unit }}" in fast["tthc-alerts.yml"]


# ------------------------------------------------------------------ promtool


def test_promtool_unit_tests() -> None:
    """tests/promtool/*.test.yml: the alert texts and every dossier and pipeline alert."""
    files = sorted(PROMTOOL_TESTS.glob("*.test.yml"))
    assert len(files) >= 2
    _promtool_test(*files)


def _edge_cases(targets) -> list[tuple[str, str, str, int, int]]:
    """(indicator, unit, sector, numerator, denominator) around every target.

    Unit scopes (sector "all") around the default target; each override sector's
    province-wide scope (unit "all") around its own target and at the default's;
    a sector without override at the default.
    """
    mv = targets.min_volume
    cases = []

    def around(indicator: str, sector: str, value: Fraction, tag: str = "") -> None:
        den = mv * value.denominator
        exact = int(value * den)
        points = {"exact": (exact, den), "min_volume": (0, mv), "small": (0, mv - 1)}
        if exact >= 1:
            points["below"] = (exact - 1, den)
        if exact < den:
            points["above"] = (exact + 1, den)
        for name, (num, d) in points.items():
            cases.append((indicator, f"U_{name}{tag}", sector, num, d, name))

    for indicator in INDICATORS:
        default = targets.defaults[indicator][1]
        around(indicator, "all", default)
        # one scope per sector: exactly its override, one below, at the (higher) default
        overrides = sorted(targets.overrides.get(indicator, {}).items())
        for (sector, (_, value)), kind in zip(overrides, ("exact", "below", "at_default")):
            den = mv * value.denominator * default.denominator
            num = {"exact": int(value * den), "below": int(value * den) - 1, "at_default": int(default * den)}[kind]
            cases.append((indicator, "all", sector, num, den, f"override_{kind}"))
        den = mv * default.denominator
        cases.append((indicator, "all", "ho_tich", int(default * den), den, "plain_sector"))
    return cases


def test_every_target_at_its_edges_in_promtool(tmp_path: Path) -> None:
    """All twelve indicators: exactly at the target for each op, one below, one above,
    below and at the minimum volume, sector overrides; expected = pipeline.core.targets."""
    targets = load_targets(TARGETS)
    cfg = targets.alerting
    windows = sorted(set(cfg.page_windows) | set(cfg.ticket_windows))
    series = []
    expected = []
    seen = set()
    for indicator, unit, sector, num, den, name in _edge_cases(targets):
        key = (indicator, unit, sector)
        if key in seen:
            continue
        seen.add(key)
        for window in windows:
            labels = f'job="tthc-worker",instance="a",indicator="{indicator}",unit="{unit}",sector="{sector}",window="{window}"'
            series.append({"series": f"tthc_indicator_numerator{{{labels}}}", "values": f"{num}x100"})
            series.append({"series": f"tthc_indicator_denominator{{{labels}}}", "values": f"{den}x100"})
        if targets.below_target(indicator, sector, num, den):
            for severity in ("page", "ticket"):
                expected.append(
                    {
                        "labels": f'{{indicator="{indicator}",unit="{unit}",sector="{sector}",severity="{severity}"}}',
                        "value": 1,
                    }
                )
    # sanity: the cases cover firing and quiet scopes for every op
    assert 20 < len(expected) < len(seen) * 2
    test = {
        "rule_files": [str(RULES_DIR / name) for name in RULE_FILES],
        "evaluation_interval": "2m",
        "group_eval_order": ["tthc-recording", "tthc-indicator-alerts", "tthc-case-alerts", "tthc-pipeline-alerts"],
        "tests": [
            {
                "name": "edges of every target",
                "interval": "2m",
                "input_series": series,
                "promql_expr_test": [
                    {
                        "expr": 'count by (indicator, unit, sector, severity) '
                                '(ALERTS{alertname="TthcIndicatorBelowTarget", alertstate="firing"})',
                        "eval_time": "3h2m",
                        "exp_samples": expected,
                    }
                ],
            }
        ],
    }
    path = tmp_path / "edges.test.yml"
    path.write_text(yaml.safe_dump(test, allow_unicode=True, sort_keys=False), encoding="utf-8")
    _promtool_test(path)


def test_target_text() -> None:
    assert target_text(">=", Fraction(95, 100)) == "≥ 95%"
    assert target_text(">", Fraction(3, 5)) == "> 60%"
    assert target_text("=", Fraction(1)) == "= 100%"
    assert target_text(">=", Fraction(855, 1000)) == "≥ 85,5%"


def test_write_rules_into_a_directory(tmp_path: Path) -> None:
    paths = write_rules(load_targets(TARGETS), tmp_path / "rules")
    assert [p.name for p in paths] == list(RULE_FILES)


# ------------------------------------------------------------------ runbooks and board links


def _alert_rules() -> list[dict]:
    text = (RULES_DIR / "tthc-alerts.yml").read_text(encoding="utf-8")
    return [rule for group in yaml.safe_load(text)["groups"] for rule in group["rules"]]


def test_every_alert_has_a_runbook_that_exists_and_teaches() -> None:
    base = load_targets(TARGETS).alerting.runbook_base_url
    names = set()
    for rule in _alert_rules():
        name = rule["alert"]
        names.add(name)
        assert rule["annotations"]["runbook_url"] == f"{base}/{name}.md"
        page = RUNBOOKS_DIR / f"{name}.md"
        assert page.is_file(), f"{name}: no runbook {page}"
        text = page.read_text(encoding="utf-8")
        for heading in ("## What it means", "## What to check first", "## How to silence"):
            assert heading in text, f"{page.name}: missing {heading!r}"
        assert f"alertname={name}" in text
    assert len(names) == 10
    # no runbook for an alert that no longer exists
    assert {p.stem for p in RUNBOOKS_DIR.glob("Tthc*.md")} == names


def test_every_alert_links_to_a_board_that_exists() -> None:
    boards = {json.loads(p.read_text(encoding="utf-8"))["uid"] for p in (PROJECT_ROOT / "dashboards").glob("*.json")}
    grafana = load_targets(TARGETS).alerting.grafana_url
    for rule in _alert_rules():
        link = rule["annotations"]["dashboard"]
        assert link.startswith(f"{grafana}/d/"), rule["alert"]
        assert link.removeprefix(f"{grafana}/d/").split("?")[0] in boards, rule["alert"]
def test_alert_texts_are_vietnamese_durations_sector_names_and_decimal_commas():
    from pipeline.alerting.rules import duration_vi

    assert duration_vi("1h") == "1 giờ" and duration_vi("15m") == "15 phút" and duration_vi("24h") == "24 giờ"
    assert duration_vi("1h30m") == "1 giờ 30 phút" and duration_vi("2d") == "2 ngày" and duration_vi("30s") == "30 giây"
    with pytest.raises(ValueError):
        duration_vi("soon")
    text = (REPO / "deploy" / "prometheus" / "rules" / "tthc-alerts.yml").read_text(encoding="utf-8")
    # no Prometheus duration and no bare sector code in a description; every ratio through the comma
    assert not re.search(r"(hơn|trong|với) \d+[smhd]\b", text)
    assert 'Lĩnh vực {{ $labels.sector }}' not in text and '{{ if eq $labels.sector "dat_dai" }}Đất đai' in text
    assert "humanizePercentage }}" not in text and text.count('humanizePercentage | reReplaceAll "[.]" ","') > 10
    board = json.loads((REPO / "dashboards" / "tthc-tong-quan.json").read_text(encoding="utf-8"))
    assert board["description"].startswith(f"{len(INDICATORS)} chỉ số")
    assert "công dân" not in json.dumps(board, ensure_ascii=False)
