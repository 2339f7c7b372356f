"""Kafka over SASL/SCRAM-SHA-512 and over TLS, against the real broker.

``infra up --scram`` (the user created by the broker's own storage tool) and
``infra up --tls`` (a throw-away CA made with openssl) on brokers of the tests' own.
The worker and ``replay`` work end to end through each (facts land, gauges equal the
oracle); a wrong password, and a TLS client without the CA, are refused with one
``error:`` line and exit code 2, and the password appears in no output or log.
"""

from __future__ import annotations

import secrets
from dataclasses import replace
from pathlib import Path
from typing import Iterator

import pytest

from pipeline.config import Settings
from pipeline.feed.replay import replay_file
from pipeline.feed.scenario import build_scenario
from pipeline.infra.manager import client_settings
from tests.integration.exactness import assert_exact_once_caught_up
from tests.integration.ownkafka import own_kafka_settings, running_kafka
from tests.integration.workerproc import WorkerProcess, isolated_settings, run_cli

pytestmark = pytest.mark.integration

CASES = 300
PASSWORD = "s3cr3t-" + secrets.token_urlsafe(12)  # fresh each run, so a grep for it means something


@pytest.fixture(scope="module")
def scram() -> Iterator[Settings]:
    yield from running_kafka(own_kafka_settings(
        "scram", 20, kafka_security_protocol="SASL_PLAINTEXT", kafka_sasl_username="tthc-test",
        kafka_sasl_password=PASSWORD,
    ), fresh=True)


@pytest.fixture(scope="module")
def tls() -> Iterator[Settings]:
    yield from running_kafka(own_kafka_settings("tls", 22, kafka_security_protocol="SSL"), fresh=True)


def _end_to_end(settings: Settings, tmp_path: Path) -> WorkerProcess:
    scenario = build_scenario(seed=31, cases=CASES)
    path = tmp_path / "scenario.jsonl"
    path.write_bytes(b"\n".join(scenario.lines) + b"\n")
    assert replay_file(settings, path, progress=False) == len(scenario.lines)
    worker = WorkerProcess(settings).start()
    try:
        worker.wait_processed(len(scenario.lines), timeout=180)
        assert_exact_once_caught_up(worker, scenario, timeout=120)
        assert worker.counter("tthc_events_total", outcome="accepted") == len(scenario.valid_events)
    finally:
        worker.stop()
    return worker


def _one_error_line(result, *needles: str) -> str:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def test_worker_and_replay_over_scram(scram, tmp_path):
    settings = isolated_settings(scram, "scram", clock="event")
    worker = _end_to_end(settings, tmp_path)
    logs = [worker.log_path.read_text(errors="replace")]
    logs += [p.read_text(errors="replace") for p in (scram.data_dir / "infra" / "logs").glob("*.log")]
    assert all(PASSWORD not in text for text in logs)
    assert "SCRAM-SHA-512" in (scram.data_dir / "infra" / "kafka" / "server.properties").read_text()


def test_wrong_password_is_refused_in_one_line(scram, tmp_path):
    settings = isolated_settings(scram, "scram-wrong", kafka_sasl_password="not-" + PASSWORD)
    path = tmp_path / "one.jsonl"
    path.write_text('{"case_id": "x"}\n')
    for args in (("replay", str(path)), ("worker",)):
        result = run_cli(settings, *args, check=False, timeout=120)
        line = _one_error_line(result, "refused", "tthc-test", "SaslAuthenticationFailed")
        assert settings.kafka_sasl_password not in result.stderr + result.stdout, line
    # the password may come from a file instead (TTHC_KAFKA_SASL_PASSWORD_FILE); a missing one is one line too
    missing = replace(settings, kafka_sasl_password="", kafka_sasl_password_file=str(tmp_path / "nope"))
    _one_error_line(run_cli(missing, "replay", str(path), check=False), "TTHC_KAFKA_SASL_PASSWORD_FILE")


def test_password_from_a_file(scram, tmp_path):
    secret = tmp_path / "kafka-password"
    secret.write_text(PASSWORD + "\n")
    settings = isolated_settings(scram, "scram-file", kafka_sasl_password="", kafka_sasl_password_file=str(secret))
    path = tmp_path / "one.jsonl"
    path.write_text('{"case_id": "x"}\n')
    result = run_cli(settings, "replay", str(path))
    assert "sent 1 messages" in result.stderr


def test_worker_and_replay_over_tls(tls, tmp_path):
    settings = isolated_settings(client_settings(tls), "tls", clock="event")
    assert settings.kafka_ssl_cafile.endswith("ca.pem")  # the throw-away CA `infra up --tls` made
    _end_to_end(settings, tmp_path)


def test_tls_without_the_ca_is_refused_in_one_line(tls, tmp_path):
    settings = isolated_settings(tls, "tls-no-ca")  # no TTHC_KAFKA_SSL_CAFILE: the system CAs do not know it
    path = tmp_path / "one.jsonl"
    path.write_text('{"case_id": "x"}\n')
    _one_error_line(run_cli(settings, "replay", str(path), check=False), "CERTIFICATE_VERIFY_FAILED")
