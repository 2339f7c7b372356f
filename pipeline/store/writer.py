"""Batched, idempotent inserts into the fact tables (``pipeline.store.schema``).

Each ``write_*`` call is **one** ``client.insert`` (nothing for an empty batch) and
returns the number of rows written. Writing the same rows again is harmless: the
tables are ``ReplacingMergeTree`` tables keyed by each row's identity, read with
``FINAL``. Counters for the worker's metrics:

- ``rows_written[table]`` — rows sent, per table;
- ``inserts[table]`` — insert statements that succeeded, per table;
- ``errors`` — failed inserts (the exception is re-raised; the caller retries).

Times are accepted as epoch microseconds (``int``, the project's representation)
or as ``datetime`` (naive means UTC); they are sent as integer ticks of the column
(µs for ``DateTime64(6)``, ms for ``DateTime64(3)``).
"""

from __future__ import annotations

import base64
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Mapping, NamedTuple, Sequence, TypedDict

import orjson

from pipeline.contract.rejected import STORED_RAW_MAX, excerpt
from pipeline.core.cases import CaseSummary
from pipeline.core.sectors import public_sector
from pipeline.store.schema import (
    CASE_COLUMNS,
    CASE_EVENT_COLUMNS,
    INVALID_EVENT_COLUMNS,
    SNAPSHOT_COLUMNS,
)

__all__ = [
    "AcceptedEvent",
    "FactWriter",
    "InvalidRow",
    "SnapshotRow",
    "canonical_json",
    "event_row",
    "to_us",
]

WRITE_TABLES = ("case_events", "invalid_events", "cases", "indicator_snapshots")

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
STORED_KEY_MAX = 4096  # bytes of a rejected message's key kept in invalid_events.kafka_key


def to_us(value: Any) -> int | None:
    """Epoch microseconds from an int (already µs), a datetime (naive = UTC) or None."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise TypeError("a time must be epoch microseconds or a datetime, got bool")
    if isinstance(value, int):
        return value
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        delta = value - _EPOCH
        return delta // timedelta(microseconds=1)
    raise TypeError(f"a time must be epoch microseconds or a datetime, got {type(value).__name__}")


def _to_ms(value: Any) -> int | None:
    us = to_us(value)
    return None if us is None else us // 1000


def _now_us() -> int:
    return time.time_ns() // 1000


def canonical_json(record: Mapping[str, Any]) -> str:
    """The stored form of an event: compact JSON, keys sorted, UTF-8 (not \\u-escaped)."""
    return orjson.dumps(record, option=orjson.OPT_SORT_KEYS).decode()


# --------------------------------------------------------------------------- rows


class AcceptedEvent(NamedTuple):
    """An accepted event to store, where it came from, and the unit (and a received's
    sector) it is attributed to."""

    event: Any
    partition: int
    offset: int
    unit_label: str | None = None
    sector_label: str | None = None  # None: the event's own sector (core.sectors)


@dataclass(frozen=True, slots=True)
class InvalidRow:
    """One rejected Kafka message, as it goes into ``invalid_events``.

    ``key`` and ``raw`` are the message's original bytes (``None`` when absent); the
    writer keeps at most ``STORED_RAW_MAX`` bytes of ``raw`` (with its size and hash)
    and ``STORED_KEY_MAX`` of ``key``.
    """

    topic: str
    partition: int
    offset: int
    key: bytes | None
    reason: str
    detail: str
    raw: bytes | None
    received_at_us: int | None = None  # default: the time of the write


class SnapshotRow(TypedDict, total=False):
    """One row of ``indicator_snapshots`` (``write_snapshots``); also accepted: any
    object with these attributes (``ratio`` may be a property; computed if absent)."""

    taken_at: int
    clock_at: int
    indicator: str
    unit: str
    sector: str
    window: str
    numerator: int
    denominator: int
    ratio: float | None
    target: float
    below_target: bool


def _summary_values(s: CaseSummary, version: int, updated_ms: int) -> tuple:
    """The ``cases`` row of a ``CaseSummary`` in ``CASE_COLUMNS`` order (the one mapping from
    a case's summary to its row; ``paused_seconds`` in seconds, ``version``: the highest wins)."""
    return (
        s.case_id, s.unit or "", public_sector(s.sector), s.procedure_code, s.channel, s.status,
        s.received_at_us, s.due_at_us, s.effective_due_us, s.finished_at_us,
        s.finish_type, s.on_time, s.early, s.supplement_requests, s.paused_us / 1_000_000,
        s.has_apology, s.overdue, s.event_count, version, updated_ms,
    )


def event_row(event: Any, partition: int, offset: int, ingested_at_ms: int, unit_label: str | None = None,
              sector_label: str | None = None) -> tuple:
    """The ``case_events`` row of one ``CaseEvent`` (columns: ``CASE_EVENT_COLUMNS``).

    ``unit_label``: the unit the event is attributed to (its ``unit_id`` when the
    registry has it in force at the event's time, else ``unknown``); default unit_id.
    ``sector_label``: a received's sector as attributed (``unknown`` outside the
    registry, ``core.sectors``); default the event's sector.

    A type-specific column is NULL when the event's ``fields`` lacks it (another
    event type, or an optional field left out).
    """
    f = event.fields
    get = f.get
    return (
        event.event_id,
        event.event_type,
        event.case_id,
        event.unit_id,
        event.occurred_at_us,
        event.source,
        get("procedure_code"),
        get("sector"),
        get("channel"),
        get("online_mode"),
        get("due_at"),
        get("has_fee"),
        get("digitized"),
        get("reused_data"),
        get("vneid_authenticated"),
        get("to_unit_id"),
        get("method"),
        get("amount_vnd"),
        get("electronic_result"),
        get("new_due_at"),
        get("rating"),
        canonical_json(event.to_record()),
        int(partition),
        int(offset),
        ingested_at_ms,
        event.unit_id if unit_label is None else unit_label,
        get("sector") if sector_label is None else sector_label,
    )


class StoredRaw(NamedTuple):
    """What ``invalid_events`` keeps of a rejected value (``contract.rejected.excerpt``)."""

    text: str  # the kept bytes as UTF-8 text, or base64
    encoding: str  # utf8 | base64 | none
    size: int  # the original's size in bytes
    sha256: str  # of the original when the text holds only its first bytes, else ""


def _invalid_raw(raw: bytes | None) -> StoredRaw:
    if raw is None:
        return StoredRaw("", "none", 0, "")
    kept = excerpt(raw, STORED_RAW_MAX)
    try:
        text, encoding = kept.data.decode("utf-8"), "utf8"
    except UnicodeDecodeError:
        text, encoding = base64.b64encode(kept.data).decode("ascii"), "base64"
    return StoredRaw(text, encoding, kept.size, kept.sha256 or "")


def _field(row: Any, name: str, default: Any = None) -> Any:
    if isinstance(row, Mapping):
        return row.get(name, default)
    return getattr(row, name, default)


# --------------------------------------------------------------------------- writer


class FactWriter:
    """Batched inserts into ``case_events``, ``invalid_events``, ``cases`` and
    ``indicator_snapshots``; see the module doc for the counters."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.rows_written: dict[str, int] = {t: 0 for t in WRITE_TABLES}
        self.inserts: dict[str, int] = {t: 0 for t in WRITE_TABLES}
        self.errors = 0

    def _insert(self, table: str, data: list[tuple], columns: Sequence[str]) -> int:
        if not data:
            return 0
        count = len(data)
        try:
            self.client.insert(table, data, column_names=list(columns))
        except Exception:
            self.errors += 1
            raise
        finally:
            # clickhouse-connect's insert context is a reference cycle holding the rows:
            # emptied here, they are freed now instead of at the next cyclic collection
            data.clear()
        self.inserts[table] += 1
        self.rows_written[table] += count
        return count

    def write_events(self, rows: Sequence[tuple]) -> int:
        """``rows``: ``AcceptedEvent`` (or ``(CaseEvent, partition, offset)``) per accepted event."""
        ingested_ms = _now_us() // 1000
        data = [event_row(row[0], row[1], row[2], ingested_ms, row[3] if len(row) > 3 else None,
                          row[4] if len(row) > 4 else None) for row in rows]
        return self._insert("case_events", data, CASE_EVENT_COLUMNS)

    def write_invalid(self, rows: Sequence[InvalidRow]) -> int:
        now_ms = _now_us() // 1000
        data = []
        for r in rows:
            raw = _invalid_raw(r.raw)
            key = None if r.key is None else excerpt(r.key, STORED_KEY_MAX).data.decode("utf-8", errors="replace")
            received = now_ms if r.received_at_us is None else r.received_at_us // 1000
            data.append((r.topic, int(r.partition), int(r.offset), key, r.reason, r.detail or "", raw.text,
                         raw.encoding, raw.size, raw.sha256, received))
        return self._insert("invalid_events", data, INVALID_EVENT_COLUMNS)

    def write_cases(
        self, rows: Sequence[CaseSummary], *, version: int | Callable[[CaseSummary], int],
        updated_at_us: int | None = None,
    ) -> int:
        """One ``cases`` row per ``pipeline.core.cases.CaseSummary``, at ``version`` (the
        highest version of a case wins; a function of the summary, e.g.
        ``pipeline.stream.checkpoint.case_version``, or one number) and ``updated_at_us``
        (default: now)."""
        updated_ms = _now_us() // 1000 if updated_at_us is None else _to_ms(updated_at_us)
        data = [_summary_values(r, version(r) if callable(version) else int(version), updated_ms) for r in rows]
        return self._insert("cases", data, CASE_COLUMNS)

    def write_snapshots(
        self,
        rows: Sequence[Any],
        clock_at_us: int | None = None,
        *,
        taken_at_us: int | None = None,
    ) -> int:
        """``rows``: :class:`SnapshotRow` mappings or objects with those attributes
        (e.g. the worker's ``IndicatorFigure`` objects). ``clock_at``/``taken_at`` missing
        from a row come from the arguments: ``clock_at_us`` is the clock T of the
        figures, ``taken_at_us`` the wall time of the snapshot (default: now)."""
        now_us = _now_us()
        data = []
        for r in rows:
            taken = _field(r, "taken_at")
            taken = to_us(taken) if taken is not None else (taken_at_us if taken_at_us is not None else now_us)
            clock = _field(r, "clock_at")
            clock = to_us(clock) if clock is not None else clock_at_us
            if clock is None:
                raise ValueError("a snapshot row needs clock_at (or pass clock_at_us=)")
            numerator = int(_field(r, "numerator"))
            denominator = int(_field(r, "denominator"))
            ratio = _field(r, "ratio", None)
            if ratio is None and denominator:
                ratio = numerator / denominator
            data.append(
                (
                    taken // 1000,
                    clock,
                    _field(r, "indicator"),
                    _field(r, "unit"),
                    _field(r, "sector"),
                    _field(r, "window"),
                    numerator,
                    denominator,
                    None if ratio is None else float(ratio),
                    float(_field(r, "target")),
                    bool(_field(r, "below_target", False)),
                )
            )
        return self._insert("indicator_snapshots", data, SNAPSHOT_COLUMNS)
