"""The intake's request logic: accounts, sessions, slowed logins, the checks of a call."""

from __future__ import annotations

import json

import pytest

from pipeline.config import UserError
from pipeline.intake.calls import (
    MALFORMED,
    NO_SESSION,
    OK,
    SOME_REFUSED,
    UNKNOWN_SERVICE,
    LoginGuard,
    Sessions,
    check_call,
    load_accounts,
)


def test_accounts_file(tmp_path):
    path = tmp_path / "accounts"
    path.write_text("# one line per sending system\nigate s3cret-pass-1\n\nopencps another-pass-2\n", encoding="utf-8")
    accounts = load_accounts(path)
    assert accounts.check("igate", "s3cret-pass-1") and not accounts.check("igate", "s3cret-pass-2")
    assert not accounts.check("nobody", "s3cret-pass-1") and not accounts.check(None, None)
    assert "s3cret" not in repr(accounts)
    for text, message in [("igate\n", "expected `username password`"), ("a short\n", "shorter than 8"),
                          ("a 12345678\na 12345678\n", "appears twice"), ("# none\n", "no account")]:
        path.write_text(text, encoding="utf-8")
        with pytest.raises(UserError, match=message) as info:
            load_accounts(path)
        assert "12345678" not in str(info.value)


def test_sessions_expire():
    sessions = Sessions(ttl=60)
    token = sessions.open("igate", now=1000.0)
    assert sessions.user(token, 1059.0) == "igate"
    assert sessions.user(token, 1060.0) is None and sessions.user(token, 1000.0) is None  # gone once expired
    assert sessions.user("forged", 1000.0) is None and sessions.user(None, 1000.0) is None
    small = Sessions(ttl=60, max_sessions=2)
    first = small.open("a", 0.0)
    small.open("b", 0.0)
    small.open("c", 0.0)
    assert small.user(first, 1.0) is None  # the oldest made room


def test_failed_logins_are_slowed_per_account_and_per_address():
    guard = LoginGuard(base=0.25, cap=8.0, window=900)
    delays = [guard.failed("igate", "10.0.0.1", now=float(i)) for i in range(7)]
    assert delays == [0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 8.0]
    assert guard.failed("other", "10.0.0.1", 8.0) == 8.0  # the same address: still slow
    assert guard.failed("igate", "10.0.0.2", 9.0) == 8.0  # the same account from elsewhere: still slow
    assert guard.failed("fresh", "10.0.0.3", 10.0) == 0.25
    guard.succeeded("fresh", "10.0.0.3")
    assert guard.failed("fresh", "10.0.0.3", 11.0) == 0.25
    assert guard.failed("igate", "10.0.0.9", 2000.0) == 0.25  # outside the window: forgotten


def _call(body, sessions=None, now=0.0):
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return check_call(raw, arrived_us=1, account="file:x", sessions=sessions, now=now)


def test_every_bad_call_has_its_error_code_and_a_reason():
    sessions = Sessions(ttl=60)
    token = sessions.open("igate", 0.0)
    ok = {"session": token, "service": "DongBoHoSoMC", "madonvi": "000.00.00.H24", "data": [{"MaHoSo": "A"}]}
    assert _call(b"{not json", sessions).error["error_code"] == MALFORMED
    assert _call(b"[1]", sessions).error["error_code"] == MALFORMED
    assert _call({**ok, "data": {"MaHoSo": "A"}}, sessions).error["error_code"] == MALFORMED
    assert _call({**ok, "session": "forged"}, sessions).error["error_code"] == NO_SESSION
    assert _call(ok, sessions, now=61.0).error["error_code"] == NO_SESSION  # expired
    unknown = _call({**ok, "session": sessions.open("igate", 0.0), "service": "XoaHoSo"}, sessions).error
    assert unknown["error_code"] == UNKNOWN_SERVICE and "XoaHoSo" in unknown["message"]
    good = _call({**ok, "session": sessions.open("igate", 0.0)}, sessions)
    assert good.error is None and good.answer_after_store()["error_code"] == OK
    assert good.records[0].account == "igate"


def test_a_call_with_a_dossier_without_mahoso_keeps_the_good_records():
    check = _call({"service": "DongBoHoSoMC", "madonvi": "M", "data": [
        {"MaHoSo": "A", "ChuHoSo": "Nguyễn Văn Riêng"}, {"TrangThaiHoSo": 2}, {"MaHoSo": "B"}]})
    assert [r.key for r in check.records] == ["A", "B"]
    reply = check.answer_after_store()
    assert reply["error_code"] == SOME_REFUSED and reply["refused"] == [{"index": 1, "reason": "MaHoSo is missing"}]
    assert "thiếu MaHoSo" in reply["message"] and "Riêng" not in json.dumps(reply, ensure_ascii=False)
    assert all("ChuHoSo" not in r.data for r in check.records)


def test_beyond_loopback_only_over_tls(tmp_path):
    import subprocess

    from pipeline.config import load_settings
    from pipeline.intake.server import _tls

    def settings(**env):
        return load_settings({f"TTHC_INTAKE_{k.upper()}": v for k, v in env.items()})

    assert _tls(settings()) is None  # loopback, plain HTTP
    assert _tls(settings(host="::1")) is None
    with pytest.raises(UserError, match="listens beyond loopback"):
        _tls(settings(host="0.0.0.0"))
    with pytest.raises(UserError, match="set both TTHC_INTAKE_TLS_CERT and TTHC_INTAKE_TLS_KEY"):
        _tls(settings(host="0.0.0.0", tls_cert=str(tmp_path / "c.pem")))
    with pytest.raises(UserError, match="cannot load the intake's TLS certificate"):
        _tls(settings(host="0.0.0.0", tls_cert=str(tmp_path / "c.pem"), tls_key=str(tmp_path / "k.pem")))
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=intake",
                    "-keyout", str(tmp_path / "k.pem"), "-out", str(tmp_path / "c.pem")], check=True,
                   capture_output=True)
    context = _tls(settings(host="0.0.0.0", tls_cert=str(tmp_path / "c.pem"), tls_key=str(tmp_path / "k.pem")))
    assert context is not None
