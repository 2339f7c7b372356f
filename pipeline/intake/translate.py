"""``python -m pipeline translate``: the DVCQG translator as its own process, until the
worker runs it as an agent (``docs/intake.md``, "Not done yet").

Consumes ``TTHC_DVCQG_TOPIC`` in the consumer group ``<TTHC_APP_ID>-dvcqg``, translates
each batch (``pipeline.sources.dvcqg.batch``), produces the contract events to
``TTHC_TOPIC`` (key ``case_id``) and the dead letters to ``<TTHC_DVCQG_TOPIC>.dlq``, waits
for every acknowledgement (``acks=all``), then commits the batch's offsets.

Exactly once in effect, without a state store: the dossiers' states are rebuilt at start
by translating the raw topic from its beginning **up to the group's committed offsets**
(events discarded); translation then resumes at those offsets. A crash after producing
and before committing re-produces that batch with the same derived event ids, which the
worker drops as duplicates. Start-up time grows with the raw topic (its retention is the
operator's; the worker's Checkpoint will keep the states instead).

``--until-idle S``: stop once no message arrived for S seconds (scripts, tests).
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import sys
import time

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError

from pipeline.config import Settings, UserError
from pipeline.intake.server import KafkaSink
from pipeline.kafka_clients import aiokafka_options
from pipeline.sources.dvcqg.batch import translate_batch
from pipeline.sources.dvcqg.translator import Registries, Translator

__all__ = ["run_translate"]

log = logging.getLogger("pipeline.translate")
_BATCH = 2000


async def _rebuild(settings: Settings, translator: Translator, committed: dict[TopicPartition, int]) -> dict:
    """The dossiers' states from the raw topic's beginning up to ``committed``."""
    states: dict[str, dict] = {}
    todo = {tp: end for tp, end in committed.items() if end > 0}
    if not todo:
        return states
    reader = AIOKafkaConsumer(**aiokafka_options(settings), enable_auto_commit=False, group_id=None)
    await reader.start()
    try:
        reader.assign(list(todo))
        await reader.seek_to_beginning(*todo)
        while todo:
            batch = await reader.getmany(timeout_ms=1000, max_records=_BATCH)
            for tp, messages in batch.items():
                end = todo.get(tp)
                if end is None:
                    continue
                kept = [(m.key, m.value) for m in messages if m.offset < end]
                translate_batch(translator, kept, states)
                if await reader.position(tp) >= end:
                    del todo[tp]
                    reader.pause(tp)
    finally:
        await reader.stop()
    return states


async def _run(settings: Settings, registries: Registries, until_idle: float | None) -> dict[str, int]:
    translator = Translator(registries)
    try:  # the raw topic may not exist yet (no call received): create it, so the group gets partitions
        KafkaSink(settings).ensure_topics()
    except Exception as exc:  # kafka-python raises many types; one line for all
        raise UserError(f"cannot reach Kafka at {settings.kafka_bootstrap} ({type(exc).__name__})") from None
    options = aiokafka_options(settings)
    consumer = AIOKafkaConsumer(settings.dvcqg_topic, **options, group_id=f"{settings.app_id}-dvcqg",
                                enable_auto_commit=False, auto_offset_reset="earliest")
    producer = AIOKafkaProducer(**options, acks="all", enable_idempotence=True)
    totals = {"records": 0, "events": 0, "dead": 0, "regressions": 0}
    try:
        await consumer.start()
        await producer.start()
    except (KafkaError, OSError) as exc:
        raise UserError(f"cannot reach Kafka at {settings.kafka_bootstrap} ({type(exc).__name__})") from None
    try:
        while not consumer.assignment():
            await consumer.getmany(timeout_ms=500, max_records=1)  # joins the group (nothing consumed yet)
            await asyncio.sleep(0)
        assignment = list(consumer.assignment())
        committed = {tp: (await consumer.committed(tp)) or 0 for tp in assignment}
        states = await _rebuild(settings, translator, committed)
        for tp in assignment:
            consumer.seek(tp, committed[tp])
        log.info("translate: %d dossiers rebuilt; consuming %s", len(states), settings.dvcqg_topic)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):  # stop between batches: the last one is committed
            loop.add_signal_handler(sig, stop.set)
        idle_since = time.monotonic()
        while not stop.is_set():
            batch = await consumer.getmany(timeout_ms=500, max_records=_BATCH)
            if not batch:
                if until_idle is not None and time.monotonic() - idle_since >= until_idle:
                    break
                continue
            idle_since = time.monotonic()
            messages = [(m.key, m.value) for tp in sorted(batch, key=lambda t: t.partition) for m in batch[tp]]
            out = translate_batch(translator, messages, states)
            futures = [await producer.send(settings.topic, value=_bytes(e), key=e["case_id"].encode("utf-8"))
                       for e in out.events]
            futures += [await producer.send(settings.dvcqg_dlq_topic, value=d.value, key=d.key,
                                            headers=[("reason", d.reason.encode("utf-8"))]) for d in out.dead]
            await asyncio.gather(*futures)
            await consumer.commit({tp: msgs[-1].offset + 1 for tp, msgs in batch.items()})
            totals["records"] += len(messages)
            totals["events"] += len(out.events)
            totals["dead"] += len(out.dead)
            totals["regressions"] += out.counted.get("status_regression", 0)
    finally:
        await consumer.stop()
        await producer.stop()
    return totals


def _bytes(event: dict) -> bytes:
    return json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def run_translate(settings: Settings, registries: Registries, until_idle: float | None = None) -> int:
    """``registries``: the deploy files' (``pipeline.feed.dvcqg.registries_for``, built by the CLI)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
    totals = asyncio.run(_run(settings, registries, until_idle))
    print(f"translate: {totals['records']} records -> {totals['events']} events, {totals['dead']} dead letters, "
          f"{totals['regressions']} status regressions", file=sys.stderr)
    return 0
