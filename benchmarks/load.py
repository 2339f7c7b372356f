"""Seeded synthetic load for the benchmarks, cached as JSONL files under ``var/bench/load``.

``history_file(seed, events)``: the first ``events`` lines of a stream of consecutive
one-month scenarios (:func:`pipeline.feed.scenario.build_scenario`, ~20,000 dossiers and
~77,000 messages each, months 2024-01, 2024-02, …, each from its own seed derived from
``seed``). So the load has the scenario's realism (out of order, duplicates, malformed
lines, held events) at any size, and a smaller load is a prefix of a bigger one.
Generating costs about 6 s per chunk on this machine; each chunk and each file is cached,
keyed by the seed, the size and a hash of the generator's source, so a changed simulator
never serves stale bytes.

``province_file(seed, events)``: the province's kind of data (issue 25): a year (2025, both
periods of the registry: the units before and after 1 July) of ``simulate --history``'s
lifecycles (:func:`pipeline.feed.simulate.write_history`: every unit of ``deploy/units.csv``
in force on each day, volumes by population, its mix of channels, supplements, late
dossiers, ratings and feedback), at the scale that gives ``events`` messages, with the
scenario's mess (:func:`pipeline.feed.scenario.messy_lines`: out of order, duplicates,
malformed lines), cut at ``events``. Its shape (events per dossier, units, sectors) is
written beside it (``.stats.json``).

``open_dossiers_file(seed, dossiers)``: only the ``received`` event of ``dossiers``
distinct dossiers (the lifecycle generator's), so every one of them stays open.

``received_events(...)``: fresh ``received`` events stamped at a given time, for the
latency probe.
"""

from __future__ import annotations

import hashlib
import json
import random
import tempfile
from time import time_ns
import uuid
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path

from tqdm import tqdm

from pipeline.config import PROJECT_ROOT, Settings
from pipeline.contract.events import InvalidEvent, message_key, parse_event
from pipeline.feed import lifecycle, scenario, simulate
from pipeline.feed.lifecycle import LOCAL_TZ, LifecycleGenerator, WorkingClock, event_bytes, active_unit_ids

CHUNK_CASES = 20_000  # dossiers per one-month chunk (~77,000 messages)
FIRST_MONTH = date(2024, 1, 1)
LOAD_DIR = PROJECT_ROOT / "var" / "bench" / "load"


def generator_version() -> str:
    """A short hash of the generator sources (and this module): part of every cache key."""
    digest = hashlib.sha256()
    for module in (scenario, lifecycle, simulate):
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


PROVINCE_YEAR = 2025  # both periods of the registry (the merger of 1 July 2025)
#: messages per dossier of the province load at any scale (events, feedback, duplicates and
#: malformed lines): a first guess of the scale, raised until the year gives enough messages
PROVINCE_MESSAGES_PER_DOSSIER = 4.9
PROVINCE_DOSSIERS_PER_YEAR = 1_000_000  # at scale 1 (pipeline.feed.province: ~0.28 per resident)


@dataclass(frozen=True)
class ProvinceLoad:
    path: Path
    events: int  # lines (= Kafka messages)
    scale: float  # write_history's volume factor
    stats: dict  # dossiers, events per dossier, units, sectors … (see province_stats)


def province_stats(lines: list[bytes]) -> dict:
    """The shape of a load: its dossiers and events per dossier (valid, first of each
    event_id), feedback items, units, (unit, sector) pairs, channels, duplicates and
    malformed lines (as the worker sees them now: the wall clock decides what is in the future)."""
    now_us = time_ns() // 1000
    seen: set[str] = set()
    cases: set[str] = set()
    feedbacks: set[str] = set()
    units: set[str] = set()
    scopes: set[tuple[str, str]] = set()
    types: dict[str, int] = {}
    invalid = duplicates = valid = 0
    for line in lines:
        try:
            event = parse_event(line, key=message_key(line), now_us=now_us)
        except InvalidEvent:
            invalid += 1
            continue
        if event.event_id in seen:
            duplicates += 1
            continue
        seen.add(event.event_id)
        valid += 1
        types[event.event_type] = types.get(event.event_type, 0) + 1
        units.add(event.unit_id)
        if event.event_type.startswith("feedback_"):
            feedbacks.add(event.case_id)
            continue
        cases.add(event.case_id)
        if event.event_type == "received":
            scopes.add((event.unit_id, event.fields.get("sector") or ""))
    dossier_events = valid - sum(n for t, n in types.items() if t.startswith("feedback_"))
    return {
        "messages": len(lines),
        "valid_events": valid,
        "duplicates": duplicates,
        "malformed": invalid,
        "dossiers": len(cases),
        "events_per_dossier": round(dossier_events / max(len(cases), 1), 2),
        "feedback_items": len(feedbacks),
        "units": len(units),
        "unit_sector_pairs": len(scopes),
        "event_types": dict(sorted(types.items())),
    }


def province_file(seed: int, events: int, directory: Path | None = None, progress: bool = True) -> ProvinceLoad:
    """The cached JSONL file of ``events`` messages of the province load (module doc)."""
    if events < 1:
        raise ValueError("events must be positive")
    directory = (directory or LOAD_DIR) / generator_version()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"province-s{seed}-n{events}.jsonl"
    meta = path.with_suffix(".stats.json")
    if path.exists() and meta.exists():
        info = json.loads(meta.read_text())
        return ProvinceLoad(path, events, info["scale"], info["stats"])
    settings = Settings()
    scale = min(10.0, 1.1 * events / (PROVINCE_MESSAGES_PER_DOSSIER * PROVINCE_DOSSIERS_PER_YEAR))
    while True:
        with tempfile.NamedTemporaryFile(dir=directory, suffix=".history") as tmp:
            simulate.write_history(settings, PROVINCE_YEAR, tmp.name, scale=scale, seed=seed, progress=progress)
            # the dossiers' lifecycle events, as the province data: the officials' steps
            # (43 % of the history's lines since it carries them) are a stream of their own
            history = [event for event in map(json.loads, Path(tmp.name).read_bytes().splitlines())
                       if event.get("event_type") != "step"]
        rng = random.Random(seed)
        new_id = lambda: str(uuid.UUID(int=rng.getrandbits(128), version=4))  # noqa: E731
        lines = [line for line, _tag in scenario.messy_lines(history, rng, new_id)]
        if len(lines) >= events or scale >= 10.0:
            break
        scale = min(10.0, scale * 1.25 * events / len(lines))
    lines = lines[:events]
    stats = province_stats(lines)
    _write_atomically(path, b"".join(line + b"\n" for line in lines))
    meta.write_text(json.dumps({"scale": round(scale, 6), "stats": stats}, indent=1))
    return ProvinceLoad(path, len(lines), scale, stats)


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
