"""Read-only SQL: a check on the text and a runner that makes the engine refuse writes.

Two independent guards (defence in depth):

1. :func:`check_read_only` looks at the statement itself: after removing comments
   (``-- …``, ``# …`` and ``#!…`` as ClickHouse reads them, nested
   ``/* … */``) and leading whitespace and
   parentheses, the first keyword must be ``SELECT``, ``WITH``, ``SHOW``,
   ``DESCRIBE``/``DESC`` or ``EXPLAIN``; a ``;`` followed by anything but whitespace
   or comments (a second statement) is refused, and so is ``INTO OUTFILE`` (it writes
   a file on the client side, which for the embedded engine is this machine, and
   the engine's read-only mode does not stop it). String literals (``'…'``,
   ``$$…$$``, ``$tag$…$tag$``) and quoted identifiers (``"…"``, ```…```) are
   skipped, so a ``;`` or ``--`` inside them changes nothing.
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

import re
import threading
from datetime import date, datetime
from typing import Any, Protocol, runtime_checkable

from pipeline.config import UserError
from pipeline.errors import one_line

__all__ = ["ALLOWED", "QueryError", "QueryRunner", "ClientRunner", "check_read_only", "strip_sql"]

ALLOWED = ("SELECT", "WITH", "SHOW", "DESCRIBE", "DESC", "EXPLAIN")
_PREFIX = "only read-only queries are allowed (SELECT, WITH, SHOW, DESCRIBE, EXPLAIN); got "
_HEREDOC_RE = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)?\$")
_WORD_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_OUTFILE_RE = re.compile(r"\bINTO\s+OUTFILE\b", re.IGNORECASE)


class QueryError(UserError):
    """The engine refused or failed a query (one line, ClickHouse's own message)."""


def strip_sql(sql: str) -> str:
    """``sql`` with comments replaced by a space and every quoted literal or
    identifier replaced by ``''`` (its position kept, its content dropped).

    Raises ``UserError`` for an unterminated quote or block comment.
    """
    out: list[str] = []
    i, n = 0, len(sql)
    while i < n:
        c = sql[i]
        nxt = sql[i + 1] if i + 1 < n else ""
        if c == "-" and nxt == "-":
            j = sql.find("\n", i)
            i = n if j < 0 else j
            out.append(" ")
        elif c == "#" and nxt in (" ", "!"):  # ClickHouse: only "# " and "#!" open a comment
            j = sql.find("\n", i)
            i = n if j < 0 else j
            out.append(" ")
        elif c == "/" and nxt == "*":
            depth, i = 1, i + 2
            while i < n and depth:
                if sql.startswith("/*", i):
                    depth, i = depth + 1, i + 2
                elif sql.startswith("*/", i):
                    depth, i = depth - 1, i + 2
                else:
                    i += 1
            if depth:
                raise UserError(_PREFIX + "an unterminated /* comment")
            out.append(" ")
        elif c in ("'", '"', "`"):
            j = i + 1
            while True:
                if j >= n:
                    raise UserError(_PREFIX + f"an unterminated {c} quote")
                if sql[j] == "\\":
                    j += 2
                    continue
                if sql[j] == c:
                    if j + 1 < n and sql[j + 1] == c:  # doubled quote inside
                        j += 2
                        continue
                    break
                j += 1
            i = j + 1
            out.append("''")
        elif c == "$" and (m := _HEREDOC_RE.match(sql, i)) is not None:
            delim = m.group(0)
            end = sql.find(delim, m.end())
            if end < 0:
                raise UserError(_PREFIX + f"an unterminated {delim} string")
            i = end + len(delim)
            out.append("''")
        else:
            out.append(c)
            i += 1
    return "".join(out)


def check_read_only(sql: str) -> None:
    """Raise ``UserError`` unless ``sql`` is one read-only statement (module doc)."""
    if not isinstance(sql, str):
        raise UserError(_PREFIX + f"a {type(sql).__name__}, not SQL text")
    skeleton = strip_sql(sql)
    body = skeleton.strip()
    while body.endswith(";"):
        body = body[:-1].rstrip()
    if ";" in body:
        raise UserError(_PREFIX + "more than one statement")
    head = body.lstrip("( \t\r\n\f\v")
    if not head:
        raise UserError(_PREFIX + "an empty query")
    m = _WORD_RE.match(head)
    word = m.group(0).upper() if m else repr(head[:20])
    if word not in ALLOWED:
        raise UserError(_PREFIX + f"{word} …")
    if _OUTFILE_RE.search(body):
        raise UserError(_PREFIX + f"{word} … INTO OUTFILE (writes a file)")


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
