"""Who may use the worker's HTTP, and how much a query through it may cost.

- ``GET /metrics`` and ``GET /healthz`` are open (Prometheus and probes read them).
- ``POST /sql`` needs ``Authorization: Bearer <TTHC_SQL_TOKEN>`` whenever a token is
  configured (``TTHC_SQL_TOKEN`` or ``TTHC_SQL_TOKEN_FILE``). The worker binds
  ``TTHC_WEB_HOST`` (default ``127.0.0.1``); binding anything beyond loopback without a
  token is refused at start with one ``error:`` line (exit code 2), so ``/sql`` is never
  reachable from the network without one.
- Every ``/sql`` query runs with the engine's ``readonly = 1`` (writes, DDL and setting
  changes refused by ClickHouse itself, whatever the statement check thinks) and with
  the bounds ``max_execution_time`` (``TTHC_SQL_MAX_SECONDS``), ``max_result_rows``
  (``TTHC_SQL_MAX_ROWS``) and ``max_result_bytes`` (``TTHC_SQL_MAX_BYTES``), overflow
  mode ``throw``. Under ``readonly = 1`` a query cannot lift them (``SETTINGS …`` in the
  query is refused). On an ``http(s)://`` DSN clickhouse-connect sends these settings
  with each request, so the server enforces them per query.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
from dataclasses import dataclass
from typing import Any, Mapping

from pipeline.config import ConfigError, Settings
from pipeline.secrets import read_secret

__all__ = ["SqlLimits", "WebAccess", "is_loopback", "web_access"]


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


@dataclass(frozen=True, slots=True)
class SqlLimits:
    max_seconds: float
    max_rows: int
    max_bytes: int

    def settings(self) -> dict[str, Any]:
        """ClickHouse settings for one query; ``readonly`` last (it forbids changing
        settings afterwards on the same session)."""
        return {
            "max_execution_time": self.max_seconds,
            "max_result_rows": self.max_rows,
            "max_result_bytes": self.max_bytes,
            "result_overflow_mode": "throw",
            "readonly": 1,
        }


@dataclass(frozen=True)
class WebAccess:
    host: str
    token: str | None
    limits: SqlLimits

    def __repr__(self) -> str:  # never the token
        return f"WebAccess(host={self.host!r}, token={'set' if self.token else None}, limits={self.limits!r})"

    def refusal(self, authorization: str | None) -> str | None:
        """None when a request with this ``Authorization`` header may use ``/sql``, else why not."""
        if self.token is None:
            return None
        scheme, _, given = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not given.strip():
            return "POST /sql needs the header Authorization: Bearer <TTHC_SQL_TOKEN>"
        if not hmac.compare_digest(given.strip().encode(), self.token.encode()):
            return "POST /sql: wrong token"
        return None


def web_access(settings: Settings, environ: Mapping[str, str] | None = None) -> WebAccess:
    """The worker's HTTP access rules; ``ConfigError`` when it would expose ``/sql`` unguarded."""
    environ = os.environ if environ is None else environ
    token = read_secret("TTHC_SQL_TOKEN", environ)
    if not is_loopback(settings.web_host) and token is None:
        raise ConfigError(
            f"TTHC_WEB_HOST={settings.web_host} listens beyond loopback: set TTHC_SQL_TOKEN or "
            "TTHC_SQL_TOKEN_FILE so that POST /sql needs a bearer token"
        )
    limits = SqlLimits(settings.sql_max_seconds, settings.sql_max_rows, settings.sql_max_bytes)
    return WebAccess(settings.web_host, token, limits)
