"""``python -m pipeline infra up|down|status|fetch``: Kafka, Alertmanager and Prometheus on loopback.

Everything lives under ``<data_dir>/infra``: ``run/*.pid``, ``logs/*.log``, and one folder
per service for its config and data. ``up`` is idempotent; ``down`` stops only processes
whose pid file *and* command line show this data dir started them.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from pipeline.config import Settings, UserError
from pipeline.infra import kafka, prometheus
from pipeline.infra.kafka import wait_for_kafka
from pipeline.infra.processes import Service, cmdline, http_ok, port_open, spawn, stop, wait_ready

__all__ = ["down", "fetch", "run_action", "running_pids", "status", "up", "wait_for_kafka"]

ORDER = ("kafka", "alertmanager", "prometheus")  # start order (Prometheus alerts to Alertmanager); down reverses it
KAFKA_TIMEOUT = 60.0
HTTP_TIMEOUT = 30.0


def _infra_dir(settings: Settings) -> Path:
    return settings.data_dir.resolve() / "infra"  # absolute: markers and pid files must not depend on cwd


def _services(settings: Settings) -> dict[str, Service]:
    infra = _infra_dir(settings)
    markers = {  # argv elements unique to this data dir (see processes.Service)
        "kafka": str(infra / "kafka" / "server.properties"),
        "alertmanager": f"--storage.path={infra / 'alertmanager' / 'data'}",
        "prometheus": f"--config.file={infra / 'prometheus' / 'prometheus.yml'}",
    }
    return {
        name: Service(name, infra / "run" / f"{name}.pid", infra / "logs" / f"{name}.log", marker)
        for name, marker in markers.items()
    }


def _say(line: str) -> None:
    print(line, flush=True)


def _kafka_config_text(settings: Settings, address: tuple[str, int]) -> str:
    return kafka.server_properties(settings, *address, _infra_dir(settings) / "kafka" / "data")


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
    if name != "kafka":
        return cmdline(pid)[1:] != _expected_argv(settings, name)
    address = kafka.managed_address(settings.kafka_bootstrap)
    config = Path(_services(settings)["kafka"].marker)
    return address is None or not config.is_file() or config.read_text() != _kafka_config_text(settings, address)


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


def up(settings: Settings) -> None:
    services = _services(settings)
    pids = {name: service.pid() for name, service in services.items()}
    for name, pid in pids.items():
        if pid is not None and _differs(settings, name, pid):
            raise UserError(
                f"{name}: running (pid {pid}) with other ports or addresses than the current settings;"
                " run `python -m pipeline infra down` first"
            )
    address = kafka.managed_address(settings.kafka_bootstrap)
    # Look up every program before starting anything, so a missing one leaves nothing half-up.
    java = prom = am = ""
    if address is not None and pids["kafka"] is None:
        java = kafka.require("java", "needs openjdk-17")
    if pids["prometheus"] is None:
        prom = kafka.require("prometheus", "Debian package prometheus")
    if pids["alertmanager"] is None:
        am = _alertmanager_binary()
    _up_kafka(settings, services["kafka"], address, java)
    _up_alertmanager(settings, services["alertmanager"], am)
    _up_prometheus(settings, services["prometheus"], prom)


def _up_kafka(settings: Settings, service: Service, address: tuple[str, int] | None, java: str) -> None:
    if address is None:
        _say(f"kafka: {settings.kafka_bootstrap} is not on this machine; not managed here")
        return
    host, port = address
    bootstrap = f"{host}:{port}"
    pid = service.pid()
    started = pid is None
    if pid is None:
        _check_free("kafka", port)
        _check_free("kafka controller", settings.kafka_controller_port)
        infra = _infra_dir(settings)
        libs = kafka.ensure_jars(settings.data_dir.resolve(), infra / "logs" / "maven.log")
        kafka_dir = infra / "kafka"
        kafka_dir.mkdir(parents=True, exist_ok=True)
        config = Path(service.marker)
        config.write_text(_kafka_config_text(settings, address))
        kafka.ensure_formatted(java, libs, config, kafka_dir, kafka_dir / "data", infra / "logs" / "kafka-format.log")
        pid = spawn(service, kafka.broker_argv(java, libs, config), cwd=kafka_dir)
    t0 = time.monotonic()
    wait_ready(service, pid, lambda: kafka.probe_kafka(bootstrap) is None, KAFKA_TIMEOUT, just_started=started)
    what = f"started on {bootstrap} (pid {pid}, ready in {time.monotonic() - t0:.1f}s)" if started else \
        f"already running on {bootstrap} (pid {pid})"
    _say(f"kafka: {what}")
    created = kafka.ensure_topics(bootstrap, [settings.topic, settings.dlq_topic], settings.partitions)
    if created:
        _say(f"kafka: created topics {', '.join(created)} ({settings.partitions} partitions)")


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
    for name in reversed(ORDER):
        pid = stop(services[name], timeout=30.0 if name == "kafka" else 15.0)
        _say(f"{name}: stopped (pid {pid})" if pid else f"{name}: not running")


def running_pids(settings: Settings) -> dict[str, int | None]:
    return {name: service.pid() for name, service in _services(settings).items()}


def _report(settings: Settings) -> list[tuple[str, bool, str]]:
    pids = running_pids(settings)
    rows: list[tuple[str, bool, str]] = []
    for name in ORDER:
        pid = pids[name]
        if name == "kafka":
            address = settings.kafka_bootstrap
            if pid is None and kafka.managed_address(address) is None:
                # a metadata answer, not a TCP connect: some networks accept any connect
                error = kafka.probe_kafka(address)
                text = "answering" if error is None else f"not answering ({error})"
                rows.append((name, error is None, f"external {address} (not managed here), {text}"))
                continue
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
