"""Whether this worker is, for sure, still a member of its consumer group: the bound on
what it exports.

The group coordinator hands a member's partitions to another member only after the
member's session expired: ``session_timeout`` seconds after the last heartbeat it
received. A heartbeat the coordinator answered was received after it was sent; so
until ``sent + session_timeout`` of the last answered heartbeat, no other worker can
own this worker's partitions, and its gauges cannot be summed with a new owner's. A
worker that was stopped (SIGSTOP, a long pause of its event loop) past that moment
stops exporting its indicator series at once when it wakes, until a heartbeat is
answered again (after a rejoin, for the partitions it then holds).

The heartbeat is aiokafka's (``GroupCoordinator._do_heartbeat``, in Faust's consumer
thread): its answers are observed by wrapping that method on the running coordinator.
A heartbeat answered "rebalancing" counts: the partitions move only after this member
joined the new generation (and revoked them first) or was dropped from it. A completed
rebalance counts too, as sent when it began (the revocation callback runs before
aiokafka sends its JoinGroup), so the series come back with the new assignment rather
than at the next heartbeat.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

log = logging.getLogger("pipeline.worker")
MARGIN_S = 1.0  # confirmed until this long before the session could end (a scrape's time)


class Membership:
    def __init__(self, session_timeout_s: float) -> None:
        self.session_timeout_s = session_timeout_s
        self._confirmed_sent: float | None = None  # monotonic send time of the last answered heartbeat
        self._watched: Any = None
        self._joining_since: float | None = None

    @property
    def bound_s(self) -> float:
        """Longest time after the last answered heartbeat that series are exported."""
        return self.session_timeout_s - MARGIN_S

    def confirmed(self, sent: float) -> None:
        if self._confirmed_sent is None or sent > self._confirmed_sent:
            self._confirmed_sent = sent

    def current(self) -> bool:
        sent = self._confirmed_sent
        return sent is not None and time.monotonic() < sent + self.bound_s

    def since_s(self) -> float | None:
        sent = self._confirmed_sent
        return None if sent is None else round(time.monotonic() - sent, 1)

    def watch(self, coordinator: Any) -> None:
        """Observe the heartbeats of ``coordinator`` (aiokafka's, once per coordinator)."""
        if coordinator is None or coordinator is self._watched:
            return
        self._watched = coordinator
        heartbeat = coordinator._do_heartbeat
        membership = self

        async def observed_heartbeat():
            sent = time.monotonic()
            answered = await heartbeat()
            if answered:
                membership.confirmed(sent)
            return answered

        coordinator._do_heartbeat = observed_heartbeat

    def joining(self) -> None:
        """A rebalance begins (the revocation callback, before aiokafka sends JoinGroup)."""
        self._joining_since = time.monotonic()

    def joined(self) -> None:
        """The group answered JoinGroup and SyncGroup (the assignment callback): that is
        a confirmation sent no earlier than the rebalance began."""
        if self._joining_since is not None:
            self.confirmed(self._joining_since)
            self._joining_since = None


def consumer_coordinator(app: Any) -> Any:
    """The aiokafka group coordinator of a Faust app's consumer (None before it started)."""
    try:
        return app.consumer._thread._ensure_consumer()._coordinator
    except Exception:  # noqa: BLE001 - not started yet, or another transport
        return None


def request_rejoin(app: Any) -> bool:
    """Ask the group coordinator (in Faust's consumer thread) to rejoin the group."""
    coordinator = consumer_coordinator(app)
    if coordinator is None:
        return False
    loop: asyncio.AbstractEventLoop = app.consumer._thread.thread_loop
    loop.call_soon_threadsafe(coordinator.request_rejoin)
    return True
