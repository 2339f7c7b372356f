"""The one retry policy of the worker and ``backfill``: a failed write is tried again
after 0.5 s, the wait doubling up to 10 s, until it succeeds (or, where a command line
must end, until ``attempts`` ran out). Meanwhile nothing after it is acked.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Awaitable, Callable, Iterator, Protocol, TypeVar

log = logging.getLogger("pipeline.worker")
T = TypeVar("T")


class ProblemBoard(Protocol):
    """What is failing right now (``guard.Problems``)."""

    def failing(self, name: str, exc: BaseException | str) -> None: ...

    def recovered(self, name: str) -> None: ...


class GiveUp(Exception):
    """Raised by a retried call to stop the retries at once (it is not retryable)."""


@dataclass(frozen=True)
class RetryPolicy:
    first_s: float = 0.5
    most_s: float = 10.0
    attempts: int | None = None  # None: until it succeeds

    def delays(self) -> Iterator[float]:
        delay = self.first_s
        while True:
            yield delay
            delay = min(delay * 2, self.most_s)

    async def run(self, what: str, attempt: Callable[[], Awaitable[T]], problems: ProblemBoard,
                  on_failure: Callable[[BaseException], None] | None = None) -> T:
        """``await attempt()`` until it succeeds; each failure is shown under ``what``.
        ``GiveUp`` (and cancellation) ends the retries with that exception."""
        tried = 0
        for delay in self.delays():
            tried += 1
            try:
                result = await attempt()
            except GiveUp:
                raise
            except Exception as exc:
                problems.failing(what, exc)
                if on_failure is not None:
                    on_failure(exc)
                if self.attempts is not None and tried >= self.attempts:
                    raise
                log.exception("%s failed; retrying in %.1fs", what, delay)
                await asyncio.sleep(delay)
            else:
                problems.recovered(what)
                return result
        raise AssertionError("unreachable")  # pragma: no cover


#: the policy of every write of the worker (facts, case records, dead letters)
RETRY = RetryPolicy()
#: the same for what must succeed soon or stop the worker (its start, taking over its
#: partitions): 0.5 + 1 + 2 + 4 + 8 s of waits, e.g. while a restarted broker comes back
SOON = RetryPolicy(attempts=6)
