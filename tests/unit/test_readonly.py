"""pipeline.store.readonly: the statement check and the runner's read-only setting."""

from __future__ import annotations

import pytest

from pipeline.config import UserError
from pipeline.store.readonly import ClientRunner, QueryError, QueryRunner, check_read_only
from pipeline.store.sqlcheck import tokenize

PREFIX = "only read-only queries are allowed (SELECT, WITH, SHOW, DESCRIBE, EXPLAIN); got "


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT 1",
        "select count() from case_events FINAL",
        "  \n\tSELECT 1",
        "(SELECT 1) UNION ALL (SELECT 2)",
        "((select 1))",
        "WITH x AS (SELECT 1 AS a) SELECT a FROM x",
        "with 1 as one select one",
        "SHOW TABLES",
        "show create table case_events",
        "DESCRIBE TABLE case_events",
        "DESC case_events",
        "EXPLAIN SELECT 1",
        "EXPLAIN PIPELINE SELECT 1",
        "SELECT 1;",
        "SELECT 1 ;  \n ; ",
        "SELECT 1; -- a trailing comment",
        "SELECT 1; /* trailing */",
        "-- a comment first\nSELECT 1",
        "/* block */ SELECT 1",
        "/* nested /* comment */ still the comment; DROP TABLE x */ SELECT 1",
        "# hash comment\nSELECT 1",
        "#!shebang-style comment\nSELECT 1",
        "SELECT ';' AS semicolon",
        "SELECT 'it''s; fine', 'back\\'slash; too'",
        'SELECT "odd;identifier" FROM t',
        "SELECT `weird;name` FROM t",
        "SELECT $$dollar; quoted$$",
        "SELECT $tag$ ; DROP TABLE t $tag$",
        "SELECT '-- not a comment; DROP TABLE t'",
        "SELECT 'INTO OUTFILE' AS words",
        "SELECT * FROM case_events WHERE unit_id = {unit:String}",
    ],
)
def test_accepts_read_only_statements(sql):
    check_read_only(sql)


@pytest.mark.parametrize(
    ("sql", "word"),
    [
        ("INSERT INTO case_events VALUES (1)", "INSERT"),
        ("insert into t select 1", "INSERT"),
        ("ALTER TABLE case_events DELETE WHERE 1", "ALTER"),
        ("DROP TABLE case_events", "DROP"),
        ("CREATE TABLE x (a Int8) ENGINE = Memory", "CREATE"),
        ("TRUNCATE TABLE case_events", "TRUNCATE"),
        ("OPTIMIZE TABLE case_events FINAL", "OPTIMIZE"),
        ("SYSTEM FLUSH LOGS", "SYSTEM"),
        ("KILL QUERY WHERE 1", "KILL"),
        ("DELETE FROM case_events WHERE 1", "DELETE"),
        ("UPDATE case_events SET a = 1 WHERE 1", "UPDATE"),
        ("RENAME TABLE a TO b", "RENAME"),
        ("DETACH TABLE case_events", "DETACH"),
        ("ATTACH TABLE case_events", "ATTACH"),
        ("GRANT ALL ON *.* TO x", "GRANT"),
        ("SET readonly = 0", "SET"),
        ("USE system", "USE"),
        ("  (  DROP TABLE x)", "DROP"),
        ("/* SELECT */ INSERT INTO t VALUES (1)", "INSERT"),
        ("-- SELECT\nDROP TABLE t", "DROP"),
        ("# SELECT\nTRUNCATE TABLE t", "TRUNCATE"),
        ("/* a /* nested */ SELECT */ DROP TABLE t", "DROP"),
    ],
)
def test_refuses_writes_and_anything_else(sql, word):
    with pytest.raises(UserError) as info:
        check_read_only(sql)
    message = str(info.value)
    assert message.startswith(PREFIX + word), message
    assert "\n" not in message


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT 1; DROP TABLE case_events",
        "SELECT 1;DROP TABLE case_events;",
        "SELECT 1; -- hidden\nDROP TABLE case_events",
        "SELECT 1 /* ; */; INSERT INTO t VALUES (1)",
        "SELECT ';'; SELECT 2",
        "SHOW TABLES; SHOW TABLES",
    ],
)
def test_refuses_more_than_one_statement(sql):
    with pytest.raises(UserError, match=r"more than one statement"):
        check_read_only(sql)


@pytest.mark.parametrize(
    "sql",
    [
        "",
        "   ",
        "-- only a comment",
        "/* only */",
        ";",
    ],
)
def test_refuses_empty_queries(sql):
    with pytest.raises(UserError, match="empty query"):
        check_read_only(sql)


@pytest.mark.parametrize(
    "sql",
    ["SELECT 'unterminated", "SELECT 1 /* open comment", 'SELECT "x', "SELECT $$open"],
)
def test_refuses_unterminated_quotes_and_comments(sql):
    with pytest.raises(UserError, match="unterminated"):
        check_read_only(sql)


def test_refuses_into_outfile():
    # the engine's readonly mode does not stop INTO OUTFILE (it writes on the client side)
    with pytest.raises(UserError, match="INTO OUTFILE"):
        check_read_only("SELECT * FROM case_events INTO OUTFILE '/tmp/x.csv'")
    with pytest.raises(UserError, match="INTO OUTFILE"):
        check_read_only("select 1 into\n  outfile 'x'")


def test_refuses_text_without_a_keyword():
    with pytest.raises(UserError, match=r"got '\)'"):
        check_read_only("()")


def test_refuses_non_text():
    with pytest.raises(UserError):
        check_read_only(None)  # type: ignore[arg-type]


def test_tokenize_drops_comments_and_literal_contents():
    assert [(t.kind, t.text) for t in tokenize("SELECT 'a;b' -- c\n, \"x y\"")] == [
        ("word", "SELECT"), ("string", ""), ("sign", ","), ("quoted", "x y")]
    assert [t.text for t in tokenize("SELECT /* x */ 1")] == ["SELECT", "1"]


def test_the_batch_query_passes_the_check():
    from pipeline.store.batch import BATCH_SQL

    check_read_only(BATCH_SQL)


# --------------------------------------------------------------------------- runner


class _Result:
    column_names = ("a", "b")
    result_rows = [[1, "x"], [2, "y"]]


class _StubClient:
    def __init__(self, fail: Exception | None = None) -> None:
        self.calls: list[tuple] = []
        self.fail = fail

    def query(self, sql, parameters=None, settings=None):
        self.calls.append((sql, parameters, settings))
        if self.fail is not None:
            raise self.fail
        return _Result()


def test_client_runner_always_sets_readonly_and_returns_names_and_tuples():
    client = _StubClient()
    runner = ClientRunner(client)
    assert isinstance(runner, QueryRunner)
    columns, rows = runner.query("SELECT a, b FROM t WHERE a = {a:UInt8}", {"a": 1})
    assert columns == ["a", "b"]
    assert rows == [(1, "x"), (2, "y")]
    assert client.calls == [("SELECT a, b FROM t WHERE a = {a:UInt8}", {"a": 1}, {"readonly": 1})]
    ClientRunner(client, check=False).query("SELECT 1")
    assert client.calls[-1][2] == {"readonly": 1}


def test_client_runner_checks_before_the_engine_sees_anything():
    client = _StubClient()
    with pytest.raises(UserError, match="got INSERT"):
        ClientRunner(client).query("INSERT INTO t VALUES (1)")
    assert client.calls == []


def test_client_runner_turns_engine_errors_into_one_line():
    client = _StubClient(fail=RuntimeError("Code: 164. DB::Exception: readonly\nStack trace:\n0. x"))
    with pytest.raises(QueryError) as info:
        ClientRunner(client, check=False).query("INSERT INTO t VALUES (1)")
    assert isinstance(info.value, UserError)
    assert "\n" not in str(info.value)
    assert "Code: 164" in str(info.value)


# --------------------------------------------------------------------------- hostile input
# Issue 20, finding 1: DESCRIBE file('/etc/passwd') read the host's files through the SQL
# path. Every family below is refused by the statement check, in one line.

import json
import subprocess
import sys

from pipeline.config import PROJECT_ROOT
from pipeline.store.sqlcheck import ALLOWED_TABLE_FUNCTIONS, HOST_FUNCTIONS, REFUSED, TABLE_FUNCTIONS

ENGINE_FACTS = r"""
import json, sys
import clickhouse_connect
client = clickhouse_connect.get_client(interface="chdb", path=sys.argv[1])
names = [r[0] for r in client.query("SELECT name FROM system.table_functions").result_rows]
# what the check stands in front of: the engine itself reads a host file through DESCRIBE
leak = client.query("DESCRIBE file('" + sys.argv[2] + "', 'TSVWithNames')", settings={"readonly": 1}).result_rows
print(json.dumps({"table_functions": names, "describe_file": [r[0] for r in leak]}))
"""


@pytest.fixture(scope="module")
def engine_facts(tmp_path_factory):
    """The real chDB engine's table functions (and proof that it reads files through DESCRIBE)."""
    tmp = tmp_path_factory.mktemp("chdb")
    secret = tmp / "host-secret.txt"
    secret.write_text("TOP-SECRET-LINE\nsecond line\n")
    result = subprocess.run([sys.executable, "-c", ENGINE_FACTS, str(tmp / "ch"), str(secret)], cwd=PROJECT_ROOT,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])


def _refusal(sql: str) -> str:
    with pytest.raises(UserError) as info:
        check_read_only(sql)
    message = str(info.value)
    assert "\n" not in message and len(message) < 300, message
    return message


def test_the_engine_reads_files_through_describe_which_the_check_refuses(engine_facts):
    assert engine_facts["describe_file"] == ["TOP-SECRET-LINE"]  # the hole of finding 1, in the engine
    assert "file" in _refusal("DESCRIBE file('/etc/passwd', 'TSVWithNames')")


def test_every_table_function_of_the_engine_is_known_to_the_check(engine_facts):
    names = {n.lower() for n in engine_facts["table_functions"]}
    assert len(names) > 50
    assert names <= TABLE_FUNCTIONS, f"new table functions in the engine: {sorted(names - TABLE_FUNCTIONS)}"
    assert ALLOWED_TABLE_FUNCTIONS <= names


# every place a table function can stand in a statement
PLACES = [
    "SELECT * FROM {f}",
    "select * from case_events, {f}",
    "SELECT * FROM case_events AS c JOIN {f} AS x ON 1 = 1",
    "SELECT * FROM case_events LEFT ARRAY JOIN [1] AS a INNER JOIN {f} USING (a)",
    "DESCRIBE {f}",
    "DESC TABLE {f}",
    "EXPLAIN SELECT * FROM {f}",
    "EXPLAIN AST SELECT * FROM {f}",
    "WITH x AS (SELECT * FROM {f}) SELECT * FROM x",
    "SELECT 1 WHERE 1 IN (SELECT * FROM {f})",
    "SELECT (SELECT count() FROM {f})",
    "(((SELECT * FROM {f})))",
    "SELECT * FROM (SELECT * FROM (SELECT * FROM {f}))",
    "SELECT 1 UNION ALL SELECT * FROM {f}",
    "SELECT * FROM case_events WHERE case_id GLOBAL IN {f}",
]


def _call(name: str) -> str:
    return f"{name}('/etc/passwd', 'TSV', 'a String')"


def test_every_table_function_is_refused_in_every_place(engine_facts):
    refused = 0
    for name in engine_facts["table_functions"]:
        if name.lower() in ALLOWED_TABLE_FUNCTIONS:
            for place in PLACES[:3]:
                check_read_only(place.format(f=f"{name}(10)"))
            continue
        for place in PLACES:
            for spelled in (name, name.upper(), name.lower()):
                sql = place.format(f=_call(spelled))
                message = _refusal(sql)
                assert message.startswith(REFUSED), (sql, message)
                refused += 1
    assert refused >= 80 * len(PLACES) * 3


@pytest.mark.parametrize("name", sorted(HOST_FUNCTIONS) + ["dictGet", "dictGetString", "dictHas"])
def test_functions_that_read_the_host_are_refused(name):
    assert name.lower() in _refusal(f"SELECT {name}('x', 'y')").lower()


@pytest.mark.parametrize(
    ("sql", "fragment"),
    [
        # DESCRIBE / SHOW / EXPLAIN forms
        ("DESCRIBE system.processes", "database system"),
        ("DESCRIBE (SELECT * FROM case_events)", "plain table name"),
        ("DESCRIBE TABLE case_events, units", "plain table name"),
        ("DESCRIBE case_events SETTINGS describe_compact_output = 1", "SETTINGS"),
        ("DESC system", "DESCRIBE of system"),
        ("(DESCRIBE case_events)", "inside parentheses"),
        ("SHOW PROCESSLIST", "SHOW only as"),
        ("SHOW TABLES FROM system", "SHOW only as"),
        ("SHOW DATABASES", "SHOW only as"),
        ("SHOW SETTINGS LIKE '%'", "SETTINGS"),
        ("SHOW USERS", "SHOW only as"),
        ("SHOW GRANTS", "SHOW only as"),
        ("SHOW CREATE USER default", "SHOW CREATE only of a plain table name"),
        ("SHOW CREATE TABLE system.tables", "database system"),
        ("SHOW CREATE DICTIONARY d", "plain table name"),
        ("SHOW COLUMNS FROM system.processes", "database system"),
        ("SHOW FILESYSTEM CACHES", "SHOW only as"),
        ("EXPLAIN ESTIMATE DESCRIBE units", "EXPLAIN only of a SELECT"),
        ("EXPLAIN header = 1 SELECT 1", "EXPLAIN only of a SELECT"),
        ("EXPLAIN DESCRIBE case_events", "EXPLAIN only of a SELECT"),
        ("EXPLAIN TABLE OVERRIDE mysql('h', 'd', 't', 'u', 'p')", "table function mysql"),
        ("EXPLAIN INSERT INTO units SELECT * FROM units", "INTO"),
        # the system database and information_schema (other sessions' query texts, settings, disks)
        ("SELECT query FROM system.processes", "database system"),
        ("SELECT * FROM system.query_log", "database system"),
        ("SELECT * FROM SYSTEM . settings", "database SYSTEM"),
        ('SELECT * FROM "system"."disks"', "database system"),
        ("SELECT * FROM `system`.users", "database system"),
        ("SELECT * FROM information_schema.tables", "database information_schema"),
        ("SELECT * FROM INFORMATION_SCHEMA.COLUMNS", "database INFORMATION_SCHEMA"),
        ("SELECT * FROM system/* x */.tables", "database system"),
        # clauses that write, format or change the limits
        ("SELECT 1 INTO OUTFILE '/tmp/x'", "INTO"),
        ("SELECT 1 FORMAT TSV", "FORMAT"),
        ("SELECT 1 format JSONEachRow", "FORMAT"),
        ("SELECT number FROM numbers(10) SETTINGS max_result_rows = 0", "SETTINGS"),
        ("SELECT 1 SETTINGS readonly = 0", "SETTINGS"),
        ("SELECT 1 PARALLEL WITH SELECT 2", "PARALLEL"),
        ("SELECT * FROM {t:Identifier}", "Identifier"),
        ("SELECT * FROM {t: identifier }", "Identifier"),
        ("SELECT {'a': 1}", "query parameter"),
        # unicode and lexical tricks
        ("SELECT * FROM ｆｉｌｅ('/etc/passwd')", "U+FF46"),
        ("SELECT * FROM file（'/etc/passwd'）", "U+FF08"),
        ("SELECT * FROM fi\u200ble('/etc/passwd')", "U+200B"),
        ("SELECT * FROM \u0444ile('/etc/passwd')", "U+0444"),  # Cyrillic ef
        ("SELECT * FROM file\u00a0('/etc/passwd')", "U+00A0"),
        ("SELECT * FROM sys\u200dtem.tables", "U+200D"),
        ("SELECT\u2028* FROM t", "U+2028"),
        ("SELECT * FROM fi/**/le('/etc/passwd')", "comment inside a word"),
        ("SELECT * FROM fi/* a /* nested */ b */le('/etc/passwd')", "comment inside a word"),
        ("SELECT * FROM file/**/('/etc/passwd')", "table function file"),
        ("SELECT * FROM file -- c\n ('/etc/passwd')", "table function file"),
        ("SELECT * FROM `file`('/etc/passwd')", "quoted name called as a function"),
        ('SELECT * FROM "url"(\'http://x\')', "quoted name called as a function"),
        ("SELECT * FROM FILE('/etc/passwd')", "table function FILE"),
        ("SELECT * FROM default.file('/etc/passwd')", "table function file"),
        ("SELECT * FROM Python(x)", "table function Python"),
        ("SELECT * FROM filesystem('/')", "table function filesystem"),
        ("SELECT * FROM mysql('h:3306', 'd', 't', 'u', 'p')", "table function mysql"),
        ("SELECT * FROM remote('10.0.0.1', system.one)", "table function remote"),
        ("SELECT * FROM s3('http://x/y')", "table function s3"),
        ("SELECT * FROM executable('x.sh', 'TSV', 'a String')", "table function executable"),
        ("SELECT * FROM merge(system, '.*')", "table function merge"),
        ("SELECT * FROM cluster('c', system.one)", "table function cluster"),
        ("SELECT * FROM view(SELECT 1)", "table function view"),
        ("SELECT * FROM input('a String')", "table function input"),
        ("SELECT * FROM jdbc('x', 'y')", "table function jdbc"),
        ("SELECT * FROM odbc('x', 'y')", "table function odbc"),
        ("SELECT * FROM postgresql('h', 'd', 't', 'u', 'p')", "table function postgresql"),
        ("SELECT * FROM dictionary('d')", "table function dictionary"),
        ("SELECT * FROM hdfs('hdfs://x')", "table function hdfs"),
        ("SELECT * FROM url('http://169.254.169.254/', 'TSV', 'a String')", "table function url"),
        ("SELECT format('{}', 1)", "table function format"),
        ("SELECT 1 \\ 2", "character '\\\\'"),
        ("SELECT @@version", "character '@'"),
        ("SELECT 1 & 2", "character '&'"),
        ("SELECT #x\n1", "character '#'"),
        ("SELECT ((1)", "unbalanced"),
        ("SELECT 1)) OR ((1", "unbalanced"),
    ],
)
def test_hostile_statements_are_refused_in_one_line(sql, fragment):
    message = _refusal(sql)
    assert fragment.lower() in message.lower(), message


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT count() FROM numbers(1000)",
        "SELECT * FROM numbers_mt(10)",
        "SELECT * FROM zeros(3)",
        "SELECT * FROM generate_series(1, 3)",
        "DESCRIBE case_events",
        "DESC TABLE `case_events`",
        "SHOW TABLES",
        "SHOW TABLES LIKE 'case%'",
        "SHOW CREATE TABLE case_events",
        "SHOW CREATE units",
        "SHOW COLUMNS FROM units",
        "EXPLAIN SELECT 1",
        "EXPLAIN QUERY TREE SELECT 1",
        "EXPLAIN (SELECT 1)",
        "SELECT 'file(''/etc/passwd'')' AS text, 'system.processes', 'ｆｉｌｅ（）\u200b'",
        'SELECT count() AS "số hồ sơ" FROM case_events',
        "SELECT c.unit_id FROM cases AS c FINAL",
        "SELECT arrayMap(x -> x * 2, [1, 2]), 1::UInt8, 1 != 2, 'a' || 'b', 1 ? 2 : 3",
        "SELECT * FROM case_events WHERE occurred_at >= {from:DateTime64(6)} AND unit_id IN {units:Array(String)}",
        "SELECT formatDateTime(now(), '%F'), toStartOfDay(now()) -- no FORMAT clause",
        "SELECT 1e10, 0x1F, 1_000, 1.5e-3",
    ],
)
def test_reads_of_the_project_s_tables_pass(sql):
    check_read_only(sql)
