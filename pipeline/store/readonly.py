"""Read-only SQL: a check on the text and a runner that makes the engine refuse writes.

Two independent guards (defence in depth):

1. :func:`check_read_only` (``sqlcheck.py``) looks at the statement itself: one
   statement that reads the project's tables and nothing else (no table function but
   numbers/zeros, no ``system`` database, ``DESCRIBE``/``SHOW`` of plain table names
   only, no ``SETTINGS``/``FORMAT``/``INTO OUTFILE``), every text it cannot fully
   read refused.
2. :class:`ClientRunner` runs every query with the ClickHouse setting
   ``readonly = 1``, so the engine refuses writes, DDL and setting changes too.

chDB caveat (checked with chdb 4.4 / clickhouse-connect 1.12): when the engine
refuses a query for ``readonly = 1``, the setting stays on the connection handle
(the client's restore ``SET readonly = DEFAULT`` is itself refused), and every later
write on that handle fails with READONLY. So on an embedded engine the runner never
uses the caller's client (the worker's writer) but its own handle on the same engine,
and drops that handle after any engine error.
"""

from __future__ import annotations

import threading
from datetime import date, datetime
from typing import Any, Protocol, runtime_checkable

from pipeline.config import UserError
from pipeline.errors import one_line
from pipeline.store.sqlcheck import ALLOWED, check_read_only

__all__ = ["ALLOWED", "QueryError", "QueryRunner", "ClientRunner", "check_read_only", "json_safe"]


class QueryError(UserError):
    """The engine refused or failed a query (one line, ClickHouse's own message)."""


@runtime_checkable
class QueryRunner(Protocol):
    """Something that runs one read-only query and returns (column names, rows).

    ``parameters`` are ClickHouse query parameters: the SQL names them as
    ``{name:Type}`` and the values travel apart from the text.
    """

    def query(self, sql: str, parameters: dict[str, Any] | None = None) -> tuple[list[str], list[tuple]]: ...


class ClientRunner:
    """A :class:`QueryRunner` over a clickhouse-connect client.

    Every query runs with ``settings={"readonly": 1}``; with ``check=True`` (the
    default) :func:`check_read_only` runs first. Values come back as the client
    decodes them (``datetime``, ``date``, ``Decimal`` …); turning them into JSON is
    the caller's job. Engine errors become :class:`QueryError` (one line).

    For a chDB client the queries run on a separate handle to the same engine (see
    the module doc), kept on the client object and shared by every runner of it.
    """

    def __init__(self, client: Any, *, check: bool = True, settings: dict[str, Any] | None = None) -> None:
        """``settings``: further ClickHouse settings for every query (limits such as
        ``max_execution_time``); ``readonly = 1`` is always added, last."""
        self.client = client
        self.check = check
        self.settings = {k: v for k, v in (settings or {}).items() if k != "readonly"}
        self.settings["readonly"] = 1

    def _reader(self) -> Any:
        client = self.client
        path = getattr(client, "path", None)
        if type(client).__name__ != "ChdbClient" or not path:
            return client  # a server: settings are per request, nothing leaks
        with _READER_LOCK:
            reader = getattr(client, "_tthc_reader", None)
            if reader is None:
                import clickhouse_connect  # lazy: only for a chDB reader, ~0.2 s to import

                kwargs = {"database": client.database} if getattr(client, "database", None) else {}
                reader = clickhouse_connect.get_client(interface="chdb", path=path, **kwargs)
                client._tthc_reader = reader
            return reader

    def _discard(self, reader: Any) -> None:
        if reader is self.client:
            return
        with _READER_LOCK:
            if getattr(self.client, "_tthc_reader", None) is reader:
                self.client._tthc_reader = None
        try:
            reader.close()
        except Exception:  # pragma: no cover - closing a broken handle
            pass

    def query(self, sql: str, parameters: dict[str, Any] | None = None) -> tuple[list[str], list[tuple]]:
        if self.check:
            check_read_only(sql)
        reader = self._reader()
        try:
            result = reader.query(sql, parameters=parameters or None, settings=dict(self.settings))
            return list(result.column_names), [tuple(row) for row in result.result_rows]
        except UserError:
            raise
        except Exception as exc:
            self._discard(reader)
            raise QueryError(f"ClickHouse refused the query: {one_line(exc, with_type=False)}") from exc


_READER_LOCK = threading.Lock()


def json_safe(value: Any) -> Any:
    """A query result value as plain JSON: dates and times in ISO 8601, bytes as text."""
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, (bytes, bytearray)):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)  # Decimal, UUID, IP addresses
