"""The boards' PromQL logic, evaluated by Prometheus' own engine (``promtool test rules``).

The integration test runs every panel against a scraped worker, but a worker of this
branch does not export ``tthc_unit_info`` yet and never has two workers or a unit
renamed. Here synthetic series (two workers, a renamed unit, scopes exactly at their
target) go through the real recording rules and the boards' expressions.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

from pipeline.boards.queries import below_target_expr, with_unit_label, with_unit_names
from pipeline.targets_file import load_targets
from pipeline.config import load_settings
from pipeline.infra.prometheus import RULES_DIR
from tests.tools import required_tool

TARGETS = load_targets(load_settings(environ={}).targets_file)


def _promtool_test(tmp_path: Path, tests: list[dict]) -> None:
    promtool = required_tool("promtool")
    spec = {
        "rule_files": [str(p) for p in sorted(RULES_DIR.glob("*.yml"))],
        "evaluation_interval": "5s",
        "tests": tests,
    }
    path = tmp_path / "board-test.yml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False, allow_unicode=True))
    result = subprocess.run([promtool, "test", "rules", str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def _scope(indicator: str, unit: str, sector: str, numerator: int, denominator: int, instance: str = "w1") -> list[dict]:
    labels = f'indicator="{indicator}",unit="{unit}",sector="{sector}",window="ytd",instance="{instance}"'
    return [
        {"series": f"tthc_indicator_numerator{{{labels}}}", "values": f"{numerator}x12"},
        {"series": f"tthc_indicator_denominator{{{labels}}}", "values": f"{denominator}x12"},
    ]


def _ratio(indicator: str, unit: str, sector: str, value: float) -> dict:
    return {
        "labels": f'tthc:indicator_ratio:by_scope{{indicator="{indicator}",unit="{unit}",sector="{sector}",window="ytd"}}',
        "value": value,
    }


def test_unit_names_join_across_workers_and_falls_back_to_the_code(tmp_path):
    info = 'tthc_unit_info{{unit="{u}",name="{n}",kind="xa",parent="TINH",instance="{i}"}}'
    expr = with_unit_names("sum by (unit) (tthc_open_cases)")
    _promtool_test(
        tmp_path,
        [
            {
                "interval": "5s",
                "input_series": [
                    {"series": 'tthc_open_cases{unit="A",instance="w1"}', "values": "3x12"},
                    {"series": 'tthc_open_cases{unit="A",instance="w2"}', "values": "2x12"},
                    {"series": 'tthc_open_cases{unit="B",instance="w1"}', "values": "1x12"},
                    # both workers export the registry; B is not in it
                    {"series": info.format(u="A", n="Phường A", i="w1"), "values": "1x12"},
                    {"series": info.format(u="A", n="Phường A", i="w2"), "values": "1x12"},
                ],
                "promql_expr_test": [
                    {
                        "expr": expr,
                        "eval_time": "30s",
                        "exp_samples": [
                            {"labels": '{unit="A",name="Phường A"}', "value": 5},
                            {"labels": '{unit="B"}', "value": 1},
                        ],
                    }
                ],
            },
            {
                "interval": "5s",
                "input_series": [
                    {"series": 'tthc_open_cases{unit="A",instance="w1"}', "values": "3x12"},
                    {"series": 'tthc_open_cases{unit="B",instance="w1"}', "values": "1x12"},
                    {"series": info.format(u="A", n="Phường A", i="w1"), "values": "1x12"},
                ],
                "promql_expr_test": [
                    {   # the status map's one-column unit: "code · name", or the bare code
                        "expr": with_unit_label("sum by (unit) (tthc_open_cases)"),
                        "eval_time": "30s",
                        "exp_samples": [
                            {"labels": '{unit="A",name="Phường A",don_vi="A · Phường A"}', "value": 3},
                            {"labels": '{unit="B",don_vi="B"}', "value": 1},
                        ],
                    }
                ],
            },
            {
                "interval": "5s",
                "input_series": [
                    {"series": 'tthc_open_cases{unit="C",instance="w1"}', "values": "4x12"},
                    # renamed between two validity periods: still one series, no join error
                    {"series": info.format(u="C", n="Xã C (cũ)", i="w1"), "values": "1x12"},
                    {"series": info.format(u="C", n="Xã C", i="w1"), "values": "1x12"},
                ],
                "promql_expr_test": [
                    {"expr": f"count by (unit) ({expr})", "eval_time": "30s", "exp_samples": [{"labels": '{unit="C"}', "value": 1}]},
                ],
            },
        ],
    )


def test_below_target_is_the_plans_rule_over_summed_workers(tmp_path):
    # on_time "> 95%": exactly 95% fails; digitized "= 100%"; min_volume 20.
    units = 'unit!="all",sector="all",window="ytd"'
    sectors = 'unit="all",sector!="all",window="ytd"'
    series = (
        _scope("on_time", "U1", "all", 10, 10, "w1") + _scope("on_time", "U1", "all", 9, 10, "w2")  # 19/20 = 95%
        + _scope("on_time", "U2", "all", 39, 40)  # 97.5%: meets
        + _scope("on_time", "U3", "all", 9, 10)  # 90% but only 10 dossiers
        + _scope("digitized", "U1", "all", 20, 20)  # 100%: meets
        + _scope("digitized", "U2", "all", 39, 40)  # 97.5%: fails "= 100%"
        + _scope("satisfaction", "all", "dat_dai", 17, 20)  # 85%: meets the sector's ">= 85%"
        + _scope("satisfaction", "all", "ho_tich", 18, 20)  # 90%: fails the default ">= 95%"
    )
    _promtool_test(
        tmp_path,
        [
            {
                "interval": "5s",
                "input_series": series,
                "promql_expr_test": [
                    {
                        "expr": below_target_expr(TARGETS, units),
                        "eval_time": "30s",
                        "exp_samples": [_ratio("on_time", "U1", "all", 0.95), _ratio("digitized", "U2", "all", 0.975)],
                    },
                    {
                        "expr": below_target_expr(TARGETS, sectors, ("dat_dai", "xay_dung", "dau_tu")),
                        "eval_time": "30s",
                        "exp_samples": [_ratio("satisfaction", "all", "ho_tich", 0.9)],
                    },
                ],
            }
        ],
    )
