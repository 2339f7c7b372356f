"""`python -m pipeline grafana provision` against a small HTTP stand-in for Grafana.

Grafana cannot run on these machines (no Docker, no Grafana package in the project's
reach), so these tests do NOT talk to a real Grafana. Instead a tiny HTTP server in the
test plays Grafana's HTTP API for the endpoints the command uses (folders, data
sources by uid, dashboards/db), records every request, and answers the way Grafana's
API documentation says (404 for an unknown uid, 401 for a bad token). What is proven:
the exact requests grafana-client sends, their bodies (the committed boards, the data
sources), that a second run creates nothing new, and the one-line errors.
"""

from __future__ import annotations

import json
import socket
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Iterator

import pytest

from pipeline.boards.build import DASHBOARDS_DIR
from pipeline.boards.provision import FOLDER_TITLE, FOLDER_UID, clickhouse_server, datasources
from pipeline.cli import main

pytestmark = pytest.mark.integration  # an HTTP stand-in on loopback: sockets, so not a unit test

TOKEN = "glsa_test_token"
PROMETHEUS_URL = "http://prometheus:9090"
CLICKHOUSE_URL = "http://grafana:s%C3%A9cret@clickhouse:8123/tthc"


@dataclass
class Request:
    method: str
    path: str
    authorization: str | None
    body: object


@dataclass
class FakeGrafana:
    """State and request log of the stand-in (one per test)."""

    token: str = TOKEN
    status_for_all: int | None = None  # e.g. 403: answer every request with it
    requests: list[Request] = field(default_factory=list)
    folders: dict[str, dict] = field(default_factory=dict)
    datasources: dict[str, dict] = field(default_factory=dict)
    dashboards: dict[str, dict] = field(default_factory=dict)
    url: str = ""

    def answer(self, method: str, path: str, authorization: str | None, body: object) -> tuple[int, dict]:
        self.requests.append(Request(method, path, authorization, body))
        if self.status_for_all is not None:
            return self.status_for_all, {"message": "Permission denied"}
        if authorization != f"Bearer {self.token}":
            return 401, {"message": "Unauthorized"}
        parts = path.split("?")[0].strip("/").split("/")
        if parts[:2] == ["api", "folders"]:
            if method == "GET" and len(parts) == 3:
                folder = self.folders.get(parts[2])
                return (200, folder) if folder else (404, {"message": "folder not found", "status": "not-found"})
            if method == "POST" and len(parts) == 2:
                if body["uid"] in self.folders:
                    return 409, {"message": "a folder with the same uid already exists"}
                self.folders[body["uid"]] = {"uid": body["uid"], "title": body["title"], "id": len(self.folders) + 1}
                return 200, self.folders[body["uid"]]
        if parts[:3] == ["api", "datasources", "uid"] and len(parts) == 4:
            uid = parts[3]
            if method == "GET":
                source = self.datasources.get(uid)
                return (200, source) if source else (404, {"message": "Data source not found"})
            if method == "PUT" and uid in self.datasources:
                self.datasources[uid] = {**body, "id": self.datasources[uid]["id"]}
                return 200, {"message": "Datasource updated", "datasource": self.datasources[uid]}
        if parts == ["api", "datasources"] and method == "POST":
            if body["uid"] in self.datasources or any(s["name"] == body["name"] for s in self.datasources.values()):
                return 409, {"message": "data source with the same name already exists"}
            self.datasources[body["uid"]] = {**body, "id": len(self.datasources) + 1}
            return 200, {"message": "Datasource added", "datasource": self.datasources[body["uid"]]}
        if parts == ["api", "dashboards", "db"] and method == "POST":
            dashboard = body["dashboard"]
            if dashboard["uid"] in self.dashboards and not body.get("overwrite"):
                return 412, {"message": "The dashboard has been changed by someone else", "status": "version-mismatch"}
            version = self.dashboards.get(dashboard["uid"], {}).get("version", 0) + 1
            self.dashboards[dashboard["uid"]] = {**body, "version": version}
            return 200, {"status": "success", "uid": dashboard["uid"], "version": version, "url": f"/d/{dashboard['uid']}"}
        return 404, {"message": "Not found"}


@pytest.fixture
def grafana() -> Iterator[FakeGrafana]:
    fake = FakeGrafana()

    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            body = json.loads(raw) if raw else None
            status, answer = fake.answer(self.command, self.path, self.headers.get("Authorization"), body)
            data = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = _serve

        def log_message(self, *args) -> None:  # keep pytest output clean
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def _provision(url: str, token: str = TOKEN) -> int:
    return main(
        ["grafana", "provision", "--url", url, "--token", token,
         "--prometheus-url", PROMETHEUS_URL, "--clickhouse-url", CLICKHOUSE_URL]
    )


def _committed_boards() -> dict[str, dict]:
    boards = [json.loads(p.read_text(encoding="utf-8")) for p in sorted(DASHBOARDS_DIR.glob("*.json"))]
    return {b["uid"]: b for b in boards}


def test_first_run_creates_folder_data_sources_and_the_committed_boards(grafana, capsys):
    assert _provision(grafana.url) == 0
    boards = _committed_boards()
    assert [(r.method, r.path) for r in grafana.requests] == [
        ("GET", f"/api/folders/{FOLDER_UID}"),
        ("POST", "/api/folders"),
        ("GET", "/api/datasources/uid/tthc-prometheus"),
        ("POST", "/api/datasources"),
        ("GET", "/api/datasources/uid/tthc-clickhouse"),
        ("POST", "/api/datasources"),
    ] + [("POST", "/api/dashboards/db")] * len(boards)
    assert {r.authorization for r in grafana.requests} == {f"Bearer {TOKEN}"}
    assert grafana.requests[1].body == {"title": FOLDER_TITLE, "uid": FOLDER_UID}
    expected_sources = datasources(PROMETHEUS_URL, clickhouse_server(CLICKHOUSE_URL))
    assert [grafana.requests[3].body, grafana.requests[5].body] == expected_sources
    clickhouse = grafana.requests[5].body
    assert clickhouse["type"] == "grafana-clickhouse-datasource"
    assert clickhouse["jsonData"] == {
        "host": "clickhouse", "port": 8123, "protocol": "http", "secure": False,
        "username": "grafana", "defaultDatabase": "tthc",
    }
    assert clickhouse["secureJsonData"] == {"password": "sécret"}  # URL-decoded, sent only as secure data
    saved = [r.body for r in grafana.requests[6:]]
    assert all(b["folderUid"] == FOLDER_UID and b["overwrite"] is True for b in saved)
    assert {b["dashboard"]["uid"]: {**b["dashboard"], "id": None} for b in saved} == {
        uid: {**board, "id": None} for uid, board in boards.items()
    }
    out = capsys.readouterr().out
    assert "folder tthc created" in out and f"{grafana.url}/d/tthc-don-vi saved" in out
    assert "sécret" not in out


def test_second_run_is_idempotent(grafana, capsys):
    assert _provision(grafana.url) == 0
    state = (dict(grafana.folders), {k: dict(v) for k, v in grafana.datasources.items()}, set(grafana.dashboards))
    grafana.requests.clear()
    assert _provision(grafana.url) == 0
    assert [(r.method, r.path) for r in grafana.requests] == [
        ("GET", f"/api/folders/{FOLDER_UID}"),
        ("GET", "/api/datasources/uid/tthc-prometheus"),
        ("PUT", "/api/datasources/uid/tthc-prometheus"),
        ("GET", "/api/datasources/uid/tthc-clickhouse"),
        ("PUT", "/api/datasources/uid/tthc-clickhouse"),
    ] + [("POST", "/api/dashboards/db")] * 4
    assert (grafana.folders, grafana.datasources, set(grafana.dashboards)) == state
    assert {d["version"] for d in grafana.dashboards.values()} == {2}  # overwritten, not duplicated
    assert "folder tthc kept" in capsys.readouterr().out


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1, err
    return err


def test_a_refused_token_is_one_line_and_exit_2(grafana, capsys):
    assert _provision(grafana.url, token="wrong") == 2
    assert "refused the credentials (401)" in _one_error_line(capsys)
    assert not grafana.folders and not grafana.datasources and not grafana.dashboards
    assert len(grafana.requests) == 1  # stops at the first refusal


def test_a_forbidden_token_is_one_line_and_exit_2(grafana, capsys):
    grafana.status_for_all = 403
    assert _provision(grafana.url) == 2
    assert "(403)" in _one_error_line(capsys)


def test_an_unreachable_grafana_is_one_line_and_exit_2(capsys):
    with socket.socket() as sock:  # a loopback port with nothing listening
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    assert _provision(f"http://127.0.0.1:{port}") == 2
    assert "unreachable" in _one_error_line(capsys)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--url", "grafana.local"], "--url must be the Grafana address"),
        (["--url", "http://127.0.0.1:1", "--clickhouse-url", "chdb:///x"], "--clickhouse-url must be http(s)"),
        ([], "the following arguments are required: --url"),
    ],
)
def test_bad_arguments_are_one_line(args, message, capsys):
    assert main(["grafana", "provision", *args]) == 2
    assert message in _one_error_line(capsys)


def test_grafana_without_an_action_is_one_line(capsys):
    assert main(["grafana"]) == 2
    assert "no action given; choose build or provision" in _one_error_line(capsys)


def test_secrets_come_from_the_environment_or_files(grafana, capsys, monkeypatch, tmp_path):
    """Neither secret on the command line: the token from a file, the ClickHouse URL from the
    environment; the requests are those of the flags, and neither value is printed."""
    token_file = tmp_path / "grafana-token"
    token_file.write_text(TOKEN + "\n", encoding="utf-8")
    monkeypatch.setenv("TTHC_GRAFANA_TOKEN_FILE", str(token_file))
    monkeypatch.setenv("TTHC_GRAFANA_CLICKHOUSE_URL", CLICKHOUSE_URL)
    assert main(["grafana", "provision", "--url", grafana.url, "--prometheus-url", PROMETHEUS_URL]) == 0
    assert {r.authorization for r in grafana.requests} == {f"Bearer {TOKEN}"}
    assert grafana.requests[5].body == datasources(PROMETHEUS_URL, clickhouse_server(CLICKHOUSE_URL))[1]
    out = capsys.readouterr()
    assert TOKEN not in out.out + out.err and "sécret" not in out.out + out.err


def test_a_secret_given_twice_is_one_line(grafana, capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("TTHC_GRAFANA_TOKEN", TOKEN)
    monkeypatch.setenv("TTHC_GRAFANA_TOKEN_FILE", str(tmp_path / "also"))
    assert main(["grafana", "provision", "--url", grafana.url]) == 2
    assert "TTHC_GRAFANA_TOKEN or TTHC_GRAFANA_TOKEN_FILE, not both" in _one_error_line(capsys)
    assert not grafana.requests
