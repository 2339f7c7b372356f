"""The worker under faults: what is wrong right now, dead letters that must not vanish.

:class:`WorkerGuard` keeps the current problems (name -> one line) and shows them:

- ``/healthz``: ``status`` becomes ``degraded`` while there is any problem (``failed``
  and ``starting`` keep precedence), ``problems`` lists them; every text is redacted
  (``pipeline.secrets``);
- metrics: ``tthc_kafka_up`` (1 when the broker answered the last metadata probe, every
  ``PROBE_INTERVAL`` s), ``tthc_dead_letter_errors_total`` (failed deliveries to the
  dead-letter topic, retried) and ``tthc_dead_letters_unwritten`` (rejections whose dead
  letter is not delivered yet); ``tthc_clickhouse_write_errors_total`` stays the
  worker's own.

The problems: ``kafka`` (the broker does not answer), ``ClickHouse write`` and
``changelog write`` (the worker's flush retrying them), ``dead-letter topic``.

:class:`DeadLetters` sends each rejected message to ``<topic>.dlq`` (as
``contract.rejected.dead_letter`` shapes it: an oversized value cut to an excerpt, so a
letter always fits the topic's limit) and, at the flush,
waits until every dead letter of the batch is *delivered* before the batch's messages
are acked: a delivery that fails (the topic refuses writes, the broker is gone) is sent
again with back-off until it succeeds, and meanwhile nothing of the batch (nor after
it) is acked, so no rejection is ever dropped silently. A crash in between leaves the
messages unacked: they are read again and rejected again (the dead letter may then
appear twice; ``invalid_events`` is a replacing table and keeps one row).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from aiokafka import AIOKafkaClient
from prometheus_client import CollectorRegistry, Counter, Gauge

from pipeline.errors import one_line as _one_line
from pipeline.contract.rejected import dead_letter
from pipeline.secrets import redact
from pipeline.stream.retry import RETRY

__all__ = ["DeadLetter", "DeadLetters", "WorkerGuard", "PROBE_INTERVAL"]

log = logging.getLogger("pipeline.worker")
PROBE_INTERVAL = 2.0  # seconds between broker probes
PROBE_TIMEOUT = 5.0
SEND_TIMEOUT = 10.0  # one dead-letter send or delivery wait before it counts as failed
KAFKA, DEAD_LETTERS = "kafka", "dead-letter topic"


class Problems:
    """What is failing right now (name -> one redacted line, and since when), for /healthz."""

    def __init__(self) -> None:
        self.problems: dict[str, tuple[str, float]] = {}  # name -> (text, since monotonic)

    def failing(self, name: str, exc: BaseException | str) -> None:
        text = exc if isinstance(exc, str) else _one_line(exc)
        since = self.problems.get(name, (None, time.monotonic()))[1]
        self.problems[name] = (redact(text), since)

    def recovered(self, name: str) -> None:
        if self.problems.pop(name, None) is not None:
            log.warning("%s: recovered", name)

    def entries(self) -> list[dict[str, Any]]:
        now = time.monotonic()
        return [
            {"problem": name, "detail": text, "for_seconds": round(now - since, 1)}
            for name, (text, since) in sorted(self.problems.items())
        ]


class WorkerGuard(Problems):
    def __init__(self, client_options: dict[str, Any], dlq_topic: str, registry: CollectorRegistry,
                 producer: Callable[[], Any]) -> None:
        """``client_options``: ``kafka_clients.aiokafka_options`` (bootstrap, SASL, TLS)."""
        super().__init__()
        self.client_options = client_options
        self.bootstrap = client_options["bootstrap_servers"]
        self.kafka_up = Gauge("tthc_kafka_up", "1 when the Kafka broker answered the worker's last metadata probe",
                              registry=registry)
        self.kafka_up.set(1)
        self.dead_letter_errors = Counter(
            "tthc_dead_letter_errors", "Failed deliveries to the dead-letter topic (retried; nothing acked meanwhile)",
            registry=registry,
        )
        self.dead_letters_unwritten = Gauge(
            "tthc_dead_letters_unwritten", "Rejected messages whose dead letter is not delivered yet", registry=registry
        )
        self.dead_letters = DeadLetters(dlq_topic, producer, self)

    # -- problems ------------------------------------------------------------------
    def health(self, payload: dict[str, Any], more: list[dict[str, Any]] = ()) -> dict[str, Any]:
        """``payload`` (the worker's /healthz) with the problems added (this process's and
        ``more``: the engine's), all redacted."""
        problems = sorted([*self.entries(), *more], key=lambda p: p["problem"])
        status = payload.get("status")
        if problems and status == "ok":
            status = "degraded"
        answer = dict(payload, status=status, problems=problems)
        return {k: (redact(v) if isinstance(v, str) else v) for k, v in answer.items()}

    # -- the broker ----------------------------------------------------------------
    async def probe_broker(self) -> None:
        """One metadata request to the bootstrap servers (a Faust timer calls this)."""
        client = AIOKafkaClient(**self.client_options, request_timeout_ms=int(PROBE_TIMEOUT * 1000))
        try:
            await asyncio.wait_for(client.bootstrap(), PROBE_TIMEOUT)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # noqa: BLE001 - any failure means "unreachable"
            if KAFKA not in self.problems:
                log.error("Kafka broker %s unreachable: %s", self.bootstrap, _one_line(exc))
            self.failing(KAFKA, f"broker unreachable at {self.bootstrap}: {_one_line(exc)}")
            self.kafka_up.set(0)
        else:
            self.kafka_up.set(1)
            self.recovered(KAFKA)
        finally:
            try:
                await client.close()
            except Exception:  # pragma: no cover - closing a half-open client
                pass


@dataclass(slots=True)
class DeadLetter:
    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes]]
    future: Any = None  # the producer's delivery future
    error: BaseException | None = None
    sending: bool = False


@dataclass
class DeadLetters:
    """The dead letters of the messages rejected since the last flush took them.

    ``send_all`` registers a batch's rejections first (each counts as unwritten from
    then on) and then sends them; ``settle`` sends any letter not sent yet and waits
    for every delivery before the flush that takes them lets their messages be acked."""

    topic: str
    producer: Callable[[], Any]  # the Faust app's producer (created when the app starts)
    guard: WorkerGuard
    batch: list[DeadLetter] = field(default_factory=list)

    def _letter(self, message: Any, reason: str, detail: str) -> DeadLetter:
        # bounded (an excerpt of an oversized value): it always fits the topic (issue 20)
        record = dead_letter(message.key, message.value, reason=reason, detail=detail, topic=message.topic,
                             partition=message.partition, offset=message.offset)
        letter = DeadLetter(record.key, record.value, record.headers)
        self.batch.append(letter)
        self.guard.dead_letters_unwritten.inc()
        return letter

    async def send_all(self, rejected: list) -> None:
        """``rejected``: (Faust message, reason, detail) triples of one batch; delivery
        is awaited at the flush (``settle``)."""
        for letter in [self._letter(message, reason, detail) for message, reason, detail in rejected]:
            if letter.future is None and letter.error is None and not letter.sending:
                await self._produce(letter)

    async def _produce(self, letter: DeadLetter) -> None:
        letter.sending = True
        try:
            letter.future = await asyncio.wait_for(
                self.producer().send(self.topic, letter.key, letter.value, None, None, letter.headers), SEND_TIMEOUT
            )
            letter.error = None
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            letter.future, letter.error = None, exc
        finally:
            letter.sending = False

    def take(self) -> list[DeadLetter]:
        """The dead letters of the acks a flush is taking (it settles them before acking)."""
        batch, self.batch = self.batch, []
        return batch

    async def settle(self, letters: list[DeadLetter]) -> None:
        """Return once every letter is delivered; send unsent ones, retry failed ones with back-off."""
        for letter in letters:
            while letter.sending:  # the loop is sending it right now
                await asyncio.sleep(0.01)
            if letter.future is None and letter.error is None:
                await self._produce(letter)
        delays = RETRY.delays()
        todo = letters
        while True:
            failed = []
            for letter in todo:
                if letter.future is not None:
                    try:
                        await asyncio.wait_for(asyncio.shield(letter.future), SEND_TIMEOUT)
                        self.guard.dead_letters_unwritten.dec()
                        continue
                    except asyncio.CancelledError:
                        raise
                    except Exception as exc:
                        letter.future, letter.error = None, exc
                failed.append(letter)
            if not failed:
                if todo is not letters:
                    self.guard.recovered(DEAD_LETTERS)
                return
            self.guard.dead_letter_errors.inc(len(failed))
            error = failed[0].error or RuntimeError("not delivered")
            self.guard.failing(
                DEAD_LETTERS,
                f"{len(failed)} rejected message(s) not written to {self.topic} "
                f"(nothing acked past them; retrying): {_one_line(error)}",
            )
            delay = next(delays)
            log.error("dead-letter topic %s: %d not delivered (%s); retrying in %.1fs",
                      self.topic, len(failed), _one_line(error), delay)
            await asyncio.sleep(delay)
            for letter in failed:
                await self._produce(letter)
            todo = failed
