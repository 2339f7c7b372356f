"""The engine's garbage-collection policy: the long-lived live state is frozen out of
the cyclic collector's reach, and walked by a full collection only every half hour.

The live state grows by a few objects per event and lives for days; left to the
collector, every full collection walks all of it again (measured: a fifth of the
engine's CPU on the throughput load). So after each flush and each rebuild everything
alive is frozen (``gc.freeze``), without a collection first: walking the objects made
since the last flush cost 40-100 ms per flush, 8-10 us per event (BENCHMARKS.md).
Frozen objects are still freed by reference counting; only reference cycles wait for
the next full pass. The per-event paths make none: a rejected event's exception holds
no frame of its own, and the rows of a ClickHouse insert are released when it returns
(``FactWriter``); the pass logs what it found.
"""

from __future__ import annotations

import gc
import logging
import time

log = logging.getLogger("pipeline.worker")
GC_THRESHOLD = 100_000  # allocations between young-generation collections (CPython: 700)
FULL_GC_INTERVAL_S = 1800.0  # a full collection of the frozen state


def configure() -> None:
    """The young generation collected less often (the engine allocates a lot, keeps most)."""
    gc.set_threshold(GC_THRESHOLD, 20, 100)


class FreezePolicy:
    def __init__(self, full_interval_s: float = FULL_GC_INTERVAL_S) -> None:
        self.full_interval_s = full_interval_s
        self._last_full = time.monotonic()

    def freeze(self) -> None:
        """Call when the state has settled (after a flush, after a rebuild)."""
        now = time.monotonic()
        if now - self._last_full >= self.full_interval_s:
            self._last_full = now
            gc.unfreeze()
            found = gc.collect()
            log.info("full garbage collection in %.2fs (%d unreachable objects)", time.monotonic() - now, found)
        gc.freeze()
