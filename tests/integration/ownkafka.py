"""Kafka clusters of a test's own (three brokers, SCRAM, TLS), beside the session's broker.

Each gets its own data dir under the session's and its own ports from
``TTHC_KAFKA_EXTRA_PORT_BASE + offset``: the first broker there, its controller on the
next port, further brokers from the port after. The Kafka jars are shared with the
session's data dir (a link to its ``cache``), so no cluster fetches them again.
"""

from __future__ import annotations

import shutil
from dataclasses import replace
from typing import Iterator

from pipeline.config import Settings, load_settings
from pipeline.infra.manager import down, running_pids, up


def own_kafka_settings(name: str, offset: int, **changes) -> Settings:
    base = load_settings()
    port = base.kafka_extra_port_base + offset
    settings = replace(
        base, data_dir=base.data_dir / name, kafka_bootstrap=f"127.0.0.1:{port}",
        kafka_controller_port=port + 1, kafka_extra_port_base=port + 2, **changes,
    )
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    cache = settings.data_dir / "cache"
    if not cache.exists():
        (base.data_dir / "cache").mkdir(parents=True, exist_ok=True)
        cache.symlink_to((base.data_dir / "cache").resolve(), target_is_directory=True)
    return settings


def running_kafka(settings: Settings, fresh: bool = False) -> Iterator[Settings]:
    """Start the cluster's brokers (only Kafka), yield, stop them; for module fixtures.
    ``fresh``: storage and certificates made anew (a new SCRAM password needs it)."""
    if fresh:
        down(settings)
        shutil.rmtree(settings.data_dir / "infra", ignore_errors=True)
    try:
        up(settings, kafka_only=True)
    except BaseException:  # a broker that did not start must not leave the others running
        down(settings)
        raise
    yield settings
    down(settings)
    assert not any(running_pids(settings).values()), "infra down left a broker running"
