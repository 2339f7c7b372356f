"""pipeline.stream.webguard and pipeline.secrets: who may query, the bounds, secrets."""

from __future__ import annotations

import logging

import pytest

from pipeline.config import ConfigError, load_settings
from pipeline.secrets import KNOWN, read_secret, redact, remember, with_password, install_log_redaction
from pipeline.store.readonly import ClientRunner
from pipeline.stream.webguard import is_loopback, web_access


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


def test_beyond_loopback_needs_a_token():
    settings = load_settings({"TTHC_WEB_HOST": "0.0.0.0"})
    with pytest.raises(ConfigError, match="TTHC_WEB_HOST=0.0.0.0 listens beyond loopback"):
        web_access(settings, {})
    access = web_access(settings, {"TTHC_SQL_TOKEN": "abcd-1234-token"})
    assert access.refusal(None) is not None
    assert access.refusal("Bearer wrong") == "POST /sql: wrong token"
    assert access.refusal("Basic abcd-1234-token") is not None
    assert access.refusal("Bearer abcd-1234-token") is None
    assert "abcd-1234-token" not in repr(access)


def test_loopback_without_a_token_is_open_and_with_one_guarded():
    settings = load_settings({})
    assert web_access(settings, {}).refusal(None) is None
    assert web_access(settings, {"TTHC_SQL_TOKEN": "tok-loop-1"}).refusal(None) is not None


def test_every_query_of_the_endpoint_carries_readonly_and_the_bounds_last_readonly():
    settings = load_settings({"TTHC_SQL_MAX_SECONDS": "7", "TTHC_SQL_MAX_ROWS": "10", "TTHC_SQL_MAX_BYTES": "999"})
    limits = web_access(settings, {}).limits.settings()
    client = _StubClient()
    ClientRunner(client, check=False, settings=limits).query("SELECT 1")
    sent = client.calls[0][1]
    assert sent == {"max_execution_time": 7.0, "max_result_rows": 10, "max_result_bytes": 999,
                    "result_overflow_mode": "throw", "readonly": 1}
    assert list(sent)[-1] == "readonly"
    # a caller cannot drop readonly through the settings
    ClientRunner(client, settings={"readonly": 0, "max_result_rows": 1}).query("SELECT 1")
    assert client.calls[-1][1] == {"max_result_rows": 1, "readonly": 1}


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
