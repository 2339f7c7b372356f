"""A plain-text table of indicator rows (``pipeline.store.batch.batch_indicators``), and the
``indicators`` command that prints it.

Columns (Vietnamese headers): Chỉ số, Đơn vị, Lĩnh vực, Cửa sổ, Đạt/Tổng, Tỷ lệ,
Chỉ tiêu, Đánh giá. Vietnamese letters are single-width, so ``str.ljust`` aligns
(the text is NFC-normalised first so each letter is one code point).
"""

from __future__ import annotations

import json
import sys
import time
import unicodedata
from datetime import datetime, timezone
from typing import Any, Iterable, Mapping

from pipeline.access import open_runner
from pipeline.calendar_file import apology_rule
from pipeline.config import Settings, UserError
from pipeline.contract.events import parse_time
from pipeline.core.indicators import NAMES_VI
from pipeline.core.targets import TargetsError
from pipeline.store.batch import batch_indicators, parse_windows  # one parser of --window
from pipeline.targets_file import load_targets

__all__ = ["HEADERS", "format_indicator_table", "parse_at", "print_indicators", "format_percent", "format_target", "verdict"]

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


def parse_at(text: str | None) -> int:
    if text is None:
        return time.time_ns() // 1000
    try:
        return parse_time(text)
    except ValueError:
        raise UserError(f"--at must be an RFC 3339 time with offset, e.g. 2025-07-01T00:00:00+07:00; got {text!r}") from None


def print_indicators(
    settings: Settings,
    *,
    windows: str,
    unit: str | None,
    sector: str | None,
    at: str | None,
    output_format: str,
) -> int:
    window_list = parse_windows(windows)
    at_us = parse_at(at)
    try:
        targets = load_targets(settings.targets_file)
    except TargetsError as exc:
        raise UserError(str(exc)) from None
    rows = batch_indicators(
        open_runner(settings),
        window_list,
        at_us,
        unit=unit,
        sector=sector,
        targets=targets,
        hold_retention_us=settings.hold_retention_us,
        apology=apology_rule(settings.apology_lead),
    )
    if output_format == "json":
        print(json.dumps(rows, ensure_ascii=False, indent=1))
    else:
        stamp = datetime.fromtimestamp(at_us / 1e6, tz=timezone.utc).isoformat()
        print(f"Chỉ số tại thời điểm / indicators at {stamp}")
        print(format_indicator_table(rows))
    if not rows:
        print(
            "chưa có dữ liệu / no data yet for this scope in these windows: check --unit, --sector and --at, "
            "or start the worker (tthc worker) and replay or simulate",
            file=sys.stderr,
        )
    return 0
