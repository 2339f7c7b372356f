"""Seeded synthetic load for the benchmarks, cached as JSONL files under ``var/bench/load``.

``history_file(seed, events)``: the first ``events`` lines of a stream of consecutive
one-month scenarios (:func:`pipeline.feed.scenario.build_scenario`, ~20,000 dossiers and
~77,000 messages each, months 2024-01, 2024-02, …, each from its own seed derived from
``seed``). So the load has the scenario's realism (out of order, duplicates, malformed
lines, held events) at any size, and a smaller load is a prefix of a bigger one.
Generating costs about 6 s per chunk on this machine; each chunk and each file is cached,
keyed by the seed, the size and a hash of the generator's source, so a changed simulator
never serves stale bytes.

``open_dossiers_file(seed, dossiers)``: only the ``received`` event of ``dossiers``
distinct dossiers (the lifecycle generator's), so every one of them stays open.

``received_events(...)``: fresh ``received`` events stamped at a given time, for the
latency probe.
"""

from __future__ import annotations

import hashlib
import json
import random
import uuid
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path

from tqdm import tqdm

from pipeline.config import PROJECT_ROOT
from pipeline.feed import lifecycle, scenario
from pipeline.feed.lifecycle import LOCAL_TZ, LifecycleGenerator, WorkingClock, event_bytes, active_unit_ids

CHUNK_CASES = 20_000  # dossiers per one-month chunk (~77,000 messages)
FIRST_MONTH = date(2024, 1, 1)
LOAD_DIR = PROJECT_ROOT / "var" / "bench" / "load"


def generator_version() -> str:
    """A short hash of the generator sources (and this module): part of every cache key."""
    digest = hashlib.sha256()
    for module in (scenario, lifecycle):
        digest.update(Path(module.__file__).read_bytes())
    digest.update(Path(__file__).read_bytes())
    return digest.hexdigest()[:10]


@dataclass(frozen=True)
class LoadFile:
    path: Path
    events: int  # lines (= Kafka messages)


def _month(index: int) -> date:
    years, month0 = divmod(FIRST_MONTH.month - 1 + index, 12)
    return date(FIRST_MONTH.year + years, month0 + 1, 1)


def _chunk(seed: int, index: int, units: list[str], directory: Path) -> Path:
    path = directory / f"chunk-s{seed}-c{CHUNK_CASES}-{index:03d}.jsonl"
    if not path.exists():
        built = scenario.build_scenario(
            seed=seed * 1_000_003 + index, cases=CHUNK_CASES, start=_month(index).isoformat(), months=1, units=units
        )
        _write_atomically(path, b"".join(line + b"\n" for line in built.lines))
    return path


def _write_atomically(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


def history_file(seed: int, events: int, directory: Path | None = None, progress: bool = True) -> LoadFile:
    """The cached JSONL file of the first ``events`` messages of the seeded history."""
    if events < 1:
        raise ValueError("events must be positive")
    directory = (directory or LOAD_DIR) / generator_version()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"history-s{seed}-c{CHUNK_CASES}-n{events}.jsonl"
    if path.exists():
        return LoadFile(path, events)
    units = active_unit_ids()
    lines: list[bytes] = []
    with tqdm(total=events, desc="generate history", unit="ev", disable=not progress, leave=False) as bar:
        index = 0
        while len(lines) < events:
            chunk = _chunk(seed, index, units, directory).read_bytes().splitlines(keepends=True)
            take = chunk[: events - len(lines)]
            lines.extend(take)
            bar.update(len(take))
            index += 1
    _write_atomically(path, b"".join(lines))
    return LoadFile(path, events)


def _received_template(rng: random.Random, units: list[str]) -> LifecycleGenerator:
    return LifecycleGenerator(rng, units, clock=WorkingClock(), new_id=lambda: str(uuid.UUID(int=rng.getrandbits(128), version=4)))


def open_dossiers_file(seed: int, dossiers: int, directory: Path | None = None, progress: bool = True) -> LoadFile:
    """``dossiers`` ``received`` events of distinct dossiers (no later event: all stay open)."""
    if dossiers < 1:
        raise ValueError("dossiers must be positive")
    directory = (directory or LOAD_DIR) / generator_version()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"open-s{seed}-n{dossiers}.jsonl"
    if path.exists():
        return LoadFile(path, dossiers)
    rng = random.Random(seed)
    units = active_unit_ids()
    gen = _received_template(rng, units)
    start = datetime.combine(date(2024, 1, 1), time(8), LOCAL_TZ)
    lines = []
    for index in tqdm(range(dossiers), desc="generate open dossiers", unit="ev", disable=not progress, leave=False):
        at = start + timedelta(seconds=index * 20)  # ~46 days of receipts, in order
        case_id = f"HS-OPEN-{index:07d}"
        received = None
        while received is None:  # a dossier rejected at the desk has no receipt: draw again
            received = next((e for e in gen.case(case_id, at) if e["event_type"] == "received"), None)
        lines.append(event_bytes(received) + b"\n")
    _write_atomically(path, b"".join(lines))
    return LoadFile(path, dossiers)


def received_events(seed: int, count: int, at: datetime, prefix: str) -> list[tuple[bytes, bytes]]:
    """``count`` (key, value) messages: ``received`` of new dossiers ``<prefix>-<n>`` at ``at``."""
    rng = random.Random(seed)
    units = active_unit_ids()
    gen = _received_template(rng, units)
    stamp = at.astimezone(LOCAL_TZ).isoformat(timespec="milliseconds")
    due = (at + timedelta(days=10)).astimezone(LOCAL_TZ).isoformat(timespec="seconds")
    templates = []
    while len(templates) < 50:  # a few real receipts, re-stamped
        event = next((e for e in gen.case("HS-T", at) if e["event_type"] == "received"), None)
        if event is not None:
            templates.append(event)
    messages = []
    for index in range(count):
        event = dict(templates[index % len(templates)])
        case_id = f"{prefix}-{index:07d}"
        event.update(
            event_id=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            case_id=case_id,
            occurred_at=stamp,
            due_at=due,
        )
        messages.append((case_id.encode(), json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode()))
    return messages
