"""Settings, command-line errors (one line, exit 2) and the sql output formats."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest

from pipeline.access import format_rows
from pipeline.store.batch import parse_windows
from pipeline.config import ConfigError, UserError, load_settings

ROOT = Path(__file__).resolve().parents[2]


def test_settings_come_from_the_environment_and_flags_override():
    settings = load_settings({"TTHC_CLOCK": "event", "TTHC_WEB_PORT": "7000"}, {"web_port": 7001, "clock": None})
    assert (settings.clock, settings.web_port) == ("event", 7001)
    assert settings.dlq_topic == "tthc.case-events.dlq"
    assert settings.effective_clickhouse_dsn.startswith("chdb:///") and settings.embedded_clickhouse
    server = load_settings({"TTHC_CLICKHOUSE_DSN": "http://u@db:8123/tthc"})
    assert not server.embedded_clickhouse


@pytest.mark.parametrize(
    "environ",
    [{"TTHC_WEB_PORT": "abc"}, {"TTHC_WEB_PORT": "70000"}, {"TTHC_CLOCK": "sundial"}, {"TTHC_BATCH_SIZE": "0"}],
)
def test_bad_settings_are_config_errors(environ):
    with pytest.raises(ConfigError):
        load_settings(environ)


@pytest.mark.parametrize(
    "args, env",
    [
        (["worker", "--clock", "sundial"], {}),
        (["indicators", "--window", "2w"], {}),
        (["indicators", "--window", "30d", "--at", "yesterday"], {}),
        (["simulate", "--incident", "unit=X,indicator=nope,level=0.5"], {}),
        (["replay", "/no/such/file.jsonl"], {}),
        (["sql", "DELETE FROM case_events WHERE 1"], {}),
        (["worker"], {"TTHC_WEB_PORT": "not-a-port"}),
        (["nonsense"], {}),
    ],
)
def test_bad_input_is_one_clear_line(args, env, tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "pipeline", *args],
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "TTHC_DATA_DIR": str(tmp_path), **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr


def test_sql_output_formats():
    columns = ["unit", "n", "at"]
    rows = [("XA_A", 3, datetime(2025, 7, 1, tzinfo=timezone.utc)), ("Sở Tư pháp", None, None)]
    assert json.loads(format_rows(columns, rows, "json")) == [
        {"unit": "XA_A", "n": 3, "at": "2025-07-01T00:00:00+00:00"},
        {"unit": "Sở Tư pháp", "n": None, "at": None},
    ]
    assert format_rows(columns, rows, "csv").splitlines()[0] == "unit,n,at"
    table = format_rows(columns, rows, "table").splitlines()
    assert table[0].split(" | ")[0].strip() == "unit" and table[-1] == "(2 rows)" and "NULL" in table[3]


def test_windows_are_checked():
    assert parse_windows("30d, mtd") == ["30d", "mtd"]
    with pytest.raises(UserError):
        parse_windows("30d,fortnight")


def _all_commands(parser=None, path=()):
    """Every (name path, parser) of the command line, nested actions included."""
    from pipeline.cli import _build_parser, _subcommands

    parser = parser or _build_parser()
    for name, sub in _subcommands(parser).items():
        yield (*path, name), sub
        yield from _all_commands(sub, (*path, name))


COMMANDS = list(_all_commands())


def test_every_command_is_walked():
    names = {" ".join(path) for path, _ in COMMANDS}
    assert {"infra", "worker", "sql", "report", "grafana build", "grafana provision"} <= names


@pytest.mark.parametrize("path, parser", COMMANDS, ids=[" ".join(p) for p, _ in COMMANDS])
def test_every_command_help_teaches(path, parser):
    text = parser.format_help()
    assert parser.description and len(parser.description.splitlines()) >= 2, path
    assert parser.epilog and parser.epilog.startswith("example:") and f"tthc {' '.join(path)}" in parser.epilog
    for action in parser._actions:
        if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
            continue
        assert action.help and len(action.help) > 10, f"{path} {action.dest}: no help text"
        if action.default not in (None, False, [], argparse.SUPPRESS):
            assert "default" in (action.help % {"default": action.default} if "%(" in action.help else
                                 parser._get_formatter()._get_help_string(action)), f"{path} {action.dest}"
    assert "--data-dir" in text


def run_tthc(*args, tmp_path):
    return subprocess.run(
        [sys.executable, "-m", "pipeline", *args], cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "TTHC_DATA_DIR": str(tmp_path)},
        capture_output=True, text=True, timeout=60,
    )


def test_top_level_help_has_no_markup_and_lists_every_command(tmp_path):
    result = run_tthc("--help", tmp_path=tmp_path)
    assert result.returncode == 0
    assert "``" not in result.stdout and ":class:" not in result.stdout
    for path, _ in COMMANDS:
        if len(path) == 1:
            assert f"    {path[0]}" in result.stdout


def test_version(tmp_path):
    from importlib import metadata

    result = run_tthc("--version", tmp_path=tmp_path)
    assert result.returncode == 0 and result.stdout.strip() == f"tthc {metadata.version('tthc-pipeline')}"


@pytest.mark.parametrize(
    "args, says",
    [
        (["--bogus"], "unrecognized arguments: --bogus (see `tthc --help`)"),
        ([], "no command given; choose one of infra, worker"),
        (["sql", "SELECT 1", "--bogus"], "tthc sql: unrecognized arguments: --bogus"),
        (["grafana"], "choose build or provision"),
    ],
)
def test_wrong_usage_is_one_line_that_names_the_way_on(args, says, tmp_path):
    result = run_tthc(*args, tmp_path=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and says in lines[0], result.stderr


def test_data_dir_is_accepted_after_the_command_too(tmp_path):
    from pipeline.cli import _settings, parse_args

    before = _settings(parse_args(["--data-dir", str(tmp_path / "a"), "sql", "SELECT 1"]))
    after = _settings(parse_args(["sql", "SELECT 1", "--data-dir", str(tmp_path / "b")]))
    assert before.data_dir.name == "a" and after.data_dir.name == "b"
