"""Local KRaft Kafka nodes run from Maven Central jars (no tarball, no Docker).

One node by default; ``infra up --brokers N`` runs N nodes that are each broker and
controller (a quorum of N voters). The client listener is PLAINTEXT, SASL/SCRAM
(``--scram``: the users are written into the storage by the broker's own
``StorageTool format --add-scram``), TLS (``--tls``: a throw-away CA made with
``openssl``) or both; the controller listener stays PLAINTEXT on 127.0.0.1.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import shutil
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.config import PROJECT_ROOT, Settings, UserError
from pipeline.infra.processes import port_open
from pipeline.kafka_clients import (
    SASL_PROTOCOLS,
    TLS_PROTOCOLS,
    BrokerAddress,
    Refused,
    count_brokers,
    kafka_python_options,
    quiet_kafka_logs,
    topic_policy,
)

POM = PROJECT_ROOT / "deploy" / "kafka" / "pom.xml"


def require(binary: str, hint: str) -> str:
    path = shutil.which(binary)
    if path is None:
        raise UserError(f"{binary} not found: run `make setup` ({hint})")
    return path


def ensure_jars(data_dir: Path, log_file: Path) -> Path:
    """The broker's classpath directory; fetched with Maven once per pom.xml content.

    The marker holds the pom's hash and is written last, so an interrupted fetch or a
    version bump in the pom triggers a clean refetch.
    """
    libs = data_dir / "cache" / "kafka-libs"
    marker = libs / ".complete"
    digest = hashlib.sha256(POM.read_bytes()).hexdigest()
    if marker.is_file() and marker.read_text().strip() == digest:
        return libs
    mvn = require("mvn", "needs maven to fetch the Kafka jars once")
    print("kafka: fetching Kafka jars (once)…", flush=True)
    shutil.rmtree(libs, ignore_errors=True)
    libs.mkdir(parents=True)
    log_file.parent.mkdir(parents=True, exist_ok=True)
    argv = [
        mvn, "-q", "-B", "-Dstyle.color=never", "-f", str(POM), "dependency:copy-dependencies",
        f"-DoutputDirectory={libs}", "-DincludeScope=runtime",
    ]
    with log_file.open("wb") as log:
        result = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    if result.returncode != 0 or not any(libs.glob("kafka_2.13-*.jar")):
        raise UserError(f"fetching the Kafka jars with Maven failed; see {log_file}")
    marker.write_text(digest + "\n")
    return libs


@dataclass(frozen=True)
class BrokerSecurity:
    """The client listener of the local brokers: its protocol, the SCRAM user the
    brokers also use between themselves, and the PEM files of the throw-away CA."""

    protocol: str = "PLAINTEXT"
    mechanism: str = "SCRAM-SHA-512"
    username: str = ""
    password: str = field(default="", repr=False)
    keystore: Path | None = None  # broker key + certificate chain (PEM)
    truststore: Path | None = None  # the CA (PEM)


#: what the storage tool's ``--add-scram`` parser takes without quoting (it splits on
#: commas and brackets and would echo a misparsed part of the password into its output)
_SCRAM_TEXT = re.compile(r"[A-Za-z0-9._~!@#$%^&*()+=:;<>?/|{}-]+")


def check_scram_text(username: str, password: str) -> None:
    """UserError (never quoting the password) when the local broker cannot take them."""
    if not _SCRAM_TEXT.fullmatch(username):
        raise UserError(f"the local broker's SCRAM user name {username!r} may hold only letters, digits and ._~!@#$%^&*()+=:;<>?/|{{}}-")
    if not _SCRAM_TEXT.fullmatch(password):
        raise UserError("the local broker's SCRAM password may hold only letters, digits and ._~!@#$%^&*()+=:;<>?/|{}- "
                        "(no spaces, quotes, backslashes, commas or brackets)")


def _jaas_quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _properties_escape(text: str) -> str:
    return text.replace("\\", "\\\\")


def server_properties(
    settings: Settings, node: BrokerAddress, nodes: list[BrokerAddress], log_dirs: Path,
    security: BrokerSecurity = BrokerSecurity(),
) -> str:
    """One node of the local cluster: broker and KRaft controller in one process."""
    protocol = security.protocol
    listener = protocol  # the listener is named after its protocol
    policy = topic_policy(settings, len(nodes))
    replication, min_isr = str(policy.replication), str(policy.min_insync)
    props = {
        # each process is both a KRaft controller (a voter of the quorum) and a broker
        "process.roles": "broker,controller",
        "node.id": str(node.node_id),
        "controller.quorum.voters": ",".join(f"{n.node_id}@127.0.0.1:{n.controller_port}" for n in nodes),
        "listeners": f"{listener}://{node.host}:{node.port},CONTROLLER://127.0.0.1:{node.controller_port}",
        "advertised.listeners": f"{listener}://{node.host}:{node.port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": listener,
        "listener.security.protocol.map": f"{listener}:{protocol},CONTROLLER:PLAINTEXT",
        "log.dirs": str(log_dirs),
        "num.partitions": str(settings.partitions),
        # every topic replicated min(3, brokers) times; with 3 replicas a write needs 2
        # (one broker may fail without losing an acknowledged write or stopping writes)
        "default.replication.factor": replication,
        "min.insync.replicas": min_isr,
        "offsets.topic.replication.factor": replication,
        "transaction.state.log.replication.factor": replication,
        "transaction.state.log.min.isr": min_isr,
        "share.coordinator.state.topic.replication.factor": replication,
        "share.coordinator.state.topic.min.isr": min_isr,
        # no 3 s wait for more members on each consumer-group (re)start
        "group.initial.rebalance.delay.ms": "0",
        "auto.create.topics.enable": "true",
    }
    if protocol in SASL_PROTOCOLS:
        mech = security.mechanism
        props.update({
            "sasl.enabled.mechanisms": mech,
            "sasl.mechanism.inter.broker.protocol": mech,
            # the brokers authenticate to each other as the same SCRAM user
            f"listener.name.{listener.lower()}.{mech.lower()}.sasl.jaas.config":
                "org.apache.kafka.common.security.scram.ScramLoginModule required"
                f" username={_jaas_quote(security.username)} password={_jaas_quote(security.password)};",
        })
    if protocol in TLS_PROTOCOLS:
        props.update({
            "ssl.keystore.type": "PEM",
            "ssl.keystore.location": str(security.keystore),
            "ssl.truststore.type": "PEM",  # the brokers verify each other with the same CA
            "ssl.truststore.location": str(security.truststore),
        })
    return "# generated by `python -m pipeline infra up`; edits are overwritten\n" + "".join(
        f"{key}={_properties_escape(value)}\n" for key, value in props.items()
    )


def _new_cluster_id() -> str:
    # What `StorageTool random-uuid` prints (base64url of 16 random bytes), minus a JVM start.
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not text.startswith("-"):  # Kafka avoids ids that look like a CLI flag
            return text


def ensure_formatted(
    java: str, libs: Path, config: Path, id_file: Path, log_dirs: Path, log_file: Path,
    security: BrokerSecurity = BrokerSecurity(),
) -> None:
    """Format a node's KRaft storage once, with the cluster id every node shares.

    With SASL the SCRAM user is created here, by the broker's own storage tool
    (``--add-scram``): in KRaft the credentials live in the metadata log, which the
    brokers need before anyone could add a user through the network."""
    if (log_dirs / "meta.properties").is_file():
        return
    if not id_file.is_file():
        id_file.parent.mkdir(parents=True, exist_ok=True)
        id_file.write_text(_new_cluster_id() + "\n")
    cluster_id = id_file.read_text().strip()
    args = ["-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",  # not the full config dump
            "-cp", f"{libs}/*", "kafka.tools.StorageTool", "format",
            "--cluster-id", cluster_id, "--config", str(config)]
    if security.protocol in SASL_PROTOCOLS:
        check_scram_text(security.username, security.password)
        # the tool takes the password nowhere but in its arguments: they go in a Java
        # argument file (mode 0600, deleted after the run), so no command line shows it
        args += ["--add-scram", f"{security.mechanism}=[name={security.username},password={security.password}]"]
    log_file.parent.mkdir(parents=True, exist_ok=True)
    arg_file = config.parent / "storage-format.args"
    arg_file.unlink(missing_ok=True)
    try:
        _write_private(arg_file, "".join(_java_arg(a) + "\n" for a in args))
        with log_file.open("ab") as log:
            result = subprocess.run([java, f"@{arg_file}"], stdin=subprocess.DEVNULL, stdout=log,
                                    stderr=subprocess.STDOUT)
    finally:
        arg_file.unlink(missing_ok=True)
    if result.returncode != 0:
        raise UserError(f"formatting the Kafka storage failed; see {log_file}")


def _java_arg(text: str) -> str:
    """One argument of a Java ``@argfile``, quoted (a ``#`` outside quotes starts a comment)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)


def ensure_tls_files(directory: Path, log_file: Path) -> tuple[Path, Path]:
    """A throw-away CA and one broker certificate for 127.0.0.1/localhost, made once
    with ``openssl``: returns (broker keystore PEM: key + chain, CA PEM)."""
    keystore, ca = directory / "broker-keystore.pem", directory / "ca.pem"
    if keystore.is_file() and ca.is_file():
        return keystore, ca
    openssl = require("openssl", "Debian package openssl")
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o700)
    ext = directory / "broker.ext"
    ext.write_text(
        "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n"
        "authorityKeyIdentifier=keyid\nsubjectKeyIdentifier=hash\n"
    )
    steps = [
        ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30", "-subj", "/CN=TTHC local test CA",
         "-keyout", "ca.key", "-out", "ca.pem",
         "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"],
        ["req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", "broker.key", "-out", "broker.csr"],
        ["x509", "-req", "-in", "broker.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
         "-days", "30", "-out", "broker.crt", "-extfile", ext.name],
    ]
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("ab") as log:
        for step in steps:
            result = subprocess.run([openssl, *step], cwd=directory, stdin=subprocess.DEVNULL, stdout=log,
                                    stderr=subprocess.STDOUT)
            if result.returncode != 0:
                raise UserError(f"making the TLS certificates with openssl failed; see {log_file}")
    tmp = keystore.with_suffix(".tmp")
    tmp.write_text((directory / "broker.key").read_text() + (directory / "broker.crt").read_text() + ca.read_text())
    tmp.chmod(0o600)
    tmp.replace(keystore)  # last: its presence means every file is complete
    return keystore, ca


def broker_argv(java: str, libs: Path, config: Path) -> list[str]:
    return [
        java, "-Xmx512m", "-Djava.awt.headless=true",
        # slf4j-simple: timestamps, and no per-request noise
        "-Dorg.slf4j.simpleLogger.showDateTime=true",
        "-Dorg.slf4j.simpleLogger.dateTimeFormat=yyyy-MM-dd'T'HH:mm:ss.SSSZ",
        "-Dorg.slf4j.simpleLogger.log.kafka.request.logger=warn",
        "-cp", f"{libs}/*", "kafka.Kafka", str(config),
    ]


def probe_kafka(target: str | Settings, brokers: int = 1) -> str | None:
    """None when the cluster answers a metadata request listing ``brokers`` brokers,
    else why not. ``target``: a plain bootstrap address, or settings (their bootstrap
    servers and security). Refused credentials raise UserError: waiting cannot help."""
    from kafka import KafkaAdminClient  # import here: kafka-python is slow to import

    options = kafka_python_options(target) if isinstance(target, Settings) else {"bootstrap_servers": target}
    bootstrap = options["bootstrap_servers"]
    hosts = [part.rpartition(":") for part in bootstrap.split(",")]
    if not any(port_open(h, int(p)) for h, _, p in hosts if p.isdigit()):
        return "connection refused"  # cheap check first: a failed admin client leaks a thread
    try:
        with quiet_kafka_logs():
            admin = KafkaAdminClient(**options, bootstrap_timeout_ms=3000, request_timeout_ms=5000)
            try:
                cluster = admin.describe_cluster()
            finally:
                admin.close()
    except Exception as exc:  # any client error means "not ready yet", unless the login is refused
        if isinstance(target, Settings) and target.kafka_security_protocol != "PLAINTEXT":
            try:
                count_brokers(target, timeout_ms=5000)
            except Refused:
                raise  # a refused login or handshake: waiting longer cannot help
            except UserError:
                pass
        return f"{type(exc).__name__}: {exc}"
    seen = len(cluster.get("brokers", []))
    return None if seen >= brokers else f"{seen} of {brokers} brokers registered"


def wait_for_kafka(target: str | Settings, timeout: float, brokers: int = 1) -> None:
    """Block until the cluster at ``target`` answers metadata; UserError after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while (error := probe_kafka(target, brokers)) is not None:
        if time.monotonic() >= deadline:
            where = target if isinstance(target, str) else target.kafka_bootstrap
            raise UserError(f"Kafka at {where} not answering after {timeout:.0f}s ({error})")
        time.sleep(0.5)


def ensure_topics(
    bootstrap: str, names: list[str], partitions: int, *,
    replication: int = 1, configs: dict[str, str] | None = None, client_options: dict | None = None,
) -> list[str]:
    """Create the missing topics; returns the names created."""
    from kafka import KafkaAdminClient  # lazy: kafka-python is slow to import
    from kafka.errors import TopicAlreadyExistsError

    options = client_options or {"bootstrap_servers": bootstrap}
    with quiet_kafka_logs(), KafkaAdminClient(**options) as admin:
        missing = [name for name in names if name not in set(admin.list_topics())]
        if not missing:
            return []
        spec = {
            name: {"num_partitions": partitions, "replication_factor": replication, "configs": dict(configs or {})}
            for name in missing
        }
        try:
            admin.create_topics(spec, wait_for_metadata=True)
        except TopicAlreadyExistsError:  # a producer auto-created it meanwhile
            pass
    return missing
