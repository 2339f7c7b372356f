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
from typing import Any, Iterator, Mapping, Sequence

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import ProducerFenced, TopicAlreadyExistsError
from rocksdict import Options, Rdict, WriteBatch

log = logging.getLogger("pipeline.state")

#: key of the partition's clock record (latest accepted occurred_at, µs); never a
#: case id, since case ids are UTF-8 and 0xFF never occurs in UTF-8
CLOCK_KEY = b"\xff\xffclock"
#: key, in the local cache only, of the last changelog offset it holds
_OFFSET_KEY = b"\xff\xffoffset"
_MAX_BATCH_BYTES = 900_000  # below the broker's default message.max.bytes (1 MiB)
_STOP_TIMEOUT_S = 10.0  # stopping a failed producer


async def _stop_quietly(producer: AIOKafkaProducer) -> None:
    try:
        await asyncio.wait_for(producer.stop(), _STOP_TIMEOUT_S)
    except asyncio.CancelledError:
        raise
    except BaseException:  # noqa: BLE001 - the producer is abandoned either way
        pass


class Fenced(Exception):
    """The changelog refused writes to ``partitions``: another worker owns them now."""

    def __init__(self, partitions) -> None:
        self.partitions = frozenset(partitions)
        super().__init__(f"partitions {sorted(self.partitions)} are fenced: another worker owns them now")


@dataclass(frozen=True, slots=True)
class OutboundRecord:
    """A message for another topic, written in the same transaction as a partition's
    records (``CaseStore.commit(..., extra=...)``): visible to read_committed readers
    exactly when the records are."""

    topic: str
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...] = ()


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
        topic_configs: Mapping[str, str] | None = None, transactional_prefix: str | None = None,
    ) -> None:
        self.bootstrap = bootstrap
        # f"{prefix}-p{N}": the transactional id of partition N's writer (fencing, below)
        self.transactional_prefix = transactional_prefix or topic
        # bootstrap servers and security of every client (pipeline.kafka_clients), and the topic's replication
        self.client_options = dict(client_options or {"bootstrap_servers": bootstrap})
        self.replication = replication
        self.topic_configs = dict(topic_configs or {})
        self.topic = topic
        self.partitions = partitions
        self.directory = directory
        self._dbs: dict[int, Rdict] = {}
        self._owned: set[int] = set()  # partitions this worker writes (``own``)
        self._producers: dict[int, AIOKafkaProducer] = {}  # one transactional writer per owned partition
        self._ends: dict[int, int] = {}  # where this worker's last write (or read) ended, per partition
        self._failed: set[int] = set()  # partitions whose producer must be renewed

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

    async def own(self, partitions) -> None:
        """Become the one writer of ``partitions`` (call on every assignment, before
        ``recover``): each gets a transactional producer, id ``<prefix>-p<N>``, whose
        ``init_transactions`` bumps the id's epoch. From then on every write of an
        earlier owner of the partition (a worker that lost it without noticing) is
        refused by the broker, and its open transaction is aborted before the recovery
        reads the changelog. Producers of partitions not in ``partitions`` stop."""
        for partition in list(self._producers):
            await self._drop_producer(partition)  # a new epoch even if this worker held it
        self._owned = set(partitions)
        self._ends.clear()
        self._failed.clear()
        for partition in sorted(self._owned):
            self._producers[partition] = await self._start_producer(partition)

    def owned(self) -> frozenset[int]:
        return frozenset(self._owned)

    async def _start_producer(self, partition: int) -> AIOKafkaProducer:
        producer = AIOKafkaProducer(
            **self.client_options,
            acks="all",
            enable_idempotence=True,
            transactional_id=f"{self.transactional_prefix}-p{partition}",
            max_batch_size=_MAX_BATCH_BYTES + 100_000,
            linger_ms=0,
        )
        try:
            await producer.start()  # init_transactions: fences the previous owner
        except BaseException:
            await _stop_quietly(producer)
            raise
        return producer

    async def _drop_producer(self, partition: int) -> None:
        producer = self._producers.pop(partition, None)
        if producer is not None:
            await _stop_quietly(producer)

    def _disown(self, partition: int) -> None:
        self._owned.discard(partition)
        self._ends.pop(partition, None)
        self._failed.discard(partition)

    async def renew_producer(self) -> None:
        """Replace the producers of partitions whose commit failed without being fenced
        (after a broker restart a producer can be left with sequence numbers the broker
        refuses for ever: ``OutOfOrderSequenceNumber``, fatal in aiokafka). A new
        producer takes a new epoch, which would also fence a legitimate new owner if
        this worker had lost the partition meanwhile; so the changelog is read
        (read_committed) from where this worker's own last write ended: if anything
        was committed there since, someone else wrote, this worker's view of the
        partition is stale, and the partition is ``Fenced``: never written by this
        worker again until it is assigned anew."""
        stale = set()
        for partition in sorted(self._failed | (self._owned - set(self._producers))):
            await self._drop_producer(partition)
            expected = self._ends.get(partition)
            # read before the new epoch (so a new owner is not fenced by a stale worker),
            # and again after it (nothing may have slipped in between)
            since = None if expected is None else await self._committed_since(partition, expected)
            fresh = None
            if since == 0:
                fresh = await self._start_producer(partition)
                since = await self._committed_since(partition, expected)
            if since != 0:
                log.error("partition %d: %s committed changelog records after this worker's last write "
                          "(offset %s): another worker wrote; fenced", partition, since, expected)
                if fresh is not None:
                    await _stop_quietly(fresh)
                self._disown(partition)
                stale.add(partition)
                continue
            self._producers[partition] = fresh
            self._failed.discard(partition)
        if stale:
            raise Fenced(stale)

    async def _committed_since(self, partition: int, start: int) -> int:
        """How many committed records ``partition`` holds from offset ``start`` on (aborted
        records and transaction markers are skipped by a read_committed reader)."""
        tp = TopicPartition(self.topic, partition)
        consumer = AIOKafkaConsumer(**self.client_options, enable_auto_commit=False, group_id=None,
                                    isolation_level="read_committed")
        await consumer.start()
        try:
            consumer.assign([tp])
            end = (await consumer.end_offsets([tp]))[tp]
            consumer.seek(tp, start)
            found = 0
            while await consumer.position(tp) < end:
                batches = await consumer.getmany(tp, timeout_ms=1000)
                found += len(batches.get(tp, ()))
        finally:
            await consumer.stop()
        return found

    async def stop(self) -> None:
        for partition in list(self._producers):
            await self._drop_producer(partition)
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
            isolation_level="read_committed",  # never a fenced or aborted write
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
        self._ends[partition] = end
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
    async def commit(self, changes: Mapping[int, Mapping[str, bytes]], clocks: Mapping[int, int], *,
                     extra: Mapping[int, Sequence[OutboundRecord]] | None = None) -> int:
        """Write changed records (and each partition's clock) to the changelog, one
        transaction per partition, wait for the broker, then to the local cache. Returns
        the number of records. A partition another worker owns now is not written:
        ``Fenced`` is raised for those once the others are written. ``extra``: messages
        for other topics that partition N's transaction carries too (the DVCQG
        translation's contract events and dead letters: written exactly when the states
        that produced them are)."""
        extra = extra or {}
        partitions = sorted(set(changes) | set(clocks) | {p for p, records in extra.items() if records})
        outcomes = await asyncio.gather(
            *(self._commit_partition(p, changes.get(p, {}), clocks.get(p), extra.get(p, ())) for p in partitions),
            return_exceptions=True,
        )
        written, fenced, failure = 0, set(), None
        for partition, outcome in zip(partitions, outcomes):
            if isinstance(outcome, (ProducerFenced, Fenced)):
                fenced.add(partition)
            elif isinstance(outcome, BaseException):
                self._failed.add(partition)
                failure = failure or outcome
            else:
                written += outcome
        for partition in fenced:
            log.error("partition %d: changelog write fenced: another worker owns it now", partition)
            await self._drop_producer(partition)
            self._disown(partition)
        if failure is not None:
            raise failure
        if fenced:
            raise Fenced(fenced)
        return written

    async def _commit_partition(self, partition: int, changes: Mapping[str, bytes], clock: int | None,
                                extra: Sequence[OutboundRecord] = ()) -> int:
        if partition not in self._owned:
            raise Fenced([partition])  # not (or no longer) this worker's to write
        producer = self._producers.get(partition)
        if producer is None:
            raise RuntimeError(f"no changelog producer for partition {partition} (renewed at the next attempt)")
        items = [(case_id.encode(), value) for case_id, value in changes.items()]
        if clock is not None:
            items.append((CLOCK_KEY, str(clock).encode()))
        sent = []  # (delivery future, records in the batch)
        others = []  # delivery futures of ``extra``
        try:
            async with producer.transaction():
                if items:
                    batch, size, count = producer.create_batch(), 0, 0
                    for key, value in items:
                        if size and size + len(key) + len(value) > _MAX_BATCH_BYTES:
                            sent.append((await producer.send_batch(batch, self.topic, partition=partition), count))
                            batch, size, count = producer.create_batch(), 0, 0
                        if batch.append(key=key, value=value, timestamp=None) is None:
                            raise ValueError(f"case record too large for one changelog message ({len(value)} bytes)")
                        size += len(key) + len(value)
                        count += 1
                    sent.append((await producer.send_batch(batch, self.topic, partition=partition), count))
                for record in extra:
                    others.append(await producer.send(record.topic, value=record.value, key=record.key,
                                                      headers=list(record.headers)))
                offsets = [((await future).offset, n) for future, n in sent]
                for future in others:
                    await future
        except BaseException:
            # the failure is the one raised: the others' are the same
            for future in [f for f, _ in sent] + others:
                if future.done() and not future.cancelled():
                    future.exception()
            raise
        if not offsets:
            return 0  # only ``extra``: the changelog partition is not part of the transaction
        first_of_last, in_last = offsets[-1]  # a batch holds consecutive offsets from its first
        # the commit marker follows the last record: the end a read_committed reader sees
        self._ends[partition] = first_of_last + in_last + 1
        cache = WriteBatch(raw_mode=True)
        for key, value in items:
            cache.put(key, value)
        # the exact last offset is not needed: recovery re-reads from here, and
        # re-applying records that the cache already holds changes nothing
        cache.put(_OFFSET_KEY, str(first_of_last - 1).encode())
        self._db(partition).write(cache)
        return len(items)
