"""A first-time user's first queries: an empty or missing store, and a worker of another data
dir answering on the port, each give one line that says what to do next (exit code 2)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from tests.integration.workerproc import WorkerProcess, isolated_settings, run_cli

pytestmark = pytest.mark.integration


def one_error_line(result) -> str:
    assert result.returncode == 2, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


@pytest.mark.parametrize(
    "args",
    [
        ["indicators", "--window", "30d"],
        ["sql", "SHOW TABLES"],
        ["report", "--period", "2025-06", "--out", "{tmp}/reports", "--no-pdf"],
    ],
    ids=["indicators", "sql", "report"],
)
def test_no_store_yet_says_start_the_worker_and_creates_nothing(infra, tmp_path, args):
    settings = replace(isolated_settings(infra, "empty"), data_dir=tmp_path / "never-used")
    line = one_error_line(run_cli(settings, *[a.format(tmp=tmp_path) for a in args], check=False))
    assert "no data yet" in line and "tthc worker" in line and "--data-dir" in line
    assert not settings.data_dir.exists()  # a wrong --data-dir does not leave an empty store behind


def test_sql_checks_the_worker_on_the_port_serves_this_data_dir(infra, tmp_path):
    settings = isolated_settings(infra, "mine")
    worker = WorkerProcess(settings).start()
    try:
        mine = run_cli(settings, "sql", "SHOW TABLES", "--format", "csv")
        assert "case_events" in mine.stdout.split()
        other = replace(settings, data_dir=tmp_path / "other")
        line = one_error_line(run_cli(other, "sql", "SHOW TABLES", check=False))
        assert "serves another store" in line and f"--data-dir {settings.data_dir}" in line
        # the global flag after the command names this worker's data dir: answered
        again = run_cli(other, "sql", "SHOW TABLES", "--data-dir", str(settings.data_dir))
        assert "case_events" in again.stdout.split()
        assert not other.data_dir.exists()
    finally:
        worker.stop()
