"""The worker's case records as the processor sees them, and the state it derives.

``CachedRepository`` keeps decoded records in memory in front of ``state.CaseStore``;
``case_store`` and ``new_live_state`` build the store and the live state from the
settings, the same way for the worker and for ``backfill``.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Iterable, Iterator

from pipeline import kafka_clients
from pipeline.config import Settings
from pipeline.contract.localtime import DAY_US
from pipeline.calendar_file import apology_rule
from pipeline.stream.processor import LiveState, StoredCase
from pipeline.stream.state import CaseStore

CASE_CACHE_SIZE = 50_000  # live case records kept decoded in memory


def case_store(settings: Settings) -> CaseStore:
    """The changelog of the settings' consumer group and its local cache."""
    return CaseStore(
        bootstrap=settings.kafka_bootstrap,
        topic=f"{settings.app_id}-cases-changelog",
        partitions=settings.partitions,
        directory=(settings.data_dir / "state" / settings.app_id).resolve(),
        # bootstrap servers and security, and the replication of the topic (pipeline.kafka_clients)
        client_options=kafka_clients.aiokafka_options(settings),
        replication=kafka_clients.topic_policy(settings).replication,
        topic_configs=kafka_clients.topic_configs(settings),
        transactional_prefix=f"{settings.app_id}-cases",  # partition N's writer: <app id>-cases-pN
    )


def stored_clocks(store: CaseStore, partitions: Iterable[int]) -> dict[int, int]:
    """Each partition's stored clock (latest accepted occurred_at), where one is stored."""
    return {p: c for p in partitions if (c := store.clock(p)) is not None}


def stored_cases(store: CaseStore, partitions: Iterable[int]) -> Iterator[tuple[int, StoredCase]]:
    """(partition, record) of every case the local cache holds for ``partitions``, in order."""
    for partition in sorted(partitions):
        for _case_id, data in store.scan(partition):
            yield partition, StoredCase.from_bytes(data)


def new_live_state(settings: Settings, clock_us: int = 0) -> LiveState:
    return LiveState(
        hold_retention_us=settings.hold_retention_us,
        dedupe_retention_us=settings.dedupe_retention_days * DAY_US,
        clock_us=clock_us,
        apology=apology_rule(settings.apology_lead),
    )


class CachedRepository:
    """The processor's ``CaseRepository``: decoded records in memory, in front of the
    store. Changed records are staged until the flush writes them (``take_staged``)
    and stay readable from memory until the store holds them (``committed``)."""

    def __init__(self, store: CaseStore, capacity: int = CASE_CACHE_SIZE) -> None:
        self.store = store
        self.capacity = capacity
        self.cache: OrderedDict[tuple[int, str], StoredCase] = OrderedDict()
        self.staged: dict[tuple[int, str], StoredCase] = {}
        self.in_flight: dict[tuple[int, str], StoredCase] = {}

    def get(self, partition: int, case_id: str) -> StoredCase | None:
        key = (partition, case_id)
        case = self.staged.get(key) or self.in_flight.get(key) or self.cache.get(key)
        if case is not None:
            if key in self.cache:
                self.cache.move_to_end(key)
            return case
        data = self.store.load(partition, case_id)
        if data is None:
            return None
        case = StoredCase.from_bytes(data)
        self._remember(key, case)
        return case

    def put(self, partition: int, case: StoredCase) -> None:
        key = (partition, case.case_id)
        self.staged[key] = case
        self._remember(key, case)

    def _remember(self, key: tuple[int, str], case: StoredCase) -> None:
        cache = self.cache
        cache[key] = case
        cache.move_to_end(key)
        while len(cache) > self.capacity:
            cache.popitem(last=False)

    def take_staged(self) -> dict[int, dict[str, bytes]]:
        """The changed records, encoded now (later changes go to the next flush)."""
        staged, self.staged = self.staged, {}
        self.in_flight.update(staged)
        encoded: dict[int, dict[str, bytes]] = {}
        for (partition, case_id), case in staged.items():
            encoded.setdefault(partition, {})[case_id] = case.to_bytes()
        return encoded

    def committed(self, written: dict[int, dict[str, bytes]]) -> None:
        for partition, records in written.items():
            for case_id in records:
                key = (partition, case_id)
                if key not in self.staged:
                    self.in_flight.pop(key, None)

    def clear(self) -> None:
        self.cache.clear()
        self.staged.clear()
        self.in_flight.clear()
