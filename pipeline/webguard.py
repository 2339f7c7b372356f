"""Who may use the worker's HTTP, and how much a query through it may cost.

- ``GET /metrics`` and ``GET /healthz`` are open (Prometheus and probes read them).
- ``POST /sql`` always needs ``Authorization: Bearer <token>``. The token is
  ``TTHC_SQL_TOKEN`` (or ``TTHC_SQL_TOKEN_FILE``); when neither is set, the worker
  makes one on its first start into ``<TTHC_DATA_DIR>/sql-token`` (mode 0600, printed
  once where it is) and the ``sql`` command reads it from there. The worker binds
  ``TTHC_WEB_HOST`` (default ``127.0.0.1``); binding beyond loopback without a token of
  one's own (``TTHC_SQL_TOKEN``/``_FILE``) is refused at start with one ``error:`` line
  (exit code 2).
- ``POST /sql`` also needs ``Content-Type: application/json`` (415 otherwise: a
  cross-site form or ``text/plain`` post cannot send it without a CORS pre-flight,
  which the worker never grants) and a ``Host`` header naming the worker — localhost,
  a loopback address, the bound address, or (bound to all addresses) this machine's
  host name (421 otherwise: a DNS-rebinding page sends its own name). A body that is
  not a JSON object ``{"query": "…", "parameters": {…}}`` gets a 400 with one line.
- Every ``/sql`` query runs with the engine's ``readonly = 1`` (writes, DDL and setting
  changes refused by ClickHouse itself, whatever the statement check thinks) and with
  the bounds ``max_execution_time`` (``TTHC_SQL_MAX_SECONDS``), ``max_result_rows``
  (``TTHC_SQL_MAX_ROWS``), ``max_result_bytes`` (``TTHC_SQL_MAX_BYTES``) and
  ``max_memory_usage`` (``TTHC_SQL_MAX_MEMORY``), overflow modes ``throw``. Under
  ``readonly = 1`` a query cannot lift them (and ``SETTINGS …`` is refused by the
  statement check first). On an ``http(s)://`` DSN clickhouse-connect sends these
  settings with each request, so the server enforces them per query.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import os
import secrets
import socket
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from pipeline.config import ConfigError, Settings, UserError
from pipeline.secrets import read_secret, remember

__all__ = [
    "Refusal",
    "SqlLimits",
    "SqlRequest",
    "WebAccess",
    "ensure_sql_token",
    "is_loopback",
    "parse_sql_body",
    "sql_limits",
    "sql_token",
    "sql_token_path",
    "web_access",
]

TOKEN_FILE_NAME = "sql-token"
GRACE_SECONDS = 5.0  # how much longer than max_execution_time the worker waits for a query


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def _host_name(header: str) -> str:
    """The host of a ``Host`` header, without its port, lower case (``[::1]:80`` -> ``::1``)."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1:header.find("]")] if "]" in header else header
    if header.count(":") == 1:
        return header.split(":")[0]
    return header


@dataclass(frozen=True, slots=True)
class SqlLimits:
    max_seconds: float
    max_rows: int
    max_bytes: int
    max_memory: int

    def settings(self) -> dict[str, Any]:
        """ClickHouse settings for one query; ``readonly`` last (it forbids changing
        settings afterwards on the same session)."""
        return {
            "max_execution_time": self.max_seconds,
            "timeout_overflow_mode": "throw",
            "max_result_rows": self.max_rows,
            "max_result_bytes": self.max_bytes,
            "result_overflow_mode": "throw",
            "max_memory_usage": self.max_memory,
            "readonly": 1,
        }

    @property
    def wait_seconds(self) -> float:
        """How long the worker waits for one query's answer before it gives up on it."""
        return self.max_seconds + GRACE_SECONDS


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why an HTTP request may not use ``/sql``: its status and one line."""

    status: int
    message: str


@dataclass(frozen=True, slots=True)
class SqlRequest:
    """The body of a ``POST /sql``."""

    query: str
    parameters: dict[str, Any]


@dataclass(frozen=True)
class WebAccess:
    host: str
    token: str
    limits: SqlLimits
    hosts: frozenset[str]  # what the Host header of a /sql request may name

    def __repr__(self) -> str:  # never the token
        return f"WebAccess(host={self.host!r}, token='set', limits={self.limits!r})"

    def refusal(self, authorization: str | None, content_type: str | None = "application/json",
                host: str | None = "localhost") -> Refusal | None:
        """None when a request with these headers may use ``/sql``, else why not."""
        if host is None or _host_name(host) not in self.hosts:
            return Refusal(421, f"POST /sql: the Host header must name this worker ({', '.join(sorted(self.hosts))})")
        media = (content_type or "").split(";")[0].strip().lower()
        if media != "application/json":
            return Refusal(415, "POST /sql needs the header Content-Type: application/json")
        scheme, _, given = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not given.strip():
            return Refusal(401, "POST /sql needs the header Authorization: Bearer <token> "
                                "(TTHC_SQL_TOKEN, or the file sql-token in the worker's data directory)")
        if not hmac.compare_digest(given.strip().encode(), self.token.encode()):
            return Refusal(401, "POST /sql: wrong token")
        return None


def parse_sql_body(raw: bytes) -> SqlRequest:
    """The request of a ``POST /sql`` body; ``UserError`` (one line) for anything else."""
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise UserError(f"POST /sql: the body is not JSON ({type(exc).__name__})") from None
    if not isinstance(body, dict):
        raise UserError(f'POST /sql: the body must be a JSON object {{"query": "…"}}, not a {type(body).__name__}')
    unknown = set(body) - {"query", "parameters"}
    if unknown:
        raise UserError(f"POST /sql: unknown fields {sorted(unknown)!r} (only query and parameters)")
    query = body.get("query")
    if not isinstance(query, str):
        raise UserError("POST /sql: query must be a string")
    parameters = body.get("parameters")
    parameters = {} if parameters is None else parameters
    if not isinstance(parameters, dict):
        raise UserError("POST /sql: parameters must be a JSON object")
    for value in parameters.values():
        if isinstance(value, (dict,)) or (isinstance(value, list) and any(isinstance(v, (dict, list)) for v in value)):
            raise UserError("POST /sql: a parameter is a string, a number, a boolean, null or a list of those")
    return SqlRequest(query, parameters)


def sql_token_path(settings: Settings) -> Path:
    return settings.data_dir / TOKEN_FILE_NAME


def _read_token_file(path: Path) -> str:
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(f"{path} may be read by others (mode {stat.S_IMODE(mode):o}); chmod 600 {path}")
    value = path.read_text(encoding="utf-8").strip()
    if len(value) < 16 or "\n" in value:
        raise ConfigError(f"{path} does not hold a token; delete it and restart the worker to make a new one")
    return remember(value)


def ensure_sql_token(settings: Settings) -> tuple[str, bool]:
    """The worker's generated token and whether it was made now: read from
    ``<data dir>/sql-token`` or, on the first start, written there (mode 0600)."""
    path = sql_token_path(settings)
    if path.is_file():
        return _read_token_file(path), False
    path.parent.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(32)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another worker on the same data dir made it first
        return _read_token_file(path), False
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(token + "\n")
    return remember(token), True


def sql_token(settings: Settings, environ: Mapping[str, str] | None = None) -> str | None:
    """The token the ``sql`` command sends: ``TTHC_SQL_TOKEN``/``_FILE``, else the
    worker's generated one (None when there is neither)."""
    token = read_secret("TTHC_SQL_TOKEN", environ)
    if token is None and sql_token_path(settings).is_file():
        try:
            token = _read_token_file(sql_token_path(settings))
        except OSError as exc:
            raise ConfigError(f"cannot read {sql_token_path(settings)} ({exc.strerror})") from None
    return token


def _allowed_hosts(web_host: str) -> frozenset[str]:
    hosts = {"localhost", "127.0.0.1", "::1", _host_name(web_host)}
    if web_host in ("0.0.0.0", "::", "*", ""):
        hosts.discard(web_host)
        name = socket.gethostname().lower()
        hosts |= {name, name.split(".")[0]}
    return frozenset(hosts)


def web_access(settings: Settings, environ: Mapping[str, str] | None = None) -> WebAccess:
    """The worker's HTTP access rules; ``ConfigError`` when it would expose ``/sql`` with
    a token nobody configured. On a first start without ``TTHC_SQL_TOKEN`` the token is
    made into the data directory, and the worker says where, once."""
    environ = os.environ if environ is None else environ
    token = read_secret("TTHC_SQL_TOKEN", environ)
    if not is_loopback(settings.web_host) and token is None:
        raise ConfigError(
            f"TTHC_WEB_HOST={settings.web_host} listens beyond loopback: set TTHC_SQL_TOKEN or "
            "TTHC_SQL_TOKEN_FILE so that POST /sql needs a bearer token"
        )
    if token is None:
        token, made = ensure_sql_token(settings)
        if made:
            print(f"worker: POST /sql needs the bearer token now written to {sql_token_path(settings).resolve()} "
                  "(mode 600; the sql command reads it from there)", flush=True)
    return WebAccess(settings.web_host, token, sql_limits(settings), _allowed_hosts(settings.web_host))


def sql_limits(settings: Settings) -> SqlLimits:
    """The bounds of one ``POST /sql`` query (``TTHC_SQL_MAX_*``)."""
    return SqlLimits(settings.sql_max_seconds, settings.sql_max_rows, settings.sql_max_bytes, settings.sql_max_memory)
