"""The engine's answers to the Faust process's questions (``channel.Ask``): the
``/metrics`` text, the ``/healthz`` figures, a read-only ``/sql`` query, and the DVCQG
rating summaries to store (the translation agent's: the engine holds the embedded chDB). One handler per
question; an error goes back as one redacted line."""

from __future__ import annotations

from typing import Any, Awaitable, Callable, Protocol

from pipeline.config import UserError
from pipeline.secrets import redact
from pipeline.store.sqlreader import SqlReader
from pipeline.stream import channel
from pipeline.stream.facts import FactStore
from pipeline.stream.metrics import LiveExposition, WorkerMetrics


class Answered(Protocol):
    """What the answers read of the engine."""

    metrics: WorkerMetrics
    exposition: LiveExposition
    facts: FactStore
    sql_reader: SqlReader

    def view_at_clock(self): ...

    def clock_us(self) -> int: ...

    def health(self) -> dict: ...

    def score_text(self) -> str: ...


class Answers:
    def __init__(self, engine: Answered) -> None:
        self.engine = engine
        self.handlers: dict[str, Callable[..., Awaitable[Any]]] = {
            "metrics": self.metrics,
            "health": self.health,
            "sql": self.sql,
            "ratings": self.ratings,
        }

    async def answer(self, ask: channel.Ask) -> channel.Answer:
        handler = self.handlers.get(ask.what)
        try:
            if handler is None:
                raise ValueError(f"unknown question {ask.what!r}")
            value = await handler(*ask.args)
        except UserError as exc:
            return channel.Answer(ask.request, error=redact(str(exc)), user_error=True)
        except Exception as exc:  # the engine's own message, one line
            return channel.Answer(ask.request, error=redact(str(exc).strip().splitlines()[0][:500]))
        return channel.Answer(ask.request, value)

    async def metrics(self, live: bool = True) -> tuple[str, int]:
        """The engine's families; the live gauges only when ``live`` (the Faust process
        withholds them while its group membership is not confirmed)."""
        engine = self.engine
        current = engine.view_at_clock() if live else None
        live_text = engine.exposition.render(*current) + engine.score_text() if current is not None else ""
        return engine.metrics.render(live_text), engine.clock_us()

    async def health(self) -> dict:
        return self.engine.health()

    async def ratings(self, summaries) -> int:
        """DVCQG monthly rating summaries (the translation agent's) into ``dvcqg_ratings``."""
        await self.engine.facts.wait_ready()
        return await self.engine.facts.write_ratings(summaries)

    async def sql(self, sql: str, parameters, limits: dict, wait_seconds: float):
        if not self.engine.facts.ready:
            raise UserError("the worker is still starting; try again in a moment")
        return await self.engine.sql_reader.query(sql, parameters, limits, wait_seconds)
