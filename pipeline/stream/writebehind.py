"""A write-behind cache in front of a Faust table.

Every message changes several state keys (its case, its id, a few counter days),
and a busy case or counter day changes many times per batch. Writing each change
through the table costs a RocksDB put and a changelog message, which made the
producer the worker's bottleneck (26 changelog messages per event, measured).
This cache keeps the batch's changes in memory and writes each changed key once
when the batch is flushed, *after* its ClickHouse rows are written and *before* its
messages are acked. A crash before that flush therefore loses only changes whose
messages were never acked: they are read again and processed afresh.

Each change remembers the partition of the message that made it, and is written
with a message of that partition as Faust's current event, so every key lands in
its own changelog partition even when the flush runs from a timer.
"""

from __future__ import annotations

import weakref
from typing import Any, Iterator, Mapping, MutableMapping

from faust.streams import _current_event

_DELETED = object()
_MISSING = object()


class WriteBehind(MutableMapping):
    def __init__(self, table: MutableMapping, *, global_reads: bool = False) -> None:
        self.table = table
        # Inside stream iteration Faust looks a key up only in the current message's
        # partition; global reads search every partition this worker holds (used for
        # event ids, which may repeat under another case, i.e. another partition).
        self.global_reads = global_reads
        self.cache: dict[Any, Any] = {}
        self.dirty: dict[Any, int] = {}  # key -> partition of the message that changed it
        self.partition = 0  # set by the worker before each message

    # -- reads: the batch's own changes first ---------------------------------------
    def __getitem__(self, key: Any) -> Any:
        value = self.cache.get(key, _MISSING)
        if value is _MISSING:
            if self.global_reads:
                token = _current_event.set(None)
                try:
                    value = self.table.get(key, _MISSING)
                finally:
                    _current_event.reset(token)
            else:
                value = self.table.get(key, _MISSING)
        if value is _MISSING or value is _DELETED:
            raise KeyError(key)
        return value

    def __contains__(self, key: object) -> bool:
        try:
            self[key]
        except KeyError:
            return False
        return True

    def __iter__(self) -> Iterator:
        return self.keys()

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def keys(self):
        return (key for key, _ in self.items())

    def values(self):
        return (value for _, value in self.items())

    def items(self):
        # Values come from the table's own iteration: a per-key lookup after listing the
        # keys can miss a key the store lists (seen during recovery), and is slower.
        cache = self.cache
        for key, value in self.table.items():
            if key not in cache:
                yield key, value
        for key, value in list(cache.items()):
            if value is not _DELETED:
                yield key, value

    # -- writes: kept until flush -------------------------------------------------
    def __setitem__(self, key: Any, value: Any) -> None:
        self.cache[key] = value
        self.dirty[key] = self.partition

    def __delitem__(self, key: Any) -> None:
        if key not in self:
            raise KeyError(key)
        self.cache[key] = _DELETED
        self.dirty[key] = self.partition

    def take_changes(self) -> dict[Any, tuple[int, Any]]:
        """The changes so far, {key: (partition, value or DELETED)}; new ones start afresh."""
        changes = {key: (partition, self.cache[key]) for key, partition in self.dirty.items()}
        self.dirty = {}
        return changes

    def write(self, changes: Mapping[Any, tuple[int, Any]], events_by_partition: Mapping[int, Any]) -> int:
        """Write ``changes`` to the table, each as its own partition's event; forget them."""
        for key, (partition, value) in changes.items():
            token = _current_event.set(weakref.ref(events_by_partition[partition]))
            try:
                if value is _DELETED:
                    self.table.pop(key, None)
                else:
                    self.table[key] = value
            finally:
                _current_event.reset(token)
            if key not in self.dirty:  # not changed again meanwhile: the table has it now
                self.cache.pop(key, None)
        return len(changes)
