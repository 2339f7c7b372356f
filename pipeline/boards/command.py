"""``python -m pipeline grafana build|provision``: the two commands over the boards and their provisioning."""

from __future__ import annotations

import json
from pathlib import Path

from pipeline.boards.build import DASHBOARDS_DIR, generate, targets_of, write_boards
from pipeline.boards.provision import FOLDER_UID, PROVISIONING_DIR, clickhouse_server, default_clickhouse_url, provision, write_provisioning
from pipeline.config import Settings

__all__ = ["run_build", "run_provision"]


def run_build(settings: Settings, out_dir: str | None = None) -> int:
    """The boards and the provisioning files: into the repository (``dashboards/``,
    ``deploy/grafana/provisioning/``), or everything under ``out_dir`` (``out_dir/dashboards``,
    ``out_dir/provisioning``), the repository untouched."""
    out = Path(out_dir) if out_dir else None
    boards_dir = out / "dashboards" if out else DASHBOARDS_DIR
    provisioning_dir = out / "provisioning" if out else PROVISIONING_DIR
    for path in write_boards(targets_of(settings), boards_dir) + write_provisioning(provisioning_dir):
        print(f"grafana: wrote {path}")
    return 0


def run_provision(
    settings: Settings,
    url: str,
    token: str | None,
    prometheus_url: str | None,
    clickhouse_url: str | None,
) -> int:
    boards = {name: json.loads(text) for name, text in generate(targets_of(settings)).items()}
    clickhouse = clickhouse_server(clickhouse_url or default_clickhouse_url(settings))
    prometheus = prometheus_url or f"http://127.0.0.1:{settings.prometheus_port}"
    report = provision(url, token, boards, prometheus, clickhouse)
    print(f"grafana: folder {FOLDER_UID} {report.folder}")
    for uid, what in report.datasources.items():
        print(f"grafana: data source {uid} {what}")
    for uid in report.dashboards:
        print(f"grafana: dashboard {url.rstrip('/')}/d/{uid} saved")
    if settings.embedded_clickhouse and not clickhouse_url:
        print(
            "grafana: note: the worker uses the embedded ClickHouse, which Grafana cannot read; the SQL panels "
            "need a ClickHouse server (--clickhouse-url, deploy/compose)"
        )
    return 0
