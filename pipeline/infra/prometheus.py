"""Prometheus and Alertmanager (Debian packages) as plain loopback processes."""

from __future__ import annotations

from pathlib import Path
from string import Template

from pipeline.config import PROJECT_ROOT, Settings, UserError

DEPLOY = PROJECT_ROOT / "deploy"
PROMETHEUS_TEMPLATE = DEPLOY / "prometheus" / "prometheus.yml"
RULES_DIR = DEPLOY / "prometheus" / "rules"
ALERTMANAGER_CONFIG = DEPLOY / "alertmanager" / "alertmanager.yml"
# where the committed (production) config sends its webhooks: the compose service `webhook-log`
COMPOSE_WEBHOOK = "http://webhook-log:5001/"


def render_prometheus_config(settings: Settings) -> str:
    """The template with this run's ports; rules by absolute path (see the template)."""
    return Template(PROMETHEUS_TEMPLATE.read_text()).substitute(
        web_port=settings.web_port,
        prometheus_port=settings.prometheus_port,
        alertmanager_port=settings.alertmanager_port,
        rules_glob=f"{settings.rules_dir.resolve()}/*.yml",
    )


def render_alertmanager_config(settings: Settings) -> str:
    """The committed config with its webhooks on this machine's logger (``TTHC_WEBHOOK_PORT``)."""
    text = ALERTMANAGER_CONFIG.read_text()
    if COMPOSE_WEBHOOK not in text:
        raise UserError(f"{ALERTMANAGER_CONFIG}: no webhook at {COMPOSE_WEBHOOK} to point at 127.0.0.1")
    return text.replace(COMPOSE_WEBHOOK, f"http://127.0.0.1:{settings.webhook_port}/")


def prometheus_argv(binary: str, settings: Settings, config: Path, storage: Path) -> list[str]:
    return [
        binary,
        f"--config.file={config}",
        f"--storage.tsdb.path={storage}",
        f"--web.listen-address=127.0.0.1:{settings.prometheus_port}",
        "--web.enable-lifecycle",  # /-/reload after the config is regenerated
    ]


def alertmanager_argv(binary: str, settings: Settings, config: Path, storage: Path) -> list[str]:
    return [
        binary,
        f"--config.file={config}",
        f"--storage.path={storage}",
        f"--web.listen-address=127.0.0.1:{settings.alertmanager_port}",
        "--cluster.listen-address=",  # no gossip: otherwise it binds 0.0.0.0:9094
    ]
