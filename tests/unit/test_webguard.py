"""pipeline.webguard and pipeline.secrets: who may query, the bounds, secrets."""

from __future__ import annotations

import logging
import socket
import stat

import pytest

from pipeline.config import ConfigError, UserError, load_settings
from pipeline.secrets import KNOWN, read_secret, redact, remember, with_password, install_log_redaction
from pipeline.store.readonly import ClientRunner
from pipeline.webguard import Refusal, SqlRequest, is_loopback, parse_sql_body, sql_token, web_access


class _StubClient:  # a server client: settings travel with each query
    def __init__(self):
        self.calls = []

    def query(self, sql, parameters=None, settings=None):
        self.calls.append((sql, settings))

        class R:
            column_names = ("one",)
            result_rows = [(1,)]

        return R()


@pytest.mark.parametrize("host,loop", [("127.0.0.1", True), ("127.1.2.3", True), ("::1", True), ("localhost", True),
                                       ("0.0.0.0", False), ("10.0.0.5", False), ("::", False), ("worker.example", False)])
def test_is_loopback(host, loop):
    assert is_loopback(host) is loop


def test_beyond_loopback_needs_a_token(tmp_path):
    settings = load_settings({"TTHC_WEB_HOST": "0.0.0.0", "TTHC_DATA_DIR": str(tmp_path)})
    with pytest.raises(ConfigError, match="TTHC_WEB_HOST=0.0.0.0 listens beyond loopback"):
        web_access(settings, {})
    access = web_access(settings, {"TTHC_SQL_TOKEN": "abcd-1234-token"})
    assert access.refusal(None).status == 401
    assert access.refusal("Bearer wrong") == Refusal(401, "POST /sql: wrong token")
    assert access.refusal("Basic abcd-1234-token").status == 401
    assert access.refusal("Bearer abcd-1234-token") is None
    assert "abcd-1234-token" not in repr(access)
    assert not (tmp_path / "sql-token").exists()  # a token of one's own: nothing generated


def test_without_a_token_one_is_generated_into_the_data_dir_once(tmp_path, capsys):
    # issue 20, finding 5: with no token on loopback, any web page on the host could post a query
    settings = load_settings({"TTHC_DATA_DIR": str(tmp_path)})
    access = web_access(settings, {})
    path = tmp_path / "sql-token"
    token = path.read_text().strip()
    assert len(token) >= 40 and access.token == token
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    first = capsys.readouterr().out
    assert str(path.resolve()) in first and token not in first and len(first.strip().splitlines()) == 1
    assert access.refusal(None).status == 401
    assert access.refusal(f"Bearer {token}") is None
    again = web_access(settings, {})  # a restart: the same token, nothing printed
    assert again.token == token and capsys.readouterr().out == ""
    assert sql_token(settings, {}) == token  # what the sql command sends
    assert sql_token(settings, {"TTHC_SQL_TOKEN": "own-token-1"}) == "own-token-1"
    assert redact(f"x {token} y") == "x *** y"
    path.chmod(0o644)
    with pytest.raises(ConfigError, match="may be read by others"):
        web_access(settings, {})


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"content_type": "text/plain"}, 415),  # a cross-site "simple" POST
        ({"content_type": "application/x-www-form-urlencoded"}, 415),
        ({"content_type": "multipart/form-data; boundary=x"}, 415),
        ({"content_type": None}, 415),
        ({"content_type": "application/json; charset=utf-8"}, None),
        ({"host": "evil.example"}, 421),  # DNS rebinding: the attacker's name
        ({"host": "evil.example:6066"}, 421),
        ({"host": None}, 421),
        ({"host": "127.0.0.1:6066"}, None),
        ({"host": "localhost"}, None),
        ({"host": "[::1]:6066"}, None),
        ({"host": "LOCALHOST:6066"}, None),
    ],
)
def test_content_type_and_host_are_checked(tmp_path, headers, status):
    access = web_access(load_settings({"TTHC_DATA_DIR": str(tmp_path)}), {"TTHC_SQL_TOKEN": "tok-abcdef"})
    refusal = access.refusal("Bearer tok-abcdef", **headers)
    assert (refusal.status if refusal else None) == status
    if refusal:
        assert "\n" not in refusal.message
    # the Host is checked before the token: a rebinding page learns nothing more
    if status == 421:
        assert access.refusal(None, **headers).status == 421


def test_bound_to_all_addresses_the_machine_name_is_a_host_too(tmp_path):
    access = web_access(load_settings({"TTHC_WEB_HOST": "0.0.0.0", "TTHC_DATA_DIR": str(tmp_path)}),
                        {"TTHC_SQL_TOKEN": "tok-abcdef"})
    assert access.refusal("Bearer tok-abcdef", host=f"{socket.gethostname()}:6066") is None
    assert access.refusal("Bearer tok-abcdef", host="0.0.0.0").status == 421


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        (b"", "not JSON"),
        (b"SELECT 1", "not JSON"),
        (b"\xff\xfe", "not JSON"),
        (b'["SELECT 1"]', "must be a JSON object"),
        (b'"SELECT 1"', "must be a JSON object"),
        (b"null", "must be a JSON object"),
        (b"42", "must be a JSON object"),
        (b'{"query": 1}', "query must be a string"),
        (b'{"parameters": {}}', "query must be a string"),
        (b'{"query": "SELECT 1", "parameters": []}', "parameters must be a JSON object"),
        (b'{"query": "SELECT 1", "parameters": {"a": {"b": 1}}}', "a parameter is"),
        (b'{"query": "SELECT 1", "settings": {"readonly": 0}}', "unknown fields"),
    ],
)
def test_a_body_that_is_not_a_query_object_is_one_line(raw, fragment):
    with pytest.raises(UserError) as info:
        parse_sql_body(raw)
    assert fragment in str(info.value) and "\n" not in str(info.value)


def test_a_query_body():
    assert parse_sql_body(b'{"query": "SELECT 1"}') == SqlRequest("SELECT 1", {})
    assert parse_sql_body(b'{"query": "SELECT {a:UInt8}", "parameters": {"a": 1}}').parameters == {"a": 1}


def test_every_query_of_the_endpoint_carries_readonly_and_the_bounds_last_readonly(tmp_path):
    settings = load_settings({"TTHC_SQL_MAX_SECONDS": "7", "TTHC_SQL_MAX_ROWS": "10", "TTHC_SQL_MAX_BYTES": "999",
                              "TTHC_SQL_MAX_MEMORY": "12345678", "TTHC_DATA_DIR": str(tmp_path)})
    limits = web_access(settings, {}).limits.settings()
    client = _StubClient()
    ClientRunner(client, check=False, settings=limits).query("SELECT 1")
    sent = client.calls[0][1]
    assert sent == {"max_execution_time": 7.0, "timeout_overflow_mode": "throw", "max_result_rows": 10,
                    "max_result_bytes": 999, "result_overflow_mode": "throw", "max_memory_usage": 12345678,
                    "readonly": 1}
    assert list(sent)[-1] == "readonly"
    # a caller cannot drop readonly through the settings
    ClientRunner(client, settings={"readonly": 0, "max_result_rows": 1}).query("SELECT 1")
    assert client.calls[-1][1] == {"max_result_rows": 1, "readonly": 1}


def test_the_default_bounds_are_low():
    settings = load_settings({})
    assert (settings.sql_max_seconds, settings.sql_max_rows, settings.sql_max_bytes, settings.sql_max_memory) == (
        30.0, 100_000, 64 * 1024 * 1024, 1024 * 1024 * 1024)


def test_secrets_from_env_or_file_and_never_both(tmp_path):
    f = tmp_path / "s"
    f.write_text("  file-secret-value \n")
    assert read_secret("TTHC_SQL_TOKEN", {"TTHC_SQL_TOKEN_FILE": str(f)}) == "file-secret-value"
    assert read_secret("TTHC_SQL_TOKEN", {"TTHC_SQL_TOKEN": "env-secret-value"}) == "env-secret-value"
    assert read_secret("TTHC_SQL_TOKEN", {}) is None
    with pytest.raises(ConfigError, match="not both"):
        read_secret("TTHC_SQL_TOKEN", {"TTHC_SQL_TOKEN": "a", "TTHC_SQL_TOKEN_FILE": str(f)})
    with pytest.raises(ConfigError, match="cannot read") as err:
        read_secret("TTHC_SQL_TOKEN", {"TTHC_SQL_TOKEN_FILE": str(tmp_path / "missing")})
    assert "\n" not in str(err.value)


def test_redaction_of_known_secrets_and_url_passwords():
    remember("hunter2-secret")
    assert redact("token hunter2-secret here") == "token *** here"
    assert redact("http://u:p%40ss@host:8123/db failed") == "http://u:***@host:8123/db failed"
    dsn = with_password("http://tthc@ch:8123/tthc", "pa:ss/word")
    assert dsn == "http://tthc:pa%3Ass%2Fword@ch:8123/tthc"
    assert "pa%3Ass%2Fword" in KNOWN and redact(dsn) == "http://tthc:***@ch:8123/tthc"


def test_log_records_are_redacted_with_tracebacks(capsys):
    install_log_redaction()
    remember("log-secret-777")
    logger = logging.getLogger("tthc-test-redaction")
    handler = logging.StreamHandler()
    logger.addHandler(handler)
    try:
        try:
            raise RuntimeError("cannot connect to http://u:log-secret-777@h/db")
        except RuntimeError:
            logger.exception("failed with %s", "log-secret-777")
    finally:
        logger.removeHandler(handler)
    err = capsys.readouterr().err
    assert "log-secret-777" not in err and "failed with ***" in err and "RuntimeError" in err


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("first-line-secret\nsecond-line\n", "holds 2 non-empty lines; a secret is one line"),
        ("line-one\r\nline-two\r\nline-three", "holds 3 non-empty lines"),
        ("abc\n", "shorter than 4 characters"),
        ("x", "shorter than 4 characters"),
        ("  \n\n", "is empty"),
    ],
)
def test_a_secret_is_one_line_of_four_characters_or_more(tmp_path, text, fragment):
    # issue 20, finding 7: the client used the first line, the redactor the whole file;
    # secrets shorter than 4 characters were never redacted
    f = tmp_path / "s"
    f.write_text(text)
    for environ in ({"TTHC_SQL_TOKEN_FILE": str(f)}, {"TTHC_SQL_TOKEN": text}):
        with pytest.raises(ConfigError) as info:
            read_secret("TTHC_SQL_TOKEN", environ)
        message = str(info.value)
        assert fragment in message.replace("must not be empty", "is empty"), message
        assert "\n" not in message and (len(text.strip()) < 4 or text.strip().splitlines()[0] not in message)
    f.write_text("\n  four-chars-ok  \n\n")
    assert read_secret("TTHC_SQL_TOKEN", {"TTHC_SQL_TOKEN_FILE": str(f)}) == "four-chars-ok"
    assert redact("x four-chars-ok") == "x ***"


def test_a_short_password_in_the_dsn_is_refused():
    with pytest.raises(ConfigError, match="shorter than 4"):
        with_password("http://u:pw@h:8123/db", None)
