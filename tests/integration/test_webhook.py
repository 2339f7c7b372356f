"""pipeline.alerting.webhook: the receiver behind `python -m pipeline webhook-log`."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path

import pytest

from pipeline.alerting.webhook import WebhookLog, describe, serve
from pipeline.config import PROJECT_ROOT

pytestmark = pytest.mark.integration  # an HTTP server on loopback: sockets, so not a unit test

BODY = {
    "receiver": "tthc-oncall",
    "status": "firing",
    "alerts": [
        {
            "status": "firing",
            "labels": {"alertname": "TthcIndicatorBelowTarget", "severity": "page", "unit": "SO_XD"},
            "annotations": {"description": "Sở Xây dựng (SO_XD): …", "dashboard": "http://g/d/tthc-don-vi?var-unit=SO_XD"},
        }
    ],
}


def test_receiver_records_and_logs_notifications(tmp_path: Path) -> None:
    log = WebhookLog(file=tmp_path / "alerts.jsonl")
    server = serve(log, 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        port = server.server_address[1]
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/tthc-oncall", data=json.dumps(BODY).encode(), method="POST",
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            assert response.status == 200
    finally:
        server.shutdown()
        server.server_close()
    [notification] = log.snapshot()
    assert notification.path == "/tthc-oncall" and notification.alerts == BODY["alerts"]
    record = json.loads((tmp_path / "alerts.jsonl").read_text(encoding="utf-8"))
    assert record["path"] == "/tthc-oncall" and record["alerts"] == BODY["alerts"]
    assert describe(notification) == [
        "[tthc-oncall] CẢNH BÁO TthcIndicatorBelowTarget (page): Sở Xây dựng (SO_XD): … — http://g/d/tthc-don-vi?var-unit=SO_XD"
    ]


def test_busy_port_is_one_line_error(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        env = {"PATH": "/usr/bin:/bin", "TTHC_WEBHOOK_PORT": str(busy.getsockname()[1]), "TTHC_DATA_DIR": str(tmp_path)}
        result = subprocess.run([sys.executable, "-m", "pipeline", "webhook-log"], cwd=PROJECT_ROOT, env=env,
                                capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert result.stderr.startswith("error: webhook-log: cannot listen on 127.0.0.1:")
    assert len(result.stderr.strip().splitlines()) == 1
