"""``python -m pipeline infra up|down|status|fetch``: Kafka, Alertmanager and Prometheus on loopback.

Kafka is one node (service ``kafka``, folder ``kafka``) or, with ``--brokers N``, N nodes
(``kafka``, ``kafka-2`` … ``kafka-N``) forming one KRaft cluster; its clients' settings
come from :mod:`pipeline.kafka_clients`.

Everything lives under ``<data_dir>/infra``: ``run/*.pid``, ``logs/*.log``, and one folder
per service for its config and data. ``up`` is idempotent; ``down`` stops only processes
whose pid file *and* command line show this data dir started them.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import replace
from pathlib import Path

from pipeline import kafka_clients
from pipeline.config import Settings, UserError
from pipeline.infra import kafka, prometheus
from pipeline.infra.kafka import wait_for_kafka
from pipeline.infra.processes import Service, cmdline, http_ok, port_open, spawn, stop, wait_ready
from pipeline.kafka_clients import BrokerAddress

__all__ = ["down", "fetch", "run_action", "running_pids", "status", "up", "wait_for_kafka"]

# Start order: the Kafka nodes, Alertmanager, Prometheus (it alerts to Alertmanager); down reverses it.
KAFKA_TIMEOUT = 60.0
HTTP_TIMEOUT = 30.0


def _infra_dir(settings: Settings) -> Path:
    return settings.data_dir.resolve() / "infra"  # absolute: markers and pid files must not depend on cwd


def _node_dir(settings: Settings, node_id: int) -> Path:
    # node 1 keeps the single broker's folder, so a one-broker data dir stays as it was
    return _infra_dir(settings) / ("kafka" if node_id == 1 else f"kafka-{node_id}")


def _kafka_name(node_id: int) -> str:
    return "kafka" if node_id == 1 else f"kafka-{node_id}"


def _kafka_node_ids(settings: Settings) -> list[int]:
    """The configured nodes, plus any other node whose pid file is still there."""
    ids = set(range(1, settings.kafka_brokers + 1))
    for pid_file in (_infra_dir(settings) / "run").glob("kafka-*.pid"):
        suffix = pid_file.stem.removeprefix("kafka-")
        if suffix.isdigit():
            ids.add(int(suffix))
    return sorted(ids)


def _services(settings: Settings) -> dict[str, Service]:
    infra = _infra_dir(settings)
    markers = {  # argv elements unique to this data dir (see processes.Service)
        **{_kafka_name(n): str(_node_dir(settings, n) / "server.properties") for n in _kafka_node_ids(settings)},
        "alertmanager": f"--storage.path={infra / 'alertmanager' / 'data'}",
        "prometheus": f"--config.file={infra / 'prometheus' / 'prometheus.yml'}",
    }
    return {
        name: Service(name, infra / "run" / f"{name}.pid", infra / "logs" / f"{name}.log", marker)
        for name, marker in markers.items()
    }


def _say(line: str) -> None:
    print(line, flush=True)


def _nodes(settings: Settings) -> list[BrokerAddress] | None:
    address = kafka_clients.managed_address(settings.kafka_bootstrap)
    return None if address is None else kafka_clients.local_brokers(settings, address)


def _tls_dir(settings: Settings) -> Path:
    return _infra_dir(settings) / "kafka" / "tls"


def _broker_security(settings: Settings, make_files: bool = False) -> kafka.BrokerSecurity:
    protocol = settings.kafka_security_protocol
    security = kafka.BrokerSecurity(protocol=protocol, mechanism=settings.kafka_sasl_mechanism)
    if protocol in kafka_clients.SASL_PROTOCOLS:
        if not settings.kafka_sasl_mechanism.startswith("SCRAM-"):
            raise UserError("the local broker (`infra up --scram`) authenticates with SCRAM-SHA-512 or SCRAM-SHA-256;"
                            f" TTHC_KAFKA_SASL_MECHANISM is {settings.kafka_sasl_mechanism}")
        kafka_clients.check_security(settings)
        password = kafka_clients.sasl_password(settings)
        if "\n" in password or "\r" in password:
            raise UserError("the SCRAM password of the local broker must be one line")
        security = replace(security, username=settings.kafka_sasl_username, password=password)
    if protocol in kafka_clients.TLS_PROTOCOLS:
        directory = _tls_dir(settings)
        keystore, ca = (
            kafka.ensure_tls_files(directory, _infra_dir(settings) / "logs" / "openssl.log")
            if make_files else (directory / "broker-keystore.pem", directory / "ca.pem")
        )
        security = replace(security, keystore=keystore, truststore=ca)
    return security


def client_settings(settings: Settings) -> Settings:
    """The settings a client of the local brokers uses: with TLS and no
    TTHC_KAFKA_SSL_CAFILE, the CA that ``infra up --tls`` made."""
    if settings.kafka_security_protocol in kafka_clients.TLS_PROTOCOLS and not settings.kafka_ssl_cafile:
        if kafka_clients.managed_address(settings.kafka_bootstrap) is not None:
            return replace(settings, kafka_ssl_cafile=str(_tls_dir(settings) / "ca.pem"))
    return settings


def _layout(settings: Settings) -> str:
    """What a node's storage was formatted for; another layout needs fresh storage."""
    security = settings.kafka_security_protocol
    user = settings.kafka_sasl_username if security in kafka_clients.SASL_PROTOCOLS else ""
    return f"brokers={settings.kafka_brokers}\nscram-user={user}\n"


def _check_layout(settings: Settings) -> None:
    layout_file = _infra_dir(settings) / "kafka" / "layout"
    formatted = (_infra_dir(settings) / "kafka" / "data" / "meta.properties").is_file()
    if not formatted:
        return
    before = layout_file.read_text() if layout_file.is_file() else "brokers=1\nscram-user=\n"
    if before != _layout(settings):
        was = ", ".join(before.split())
        now = ", ".join(_layout(settings).split())
        raise UserError(
            f"the Kafka storage in {_infra_dir(settings)} was formatted for {was}, not {now}; "
            "run `python -m pipeline infra down` and delete its kafka* folders, or use another TTHC_DATA_DIR"
        )


def _kafka_config_text(settings: Settings, node: BrokerAddress, nodes: list[BrokerAddress]) -> str:
    return kafka.server_properties(settings, node, nodes, _node_dir(settings, node.node_id) / "data",
                                   _broker_security(settings))


def _expected_argv(settings: Settings, name: str) -> list[str]:
    """The argv (without the program) ``up`` would use now for an HTTP service."""
    infra = _infra_dir(settings)
    if name == "alertmanager":
        am = infra / "alertmanager"
        return prometheus.alertmanager_argv("", settings, am / "alertmanager.yml", am / "data")[1:]
    config = infra / "prometheus" / "prometheus.yml"
    return prometheus.prometheus_argv("", settings, config, config.parent / "data")[1:]


def _differs(settings: Settings, name: str, pid: int) -> bool:
    """True when our running instance was started with other ports/addresses than now.

    Reusing it would mean waiting on an address it does not listen on; stopping it could
    hit someone's demo (same data dir, other ports). Only the operator can decide.
    """
    if not name.startswith("kafka"):
        return cmdline(pid)[1:] != _expected_argv(settings, name)
    nodes = _nodes(settings)
    node = next((n for n in nodes or [] if _kafka_name(n.node_id) == name), None)
    if node is None:
        return True
    config = Path(_services(settings)[name].marker)
    return not config.is_file() or config.read_text() != _kafka_config_text(settings, node, nodes)


def _check_free(what: str, port: int) -> None:
    if port_open("127.0.0.1", port):
        raise UserError(
            f"{what}: port {port} is already in use by a process not started from this data dir"
        )


def _alertmanager_binary() -> str:
    # Debian names it prometheus-alertmanager; upstream tarballs say alertmanager.
    return shutil.which("prometheus-alertmanager") or kafka.require(
        "alertmanager", "Debian package prometheus-alertmanager"
    )


def fetch(settings: Settings) -> Path:
    """Only the Kafka jars (``make setup``), so a first ``up`` needs no network."""
    libs = kafka.ensure_jars(settings.data_dir.resolve(), _infra_dir(settings) / "logs" / "maven.log")
    _say(f"kafka: jars ready in {libs}")
    return libs


def up(settings: Settings, kafka_only: bool = False) -> None:
    """Start what is not running yet (``kafka_only``: just the Kafka nodes, e.g. a
    test's own cluster, which needs no Prometheus)."""
    services = _services(settings)
    if kafka_only:
        services = {name: service for name, service in services.items() if name.startswith("kafka")}
    pids = {name: service.pid() for name, service in services.items()}
    for name, pid in pids.items():
        if pid is not None and _differs(settings, name, pid):
            raise UserError(
                f"{name}: running (pid {pid}) with other ports, addresses, brokers or security than the current"
                " settings; run `python -m pipeline infra down` first"
            )
    nodes = _nodes(settings)
    # Look up every program before starting anything, so a missing one leaves nothing half-up.
    java = prom = am = ""
    if nodes is not None and any(pids[_kafka_name(n.node_id)] is None for n in nodes):
        java = kafka.require("java", "needs openjdk-17")
    if not kafka_only and pids["prometheus"] is None:
        prom = _prometheus_binary()
    if not kafka_only and pids["alertmanager"] is None:
        am = _alertmanager_binary()
    _up_kafka(settings, services, nodes, java)
    if not kafka_only:
        _up_alertmanager(settings, services["alertmanager"], am)
        _up_prometheus(settings, services["prometheus"], prom)


def _prometheus_binary() -> str:
    return kafka.require("prometheus", "Debian package prometheus")


def _up_kafka(settings: Settings, services: dict[str, Service], nodes: list[BrokerAddress] | None, java: str) -> None:
    if nodes is None:
        _say(f"kafka: {settings.kafka_bootstrap} is not on this machine; not managed here")
        return
    infra = _infra_dir(settings)
    started: dict[str, int] = {}
    pids: dict[str, int] = {}
    waiting = [n for n in nodes if services[_kafka_name(n.node_id)].pid() is None]
    if waiting:
        _check_layout(settings)
        for node in waiting:
            _check_free(_kafka_name(node.node_id), node.port)
            _check_free(f"{_kafka_name(node.node_id)} controller", node.controller_port)
        libs = kafka.ensure_jars(settings.data_dir.resolve(), infra / "logs" / "maven.log")
        security = _broker_security(settings, make_files=True)
        for node in waiting:
            name = _kafka_name(node.node_id)
            service = services[name]
            node_dir = _node_dir(settings, node.node_id)
            node_dir.mkdir(parents=True, exist_ok=True)
            config = Path(service.marker)
            config.touch(mode=0o600)  # it may hold the brokers' SCRAM password
            config.chmod(0o600)
            config.write_text(_kafka_config_text(settings, node, nodes))
            kafka.ensure_formatted(java, libs, config, infra / "kafka" / "cluster-id", node_dir / "data",
                                   infra / "logs" / f"{name}-format.log", security)
            started[name] = pids[name] = spawn(service, kafka.broker_argv(java, libs, config), cwd=node_dir)
        (infra / "kafka" / "layout").write_text(_layout(settings))
    for node in nodes:
        name = _kafka_name(node.node_id)
        pids.setdefault(name, services[name].pid())
    clients = client_settings(settings)
    t0 = time.monotonic()
    for node in nodes:  # each node answers by itself, then the cluster lists them all
        name = _kafka_name(node.node_id)
        alone = replace(clients, kafka_bootstrap=node.address, kafka_brokers=1)
        expect = len(nodes) if node is nodes[-1] else 1
        try:
            wait_ready(services[name], pids[name], lambda: kafka.probe_kafka(alone, expect) is None, KAFKA_TIMEOUT,
                       just_started=name in started)
        except kafka_clients.Refused as exc:
            raise UserError(f"{exc} (was the storage in {infra} formatted with other SCRAM credentials? "
                            "then `infra down` and delete its kafka* folders)") from None
    for node in nodes:
        name = _kafka_name(node.node_id)
        if name in started:
            what = f"started on {node.address} (pid {pids[name]}, ready in {time.monotonic() - t0:.1f}s)"
        else:
            what = f"already running on {node.address} (pid {pids[name]})"
        _say(f"{name}: {what}")
    clients = kafka_clients.preflight(clients)
    policy = kafka_clients.topic_policy(clients)
    created = []
    for topic, configs in ((settings.topic, kafka_clients.topic_configs(clients)),
                           (settings.dlq_topic, kafka_clients.dlq_topic_configs(clients)),
                           (settings.dvcqg_topic, kafka_clients.topic_configs(clients)),
                           (settings.dvcqg_dlq_topic, kafka_clients.dlq_topic_configs(clients))):
        created += kafka.ensure_topics(
            clients.kafka_bootstrap, [topic], settings.partitions, replication=policy.replication, configs=configs,
            client_options=kafka_clients.kafka_python_options(clients),
        )
    if created:
        _say(f"kafka: created topics {', '.join(created)} ({settings.partitions} partitions, "
             f"replication {policy.replication}, min.insync.replicas {policy.min_insync})")
    if settings.kafka_security_protocol != "PLAINTEXT":
        hint = f"TTHC_KAFKA_SECURITY_PROTOCOL={settings.kafka_security_protocol}"
        if clients.kafka_ssl_cafile != settings.kafka_ssl_cafile:
            hint += f" TTHC_KAFKA_SSL_CAFILE={clients.kafka_ssl_cafile}"
        _say(f"kafka: clients need {hint}" + (" and the SASL user and password" if
                                              settings.kafka_security_protocol in kafka_clients.SASL_PROTOCOLS else ""))


def _up_alertmanager(settings: Settings, service: Service, binary: str) -> None:
    url = f"http://127.0.0.1:{settings.alertmanager_port}"
    storage = _infra_dir(settings) / "alertmanager" / "data"
    config = storage.parent / "alertmanager.yml"
    text = prometheus.render_alertmanager_config(settings)
    pid = service.pid()
    started = pid is None
    verb = "started" if started else "already running"
    if pid is None:
        _check_free("alertmanager", settings.alertmanager_port)
        storage.mkdir(parents=True, exist_ok=True)
        config.write_text(text)
        pid = spawn(service, prometheus.alertmanager_argv(binary, settings, config, storage), cwd=storage.parent)
    wait_ready(service, pid, lambda: http_ok(f"{url}/-/ready"), HTTP_TIMEOUT, just_started=started)
    if not config.is_file() or config.read_text() != text:  # e.g. another TTHC_WEBHOOK_PORT
        config.write_text(text)
        if not http_ok(f"{url}/-/reload", method="POST"):
            raise UserError(f"alertmanager: reloading {config} failed; see {service.log_file}")
        verb += " (config reloaded)"
    _say(f"alertmanager: {verb} on 127.0.0.1:{settings.alertmanager_port} (pid {pid})")


def _up_prometheus(settings: Settings, service: Service, binary: str) -> None:
    url = f"http://127.0.0.1:{settings.prometheus_port}"
    config = _infra_dir(settings) / "prometheus" / "prometheus.yml"
    text = prometheus.render_prometheus_config(settings)
    pid = service.pid()
    started = pid is None
    verb = "started" if started else "already running"
    if pid is None:
        _check_free("prometheus", settings.prometheus_port)
        storage = config.parent / "data"
        storage.mkdir(parents=True, exist_ok=True)
        config.write_text(text)
        pid = spawn(service, prometheus.prometheus_argv(binary, settings, config, storage), cwd=config.parent)
    wait_ready(service, pid, lambda: http_ok(f"{url}/-/ready"), HTTP_TIMEOUT, just_started=started)
    if config.read_text() != text:  # e.g. another TTHC_WEB_PORT: a reload, not a restart
        config.write_text(text)
        if not http_ok(f"{url}/-/reload", method="POST"):
            raise UserError(f"prometheus: reloading {config} failed; see {service.log_file}")
        verb += " (config reloaded)"
    _say(f"prometheus: {verb} on 127.0.0.1:{settings.prometheus_port} (pid {pid})")


def down(settings: Settings) -> None:
    # By pid file, not by address: a broker we started is stopped even if the
    # bootstrap setting has since moved elsewhere.
    services = _services(settings)
    kafka_names = [name for name in services if name.startswith("kafka")]
    for name in ["prometheus", "alertmanager", *reversed(kafka_names)]:  # the start order, reversed
        pid = stop(services[name], timeout=30.0 if name.startswith("kafka") else 15.0)
        if name.startswith("kafka") and name != "kafka" and pid is None:
            continue  # a node of a cluster that is not configured nor running: nothing to say
        _say(f"{name}: stopped (pid {pid})" if pid else f"{name}: not running")


def running_pids(settings: Settings) -> dict[str, int | None]:
    return {name: service.pid() for name, service in _services(settings).items()}


def _report(settings: Settings) -> list[tuple[str, bool, str]]:
    pids = running_pids(settings)
    rows: list[tuple[str, bool, str]] = []
    nodes = {_kafka_name(n.node_id): n for n in _nodes(settings) or []}
    for name in [n for n in pids if n.startswith("kafka")] + ["alertmanager", "prometheus"]:
        pid = pids[name]
        if name == "kafka" and pid is None and not nodes:
            # a metadata answer, not a TCP connect: some networks accept any connect
            address = settings.kafka_bootstrap
            try:
                error = kafka.probe_kafka(client_settings(settings))
            except UserError as exc:
                error = str(exc)
            text = "answering" if error is None else f"not answering ({error})"
            rows.append((name, error is None, f"external {address} (not managed here), {text}"))
            continue
        if name.startswith("kafka"):
            node = nodes.get(name)
            address = node.address if node else "not configured now"
            if node is not None:
                address += f", controller 127.0.0.1:{node.controller_port}"
                if name == "kafka" and settings.kafka_security_protocol != "PLAINTEXT":
                    address += f", {settings.kafka_security_protocol}"
        else:
            address = f"127.0.0.1:{getattr(settings, name + '_port')}"
        if pid is None:
            rows.append((name, False, f"stopped ({address})"))
        elif _differs(settings, name, pid):
            rows.append((name, False, f"running (pid {pid}) but not as configured now ({address}); `infra down` first"))
        else:
            rows.append((name, True, f"running on {address} (pid {pid})"))
    return rows


def status(settings: Settings) -> dict[str, bool]:
    return {name: ok for name, ok, _ in _report(settings)}


def run_action(settings: Settings, action: str) -> int:
    if action == "up":
        up(settings)
        return 0
    if action == "down":
        down(settings)
        return 0
    if action == "fetch":
        fetch(settings)
        return 0
    if action == "status":
        rows = _report(settings)
        for name, _, text in rows:
            print(f"{name}: {text}")
        return 0 if all(ok for _, ok, _ in rows) else 3
    raise UserError(f"unknown infra action {action!r} (use up, down, status or fetch)")
