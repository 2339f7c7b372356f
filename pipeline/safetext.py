"""Text that leaves the pipeline for a spreadsheet or a terminal, made harmless there.

- :func:`spreadsheet_cell`: a CSV cell that a spreadsheet would read as a formula
  (text beginning with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return, or the
  full-width ``＝``, ``＋``, ``－``, ``＠`` that some spreadsheets also take as formula
  signs) gets a leading ``'``: shown as text, never evaluated (``=HYPERLINK(…)`` stays a
  string). Only text is touched; numbers stay numbers (``-3`` from a number column is
  written as ``-3``). The report CSVs and ``sql --format csv`` write every cell through
  it (:func:`csv_row`).
- :func:`terminal_text`: control characters (C0 but nothing, DEL, C1) and the Unicode
  bidirectional controls become visible escapes (``\\x1b``, ``\\n``, ``\\u202e``), so a
  value cannot move the cursor, recolour or retitle the terminal, or reorder what the
  reader sees. ``sql --format table`` prints every name and value through it.
"""

from __future__ import annotations

import re
from typing import Any, Iterable

__all__ = ["FORMULA_STARTS", "csv_row", "spreadsheet_cell", "terminal_text"]

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\uff1d", "\uff0b", "\uff0d", "\uff20")
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def spreadsheet_cell(value: Any) -> Any:
    """``value``, with a leading ``'`` when it is text a spreadsheet would evaluate."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def csv_row(values: Iterable[Any]) -> list[Any]:
    return [spreadsheet_cell(v) for v in values]


def _escape(match: re.Match) -> str:
    c = match.group(0)
    if c in _NAMED:
        return _NAMED[c]
    code = ord(c)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def terminal_text(text: str) -> str:
    """``text`` with every control character shown as an escape (module doc)."""
    return _CONTROL.sub(_escape, text)
