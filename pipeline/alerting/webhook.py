"""A tiny Alertmanager webhook receiver that logs what it gets.

``python -m pipeline webhook-log`` (``make demo`` starts it) listens on
``127.0.0.1:$TTHC_WEBHOOK_PORT``, where the local Alertmanager's receivers post
(``/tthc-oncall`` for pages, ``/tthc-digest`` for tickets), appends every notification as
one JSON line to ``$TTHC_DATA_DIR/logs/alerts.jsonl`` and prints one readable line per
alert. The end-to-end test runs the same receiver in a thread.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable

from pipeline.config import UserError

__all__ = ["Notification", "WebhookLog", "describe", "serve"]


@dataclass(frozen=True)
class Notification:
    """One POST from Alertmanager: the receiver path, its JSON body, when it arrived."""

    path: str
    body: dict
    received_monotonic: float

    @property
    def alerts(self) -> list[dict]:
        return list(self.body.get("alerts", []))


def describe(notification: Notification) -> list[str]:
    """One readable line per alert (Vietnamese summary, status, receiver)."""
    lines = []
    for alert in notification.alerts:
        labels = alert.get("labels", {})
        annotations = alert.get("annotations", {})
        status = "ĐÃ HẾT" if alert.get("status") == "resolved" else "CẢNH BÁO"
        text = annotations.get("description") or annotations.get("summary") or labels.get("alertname", "?")
        lines.append(
            f"[{notification.path.strip('/')}] {status} {labels.get('alertname', '?')}"
            f" ({labels.get('severity', '-')}): {text}"
            + (f" — {annotations['dashboard']}" if annotations.get("dashboard") else "")
        )
    return lines


@dataclass
class WebhookLog:
    """Collects notifications; thread-safe; optionally appends them to a JSONL file."""

    file: Path | None = None
    on_notification: Callable[[Notification], None] | None = None
    notifications: list[Notification] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, path: str, body: dict) -> Notification:
        notification = Notification(path, body, time.monotonic())
        with self._lock:
            self.notifications.append(notification)
            if self.file is not None:
                self.file.parent.mkdir(parents=True, exist_ok=True)
                record = {"received_at": time.time(), "path": path, **body}
                with self.file.open("a", encoding="utf-8") as out:
                    out.write(json.dumps(record, ensure_ascii=False) + "\n")
        if self.on_notification is not None:
            self.on_notification(notification)
        return notification

    def snapshot(self) -> list[Notification]:
        with self._lock:
            return list(self.notifications)


def serve(log: WebhookLog, port: int, host: str = "127.0.0.1") -> ThreadingHTTPServer:
    """An HTTP server (not yet serving) that records every JSON POST into ``log``."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length)
            try:
                body = json.loads(raw)
            except ValueError:
                self.send_response(400)
                self.end_headers()
                return
            log.add(self.path, body if isinstance(body, dict) else {"body": body})
            self.send_response(200)
            self.end_headers()

        def log_message(self, format: str, *args) -> None:  # quiet: the log file says it all
            pass

    return ThreadingHTTPServer((host, port), Handler)


def run_webhook_log(port: int, file: Path, host: str = "127.0.0.1") -> int:
    """``python -m pipeline webhook-log``: serve until Ctrl-C, printing each alert. It holds no
    secret and answers nothing but its log, so a container may bind it beyond loopback."""

    def show(notification: Notification) -> None:
        for line in describe(notification):
            print(line, flush=True)

    try:
        server = serve(WebhookLog(file=file, on_notification=show), port, host)
    except OSError as exc:
        raise UserError(f"webhook-log: cannot listen on {host}:{port} ({exc.strerror}); set TTHC_WEBHOOK_PORT") from None
    print(f"webhook-log: listening on http://{host}:{port}/ (Alertmanager receivers), logging to {file}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0
