"""Everything a Kafka client of the project needs, built in one place.

Every client — the Faust app, the case changelog's aiokafka producer, consumer and
admin (``stream/state.py``), ``replay``/``simulate`` (kafka-python), ``infra`` — takes
its bootstrap servers, security settings and topic policy from here, so SASL/SCRAM,
TLS and the replication of the topics we create are configured once (``TTHC_KAFKA_*``):

* :func:`bootstrap_servers` — the configured bootstrap, or every local broker of
  ``infra up --brokers N`` (so a client can start while one of them is down);
* :func:`aiokafka_options` / :func:`kafka_python_options` / :func:`faust_options` —
  keyword arguments for each library (both Python libraries take the same names);
* :func:`preflight` — one metadata request with those options before a command
  starts: unreachable brokers and refused credentials become one ``error:`` line, and
  ``auto`` replication is resolved from the number of brokers the cluster reports;
* :func:`topic_configs` — ``min.insync.replicas`` for the topics we create;
  :func:`dlq_topic_configs` adds the dead-letter topic's ``max.message.bytes``, and
  :func:`check_dlq_limit` reads it back from the cluster at a worker's start.

The password is read from ``TTHC_KAFKA_SASL_PASSWORD`` or the file named by
``TTHC_KAFKA_SASL_PASSWORD_FILE`` and goes only into the client objects: no message
built here contains it (``Settings`` hides it from its ``repr``).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import ssl
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Iterator

from pipeline.config import ConfigError, Settings, UserError
from pipeline.errors import one_line
from pipeline.contract.rejected import DEAD_LETTER_MAX_BYTES, DLQ_MAX_MESSAGE_BYTES
from pipeline.secrets import secret_text

SASL_PROTOCOLS = ("SASL_PLAINTEXT", "SASL_SSL")
TLS_PROTOCOLS = ("SSL", "SASL_SSL")
PREFLIGHT_TIMEOUT_MS = 10_000


@dataclass(frozen=True)
class BrokerAddress:
    """One broker of the local cluster ``infra up --brokers N`` runs."""

    node_id: int
    host: str
    port: int
    controller_port: int

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


def local_brokers(settings: Settings, first: tuple[str, int]) -> list[BrokerAddress]:
    """Broker 1 at the bootstrap address and ``TTHC_KAFKA_CONTROLLER_PORT``; broker
    n >= 2 at ``TTHC_KAFKA_EXTRA_PORT_BASE + 2(n-2)`` and its controller one above."""
    host, port = first
    brokers = [BrokerAddress(1, host, port, settings.kafka_controller_port)]
    for n in range(2, settings.kafka_brokers + 1):
        base = settings.kafka_extra_port_base + 2 * (n - 2)
        brokers.append(BrokerAddress(n, host, base, base + 1))
    ports = [p for b in brokers for p in (b.port, b.controller_port)]
    if len(set(ports)) != len(ports) or max(ports) > 65535:
        raise ConfigError(
            f"the ports of {settings.kafka_brokers} local brokers overlap or overflow: {ports} "
            "(check TTHC_KAFKA_BOOTSTRAP, TTHC_KAFKA_CONTROLLER_PORT, TTHC_KAFKA_EXTRA_PORT_BASE)"
        )
    return brokers


def managed_address(bootstrap: str) -> tuple[str, int] | None:
    """(host, port) of the broker to run here, or None when the bootstrap is elsewhere."""
    if "," in bootstrap:  # a list of brokers is a real cluster, never ours
        return None
    host, sep, port_text = bootstrap.rpartition(":")
    if not sep or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ConfigError(f"TTHC_KAFKA_BOOTSTRAP must be host:port, got {bootstrap!r}")
    if host == "localhost":
        return "127.0.0.1", int(port_text)
    try:
        loopback = ipaddress.IPv4Address(host).is_loopback
    except ValueError:
        loopback = False
    return (host, int(port_text)) if loopback else None


def bootstrap_servers(settings: Settings) -> str:
    """Comma-separated ``host:port`` list the clients start from."""
    if settings.kafka_brokers == 1:
        return settings.kafka_bootstrap
    first = managed_address(settings.kafka_bootstrap)
    if first is None:  # an external cluster: its bootstrap list is the operator's
        return settings.kafka_bootstrap
    return ",".join(b.address for b in local_brokers(settings, first))


# -- security ------------------------------------------------------------------------
def sasl_password(settings: Settings) -> str:
    """The SCRAM password: ``TTHC_KAFKA_SASL_PASSWORD``, else the file
    ``TTHC_KAFKA_SASL_PASSWORD_FILE`` names (one line: ``secrets.secret_text``, the
    rule every secret follows, so the password used is the one redacted). Errors never
    quote it."""
    if settings.kafka_sasl_password and settings.kafka_sasl_password_file:
        raise ConfigError("set TTHC_KAFKA_SASL_PASSWORD or TTHC_KAFKA_SASL_PASSWORD_FILE, not both")
    if settings.kafka_sasl_password:
        return secret_text("TTHC_KAFKA_SASL_PASSWORD", settings.kafka_sasl_password)
    if settings.kafka_sasl_password_file:
        path = Path(settings.kafka_sasl_password_file).expanduser()
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
            raise ConfigError(f"cannot read TTHC_KAFKA_SASL_PASSWORD_FILE {path}: {reason}") from None
        return secret_text("TTHC_KAFKA_SASL_PASSWORD", text, str(path))
    return ""


def check_security(settings: Settings) -> None:
    """ConfigError when the ``TTHC_KAFKA_*`` security settings do not fit together."""
    protocol = settings.kafka_security_protocol
    if protocol in SASL_PROTOCOLS:
        if not settings.kafka_sasl_username:
            raise ConfigError(f"TTHC_KAFKA_SECURITY_PROTOCOL={protocol} needs TTHC_KAFKA_SASL_USERNAME")
        if not sasl_password(settings):
            raise ConfigError(
                f"TTHC_KAFKA_SECURITY_PROTOCOL={protocol} needs TTHC_KAFKA_SASL_PASSWORD or TTHC_KAFKA_SASL_PASSWORD_FILE"
            )
    if protocol in TLS_PROTOCOLS:
        for name in ("kafka_ssl_cafile", "kafka_ssl_certfile", "kafka_ssl_keyfile"):
            value = getattr(settings, name)
            if value and not Path(value).expanduser().is_file():
                raise ConfigError(f"TTHC_{name.upper()}: no such file: {value}")
        if bool(settings.kafka_ssl_certfile) != bool(settings.kafka_ssl_keyfile):
            raise ConfigError("TTHC_KAFKA_SSL_CERTFILE and TTHC_KAFKA_SSL_KEYFILE go together")


def ssl_context(settings: Settings) -> ssl.SSLContext | None:
    """A verifying TLS context (the CA file, else the system's CAs), or None without TLS."""
    if settings.kafka_security_protocol not in TLS_PROTOCOLS:
        return None
    check_security(settings)
    cafile = settings.kafka_ssl_cafile or None
    try:
        context = ssl.create_default_context(cafile=str(Path(cafile).expanduser()) if cafile else None)
        if settings.kafka_ssl_certfile:
            context.load_cert_chain(
                str(Path(settings.kafka_ssl_certfile).expanduser()), str(Path(settings.kafka_ssl_keyfile).expanduser())
            )
    except (ssl.SSLError, OSError) as exc:
        raise ConfigError(f"cannot load the Kafka TLS files (TTHC_KAFKA_SSL_*): {one_line(exc)}") from None
    return context


def _client_options(settings: Settings) -> dict[str, Any]:
    """Options with the same names in aiokafka and kafka-python."""
    check_security(settings)
    protocol = settings.kafka_security_protocol
    options: dict[str, Any] = {"bootstrap_servers": bootstrap_servers(settings), "security_protocol": protocol}
    if protocol in TLS_PROTOCOLS:
        options["ssl_context"] = ssl_context(settings)
    if protocol in SASL_PROTOCOLS:
        options["sasl_mechanism"] = settings.kafka_sasl_mechanism
        options["sasl_plain_username"] = settings.kafka_sasl_username
        options["sasl_plain_password"] = sasl_password(settings)
    return options


def aiokafka_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for ``AIOKafkaProducer``/``AIOKafkaConsumer``/``AIOKafkaAdminClient``."""
    return _client_options(settings)


def kafka_python_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for kafka-python's ``KafkaProducer``/``KafkaConsumer``/``KafkaAdminClient``."""
    return _client_options(settings)


def faust_credentials(settings: Settings):
    """``broker_credentials`` of the Faust app (None for PLAINTEXT)."""
    from faust.auth import SASLCredentials, SSLCredentials  # lazy: only the worker loads Faust

    check_security(settings)
    protocol = settings.kafka_security_protocol
    if protocol in SASL_PROTOCOLS:
        return SASLCredentials(
            username=settings.kafka_sasl_username,
            password=sasl_password(settings),
            ssl_context=ssl_context(settings),  # None for SASL_PLAINTEXT; SASL_SSL with a context
            mechanism=settings.kafka_sasl_mechanism,
        )
    if protocol == "SSL":
        return SSLCredentials(ssl_context(settings))
    return None


def faust_options(settings: Settings) -> dict[str, Any]:
    """``faust.App`` settings for the cluster: brokers, credentials, replication, acks."""
    hosts = bootstrap_servers(settings).split(",")
    return {
        "broker": "kafka://" + ";".join(hosts),
        "broker_credentials": faust_credentials(settings),
        "topic_replication_factor": topic_policy(settings).replication,
        "producer_acks": -1,  # acks=all: the dead letters must survive a broker's loss too
        # the producer writes only the dead letters: its limit equals the dead-letter
        # topic's (dlq_topic_configs), 15x the largest letter (contract.rejected)
        "producer_max_request_size": DLQ_MAX_MESSAGE_BYTES,
    }


# -- topics --------------------------------------------------------------------------
@dataclass(frozen=True)
class TopicPolicy:
    replication: int
    min_insync: int


def topic_policy(settings: Settings, brokers: int | None = None) -> TopicPolicy:
    """Replication and ``min.insync.replicas`` of the topics the project creates.

    ``auto`` replication is min(3, brokers) (``brokers``: what the cluster reports; 1
    when unknown and the settings were not resolved by :func:`preflight`); ``auto``
    min.insync is 2 with three or more replicas (one broker may fail without losing
    an acknowledged write or stopping writes), else 1."""
    if settings.kafka_replication == "auto":
        replication = min(3, brokers or 1)
    else:
        replication = int(settings.kafka_replication)
    if settings.kafka_min_insync == "auto":
        min_insync = 2 if replication >= 3 else 1
    else:
        min_insync = int(settings.kafka_min_insync)
    if min_insync > replication:
        raise ConfigError(
            f"TTHC_KAFKA_MIN_INSYNC ({min_insync}) must not exceed the replication factor ({replication})"
        )
    return TopicPolicy(replication, min_insync)


def topic_configs(settings: Settings) -> dict[str, str]:
    return {"min.insync.replicas": str(topic_policy(settings).min_insync)}


def dlq_topic_configs(settings: Settings) -> dict[str, str]:
    """The dead-letter topic's configs: :func:`topic_configs` and its own
    ``max.message.bytes`` (``DLQ_MAX_MESSAGE_BYTES``, set on purpose rather than left
    to the broker's default), which every dead letter fits (``contract.rejected``)."""
    return {**topic_configs(settings), "max.message.bytes": str(DLQ_MAX_MESSAGE_BYTES)}


async def topic_max_message_bytes(settings: Settings, topic: str) -> int | None:
    """The topic's ``max.message.bytes`` as the cluster reports it (its own or the
    broker's default), None when the cluster does not say."""
    from aiokafka.admin import AIOKafkaAdminClient  # lazy: only the worker reads a topic's limit
    from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

    admin = AIOKafkaAdminClient(**aiokafka_options(settings), request_timeout_ms=PREFLIGHT_TIMEOUT_MS)
    await admin.start()
    try:
        responses = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, topic, configs={"max.message.bytes": None})])
    finally:
        await admin.close()
    for response in responses:
        for resource in response.resources:
            error_code, _message, _type, name, entries = resource[:5]
            if error_code == 0 and name == topic:
                for entry in entries:
                    if entry[0] == "max.message.bytes" and entry[1] is not None:
                        return int(entry[1])
    return None


def check_dlq_limit(topic: str, limit: int | None) -> None:
    """UserError (one line) when the dead-letter topic refuses letters as large as
    ``contract.rejected`` makes them: every rejection would then block the acks."""
    if limit is not None and limit < DEAD_LETTER_MAX_BYTES:
        raise UserError(
            f"the dead-letter topic {topic} accepts messages of at most {limit:,} bytes (max.message.bytes); "
            f"dead letters need up to {DEAD_LETTER_MAX_BYTES:,}: raise it (the worker creates it with "
            f"{DLQ_MAX_MESSAGE_BYTES:,})"
        )


# -- preflight -------------------------------------------------------------------------
@contextmanager
def quiet_kafka_logs() -> Iterator[None]:
    """kafka-python logs every refused connection and failed handshake; while probing
    (and when a failure becomes one ``error:`` line) that is noise."""
    loggers = [logging.getLogger(name) for name in ("kafka", "aiokafka")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


_AUTH_ERRORS = {"SaslAuthenticationFailed", "SaslAuthenticationFailedError", "IllegalSaslStateError",
                "UnsupportedSaslMechanismError", "AuthenticationFailedError"}


def is_auth_error(exc: BaseException) -> bool:
    """A refused login or a TLS handshake that failed (certificate, protocol)."""
    return isinstance(exc, ssl.SSLError) or bool({cls.__name__ for cls in type(exc).__mro__} & _AUTH_ERRORS)


class Refused(UserError):
    """The cluster refused this client's credentials or TLS handshake."""


def bootstrap_hosts(bootstrap: str) -> list[tuple[str, int]]:
    """(host, port) of each entry of a comma-separated bootstrap list."""
    hosts = []
    for part in bootstrap.split(","):
        host, _, port = part.strip().rpartition(":")
        if port.isdigit():
            hosts.append((host.strip("[]") or "localhost", int(port)))
    return hosts


async def _count_brokers(settings: Settings, timeout_ms: int) -> int:
    # One connection made by hand (aiokafka's create_conn: TCP, TLS, SASL, then a
    # metadata request): the libraries' bootstrap loops only log why a login failed.
    from aiokafka.conn import create_conn  # lazy: only the commands that probe the cluster
    from aiokafka.protocol.metadata import MetadataRequest

    options = aiokafka_options(settings)
    where = options.pop("bootstrap_servers")
    protocol = settings.kafka_security_protocol
    last: BaseException | None = None
    for host, port in bootstrap_hosts(where):
        try:
            conn = await asyncio.wait_for(create_conn(host, port, request_timeout_ms=timeout_ms, **options),
                                          timeout_ms / 1000)
            try:
                metadata = await conn.send(MetadataRequest([]))  # brokers only, no topics
            finally:
                conn.close()
        except Exception as exc:  # any client error: say which, in one line
            if is_auth_error(exc):
                who = f" of user {settings.kafka_sasl_username!r}" if protocol in SASL_PROTOCOLS else ""
                raise Refused(
                    f"Kafka at {host}:{port} refused the connection{who} ({protocol}): {one_line(exc)}"
                ) from None
            last = exc
            continue
        return len(metadata.brokers) or 1
    raise UserError(
        f"cannot reach Kafka at {where} ({protocol}): {one_line(last) if last else 'no address'}; "
        "is it running (`python -m pipeline infra up`) and are TTHC_KAFKA_* right?"
    )


def count_brokers(settings: Settings, timeout_ms: int = PREFLIGHT_TIMEOUT_MS) -> int:
    """Brokers in the cluster's metadata; UserError (one line) when the cluster cannot
    be reached, :class:`Refused` when it refuses the credentials or the TLS handshake."""
    with quiet_kafka_logs():
        return asyncio.run(_count_brokers(settings, timeout_ms))


def preflight(settings: Settings) -> Settings:
    """Check that the cluster answers with these credentials; return the settings with
    ``auto`` replication resolved from its broker count (so every topic the command
    creates gets the same policy)."""
    brokers = count_brokers(settings)
    policy = topic_policy(settings, brokers)
    return replace(settings, kafka_replication=str(policy.replication), kafka_min_insync=str(policy.min_insync))
