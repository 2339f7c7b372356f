"""Data sources and dashboards into Grafana: by HTTP API, and as provisioning files.

``python -m pipeline grafana provision --url URL [--token T]`` talks to a running
Grafana through grafana-client: the folder ``tthc``, the two data sources (by uid, so
the boards' references resolve) and the four boards (overwritten). Running it again
changes nothing new: folder and data sources are looked up first, dashboards are saved
with ``overwrite``. An unreachable Grafana or a refused token is one ``error:`` line.

The same data source definitions, pointed at the compose service names, are written by
``grafana build`` as Grafana provisioning files in ``deploy/grafana/provisioning/``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from pipeline.boards.queries import (
    CLICKHOUSE_TYPE,
    CLICKHOUSE_UID,
    PROMETHEUS_TYPE,
    PROMETHEUS_UID,
)
from pipeline.config import PROJECT_ROOT, Settings, UserError

FOLDER_UID = "tthc"
FOLDER_TITLE = "TTHC – Một cửa (bảng điều khiển)"
PROVISIONING_DIR = PROJECT_ROOT / "deploy" / "grafana" / "provisioning"
#: where deploy/compose mounts dashboards/ inside the Grafana container
CONTAINER_DASHBOARDS_DIR = "/var/lib/grafana/dashboards/tthc"


@dataclass(frozen=True)
class ClickHouseServer:
    host: str
    port: int
    protocol: str  # http | https (the plugin's HTTP interface, as the workers use)
    database: str
    username: str
    password: str | None  # None: not sent (file provisioning reads an env variable)


def clickhouse_server(url: str) -> ClickHouseServer:
    """``http(s)://[user[:password]@]host[:port][/database]`` (the TTHC_CLICKHOUSE_DSN form)."""
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise UserError(f"--clickhouse-url must be http(s)://[user[:password]@]host[:port][/database], got {url!r}")
    try:
        port = parsed.port or (8443 if parsed.scheme == "https" else 8123)
    except ValueError:
        raise UserError(f"--clickhouse-url has a bad port: {url!r}") from None
    return ClickHouseServer(
        host=parsed.hostname,
        port=port,
        protocol=parsed.scheme,
        database=parsed.path.strip("/") or "default",
        username=unquote(parsed.username) if parsed.username else "default",
        password=unquote(parsed.password) if parsed.password else None,
    )


def datasources(prometheus_url: str, clickhouse: ClickHouseServer, password_ref: str | None = None) -> list[dict]:
    """The two data sources as Grafana's API and provisioning files both describe them.

    ``password_ref``: for files, the text that stands for the ClickHouse password
    (``$__env{…}``, expanded by Grafana when it reads the file).
    """
    clickhouse_json: dict[str, Any] = {
        "host": clickhouse.host,
        "port": clickhouse.port,
        "protocol": "http",
        "secure": clickhouse.protocol == "https",
        "username": clickhouse.username,
        "defaultDatabase": clickhouse.database,
    }
    password = password_ref if password_ref is not None else clickhouse.password
    clickhouse_source: dict[str, Any] = {
        "name": "ClickHouse TTHC",
        "uid": CLICKHOUSE_UID,
        "type": CLICKHOUSE_TYPE,
        "access": "proxy",
        "isDefault": False,
        "editable": False,
        "jsonData": clickhouse_json,
    }
    if password is not None:
        clickhouse_source["secureJsonData"] = {"password": password}
    return [
        {
            "name": "Prometheus TTHC",
            "uid": PROMETHEUS_UID,
            "type": PROMETHEUS_TYPE,
            "access": "proxy",
            "url": prometheus_url,
            "isDefault": True,
            "editable": False,
            "jsonData": {"httpMethod": "POST", "timeInterval": "5s"},
        },
        clickhouse_source,
    ]


# --- provisioning files (deploy/grafana/provisioning) ----------------------------------

COMPOSE_PROMETHEUS_URL = "http://prometheus:9090"
COMPOSE_CLICKHOUSE = ClickHouseServer("clickhouse", 8123, "http", "tthc", "grafana", None)
PASSWORD_REF = "$__env{CLICKHOUSE_GRAFANA_PASSWORD}"


def _yaml(value: Any, indent: int = 0) -> str:
    """A small YAML emitter for dicts, lists and scalars (strings double-quoted)."""
    pad = " " * indent
    if isinstance(value, dict):
        lines = []
        for key, item in value.items():
            if isinstance(item, (dict, list)) and item:
                lines.append(f"{pad}{key}:\n{_yaml(item, indent + 2)}")
            else:
                lines.append(f"{pad}{key}: {_scalar(item)}")
        return "\n".join(lines)
    if isinstance(value, list):
        lines = []
        for item in value:
            text = _yaml(item, indent + 2)
            lines.append(f"{pad}- {text.lstrip()}")
        return "\n".join(lines)
    return pad + _scalar(value)


def _scalar(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, (bool, int, float)) or value == {} or value == []:
        return json.dumps(value)
    return json.dumps(str(value), ensure_ascii=False)


HEADER = "# Generated by `python -m pipeline grafana build` (pipeline/boards/provision.py); do not edit.\n"


def provisioning_files() -> dict[str, str]:
    """{path relative to deploy/grafana/provisioning: YAML text} for the compose layout."""
    sources = {
        "apiVersion": 1,
        "datasources": datasources(COMPOSE_PROMETHEUS_URL, COMPOSE_CLICKHOUSE, PASSWORD_REF),
    }
    providers = {
        "apiVersion": 1,
        "providers": [
            {
                "name": "tthc",
                "orgId": 1,
                "folder": FOLDER_TITLE,
                "folderUid": FOLDER_UID,
                "type": "file",
                "disableDeletion": True,
                "allowUiUpdates": False,
                "updateIntervalSeconds": 60,
                "options": {"path": CONTAINER_DASHBOARDS_DIR, "foldersFromFilesStructure": False},
            }
        ],
    }
    return {
        "datasources/tthc.yml": HEADER + _yaml(sources) + "\n",
        "dashboards/tthc.yml": HEADER + _yaml(providers) + "\n",
    }


def write_provisioning(directory: Path = PROVISIONING_DIR) -> list[Path]:
    written = []
    for relative, text in provisioning_files().items():
        path = directory / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


# --- the API ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ProvisionReport:
    folder: str  # created | kept
    datasources: dict[str, str]  # uid -> created | updated
    dashboards: list[str]  # uids saved


def _short(exc: Exception) -> str:
    text = " ".join(str(exc).split())
    return text[:200] or type(exc).__name__


def provision(
    url: str,
    token: str | None,
    boards: dict[str, dict],
    prometheus_url: str,
    clickhouse: ClickHouseServer,
    timeout: float = 10.0,
) -> ProvisionReport:
    """Folder, data sources and dashboards into the Grafana at ``url`` (idempotent)."""
    from grafana_client import GrafanaApi
    from niquests.exceptions import RequestException
    from grafana_client.client import GrafanaClientError, GrafanaException, GrafanaUnauthorizedError

    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise UserError(f"--url must be the Grafana address, e.g. http://127.0.0.1:3000; got {url!r}")
    api = GrafanaApi.from_url(url, credential=token, timeout=timeout)
    try:
        try:
            api.folder.get_folder(FOLDER_UID)
            folder = "kept"
        except GrafanaClientError as exc:
            if exc.status_code != 404:
                raise
            api.folder.create_folder(FOLDER_TITLE, uid=FOLDER_UID)
            folder = "created"
        done: dict[str, str] = {}
        for source in datasources(prometheus_url, clickhouse):
            try:
                api.datasource.get_datasource_by_uid(source["uid"])
            except GrafanaClientError as exc:
                if exc.status_code != 404:
                    raise
                api.datasource.create_datasource(source)
                done[source["uid"]] = "created"
            else:
                api.datasource.update_datasource_by_uid(source["uid"], source)
                done[source["uid"]] = "updated"
        saved = []
        for board in boards.values():
            api.dashboard.update_dashboard(
                {
                    "dashboard": {**board, "id": None},
                    "folderUid": FOLDER_UID,
                    "overwrite": True,
                    "message": "python -m pipeline grafana provision",
                }
            )
            saved.append(board["uid"])
    except GrafanaUnauthorizedError:
        raise UserError(f"Grafana at {url} refused the credentials (401): check --token") from None
    except GrafanaClientError as exc:
        if exc.status_code == 403:
            raise UserError(f"Grafana at {url} refused the request (403): the token lacks the Admin/Editor role") from None
        raise UserError(f"Grafana at {url} answered {exc.status_code}: {_short(exc)}") from None
    except GrafanaException as exc:  # connection refused, DNS, timeout, 5xx
        if exc.status_code == 0 or exc.response is None:
            raise UserError(f"Grafana at {url} is unreachable: {_short(exc)}") from None
        raise UserError(f"Grafana at {url} failed ({exc.status_code}): {_short(exc)}") from None
    except (RequestException, OSError) as exc:  # not wrapped by grafana-client
        raise UserError(f"Grafana at {url} is unreachable ({_reason(exc)})") from None
    return ProvisionReport(folder=folder, datasources=done, dashboards=saved)


def _reason(exc: BaseException) -> str:
    """The innermost cause's words, e.g. "Connection refused" (not the whole chain)."""
    while exc.__cause__ is not None or exc.__context__ is not None:
        exc = exc.__cause__ or exc.__context__
    text = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    return _short(Exception(text)) or type(exc).__name__


def default_clickhouse_url(settings: Settings) -> str:
    """The worker's server DSN when it has one; else a local server's default address."""
    return settings.clickhouse_dsn if not settings.embedded_clickhouse else "http://127.0.0.1:8123/default"


def run_provision(
    settings: Settings,
    url: str,
    token: str | None,
    prometheus_url: str | None,
    clickhouse_url: str | None,
) -> int:
    from pipeline.boards.build import generate, targets_of

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
