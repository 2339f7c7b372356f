"""The reader of ``POST /sql``: a thread and an engine handle of its own.

The engine process writes to ClickHouse on one thread (``engine.py``); a query of
``POST /sql`` on that thread would hold every flush, and so every ack, for as long as
it runs. So the queries run here instead: on one thread of their own, with a client of
their own (a server: its own HTTP session, so never "session is locked" next to the
writer's; the embedded engine: its own handle on the same engine, and
:class:`~pipeline.store.readonly.ClientRunner` one more for the read-only mode, which
sticks to a chDB handle). chDB runs the two handles' queries at the same time ( measured with chdb 4.4, an insert on the writer's handle took at most 43 ms
while a 4.6 s scan ran on the reader's, against 7 ms median without it). The caller
waits at most ``timeout`` seconds (the engine's ``max_execution_time`` plus a grace);
past that it gets a one-line error while the engine stops the query itself.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from pipeline.config import UserError
from pipeline.store.client import connect
from pipeline.store.readonly import ClientRunner, json_safe

__all__ = ["SqlAnswer", "SqlReader"]

SqlAnswer = tuple[list[str], list]  # column names, rows as plain JSON values


class SqlReader:
    """Runs read-only queries off the writer's thread (module doc)."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.client: Any = None  # opened on the reader's thread, at the first query
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sql-reader")

    def _run(self, sql: str, parameters: dict[str, Any] | None, settings: dict[str, Any]) -> SqlAnswer:
        if self.client is None:
            self.client = connect(self.dsn)
        columns, rows = ClientRunner(self.client, settings=settings).query(sql, parameters)
        return columns, json_safe(rows)

    async def query(self, sql: str, parameters: dict[str, Any] | None, settings: dict[str, Any],
                    timeout: float) -> SqlAnswer:
        """``sql`` read with ``settings`` on the reader's thread; ``UserError`` when the
        engine refuses it or no answer came within ``timeout`` seconds."""
        future = asyncio.get_running_loop().run_in_executor(self.executor, self._run, sql, parameters, settings)
        try:
            return await asyncio.wait_for(future, timeout)
        except asyncio.TimeoutError:
            raise UserError(f"the query did not finish within {timeout:g} s; the engine stops it") from None
