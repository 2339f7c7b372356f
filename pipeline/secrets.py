"""Secrets: read only from the environment or from files, and kept out of every output.

A secret ``TTHC_X`` is given either as the variable itself or as ``TTHC_X_FILE``, the
path of a file holding it (Docker/Kubernetes secrets, systemd credentials); the file's
content is stripped of surrounding whitespace. Both at once is a configuration error.
A secret is one line (a file with two non-empty lines is refused, so what is used is
exactly what is redacted) of at least :data:`MIN_CHARS` characters (a shorter one is
refused: it could not be redacted without wrecking every log line). Every secret of the
pipeline is read through :func:`secret_text`, the one rule.

Every secret value read here is remembered in :data:`KNOWN`, and :func:`redact` replaces
each of them (and a password in any URL) by ``***``. The worker runs every log record,
``/healthz`` answer and error message it sends through :func:`redact`
(:func:`install_log_redaction`), so a secret that slips into an exception text (a DSN
in a driver's message, say) is still never shown.

The secrets: ``TTHC_SQL_TOKEN`` (bearer token of the worker's ``POST /sql``),
``TTHC_CLICKHOUSE_PASSWORD`` (merged into an ``http(s)://`` DSN; a password written in
``TTHC_CLICKHOUSE_DSN`` itself is also treated as a secret), ``TTHC_KAFKA_SASL_PASSWORD``,
and ``grafana provision``'s ``TTHC_GRAFANA_TOKEN`` and ``TTHC_GRAFANA_CLICKHOUSE_URL``.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Mapping
from urllib.parse import quote, urlparse, urlunparse

from pipeline.errors import ConfigError

__all__ = ["KNOWN", "MIN_CHARS", "SECRET_NAMES", "read_secret", "remember", "redact", "install_log_redaction",
           "secret_text", "with_password"]

SECRET_NAMES = (
    "TTHC_SQL_TOKEN",
    "TTHC_CLICKHOUSE_PASSWORD",
    "TTHC_KAFKA_SASL_PASSWORD",
    "TTHC_GRAFANA_TOKEN",  # `grafana provision`: the service account token
    "TTHC_GRAFANA_CLICKHOUSE_URL",  # `grafana provision`: the ClickHouse URL Grafana uses, with its password
)
KNOWN: set[str] = set()
MASK = "***"
MIN_CHARS = 4
_URL_PASSWORD = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<user>[^:/@\s]*):(?P<password>[^@/\s]+)@")


def remember(value: str | None) -> str | None:
    """Treat ``value`` as a secret from now on (too short to be one: ignored)."""
    if value and len(value) >= MIN_CHARS:
        KNOWN.add(value)
        encoded = quote(value, safe="")
        if encoded != value:
            KNOWN.add(encoded)
    return value


def secret_text(name: str, text: str, source: str | None = None) -> str:
    """The secret ``name`` given as ``text`` (read from the file ``source``, if any):
    stripped, one line, at least :data:`MIN_CHARS` characters, and remembered.
    ``ConfigError`` (never quoting it) otherwise."""
    where = f"{name}_FILE: {source}" if source is not None else name
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        raise ConfigError(f"{where} is empty" if source is not None else f"{name} must not be empty")
    if len(lines) > 1:
        raise ConfigError(f"{where} holds {len(lines)} non-empty lines; a secret is one line")
    value = text.strip()
    if len(value) < MIN_CHARS:
        raise ConfigError(f"{where}: the secret is shorter than {MIN_CHARS} characters (too short to keep out of logs)")
    return remember(value)


def read_secret(name: str, environ: Mapping[str, str] | None = None) -> str | None:
    """The secret ``name`` from ``name`` or the file named by ``name_FILE``; None if neither."""
    environ = os.environ if environ is None else environ
    direct = environ.get(name)
    path = environ.get(f"{name}_FILE")
    if direct is not None and path is not None:
        raise ConfigError(f"set {name} or {name}_FILE, not both")
    if path is not None:
        try:
            text = Path(path).expanduser().read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = getattr(exc, "strerror", None) or type(exc).__name__
            raise ConfigError(f"{name}_FILE: cannot read {path} ({reason})") from None
        return secret_text(name, text, path)
    if direct is None:
        return None
    return secret_text(name, direct)


def with_password(dsn: str, password: str | None) -> str:
    """``dsn`` with ``password`` set (an ``http(s)://`` DSN); the DSN's own password is
    remembered as a secret either way."""
    try:
        parsed = urlparse(dsn)
    except ValueError:
        return dsn
    if parsed.password:
        secret_text("the password in TTHC_CLICKHOUSE_DSN", parsed.password)
    remember(password)
    if not password or parsed.scheme.lower() not in ("http", "https") or not parsed.hostname:
        return dsn
    user = parsed.username or "default"
    host = parsed.hostname + (f":{parsed.port}" if parsed.port else "")
    return urlunparse(parsed._replace(netloc=f"{quote(user, safe='')}:{quote(password, safe='')}@{host}"))


def redact(text: str) -> str:
    """``text`` with every known secret and any URL password replaced by ``***``."""
    if not text:
        return text
    text = _URL_PASSWORD.sub(lambda m: f"{m['scheme']}{m['user']}:{MASK}@", text)
    for secret in sorted(KNOWN, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, MASK)
    return text


class RedactingLogRecord(logging.LogRecord):
    """A log record whose message, traceback and stack text come out redacted.

    Lazy: only a record that a handler actually formats pays for it (libraries such
    as aiokafka create DEBUG records holding whole message values)."""

    def getMessage(self) -> str:
        return redact(super().getMessage())

    @property
    def exc_text(self):  # set by Formatter.format from the traceback
        return self.__dict__.get("_exc_text")

    @exc_text.setter
    def exc_text(self, value) -> None:
        self.__dict__["_exc_text"] = redact(value) if value else value

    @property
    def stack_info(self):
        value = self.__dict__.get("_stack_info")
        return redact(value) if value else value

    @stack_info.setter
    def stack_info(self, value) -> None:
        self.__dict__["_stack_info"] = value


_FACTORY_INSTALLED = False


def install_log_redaction() -> None:
    """Redact every log record of this process, whatever logger or handler it goes to.

    A record class (not a handler filter): Faust and the Kafka clients set up their
    own handlers after the worker starts, and every record is made by the factory."""
    global _FACTORY_INSTALLED
    if _FACTORY_INSTALLED:
        return
    _FACTORY_INSTALLED = True
    for name in SECRET_NAMES:  # remember every configured secret, whoever reads it later
        try:
            read_secret(name)
        except ConfigError:
            pass  # reported by whoever needs it
    logging.setLogRecordFactory(RedactingLogRecord)
