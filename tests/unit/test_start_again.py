"""A worker whose Faust start failed runs again in its own process (``exec``), on the
``SOON`` schedule, and stops once that is used up."""

from __future__ import annotations

import itertools
import sys

import pytest

from pipeline.stream import worker
from pipeline.stream.retry import SOON


class Execd(Exception):
    pass


@pytest.fixture
def calls(monkeypatch):
    seen = {"exec": [], "sleep": []}

    def execv(path, argv):
        seen["exec"].append((path, argv, worker.os.environ.get(worker.START_ATTEMPT_ENV)))
        raise Execd

    monkeypatch.setattr(worker.os, "execv", execv)
    monkeypatch.setattr(worker.time, "sleep", seen["sleep"].append)
    monkeypatch.setattr(sys, "argv", ["/somewhere/pipeline/__main__.py", "worker", "--data-dir", "x"])
    monkeypatch.delenv(worker.START_ATTEMPT_ENV, raising=False)
    return seen


def test_a_failed_start_runs_the_same_command_again_with_the_attempt_counted(calls):
    with pytest.raises(Execd):
        worker.start_again()
    (path, argv, attempt), = calls["exec"]
    assert path == sys.executable
    assert argv == [sys.executable, "-m", "pipeline", "worker", "--data-dir", "x"]
    assert attempt == "2"
    assert calls["sleep"] == [SOON.first_s]


def test_the_attempts_follow_the_soon_schedule_and_then_stop(calls, monkeypatch, capsys):
    delays = list(itertools.islice(SOON.delays(), SOON.attempts))
    for attempt in range(1, SOON.attempts):
        monkeypatch.setenv(worker.START_ATTEMPT_ENV, str(attempt))
        with pytest.raises(Execd):
            worker.start_again()
    assert calls["sleep"] == delays[:-1]
    monkeypatch.setenv(worker.START_ATTEMPT_ENV, str(SOON.attempts))
    worker.start_again()  # used up: returns, the worker exits with its failure
    assert len(calls["exec"]) == SOON.attempts - 1
    assert f"failed {SOON.attempts} times" in capsys.readouterr().err
