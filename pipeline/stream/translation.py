"""The DVCQG translation, an agent of the worker's Faust process (``docs/intake.md``).

It consumes the raw topic ``TTHC_DVCQG_TOPIC`` (the intake's records, key ``MaHoSo``) in
the worker's consumer group, beside the contract topic, and turns each batch into
contract events with the pure translator (``pipeline.sources.dvcqg``).

Each dossier's translator state is a record of a second ``CaseStore``: the compacted
changelog ``<app id>-dvcqg-changelog``, partition N holding the dossiers of raw partition
N, written by the transactional producer ``<app id>-dvcqg-p<N>``, cached in
``<data dir>/state/<app id>-dvcqg``. On assignment the agent owns the raw partitions
(which fences an earlier owner) and recovers their states (read_committed); start-up reads
one record per dossier, not the raw topic's history.

For the messages of one raw partition in a batch: translate; ask the engine to store the
rating summaries (``dvcqg_ratings``, the latest report wins); then ONE transaction on that
partition's producer holds the contract events (``TTHC_TOPIC``, key ``case_id``), the dead
letters (``<TTHC_DVCQG_TOPIC>.dlq``, header ``reason``) and the changed states; once it is
committed the local cache is updated and the raw messages are acked, in order (Faust
commits the offsets of acked messages). A crash anywhere: the raw messages are read again
from the committed offset, the recovered states already hold what was committed (a record
seen again changes nothing), and a re-produced event has the same derived id, which the
worker drops. A fenced owner writes nothing: its transaction is refused, its messages are
never acked, and the worker rejoins its group.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import Counter
from typing import Any, Awaitable, Callable, Iterable, Sequence

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from prometheus_client import CollectorRegistry
from prometheus_client import Counter as MetricCounter

from pipeline import kafka_clients
from pipeline.config import Settings
from pipeline.sources.dvcqg.batch import translate_batch
from pipeline.sources.dvcqg.translator import RatingSummary, Registries, Translator
from pipeline.stream.retry import RETRY, SOON, ProblemBoard
from pipeline.stream.state import CaseStore, Fenced, OutboundRecord

__all__ = ["TranslationAgent", "dvcqg_store", "DossierStates", "AGENT_NAME"]

log = logging.getLogger("pipeline.worker")
AGENT_NAME = "translate-dvcqg"
STATES = "dvcqg states"  # the problem shown while the state changelog fails
TAKE_MAX = 1_000  # raw records translated and written in one transaction (per partition)
TAKE_WITHIN_S = 0.2


def dvcqg_store(settings: Settings) -> CaseStore:
    """The dossiers' translator states: a changelog of the settings' consumer group."""
    return CaseStore(
        bootstrap=settings.kafka_bootstrap,
        topic=f"{settings.app_id}-dvcqg-changelog",
        partitions=settings.partitions,
        directory=(settings.data_dir / "state" / f"{settings.app_id}-dvcqg").resolve(),
        client_options=kafka_clients.aiokafka_options(settings),
        replication=kafka_clients.topic_policy(settings).replication,
        topic_configs=kafka_clients.topic_configs(settings),
        transactional_prefix=f"{settings.app_id}-dvcqg",  # raw partition N's writer: <app id>-dvcqg-pN
    )


class DossierStates(dict):
    """The states of one raw partition's dossiers for ``translate_batch``: loaded from the
    store's cache on first use; ``changed`` names those the batch replaced (a record seen
    before returns the same state object: not a change)."""

    def __init__(self, store: CaseStore, partition: int) -> None:
        super().__init__()
        self._store = store
        self._partition = partition
        self.changed: set[str] = set()

    def get(self, key: str, default: Any = None) -> Any:
        if not dict.__contains__(self, key):
            raw = self._store.load(self._partition, key)
            if raw is None:
                return default
            dict.__setitem__(self, key, json.loads(raw))
        return dict.get(self, key, default)

    def __setitem__(self, key: str, value: Any) -> None:
        if dict.get(self, key) is not value:
            self.changed.add(key)
        dict.__setitem__(self, key, value)

    def changed_records(self) -> dict[str, bytes]:
        return {key: _bytes(self[key]) for key in sorted(self.changed)}


def _bytes(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


class TranslationAgent:
    def __init__(
        self, settings: Settings, registries: Registries, problems: ProblemBoard, registry: CollectorRegistry, *,
        store_ratings: Callable[[list[RatingSummary]], Awaitable[Any]], rejoin: Callable[[], Any],
        fail: Callable[[str], Awaitable[Any]],
    ) -> None:
        self.settings = settings
        self.translator = Translator(registries)
        self.problems = problems
        self.store = dvcqg_store(settings)
        self.store_ratings = store_ratings  # the engine writes them (it holds the embedded chDB)
        self.rejoin = rejoin
        self.fail = fail  # stops the worker (its supervisor restarts it): never a silent stop
        self.started = asyncio.Event()
        self.ready = asyncio.Event()  # the states of the assigned raw partitions are recovered
        self.lock = asyncio.Lock()  # one batch at a time; assignment and revocation wait for it
        self.generation = 0
        self.held: set[int] = set()  # partitions whose messages are not acked until the next assignment
        self.records = MetricCounter("tthc_dvcqg_records", "DVCQG raw records translated by this worker",
                                     registry=registry)
        self.events = MetricCounter("tthc_dvcqg_events", "contract events produced by the DVCQG translation "
                                    "(a batch written again after a crash counts again)", registry=registry)
        self.problem_counts = MetricCounter("tthc_dvcqg_problems", "DVCQG records with a problem, by kind "
                                            "(bad_record and invalid_event go to the dead-letter topic)",
                                            ["kind"], registry=registry)

    # -- Faust wiring (called by the worker) ---------------------------------------
    def install(self, app: Any, topic_options: dict[str, Any]) -> None:
        """Subscribe the worker's app to the raw topic (same group) and start the store."""
        topic = app.topic(self.settings.dvcqg_topic, **topic_options)
        app.agent(topic, name=AGENT_NAME)(self.consume)
        app.task(self.start)

    async def _guarded(self, coro) -> None:
        try:
            await coro
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("the DVCQG translation failed; stopping the worker")
            await self.fail(f"DVCQG translation: {type(exc).__name__}: {exc}")
            raise

    async def start(self) -> None:
        await self._guarded(SOON.run(STATES, self._start, self.problems))
        self.started.set()

    async def _start(self) -> None:
        await self.store.start()
        # the dead-letter topic of the raw records, if the intake has not created it
        policy = kafka_clients.topic_policy(self.settings)
        admin = AIOKafkaAdminClient(**kafka_clients.aiokafka_options(self.settings))
        await admin.start()
        try:
            await admin.create_topics([NewTopic(self.settings.dvcqg_dlq_topic, num_partitions=self.settings.partitions,
                                                replication_factor=policy.replication,
                                                topic_configs=kafka_clients.topic_configs(self.settings))])
        except TopicAlreadyExistsError:
            pass
        finally:
            await admin.close()

    def assign(self, partitions: Iterable[int]) -> None:
        """The raw partitions this worker holds now: own them, then recover their states
        (in the background; the agent waits for it before it translates)."""
        self.generation += 1
        self.ready.clear()
        asyncio.ensure_future(self._guarded(self._recover(self.generation, frozenset(partitions))))

    async def revoke(self) -> None:
        """Stop translating; the batch in flight is written and acked first."""
        self.generation += 1
        self.ready.clear()
        async with self.lock:
            pass

    async def _recover(self, generation: int, partitions: frozenset[int]) -> None:
        await self.started.wait()
        async with self.lock:
            if generation != self.generation:
                return
            # first fence any earlier owner, then read: the recovery sees all it committed
            await SOON.run(STATES, lambda: self.store.own(partitions), self.problems)
            records = 0
            for partition in sorted(partitions):
                stats = await SOON.run(STATES, lambda p=partition: self.store.recover(p), self.problems)
                records += stats.records
                if generation != self.generation:
                    return
            self.store.close_partitions_except(partitions)
            self.held = set()
            self.ready.set()
            log.info("dvcqg: raw partitions %s owned, %d changelog records recovered", sorted(partitions), records)

    # -- the agent -----------------------------------------------------------------
    async def consume(self, stream) -> None:
        await self._guarded(self._consume(stream))

    async def _consume(self, stream) -> None:
        async for events in stream.noack_take(TAKE_MAX, within=TAKE_WITHIN_S):
            taken = self.generation
            while True:
                await self.ready.wait()
                async with self.lock:
                    if not self.ready.is_set():
                        continue  # revoked meanwhile: wait for the next assignment
                    if taken == self.generation:
                        await self._batch(events, stream.ack)
                    # else taken in an assignment that is over: never acked (an ack ahead of
                    # the re-read copies could let Faust commit past one), read again
                    break

    async def _batch(self, events: Sequence[Any], ack: Callable[[Any], Awaitable[Any]]) -> None:
        by_partition: dict[int, list] = {}
        for event in events:
            by_partition.setdefault(event.message.partition, []).append(event)
        owned = self.store.owned()
        skipped = {p for p in by_partition if p not in owned or p in self.held}
        todo = {p: evs for p, evs in by_partition.items() if p not in skipped}
        fenced = await RETRY.run(STATES, lambda: self._write(todo), self.problems) if todo else frozenset()
        self.held |= skipped  # not this worker's now (revoked, or fenced before): read by their owner
        self._hold_fenced(fenced)
        for partition, partition_events in todo.items():
            if partition in fenced:
                continue
            for event in partition_events:
                await ack(event)

    async def _write(self, todo: dict[int, list]) -> frozenset[int]:
        """Translate the messages of each partition from the stored states and write the
        results in one transaction per partition; returns the partitions fenced off."""
        settings = self.settings
        changes: dict[int, dict[str, bytes]] = {}
        extra: dict[int, list[OutboundRecord]] = {}
        ratings: list[RatingSummary] = []
        counted: Counter = Counter()
        produced = 0
        for partition, events in todo.items():
            if partition not in self.store.owned():
                continue  # fenced in an earlier attempt
            states = DossierStates(self.store, partition)
            out = translate_batch(self.translator, [(e.message.key, e.message.value) for e in events], states)
            changes[partition] = states.changed_records()
            extra[partition] = [
                OutboundRecord(settings.topic, event["case_id"].encode("utf-8"), _bytes(event)) for event in out.events
            ] + [
                OutboundRecord(settings.dvcqg_dlq_topic, dead.key, dead.value, (("reason", dead.reason.encode("utf-8")),))
                for dead in out.dead
            ]
            ratings.extend(out.ratings)
            counted.update(out.counted)
            produced += len(out.events)
        if ratings:  # before the transaction: a crash after it rewrites them (the latest report wins)
            await self.store_ratings(ratings)
        fenced: frozenset[int] = frozenset()
        try:
            await self.store.commit({p: c for p, c in changes.items() if c}, {}, extra=extra)
        except Fenced as exc:  # the other partitions are written; these never will be by this worker
            fenced = exc.partitions
        except Exception:
            try:
                await self.store.renew_producer()  # a fresh producer for the next attempt
            except Fenced:
                pass  # disowned: skipped by the next attempt, held by the batch
            raise
        fenced = fenced | (set(todo) - self.store.owned())
        self.records.inc(sum(len(todo[p]) for p in todo if p not in fenced))
        self.events.inc(produced)
        for kind, n in counted.items():
            self.problem_counts.labels(kind).inc(n)
        return frozenset(fenced)

    def _hold_fenced(self, partitions: Iterable[int]) -> None:
        """Another worker owns ``partitions`` now: none of their later messages may be acked
        in this assignment (Faust commits past a gap), and the worker rejoins its group so
        that it reads them again from the committed offset if it gets them back."""
        new = set(partitions) - self.held
        if not new:
            return
        self.held |= new
        log.error("dvcqg: raw partitions %s fenced by another worker; rejoining the group", sorted(new))
        self.rejoin()
