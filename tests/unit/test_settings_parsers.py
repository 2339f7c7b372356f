"""Each setting is parsed by what its type says (pipeline/config.py: the field list is the one
source; no parser table beside it)."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import pytest

from pipeline.config import ConfigError, Settings, env_name, load_settings

# a value each kind of field refuses, by the field's declared type
BAD = {"int": "0", "float": "-1", "str": "  ", "Path": ""}
SPECIAL_BAD = {
    "kafka_controller_port": "70000", "web_port": "0", "prometheus_port": "x", "alertmanager_port": "65536",
    "webhook_port": "-5", "kafka_extra_port_base": "99999", "clock": "local", "kafka_replication": "two",
    "kafka_min_insync": "0", "kafka_security_protocol": "TLS", "kafka_sasl_mechanism": "GSSAPI",
    "intake_port": "0", "apology_lead": "31",
}
MAY_BE_EMPTY = {"clickhouse_dsn", "kafka_sasl_username", "kafka_sasl_password", "kafka_sasl_password_file",
                "kafka_ssl_cafile", "kafka_ssl_certfile", "kafka_ssl_keyfile", "intake_accounts_file",
                "intake_tls_cert", "intake_tls_key"}


@pytest.mark.parametrize("field", [f for f in fields(Settings) if f.name not in MAY_BE_EMPTY], ids=lambda f: f.name)
def test_a_bad_value_is_one_line_naming_the_variable(field):
    raw = SPECIAL_BAD[field.name] if field.name in SPECIAL_BAD else BAD[str(field.type)]
    with pytest.raises(ConfigError) as info:
        load_settings({env_name(field.name): raw})
    assert env_name(field.name) in str(info.value) and "\n" not in str(info.value)


def test_values_are_converted_by_type():
    s = load_settings({"TTHC_WEB_PORT": "8080", "TTHC_FLUSH_INTERVAL": "0.5", "TTHC_DATA_DIR": "~/x",
                       "TTHC_CLICKHOUSE_DSN": " http://h:8123 ", "TTHC_KAFKA_REPLICATION": "AUTO", "TTHC_CLOCK": "event"})
    assert (s.web_port, s.flush_interval, s.clickhouse_dsn, s.kafka_replication, s.clock) == (
        8080, 0.5, "http://h:8123", "auto", "event")
    assert s.data_dir == Path("~/x").expanduser()
    assert load_settings({"TTHC_KAFKA_SASL_USERNAME": ""}).kafka_sasl_username == ""
