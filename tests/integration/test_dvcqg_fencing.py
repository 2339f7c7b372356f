"""The DVCQG translation's states are fenced like the case records (``translation.py``):
a worker that lost a raw partition without noticing (a zombie) writes nothing — neither
the dossiers' states nor the contract events and dead letters of the same transaction —
while the new owner recovers everything the zombie committed before, on the real broker."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from pipeline.config import load_settings
from pipeline.infra.kafka import ensure_topics
from pipeline.infra.manager import up
from pipeline.kafka_clients import aiokafka_options
from pipeline.stream.state import Fenced, OutboundRecord
from pipeline.stream.translation import dvcqg_store
from tests.integration.workerproc import isolated_settings

pytestmark = pytest.mark.integration


async def _committed_values(settings, topic: str, wait_s: float = 30.0) -> list[bytes]:
    """Every message of ``topic`` a read_committed reader sees (what the worker's facts and
    any consumer of the dead letters can rely on), read up to the high watermark: the
    markers of a fenced producer's aborted transaction are written by the coordinator
    after the fencing, and until then a read_committed reader's end (the last stable
    offset) stays before them."""
    tps = [TopicPartition(topic, p) for p in range(settings.partitions)]
    probe = AIOKafkaConsumer(**aiokafka_options(settings), enable_auto_commit=False, group_id=None)
    await probe.start()
    try:
        ends = await probe.end_offsets(tps)  # read_uncommitted: the high watermark
    finally:
        await probe.stop()
    consumer = AIOKafkaConsumer(**aiokafka_options(settings), enable_auto_commit=False, group_id=None,
                                isolation_level="read_committed")
    await consumer.start()
    try:
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        values = []
        deadline = asyncio.get_running_loop().time() + wait_s
        while [tp for tp in tps if await consumer.position(tp) < ends[tp]]:
            assert asyncio.get_running_loop().time() < deadline, f"{topic}: not readable up to {ends} in {wait_s} s"
            for messages in (await consumer.getmany(timeout_ms=1000)).values():
                values += [m.value for m in messages]
        return values
    finally:
        await consumer.stop()


async def _as_the_agent_does(store, changes, extra) -> None:
    """``store.commit`` as the agent retries it: a failure other than ``Fenced`` renews the
    producers, which finds the partition taken."""
    try:
        await store.commit(changes, {}, extra=extra)
    except Fenced:
        raise
    except Exception:
        await store.renew_producer()
        await store.commit(changes, {}, extra=extra)


def test_a_zombie_translator_writes_no_state_no_event_and_no_dead_letter():
    base = load_settings()
    up(base, kafka_only=True)
    settings = isolated_settings(base, "dvfence")
    ensure_topics(settings.kafka_bootstrap, [settings.topic, settings.dvcqg_dlq_topic], settings.partitions)

    def event(name: str) -> OutboundRecord:
        return OutboundRecord(settings.topic, b"HS-1", name.encode())

    def dead(name: str) -> OutboundRecord:
        return OutboundRecord(settings.dvcqg_dlq_topic, b"HS-9", name.encode(), (("reason", b"bad_record: test"),))

    async def scenario() -> None:
        first, second = (dvcqg_store(replace(settings, data_dir=settings.data_dir / name)) for name in ("a", "b"))
        for store in (first, second):
            await store.start()
        try:
            await first.own([0, 1])
            await first.recover(0)
            await first.commit({0: {"HS-1": b"s1"}}, {}, extra={0: [event("e1"), dead("d1")]})

            await second.own([0])  # raw partition 0 moves to another worker
            await second.recover(0)
            assert second.load(0, "HS-1") == b"s1"  # everything the first committed

            # the first does not know: its transaction on partition 0 is refused whole;
            # partition 1's goes on
            with pytest.raises(Fenced) as fenced:
                await _as_the_agent_does(first, {0: {"HS-1": b"stale"}, 1: {"HS-2": b"t1"}},
                                         {0: [event("zombie"), dead("zombie")], 1: [event("e2")]})
            assert fenced.value.partitions == {0}
            with pytest.raises(Fenced):  # and stays refused
                await first.commit({0: {"HS-1": b"stale"}}, {}, extra={0: [event("zombie")]})

            await second.commit({0: {"HS-1": b"s2"}}, {}, extra={0: [event("e3")]})
            await second.commit({}, {}, extra={0: [event("e4")]})  # events without a state change

            third = dvcqg_store(replace(settings, data_dir=settings.data_dir / "c"))
            await third.start()
            try:
                await third.own([0, 1])
                for partition in (0, 1):
                    await third.recover(partition)
                assert third.load(0, "HS-1") == b"s2"
                assert third.load(1, "HS-2") == b"t1"
            finally:
                await third.stop()

            assert sorted(await _committed_values(settings, settings.topic)) == [b"e1", b"e2", b"e3", b"e4"]
            assert await _committed_values(settings, settings.dvcqg_dlq_topic) == [b"d1"]
        finally:
            for store in (first, second):
                await store.stop()

    asyncio.run(scenario())
