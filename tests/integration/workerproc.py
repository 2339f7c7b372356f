"""Run the real worker (``python -m pipeline worker``) as a subprocess in tests."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Callable

from prometheus_client.parser import text_string_to_metric_families

from pipeline.config import Settings, env_name

ROOT = Path(__file__).resolve().parents[2]


def isolated_settings(base: Settings, name: str, **changes) -> Settings:
    """A topic (and DVCQG raw topic), consumer group, web port and data dir of the test's own
    on the shared broker."""
    tag = f"{name}-{uuid.uuid4().hex[:8]}"
    return replace(
        base,
        topic=f"tthc.test.{tag}",
        dvcqg_topic=f"tthc.test.{tag}.dvcqg",
        app_id=f"tthc-test-{tag}",
        data_dir=base.data_dir / "runs" / tag,
        **changes,
    )


def settings_env(settings: Settings) -> dict[str, str]:
    env = dict(os.environ)
    for setting in fields(settings):
        env[env_name(setting.name)] = str(getattr(settings, setting.name))
    return env


def run_cli(settings: Settings, *args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, "-m", "pipeline", *args],
        cwd=ROOT,
        env=settings_env(settings),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"pipeline {' '.join(args)} failed ({result.returncode}): {result.stderr}")
    return result


def sql_json(settings: Settings, query: str) -> list[dict]:
    return json.loads(run_cli(settings, "sql", query, "--format", "json").stdout)


#: workers started and not stopped yet; the integration conftest kills any left after a
#: test module, so a failed test cannot leave one holding the web port for the next
RUNNING: set["WorkerProcess"] = set()


@dataclass(eq=False)
class WorkerProcess:
    settings: Settings
    process: subprocess.Popen | None = None

    def start(self, timeout: float = 90.0, wait_healthy: bool = True) -> "WorkerProcess":
        self.settings.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.settings.data_dir / f"worker-{int(time.time() * 1000)}.log"
        self._log = open(self.log_path, "wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "pipeline", "worker"],
            cwd=ROOT,
            env=settings_env(self.settings),
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        RUNNING.add(self)
        if wait_healthy:
            try:
                self.wait_for(lambda: self.health().get("status") == "ok", timeout, "worker healthy")
            except BaseException:
                self.stop(signal.SIGKILL)  # a worker that never got healthy must not hold its port
                raise
        return self

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60.0) -> int:
        if self.process is None:
            return 0
        self.process.send_signal(sig)
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = self.process.wait()
        self._log.close()
        self.process = None
        RUNNING.discard(self)
        return code

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def _get(self, path: str) -> bytes:
        with urllib.request.urlopen(f"{self.settings.web_url}{path}", timeout=10) as response:
            return response.read()

    def health(self) -> dict:
        try:
            return json.loads(self._get("/healthz"))
        except OSError:
            return {}

    def metrics(self) -> dict[tuple[str, tuple], float]:
        """{(sample name, sorted label items): value} from /metrics."""
        text = self._get("/metrics").decode()
        samples = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
        return samples

    def counter(self, name: str, **labels: str) -> float:
        return self.metrics().get((name, tuple(sorted(labels.items()))), 0.0)

    def wait_for(self, predicate: Callable[[], bool], timeout: float, what: str, interval: float = 0.5) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise AssertionError(f"worker exited ({self.process.returncode}) waiting for {what}:\n{self.log_tail()}")
            try:
                if predicate():
                    return
            except OSError:
                pass
            time.sleep(interval)
        raise AssertionError(f"timed out after {timeout}s waiting for {what}:\n{self.log_tail()}")

    def wait_processed(self, total: int, timeout: float = 300.0) -> None:
        """Until ``total`` messages are processed and their rows written (nothing pending)."""

        def done() -> bool:
            health = self.health()  # cheap, unlike /metrics which computes every gauge
            return health.get("processed", 0) >= total and health.get("pending") == 0

        self.wait_for(done, timeout, f"{total} messages processed")
