"""``python -m pipeline intake``: the DVCQG-compatible sync endpoint, and ``--file`` mode.

HTTP (aiohttp) on ``TTHC_INTAKE_HOST``:``TTHC_INTAKE_PORT``: ``POST /dvcqg/login`` and
``POST /dvcqg/`` (``pipeline.intake.calls`` checks them). A call is answered
``error_code: 0`` only once every record of it (scrubbed of personal data) is in the
topic ``TTHC_DVCQG_TOPIC`` (``acks=all``, idempotent producer), keyed by ``MaHoSo``.
Beyond loopback the intake serves only over TLS (``TTHC_INTAKE_TLS_CERT``/``_KEY``) and
refuses to start otherwise. Logs name accounts, services and counts, never a record.

``--file FILE``: one request body per JSONL line (a sync log or an export), no session;
a progress bar; exit 0 once every line is in Kafka, 1 when some lines or records were
refused (each reported on stderr by line number), 2 when Kafka is unreachable.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import ssl
import sys
import time
from pathlib import Path

from aiohttp import web
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from pipeline.config import Settings, UserError
from pipeline.infra.kafka import ensure_topics
from pipeline.intake.calls import (
    LOGIN_REFUSED,
    OK,
    TOO_LARGE,
    UNAVAILABLE,
    Accounts,
    LoginGuard,
    Sessions,
    answer,
    check_call,
    load_accounts,
    parse_login,
)
from pipeline.kafka_clients import aiokafka_options, kafka_python_options, quiet_kafka_logs, topic_configs, topic_policy
from pipeline.progress import progress_bar, summary
from pipeline.sources.dvcqg.records import RawRecord
from pipeline.webguard import is_loopback

__all__ = ["run_intake", "run_file", "build_app", "KafkaSink"]

log = logging.getLogger("pipeline.intake")
_SEND_TIMEOUT_S = 30.0


def _now_us() -> int:
    return time.time_ns() // 1000


class KafkaSink:
    """The raw topic's producer: ``store(records)`` returns once all are acknowledged."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.topic = settings.dvcqg_topic
        self.producer: AIOKafkaProducer | None = None

    def ensure_topics(self) -> None:
        policy = topic_policy(self.settings)
        with quiet_kafka_logs():
            ensure_topics(self.settings.kafka_bootstrap, [self.topic, self.settings.dvcqg_dlq_topic],
                          self.settings.partitions, replication=policy.replication,
                          configs=topic_configs(self.settings), client_options=kafka_python_options(self.settings))

    async def start(self) -> None:
        self.producer = AIOKafkaProducer(**aiokafka_options(self.settings), acks="all", enable_idempotence=True,
                                         max_request_size=2 * 1024 * 1024, request_timeout_ms=20_000)
        await self.producer.start()

    async def stop(self) -> None:
        if self.producer is not None:
            await self.producer.stop()
            self.producer = None

    async def store(self, records: list[RawRecord]) -> None:
        """Send and wait for every acknowledgement; raises on any failure."""
        assert self.producer is not None
        futures = [await self.producer.send(self.topic, value=r.to_bytes(), key=r.key.encode("utf-8"))
                   for r in records]
        if futures:
            await asyncio.wait_for(asyncio.gather(*futures), _SEND_TIMEOUT_S)


class _State:
    def __init__(self, settings: Settings, accounts: Accounts, sink) -> None:
        self.settings = settings
        self.accounts = accounts
        self.sink = sink
        self.sessions = Sessions(settings.intake_session_seconds)
        self.guard = LoginGuard()
        self.calls = {"ok": 0, "refused": 0, "errors": 0}


def _json(body: dict) -> web.Response:
    return web.json_response(body, dumps=lambda o: json.dumps(o, ensure_ascii=False))


async def _read(request: web.Request, limit: int) -> bytes | None:
    """The body, or None when it is larger than ``limit`` bytes."""
    if request.content_length is not None and request.content_length > limit:
        return None
    try:
        return await request.read()
    except web.HTTPRequestEntityTooLarge:
        return None


def _too_large(limit: int) -> web.Response:
    return _json(answer(TOO_LARGE, f"Yêu cầu lớn hơn giới hạn {limit} byte; chia nhỏ mảng data."))


async def _login(request: web.Request) -> web.Response:
    state: _State = request.app["intake"]
    body = await _read(request, 64 * 1024)
    if body is None:
        return _too_large(64 * 1024)
    creds = parse_login(body)
    address = request.remote or "?"
    username, password = creds if creds is not None else (None, None)
    if creds is not None and state.accounts.check(username, password):
        state.guard.succeeded(username, address)
        token = state.sessions.open(username, time.monotonic())
        log.info("intake: login of %s from %s", username, address)
        return _json({"session": token, "error_code": OK, "expires_in": int(state.settings.intake_session_seconds)})
    delay = state.guard.failed(str(username)[:64], address, time.monotonic())
    log.warning("intake: failed login from %s (answered after %.2f s)", address, delay)
    await asyncio.sleep(delay)
    return _json(answer(LOGIN_REFUSED, "Sai tên đăng nhập hoặc mật khẩu."))


async def _call(request: web.Request) -> web.Response:
    state: _State = request.app["intake"]
    limit = state.settings.intake_max_bytes
    body = await _read(request, limit)
    if body is None:
        state.calls["errors"] += 1
        log.warning("intake: a call larger than %d bytes refused", limit)
        return _too_large(limit)
    check = check_call(body, arrived_us=_now_us(), account="", sessions=state.sessions, now=time.monotonic())
    if check.error is not None:
        state.calls["errors"] += 1
        log.warning("intake: call refused (error_code %s)", check.error["error_code"])
        return _json(check.error)
    try:
        await state.sink.store(check.records)
    except (KafkaError, OSError, asyncio.TimeoutError) as exc:
        state.calls["errors"] += 1
        log.error("intake: Kafka did not acknowledge %d records (%s); answered %d", len(check.records),
                  type(exc).__name__, UNAVAILABLE)
        return _json(answer(UNAVAILABLE, "Chưa lưu được dữ liệu (Kafka không xác nhận); gửi lại yêu cầu."))
    result = check.answer_after_store()
    state.calls["ok" if result["error_code"] == OK else "refused"] += 1
    log.info("intake: %s: %d records stored, %d refused", check.service, len(check.records), len(check.refused))
    return _json(result)


async def _health(request: web.Request) -> web.Response:
    state: _State = request.app["intake"]
    return _json({"status": "ok", "calls": state.calls})


def build_app(settings: Settings, accounts: Accounts, sink) -> web.Application:
    """The aiohttp application (``sink.store(records)`` stores a call's records)."""
    app = web.Application(client_max_size=settings.intake_max_bytes)
    app["intake"] = _State(settings, accounts, sink)
    app.router.add_post("/dvcqg/login", _login)
    app.router.add_post("/dvcqg/", _call)
    app.router.add_post("/dvcqg", _call)
    app.router.add_get("/healthz", _health)
    return app


def _tls(settings: Settings) -> ssl.SSLContext | None:
    cert, key = settings.intake_tls_cert, settings.intake_tls_key
    if bool(cert) != bool(key):
        raise UserError("set both TTHC_INTAKE_TLS_CERT and TTHC_INTAKE_TLS_KEY, or neither")
    if not cert:
        if not is_loopback(settings.intake_host):
            raise UserError(f"TTHC_INTAKE_HOST={settings.intake_host} listens beyond loopback: set "
                            "TTHC_INTAKE_TLS_CERT and TTHC_INTAKE_TLS_KEY (the intake serves the network only over TLS)")
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise UserError(f"cannot load the intake's TLS certificate or key ({type(exc).__name__})") from None
    return context


def _accounts(settings: Settings) -> Accounts:
    if not settings.intake_accounts_file:
        raise UserError("set TTHC_INTAKE_ACCOUNTS_FILE: a file of `username password` lines, one per sending system")
    return load_accounts(settings.intake_accounts_file)


def _kafka_error(settings: Settings, exc: BaseException) -> UserError:
    return UserError(f"cannot reach Kafka at {settings.kafka_bootstrap} ({type(exc).__name__}): "
                     "run `python -m pipeline infra up`")


def run_intake(settings: Settings) -> int:
    """Serve until SIGINT/SIGTERM."""
    context = _tls(settings)
    accounts = _accounts(settings)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
    sink = KafkaSink(settings)
    try:
        sink.ensure_topics()
    except Exception as exc:  # kafka-python raises many types; one line for all
        raise _kafka_error(settings, exc) from None

    async def main() -> None:
        try:
            await sink.start()
        except (KafkaError, OSError) as exc:
            raise _kafka_error(settings, exc) from None
        app = build_app(settings, accounts, sink)
        runner = web.AppRunner(app, access_log=None)  # an access log would show no record, but stays quiet
        await runner.setup()
        site = web.TCPSite(runner, settings.intake_host, settings.intake_port, ssl_context=context)
        try:
            await site.start()
        except OSError as exc:
            await sink.stop()
            raise UserError(f"cannot listen on {settings.intake_host}:{settings.intake_port} ({exc.strerror})") from None
        scheme = "https" if context else "http"
        log.info("intake: serving %s://%s:%d/dvcqg/ -> topic %s", scheme, settings.intake_host,
                 settings.intake_port, settings.dvcqg_topic)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        await runner.cleanup()
        await sink.stop()

    asyncio.run(main())
    return 0


def run_file(settings: Settings, path: str | Path, *, progress: bool = True) -> int:
    """Load a sync log (one request body per line); see the module doc for exit codes."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"no such file: {p}" if not p.exists() else f"not a file: {p}")
    try:
        lines = p.read_bytes().splitlines()
    except OSError as exc:
        raise UserError(f"cannot read {p}: {exc.strerror or exc}") from None
    sink = KafkaSink(settings)
    try:
        sink.ensure_topics()
    except Exception as exc:
        raise _kafka_error(settings, exc) from None
    problems: list[str] = []
    stored = 0

    async def main() -> None:
        nonlocal stored
        try:
            await sink.start()
        except (KafkaError, OSError) as exc:
            raise _kafka_error(settings, exc) from None
        try:
            with progress_bar("intake", total=len(lines), unit="line", enabled=progress) as bar:
                for number, line in enumerate(lines, 1):
                    bar.update(1)
                    if not line.strip():
                        continue
                    if len(line) > settings.intake_max_bytes:
                        problems.append(f"line {number}: larger than {settings.intake_max_bytes} bytes")
                        continue
                    check = check_call(line, arrived_us=_now_us(), account=f"file:{p.name}", sessions=None, now=0.0)
                    if check.error is not None:
                        problems.append(f"line {number}: error_code {check.error['error_code']}: "
                                        f"{check.error['message']}")
                        continue
                    for index, reason in check.refused:
                        problems.append(f"line {number}: record {index}: {reason}")
                    try:
                        await sink.store(check.records)
                    except (KafkaError, OSError, asyncio.TimeoutError) as exc:
                        raise UserError(f"Kafka did not acknowledge line {number} ({type(exc).__name__}); "
                                        f"lines 1-{number - 1} are stored, send the file again") from None
                    stored += len(check.records)
        finally:
            await sink.stop()

    asyncio.run(main())
    for line in problems[:100]:
        print(f"intake: {line}", file=sys.stderr)
    summary(f"intake: {stored} records of {len(lines)} lines in {settings.dvcqg_topic}, all acknowledged; "
            f"{len(problems)} refused", enabled=True)
    return 1 if problems else 0
