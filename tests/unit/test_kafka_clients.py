"""``pipeline.kafka_clients`` and the local brokers' config: one place for every Kafka client."""

from __future__ import annotations

import ssl
from dataclasses import replace
from pathlib import Path

import pytest

from pipeline import cli
from pipeline.config import PROJECT_ROOT, ConfigError, Settings, UserError, load_settings
from pipeline.infra import kafka
from pipeline.kafka_clients import (
    aiokafka_options,
    bootstrap_servers,
    faust_credentials,
    faust_options,
    kafka_python_options,
    local_brokers,
    TopicPolicy,
    topic_configs,
    topic_policy,
)
from pipeline.secrets import redact
from tests.tools import required_tool

SECRET = "pw-Xy9=ab/c+d!"


def _settings(**env: str) -> Settings:
    return load_settings({"TTHC_KAFKA_BOOTSTRAP": "127.0.0.1:22092", "TTHC_KAFKA_CONTROLLER_PORT": "22094", **env})


def _scram(**env: str) -> Settings:
    return _settings(**{"TTHC_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT", "TTHC_KAFKA_SASL_USERNAME": "tthc",
                        "TTHC_KAFKA_SASL_PASSWORD": SECRET, **env})


def _ca(tmp_path: Path) -> str:
    # any valid PEM CA will do for building the context: Python's own test CA is not
    # shipped, so make one with the same tool `infra up --tls` uses
    keystore, ca = kafka.ensure_tls_files(tmp_path / "tls", tmp_path / "openssl.log")
    assert keystore.read_text().startswith("-----BEGIN PRIVATE KEY-----")
    return str(ca)


def test_plaintext_is_bootstrap_and_protocol_only():
    assert aiokafka_options(_settings()) == {"bootstrap_servers": "127.0.0.1:22092", "security_protocol": "PLAINTEXT"}
    assert faust_credentials(_settings()) is None


def test_scram_options_and_credentials():
    settings = _scram()
    options = kafka_python_options(settings)
    assert options["sasl_mechanism"] == "SCRAM-SHA-512"
    assert (options["sasl_plain_username"], options["sasl_plain_password"]) == ("tthc", SECRET)
    assert "ssl_context" not in options
    assert aiokafka_options(settings) == options  # both libraries take the same names
    credentials = faust_credentials(settings)
    assert credentials.mechanism.value == "SCRAM-SHA-512" and credentials.protocol.value == "SASL_PLAINTEXT"
    assert SECRET not in repr(credentials)
    assert SECRET not in repr(settings)  # Settings hides the password from its repr


def test_tls_context_verifies_with_the_ca(tmp_path):
    ca = _ca(tmp_path)
    options = aiokafka_options(_settings(TTHC_KAFKA_SECURITY_PROTOCOL="SSL", TTHC_KAFKA_SSL_CAFILE=ca))
    context = options["ssl_context"]
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    sasl_ssl = _scram(TTHC_KAFKA_SECURITY_PROTOCOL="SASL_SSL", TTHC_KAFKA_SSL_CAFILE=ca)
    credentials = faust_credentials(sasl_ssl)
    assert credentials.protocol.value == "SASL_SSL" and credentials.ssl_context is not None


def test_security_settings_that_do_not_fit_are_one_line_errors(tmp_path):
    with pytest.raises(ConfigError, match="TTHC_KAFKA_SASL_USERNAME"):
        aiokafka_options(_settings(TTHC_KAFKA_SECURITY_PROTOCOL="SASL_SSL"))
    with pytest.raises(ConfigError, match="TTHC_KAFKA_SASL_PASSWORD"):
        aiokafka_options(_settings(TTHC_KAFKA_SECURITY_PROTOCOL="SASL_PLAINTEXT", TTHC_KAFKA_SASL_USERNAME="u"))
    with pytest.raises(ConfigError, match="not both"):
        aiokafka_options(_scram(TTHC_KAFKA_SASL_PASSWORD_FILE=str(tmp_path / "x")))
    with pytest.raises(ConfigError, match="no such file"):
        aiokafka_options(_settings(TTHC_KAFKA_SECURITY_PROTOCOL="SSL", TTHC_KAFKA_SSL_CAFILE=str(tmp_path / "ca.pem")))
    with pytest.raises(ConfigError, match="TTHC_KAFKA_SECURITY_PROTOCOL"):
        _settings(TTHC_KAFKA_SECURITY_PROTOCOL="TLS")
    with pytest.raises(ConfigError, match="TTHC_KAFKA_REPLICATION"):
        _settings(TTHC_KAFKA_REPLICATION="three")


def test_password_file_is_one_line_and_errors_never_quote_it(tmp_path):
    secret = tmp_path / "password"
    secret.write_text(SECRET + "\n\n")
    settings = _settings(TTHC_KAFKA_SECURITY_PROTOCOL="SASL_PLAINTEXT", TTHC_KAFKA_SASL_USERNAME="u",
                         TTHC_KAFKA_SASL_PASSWORD_FILE=str(secret))
    assert kafka_python_options(settings)["sasl_plain_password"] == SECRET
    assert redact(f"failed with {SECRET}") == "failed with ***"  # what is used is what is redacted
    # issue 20: the client used the first line while the redactor remembered the whole file
    secret.write_text(SECRET + "\nsecond-line\n")
    with pytest.raises(ConfigError, match="holds 2 non-empty lines; a secret is one line") as info:
        kafka_python_options(settings)
    assert SECRET not in str(info.value) and "\n" not in str(info.value)
    secret.write_text("ab\n")  # too short to redact: refused
    with pytest.raises(ConfigError, match="shorter than 4 characters"):
        kafka_python_options(settings)
    secret.write_text("")
    with pytest.raises(ConfigError, match="is empty"):
        kafka_python_options(settings)
    secret.chmod(0o000)
    try:
        kafka_python_options(settings)
    except ConfigError as exc:  # root reads any file; everyone else gets the reason
        assert SECRET not in str(exc)
    finally:
        secret.chmod(0o600)


@pytest.mark.parametrize(("brokers", "replication", "min_insync"), [(1, 1, 1), (2, 2, 1), (3, 3, 2), (5, 3, 2)])
def test_auto_replication_follows_the_cluster(brokers, replication, min_insync):
    assert topic_policy(_settings(), brokers) == TopicPolicy(replication, min_insync)


def test_explicit_replication_and_its_limit():
    settings = _settings(TTHC_KAFKA_REPLICATION="2", TTHC_KAFKA_MIN_INSYNC="2")
    assert topic_policy(settings, 5) == TopicPolicy(2, 2)
    assert topic_configs(settings) == {"min.insync.replicas": "2"}
    with pytest.raises(ConfigError, match="must not exceed"):
        topic_policy(_settings(TTHC_KAFKA_REPLICATION="1", TTHC_KAFKA_MIN_INSYNC="2"))


def test_three_local_brokers_are_all_bootstrap_servers():
    settings = _settings(TTHC_KAFKA_BROKERS="3", TTHC_KAFKA_EXTRA_PORT_BASE="22100")
    assert bootstrap_servers(settings) == "127.0.0.1:22092,127.0.0.1:22100,127.0.0.1:22102"
    assert faust_options(settings)["broker"] == "kafka://127.0.0.1:22092;127.0.0.1:22100;127.0.0.1:22102"
    assert faust_options(settings)["producer_acks"] == -1
    external = replace(settings, kafka_bootstrap="kafka-1:9092,kafka-2:9092")
    assert bootstrap_servers(external) == "kafka-1:9092,kafka-2:9092"
    with pytest.raises(ConfigError, match="overlap"):
        local_brokers(replace(settings, kafka_extra_port_base=22093), ("127.0.0.1", 22092))


def _props(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if line and not line.startswith("#"))


def test_cluster_node_config(tmp_path):
    settings = _settings(TTHC_KAFKA_BROKERS="3", TTHC_KAFKA_EXTRA_PORT_BASE="22100")
    nodes = local_brokers(settings, ("127.0.0.1", 22092))
    props = _props(kafka.server_properties(settings, nodes[1], nodes, tmp_path))
    assert props["node.id"] == "2" and props["process.roles"] == "broker,controller"
    assert props["controller.quorum.voters"] == "1@127.0.0.1:22094,2@127.0.0.1:22101,3@127.0.0.1:22103"
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:22100,CONTROLLER://127.0.0.1:22101"
    assert props["default.replication.factor"] == props["offsets.topic.replication.factor"] == "3"
    assert props["min.insync.replicas"] == props["transaction.state.log.min.isr"] == "2"


def test_secured_node_config(tmp_path):
    settings = _scram(TTHC_KAFKA_SECURITY_PROTOCOL="SASL_SSL")
    nodes = local_brokers(settings, ("127.0.0.1", 22092))
    security = kafka.BrokerSecurity("SASL_SSL", "SCRAM-SHA-512", "tthc", SECRET, tmp_path / "k.pem", tmp_path / "ca.pem")
    props = _props(kafka.server_properties(settings, nodes[0], nodes, tmp_path, security))
    assert props["listener.security.protocol.map"] == "SASL_SSL:SASL_SSL,CONTROLLER:PLAINTEXT"
    assert props["sasl.enabled.mechanisms"] == props["sasl.mechanism.inter.broker.protocol"] == "SCRAM-SHA-512"
    assert f'password="{SECRET}"' in props["listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config"]
    assert props["ssl.keystore.type"] == props["ssl.truststore.type"] == "PEM"
    assert SECRET not in repr(security)


def test_scram_text_the_storage_tool_cannot_take_is_refused_without_quoting_it():
    kafka.check_scram_text("tthc", SECRET)
    with pytest.raises(UserError) as refused:
        kafka.check_scram_text("tthc", "a,b]c")
    assert "a,b]c" not in str(refused.value)


@pytest.mark.parametrize(("flags", "protocol"), [
    ([], "PLAINTEXT"), (["--scram"], "SASL_PLAINTEXT"), (["--tls"], "SSL"), (["--scram", "--tls"], "SASL_SSL"),
])
def test_infra_flags(monkeypatch, flags, protocol):
    monkeypatch.delenv("TTHC_KAFKA_SECURITY_PROTOCOL", raising=False)
    monkeypatch.delenv("TTHC_KAFKA_BROKERS", raising=False)
    args = cli._build_parser().parse_args(["infra", "up", "--brokers", "3", *flags])
    settings = cli._settings(args)
    assert (settings.kafka_brokers, settings.kafka_security_protocol) == (3, protocol)


def test_the_storage_tool_gets_the_scram_password_in_a_private_file_not_its_arguments(tmp_path):
    """Issue 20, finding 7: the SCRAM password was in the storage tool's command line (ps
    shows it). The real JVM and the real tool format a real storage; a wrapper in front of
    java records the command line it was given and the argument file as it was then."""
    java = required_tool("java")
    libs = kafka.ensure_jars(PROJECT_ROOT / "var", tmp_path / "maven.log")  # fetched by make setup
    wrapper = tmp_path / "java"
    wrapper.write_text(
        "#!/bin/sh\n"
        f'printf "%s\\n" "$0" "$@" > {tmp_path}/argv.txt\n'
        f'arg="$1"; stat -c %a "${{arg#@}}" > {tmp_path}/mode.txt; cat "${{arg#@}}" > {tmp_path}/seen.txt\n'
        f'exec {java} "$@"\n'
    )
    wrapper.chmod(0o755)
    password = "pw#1-" + SECRET
    settings = _scram()
    nodes = local_brokers(settings, ("127.0.0.1", 22092))
    security = kafka.BrokerSecurity("SASL_PLAINTEXT", "SCRAM-SHA-512", "tthc-scram-user", password)
    config = tmp_path / "server.properties"
    config.write_text(kafka.server_properties(settings, nodes[0], nodes, tmp_path / "data", security))
    kafka.ensure_formatted(str(wrapper), libs, config, tmp_path / "cluster-id", tmp_path / "data",
                           tmp_path / "format.log", security)
    assert (tmp_path / "data" / "meta.properties").is_file(), (tmp_path / "format.log").read_text()
    argv = (tmp_path / "argv.txt").read_text()
    assert password not in argv and len(argv.splitlines()) == 2 and argv.splitlines()[1].startswith("@")
    assert password in (tmp_path / "seen.txt").read_text()  # the tool got it, from the file
    assert (tmp_path / "mode.txt").read_text().strip() == "600"
    assert not list(config.parent.glob("*.args"))  # deleted after the run
    assert b"tthc-scram-user" in (tmp_path / "data" / "bootstrap.checkpoint").read_bytes()  # the user was created
    assert password not in (tmp_path / "format.log").read_text()
