"""The link between the worker's two processes: the Faust process (consumer group,
offsets, acks, dead letters, HTTP) and the engine process (``engine.py``: validation,
case state, live view, ClickHouse facts, the case changelog).

Faust's consumer costs about 100-130 µs per message on its own (a ``wait_first`` with
four tasks per message, the stream iterator, sensors), about as much as the
processing; in one process the two add up, in two they overlap (BENCHMARKS.md).

Frames are a 4-byte big-endian length and a pickle of one of the messages below, over
a socket pair both processes own (nothing else can connect to it). Messages from the
Faust process are handled by the engine in the order sent; its answers come back in the
order it produced them.
"""

from __future__ import annotations

import asyncio
import pickle
import struct
from typing import Any, NamedTuple

_LENGTH = struct.Struct(">I")


# -- Faust process -> engine ---------------------------------------------------------
class Batch(NamedTuple):
    """Messages of the input topic as Faust delivered them, column by column."""

    seq: int
    keys: list
    values: list
    partitions: list
    offsets: list
    timestamps: list  # Kafka timestamps, seconds


class Assign(NamedTuple):
    partitions: frozenset


class Revoke(NamedTuple):
    request: int


# Questions answered out of band (``answers.Answers``), one type each: a misspelt
# question is an error where it is written, not an "unknown question" at run time.
class AskMetrics(NamedTuple):
    """The engine's ``/metrics`` families; the live ones only when ``live``."""

    request: int
    live: bool


class AskHealth(NamedTuple):
    request: int


class AskSql(NamedTuple):
    """A read-only query (already checked) with the reader's limits."""

    request: int
    query: str
    parameters: Any
    limits: dict
    wait_seconds: float


class StoreRatings(NamedTuple):
    """DVCQG monthly rating summaries (the translation agent's) for ``dvcqg_ratings``."""

    request: int
    summaries: Any


QUESTIONS = (AskMetrics, AskHealth, AskSql, StoreRatings)
Question = AskMetrics | AskHealth | AskSql | StoreRatings


# -- engine -> Faust process ---------------------------------------------------------
class Done(NamedTuple):
    """Batch ``seq`` is processed: the indexes it skipped (partitions no longer held:
    never acked), its rejected messages ``(index, reason, detail)``, the clock after it."""

    seq: int
    skipped: list
    invalid: list
    clock_us: int


class Flushed(NamedTuple):
    """Every batch up to ``upto`` is written (facts, then case records): ack them, except
    the messages of ``fenced`` partitions (another worker owns them now: never acked here,
    and the worker rejoins its group)."""

    upto: int
    fenced: frozenset = frozenset()


class Revoked(NamedTuple):
    """Everything processed before the revocation is flushed (a ``Flushed`` came first)."""

    request: int


class Answer(NamedTuple):
    request: int
    value: Any = None
    error: str | None = None
    user_error: bool = False


class Failed(NamedTuple):
    """The engine stops: the worker must stop too (its supervisor restarts it)."""

    reason: str


class Link:
    """One end of the socket pair, as asyncio streams."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, sock) -> "Link":
        reader, writer = await asyncio.open_connection(sock=sock, limit=2**20)
        return cls(reader, writer)

    async def send(self, message: Any) -> None:
        data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
        self.writer.write(_LENGTH.pack(len(data)) + data)
        await self.writer.drain()

    async def receive(self) -> Any:
        """The next message; ``EOFError`` when the other process closed its end."""
        try:
            header = await self.reader.readexactly(_LENGTH.size)
            (size,) = _LENGTH.unpack(header)
            return pickle.loads(await self.reader.readexactly(size))
        except (asyncio.IncompleteReadError, ConnectionResetError) as exc:
            raise EOFError("the other process closed the link") from exc

    def close(self) -> None:
        self.writer.close()
