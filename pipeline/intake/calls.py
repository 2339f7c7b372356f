"""The intake's request logic, free of aiohttp and Kafka: accounts, sessions, slowed
failed logins, and the checks of one sync call (``docs/intake.md``).

Answers (``error_code``; the HTTP status is 200 for all, as DVCQG senders read the body):

====  =================================================================================
0     the call's records are in Kafka (``acks=all``)
-1    login refused: wrong username or password
1     malformed request: not JSON, not an object, ``data`` not a list of objects
2     no session, an unknown one or an expired one: log in again
3     unknown service (the message names it)
4     request too large (more than ``TTHC_INTAKE_MAX_BYTES``)
5     some records refused (each named by its index and reason); the others are stored
6     storage unavailable (Kafka did not acknowledge): nothing is confirmed, send again
====  =================================================================================

Messages are Vietnamese (the senders' operators read them) and never quote a record's
content: a reason names a field, never its value.
"""

from __future__ import annotations

import hmac
import json
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.config import UserError
from pipeline.secrets import remember
from pipeline.sources.dvcqg.records import SERVICES, RawRecord, split_call

__all__ = [
    "OK", "LOGIN_REFUSED", "MALFORMED", "NO_SESSION", "UNKNOWN_SERVICE", "TOO_LARGE", "SOME_REFUSED",
    "UNAVAILABLE", "Accounts", "load_accounts", "Sessions", "LoginGuard", "CallCheck", "check_call", "answer",
]

OK, LOGIN_REFUSED, MALFORMED, NO_SESSION, UNKNOWN_SERVICE, TOO_LARGE, SOME_REFUSED, UNAVAILABLE = 0, -1, 1, 2, 3, 4, 5, 6
_MAX_REASONS = 20  # refused records named in one answer (the count is always given)


def answer(code: int, message: str, **extra: Any) -> dict[str, Any]:
    return {"error_code": code, "message": message, **extra}


# --------------------------------------------------------------------------- accounts


@dataclass(frozen=True)
class Accounts:
    """username -> password, from the secrets file (``TTHC_INTAKE_ACCOUNTS_FILE``)."""

    passwords: dict[str, str] = field(repr=False)

    def check(self, username: Any, password: Any) -> bool:
        if not isinstance(username, str) or not isinstance(password, str):
            return False
        expected = self.passwords.get(username)
        # compare even for an unknown user, so both cost the same
        ok = hmac.compare_digest((expected or "\0" * 32).encode(), password.encode())
        return expected is not None and ok


def load_accounts(path: str | Path) -> Accounts:
    """One ``username password`` per line (``#`` comments, blank lines); one line errors."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{p}: cannot read the intake accounts file ({getattr(exc, 'strerror', None) or exc})") from None
    passwords: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split()
        if len(parts) != 2:
            raise UserError(f"{p}:{number}: expected `username password` (2 words)")  # never echo the line
        user, password = parts
        if len(password) < 8:
            raise UserError(f"{p}:{number}: the password of {user} is shorter than 8 characters")
        if user in passwords:
            raise UserError(f"{p}:{number}: account {user} appears twice")
        passwords[user] = remember(password) or password
    if not passwords:
        raise UserError(f"{p}: no account in the intake accounts file")
    return Accounts(passwords)


# --------------------------------------------------------------------------- sessions


class Sessions:
    """Opaque session tokens, each valid ``ttl`` seconds after its login."""

    def __init__(self, ttl: float, max_sessions: int = 10_000) -> None:
        self.ttl = ttl
        self.max_sessions = max_sessions
        self._by_token: dict[str, tuple[str, float]] = {}

    def open(self, username: str, now: float) -> str:
        if len(self._by_token) >= self.max_sessions:
            self.expire(now)
            while len(self._by_token) >= self.max_sessions:  # still full: the oldest go
                self._by_token.pop(next(iter(self._by_token)))
        token = secrets.token_urlsafe(32)
        self._by_token[token] = (username, now + self.ttl)
        return token

    def user(self, token: Any, now: float) -> str | None:
        if not isinstance(token, str):
            return None
        found = self._by_token.get(token)
        if found is None:
            return None
        if found[1] <= now:
            del self._by_token[token]
            return None
        return found[0]

    def expire(self, now: float) -> None:
        for token in [t for t, (_u, until) in self._by_token.items() if until <= now]:
            del self._by_token[token]


class LoginGuard:
    """Failed logins slow the next answers, per account and per address: after n failures
    (within ``window`` seconds) a failed login waits min(``base`` × 2^(n-1), ``cap``) s."""

    def __init__(self, base: float = 0.25, cap: float = 8.0, window: float = 900.0, max_keys: int = 50_000) -> None:
        self.base, self.cap, self.window, self.max_keys = base, cap, window, max_keys
        self._failures: dict[str, tuple[int, float]] = {}

    def _count(self, key: str, now: float) -> int:
        found = self._failures.get(key)
        if found is None or now - found[1] > self.window:
            return 0
        return found[0]

    def failed(self, username: str, address: str, now: float) -> float:
        """Record a failure; the delay before answering it (seconds)."""
        if len(self._failures) >= self.max_keys:
            self._failures = {k: v for k, v in self._failures.items() if now - v[1] <= self.window}
            if len(self._failures) >= self.max_keys:
                self._failures.clear()
        worst = 0
        for key in (f"user:{username}", f"addr:{address}"):
            count = self._count(key, now) + 1
            self._failures[key] = (count, now)
            worst = max(worst, count)
        return min(self.base * 2 ** (worst - 1), self.cap)

    def succeeded(self, username: str, address: str) -> None:
        self._failures.pop(f"user:{username}", None)
        self._failures.pop(f"addr:{address}", None)


# --------------------------------------------------------------------------- one call


@dataclass
class CallCheck:
    """A checked sync call: the records to store, or the answer to give at once."""

    records: list[RawRecord] = field(default_factory=list)
    refused: list[tuple[int, str]] = field(default_factory=list)
    error: dict[str, Any] | None = None
    service: str = ""

    def answer_after_store(self) -> dict[str, Any]:
        """The answer once ``records`` are in Kafka."""
        if not self.refused:
            return answer(OK, f"Đã nhận {len(self.records)} bản ghi.", received=len(self.records))
        named = "; ".join(f"bản ghi {i}: {_VI_REASONS.get(r, r)}" for i, r in self.refused[:_MAX_REASONS])
        more = f" (và {len(self.refused) - _MAX_REASONS} bản ghi khác)" if len(self.refused) > _MAX_REASONS else ""
        return answer(
            SOME_REFUSED,
            f"Đã nhận {len(self.records)} bản ghi; {len(self.refused)} bản ghi bị từ chối: {named}{more}.",
            received=len(self.records), refused=[{"index": i, "reason": r} for i, r in self.refused],
        )


_VI_REASONS = {
    "MaHoSo is missing": "thiếu MaHoSo",
    "MaHoSo is longer than 64 characters": "MaHoSo dài quá 64 ký tự",
    "a record must be a JSON object": "bản ghi không phải đối tượng JSON",
    "a rating summary needs the call's madonvi": "thiếu madonvi của đơn vị",
}


def parse_login(body: bytes) -> tuple[Any, Any] | None:
    try:
        obj = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    if not isinstance(obj, dict):
        return None
    return obj.get("username"), obj.get("password")


def check_call(body: bytes, *, arrived_us: int, account: str, sessions: Sessions | None, now: float) -> CallCheck:
    """Check one call's body (``sessions`` None: file mode, no session needed)."""
    try:
        obj = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        detail = f" ({exc.msg}, ký tự {exc.pos})" if isinstance(exc, json.JSONDecodeError) else ""
        return CallCheck(error=answer(MALFORMED, f"Yêu cầu không phải JSON hợp lệ{detail}."))
    except RecursionError:
        return CallCheck(error=answer(MALFORMED, "Yêu cầu JSON lồng nhau quá sâu."))
    if not isinstance(obj, dict):
        return CallCheck(error=answer(MALFORMED, "Yêu cầu phải là một đối tượng JSON."))
    if sessions is not None:
        user = sessions.user(obj.get("session"), now)
        if user is None:
            return CallCheck(error=answer(NO_SESSION, "Phiên làm việc không hợp lệ hoặc đã hết hạn; đăng nhập lại."))
        account = user
    service = obj.get("service")
    if service not in SERVICES:
        shown = json.dumps(service, ensure_ascii=False)[:60] if isinstance(service, (str, type(None))) else "?"
        return CallCheck(error=answer(UNKNOWN_SERVICE, f"Dịch vụ {shown} không được hỗ trợ "
                                                       f"(chỉ {', '.join(SERVICES)})."))
    data = obj.get("data")
    if not isinstance(data, list):
        return CallCheck(error=answer(MALFORMED, "Trường data phải là một mảng bản ghi."), service=service)
    good, bad = split_call(obj, arrived_us=arrived_us, account=account)
    return CallCheck(records=good, refused=bad, service=service)
