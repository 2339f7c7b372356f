"""A plain-text table of indicator rows (``pipeline.store.batch.batch_indicators``).

Columns (Vietnamese headers): Chỉ số, Đơn vị, Lĩnh vực, Cửa sổ, Đạt/Tổng, Tỷ lệ,
Chỉ tiêu, Đánh giá. Vietnamese letters are single-width, so ``str.ljust`` aligns
(the text is NFC-normalised first so each letter is one code point).
"""

from __future__ import annotations

import unicodedata
from typing import Any, Iterable, Mapping

from pipeline.core.indicators import NAMES_VI

__all__ = ["HEADERS", "format_indicator_table", "format_percent", "format_target", "verdict"]

HEADERS = ("Chỉ số", "Đơn vị", "Lĩnh vực", "Cửa sổ", "Đạt/Tổng", "Tỷ lệ", "Chỉ tiêu", "Đánh giá")
_RIGHT = {4, 5, 6}  # numeric columns are right-aligned
_DASH = "—"
_OPS = {">": ">", ">=": "≥", "=": "="}


def format_percent(value: float | None) -> str:
    """A ratio as a percentage with one decimal: ``0.9567`` → ``"95.7%"``, ``1.0`` → ``"100%"``."""
    if value is None:
        return _DASH
    text = f"{value * 100:.1f}"
    if text.endswith(".0"):
        text = text[:-2]
    return text + "%"


def format_target(op: str, value: float) -> str:
    return f"{_OPS.get(op, op)} {format_percent(value)}"


def verdict(meets_target: bool | None) -> str:
    if meets_target is None:
        return _DASH
    return "Đạt" if meets_target else "Không đạt"


def _label(value: str) -> str:
    return "tất cả" if value == "all" else value


def _cells(row: Mapping[str, Any]) -> list[str]:
    indicator = row["indicator"]
    return [
        NAMES_VI.get(indicator, indicator),
        _label(row["unit"]),
        _label(row["sector"]),
        row["window"],
        f"{row['numerator']}/{row['denominator']}",
        format_percent(row.get("ratio")),
        format_target(row["op"], row["target"]),
        verdict(row.get("meets_target")),
    ]


def format_indicator_table(rows: Iterable[Mapping[str, Any]]) -> str:
    """The rows as an aligned table (header, rule, one line per row), no trailing newline.

    ``Đánh giá`` is ``Đạt`` / ``Không đạt`` from ``meets_target``, ``—`` when there is
    no outcome in the window.
    """
    body = []
    for row in rows:
        body.append([unicodedata.normalize("NFC", c) for c in _cells(row)])
    if not body:
        return "(không có số liệu)"
    widths = [len(h) for h in HEADERS]
    for cells in body:
        for i, c in enumerate(cells):
            widths[i] = max(widths[i], len(c))

    def line(cells) -> str:
        parts = [c.rjust(widths[i]) if i in _RIGHT else c.ljust(widths[i]) for i, c in enumerate(cells)]
        return "  ".join(parts).rstrip()

    out = [line(HEADERS), "  ".join("-" * w for w in widths)]
    out.extend(line(cells) for cells in body)
    return "\n".join(out)
