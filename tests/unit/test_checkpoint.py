"""The pure parts of the flush protocol: the cases row version, the retry policy, the
membership bound of the exports."""

from __future__ import annotations

import asyncio
import time

import pytest

from pipeline.stream.checkpoint import CASE_VERSION_BASE, case_version
from pipeline.stream.guard import Problems
from pipeline.stream.membership import MARGIN_S, Membership
from pipeline.stream.retry import RETRY, RetryPolicy

MS_2026 = 1_780_000_000_000


def test_a_case_row_from_an_older_state_never_wins_over_a_newer_one():
    newer = case_version(event_count=5, written_ms=MS_2026)
    stale_written_later = case_version(event_count=4, written_ms=MS_2026 + 60_000)
    assert stale_written_later < newer
    assert case_version(5, MS_2026 + 1) > newer  # same events: the later write wins
    # above every version of the rows written before (wall-clock nanoseconds)
    assert case_version(1, 0) > 2**62  # nanoseconds since 1970 stay below it until 2116
    assert case_version(1, 0) >= CASE_VERSION_BASE and case_version(10**9, 2**50) < 2**64


def test_the_one_retry_policy_doubles_from_half_a_second_to_ten():
    delays = RETRY.delays()
    assert [next(delays) for _ in range(7)] == [0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0]


def test_a_bounded_policy_gives_up_with_the_last_error_and_shows_the_problem():
    problems, calls = Problems(), []

    async def failing():
        calls.append(1)
        raise OSError("store down")

    policy = RetryPolicy(first_s=0.0, most_s=0.0, attempts=3)
    with pytest.raises(OSError, match="store down"):
        asyncio.run(policy.run("ClickHouse write", failing, problems))
    assert len(calls) == 3
    assert [p["problem"] for p in problems.entries()] == ["ClickHouse write"]


def test_a_success_after_failures_clears_the_problem():
    problems, calls = Problems(), []

    async def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise OSError("not yet")
        return "written"

    assert asyncio.run(RetryPolicy(first_s=0.0).run("changelog write", flaky, problems)) == "written"
    assert problems.entries() == []


class _Coordinator:
    """Stands for aiokafka's group coordinator: only the method the membership wraps."""

    def __init__(self, answers: list[bool]) -> None:
        self.answers = answers

    async def _do_heartbeat(self) -> bool:
        return self.answers.pop(0)


def test_exports_only_within_the_session_after_an_answered_heartbeat():
    membership = Membership(session_timeout_s=6.0)
    coordinator = _Coordinator([False, True])
    membership.watch(coordinator)
    assert not membership.current()  # nothing answered yet
    assert asyncio.run(coordinator._do_heartbeat()) is False
    assert not membership.current()
    assert asyncio.run(coordinator._do_heartbeat()) is True
    assert membership.current()
    assert membership.bound_s == 6.0 - MARGIN_S
    # a heartbeat sent longer ago than the bound (the process was stopped since) no longer confirms
    membership._confirmed_sent = time.monotonic() - membership.bound_s - 0.1
    assert not membership.current()
    membership.watch(coordinator)  # watched once: the wrapper is not wrapped again
    assert coordinator._do_heartbeat.__name__ == "observed_heartbeat"


def test_a_completed_rebalance_confirms_as_of_its_beginning():
    membership = Membership(session_timeout_s=6.0)
    membership.joined()  # an assignment without a revocation before it (the first one): nothing known
    assert not membership.current()
    membership.joining()
    membership.joined()
    assert membership.current()
    membership._confirmed_sent = None
    membership.joining()
    membership._joining_since -= membership.bound_s + 1  # the rebalance began longer ago than the bound
    membership.joined()
    assert not membership.current()
