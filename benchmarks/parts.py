"""The benchmark parts. Each takes the base settings and its sizes and returns a JSON-able
dict; none asserts anything about speed.

* :func:`ratio` — the same seeded history in the real broker, consumed by the ceiling,
  Faust's floor, the naive Faust peer and the product end to end.
* :func:`latency` — production → effect on ``/metrics`` at steady rates.
* :func:`memory` — RSS and state bytes per open dossier.
* :func:`restart` — restart-to-correct-gauges time after a long history.
* :func:`contract` — ``parse_event`` alone (the contract's cost per message).
"""

from __future__ import annotations

import asyncio
import math
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timezone

from tqdm import tqdm

from benchmarks import load
from benchmarks.harness import (
    ProductWorker,
    create_topics,
    dir_bytes,
    load_into_broker,
    prime,
    metric_sum,
    percentile,
    remove_run,
    rss_bytes,
    run_settings,
    settings_env,
    state_gauges,
    steady_rate,
)
from benchmarks.peers import run_peer
from pipeline.config import PROJECT_ROOT, Settings

MB = 1024 * 1024
DRAIN_MIN_S = 60  # s a latency phase waits after its last event before it stops looking
RESTART_PATIENCE = 900  # s: a restart slower than this is a finding in itself

PEER_LABELS = {
    "ceiling": "plain aiokafka consumer, read + json.loads (the ceiling)",
    "floor": "Faust agent, stream.take(5000) + decode (Faust's floor)",
    "naive": "textbook Faust agent, tumbling windowed table update per event (the naive peer)",
    "product": "python -m pipeline worker, until stored and in the gauges (the product)",
}


@dataclass
class RateRow:
    consumer: str  # ceiling | floor | naive | product
    label: str
    events: int
    seconds: float  # from the first handled message to the last
    rate: float  # events/s over that span (see harness.steady_rate)
    wall_rate: float  # events/s from process start (start-up and group join included)


def _wait_metric(worker: ProductWorker, name: str, expected: float, timeout: float) -> bytes:
    """Scrape /metrics until the sum of ``name`` equals ``expected``; the last page."""
    page = b""

    def ok() -> bool:
        nonlocal page
        page = worker.metrics()
        return metric_sum(page, name) == expected

    worker.wait_for(ok, timeout, f"{name} == {expected:g}", interval=0.2)
    return page


def _follow_product(worker: ProductWorker, events: int, timeout: float, desc: str):
    with tqdm(total=events, desc=desc, unit="ev", leave=False) as bar:
        seen = worker.follow(events, timeout, bar=bar)
    _wait_metric(worker, "tthc_events_total", events, timeout)
    end = time.monotonic()
    first = next(o for o in seen if o.processed > 0)
    return first, end


def ratio(base: Settings, seed: int, events: int, timeout: float, load_kind: str = "province") -> dict:
    """``load_kind``: ``province`` (the province's kind of data, ``load.province_file``) or
    ``bench`` (the consecutive one-month scenarios, ``load.history_file``)."""
    if load_kind == "province":
        history = load.province_file(seed, events)
        shape = {"load": "province", "load_year": load.PROVINCE_YEAR, "load_scale": round(history.scale, 6), "load_stats": history.stats}
        print(f"  province load: {history.stats['dossiers']:,} dossiers, "
              f"{history.stats['events_per_dossier']} events per dossier, {history.stats['units']} units, "
              f"{history.stats['unit_sector_pairs']} (unit, sector) pairs", flush=True)
    else:
        history = load.history_file(seed, events)
        shape = {"load": "bench"}
    settings = run_settings(base, "ratio", clock="event")
    load_rate = load_into_broker(settings, history.path)
    rows: list[RateRow] = []
    try:
        for kind in ("ceiling", "floor", "naive"):
            result, spawned = run_peer(kind, settings, events, timeout)
            rows.append(RateRow(
                kind, PEER_LABELS[kind], events, round(result.end_at - result.first_at, 3),
                steady_rate(result.first_at, result.first_count, result.end_at, events),
                events / (result.end_at - spawned),
            ))  # fmt: skip
            print(f"  {kind:8} {rows[-1].rate:>10,.0f} events/s", flush=True)
        prime(settings)
        worker = ProductWorker(settings).start()
        try:
            first, end = _follow_product(worker, events, timeout, "product")
            rss = rss_bytes(worker.pid)
            scrape_started = time.monotonic()
            page = worker.metrics()
            scrape_s = time.monotonic() - scrape_started
            series = sum(1 for line in page.splitlines() if line and not line.startswith(b"#"))
            open_cases = metric_sum(page, "tthc_open_cases")
        finally:
            worker.stop()
        rows.append(RateRow(
            "product", PEER_LABELS["product"], events, round(end - first.at, 3),
            steady_rate(first.at, first.processed, end, events), events / (end - worker.spawned_at),
        ))  # fmt: skip
        print(f"  {'product':8} {rows[-1].rate:>10,.0f} events/s", flush=True)
    except BaseException:
        print(f"  (run files kept for inspection in {settings.data_dir})", flush=True)
        raise
    remove_run(settings)
    rates = {row.consumer: row.rate for row in rows}
    return shape | {
        "events": events,
        "seed": seed,
        "load_file": history.path.name,
        "load_rate": round(load_rate),
        "rows": [asdict(row) | {"rate": round(row.rate), "wall_rate": round(row.wall_rate)} for row in rows],
        "product_rss_mb": round(rss / MB, 1),
        "product_scrape_s": round(scrape_s, 3),
        "product_series": series,
        "product_open_cases": round(open_cases),
        "ratio_vs_naive_faust": round(rates["product"] / rates["naive"], 4),
        "ratio_vs_raw_consumer": round(rates["product"] / rates["ceiling"], 4),
    }


# --------------------------------------------------------------------------- latency


@dataclass
class Scrape:
    started: float
    at: float  # monotonic time the page had arrived
    events: float  # tthc_events_total (sum) minus its value before the phase
    gauge: float  # tthc_open_cases (sum) minus its value before the phase


class _Scraper(threading.Thread):
    """Scrapes /metrics until told to stop, pausing ``interval`` s or as long as the last scrape took."""

    def __init__(self, worker: ProductWorker, base_events: float, base_gauge: float, interval: float) -> None:
        super().__init__(daemon=True)
        self.worker, self.interval = worker, interval
        self.base_events, self.base_gauge = base_events, base_gauge
        self.scrapes: list[Scrape] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            started = time.monotonic()
            page = self.worker.metrics()
            self.scrapes.append(Scrape(
                started, time.monotonic(),
                metric_sum(page, "tthc_events_total") - self.base_events,
                metric_sum(page, "tthc_open_cases") - self.base_gauge,
            ))  # fmt: skip
            # at most half of the worker's time goes to our scrapes, however slow they are
            self.stopping.wait(max(self.interval, self.scrapes[-1].at - started))


def reflected_latencies(sent_at: list[float], scrapes: list[Scrape], field: str) -> tuple[list[float], int]:
    """Latency of the k-th event = arrival of the first scrape whose count reached k, minus
    the k-th send time; and how many events no scrape reflected."""
    latencies, j, missing = [], 0, 0
    for k, sent in enumerate(sent_at, start=1):
        while j < len(scrapes) and getattr(scrapes[j], field) < k:
            j += 1
        if j == len(scrapes):
            missing += 1
            continue
        latencies.append(scrapes[j].at - sent)
    return latencies, missing


async def _produce(settings: Settings, messages: list[tuple[bytes, bytes]], rate: float, bar) -> list[float]:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, linger_ms=0)
    await producer.start()
    sent_at = []
    try:
        start = time.monotonic()
        for index, (key, value) in enumerate(messages):
            delay = start + index / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            sent_at.append(time.monotonic())
            await producer.send(settings.topic, value=value, key=key)
            if index % 200 == 0:
                bar.n = index
                bar.refresh()
        await producer.flush()
    finally:
        await producer.stop()
    return sent_at


WARM_UP = 100  # open dossiers sent before anything is measured


def _warm_up(worker: ProductWorker, settings: Settings, seed: int, timeout: float) -> None:
    """Partitions assigned, the first rows written, every code path run once: WARM_UP new
    open dossiers, until they are in the gauges."""
    worker.wait_healthy()
    warm = load.received_events(seed - 1, WARM_UP, datetime.now(timezone.utc), "HS-WARM")
    with tqdm(total=len(warm), desc="warm-up", unit="ev", leave=False) as bar:
        asyncio.run(_produce(settings, warm, 100, bar))
    _wait_metric(worker, "tthc_open_cases", WARM_UP, timeout)


def latency(base: Settings, seed: int, rates: list[int], seconds: float, interval: float, timeout: float) -> dict:
    settings = run_settings(base, "latency", clock="wall")
    create_topics(settings)
    phases = []
    prime(settings)
    worker = ProductWorker(settings).start()
    try:
        _warm_up(worker, settings, seed, timeout)
        for phase, rate in enumerate(rates):
            count = int(rate * seconds)
            messages = load.received_events(seed + phase, count, datetime.now(timezone.utc), f"HS-LAT{phase}")
            page = worker.metrics()
            scraper = _Scraper(worker, metric_sum(page, "tthc_events_total"), metric_sum(page, "tthc_open_cases"), interval)
            scraper.start()
            with tqdm(total=count, desc=f"latency {rate}/s", unit="ev", leave=False) as bar:
                sent_at = asyncio.run(_produce(settings, messages, rate, bar))
            deadline = time.monotonic() + min(timeout, max(DRAIN_MIN_S, seconds))
            while time.monotonic() < deadline and (not scraper.scrapes or scraper.scrapes[-1].gauge < count):
                time.sleep(0.1)
            scraper.stopping.set()
            scraper.join()
            scrapes = scraper.scrapes
            result = {"rate": rate, "seconds": seconds, "events": count,
                      "produced_rate": round(count / max(sent_at[-1] - sent_at[0], 1e-9), 1)}  # fmt: skip
            result["drain_s"] = round(time.monotonic() - sent_at[-1], 1)
            for field in ("events", "gauge"):
                values, missing = reflected_latencies(sent_at, scrapes, field)
                name = "counter" if field == "events" else "gauge"
                result[f"{name}_missing"] = missing
                values += [math.inf] * missing  # not reflected by the end: later than anything seen
                for q in (50, 99, 100):
                    value = percentile(values, q)
                    label = "max" if q == 100 else f"p{q}"
                    result[f"{name}_{label}_s"] = round(value, 3) if math.isfinite(value) else None
            periods = [b.at - a.at for a, b in zip(scrapes, scrapes[1:])]
            result["scrapes"] = len(scrapes)
            result["scrape_p50_s"] = round(percentile([s.at - s.started for s in scrapes], 50), 3)
            result["resolution_p50_s"] = round(percentile(periods, 50), 3) if periods else None
            phases.append(result)
            if result["gauge_missing"]:  # its backlog would be credited to the next phase
                phases.extend({"rate": later, "skipped": "the previous phase was not drained"} for later in rates[phase + 1:])
                break
            print(f"  {rate:>5}/s: gauge p50 {result.get('gauge_p50_s')} s, p99 {result.get('gauge_p99_s')} s "
                  f"({result['gauge_missing']} not reflected)", flush=True)  # fmt: skip
        rss = rss_bytes(worker.pid)
    finally:
        worker.stop()
    remove_run(settings)
    return {"phases": phases, "scrape_interval_s": interval, "rss_mb": round(rss / MB, 1)}


# --------------------------------------------------------------------------- memory


def _state_bytes(settings: Settings) -> int:
    """Local state on disk other than the embedded ClickHouse and the logs."""
    total = dir_bytes(settings.data_dir) - dir_bytes(settings.data_dir / "clickhouse")
    return total - sum(p.stat().st_size for p in settings.data_dir.glob("*.log"))


def memory(base: Settings, seed: int, dossiers: int, timeout: float) -> dict:
    source = load.open_dossiers_file(seed, dossiers)
    settings = run_settings(base, "memory", clock="event")
    create_topics(settings)
    prime(settings)
    worker = ProductWorker(settings).start()
    try:
        _warm_up(worker, settings, seed, timeout)
        time.sleep(2.0)
        rss_before, disk_before = rss_bytes(worker.pid), _state_bytes(settings)
        load_into_broker(settings, source.path)
        _follow_product(worker, WARM_UP + dossiers, timeout, "open dossiers")
        _wait_metric(worker, "tthc_open_cases", WARM_UP + dossiers, timeout)
        rss_after, disk_after = rss_bytes(worker.pid), _state_bytes(settings)
        clickhouse = dir_bytes(settings.data_dir / "clickhouse")
    finally:
        worker.stop()
    remove_run(settings)
    return {
        "open_dossiers": dossiers,
        "rss_idle_mb": round(rss_before / MB, 1),
        "rss_mb": round(rss_after / MB, 1),
        "rss_bytes_per_open_dossier": round((rss_after - rss_before) / dossiers),
        "state_disk_bytes_per_open_dossier": round((disk_after - disk_before) / dossiers),
        "clickhouse_disk_mb": round(clickhouse / MB, 1),
    }


# --------------------------------------------------------------------------- restart


def restart(base: Settings, seed: int, events: int, timeout: float) -> dict:
    history = load.history_file(seed, events)
    settings = run_settings(base, "restart", clock="event")
    load_into_broker(settings, history.path)
    prime(settings)
    worker = ProductWorker(settings).start()
    try:
        first, end = _follow_product(worker, events, timeout, "restart: first pass")
        before = state_gauges(worker.metrics())
        rss = rss_bytes(worker.pid)
    finally:
        worker.stop()
    again = ProductWorker(settings).start()
    scrapes = 0
    try:
        def same() -> bool:
            nonlocal scrapes
            scrapes += 1
            return state_gauges(again.metrics()) == before

        try:
            again.wait_for(same, min(timeout, RESTART_PATIENCE), "the gauges of before the restart", interval=0.2)
            restored = time.monotonic() - again.spawned_at
        except RuntimeError:  # report it, do not hide it behind the other parts
            after = state_gauges(again.metrics())
            differing = sum(1 for key in before.keys() | after.keys() if before.get(key) != after.get(key))
            raise RuntimeError(f"after {RESTART_PATIENCE} s, {differing} of {len(before)} gauge series still differ") from None
    finally:
        again.stop()
    remove_run(settings)
    return {
        "events": events,
        "first_pass_rate": round(steady_rate(first.at, first.processed, end, events)),
        "rss_mb_before_restart": round(rss / MB, 1),
        "gauge_series": len(before),
        "restart_to_correct_gauges_s": round(restored, 2),
        "scrapes_until_correct": scrapes,
    }


# --------------------------------------------------------------------------- contract


def contract(seed: int, events: int) -> dict:
    from pipeline.contract.events import InvalidEvent, parse_event
    from pipeline.contract.events import message_key

    lines = load.history_file(seed, events).path.read_bytes().splitlines()
    keys = [message_key(line) for line in lines]
    now = time.time_ns() // 1000
    started = time.perf_counter()
    for key, line in zip(keys, lines):
        try:
            parse_event(line, key=key, now_us=now)
        except InvalidEvent:
            pass
    return {"events": len(lines), "parse_event_per_s": round(len(lines) / (time.perf_counter() - started))}


# --------------------------------------------------------------------------- scale-out


def _committed(settings: Settings) -> int:
    """Messages of the topic the consumer group has committed (its offsets summed)."""
    from aiokafka.admin import AIOKafkaAdminClient

    async def read() -> int:
        admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
        await admin.start()
        try:
            offsets = await admin.list_consumer_group_offsets(settings.app_id)
        finally:
            await admin.close()
        return sum(meta.offset for tp, meta in offsets.items() if tp.topic == settings.topic and meta.offset > 0)

    return asyncio.run(read())


def _follow_group(settings: Settings, workers: list[ProductWorker], events: int, timeout: float) -> tuple[float, int, float]:
    """Poll the workers of one consumer group until the group has committed all ``events``
    messages (a worker commits only what is stored, see the worker's flush); (t0, n0, end).
    The workers' own counters cannot tell: after a rebalance the new owner handles again
    what the old one had not committed."""
    first: tuple[float, int] | None = None
    deadline = time.monotonic() + timeout
    with tqdm(total=events, desc=f"{len(workers)} worker(s)", unit="ev", leave=False) as bar:
        while True:
            seen = [w.observe() for w in workers]
            processed = sum(o.processed for o in seen)
            if first is None and processed > 0:
                first = (max(o.at for o in seen), processed)
            committed = _committed(settings)
            bar.n = min(committed, events)
            bar.refresh()
            if committed >= events:
                return first[0], first[1], time.monotonic()
            if time.monotonic() > deadline:
                raise RuntimeError(f"timed out after {timeout:.0f}s: {committed}/{events} committed")
            time.sleep(0.2)


def scaleout(base: Settings, seed: int, events: int, timeout: float) -> dict:
    """The throughput load read by one worker, then by two workers of one consumer group
    (4 partitions). Each worker has its own embedded ClickHouse (chDB admits one process
    per data directory; with a ClickHouse server both would write to it)."""
    history = load.history_file(seed, events)
    rows = []
    for count in (1, 2):
        settings = run_settings(base, f"scale{count}", clock="event")
        load_into_broker(settings, history.path)
        prime(settings)
        workers = [
            ProductWorker(replace(settings, web_port=settings.web_port + i, data_dir=settings.data_dir / f"w{i}"))
            for i in range(count)
        ]
        try:
            for worker in workers:
                worker.start()
            first_at, first_count, end = _follow_group(settings, workers, events, timeout)
        finally:
            for worker in workers:
                worker.stop()
        remove_run(settings)
        rows.append({"workers": count, "rate": round(steady_rate(first_at, first_count, end, events)),
                     "seconds": round(end - first_at, 1)})  # fmt: skip
        print(f"  {count} worker(s): {rows[-1]['rate']:>8,} events/s", flush=True)
    return {"events": events, "partitions": base.partitions, "rows": rows,
            "clickhouse": "embedded chDB, one per worker (no ClickHouse server on this machine)"}  # fmt: skip


# --------------------------------------------------------------------------- backfill


def backfill(base: Settings, seed: int, events: int, timeout: float) -> dict:
    """A long history through ``python -m pipeline backfill`` (no broker per message),
    then the worker started on it: time until its view is rebuilt and it is healthy."""
    history = load.history_file(seed, events)
    settings = run_settings(base, "backfill", clock="event")
    create_topics(settings)
    started = time.monotonic()
    subprocess.run([sys.executable, "-m", "pipeline", "backfill", str(history.path)], cwd=PROJECT_ROOT,
                   env=settings_env(settings), check=True, timeout=timeout)  # fmt: skip
    backfill_s = time.monotonic() - started
    worker = ProductWorker(settings).start()
    try:
        worker.wait_healthy(timeout)
        ready_s = time.monotonic() - worker.spawned_at
        health = worker.health()
        page = worker.metrics()
        rss = rss_bytes(worker.pid)
    finally:
        worker.stop()
    remove_run(settings)
    return {
        "events": events,
        "backfill_s": round(backfill_s, 1),
        "backfill_rate": round(events / backfill_s),
        "worker_ready_s": round(ready_s, 1),
        "rebuild_s": round(health.get("last_rebuild_seconds") or 0.0, 1),
        "open_cases": round(metric_sum(page, "tthc_open_cases")),
        "rss_mb": round(rss / MB, 1),
    }
