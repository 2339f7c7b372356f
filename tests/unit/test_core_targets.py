"""pipeline.core.targets and deploy/targets.toml."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.core.indicators import INDICATORS
from pipeline.core.targets import TargetsError
from pipeline.targets_file import load_targets

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy" / "targets.toml"

DEFAULTS = {
    "on_time": (">", 0.95),
    "on_time_766": (">", 0.95),
    "early": (">", 0.60),
    "online_payment": (">=", 0.80),
    "full_online": (">=", 0.70),
    "remote": (">", 0.60),
    "satisfaction": (">=", 0.95),
    "e_result": ("=", 1.0),
    "digitized": ("=", 1.0),
    "data_reuse": (">=", 0.80),
    "vneid_auth": ("=", 1.0),
    "apology_coverage": ("=", 1.0),
    "feedback_on_time": ("=", 1.0),
}


def _toml(tables: dict[str, str], min_volume: str | None = "min_volume = 20") -> str:
    parts = [min_volume] if min_volume else []
    for ind, body in tables.items():
        parts.append(f"[{ind}]\n{body}")
    return "\n".join(parts) + "\n"


def _valid_tables() -> dict[str, str]:
    return {ind: f'op = "{op}"\nvalue = {value}' for ind, (op, value) in DEFAULTS.items()}


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "targets.toml"
    p.write_text(text, encoding="utf-8")
    return p


def test_deploy_file_has_the_documented_defaults():
    t = load_targets(DEPLOY)
    assert t.min_volume == 20
    for ind in INDICATORS:
        assert t.target_for(ind, "all") == DEFAULTS[ind]
    for sector in ("dat_dai", "xay_dung", "dau_tu"):
        assert t.target_for("satisfaction", sector) == (">=", 0.85)
    assert t.target_for("satisfaction", "ho_tich") == (">=", 0.95)
    assert t.target_for("on_time", "dat_dai") == (">", 0.95)


def test_comparisons_are_exact():
    t = load_targets(DEPLOY)
    assert t.meets("on_time", "all", 19, 20) is False  # 0.95 is not > 0.95
    assert t.meets("on_time", "all", 96, 100) is True
    assert t.meets("on_time", "all", 0, 0) is None
    assert t.meets("online_payment", "all", 80, 100) is True  # 0.8 >= 0.80, no float error
    assert t.meets("online_payment", "all", 79, 100) is False
    assert t.meets("satisfaction", "all", 95, 100) is True  # >= 0.95
    assert t.meets("satisfaction", "all", 94, 100) is False
    assert t.meets("satisfaction", "dat_dai", 85, 100) is True  # override 0.85
    assert t.meets("satisfaction", "dat_dai", 84, 100) is False
    assert t.meets("e_result", "all", 7, 7) is True  # = 1.0
    assert t.meets("e_result", "all", 99, 100) is False
    assert t.meets("early", "x", 3, 5) is False and t.meets("early", "x", 61, 100) is True  # > 0.60
    assert t.meets("data_reuse", "all", 4, 5) is True  # exactly 0.8


def test_below_target_needs_min_volume():
    t = load_targets(DEPLOY)
    assert t.below_target("on_time", "all", 19, 20) is True
    assert t.below_target("on_time", "all", 18, 19) is False  # under min_volume
    assert t.below_target("on_time", "all", 20, 20) is False  # meets
    assert t.below_target("on_time", "all", 0, 0) is False


def test_sector_override_table_and_op(tmp_path):
    tables = _valid_tables()
    tables["on_time"] += '\n[on_time.sectors]\nho_tich = { op = ">=", value = 0.9 }\ndat_dai = { value = 0.5 }'
    t = load_targets(_write(tmp_path, _toml(tables, min_volume=None)))
    assert t.min_volume == 20  # default
    assert t.target_for("on_time", "ho_tich") == (">=", 0.9)
    assert t.target_for("on_time", "dat_dai") == (">", 0.5)
    assert t.meets("on_time", "ho_tich", 9, 10) is True
    assert t.meets("on_time", "all", 9, 10) is False


@pytest.mark.parametrize(
    "mutate,needle",
    [
        (lambda tb, mv: (tb, 'min_volume = 0'), "min_volume must be at least 1"),
        (lambda tb, mv: (tb, 'min_volume = "20"'), "min_volume must be an integer"),
        (lambda tb, mv: ({**tb, "speed": 'op = ">"\nvalue = 0.5'}, mv), "unknown indicator [speed]"),
        (lambda tb, mv: ({k: v for k, v in tb.items() if k != "early"}, mv), "missing indicator [early]"),
        (lambda tb, mv: ({**tb, "early": 'op = "<"\nvalue = 0.5'}, mv), "op must be one of"),
        (lambda tb, mv: ({**tb, "early": 'op = ">"\nvalue = 1.5'}, mv), "outside [0, 1]"),
        (lambda tb, mv: ({**tb, "early": 'op = ">"\nvalue = -0.1'}, mv), "outside [0, 1]"),
        (lambda tb, mv: ({**tb, "early": 'op = ">"\nvalue = "high"'}, mv), "value must be a number"),
        (lambda tb, mv: ({**tb, "early": 'op = ">"'}, mv), "[early]: missing value"),
        (lambda tb, mv: ({**tb, "early": 'value = 0.5'}, mv), "[early]: missing op"),
        (lambda tb, mv: ({**tb, "early": 'op = ">"\nvalue = 0.5\n[early.sectors]\nx = 2'}, mv), "outside [0, 1]"),
        (lambda tb, mv: ({**tb, "early": 'op = ">"\nvalue = 0.5\n[early.sectors]\nx = {op="!", value=0.1}'}, mv),
         "op must be one of"),
        (lambda tb, mv: ({**tb, "early": 'op = ">"\nvalue = 0.5\n[early.sectors]\nall = 0.1'}, mv), "reserved"),
    ],
)
def test_invalid_files_give_one_clear_line(tmp_path, mutate, needle):
    tables, mv = mutate(_valid_tables(), "min_volume = 20")
    path = _write(tmp_path, _toml(tables, min_volume=mv))
    with pytest.raises(TargetsError) as ei:
        load_targets(path)
    msg = str(ei.value)
    assert "\n" not in msg and str(path) in msg and needle in msg
    assert isinstance(ei.value, ValueError)


def test_missing_file_and_bad_toml(tmp_path):
    with pytest.raises(TargetsError, match="not found") as ei:
        load_targets(tmp_path / "nope.toml")
    assert "nope.toml" in str(ei.value)
    bad = _write(tmp_path, "min_volume = \n[on_time\n")
    with pytest.raises(TargetsError, match="invalid TOML") as ei:
        load_targets(bad)
    assert "\n" not in str(ei.value) and str(bad) in str(ei.value)


def test_equals_one(tmp_path):
    tables = _valid_tables()
    tables["e_result"] = 'op = "="\nvalue = 1'  # integer literal also accepted
    t = load_targets(_write(tmp_path, _toml(tables)))
    assert t.meets("e_result", "all", 20, 20) is True
    assert t.meets("e_result", "all", 19, 20) is False
    assert t.below_target("e_result", "all", 19, 20) is True
