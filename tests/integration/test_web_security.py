"""The worker's HTTP and its secrets, against the real worker and the real engine.

- beyond loopback without a token: refused at start, one line, exit 2;
- with a token: /metrics and /healthz open, POST /sql 401 without the bearer token or
  with a wrong one, 200 with it (and the ``sql`` command sends it);
- the bounds on a query (rows, time) and the engine's read-only mode, also when the
  statement check is bypassed (the runner called directly with the endpoint's settings);
- recognisable secret values (token from a *_FILE, ClickHouse and SASL passwords) never in
  the worker's log, /healthz, nor an error message.
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.request
from dataclasses import replace

import pytest

from pipeline.feed.replay import replay_file
from pipeline.feed.scenario import build_scenario
from tests.integration.workerproc import ROOT, WorkerProcess, isolated_settings, run_cli, settings_env

pytestmark = pytest.mark.integration

TOKEN = "tok-7Hq2-VERY-SECRET-token-91x"
CH_PASSWORD = "chpw-Zx81-SECRET-pass"
SASL_PASSWORD = "sasl-Qq55-SECRET-pass"


def _post_sql(url: str, query: str, token: str | None) -> tuple[int, dict]:
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(f"{url}/sql", data=json.dumps({"query": query}).encode(),
                                     headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as exc:
        return exc.code, json.load(exc)


def test_binding_beyond_loopback_without_a_token_is_refused_at_start(infra):
    settings = isolated_settings(infra, "bind", web_host="0.0.0.0")
    env = settings_env(settings)
    env.pop("TTHC_SQL_TOKEN", None)
    result = subprocess.run([sys.executable, "-m", "pipeline", "worker"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.startswith("error: TTHC_WEB_HOST=0.0.0.0 listens beyond loopback")
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr


def test_sql_needs_the_token_is_bounded_read_only_and_no_secret_leaks(infra, tmp_path, monkeypatch):
    token_file = tmp_path / "sql-token"
    token_file.write_text(TOKEN + "\n")
    settings = isolated_settings(infra, "websec", clock="event", web_host="0.0.0.0",
                                 sql_max_rows=50, sql_max_seconds=2.0)
    monkeypatch.setenv("TTHC_SQL_TOKEN_FILE", str(token_file))
    monkeypatch.setenv("TTHC_KAFKA_SASL_PASSWORD", SASL_PASSWORD)
    monkeypatch.setenv("TTHC_CLICKHOUSE_PASSWORD", CH_PASSWORD)
    scenario = build_scenario(seed=35, cases=100)
    path = tmp_path / "s.jsonl"
    path.write_bytes(b"\n".join(scenario.lines) + b"\n")
    replay_file(settings, str(path), progress=False)
    worker = WorkerProcess(settings).start()
    url = settings.web_url
    try:
        worker.wait_processed(len(scenario.lines))
        texts = []
        # open: metrics and health
        assert worker.counter("tthc_events_total", outcome="accepted") > 0
        health = worker._get("/healthz").decode()
        texts.append(health)
        # /sql: refused without the token or with a wrong one
        for token in (None, "wrong-token", TOKEN[:-1]):
            status, body = _post_sql(url, "SELECT count() AS n FROM case_events", token)
            assert status == 401, (token, body)
            texts.append(json.dumps(body))
        status, body = _post_sql(url, "SELECT count() AS n FROM case_events FINAL", TOKEN)
        assert status == 200 and body["rows"][0][0] > 0
        # the sql command reads the token from the environment (here: from the file)
        out = run_cli(settings, "sql", "SELECT 1 AS one", "--format", "json")
        assert json.loads(out.stdout) == [{"one": 1}]
        # bounds: rows and time, enforced by the engine; a query cannot lift them
        for query, marker in (
            ("SELECT number FROM numbers(1000)", "TOO_MANY_ROWS_OR_BYTES"),
            ("SELECT count() FROM numbers(100000000000)", "TIMEOUT_EXCEEDED"),
            ("SELECT number FROM numbers(1000) SETTINGS max_result_rows = 0", "SETTINGS"),
        ):
            status, body = _post_sql(url, query, TOKEN)
            assert status == 400 and marker in body["error"], (query, body)
            texts.append(json.dumps(body))
        # writes refused by the statement check and, below it, by the engine
        status, body = _post_sql(url, "INSERT INTO units (unit_id) VALUES ('X')", TOKEN)
        assert status == 400 and "only read-only queries" in body["error"]
        status, body = _post_sql(url, "SELECT * FROM units FINAL LIMIT 1", TOKEN)
        assert status == 200
        # an error that carries a DSN with a password: the http path of the sql command
        http = replace(settings, clickhouse_dsn="http://tthc@127.0.0.1:9/tthc")
        failed = run_cli(http, "sql", "SELECT 1", check=False)
        assert failed.returncode == 2 and failed.stderr.startswith("error:")
        texts.append(failed.stderr + failed.stdout)
        texts.append(worker._get("/healthz").decode())
    finally:
        worker.stop()
    texts.append(worker.log_path.read_text(errors="replace"))
    everything = "\n".join(texts)
    for secret in (TOKEN, CH_PASSWORD, SASL_PASSWORD):
        assert secret not in everything


ENGINE_BYPASS = r"""
import sys
from pipeline.config import load_settings
from pipeline.store.client import connect
from pipeline.store.readonly import ClientRunner, QueryError
from pipeline.store.schema import ensure_schema
from pipeline.webguard import sql_limits

client = connect(sys.argv[1])
ensure_schema(client)
limits = sql_limits(load_settings()).settings()  # exactly what POST /sql uses
runner = ClientRunner(client, check=False, settings=limits)  # the statement check bypassed
for sql in ("INSERT INTO units (unit_id, name_vi, kind, valid_from) VALUES ('Z', 'z', 'commune', '2025-01-01')",
            "CREATE TABLE sneaky (a Int8) ENGINE = Memory", "DROP TABLE case_events",
            "ALTER TABLE case_events DELETE WHERE 1", "SET readonly = 0",
            "SELECT number FROM numbers(10) SETTINGS max_result_rows = 0, readonly = 0"):
    try:
        runner.query(sql)
        print("WROTE", sql)
    except QueryError as exc:
        print("REFUSED", "READONLY" in str(exc))
print("TABLES", sorted(r[0] for r in client.query("SHOW TABLES").result_rows))
print("UNITS", client.query("SELECT count() FROM units").result_rows[0][0])
"""


def test_the_sql_endpoints_runner_cannot_write_even_without_the_statement_check(tmp_path):
    dsn = f"chdb://{tmp_path / 'ch'}"
    result = subprocess.run([sys.executable, "-c", ENGINE_BYPASS, dsn], cwd=ROOT, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[:6] == ["REFUSED True"] * 6, result.stdout
    assert "sneaky" not in lines[6] and "case_events" in lines[6]
    assert lines[7] == "UNITS 0"
