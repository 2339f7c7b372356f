"""The registry of units (đơn vị): ``deploy/units.csv`` → the ``units`` table.

File format: CSV, UTF-8 (a BOM is tolerated), header exactly naming the columns
``unit_id,name_vi,kind,parent_id,valid_from,valid_to`` (any order, no others):

- ``unit_id`` — short, stable ASCII code (letters, digits, ``_``, ``-``, ``.``), the
  ``unit_id`` that events carry; ``all`` and ``unknown`` are reserved.
- ``name_vi`` — the Vietnamese name.
- ``kind`` — ``department`` (sở), ``commune`` (xã / phường / đặc khu),
  ``service_centre`` (Trung tâm Phục vụ hành chính công) or ``district`` (a
  district-level unit of before the 1 July 2025 reorganisation, kept for history).
- ``parent_id`` — the parent's code or empty (``TINH`` = the province itself).
- ``valid_from`` / ``valid_to`` — ``YYYY-MM-DD``; ``valid_to`` empty while the unit
  exists, and not before ``valid_from``.

One ``unit_id`` may have several rows with different ``valid_from`` (a renamed or
re-parented unit); the pair (``unit_id``, ``valid_from``) must be unique.

The shipped file models a province after the two-level local government reform of
1 July 2025 (names modelled on Quảng Ninh): the service centre first, the merged
departments (valid from 1 March 2025), wards and communes, and four district-level
units that ended on 30 June 2025.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from datetime import date
from os import PathLike
from pathlib import Path
from typing import Iterable

from pipeline.config import UserError

__all__ = ["Unit", "KINDS", "COLUMNS", "load_units", "sync_units", "current_units"]

COLUMNS = ("unit_id", "name_vi", "kind", "parent_id", "valid_from", "valid_to")
KINDS = ("department", "commune", "service_centre", "district")
_RESERVED = frozenset({"all", "unknown"})
_CODE_RE = re.compile(r"[A-Za-z0-9_.\-]{1,64}")


@dataclass(frozen=True, slots=True)
class Unit:
    unit_id: str
    name_vi: str
    kind: str
    parent_id: str | None
    valid_from: date
    valid_to: date | None = None

    def valid_on(self, day: date) -> bool:
        return self.valid_from <= day and (self.valid_to is None or day <= self.valid_to)


def _date(text: str, where: str, column: str) -> date:
    try:
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            raise ValueError
        return date.fromisoformat(text)
    except ValueError:
        raise UserError(f"{where}: {column} must be a date YYYY-MM-DD, got {text!r}") from None


def load_units(path: str | PathLike[str]) -> list[Unit]:
    """Read and check the registry file; raises ``UserError`` (one line, file:line)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise UserError(f"{p}: units file not found") from None
    except IsADirectoryError:
        raise UserError(f"{p}: is a directory, not a units file") from None
    except PermissionError:
        raise UserError(f"{p}: permission denied") from None
    except UnicodeDecodeError:
        raise UserError(f"{p}: the units file must be UTF-8") from None

    reader = csv.reader(text.splitlines())
    try:
        header = next(reader)
    except StopIteration:
        raise UserError(f"{p}: empty units file (expected the header {','.join(COLUMNS)})") from None
    except csv.Error as exc:
        raise UserError(f"{p}:1: bad CSV: {exc}") from None
    header = [h.strip() for h in header]
    missing = [c for c in COLUMNS if c not in header]
    if missing:
        raise UserError(f"{p}:1: missing column(s) {', '.join(missing)} (expected {','.join(COLUMNS)})")
    extra = [h for h in header if h not in COLUMNS]
    if extra:
        raise UserError(f"{p}:1: unknown column(s) {', '.join(extra)} (expected {','.join(COLUMNS)})")
    if len(set(header)) != len(header):
        raise UserError(f"{p}:1: a column appears twice in the header")
    index = {name: header.index(name) for name in COLUMNS}

    units: list[Unit] = []
    seen: dict[tuple[str, date], int] = {}
    line = 1
    try:
        for row in reader:
            line = reader.line_num
            where = f"{p}:{line}"
            if not row or all(not cell.strip() for cell in row):
                continue
            if len(row) != len(header):
                raise UserError(f"{where}: expected {len(header)} fields, got {len(row)}")
            cell = {name: row[i].strip() for name, i in index.items()}
            unit_id = cell["unit_id"]
            if not _CODE_RE.fullmatch(unit_id):
                raise UserError(
                    f"{where}: unit_id must be 1-64 ASCII letters, digits, '_', '-' or '.', got {unit_id!r}"
                )
            if unit_id in _RESERVED:
                raise UserError(f"{where}: unit_id {unit_id!r} is reserved")
            if not cell["name_vi"]:
                raise UserError(f"{where}: name_vi is empty for {unit_id}")
            kind = cell["kind"]
            if kind not in KINDS:
                raise UserError(f"{where}: unknown kind {kind!r} for {unit_id} (expected {', '.join(KINDS)})")
            parent = cell["parent_id"] or None
            if parent is not None and not _CODE_RE.fullmatch(parent):
                raise UserError(f"{where}: parent_id must be an ASCII code like unit_id, got {parent!r}")
            valid_from = _date(cell["valid_from"], where, "valid_from")
            valid_to = _date(cell["valid_to"], where, "valid_to") if cell["valid_to"] else None
            if valid_to is not None and valid_to < valid_from:
                raise UserError(f"{where}: valid_to {valid_to} is before valid_from {valid_from} for {unit_id}")
            ident = (unit_id, valid_from)
            if ident in seen:
                raise UserError(
                    f"{where}: duplicate unit {unit_id} valid from {valid_from} (first on line {seen[ident]})"
                )
            seen[ident] = line
            units.append(Unit(unit_id, cell["name_vi"], kind, parent, valid_from, valid_to))
    except csv.Error as exc:
        raise UserError(f"{p}:{line}: bad CSV: {exc}") from None
    if not units:
        raise UserError(f"{p}: no units in the file")
    return units


def current_units(units: Iterable[Unit], day: date | None = None) -> list[Unit]:
    """The units valid on ``day`` (default today), in file order."""
    day = day or date.today()
    return [u for u in units if u.valid_on(day)]


def sync_units(client, units: Iterable[Unit]) -> int:
    """Insert the registry into ``units`` (one insert; re-running replaces, FINAL reads).

    Rows removed from the file are not deleted from the table.
    """
    data = [(u.unit_id, u.name_vi, u.kind, u.parent_id, u.valid_from, u.valid_to) for u in units]
    if not data:
        return 0
    client.insert("units", data, column_names=list(COLUMNS))
    return len(data)
