"""Read access to the stored facts for people: the ``sql`` and ``indicators`` commands.

With the embedded engine (chDB) only one process may open the store, and while the
worker runs that process is the worker: the query then goes to the worker's
``POST /sql`` on 127.0.0.1. When no worker answers, the command opens the engine
itself. With an ``http(s)://`` DSN the command talks to the ClickHouse server.
Either way the query is checked to be read-only here *and* runs with the engine's
``readonly=1`` setting.
"""

from __future__ import annotations

import csv
import io
import json
import time
import urllib.error
import urllib.request
from datetime import datetime, timezone
from typing import Any, Sequence

from pipeline.config import Settings, UserError
from pipeline.feed.calendar import apology_rule
from pipeline.store.batch import parse_windows  # one parser of --window, also batch_indicators'
from pipeline.store.readonly import QueryRunner, check_read_only, json_safe

FORMATS = ("json", "table", "csv")


class WorkerRunner:
    """Runs read-only queries through a live worker's HTTP endpoint."""

    def __init__(self, base_url: str, timeout: float = 300.0) -> None:
        self.url = f"{base_url}/sql"
        self.timeout = timeout

    def query(self, sql: str, parameters: dict | None = None) -> tuple[list[str], list[tuple]]:
        from pipeline.secrets import read_secret

        body = json.dumps({"query": sql, "parameters": parameters or {}}).encode()
        headers = {"Content-Type": "application/json"}
        token = read_secret("TTHC_SQL_TOKEN")
        if token:
            headers["Authorization"] = f"Bearer {token}"
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

    def alive(self) -> bool:
        try:
            # a busy worker can take seconds to answer; a refused connection fails at once
            with urllib.request.urlopen(self.url.replace("/sql", "/healthz"), timeout=15) as response:
                # any answer means a worker holds the engine: ask it (degraded, or starting
                # during a rebuild, it still answers POST /sql, or says why not in one line)
                return "status" in json.load(response)
        except (OSError, ValueError):
            return False


def open_runner(settings: Settings) -> QueryRunner:
    """The way to reach the stored facts right now (see the module docstring)."""
    from pipeline.store.client import connect
    from pipeline.store.readonly import ClientRunner

    if settings.embedded_clickhouse:
        worker = WorkerRunner(settings.web_url)
        if worker.alive():
            return worker
        try:
            client = connect(settings.effective_clickhouse_dsn)
        except Exception as exc:
            if "lock" in str(exc).lower():
                raise UserError(
                    "the embedded ClickHouse is held by another process that does not answer on "
                    f"{settings.web_url} (a worker still starting?); try again in a moment"
                ) from None
            raise
        return ClientRunner(client)
    return ClientRunner(connect(settings.effective_clickhouse_dsn))


def format_rows(columns: Sequence[str], rows: Sequence[Sequence[Any]], output_format: str) -> str:
    rows = [json_safe(list(row)) for row in rows]
    if output_format == "json":
        return json.dumps([dict(zip(columns, row)) for row in rows], ensure_ascii=False, indent=1)
    if output_format == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows(rows)
        return buffer.getvalue().rstrip("\n")
    texts = [[("NULL" if v is None else str(v)) for v in row] for row in rows]
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


def parse_at(text: str | None) -> int:
    if text is None:
        return time.time_ns() // 1000
    from pipeline.contract.events import parse_time

    try:
        return parse_time(text)
    except ValueError:
        raise UserError(f"--at must be an RFC 3339 time with offset, e.g. 2025-07-01T00:00:00+07:00; got {text!r}") from None


def print_indicators(
    settings: Settings,
    *,
    windows: str,
    unit: str | None,
    sector: str | None,
    at: str | None,
    output_format: str,
) -> int:
    from pipeline.core.targets import TargetsError
    from pipeline.targets_file import load_targets
    from pipeline.reports.indicator_table import format_indicator_table
    from pipeline.store.batch import batch_indicators

    window_list = parse_windows(windows)
    at_us = parse_at(at)
    try:
        targets = load_targets(settings.targets_file)
    except TargetsError as exc:
        raise UserError(str(exc)) from None
    rows = batch_indicators(
        open_runner(settings),
        window_list,
        at_us,
        unit=unit,
        sector=sector,
        targets=targets,
        hold_retention_us=settings.hold_retention_us,
        apology=apology_rule(settings.apology_lead),
    )
    if output_format == "json":
        print(json.dumps(rows, ensure_ascii=False, indent=1))
    else:
        stamp = datetime.fromtimestamp(at_us / 1e6, tz=timezone.utc).isoformat()
        print(f"Chỉ số tại thời điểm / indicators at {stamp}")
        print(format_indicator_table(rows))
    return 0
