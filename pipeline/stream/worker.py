"""The Faust worker: the consumer group, the offsets, the dead letters and HTTP.

The worker runs as two processes. This one is Faust's: its agent takes the input
topic's messages in batches (``noack_take``) and hands each batch, as it came, to the
engine process (``engine.py``: validation, case state, live view, ClickHouse facts,
the case changelog) over a socket pair (``channel.py``). Faust's own per-message path
costs about as much as the processing, so the two run on two cores (BENCHMARKS.md).

Nothing is acked before the engine says it is written: the engine answers each batch
(``Done``: what it skipped, what it rejected) and each flush (``Flushed``: every batch
up to there is in ClickHouse and in the case changelog). On ``Done`` the rejected
messages' dead letters are sent; on ``Flushed`` they are awaited and only then are the
messages acked, in order, so committed offsets never run ahead of the facts, the truth
or the dead letters. On revocation the engine flushes what it holds and the acks are
done before Faust goes on; on assignment it rebuilds the live view of the new
partitions before it processes a message. The engine dies with this process, and this
process stops when the engine fails: a supervisor restarts both, and whatever was not
acked is read again and recognised as a redelivery.

A second agent of this process translates the DVCQG raw topic into contract events
(``translation.py``); the worker only registers it and passes it the assignment.
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import logging
import os
import socket
import subprocess
import sys
import time
from functools import partial
from typing import Any, Callable

import faust
import mode.loop
from prometheus_client import CollectorRegistry, generate_latest

from pipeline import kafka_clients
from pipeline.config import Settings, UserError
from pipeline.core.targets import TargetsError
from pipeline.targets_file import load_targets
from pipeline.store.readonly import check_read_only
from pipeline.stream import channel
from pipeline.stream.metrics import CONTENT_TYPE
from pipeline.stream.registry_metrics import install_registry_metrics
from pipeline import webguard
from pipeline.stream import guard as faults
from pipeline.stream.membership import Membership, consumer_coordinator, request_rejoin
from pipeline.stream.retry import SOON
from pipeline.stream.translation import TranslationAgent
from pipeline.store.client import describe_dsn
from pipeline.errors import one_line
from pipeline.secrets import install_log_redaction, redact
from pipeline.sources.dvcqg.translator import Registries

log = logging.getLogger("pipeline.worker")
GC_THRESHOLD = 10_000  # allocations between young-generation collections (CPython: 700)
TAKE_MAX = 2_000  # messages handed to the engine at once
TAKE_WITHIN_S = 0.05  # or what arrived within this time (bounds the event -> gauge delay)
BATCHES_AHEAD = 3  # batches handed over and not yet processed (the engine's queue stays short)
START_ATTEMPT_ENV = "TTHC_WORKER_START_ATTEMPT"  # consecutive failed starts of this worker (start_again)
ASK_TIMEOUT_S = 10.0  # an engine that does not answer a scrape in this time is reported as such


def _now_us() -> int:
    return time.time_ns() // 1000


class QuietMonitor(faust.Monitor):
    """Faust's monitor (a documented base for custom sensors) without its per-message
    bookkeeping: four sensor calls per message that only feed Faust's own statistics
    pages, which this worker does not serve (its figures are in /metrics)."""

    def on_message_in(self, tp, offset, message) -> None:
        return None

    def on_stream_event_in(self, tp, offset, stream, event):
        return None

    def on_stream_event_out(self, tp, offset, stream, event, state=None) -> None:
        return None

    def on_message_out(self, tp, offset, message) -> None:
        return None


class Worker:
    def __init__(self, settings: Settings, registries: Registries) -> None:
        self.settings = settings
        self.registry = CollectorRegistry()  # this process's families; the engine renders the others
        self.web = webguard.web_access(settings)  # TTHC_WEB_HOST, the /sql token and limits
        self.guard = faults.WorkerGuard(kafka_clients.aiokafka_options(settings), settings.dlq_topic, self.registry,
                                        lambda: self.app.producer)
        self.failure: str | None = None
        self.membership = Membership(settings.session_timeout)  # exports only while confirmed
        self.held: set[int] = set()  # partitions whose acks wait for the next assignment
        self.joined = False  # the group assigned partitions at least once: the start is over
        self.engine_clock_us = 0  # the engine's clock, as of its last answer
        self.link: channel.Link | None = None
        self.linked = asyncio.Event()
        self.seq = 0  # batches handed to the engine
        self.ahead = asyncio.Semaphore(BATCHES_AHEAD)
        # Assignments, counted: a message taken from the stream in one is acked only in it
        # (or by the flush its revocation waits for). Faust seeks every partition back
        # to its committed offset at each assignment, so a message of an earlier one is
        # read again; acking the earlier copy later would put an ack ahead of unacked
        # ones, and Faust commits across a one-message gap at the head (its
        # ``_new_offset`` allows it, for a transaction marker), which lost a message in
        # the two-worker soak.
        self.generation = 0
        self.revoking: int | None = None  # the generation a revocation is closing
        self.inflight: dict[int, tuple[int, list]] = {}  # seq -> (generation, Faust events) until processed
        self.unacked: dict[int, list] = {}  # seq -> events to ack once a flush covers seq
        self.answers: dict[int, asyncio.Future] = {}
        self.requests = 0
        self.ordered: asyncio.Queue = asyncio.Queue()  # Done, Flushed, Revoked: in the engine's order
        self._stream = None
        self._engine_socket, self.engine = self._spawn_engine()
        self.translation = TranslationAgent(  # the DVCQG raw topic's agent (translation.py)
            settings, registries, self.guard, self.registry,
            store_ratings=lambda ratings: self._ask(partial(channel.StoreRatings, summaries=ratings), timeout=None),
            rejoin=lambda: request_rejoin(self.app), fail=self._fail)
        self.app = self._build_app()

    def _spawn_engine(self) -> tuple[socket.socket, subprocess.Popen]:
        ours, theirs = socket.socketpair()
        process = subprocess.Popen(
            [sys.executable, "-m", "pipeline.stream.engine", "--fd", str(theirs.fileno()), "--parent", str(os.getpid())],
            pass_fds=(theirs.fileno(),),
        )
        theirs.close()
        return ours, process

    def stop_engine(self) -> None:
        self._engine_socket.close()
        try:
            self.engine.wait(10)
        except subprocess.TimeoutExpired:
            self.engine.kill()
            self.engine.wait()

    # -- Faust wiring --------------------------------------------------------------
    def _build_app(self) -> faust.App:
        s = self.settings
        app = faust.App(
            s.app_id,
            **kafka_clients.faust_options(s),  # brokers, credentials, replication, acks=all
            store="memory://",
            datadir=str((s.data_dir / "faust" / s.app_id).resolve()),
            topic_partitions=s.partitions,
            web_bind=self.web.host,  # TTHC_WEB_HOST (loopback unless a token guards /sql)
            web_host=self.web.host,
            web_port=s.web_port,
            consumer_auto_offset_reset="earliest",
            stream_buffer_maxsize=max(4096, s.batch_size * 2),
            broker_commit_interval=1.0,
            # A worker that died without leaving the group holds its partitions until
            # this expires; 15 s (Faust's default is 60) lets a restart resume sooner.
            broker_session_timeout=s.session_timeout,
            # Messages are acked only after the engine wrote them, so Faust must not
            # wait for them on stop or rebalance; whatever was not acked is read again
            # and recognised as a redelivery.
            stream_wait_empty=False,
            producer_linger_ms=10,
            monitor=QuietMonitor(),
        )
        # internal=True: Faust creates the topics (with these partitions) when missing,
        # so a worker started before any producer still subscribes to its input.
        raw = dict(key_serializer="raw", value_serializer="raw", partitions=s.partitions, internal=True,
                   config=kafka_clients.topic_configs(s))
        self.topic = app.topic(s.topic, **raw)
        self.dlq = app.topic(s.dlq_topic, **dict(raw, config=kafka_clients.dlq_topic_configs(s)))
        # tthc_unit_info and tthc_consumer_lag (pipeline/stream/registry_metrics.py)
        install_registry_metrics(self.registry, app, topic=s.topic, units_file=s.units_file, clock_us=self.clock_us)
        app.agent(self.topic, name="process-case-events")(self._agent)
        self.translation.install(app, raw)
        app.on_partitions_revoked.connect(self._on_partitions_revoked)
        app.on_partitions_assigned.connect(self._on_partitions_assigned)
        app.timer(faults.PROBE_INTERVAL)(self.guard.probe_broker)
        app.task(self._start_link)
        # Faust stores page handlers on a View class, so they must be plain functions.
        app.page("/metrics")(lambda web, request: self._metrics_page(web, request))
        app.page("/healthz")(lambda web, request: self._health_page(web, request))
        app.page("/sql")(self._sql_view())
        return app

    def clock_us(self) -> int:
        if self.settings.clock == "event":
            return self.engine_clock_us
        return _now_us()

    # -- the engine ----------------------------------------------------------------
    async def _start_link(self) -> None:
        try:
            # now, with the replication policy (not the broker's defaults on first use); a
            # broker that has just restarted may not answer yet: tried again for about 15 s
            await SOON.run("dead-letter topic", self.dlq.maybe_declare, self.guard)
            limit = await kafka_clients.topic_max_message_bytes(self.settings, self.settings.dlq_topic)
            kafka_clients.check_dlq_limit(self.settings.dlq_topic, limit)  # every dead letter must fit (issue 20)
        except Exception as exc:
            await self._fail(f"dead-letter topic {self.settings.dlq_topic}: {type(exc).__name__}: {exc}")
            return
        try:
            self.link = await channel.Link.open(self._engine_socket)
            await self.link.send(self.settings)
        except Exception as exc:
            await self._fail(f"cannot start the engine: {type(exc).__name__}: {exc}")
            return
        asyncio.ensure_future(self._guarded(self._read_engine()))
        asyncio.ensure_future(self._guarded(self._settle()))
        self.linked.set()

    async def _guarded(self, coro) -> None:
        try:
            await coro
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("the worker's link to its engine failed")
            await self._fail(f"{type(exc).__name__}: {exc}")

    async def _fail(self, reason: str) -> None:
        # A worker that silently stops consuming is worse than one that stops: crash
        # the app so the process exits non-zero and its supervisor restarts it.
        if self.failure is None:
            self.failure = reason
            log.error("stopping the worker: %s", reason)
        await self.app.crash(RuntimeError(reason))

    async def _send(self, message: Any) -> None:
        await self.linked.wait()
        await self.link.send(message)

    async def _request(self, message, timeout: float | None) -> channel.Answer:
        """Send ``message(request id)`` and wait for the engine's answer to it."""
        self.requests += 1
        request = self.requests
        future = self.answers[request] = asyncio.get_running_loop().create_future()
        try:
            await asyncio.wait_for(self._send(message(request)), timeout)
            return await asyncio.wait_for(asyncio.shield(future), timeout)
        finally:
            self.answers.pop(request, None)

    def _resolve(self, answer: channel.Answer) -> None:
        future = self.answers.get(answer.request)
        if future is not None and not future.done():
            future.set_result(answer)

    async def _ask(self, question: Callable[[int], channel.Question], timeout: float | None = ASK_TIMEOUT_S) -> Any:
        """``question``: the question's type with its arguments but the request id
        (``functools.partial(channel.AskSql, query=...)``)."""
        answer = await self._request(question, timeout)
        if answer.error is not None:
            raise (UserError if answer.user_error else RuntimeError)(answer.error)
        return answer.value

    async def _read_engine(self) -> None:
        while True:
            try:
                message = await self.link.receive()
            except EOFError:
                code = self.engine.poll()
                await self._fail(f"the engine process exited (code {code})")
                return
            if isinstance(message, channel.Answer):
                self._resolve(message)
            elif isinstance(message, channel.Failed):
                await self._fail(f"engine: {message.reason}")
                return
            else:
                if isinstance(message, channel.Done):
                    self.ahead.release()
                self.ordered.put_nowait(message)

    async def _settle(self) -> None:
        """The engine's progress, in its order: dead letters of each processed batch,
        then acks of each flushed one (after their dead letters are delivered)."""
        dead_letters = self.guard.dead_letters
        while True:
            message = await self.ordered.get()
            if isinstance(message, channel.Done):
                generation, events = self.inflight.pop(message.seq)
                self.engine_clock_us = message.clock_us
                if generation not in (self.generation, self.revoking):
                    continue  # taken in an assignment that is over: read again from the committed offset
                skipped = set(message.skipped)
                self.unacked[message.seq] = [e for i, e in enumerate(events) if i not in skipped] if skipped else events
                if skipped:
                    self._hold_acks({events[i].message.partition for i in skipped})
                if message.invalid:
                    await dead_letters.send_all(
                        [(events[i].message, reason, detail) for i, reason, detail in message.invalid]
                    )
            elif isinstance(message, channel.Flushed):
                await dead_letters.settle(dead_letters.take())
                if message.fenced:
                    log.error("partitions %s fenced by another worker; rejoining the group", sorted(message.fenced))
                    self._hold_acks(message.fenced)
                ack, held = self._stream.ack, self.held
                for seq in sorted(s for s in self.unacked if s <= message.upto):
                    for event in self.unacked.pop(seq):
                        if held and event.message.partition in held:
                            continue  # read again after the rejoin, by whoever owns it then
                        await ack(event)
            elif isinstance(message, channel.Revoked):
                self._resolve(channel.Answer(message.request))

    def _hold_acks(self, partitions) -> None:
        """A message of ``partitions`` was not written (skipped by the engine, or fenced):
        no later message of theirs may be acked in this assignment, since Faust commits
        the offset after the acked ones even across a gap. If this worker still holds one
        of them, it rejoins the group: the next assignment reads it again from the
        committed offset."""
        new = set(partitions) - self.held
        self.held |= new
        held_here = {tp.partition for tp in self.app.consumer.assignment() if tp.topic == self.settings.topic}
        if new & held_here:
            log.error("messages of partitions %s not written; acks held, rejoining the group", sorted(new & held_here))
            request_rejoin(self.app)

    # -- assignment ----------------------------------------------------------------
    async def _on_partitions_revoked(self, app, revoked, **kwargs) -> None:
        self.membership.joining()  # the consumer joins the group again after this returns
        # The engine writes what it holds while this worker still owns the partitions,
        # and the acks are done before Faust goes on (the next owner starts from them).
        self.revoking, self.generation = self.generation, self.generation + 1
        if self.linked.is_set() and not self.failure:
            await self._request(channel.Revoke, None)
        await self.translation.revoke()
        self.revoking = None
        self.unacked.clear()  # (empty: the revocation's flush covered every processed batch)
        self.held = set()  # the next assignment reads from the committed offsets

    async def _on_partitions_assigned(self, app, assigned, **kwargs) -> None:
        self.joined = True
        self.membership.watch(consumer_coordinator(app))
        self.membership.joined()
        partitions = frozenset(tp.partition for tp in assigned if tp.topic == self.settings.topic)
        self.translation.assign(tp.partition for tp in assigned if tp.topic == self.settings.dvcqg_topic)
        await self._send(channel.Assign(partitions))

    # -- the agent -----------------------------------------------------------------
    async def _agent(self, stream) -> None:
        try:
            await self._consume(stream)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("consuming failed; stopping the worker")
            await self._fail(f"{type(exc).__name__}: {exc}")
            raise

    async def _consume(self, stream) -> None:
        # Messages come in batches (``noack_take``: at most TAKE_MAX, or what arrived
        # within TAKE_WITHIN s) and go to the engine as they came; each is acked only
        # when a flush of the engine covers it (``_settle``).
        self._stream = stream
        take_max = max(1, min(self.settings.batch_size, TAKE_MAX))
        async for events in stream.noack_take(take_max, within=TAKE_WITHIN_S):
            generation = self.generation  # when taken, not when sent
            await self.ahead.acquire()
            self.seq += 1
            self.inflight[self.seq] = (generation, events)
            messages = [event.message for event in events]
            await self._send(channel.Batch(
                self.seq,
                [m.key for m in messages],
                [m.value for m in messages],
                [m.partition for m in messages],
                [m.offset for m in messages],
                [m.timestamp for m in messages],
            ))

    # -- HTTP ----------------------------------------------------------------------
    async def _metrics_page(self, web, request):
        # the indicator series only while the group membership is confirmed (checked
        # again once the engine answered): never summed with a new owner's
        text, self.engine_clock_us = await self._ask(partial(channel.AskMetrics, live=self.membership.current()))
        if not self.membership.current():
            text, _ = await self._ask(partial(channel.AskMetrics, live=False))
        return web.bytes(generate_latest(self.registry) + text, content_type=CONTENT_TYPE)

    async def _health_page(self, web, request):
        try:
            engine = await self._ask(channel.AskHealth)
        except (asyncio.TimeoutError, RuntimeError, OSError) as exc:  # OSError: the engine is gone
            engine = {"ready": False, "failure": None, "problems": [
                {"problem": "engine", "detail": f"not answering: {type(exc).__name__}", "for_seconds": ASK_TIMEOUT_S}]}
        failure = self.failure or engine.get("failure")
        if failure:
            status = "failed"
        elif engine["ready"]:
            status = "ok"
        else:
            status = "starting"
        return web.json(self.guard.health(  # "degraded" + problems of both processes, redacted
            {
                "status": status,
                "failure": failure,
                "clock": self.settings.clock,
                "data_dir": str(self.settings.data_dir.resolve()),  # `sql` checks it talks to its own worker
                "clock_us": engine.get("clock_us", self.clock_us()),
                "processed": engine.get("processed", 0),
                "pending": engine.get("pending", 0),
                "flushing": engine.get("flushing", False),
                "rebuilding": engine.get("rebuilding", False),
                "partitions": engine.get("partitions", []),
                "fenced": engine.get("fenced", []),
                "membership_confirmed": self.membership.current(),
                "last_heartbeat_seconds": self.membership.since_s(),
                "rebuilds": engine.get("rebuilds", 0),
                "last_rebuild_seconds": engine.get("last_rebuild_seconds"),
                "view_scopes": engine.get("view_scopes", 0),
            },
            engine.get("problems", []),
        ))

    def _sql_view(self):
        worker = self

        class SqlView(faust.web.View):
            async def post(self, request):
                headers = request.headers
                refusal = worker.web.refusal(headers.get("Authorization"), headers.get("Content-Type"),
                                             headers.get("Host"))
                if refusal is not None:
                    return self.json({"error": refusal.message}, status=refusal.status)
                try:
                    body = webguard.parse_sql_body(await request.read())
                    check_read_only(body.query)
                    limits = worker.web.limits
                    columns, rows = await worker._ask(
                        partial(channel.AskSql, query=body.query, parameters=body.parameters,
                                limits=limits.settings(), wait_seconds=limits.wait_seconds),
                        timeout=limits.wait_seconds + 1,
                    )
                except UserError as exc:
                    return self.json({"error": redact(str(exc))}, status=400)
                except asyncio.TimeoutError:
                    return self.json({"error": "POST /sql: no answer within "
                                               f"{worker.web.limits.wait_seconds:g} s"}, status=504)
                except Exception as exc:  # the engine's own message, one line
                    return self.json({"error": redact(one_line(exc, with_type=False))}, status=400)
                return self.json({"columns": columns, "rows": rows})

        return SqlView


def run_worker(settings: Settings, registries: Registries) -> int:
    """``registries``: the DVCQG translation's (``pipeline.feed.dvcqg.registries_for``, built by the CLI)."""
    # The Faust process allocates a few objects per message and keeps few: collect the
    # young generation less often (the engine process does the same; BENCHMARKS.md).
    gc.set_threshold(GC_THRESHOLD, 20, 100)
    try:
        load_targets(settings.targets_file)  # the engine reads them; a bad file stops here, in one line
    except TargetsError as exc:
        raise UserError(str(exc)) from None
    if not settings.units_file.exists():
        raise UserError(f"units registry not found: {settings.units_file}")
    (settings.data_dir / "faust").mkdir(parents=True, exist_ok=True)
    install_log_redaction()  # no secret in any log line
    settings = kafka_clients.preflight(settings)  # unreachable or refused: one error line; auto replication resolved
    # uvloop: Faust's consumer runs a few asyncio tasks per message (its per-message
    # wait_first); on uvloop its CPU per message fell by a fifth (BENCHMARKS.md)
    mode.loop.use("uvloop")
    worker = Worker(settings, registries)
    faust_worker = faust.Worker(worker.app, loglevel="WARNING", quiet=True)
    print(
        f"worker: {settings.topic} on {settings.kafka_bootstrap} -> {describe_dsn(settings.effective_clickhouse_dsn)}; "
        f"metrics at {settings.web_url}/metrics (clock: {settings.clock})",
        flush=True,
    )
    stopped: SystemExit | None = None
    try:
        faust_worker.execute_from_commandline()
    except SystemExit as exit_:  # how Faust's worker always ends: its code is the process's
        stopped = exit_
    finally:
        worker.stop_engine()
    if stopped is not None and stopped.code and not worker.joined and worker.failure is None:
        start_again()  # Faust's own start failed (a broker went down meanwhile): returns when tried enough
    if stopped is not None:
        raise stopped
    return 0


def start_again() -> None:
    """Run this worker again in this process (``exec``: same pid, arguments and
    environment) after a failed start, on the ``SOON`` schedule; return when that is
    used up. Faust's start asks brokers for metadata and its leader topic without
    retrying, so a broker that dies just then would otherwise stop a starting worker."""
    attempt = int(os.environ.get(START_ATTEMPT_ENV, "1"))
    delays = list(itertools.islice(SOON.delays(), SOON.attempts))
    if attempt >= len(delays):
        print(f"worker: the start failed {attempt} times in a row; stopping", file=sys.stderr, flush=True)
        return
    delay = delays[attempt - 1]
    print(f"worker: the start failed (see above); starting again in {delay:g} s "
          f"(attempt {attempt + 1} of {len(delays)})", file=sys.stderr, flush=True)
    time.sleep(delay)
    os.environ[START_ATTEMPT_ENV] = str(attempt + 1)
    os.execv(sys.executable, [sys.executable, "-m", "pipeline", *sys.argv[1:]])
