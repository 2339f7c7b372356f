"""The case changelog fences a writer that lost its partition (issue 26), on the real broker.

Three ``CaseStore``s of one consumer group stand for three owners of partition 0 one
after the other; each has its own local cache, as each worker has its own data dir.
"""

from __future__ import annotations

import asyncio

import pytest

from pipeline.stream.repository import case_store
from pipeline.stream.state import Fenced
from tests.integration.workerproc import isolated_settings

pytestmark = pytest.mark.integration


async def _as_the_checkpoint_does(store, changes) -> None:
    """``store.commit`` as the checkpoint retries it: a failure other than ``Fenced`` (a
    fenced producer can also end in an aiokafka assertion, depending on when the refusal
    lands) renews the producers, which finds the partition taken."""
    try:
        await store.commit(changes, {})
    except Fenced:
        raise
    except Exception:
        await store.renew_producer()
        await store.commit(changes, {})


def test_a_later_owner_fences_the_earlier_one_and_recovers_all_it_committed(infra):
    settings = isolated_settings(infra, "fencing")

    def store(name: str):
        from dataclasses import replace

        return case_store(replace(settings, data_dir=settings.data_dir / name))

    async def scenario() -> None:
        first, second, third = store("first"), store("second"), store("third")
        for s in (first, second, third):
            await s.start()
        try:
            await first.own([0, 1])
            await first.recover(0)
            await first.commit({0: {"case-1": b"v1"}, 1: {"case-9": b"w1"}}, {})

            await second.own([0])  # partition 0 moves to the second owner
            await second.recover(0)
            assert second.load(0, "case-1") == b"v1"  # everything the first committed
            await second.commit({0: {"case-2": b"x1"}}, {})  # the new owner writes

            # the first does not know yet: its write of partition 0 is refused, partition 1's goes on
            with pytest.raises(Fenced) as fenced:
                await _as_the_checkpoint_does(first, {0: {"case-1": b"stale"}, 1: {"case-9": b"w2"}})
            assert fenced.value.partitions == {0}
            assert first.owned() == {1}
            with pytest.raises(Fenced):  # and stays refused: it is not the writer any more
                await first.commit({0: {"case-1": b"stale"}}, {})

            await second.commit({0: {"case-1": b"v2"}}, {})
            await third.own([0, 1])
            for partition in (0, 1):
                await third.recover(partition)
            assert third.load(0, "case-1") == b"v2"
            assert third.load(0, "case-2") == b"x1"
            assert third.load(1, "case-9") == b"w2"

            # a writer whose producer failed renews it only if nobody committed since its
            # own last write: here the third did, so the second is fenced and takes no epoch
            second._failed.add(0)  # as after a failed commit (OutOfOrderSequenceNumber)
            await third.commit({0: {"case-1": b"v3"}}, {})
            with pytest.raises(Fenced):
                await second.renew_producer()
            assert second.owned() == frozenset()
            await third.commit({0: {"case-1": b"v4"}}, {})  # still the writer
            fourth = store("fourth")
            await fourth.start()
            try:
                await fourth.own([0])
                await fourth.recover(0)
                assert fourth.load(0, "case-1") == b"v4"
            finally:
                await fourth.stop()
        finally:
            for s in (first, second, third):
                await s.stop()

    asyncio.run(scenario())
