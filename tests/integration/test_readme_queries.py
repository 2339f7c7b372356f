"""Every example command of the analysts' page (docs/analysts.md) runs against real stored facts."""

from __future__ import annotations

import re
import shlex

import pytest

from pipeline.feed.replay import replay_file
from pipeline.feed.scenario import build_scenario
from tests.integration.workerproc import ROOT, WorkerProcess, isolated_settings, run_cli

pytestmark = pytest.mark.integration


def readme_commands() -> list[list[str]]:
    text = (ROOT / "docs" / "analysts.md").read_text(encoding="utf-8")
    blocks = []
    for heading in ("## ClickHouse tables and example queries", "## The province's units"):
        section = text.split(heading, 1)[1]
        blocks.append(re.search(r"```sh\n(.*?)```", section, re.S).group(1))
    commands: list[str] = []
    for line in "\n".join(blocks).splitlines():
        if line.startswith("#") or not line.strip():
            continue
        if line.startswith("python -m pipeline"):
            commands.append(line)
        else:
            commands[-1] += "\n" + line
    return [shlex.split(command)[3:] for command in commands]


def test_readme_examples_run(infra, tmp_path):
    commands = readme_commands()
    assert len(commands) >= 6
    settings = isolated_settings(infra, "readme", clock="event", snapshot_interval=1.0)
    scenario = build_scenario(seed=3, cases=200)
    path = tmp_path / "scenario.jsonl"
    path.write_bytes(b"\n".join(scenario.lines) + b"\n")
    worker = WorkerProcess(settings).start()
    try:
        replay_file(settings, str(path), progress=False)
        worker.wait_processed(len(scenario.lines))
        worker.wait_for(
            lambda: run_cli(settings, "sql", "SELECT count() AS n FROM indicator_snapshots", "--format", "csv")
            .stdout.splitlines()[1] != "0",
            30,
            "a snapshot written",
        )
        for args in commands:
            result = run_cli(settings, *args, check=False)
            assert result.returncode == 0, f"{args}: {result.stderr}"
            assert result.stdout.strip(), args
    finally:
        worker.stop()
