"""Opening ClickHouse: the embedded chDB engine or a server, from one DSN.

Accepted DSNs (``TTHC_CLICKHOUSE_DSN``):

- ``chdb:///absolute/path`` — the ClickHouse engine in this process (chDB), its data
  under that directory (created if missing). Tables live in the ``default`` database
  unless the DSN names another as ``chdb:///path?database=NAME`` (created if missing).
  chDB runs **one** engine per process, and a second process cannot open a path that
  another process holds (the worker, usually).
- ``http://user:password@host:port/database`` or ``https://…`` — a ClickHouse server.
  The database must exist (an administrator's job, not the pipeline's).

Anything else raises :class:`pipeline.config.UserError` with one line that never
shows a password.
"""

from __future__ import annotations

import logging
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlparse, urlunparse

from pipeline.config import UserError
from pipeline.errors import one_line

__all__ = ["connect", "describe_dsn"]

_USAGE = "use chdb:///absolute/path or http(s)://user:password@host:port/database"


def describe_dsn(dsn: str) -> str:
    """The DSN with any password replaced by ``***`` (for messages and logs)."""
    try:
        parsed = urlparse(dsn)
    except ValueError:
        return "<unparsable DSN>"
    if parsed.password is None:
        return dsn
    netloc = parsed.netloc.replace(f":{parsed.password}@", ":***@", 1)
    return urlunparse(parsed._replace(netloc=netloc))


def connect(dsn: str):
    """A clickhouse-connect client for ``dsn`` (see the module doc)."""
    if not isinstance(dsn, str) or not dsn.strip():
        raise UserError(f"empty ClickHouse DSN; {_USAGE}")
    dsn = dsn.strip()
    try:
        parsed = urlparse(dsn)
        port = parsed.port  # ValueError on a non-numeric port
    except ValueError:
        raise UserError(f"bad ClickHouse DSN {describe_dsn(dsn)!r}; {_USAGE}") from None
    scheme = parsed.scheme.lower()
    if scheme == "chdb":
        return _connect_chdb(dsn, parsed)
    if scheme in ("http", "https"):
        if not parsed.hostname:
            raise UserError(f"bad ClickHouse DSN {describe_dsn(dsn)!r}: no host; {_USAGE}")
        return _connect_http(dsn, parsed.hostname, port)
    raise UserError(f"bad ClickHouse DSN {describe_dsn(dsn)!r}: unknown scheme; {_USAGE}")


def _connect_chdb(dsn: str, parsed):
    import clickhouse_connect  # lazy: ~0.2 s to import, and `sql`/`report` may reach a worker instead

    if parsed.netloc or not parsed.path.startswith("/") or parsed.path == "/":
        raise UserError(f"bad ClickHouse DSN {dsn!r}: chdb needs an absolute path (chdb:///abs/path)")
    path = Path(parsed.path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create the ClickHouse data directory {path}: {exc.strerror or exc}") from None
    query = {k: v[0] for k, v in parse_qs(parsed.query).items()}
    database = query.get("database")
    try:
        if database and database != "default":
            # Create the named database first (the same engine, so this is allowed).
            bare = urlunparse(parsed._replace(query=urlencode({k: v for k, v in query.items() if k != "database"})))
            boot = clickhouse_connect.get_client(dsn=bare)
            boot.command(f"CREATE DATABASE IF NOT EXISTS `{database.replace('`', '')}`")
        return clickhouse_connect.get_client(dsn=dsn)
    except Exception as exc:  # chDB reports a held path or a second path as a bare error
        raise UserError(
            f"cannot open the embedded ClickHouse at {path} (locked by another process — the "
            f"worker? — or another engine already open in this process): {one_line(exc, with_type=False)}"
        ) from None


def _connect_http(dsn: str, host: str, port: int | None):
    import clickhouse_connect  # lazy: ~0.2 s to import, and `sql`/`report` may reach a worker instead

    # the driver also logs a failed connection to stderr; the one line below says it all
    driver_log = logging.getLogger("clickhouse_connect")
    level = driver_log.level
    driver_log.setLevel(logging.CRITICAL)
    try:
        return clickhouse_connect.get_client(dsn=dsn)
    except Exception as exc:
        where = f"{host}:{port}" if port else host
        raise UserError(f"cannot connect to ClickHouse at {where}: {one_line(exc, with_type=False)}") from None
    finally:
        driver_log.setLevel(level)
