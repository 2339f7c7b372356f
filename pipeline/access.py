"""Read access to the stored facts for people: the ``sql`` command, and the runner the
``indicators`` and ``report`` commands query through.

With the embedded engine (chDB) only one process may open the store, and while the
worker runs that process is the worker: the query then goes to the worker's
``POST /sql`` on 127.0.0.1. When no worker answers, the command opens the engine
itself. With an ``http(s)://`` DSN the command talks to the ClickHouse server.
Either way the query is checked to be read-only here *and* runs with the engine's
``readonly=1`` setting and the bounds of ``TTHC_SQL_MAX_*`` (``webguard.sql_limits``).
"""

from __future__ import annotations

import csv
import io
import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Sequence
from urllib.parse import urlparse

from pipeline.config import Settings, UserError
from pipeline.safetext import csv_row, terminal_text
from pipeline.store.client import connect, describe_dsn
from pipeline.store.readonly import ClientRunner, QueryRunner, check_read_only, json_safe
from pipeline.webguard import sql_limits, sql_token

FORMATS = ("json", "table", "csv")


class WorkerRunner:
    """Runs read-only queries through a live worker's HTTP endpoint."""

    def __init__(self, base_url: str, token: str | None, timeout: float = 300.0) -> None:
        self.url = f"{base_url}/sql"
        self.token = token  # TTHC_SQL_TOKEN(_FILE), else the worker's generated one (webguard.sql_token)
        self.timeout = timeout

    def __repr__(self) -> str:  # never the token
        return f"WorkerRunner({self.url!r})"

    def query(self, sql: str, parameters: dict | None = None) -> tuple[list[str], list[tuple]]:
        body = json.dumps({"query": sql, "parameters": parameters or {}}).encode()
        headers = {"Content-Type": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        request = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                answer = json.load(response)
        except urllib.error.HTTPError as exc:
            try:
                message = json.load(exc).get("error", str(exc))
            except ValueError:
                message = str(exc)
            raise UserError(message) from None
        return answer["columns"], [tuple(row) for row in answer["rows"]]

    def health(self) -> dict | None:
        """The worker's ``/healthz`` answer, None when no worker answers on the port."""
        try:
            # a busy worker can take seconds to answer; a refused connection fails at once
            with urllib.request.urlopen(self.url.replace("/sql", "/healthz"), timeout=15) as response:
                answer = json.load(response)
        except (OSError, ValueError):
            return None
        # any answer means a worker holds the engine: ask it (degraded, or starting during a
        # rebuild, it still answers POST /sql, or says why not in one line)
        return answer if isinstance(answer, dict) and "status" in answer else None


NO_DATA = (
    "chưa có dữ liệu / no data yet in {where}: start the worker (tthc worker), then replay or simulate "
    "(tthc replay FILE, tthc simulate --rate 20 --duration 5m)"
)


def embedded_path(settings: Settings) -> Path:
    """The directory of the embedded store (``chdb:///path``)."""
    return Path(urlparse(settings.effective_clickhouse_dsn).path)


def open_runner(settings: Settings) -> QueryRunner:
    """The way to reach the stored facts right now (see the module docstring); a store
    without tables, or a worker serving another data dir, is one line saying what to do."""
    if settings.embedded_clickhouse:
        worker = WorkerRunner(settings.web_url, sql_token(settings))
        health = worker.health()
        if health is not None:
            check_same_store(health.get("data_dir"), settings)
            return worker
        path = embedded_path(settings)
        if not path.is_dir():  # do not create a store where none is: a wrong --data-dir, or nothing run yet
            raise UserError(NO_DATA.format(where=path) + "; or point --data-dir at the worker's data dir")
        try:
            client = connect(settings.effective_clickhouse_dsn)
        except Exception as exc:
            if "lock" in str(exc).lower():
                raise UserError(
                    "the embedded ClickHouse is held by another process that does not answer on "
                    f"{settings.web_url} (a worker still starting?); try again in a moment"
                ) from None
            raise
        where = str(path)
    else:
        client = connect(settings.effective_clickhouse_dsn)
        where = describe_dsn(settings.effective_clickhouse_dsn)
    # the same bounds as POST /sql, whichever way the query goes (a server enforces them per query)
    runner = ClientRunner(client, settings=sql_limits(settings).settings())
    _, tables = runner.query("SHOW TABLES")
    if not tables:
        raise UserError(NO_DATA.format(where=where))
    return runner


def check_same_store(served: str | None, settings: Settings) -> None:
    """The worker answering on ``TTHC_WEB_PORT`` must serve this data dir: another data dir's
    worker on the same port would answer for the wrong facts (``served``: the data dir its
    ``/healthz`` names; None, an older worker that does not say)."""
    expected = settings.data_dir.resolve()
    if served is not None and Path(served) != expected:
        raise UserError(
            f"the worker on {settings.web_url} serves another store ({served}), not {expected}: "
            f"use --data-dir {served} (its data dir), or TTHC_WEB_PORT of this data dir's worker"
        )


def format_rows(columns: Sequence[str], rows: Sequence[Sequence[Any]], output_format: str) -> str:
    rows = [json_safe(list(row)) for row in rows]
    if output_format == "json":
        return json.dumps([dict(zip(columns, row)) for row in rows], ensure_ascii=False, indent=1)
    if output_format == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\r\n")  # RFC 4180; a \r or \n in a value is quoted
        writer.writerow(csv_row(columns))  # formula-looking text neutralised (pipeline/safetext.py)
        writer.writerows(csv_row(row) for row in rows)
        return buffer.getvalue().removesuffix("\r\n")
    columns = [terminal_text(str(c)) for c in columns]  # no control character reaches the terminal
    if not columns:  # the embedded engine names no columns for an empty result
        return "(0 rows)"
    texts = [[("NULL" if v is None else terminal_text(str(v))) for v in row] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in texts]) for i, c in enumerate(columns)]
    lines = [" | ".join(c.ljust(w) for c, w in zip(columns, widths))]
    lines.append("-+-".join("-" * w for w in widths))
    lines.extend(" | ".join(v.ljust(w) for v, w in zip(row, widths)) for row in texts)
    lines.append(f"({len(rows)} row{'s' if len(rows) != 1 else ''})")
    return "\n".join(lines)


def print_sql(settings: Settings, query: str, output_format: str) -> int:
    check_read_only(query)
    columns, rows = open_runner(settings).query(query)
    print(format_rows(columns, rows, output_format))
    return 0
