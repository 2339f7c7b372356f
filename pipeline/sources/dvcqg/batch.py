"""A batch of raw-topic messages through the translator: what the worker's translation
agent (``pipeline/stream/translation.py``) sends where. Pure.

``translate_batch(translator, messages, states)`` takes the messages of
``tthc.dvcqg-records`` (key, value) in topic order and the dossiers' states (a dict the
caller keeps: ``MaHoSo`` -> state; read with ``get``, updated in place) and returns the contract events to
produce (keyed by ``case_id``), the dead letters (the message's original bytes and a
reason) and the counts of the problems that are only counted.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterable

from pipeline.sources.dvcqg.records import BadRecord, RawRecord
from pipeline.sources.dvcqg.translator import RatingSummary, Translator

__all__ = ["DeadRecord", "BatchOutput", "translate_batch", "DEAD_KINDS"]

DEAD_KINDS = frozenset({"bad_record", "invalid_event"})


@dataclass(frozen=True, slots=True)
class DeadRecord:
    key: bytes | None
    value: bytes | None
    reason: str


@dataclass(slots=True)
class BatchOutput:
    events: list[dict[str, Any]] = field(default_factory=list)
    dead: list[DeadRecord] = field(default_factory=list)
    ratings: list[RatingSummary] = field(default_factory=list)
    counted: Counter = field(default_factory=Counter)  # problem kind -> count (dead letters included)


def translate_batch(
    translator: Translator, messages: Iterable[tuple[bytes | None, bytes | None]], states: dict[str, dict]
) -> BatchOutput:
    out = BatchOutput()
    for key, value in messages:
        try:
            record = RawRecord.from_bytes(value or b"")
        except BadRecord as exc:
            out.dead.append(DeadRecord(key, value, f"bad_record: {exc}"))
            out.counted["bad_record"] += 1
            continue
        case_key = str(record.data.get("MaHoSo") or "") if record.service != "DongBoDanhGia" else ""
        result = translator.apply(record, states.get(case_key) if case_key else None)
        if case_key and result.state is not None:
            states[case_key] = result.state
        out.events.extend(result.events)
        out.ratings.extend(result.ratings)
        for problem in result.problems:
            out.counted[problem.kind] += 1
            if problem.kind in DEAD_KINDS:
                out.dead.append(DeadRecord(key, value, f"{problem.kind}: {problem.detail}"[:500]))
    return out
