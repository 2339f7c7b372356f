"""The engine's answers to the Faust process's questions (``channel.QUESTIONS``): the
``/metrics`` text, the ``/healthz`` figures, a read-only ``/sql`` query, and the DVCQG
rating summaries to store (the translation agent's: the engine holds the embedded chDB). One handler per
question type; an error goes back as one redacted line."""

from __future__ import annotations

from typing import Protocol

from pipeline.config import UserError
from pipeline.errors import one_line
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

    async def answer(self, ask: channel.Question) -> channel.Answer:
        try:
            match ask:
                case channel.AskMetrics(live=live):
                    value = await self.metrics(live)
                case channel.AskHealth():
                    value = self.engine.health()
                case channel.AskSql(query=query, parameters=parameters, limits=limits, wait_seconds=wait):
                    value = await self.sql(query, parameters, limits, wait)
                case channel.StoreRatings(summaries=summaries):
                    value = await self.ratings(summaries)
                case _:
                    raise TypeError(f"not a question: {type(ask).__name__}")
        except UserError as exc:
            return channel.Answer(ask.request, error=redact(str(exc)), user_error=True)
        except Exception as exc:  # the engine's own message, one line
            return channel.Answer(ask.request, error=redact(one_line(exc, with_type=False)))
        return channel.Answer(ask.request, value)

    async def metrics(self, live: bool = True) -> tuple[str, int]:
        """The engine's families; the live gauges only when ``live`` (the Faust process
        withholds them while its group membership is not confirmed)."""
        engine = self.engine
        current = engine.view_at_clock() if live else None
        live_text = engine.exposition.render(*current) + engine.score_text() if current is not None else ""
        return engine.metrics.render(live_text), engine.clock_us()

    async def ratings(self, summaries) -> int:
        """DVCQG monthly rating summaries (the translation agent's) into ``dvcqg_ratings``."""
        await self.engine.facts.wait_ready()
        return await self.engine.facts.write_ratings(summaries)

    async def sql(self, sql: str, parameters, limits: dict, wait_seconds: float):
        if not self.engine.facts.ready:
            raise UserError("the worker is still starting; try again in a moment")
        return await self.engine.sql_reader.query(sql, parameters, limits, wait_seconds)
