"""``python -m pipeline replay FILE``: one Kafka message per line of a JSONL file.

Each non-empty line is sent as it is (its exact bytes, without the newline) to the
events topic, keyed by its ``case_id`` when the line is a JSON object with a string
``case_id`` (so all events of one dossier land in one partition), unkeyed otherwise
— malformed lines are sent too: rejecting them is the worker's job. ``--rate`` paces
the messages evenly (message *i* leaves at ``start + i / rate``). Progress is a tqdm
bar on stderr (:mod:`pipeline.progress`). Returns once the broker acknowledged every message
(``acks=all``).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, Iterator

from pipeline.config import Settings, UserError
from pipeline.contract.events import message_key
from pipeline.errors import one_line
from pipeline.infra.processes import port_open
from pipeline.kafka_clients import bootstrap_hosts, count_brokers, kafka_python_options, quiet_kafka_logs
from pipeline.progress import progress_bar, summary

CONNECT_TIMEOUT_MS = 10_000  # bootstrap: an unreachable broker fails within ~10 s
MAX_BLOCK_MS = 15_000  # metadata / buffer waits inside send()


def open_producer(settings: Settings):
    """A kafka-python producer for ``settings`` (``acks=all``, security from
    ``pipeline.kafka_clients``), or :class:`UserError` if Kafka is unreachable or
    refuses the credentials."""
    options = kafka_python_options(settings)
    hint = f"cannot reach Kafka at {options['bootstrap_servers']}: run `python -m pipeline infra up`"
    # a cheap first check: a refused connection fails at once instead of after the bootstrap timeout
    if not any(port_open(host, port, timeout=2.0) for host, port in bootstrap_hosts(options["bootstrap_servers"])):
        raise UserError(f"{hint} (connection refused)")
    count_brokers(settings, timeout_ms=CONNECT_TIMEOUT_MS)  # a refused login: one line, before any send
    from kafka import KafkaProducer  # lazy: kafka-python is ~0.1 s to import; `simulate --history` never sends
    from kafka.errors import KafkaError

    try:
        with quiet_kafka_logs():
            return KafkaProducer(
                **options,
                acks="all",
                linger_ms=5,
                bootstrap_timeout_ms=CONNECT_TIMEOUT_MS,
                max_block_ms=MAX_BLOCK_MS,
            )
    except (KafkaError, OSError) as exc:
        raise UserError(f"{hint} ({one_line(exc)})") from None


def _lines(path: Path) -> Iterator[bytes]:
    with path.open("rb") as handle:
        for raw in handle:
            line = raw[:-1] if raw.endswith(b"\n") else raw
            if line:
                yield line


class _Acks:
    """Counts acknowledgements and keeps the first delivery error."""

    def __init__(self) -> None:
        self.acked = 0
        self.error: BaseException | None = None

    def ok(self, _metadata) -> None:
        self.acked += 1

    def failed(self, exc: BaseException) -> None:
        if self.error is None:
            self.error = exc


def send_all(producer, topic: str, messages, acks: _Acks):
    """Send (key, value) pairs; raise UserError on a synchronous send failure."""
    from kafka.errors import KafkaError  # lazy: see open_producer

    for key, value in messages:
        try:
            future = producer.send(topic, value=value, key=key)
        except (KafkaError, ValueError, TypeError) as exc:
            raise UserError(f"cannot send to topic {topic!r}: {one_line(exc)}") from None
        future.add_callback(acks.ok)
        future.add_errback(acks.failed)
        if acks.error is not None:
            raise UserError(f"Kafka did not accept a message for topic {topic!r}: {one_line(acks.error)}")
        yield


def flush_and_check(producer, topic: str, acks: _Acks) -> None:
    from kafka.errors import KafkaError  # lazy: see open_producer

    try:
        producer.flush()
    except KafkaError as exc:
        raise UserError(f"cannot deliver to topic {topic!r}: {one_line(exc)}") from None
    if acks.error is not None:
        raise UserError(f"Kafka did not accept a message for topic {topic!r}: {one_line(acks.error)}")


def replay_file(
    settings: Settings,
    path: str | Path,
    rate: float | None = None,
    progress: bool = True,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Send every non-empty line of ``path`` to ``settings.topic``; return the count.

    ``clock`` and ``sleep`` pace ``rate`` (tests inject their own)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"no such file: {path}" if not path.exists() else f"not a file: {path}")
    if rate is not None and rate <= 0:
        raise UserError(f"--rate must be positive, got {rate}")
    try:
        total = sum(1 for _ in _lines(path))
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror or exc}") from None

    producer = open_producer(settings)
    acks = _Acks()
    sent = 0
    started = clock()
    try:

        def paced():
            for line in _lines(path):
                if rate is not None:
                    delay = started + sent / rate - clock()
                    if delay > 0:
                        sleep(delay)
                yield message_key(line), line

        with progress_bar("replay", total=total, unit="msg", enabled=progress) as bar:
            for _ in send_all(producer, settings.topic, paced(), acks):
                sent += 1
                bar.update(1)
            flush_and_check(producer, settings.topic, acks)
    finally:
        producer.close(timeout=5)
    elapsed = clock() - started
    summary(
        f"replay: sent {sent} messages from {path.name} to {settings.topic} in {elapsed:.1f} s "
        f"({sent / elapsed if elapsed > 0 else 0:,.0f} msg/s), all acknowledged",
        enabled=progress,
    )
    return sent
