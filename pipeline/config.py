"""One settings object, built from ``TTHC_*`` environment variables.

Every variable has a documented default (README, "Configuration"); command-line
flags override them through :func:`load_settings`'s ``overrides``. A bad value
raises :class:`ConfigError`, which the CLI prints as one line.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Mapping

from pipeline.core.localtime import days_us

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class UserError(Exception):
    """A problem the operator can fix; the CLI prints it as one line, no traceback."""


class ConfigError(UserError, ValueError):
    """A configuration value or command-line argument is unusable."""


def read_config_file(path: str | os.PathLike[str], what: str, error: type[Exception] = UserError) -> bytes:
    """The bytes of the ``what`` file (targets, units, ...); a missing, unreadable file or a
    directory raises ``error`` with one line naming the path."""
    p = Path(path)
    try:
        return p.read_bytes()
    except FileNotFoundError:
        raise error(f"{p}: {what} file not found") from None
    except IsADirectoryError:
        raise error(f"{p}: is a directory, not a {what} file") from None
    except PermissionError:
        raise error(f"{p}: permission denied") from None


def positive_int(name: str, raw: str) -> int:
    """``raw`` as a positive integer, or :class:`ConfigError` naming ``name`` (also the CLI's flags)."""
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None
    if value <= 0:
        raise ConfigError(f"{name} must be positive, got {value}")
    return value


def positive_float(name: str, raw: str) -> float:
    """``raw`` as a positive number, or :class:`ConfigError` naming ``name`` (also the CLI's flags)."""
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from None
    if value <= 0:
        raise ConfigError(f"{name} must be positive, got {value}")
    return value


def _lead(name: str, raw: str) -> int:
    """A number of working days from 0 to 30."""
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number of working days, got {raw!r}") from None
    if not 0 <= value <= 30:
        raise ConfigError(f"{name} must be from 0 to 30 working days, got {value}")
    return value


def _port(name: str, raw: str) -> int:
    value = positive_int(name, raw)
    if value > 65535:
        raise ConfigError(f"{name} must be a TCP port (1-65535), got {value}")
    return value


def _choice(*allowed: str):
    def parse(name: str, raw: str) -> str:
        if raw not in allowed:
            raise ConfigError(f"{name} must be one of {', '.join(allowed)}; got {raw!r}")
        return raw

    return parse


def _text(name: str, raw: str) -> str:
    if not raw.strip():
        raise ConfigError(f"{name} must not be empty")
    return raw.strip()


def _path(name: str, raw: str) -> Path:
    return Path(_text(name, raw)).expanduser()


def _auto_or_positive(name: str, raw: str) -> str:
    text = raw.strip().lower()
    if text == "auto":
        return text
    return str(positive_int(name, text))


def _optional(name: str, raw: str) -> str:
    return raw.strip()


def _secret(name: str, raw: str) -> str:
    return raw  # taken as it is; never echoed in an error


@dataclass(frozen=True)
class Settings:
    """All configuration of the pipeline. Field ``x`` comes from ``TTHC_X``."""

    data_dir: Path = Path("./var")
    kafka_bootstrap: str = "127.0.0.1:19092"
    kafka_controller_port: int = 19094
    topic: str = "tthc.case-events"
    partitions: int = 4
    app_id: str = "tthc-pipeline"
    clickhouse_dsn: str = ""  # empty: chdb:///<data_dir>/clickhouse
    clock: str = "wall"
    web_port: int = 6066
    web_host: str = "127.0.0.1"  # beyond loopback only with TTHC_SQL_TOKEN (pipeline/stream/webguard.py)
    sql_max_seconds: float = 120.0  # POST /sql: the engine's max_execution_time
    sql_max_rows: int = 1_000_000  # POST /sql: max_result_rows
    sql_max_bytes: int = 512 * 1024 * 1024  # POST /sql: max_result_bytes
    prometheus_port: int = 19090
    alertmanager_port: int = 19093
    webhook_port: int = 5001  # where the local Alertmanager's webhook receivers post
    rules_dir: Path = PROJECT_ROOT / "deploy" / "prometheus" / "rules"
    dedupe_retention_days: int = 35
    hold_retention_days: int = 35
    batch_size: int = 5000
    flush_interval: float = 1.0
    snapshot_interval: float = 60.0
    session_timeout: float = 15.0
    targets_file: Path = PROJECT_ROOT / "deploy" / "targets.toml"
    # apology_coverage v1.2: an apology counts when dated by the end of the working day this
    # many working days before the effective due (docs/indicators.md; 0 = the due date itself)
    apology_lead: int = 1
    units_file: Path = PROJECT_ROOT / "deploy" / "units.csv"
    # Kafka cluster and client security (pipeline/kafka_clients.py uses them all)
    kafka_brokers: int = 1  # brokers `infra up` runs on loopback; clients bootstrap from all of them
    kafka_extra_port_base: int = 19100  # broker n >= 2 listens on base + 2(n-2), its controller on the next port
    kafka_replication: str = "auto"  # replication factor of the topics we create; auto = min(3, brokers)
    kafka_min_insync: str = "auto"  # their min.insync.replicas; auto = 2 with 3+ replicas, else 1
    kafka_security_protocol: str = "PLAINTEXT"
    kafka_sasl_mechanism: str = "SCRAM-SHA-512"
    kafka_sasl_username: str = ""
    kafka_sasl_password: str = field(default="", repr=False)
    kafka_sasl_password_file: str = ""
    kafka_ssl_cafile: str = ""
    kafka_ssl_certfile: str = ""
    kafka_ssl_keyfile: str = ""

    @property
    def hold_retention_us(self) -> int:
        return days_us(self.hold_retention_days)

    @property
    def dlq_topic(self) -> str:
        return f"{self.topic}.dlq"

    @property
    def effective_clickhouse_dsn(self) -> str:
        if self.clickhouse_dsn:
            # a server's password may come apart, from TTHC_CLICKHOUSE_PASSWORD(_FILE)
            from pipeline.secrets import read_secret, with_password

            return with_password(self.clickhouse_dsn, read_secret("TTHC_CLICKHOUSE_PASSWORD"))
        return f"chdb://{(self.data_dir / 'clickhouse').resolve()}"

    @property
    def embedded_clickhouse(self) -> bool:
        return self.effective_clickhouse_dsn.startswith("chdb:")

    @property
    def web_url(self) -> str:
        """Where local commands reach the worker (loopback when it binds every address)."""
        host = self.web_host
        if host in ("0.0.0.0", "::", "*", "localhost"):
            host = "127.0.0.1"
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.web_port}"


_PARSERS = {
    "data_dir": _path,
    "kafka_bootstrap": _text,
    "kafka_controller_port": _port,
    "topic": _text,
    "partitions": positive_int,
    "app_id": _text,
    "clickhouse_dsn": lambda name, raw: raw.strip(),
    "clock": _choice("wall", "event"),
    "web_port": _port,
    "web_host": _text,
    "sql_max_seconds": positive_float,
    "sql_max_rows": positive_int,
    "sql_max_bytes": positive_int,
    "prometheus_port": _port,
    "alertmanager_port": _port,
    "webhook_port": _port,
    "rules_dir": _path,
    "dedupe_retention_days": positive_int,
    "hold_retention_days": positive_int,
    "batch_size": positive_int,
    "flush_interval": positive_float,
    "snapshot_interval": positive_float,
    "session_timeout": positive_float,
    "targets_file": _path,
    "apology_lead": _lead,
    "units_file": _path,
    "kafka_brokers": positive_int,
    "kafka_extra_port_base": _port,
    "kafka_replication": _auto_or_positive,
    "kafka_min_insync": _auto_or_positive,
    "kafka_security_protocol": _choice("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"),
    "kafka_sasl_mechanism": _choice("SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"),
    "kafka_sasl_username": _optional,
    "kafka_sasl_password": _secret,
    "kafka_sasl_password_file": _optional,
    "kafka_ssl_cafile": _optional,
    "kafka_ssl_certfile": _optional,
    "kafka_ssl_keyfile": _optional,
}


def env_name(field_name: str) -> str:
    return "TTHC_" + field_name.upper()


def load_settings(
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Settings from ``environ`` (default ``os.environ``), then ``overrides`` (CLI flags).

    Overrides whose value is ``None`` are ignored, so argparse defaults of ``None``
    leave the environment's value in place.
    """
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for f in fields(Settings):
        raw = environ.get(env_name(f.name))
        if raw is not None:
            values[f.name] = _PARSERS[f.name](env_name(f.name), raw)
    for key, value in (overrides or {}).items():
        if value is None:
            continue
        if key not in _PARSERS:
            raise ConfigError(f"unknown setting {key!r}")
        values[key] = _PARSERS[key](f"--{key.replace('_', '-')}", str(value))
    return replace(Settings(), **values)
