"""What every benchmark part shares: the local services, topics, loading a file into the
broker, the product worker as a subprocess watched only through its external interface
(``/healthz``, ``/metrics``, ``/proc/<pid>/status``), and small measurement helpers.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterable

from tqdm import tqdm

from pipeline.config import PROJECT_ROOT, Settings, env_name, load_settings

BENCH_DIR = PROJECT_ROOT / "var" / "bench"
#: Ports used when the caller exported none (every engineer exports their own).
DEFAULT_ENV = {
    "TTHC_DATA_DIR": str(BENCH_DIR),
    "TTHC_KAFKA_BOOTSTRAP": "127.0.0.1:39092",
    "TTHC_KAFKA_CONTROLLER_PORT": "39094",
    "TTHC_PROMETHEUS_PORT": "39090",
    "TTHC_ALERTMANAGER_PORT": "39093",
    "TTHC_WEB_PORT": "36066",
}
#: Gauges that describe the indicator state (the process-local counters and histograms are not).
STATE_GAUGES = (
    "tthc_indicator_numerator",
    "tthc_indicator_denominator",
    "tthc_indicator_ratio",
    "tthc_indicator_target",
    "tthc_indicator_below_target",
    "tthc_open_cases",
    "tthc_overdue_open_cases",
    "tthc_overdue_without_apology_cases",
    "tthc_clock_seconds",
)


def base_settings() -> Settings:
    for name, value in DEFAULT_ENV.items():
        os.environ.setdefault(name, value)
    return load_settings()


def run_settings(base: Settings, name: str, **changes) -> Settings:
    """A topic, consumer group and data dir of its own on the shared broker."""
    tag = f"{name}-{uuid.uuid4().hex[:6]}"
    return replace(
        base, topic=f"bench.{tag}", app_id=f"bench-{tag}", data_dir=base.data_dir / "runs" / tag, **changes
    )


def settings_env(settings: Settings) -> dict[str, str]:
    env = dict(os.environ)
    for setting in settings.__dataclass_fields__:
        env[env_name(setting)] = str(getattr(settings, setting))
    return env


class Services:
    """``infra up`` on entry; ``infra down`` on exit only if this run started Kafka."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.started = False

    def __enter__(self) -> "Services":
        from pipeline.infra.manager import running_pids, up

        self.started = running_pids(self.settings)["kafka"] is None
        # Kafka only: no part reads Prometheus, and a Prometheus scraping the product's
        # port (but no peer's) would take CPU from the product alone on 2 cores.
        up(self.settings, kafka_only=True)
        return self

    def __exit__(self, *exc) -> None:
        if self.started:
            from pipeline.infra.manager import down

            down(self.settings)


def create_topics(settings: Settings) -> None:
    from pipeline.infra.kafka import ensure_topics

    ensure_topics(settings.kafka_bootstrap, [settings.topic, settings.dlq_topic], settings.partitions)


def load_into_broker(settings: Settings, path: Path, chunk: int = 20_000) -> float:
    """Every line of ``path`` as one message (key = its ``case_id``, as ``replay`` sends it);
    returns messages/s. An aiokafka producer with large batches, so the loads stay short."""
    from aiokafka import AIOKafkaProducer

    from pipeline.contract.events import message_key

    create_topics(settings)
    lines = path.read_bytes().splitlines()

    async def send_all() -> None:
        producer = AIOKafkaProducer(
            bootstrap_servers=settings.kafka_bootstrap, linger_ms=20, max_batch_size=512 * 1024, acks="all"
        )
        await producer.start()
        try:
            with tqdm(total=len(lines), desc=f"load {path.name}", unit="msg", leave=False) as bar:
                for start in range(0, len(lines), chunk):
                    part = lines[start : start + chunk]
                    futures = [await producer.send(settings.topic, value=line, key=message_key(line)) for line in part]
                    await asyncio.gather(*futures)  # raises on the first delivery error
                    bar.update(len(part))
        finally:
            await producer.stop()

    started = time.monotonic()
    asyncio.run(send_all())
    rate = len(lines) / max(time.monotonic() - started, 1e-9)
    print(f"  loaded {len(lines):,} messages from {path.name} into {settings.topic} ({rate:,.0f} msg/s)", flush=True)
    return rate


def remove_run(settings: Settings) -> None:
    shutil.rmtree(settings.data_dir, ignore_errors=True)


# --------------------------------------------------------------------------- /metrics text


_SAMPLE = re.compile(rb"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)", re.M)


def metric_sum(text: bytes, name: str) -> float:
    """Sum of all samples of ``name`` (any labels) in a Prometheus text exposition."""
    pattern = re.compile(rb"^" + re.escape(name.encode()) + rb"(?:\{[^}]*\})?[ \t]+(\S+)", re.M)
    return sum(float(value) for value in pattern.findall(text))


def state_gauges(text: bytes) -> dict[tuple[str, str], float]:
    """{(metric, label text): value} of :data:`STATE_GAUGES` (NaN kept as the string 'nan')."""
    names = {n.encode() for n in STATE_GAUGES}
    samples = {}
    for match in _SAMPLE.finditer(text):
        if match.group(1) in names:
            value = float(match.group(3))
            samples[(match.group(1).decode(), (match.group(2) or b"").decode())] = "nan" if math.isnan(value) else value
    return samples


# --------------------------------------------------------------------------- the product worker


def rss_bytes(pid: int) -> int:
    """VmRSS of a process and of its children (the worker's engine process), from
    /proc/<pid>/status and /proc/<pid>/task/*/children."""
    total = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            total = int(line.split()[1]) * 1024
            break
    else:
        raise RuntimeError(f"no VmRSS for pid {pid}")
    for children in Path(f"/proc/{pid}/task").glob("*/children"):
        for child in children.read_text().split():
            try:
                total += rss_bytes(int(child))
            except (FileNotFoundError, RuntimeError):
                pass  # exited meanwhile
    return total


def dir_bytes(path: Path) -> int:
    """Bytes of the files under ``path``, read while a live engine may be writing it: a file
    or directory that vanishes during the walk (a chDB merge's ``tmp_merge_*`` directory,
    a RocksDB log rolled over) counts as gone, instead of failing the part."""
    total = 0
    for root, _dirs, files in os.walk(path, onerror=lambda _exc: None):
        for name in files:
            try:
                total += os.stat(os.path.join(root, name), follow_symlinks=False).st_size
            except FileNotFoundError:
                continue
    return total


@dataclass
class Observation:
    at: float  # time.monotonic() when the answer arrived
    processed: int
    pending: int


@dataclass
class ProductWorker:
    """``python -m pipeline worker`` in its own process, seen through its HTTP only."""

    settings: Settings
    process: subprocess.Popen | None = None
    spawned_at: float = 0.0
    log_path: Path | None = None
    _log: object = field(default=None, repr=False)

    def start(self) -> "ProductWorker":
        self.settings.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.settings.data_dir / f"worker-{int(time.time() * 1000)}.log"
        self._log = open(self.log_path, "wb")
        self.spawned_at = time.monotonic()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "pipeline", "worker"],
            cwd=PROJECT_ROOT,
            env=settings_env(self.settings),
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def stop(self, timeout: float = 60.0) -> None:
        if self.process is None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._log.close()
        self.process = None

    def _check_alive(self) -> None:
        if self.process is not None and self.process.poll() is not None:
            tail = self.log_path.read_text(errors="replace").splitlines()[-30:] if self.log_path else []
            raise RuntimeError(f"worker exited ({self.process.returncode}); log {self.log_path}:\n" + "\n".join(tail))

    def get(self, path: str, timeout: float = 30.0) -> bytes:
        with urllib.request.urlopen(f"{self.settings.web_url}{path}", timeout=timeout) as response:
            return response.read()

    def health(self) -> dict:
        try:
            return json.loads(self.get("/healthz", timeout=10))
        except (OSError, ValueError):
            return {}

    def metrics(self) -> bytes:
        return self.get("/metrics", timeout=120)

    def observe(self) -> Observation:
        health = self.health()
        return Observation(time.monotonic(), int(health.get("processed", 0) or 0), int(health.get("pending", 0) or 0))

    def wait_healthy(self, timeout: float = 120.0) -> None:
        self.wait_for(lambda: self.health().get("status") == "ok", timeout, "worker healthy")

    def wait_for(self, predicate: Callable[[], bool], timeout: float, what: str, interval: float = 0.2) -> None:
        deadline = time.monotonic() + timeout
        while True:
            self._check_alive()
            try:
                if predicate():
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"timed out after {timeout:.0f}s waiting for {what} (log: {self.log_path})")
            time.sleep(interval)

    def follow(self, total: int, timeout: float, bar=None, interval: float = 0.2) -> list[Observation]:
        """Poll /healthz until ``processed >= total`` and nothing is pending; the observations."""
        seen: list[Observation] = []
        deadline = time.monotonic() + timeout
        while True:
            self._check_alive()
            obs = self.observe()
            seen.append(obs)
            if bar is not None:
                bar.n = min(obs.processed, total)
                bar.refresh()
            if obs.processed >= total and obs.pending == 0:
                return seen
            if time.monotonic() > deadline:
                raise RuntimeError(f"timed out after {timeout:.0f}s: {obs.processed}/{total} processed (log: {self.log_path})")
            time.sleep(interval)


PRIME_SECONDS = 5.0


def prime(settings: Settings) -> None:
    """Start and stop the worker once with the run's consumer group on an empty topic of
    its own, before the measured start.

    The worker of commit 4f56b19 sometimes crashes on a fresh consumer group when its
    first batch is written before the broker's metadata knows the state changelog topics
    it has just created (Faust ``PartitionsMismatch``, seen on this loaded machine). Those
    topics are named after the group only, so one unmeasured start creates them; the
    measured worker then starts with a fresh data dir and the real topic.
    """
    primer = ProductWorker(replace(settings, topic=f"{settings.topic}.prime", data_dir=settings.data_dir / "prime"))
    primer.start()
    try:
        primer.wait_healthy()
        time.sleep(PRIME_SECONDS)
    finally:
        primer.stop()
    shutil.rmtree(primer.settings.data_dir, ignore_errors=True)


# --------------------------------------------------------------------------- numbers


def steady_rate(first_at: float, first_count: int, end_at: float, total: int) -> float:
    """Messages per second after the first observation that saw any message.

    Every consumer is timed the same way: from the first moment it had handled
    ``first_count`` > 0 messages to the moment all ``total`` were done, so group joins
    and start-up are excluded and a first batch already fetched is not credited.
    """
    if first_count >= total:
        raise ValueError(f"all {total} messages came in the first batch; the load is too small to time")
    return (total - first_count) / max(end_at - first_at, 1e-9)


def percentile(values: Iterable[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty collection."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("no values")
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]
