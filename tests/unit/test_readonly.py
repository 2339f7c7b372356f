"""pipeline.store.readonly: the statement check and the runner's read-only setting."""

from __future__ import annotations

import pytest

from pipeline.config import UserError
from pipeline.store.readonly import ClientRunner, QueryError, QueryRunner, check_read_only, strip_sql

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


def test_strip_sql_keeps_positions_of_code():
    assert strip_sql("SELECT 'a;b' -- c\n, 2") == "SELECT ''  \n, 2"
    assert strip_sql("SELECT /* x */ 1") == "SELECT   1"


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
