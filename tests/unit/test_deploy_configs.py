"""The deploy configs pass the official checkers (no services needed)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from pipeline.config import PROJECT_ROOT, load_settings
from pipeline.infra.prometheus import ALERTMANAGER_CONFIG, RULES_DIR, render_prometheus_config


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} not installed (scripts/install-system-packages.sh)")
    return path


def _check(argv: list[str]) -> None:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_recording_rules_pass_promtool() -> None:
    rules = sorted(RULES_DIR.glob("*.yml"))
    assert rules
    _check([_tool("promtool"), "check", "rules", *map(str, rules)])


def test_rendered_prometheus_config_passes_promtool(tmp_path: Path) -> None:
    config = tmp_path / "prometheus.yml"
    config.write_text(render_prometheus_config(load_settings(environ={})))
    _check([_tool("promtool"), "check", "config", str(config)])


def test_alertmanager_config_passes_amtool() -> None:
    assert ALERTMANAGER_CONFIG.is_relative_to(PROJECT_ROOT)
    _check([_tool("amtool"), "check-config", str(ALERTMANAGER_CONFIG)])
