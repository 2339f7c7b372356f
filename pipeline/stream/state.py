"""The worker's one durable truth: per-case records in a compacted Kafka changelog.

Every case's record (its events and the offsets of the messages that carried them,
``processor.StoredCase``) lives in partition *p* of the changelog topic
``<app id>-cases-changelog`` when the case's messages come from partition *p* of
the input topic. A local RocksDB per partition (``rocksdict``) is a cache of that
changelog: it is written only after the changelog has acknowledged the records, and
on assignment the worker reads the changelog from the offset its cache holds to the
end. Everything else the worker keeps (indicator view, open cases, event-id index)
is derived from these records in memory, so nothing persisted can disagree with
anything else.

A flush writes each changed case once, as one record batch per partition sent with
``aiokafka`` (``create_batch``/``send_batch``), and waits for the broker's
acknowledgement (``acks=all``) before the worker acks the input messages; Faust
commits input offsets only for acked messages, so committed offsets never run ahead
of the changelog.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from rocksdict import Options, Rdict, WriteBatch

log = logging.getLogger("pipeline.state")

#: key of the partition's clock record (latest accepted occurred_at, µs); never a
#: case id, since case ids are UTF-8 and 0xFF never occurs in UTF-8
CLOCK_KEY = b"\xff\xffclock"
#: key, in the local cache only, of the last changelog offset it holds
_OFFSET_KEY = b"\xff\xffoffset"
_MAX_BATCH_BYTES = 900_000  # below the broker's default message.max.bytes (1 MiB)
_STOP_TIMEOUT_S = 10.0  # stopping a failed producer


class Fenced(Exception):
    """The changelog refused writes to ``partitions``: another worker owns them now."""

    def __init__(self, partitions) -> None:
        self.partitions = frozenset(partitions)
        super().__init__(f"partitions {sorted(self.partitions)} are fenced: another worker owns them now")


@dataclass(frozen=True, slots=True)
class RecoveryStats:
    partition: int
    records: int  # changelog records read from the broker
    cached_offset: int  # offset the local cache held before (-1: empty)
    end_offset: int


class CaseStore:
    """Case records per partition: the changelog topic (truth) and a local cache."""

    def __init__(
        self, *, bootstrap: str, topic: str, partitions: int, directory: Path,
        client_options: Mapping[str, Any] | None = None, replication: int = 1,
        topic_configs: Mapping[str, str] | None = None,
    ) -> None:
        self.bootstrap = bootstrap
        # bootstrap servers and security of every client (pipeline.kafka_clients), and the topic's replication
        self.client_options = dict(client_options or {"bootstrap_servers": bootstrap})
        self.replication = replication
        self.topic_configs = dict(topic_configs or {})
        self.topic = topic
        self.partitions = partitions
        self.directory = directory
        self._dbs: dict[int, Rdict] = {}
        self._producer: AIOKafkaProducer | None = None

    # -- lifecycle -----------------------------------------------------------------
    async def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        admin = AIOKafkaAdminClient(**self.client_options)
        await admin.start()
        try:
            await admin.create_topics(
                [
                    NewTopic(
                        self.topic,
                        num_partitions=self.partitions,
                        replication_factor=self.replication,
                        topic_configs={"cleanup.policy": "compact", **self.topic_configs},
                    )
                ]
            )
        except TopicAlreadyExistsError:
            pass
        finally:
            await admin.close()
        await self._start_producer()

    async def _start_producer(self) -> None:
        producer = AIOKafkaProducer(
            **self.client_options,
            acks="all",
            enable_idempotence=True,
            max_batch_size=_MAX_BATCH_BYTES + 100_000,
            linger_ms=0,
        )
        await producer.start()
        self._producer = producer

    async def renew_producer(self) -> None:
        """Replace the producer after a failed commit. The producer is idempotent; after a
        broker restart it can be left with sequence numbers the broker no longer accepts
        (``OutOfOrderSequenceNumber``), which aiokafka never clears: every retry would
        fail for ever. The next commit writes the same records again on the new one (a
        compacted topic: the same keys and values)."""
        old, self._producer = self._producer, None
        if old is not None:
            try:
                await asyncio.wait_for(old.stop(), _STOP_TIMEOUT_S)
            except asyncio.CancelledError:
                raise
            except BaseException:  # noqa: BLE001 - the old producer is abandoned either way
                pass
        await self._start_producer()

    async def stop(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None
        self.close_partitions(list(self._dbs))

    # -- partitions ----------------------------------------------------------------
    def _db(self, partition: int) -> Rdict:
        db = self._dbs.get(partition)
        if db is None:
            path = self.directory / f"p{partition}"
            db = self._dbs[partition] = Rdict(str(path), options=Options(raw_mode=True))
        return db

    def close_partitions(self, partitions) -> None:
        for partition in partitions:
            db = self._dbs.pop(partition, None)
            if db is not None:
                db.close()

    def close_partitions_except(self, keep) -> None:
        self.close_partitions([p for p in self._dbs if p not in keep])

    async def recover(self, partition: int) -> RecoveryStats:
        """Bring the local cache of ``partition`` up to the changelog's end."""
        db = self._db(partition)
        raw = db.get(_OFFSET_KEY)
        cached = int(raw) if raw is not None else -1
        tp = TopicPartition(self.topic, partition)
        consumer = AIOKafkaConsumer(
            **self.client_options,
            enable_auto_commit=False,
            group_id=None,
            isolation_level="read_uncommitted",
        )
        await consumer.start()
        records = 0
        try:
            consumer.assign([tp])
            end = (await consumer.end_offsets([tp]))[tp]
            begin = (await consumer.beginning_offsets([tp]))[tp]
            if cached >= end or (cached + 1 < begin):
                # the cache is not a prefix of this changelog (topic re-created, or
                # records we never saw were compacted away): start from the topic
                log.warning("state cache of partition %d does not match its changelog; rebuilding", partition)
                db = self._reset(partition)
                cached = -1
            consumer.seek(tp, cached + 1)
            position = cached + 1
            while position < end:
                batches = await consumer.getmany(tp, timeout_ms=1000, max_records=5000)
                batch = WriteBatch(raw_mode=True)
                last = None
                for message in batches.get(tp, ()):
                    if message.value is None:
                        batch.delete(message.key)
                    else:
                        batch.put(message.key, message.value)
                    last = message.offset
                    records += 1
                if last is not None:
                    batch.put(_OFFSET_KEY, str(last).encode())
                    db.write(batch)
                position = await consumer.position(tp)
        finally:
            await consumer.stop()
        return RecoveryStats(partition, records, cached, end)

    def _reset(self, partition: int) -> Rdict:
        self.close_partitions([partition])
        shutil.rmtree(self.directory / f"p{partition}", ignore_errors=True)
        return self._db(partition)

    # -- reading -------------------------------------------------------------------
    def load(self, partition: int, case_id: str) -> bytes | None:
        return self._db(partition).get(case_id.encode())

    def clock(self, partition: int) -> int | None:
        raw = self._db(partition).get(CLOCK_KEY)
        return int(raw) if raw is not None else None

    def scan(self, partition: int) -> Iterator[tuple[str, bytes]]:
        """Every case record of ``partition`` in the local cache: (case id, record)."""
        for key, value in self._db(partition).items():
            if key.startswith(b"\xff"):
                continue
            yield key.decode(), value

    # -- writing -------------------------------------------------------------------
    async def commit(self, changes: Mapping[int, Mapping[str, bytes]], clocks: Mapping[int, int]) -> int:
        """Write changed records (and each partition's clock) to the changelog, wait
        for the broker, then to the local cache. Returns the number of records."""
        producer = self._producer
        if producer is None:  # a renewal failed to start one: try again now
            await self._start_producer()
            producer = self._producer
        futures = []
        per_partition: dict[int, list[tuple[bytes, bytes]]] = {}
        for partition in set(changes) | set(clocks):
            items = [(case_id.encode(), value) for case_id, value in changes.get(partition, {}).items()]
            if partition in clocks:
                items.append((CLOCK_KEY, str(clocks[partition]).encode()))
            per_partition[partition] = items
            batch = producer.create_batch()
            size = 0
            for key, value in items:
                if size and size + len(key) + len(value) > _MAX_BATCH_BYTES:
                    futures.append((partition, await producer.send_batch(batch, self.topic, partition=partition)))
                    batch = producer.create_batch()
                    size = 0
                if batch.append(key=key, value=value, timestamp=None) is None:
                    raise ValueError(f"case record too large for one changelog message ({len(value)} bytes)")
                size += len(key) + len(value)
            futures.append((partition, await producer.send_batch(batch, self.topic, partition=partition)))
        last_offset: dict[int, int] = {}
        for partition, future in futures:
            metadata = await future
            # offset of the batch's first record; the batch holds consecutive offsets
            last_offset[partition] = metadata.offset
        for partition, items in per_partition.items():
            batch = WriteBatch(raw_mode=True)
            for key, value in items:
                batch.put(key, value)
            # the exact last offset is not needed: recovery re-reads from here, and
            # re-applying records that the cache already holds changes nothing
            batch.put(_OFFSET_KEY, str(last_offset[partition] - 1).encode())
            self._db(partition).write(batch)
        return sum(len(items) for items in per_partition.values())
