"""Integration fixtures: the real Kafka, Prometheus and Alertmanager from ``pipeline.infra``.

The environment is set at import time, before any Settings are loaded, so these tests use
their own data dir and ports and never touch a demo running on the defaults. setdefault:
CI may override any of them.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Iterator

import pytest

REPO = Path(__file__).resolve().parents[2]

TEST_ENV = {
    "TTHC_DATA_DIR": str(REPO / "var" / "test"),
    "TTHC_KAFKA_BOOTSTRAP": "127.0.0.1:29092",
    "TTHC_KAFKA_CONTROLLER_PORT": "29094",
    "TTHC_KAFKA_EXTRA_PORT_BASE": "29100",  # the tests' own clusters (three brokers, SCRAM, TLS) from here on
    "TTHC_PROMETHEUS_PORT": "29090",
    "TTHC_ALERTMANAGER_PORT": "29093",
    "TTHC_WEB_PORT": "26066",
}
for _name, _value in TEST_ENV.items():
    os.environ.setdefault(_name, _value)

from pipeline.config import Settings, load_settings  # noqa: E402  (after the env is set)
from pipeline.infra.manager import down, running_pids, up  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def _no_worker_left() -> Iterator[None]:
    """A worker a failed test module left running is killed, so it cannot hold the web port
    (and fail every later test that starts one). Module scope: some modules keep one worker
    across their tests (a module-scoped fixture), and this teardown runs after theirs."""
    from tests.integration.workerproc import RUNNING

    yield
    for worker in list(RUNNING):
        worker.stop(signal.SIGKILL)


@pytest.fixture(scope="session")
def infra() -> Iterator[Settings]:
    """All three services, up once per session (reusing any left by an earlier run)."""
    settings = load_settings()
    up(settings)
    yield settings
    down(settings)
    assert not any(running_pids(settings).values()), "infra down left a service running"
