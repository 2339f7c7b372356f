"""The product's peers, each run as ``python -m benchmarks.peers KIND ...`` in its own process,
consumer group and state directory, reading the same topic:

* ``ceiling`` — a plain aiokafka consumer that reads every message and ``json.loads`` it;
* ``floor`` — Faust's own floor: an agent that only takes batches (``stream.take(5000,
  within=1 s)``) and decodes every message;
* ``naive`` — the textbook Faust agent a newcomer would write: one update per event of a
  tumbling windowed table (1-day windows, kept 35 days, RocksDB store, changelog topic)
  counting events per (unit, event type). Windows follow the stream (the Kafka timestamp,
  Faust's default) and there is no ``group_by`` repartition: the cheapest variant of the
  naive peer, so the ratio against it is conservative.

Each writes one JSON result (:class:`PeerResult` fields) to ``--result`` when it has
handled ``--expect`` messages, then stops itself. Messages that are not JSON (the load has
some malformed lines on purpose) are counted like the others.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from datetime import timedelta
from pathlib import Path

from tqdm import tqdm

KINDS = ("ceiling", "floor", "naive")
TAKE = 5000


@dataclass
class PeerResult:
    kind: str
    total: int
    first_at: float  # time.monotonic() when the first message(s) had been handled
    first_count: int  # how many by then
    end_at: float  # time.monotonic() when all were handled


class _Counter:
    def __init__(self, kind: str, expect: int, result: Path) -> None:
        self.kind, self.expect, self.result = kind, expect, result
        self.count = 0
        self.first: tuple[float, int] | None = None
        self.bar = tqdm(total=expect, desc=kind, unit="msg", leave=False, mininterval=0.5)
        self.done = False

    def add(self, n: int) -> bool:
        """Count ``n`` handled messages; True (once) when all are handled."""
        self.count += n
        if self.first is None:
            self.first = (time.monotonic(), self.count)
        self.bar.update(n)
        if self.count >= self.expect and not self.done:
            self.done = True
            end = time.monotonic()
            self.bar.close()
            first_at, first_count = self.first
            data = asdict(PeerResult(self.kind, self.count, first_at, first_count, end))
            tmp = self.result.with_suffix(".tmp")
            tmp.write_text(json.dumps(data))
            tmp.replace(self.result)
            return True
        return False


def _decode(value: bytes):
    try:
        return json.loads(value)
    except ValueError:  # malformed on purpose (UnicodeDecodeError is a ValueError)
        return None


async def _ceiling(args, counter: _Counter) -> None:
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(
        args.topic, bootstrap_servers=args.bootstrap, group_id=args.app_id, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        while not counter.done:
            batches = await consumer.getmany(timeout_ms=1000, max_records=1000)
            for messages in batches.values():
                for message in messages:
                    _decode(message.value)
                counter.add(len(messages))
    finally:
        await consumer.stop()


def _faust_app(args, kind: str, counter: _Counter):
    import faust

    app = faust.App(
        args.app_id,
        broker=f"kafka://{args.bootstrap}",
        store="rocksdb://",
        datadir=args.datadir,
        topic_partitions=args.partitions,
        topic_replication_factor=1,
        consumer_auto_offset_reset="earliest",
        web_enabled=False,
    )
    topic = app.topic(args.topic, key_serializer="raw", value_serializer="raw", partitions=args.partitions)

    def finished() -> None:
        asyncio.get_event_loop().call_later(0.1, os.kill, os.getpid(), signal.SIGTERM)

    if kind == "floor":

        @app.agent(topic)
        async def floor(stream):
            async for batch in stream.take(TAKE, within=1.0):
                for value in batch:
                    _decode(value)
                if counter.add(len(batch)):
                    finished()

    else:
        counts = (
            app.Table("counts", default=int, partitions=args.partitions)
            .tumbling(timedelta(days=1), expires=timedelta(days=35))
            .relative_to_stream()
        )

        @app.agent(topic)
        async def naive(stream):
            async for value in stream:
                event = _decode(value)
                try:
                    key = f"{event['unit_id']}|{event['event_type']}"
                except (TypeError, KeyError):
                    key = "invalid"
                counts[key] += 1
                if counter.add(1):
                    finished()

    return app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.peers")
    parser.add_argument("kind", choices=KINDS)
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--app-id", required=True)
    parser.add_argument("--datadir", required=True)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--expect", type=int, required=True)
    parser.add_argument("--result", type=Path, required=True)
    args = parser.parse_args(argv)
    counter = _Counter(args.kind, args.expect, args.result)
    log = args.result.with_name("peer.log")  # stderr shows only the progress bar
    if args.kind == "ceiling":
        logging.basicConfig(filename=log, level=logging.WARNING)
        asyncio.run(_ceiling(args, counter))
        return 0
    import faust

    app = _faust_app(args, args.kind, counter)
    faust.Worker(app, loglevel="WARNING", logfile=str(log), quiet=True).execute_from_commandline()
    return 0


def run_peer(kind: str, settings, expect: int, timeout: float) -> tuple[PeerResult, float]:
    """Run one peer to completion on ``settings.topic``; its result and when it was spawned."""
    run_dir = settings.data_dir / kind
    run_dir.mkdir(parents=True, exist_ok=True)
    result = run_dir / "result.json"
    argv = [
        sys.executable, "-m", "benchmarks.peers", kind,
        "--bootstrap", settings.kafka_bootstrap, "--topic", settings.topic,
        "--app-id", f"{settings.app_id}-{kind}", "--datadir", str(run_dir / "state"),
        "--partitions", str(settings.partitions), "--expect", str(expect), "--result", str(result),
    ]  # fmt: skip
    log = open(run_dir / "peer.out", "wb")
    spawned = time.monotonic()
    process = subprocess.Popen(argv, cwd=Path(__file__).resolve().parent.parent, stdout=log, stderr=None)
    try:
        deadline = spawned + timeout
        while not result.exists():
            if process.poll() is not None:
                raise RuntimeError(f"peer {kind} exited ({process.returncode}) early; see {run_dir}/peer.*")
            if time.monotonic() > deadline:
                raise RuntimeError(f"peer {kind} did not finish within {timeout:.0f}s; see {run_dir}/peer.*")
            time.sleep(0.2)
        data = PeerResult(**json.loads(result.read_text()))
    finally:
        if not result.exists() and process.poll() is None:
            process.terminate()
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
    return data, spawned


if __name__ == "__main__":
    sys.exit(main())
