"""Hostile input against the real worker's ``POST /sql`` (issue 20, findings 1, 4, 5, 7).

One worker, its embedded engine, a few hundred events. Every family of the statement
check (tests/unit/test_readonly.py holds the whole catalogue against the checker and
the engine's own list of table functions) is posted to the real endpoint and refused
with a one-line 400, and a host file's content never comes back; the HTTP rules (token
always, Content-Type, Host, the body) each give their status and one line; the bounds
are the engine's; and a long query runs on the reader's own thread, so the writes (and
the acks behind them) go on while it runs.
"""

from __future__ import annotations

import http.client
import json
import threading
import urllib.error
import urllib.request

import pytest

from pipeline.feed.replay import replay_file
from pipeline.feed.scenario import build_scenario
from pipeline.store.sqlcheck import ALLOWED_TABLE_FUNCTIONS, TABLE_FUNCTIONS
from pipeline.webguard import sql_token
from tests.integration.workerproc import WorkerProcess, isolated_settings, run_cli

pytestmark = pytest.mark.integration

HOST_SECRET = "HOST-FILE-SECRET-LINE-4242"


def _post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict]:
    request = urllib.request.Request(f"{url}/sql", data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as exc:
        return exc.code, json.load(exc)


@pytest.fixture(scope="module")
def worker(infra, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("hostile")
    settings = isolated_settings(infra, "hostile", clock="event", sql_max_seconds=20.0, sql_max_rows=1000,
                                 sql_max_bytes=1_000_000, sql_max_memory=64 * 1024 * 1024)
    scenario = build_scenario(seed=20, cases=150)
    path = tmp / "s.jsonl"
    path.write_bytes(b"\n".join(scenario.lines) + b"\n")
    replay_file(settings, str(path), progress=False)
    secret_file = tmp / "host-secret.tsv"
    secret_file.write_text(f"{HOST_SECRET}\tb\n1\t2\n")
    proc = WorkerProcess(settings).start()
    try:
        proc.wait_processed(len(scenario.lines))
        proc.scenario_lines = len(scenario.lines)
        proc.secret_file = str(secret_file)
        proc.tmp = tmp
        yield proc
    finally:
        proc.stop()


def _query(worker: WorkerProcess, sql: str, **extra) -> tuple[int, dict]:
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {sql_token(worker.settings)}"}
    return _post(worker.settings.web_url, json.dumps({"query": sql, **extra}).encode(), headers)


def _refused(worker: WorkerProcess, sql: str, **extra) -> str:
    status, body = _query(worker, sql, **extra)
    assert status == 400, (sql, status, body)
    message = body["error"]
    assert "\n" not in message and HOST_SECRET not in message, (sql, message)
    return message


def test_a_token_was_generated_and_the_sql_command_reads_it(worker):
    path = worker.settings.data_dir / "sql-token"
    assert path.stat().st_mode & 0o777 == 0o600
    assert str(path.resolve()) in worker.log_path.read_text(errors="replace")  # printed where it is, once
    out = run_cli(worker.settings, "sql", "SELECT count() AS n FROM case_events FINAL", "--format", "json")
    assert json.loads(out.stdout)[0]["n"] > 0


def test_every_table_function_in_every_statement_kind_is_refused(worker):
    f = worker.secret_file
    forms = ["DESCRIBE {fn}('{f}', 'TSVWithNames')", "SELECT * FROM {fn}('{f}', 'TSVWithNames')",
             "EXPLAIN SELECT * FROM {fn}('{f}')", "WITH x AS (SELECT * FROM {fn}('{f}')) SELECT * FROM x",
             "SELECT 1 WHERE 1 IN (SELECT * FROM {fn}('{f}'))"]
    refused = 0
    for fn in sorted(TABLE_FUNCTIONS - ALLOWED_TABLE_FUNCTIONS):
        for form in forms:
            message = _refused(worker, form.format(fn=fn, f=f))
            assert message.startswith("query refused: the table function"), message
            refused += 1
    assert refused == 5 * len(TABLE_FUNCTIONS - ALLOWED_TABLE_FUNCTIONS)


@pytest.mark.parametrize(
    ("sql", "fragment"),
    [
        ("DESCRIBE file('{f}', 'TSVWithNames')", "table function file"),  # the issue's own case
        ("DESC TABLE url('http://127.0.0.1:9/', 'TSV', 'a String')", "table function url"),
        ("DESCRIBE remote('127.0.0.1:9', system.one)", "table function remote"),
        ("DESCRIBE (SELECT * FROM case_events)", "plain table name"),
        ("SHOW PROCESSLIST", "SHOW only as"),
        ("SELECT query FROM system.processes", "database system"),
        ("SELECT * FROM system.query_log", "database system"),
        ("SELECT * FROM INFORMATION_SCHEMA.TABLES", "database INFORMATION_SCHEMA"),
        ("SELECT * FROM ｆｉｌｅ('{f}')", "U+FF46"),
        ("SELECT * FROM file\u200b('{f}')", "U+200B"),
        ("SELECT * FROM fi/**/le('{f}')", "comment inside a word"),
        ("SELECT * FROM `file`('{f}')", "quoted name"),
        ("SELECT * FROM case_events INTO OUTFILE '{f}.out'", "INTO"),
        ("SELECT 1 FORMAT TSV", "FORMAT"),
        ("SELECT number FROM numbers(10) SETTINGS max_result_rows = 0", "SETTINGS"),
        ("SELECT * FROM {t:Identifier}", "Identifier"),
        ("SELECT 1; DROP TABLE case_events", "more than one statement"),
        ("INSERT INTO units (unit_id) VALUES ('X')", "got INSERT"),
        ("EXPLAIN header = 1 SELECT 1", "EXPLAIN only of a SELECT"),
    ],
)
def test_hostile_statements_are_refused_by_the_worker(worker, sql, fragment):
    assert fragment in _refused(worker, sql.replace("{f}", worker.secret_file))


def test_the_project_s_tables_and_the_allowed_forms_answer(worker):
    for sql in ("SELECT count() FROM case_events FINAL", "DESCRIBE case_events", "SHOW TABLES",
                "SHOW CREATE TABLE units", "EXPLAIN SELECT 1", "SELECT count() FROM numbers(100)"):
        status, body = _query(worker, sql)
        assert status == 200 and body["rows"], (sql, body)
    status, body = _query(worker, "SELECT {n:UInt8} + 1 AS m", parameters={"n": 1})
    assert status == 200 and body["rows"] == [[2]]


def test_the_engine_enforces_the_bounds(worker):
    for sql, marker in (
        ("SELECT number FROM numbers(5000)", "TOO_MANY_ROWS_OR_BYTES"),  # max_result_rows 1000
        ("SELECT repeat(toString(number), 5000) FROM numbers(500)", "TOO_MANY_ROWS_OR_BYTES"),  # bytes: 1 MB
        ("SELECT length(groupArray(number)) FROM numbers(100000000)", "MEMORY_LIMIT_EXCEEDED"),  # 64 MiB
    ):
        assert marker in _refused(worker, sql), sql


def test_http_rules_each_give_their_status_and_one_line(worker):
    url = worker.settings.web_url
    token = sql_token(worker.settings)
    good = json.dumps({"query": "SELECT 1"}).encode()
    cases = [
        ({"Content-Type": "application/json"}, good, 401),  # no token: always needed now
        ({"Content-Type": "application/json", "Authorization": "Bearer nope-nope"}, good, 401),
        ({"Content-Type": "text/plain", "Authorization": f"Bearer {token}"}, good, 415),  # cross-site simple POST
        ({"Content-Type": "application/x-www-form-urlencoded", "Authorization": f"Bearer {token}"}, good, 415),
        ({"Content-Type": "application/json", "Authorization": f"Bearer {token}", "Host": "evil.example"}, good, 421),
        ({"Content-Type": "application/json", "Authorization": f"Bearer {token}"}, b'["SELECT 1"]', 400),
        ({"Content-Type": "application/json", "Authorization": f"Bearer {token}"}, b"SELECT 1", 400),
        ({"Content-Type": "application/json", "Authorization": f"Bearer {token}"}, b'"SELECT 1"', 400),
        ({"Content-Type": "application/json", "Authorization": f"Bearer {token}"}, b'{"query": 7}', 400),
        ({"Content-Type": "application/json", "Authorization": f"Bearer {token}"}, b"\xff\xfe{", 400),
        ({"Content-Type": "application/json", "Authorization": f"Bearer {token}"}, good, 200),
    ]
    for headers, body, status in cases:
        got, answer = _post(url, body, headers)
        assert got == status, (headers, body, got, answer)
        if status != 200:
            assert "\n" not in answer["error"] and token not in answer["error"], answer


def test_a_rebinding_host_header_is_refused_even_with_the_right_path(worker):
    # a DNS-rebinding page reaches 127.0.0.1 under its own name: http.client sends that Host
    host, port = "127.0.0.1", worker.settings.web_port
    conn = http.client.HTTPConnection(host, port, timeout=30)
    conn.request("POST", "/sql", body=b'{"query": "SELECT 1"}',
                 headers={"Host": f"attacker.example:{port}", "Content-Type": "application/json"})
    response = conn.getresponse()
    assert response.status == 421 and "Host" in json.load(response)["error"]
    conn.close()


def test_a_long_query_does_not_hold_the_writes(worker, infra):
    """Issue 20, finding 5: /sql shared the engine's one ClickHouse thread. A query that
    runs until its time limit (20 s here) is posted; while it runs, new messages come and
    their rows are written (the worker's written-rows counter moves and nothing stays
    pending) before the query has answered."""
    answers: list[tuple[int, dict]] = []
    long_query = threading.Thread(target=lambda: answers.append(
        _query(worker, "SELECT sum(cityHash64(number)) FROM numbers(1000000000000)")))
    before = worker.counter("tthc_clickhouse_rows_written_total", table="case_events")
    long_query.start()
    try:
        more = build_scenario(seed=21, cases=40)
        path = worker.tmp / "more.jsonl"
        path.write_bytes(b"\n".join(more.lines) + b"\n")
        replay_file(worker.settings, str(path), progress=False)
        worker.wait_processed(worker.scenario_lines + len(more.lines), timeout=60)
        written = worker.counter("tthc_clickhouse_rows_written_total", table="case_events")
        assert written > before
        assert long_query.is_alive() and not answers  # the writes did not wait for the query
    finally:
        long_query.join(120)
    (status, body), = answers
    assert status == 400 and "TIMEOUT_EXCEEDED" in body["error"] and "\n" not in body["error"], body
