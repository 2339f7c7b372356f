"""The deploy configs pass the official checkers (no services needed).

The checkers come from the Debian packages that `make setup` installs
(scripts/install-system-packages.sh): a missing tool is a failure, never a skip.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from pipeline.config import UserError, load_settings
from pipeline.infra import prometheus
from pipeline.infra.prometheus import (
    ALERTMANAGER_CONFIG,
    RULES_DIR,
    render_alertmanager_config,
    render_prometheus_config,
)
from tests.tools import required_tool


_tool = required_tool


def _run(argv: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, timeout=60)


def _check(argv: list[str]) -> str:
    result = _run(argv)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_rules_pass_promtool() -> None:
    rules = sorted(RULES_DIR.glob("*.yml"))
    assert [r.name for r in rules] == ["tthc-alerts.yml", "tthc-recording.yml"]
    _check([_tool("promtool"), "check", "rules", *map(str, rules)])


def test_rendered_prometheus_config_passes_promtool(tmp_path: Path) -> None:
    config = tmp_path / "prometheus.yml"
    config.write_text(render_prometheus_config(load_settings(environ={})))
    _check([_tool("promtool"), "check", "config", str(config)])


@pytest.fixture(scope="module")
def alertmanager_config(tmp_path_factory) -> Path:
    config = tmp_path_factory.mktemp("am") / "alertmanager.yml"
    config.write_text(render_alertmanager_config(load_settings(environ={"TTHC_WEBHOOK_PORT": "5999"})))
    return config


def test_rendered_alertmanager_config_posts_to_the_configured_webhook_port(alertmanager_config: Path) -> None:
    text = alertmanager_config.read_text()
    assert "http://127.0.0.1:5999/tthc-oncall" in text and "http://127.0.0.1:5999/tthc-digest" in text
    assert "${" not in text  # every placeholder of the committed template was filled


def test_alertmanager_config_passes_amtool(alertmanager_config: Path) -> None:
    out = _check([_tool("amtool"), "check-config", str(alertmanager_config)])
    assert "2 inhibit rules" in out and "2 receivers" in out


@pytest.mark.parametrize(
    ("labels", "receiver"),
    [
        (["alertname=TthcIndicatorBelowTarget", "severity=page", "unit=TTPVHCC"], "tthc-oncall"),
        (["alertname=TthcIndicatorBelowTarget", "severity=ticket", "unit=TTPVHCC"], "tthc-digest"),
        (["alertname=TthcWorkerDown", "severity=page"], "tthc-oncall"),
        (["alertname=TthcOverdueWithoutApology", "severity=ticket", "unit=SO_XD"], "tthc-digest"),
    ],
)
def test_alertmanager_routes_by_severity(alertmanager_config: Path, labels: list[str], receiver: str) -> None:
    out = _check(
        [_tool("amtool"), "config", "routes", "test", f"--config.file={alertmanager_config}",
         f"--verify.receivers={receiver}", *labels]
    )
    assert out.strip() == receiver


def test_committed_alertmanager_config_holds_no_secret() -> None:
    text = ALERTMANAGER_CONFIG.read_text()
    for line in text.splitlines():
        code = line.split("#", 1)[0]
        for key in ("password:", "bot_token:", "credentials:", "api_key:", "auth_secret:"):
            assert key not in code, f"a secret in {ALERTMANAGER_CONFIG}: {line.strip()}"


# -- exactly what the production layout (deploy/compose) mounts --------------------------
COMPOSE_DIR = Path(__file__).resolve().parents[2] / "deploy" / "compose"


def _compose_services() -> dict:
    return yaml.safe_load((COMPOSE_DIR / "compose.yml").read_text())["services"]


def _mounted(service: str, flag: str) -> Path:
    """The host file behind the container path that ``service``'s ``flag`` names."""
    spec = _compose_services()[service]
    inside = next(arg.split("=", 1)[1] for arg in spec["command"] if arg.startswith(f"{flag}="))
    for volume in spec["volumes"]:
        source, _, rest = volume.partition(":")
        if rest.split(":")[0] == inside:
            return (COMPOSE_DIR / source).resolve()
    raise AssertionError(f"{service}: nothing mounted at {inside}")


def test_the_alertmanager_config_production_mounts_passes_amtool() -> None:
    mounted = _mounted("alertmanager", "--config.file")
    assert mounted == ALERTMANAGER_CONFIG.resolve()
    out = _check([_tool("amtool"), "check-config", str(mounted)])
    assert "2 inhibit rules" in out and "2 receivers" in out


def test_the_prometheus_config_production_mounts_passes_promtool() -> None:
    mounted = _mounted("prometheus", "--config.file")
    out = _check([_tool("promtool"), "check", "config", str(mounted)])
    assert "SUCCESS" in out
    # its rule_files are the container path of the committed rules (checked above)
    rules = [v for v in _compose_services()["prometheus"]["volumes"] if v.split(":")[1] == "/etc/prometheus/rules"]
    assert [(COMPOSE_DIR / r.split(":")[0]).resolve() for r in rules] == [RULES_DIR.resolve()]
    assert yaml.safe_load(mounted.read_text())["rule_files"] == ["/etc/prometheus/rules/*.yml"]


def test_production_webhooks_reach_a_service_of_the_layout() -> None:
    services = _compose_services()
    config = yaml.safe_load(ALERTMANAGER_CONFIG.read_text())
    urls = [w["url"] for r in config["receivers"] for w in r.get("webhook_configs", [])]
    assert urls, "no webhook receiver"
    for url in urls:
        host, port = re.match(r"http://([^:/]+):(\d+)/", url).groups()
        assert host in services, url
        # the logger binds the compose network on that port
        service = services[host]
        assert service["command"][-2:] == ["--host", "0.0.0.0"], url
        assert service["environment"]["TTHC_WEBHOOK_PORT"] == port, url


def test_a_config_without_the_compose_webhook_cannot_be_rendered_for_infra(tmp_path, monkeypatch) -> None:
    edited = tmp_path / "alertmanager.yml"
    edited.write_text(ALERTMANAGER_CONFIG.read_text().replace(prometheus.COMPOSE_WEBHOOK, "http://bridge:9000/"))
    monkeypatch.setattr(prometheus, "ALERTMANAGER_CONFIG", edited)
    with pytest.raises(UserError, match="no webhook at http://webhook-log:5001/"):
        prometheus.render_alertmanager_config(load_settings(environ={}))
