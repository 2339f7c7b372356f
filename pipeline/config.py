"""One settings object, built from ``TTHC_*`` environment variables.

Every variable has a documented default (docs/configuration.md); command-line
flags override them through :func:`load_settings`'s ``overrides``. A bad value
raises :class:`ConfigError`, which the CLI prints as one line.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Annotated, Any, Callable, Mapping, get_origin, get_type_hints

from pipeline.contract.localtime import days_us
from pipeline.errors import ConfigError, UserError  # re-exported: the names every layer imported from here
from pipeline.secrets import read_secret, with_password

PROJECT_ROOT = Path(__file__).resolve().parent.parent


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


Port = Annotated[int, _port]
MaybeEmpty = Annotated[str, _optional]
AutoOrPositive = Annotated[str, _auto_or_positive]
_BY_TYPE: dict[Any, Callable[[str, str], Any]] = {int: positive_int, float: positive_float, str: _text, Path: _path}


@dataclass(frozen=True)
class Settings:
    """All configuration of the pipeline. Field ``x`` comes from ``TTHC_X``, read by the parser
    its type names: ``Annotated[T, parser]``, else ``int``/``float`` positive, ``str`` non-empty,
    ``Path`` (the one list of settings: no table beside it to keep in step)."""

    data_dir: Path = Path("./var")
    kafka_bootstrap: str = "127.0.0.1:19092"
    kafka_controller_port: Port = 19094
    topic: str = "tthc.case-events"
    partitions: int = 4
    app_id: str = "tthc-pipeline"
    clickhouse_dsn: MaybeEmpty = ""  # empty: chdb:///<data_dir>/clickhouse
    clock: Annotated[str, _choice("wall", "event")] = "wall"
    web_port: Port = 6066
    web_host: str = "127.0.0.1"  # beyond loopback only with TTHC_SQL_TOKEN (pipeline/webguard.py)
    sql_max_seconds: float = 30.0  # POST /sql: the engine's max_execution_time
    sql_max_rows: int = 100_000  # POST /sql: max_result_rows
    sql_max_bytes: int = 64 * 1024 * 1024  # POST /sql: max_result_bytes
    sql_max_memory: int = 1024 * 1024 * 1024  # POST /sql: max_memory_usage
    prometheus_port: Port = 19090
    alertmanager_port: Port = 19093
    webhook_port: Port = 5001  # where the local Alertmanager's webhook receivers post
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
    apology_lead: Annotated[int, _lead] = 1  # working days before the due an apology must be dated (indicators.md v1.2)
    units_file: Path = PROJECT_ROOT / "deploy" / "units.csv"
    # Kafka cluster and client security (pipeline/kafka_clients.py uses them all)
    kafka_brokers: int = 1  # brokers `infra up` runs on loopback; clients bootstrap from all of them
    kafka_extra_port_base: Port = 19100  # broker n >= 2 listens on base + 2(n-2), its controller on the next port
    kafka_replication: AutoOrPositive = "auto"  # replication factor of the topics we create; auto = min(3, brokers)
    kafka_min_insync: AutoOrPositive = "auto"  # their min.insync.replicas; auto = 2 with 3+ replicas, else 1
    kafka_security_protocol: Annotated[str, _choice("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")] = (
        "PLAINTEXT"
    )
    kafka_sasl_mechanism: Annotated[str, _choice("SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN")] = "SCRAM-SHA-512"
    kafka_sasl_username: MaybeEmpty = ""
    kafka_sasl_password: Annotated[str, _secret] = field(default="", repr=False)
    kafka_sasl_password_file: MaybeEmpty = ""
    kafka_ssl_cafile: MaybeEmpty = ""
    kafka_ssl_certfile: MaybeEmpty = ""
    kafka_ssl_keyfile: MaybeEmpty = ""
    # the DVCQG intake (pipeline/intake, docs/intake.md)
    dvcqg_topic: str = "tthc.dvcqg-records"
    intake_host: str = "127.0.0.1"  # beyond loopback only over TLS (TTHC_INTAKE_TLS_CERT / _KEY)
    intake_port: Port = 6070
    intake_accounts_file: MaybeEmpty = ""  # one `username password` per line; a secret file, never in the repository
    intake_tls_cert: MaybeEmpty = ""
    intake_tls_key: MaybeEmpty = ""
    intake_session_seconds: float = 1800.0  # a session expires this long after its login
    intake_max_bytes: int = 8 * 1024 * 1024  # a call's body larger than this is refused
    procedures_file: Path = PROJECT_ROOT / "deploy" / "procedures.csv"

    @property
    def hold_retention_us(self) -> int:
        return days_us(self.hold_retention_days)

    @property
    def dlq_topic(self) -> str:
        return f"{self.topic}.dlq"

    @property
    def dvcqg_dlq_topic(self) -> str:
        return f"{self.dvcqg_topic}.dlq"

    @property
    def effective_clickhouse_dsn(self) -> str:
        if self.clickhouse_dsn:
            # a server's password may come apart, from TTHC_CLICKHOUSE_PASSWORD(_FILE)
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


def _parser(hint: Any) -> Callable[[str, str], Any]:
    return hint.__metadata__[0] if get_origin(hint) is Annotated else _BY_TYPE[hint]


_PARSERS = {name: _parser(hint) for name, hint in get_type_hints(Settings, include_extras=True).items()}


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
