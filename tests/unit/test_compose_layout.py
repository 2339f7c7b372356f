"""The production layout (deploy/compose) references only things that exist.

Docker does not run on the build machines, so the layout is never started here. This
test reads compose.yml and its env files and checks what can be checked without
Docker: every file or directory it mounts, builds from or reads exists in the
repository; every ``TTHC_*`` variable it sets is a setting of ``pipeline/config.py``
with a valid value; the pieces docs/operations.md describes are there (three KRaft brokers,
a ClickHouse server, two or more workers in one consumer group with an ``http://``
DSN, Prometheus scraping every worker, Grafana with the provisioning mounted), and
``POST /sql`` is never reachable without a token (issue 20, finding 4: a ``socat``
sidecar once forwarded the compose network to the worker's loopback port).
"""

from __future__ import annotations

import re
import socket
from dataclasses import fields
from pathlib import Path

import pytest
import yaml

from pipeline.boards.provision import CONTAINER_DASHBOARDS_DIR, PROVISIONING_DIR
from pipeline.boards.queries import WORKER_JOB
from pipeline.config import PROJECT_ROOT, Settings, env_name, load_settings
from pipeline.secrets import SECRET_NAMES
from pipeline.webguard import is_loopback, web_access
from tests.tools import required_tool

COMPOSE_DIR = PROJECT_ROOT / "deploy" / "compose"
COMPOSE = COMPOSE_DIR / "compose.yml"
SETTINGS_VARIABLES = {env_name(f.name) for f in fields(Settings)} | set(SECRET_NAMES) | {
    f"{name}_FILE" for name in SECRET_NAMES}


def _compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def _env_file(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def _as_list(value) -> list:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _mounts(service: dict) -> list[tuple[str, str]]:
    """(source, target) of each volume entry, short or long syntax."""
    out = []
    for entry in service.get("volumes", []):
        if isinstance(entry, str):
            source, target = entry.split(":")[:2]
        else:
            source, target = entry.get("source", ""), entry["target"]
        out.append((source, target))
    return out


def _interpolated(text: str) -> str:
    """Compose's ``${VAR:?message}`` with a stand-in value (the .env of an operator)."""
    return re.sub(r"\$\{(\w+)(?::?[?-][^}]*)?\}", lambda m: f"<{m.group(1)}>", text)


def test_every_referenced_file_exists():
    compose = _compose()
    checked = 0
    for name, service in compose["services"].items():
        build = service.get("build")
        if build:
            context = (COMPOSE_DIR / build["context"]).resolve()
            assert context.is_dir(), f"{name}: build context {context}"
            assert (context / build["dockerfile"]).is_file(), f"{name}: dockerfile {build['dockerfile']}"
            checked += 2
        for env_file in _as_list(service.get("env_file")):
            assert (COMPOSE_DIR / env_file).is_file(), f"{name}: env_file {env_file}"
            checked += 1
        for source, target in _mounts(service):
            if source.startswith((".", "/")):
                path = (COMPOSE_DIR / source).resolve()
                assert path.exists(), f"{name}: mounts {source} ({path}), which is not in the repository"
                assert path.is_relative_to(PROJECT_ROOT), f"{name}: {source} is outside the repository"
                checked += 1
            else:
                assert source in compose["volumes"], f"{name}: named volume {source} is not declared"
    assert checked >= 12
    # The worker image copies these from the repository root.
    dockerfile = (COMPOSE_DIR / "Dockerfile").read_text()
    for source in re.findall(r"^COPY (.+) \S+$", dockerfile, flags=re.MULTILINE):
        for item in source.split():
            assert (PROJECT_ROOT / item).exists(), f"Dockerfile copies {item}, which does not exist"


def test_every_tthc_variable_is_a_setting_with_a_valid_value():
    compose = _compose()
    text = COMPOSE.read_text()
    referenced = set(re.findall(r"\bTTHC_[A-Z0-9_]+\b", text))
    tthc_env = _env_file(COMPOSE_DIR / "tthc.env")
    referenced |= {key for key in tthc_env if key.startswith("TTHC_")}
    assert referenced, "no TTHC_ variable found"
    unknown = referenced - SETTINGS_VARIABLES
    assert not unknown, f"not settings of pipeline/config.py: {sorted(unknown)}"
    assert set(tthc_env) <= SETTINGS_VARIABLES, f"tthc.env sets unknown variables: {set(tthc_env) - SETTINGS_VARIABLES}"
    # Each worker's environment, as compose would give it, is accepted by load_settings.
    workers = {n: s for n, s in compose["services"].items() if s.get("command", [])[-1:] == ["worker"]}
    for name, service in workers.items():
        env = dict(tthc_env)
        env.update({k: _interpolated(str(v)) for k, v in (service.get("environment") or {}).items()})
        settings = load_settings(environ=env)
        assert not settings.embedded_clickhouse and settings.effective_clickhouse_dsn.startswith("http://"), name
        # the registry files are baked into the image at the same relative place
        for path in (settings.targets_file, settings.units_file):
            assert path.is_relative_to("/app")
            assert (PROJECT_ROOT / path.relative_to("/app")).is_file(), f"{name}: {path}"


def test_the_layout_has_the_documented_pieces():
    compose = _compose()
    services = compose["services"]
    kafka_env = _env_file(COMPOSE_DIR / "kafka.env")
    brokers = [n for n, s in services.items() if str(s.get("env_file")) == "kafka.env"]
    assert len(brokers) == 3
    assert set(kafka_env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}  # KRaft, no ZooKeeper
    voters = kafka_env["KAFKA_CONTROLLER_QUORUM_VOTERS"].split(",")
    assert sorted(v.split("@")[1].split(":")[0] for v in voters) == sorted(brokers)
    assert sorted(str(services[b]["environment"]["KAFKA_NODE_ID"]) for b in brokers) == sorted(v.split("@")[0] for v in voters)

    tthc_env = _env_file(COMPOSE_DIR / "tthc.env")
    workers = [n for n, s in services.items() if s.get("command", [])[-1:] == ["worker"]]
    assert len(workers) >= 2
    assert int(tthc_env["TTHC_PARTITIONS"]) >= len(workers)  # else a worker would idle
    assert all(b in tthc_env["TTHC_KAFKA_BOOTSTRAP"] for b in brokers)
    assert "clickhouse" in services and services["clickhouse"]["image"].startswith("clickhouse/clickhouse-server")

    # Prometheus scrapes every worker's own port under the job the boards query.
    prometheus = yaml.safe_load((COMPOSE_DIR / "prometheus.yml").read_text())
    (job,) = [j for j in prometheus["scrape_configs"] if j["job_name"] == WORKER_JOB]
    scraped = {tuple(t.split(":")) for c in job["static_configs"] for t in c["targets"]}
    assert scraped == {(w, tthc_env["TTHC_WEB_PORT"]) for w in workers}
    rules_mount = dict(_mounts(services["prometheus"]))["../prometheus/rules"]
    assert prometheus["rule_files"] == [f"{rules_mount}/*.yml"]

    # Grafana: the generated provisioning and the boards, where the provider looks for them.
    grafana = dict(_mounts(services["grafana"]))
    assert (COMPOSE_DIR / "../grafana/provisioning").resolve() == PROVISIONING_DIR
    assert grafana["../grafana/provisioning"] == "/etc/grafana/provisioning"
    assert grafana["../../dashboards"] == CONTAINER_DASHBOARDS_DIR
    assert "grafana-clickhouse-datasource" in services["grafana"]["environment"]["GF_INSTALL_PLUGINS"]
    assert "alertmanager" in services


def _worker_env(compose: dict, service: dict) -> dict[str, str]:
    env = _env_file(COMPOSE_DIR / "tthc.env")
    for env_file in _as_list(service.get("env_file")):
        env.update(_env_file(COMPOSE_DIR / env_file))
    env.update({k: _interpolated(str(v)) for k, v in (service.get("environment") or {}).items()})
    return env


def test_sql_is_never_reachable_without_a_token(tmp_path):
    """Whatever can reach a worker's HTTP port, POST /sql there needs a token that comes
    from a secret file: no service shares a worker's network namespace (a forwarder such
    as the old socat sidecar would reach its loopback port), no worker port is published
    on the host, and each worker bound beyond loopback reads its token from a docker
    secret, which the worker's own rules (webguard.web_access) then require."""
    compose = _compose()
    services = compose["services"]
    workers = {n: s for n, s in services.items() if s.get("command", [])[-1:] == ["worker"]}
    assert workers
    declared = compose.get("secrets") or {}
    for name, service in services.items():
        mode = str(service.get("network_mode", ""))
        assert not mode.startswith(("service:", "container:", "host")), (
            f"{name} shares the network of {mode}: it could forward to a worker's loopback /sql")
        command = " ".join(map(str, _as_list(service.get("command")) + _as_list(service.get("entrypoint"))))
        image = str(service.get("image", ""))
        assert not re.search(r"socat|nginx|haproxy|envoy|traefik|caddy", image + " " + command), (
            f"{name}: a forwarder in front of a worker")
    for name, service in workers.items():
        assert not service.get("ports"), f"{name} publishes its HTTP on the host"
        env = _worker_env(compose, service)
        assert "TTHC_SQL_TOKEN" not in env, f"{name}: a token written in the layout is no secret"
        settings = load_settings(environ={**env, "TTHC_DATA_DIR": str(tmp_path / name)})
        if is_loopback(settings.web_host):
            continue  # loopback only: the worker's generated token guards /sql (webguard)
        token_file = env.get("TTHC_SQL_TOKEN_FILE", "")
        assert token_file.startswith("/run/secrets/"), f"{name}: /sql beyond loopback without a token file"
        secret = token_file.removeprefix("/run/secrets/")
        assert secret in [s if isinstance(s, str) else s["source"] for s in service.get("secrets", [])], name
        assert "file" in declared[secret] and not str(declared[secret]["file"]).startswith("/"), secret
        # the secret file is the operator's, never in the repository
        assert "/deploy/compose/secrets/" in (PROJECT_ROOT / ".gitignore").read_text()
        # what the worker does with exactly that environment: /sql refused without the token
        stand_in = tmp_path / f"{name}-token"
        stand_in.write_text("a-stand-in-token-0123456789\n")
        access = web_access(settings, {**env, "TTHC_SQL_TOKEN_FILE": str(stand_in)})
        # in its container the worker's host name is the service's (what Prometheus and peers use)
        assert service.get("hostname") == name
        here = f"{socket.gethostname()}:{settings.web_port}"  # this machine plays the container
        for authorization in (None, "", "Bearer ", "Bearer wrong-token", "Basic a-stand-in-token-0123456789"):
            refusal = access.refusal(authorization, "application/json", here)
            assert refusal is not None and refusal.status == 401, (name, authorization)
        assert access.refusal("Bearer a-stand-in-token-0123456789", "application/json", here) is None
        assert access.refusal("Bearer a-stand-in-token-0123456789", "text/plain", here).status == 415
        with pytest.raises(Exception, match="listens beyond loopback"):
            web_access(settings, {k: v for k, v in env.items() if k != "TTHC_SQL_TOKEN_FILE"})


def test_compose_prometheus_config_passes_promtool():
    """promtool comes with the Debian package prometheus (scripts/install-system-packages.sh)."""
    import subprocess

    promtool = required_tool("promtool")
    result = subprocess.run(
        [promtool, "check", "config", str(COMPOSE_DIR / "prometheus.yml")], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
