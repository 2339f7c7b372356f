"""The operator-facing errors and the one rule that turns an exception into one line.

The lowest module of the package (standard library only), so every layer may raise these.
"""

from __future__ import annotations

__all__ = ["UserError", "ConfigError", "one_line"]


class UserError(Exception):
    """A problem the operator can fix; the CLI prints it as one line, no traceback."""


class ConfigError(UserError, ValueError):
    """A configuration value or command-line argument is unusable."""


# what clickhouse-connect and chDB append after the engine's own sentence
_TAIL_MARKERS = (" Stack trace", " (version ")


def one_line(exc: BaseException | str, *, with_type: bool = True, limit: int = 500) -> str:
    """``exc`` as one line: whitespace collapsed, a ClickHouse stack-trace tail cut, prefixed with
    the exception's type name (``with_type``), at most ``limit`` characters. Never empty."""
    text = " ".join(str(exc).split())
    for marker in _TAIL_MARKERS:
        k = text.find(marker)
        if k > 0:
            text = text[:k]
    if isinstance(exc, BaseException):
        name = type(exc).__name__
        text = f"{name}: {text}" if text and with_type else text or name
    return text[:limit]
