"""The registry of units (đơn vị): ``deploy/units.csv`` → the ``units`` table.

File format: CSV, UTF-8 (a BOM is tolerated); lines starting with ``#`` are comments
(the shipped file documents its sources there). The header names the columns
``unit_id,name_vi,kind,parent_id,valid_from,valid_to`` (required, any order) and
optionally ``successor,population,admin_code,dvcqg_code``; no others:

- ``unit_id`` — short, stable ASCII code (letters, digits, ``_``, ``-``, ``.``), the
  ``unit_id`` that events carry; ``all`` and ``unknown`` are reserved.
- ``name_vi`` — the Vietnamese name.
- ``kind`` — ``province`` (the root), ``department`` (sở, ban), ``commune`` (xã /
  phường), ``service_centre`` (Trung tâm Phục vụ hành chính công) or ``district`` (a
  district-level unit of before the 1 July 2025 reorganisation, kept for history).
- ``parent_id`` — the parent's code, empty only for a ``province``.
- ``valid_from`` / ``valid_to`` — ``YYYY-MM-DD``, inclusive; ``valid_to`` empty while the
  unit exists, and not before ``valid_from``.
- ``successor`` — space-separated codes of the units that took over the unit's one-stop
  work the day after its ``valid_to``.
- ``population`` — residents (a whole number) where published, else empty.
- ``admin_code`` — the national administrative unit code where known, else empty.
- ``dvcqg_code`` — the unit's code (``madonvi``) in the national portal's sync calls,
  where known, else empty; one code belongs to one ``unit_id`` (the DVCQG intake,
  ``pipeline.sources.dvcqg``, attributes a call to it).

One ``unit_id`` may have several rows (a renamed or re-parented unit). The loader checks
the whole file (:func:`check_registry`): (``unit_id``, ``valid_from``) unique; the periods
of one ``unit_id`` do not overlap; every parent has a row covering the child's whole
period; a unit whose last period ends names successors, each valid the day after it
ends; following successors from any unit ending before :data:`MERGER_DATE` reaches
units valid on that day. Errors are one line (``UserError``: file:line: ...).

The shipped file holds the new Bắc Ninh province from 1 July 2025 and the former Bắc
Giang province's units of the first half of 2025 (sources in the file's header).
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from datetime import date
from os import PathLike
from pathlib import Path
from typing import Iterable

from pipeline.config import UserError, read_config_file
from pipeline.core.registry import UnitRegistry

__all__ = [
    "Unit",
    "KINDS",
    "COLUMNS",
    "OPTIONAL_COLUMNS",
    "MERGER_DATE",
    "load_units",
    "load_registry",
    "check_registry",
    "sync_units",
    "current_units",
    "UNKNOWN_UNIT_EVENTS_SQL",
]

COLUMNS = ("unit_id", "name_vi", "kind", "parent_id", "valid_from", "valid_to")
OPTIONAL_COLUMNS = ("successor", "population", "admin_code", "dvcqg_code")
KINDS = ("province", "department", "commune", "service_centre", "district")
MERGER_DATE = date(2025, 7, 1)  # Resolution 202/2025/QH15: the new Bắc Ninh province
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
    successors: tuple[str, ...] = ()
    population: int | None = None
    admin_code: str | None = None
    line: int = 0
    dvcqg_code: str | None = None  # line in the file (0 when not read from a file)

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
    raw = read_config_file(p, "units")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise UserError(f"{p}: the units file must be UTF-8") from None

    # comments become empty lines, so csv line numbers stay those of the file
    lines = ["" if ln.lstrip().startswith("#") else ln for ln in text.splitlines()]
    while lines and not lines[0].strip():
        lines.pop(0)
    skipped = len(text.splitlines()) - len(lines)
    reader = csv.reader(lines)
    try:
        header = next(reader)
    except StopIteration:
        raise UserError(f"{p}: empty units file (expected the header {','.join(COLUMNS)})") from None
    except csv.Error as exc:
        raise UserError(f"{p}:1: bad CSV: {exc}") from None
    header = [h.strip() for h in header]
    header_line = skipped + 1
    missing = [c for c in COLUMNS if c not in header]
    if missing:
        raise UserError(
            f"{p}:{header_line}: missing column(s) {', '.join(missing)} (expected {','.join(COLUMNS)})"
        )
    extra = [h for h in header if h not in COLUMNS + OPTIONAL_COLUMNS]
    if extra:
        raise UserError(
            f"{p}:{header_line}: unknown column(s) {', '.join(extra)} "
            f"(expected {','.join(COLUMNS)}[,{','.join(OPTIONAL_COLUMNS)}])"
        )
    if len(set(header)) != len(header):
        raise UserError(f"{p}:{header_line}: a column appears twice in the header")
    index = {name: header.index(name) for name in COLUMNS + OPTIONAL_COLUMNS if name in header}

    units: list[Unit] = []
    seen: dict[tuple[str, date], int] = {}
    dvcqg_owner: dict[str, tuple[str, int]] = {}
    line = 1
    try:
        for row in reader:
            line = reader.line_num
            line += skipped
            where = f"{p}:{line}"
            if not row or all(not cell.strip() for cell in row):
                continue
            if len(row) != len(header):
                raise UserError(f"{where}: expected {len(header)} fields, got {len(row)}")
            cell = {name: row[i].strip() for name, i in index.items()}
            for name in OPTIONAL_COLUMNS:
                cell.setdefault(name, "")
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
            if parent is None and kind != "province":
                raise UserError(f"{where}: parent_id is empty for {unit_id} (only a province has no parent)")
            successors = tuple(cell["successor"].split())
            for succ in successors:
                if not _CODE_RE.fullmatch(succ):
                    raise UserError(f"{where}: successor must be space-separated unit codes, got {succ!r}")
            population = None
            if cell["population"]:
                if not cell["population"].isdigit():
                    raise UserError(f"{where}: population must be a whole number, got {cell['population']!r}")
                population = int(cell["population"])
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
            code = cell["dvcqg_code"]
            if code:
                if not _CODE_RE.fullmatch(code):
                    raise UserError(f"{where}: dvcqg_code must be 1-64 ASCII letters, digits, '_', '-' or '.', got {code!r}")
                owner = dvcqg_owner.setdefault(code, (unit_id, line))
                if owner[0] != unit_id:
                    raise UserError(f"{where}: dvcqg_code {code} of {unit_id} is also {owner[0]}'s (line {owner[1]})")
            units.append(
                Unit(
                    unit_id, cell["name_vi"], kind, parent, valid_from, valid_to,
                    successors, population, cell["admin_code"] or None, line,
                    cell["dvcqg_code"] or None,
                )
            )
    except csv.Error as exc:
        raise UserError(f"{p}:{line}: bad CSV: {exc}") from None
    if not units:
        raise UserError(f"{p}: no units in the file")
    problem = check_registry(units)
    if problem is not None:
        unit, message = problem
        raise UserError(f"{p}:{unit.line}: {message}")
    return units


def load_registry(path: str | PathLike[str]) -> UnitRegistry:
    """The checked file as a :class:`pipeline.core.registry.UnitRegistry`."""
    return UnitRegistry(load_units(path))


def check_registry(units: list[Unit]) -> tuple[Unit, str] | None:
    """The first problem across rows as (row, message), or None (rules: module doc)."""
    by_id: dict[str, list[Unit]] = {}
    for u in units:
        by_id.setdefault(u.unit_id, []).append(u)
    for rows in by_id.values():
        rows.sort(key=lambda u: u.valid_from)
        for before, after in zip(rows, rows[1:]):
            if before.valid_to is None or before.valid_to >= after.valid_from:
                return after, (
                    f"{after.unit_id} valid from {after.valid_from} overlaps its row on line {before.line} "
                    f"(valid {before.valid_from} to {before.valid_to or 'now'})"
                )
    registry = UnitRegistry(units)
    for u in units:
        if u.parent_id is not None and not registry.covers(u.parent_id, u.valid_from, u.valid_to):
            return u, (
                f"parent {u.parent_id} of {u.unit_id} is not in the file for the whole period "
                f"{u.valid_from} to {u.valid_to or 'now'}"
            )
    for u in units:
        last = by_id[u.unit_id][-1]
        if u.successors and u.valid_to is None:
            return u, f"{u.unit_id} has a successor but no valid_to"
        if u is last and u.valid_to is not None and not u.successors:
            return u, f"{u.unit_id} ends on {u.valid_to} but names no successor (column successor)"
        if u.valid_to is not None:
            nxt = date.fromordinal(u.valid_to.toordinal() + 1)
            for succ in u.successors:
                if not registry.valid_on(succ, nxt):
                    return u, f"successor {succ} of {u.unit_id} is not valid on {nxt}, the day after it ends"
    for u in units:
        if u.valid_to is not None and u.valid_to < MERGER_DATE and by_id[u.unit_id][-1] is u:
            reached = registry.successors_on(u.unit_id, u.valid_to, MERGER_DATE)
            if not reached:
                return u, f"following the successors of {u.unit_id} reaches no unit valid on {MERGER_DATE}"
    return None


def current_units(units: Iterable[Unit], day: date | None = None) -> list[Unit]:
    """The units valid on ``day`` (default today), in file order."""
    day = day or date.today()
    return [u for u in units if u.valid_on(day)]


def sync_units(client, units: Iterable[Unit]) -> int:
    """Insert the registry into ``units`` (one insert; re-running replaces, FINAL reads).

    Rows removed from the file are not deleted from the table.
    """
    data = [
        (u.unit_id, u.name_vi, u.kind, u.parent_id, u.valid_from, u.valid_to, list(u.successors), u.population,
         u.admin_code, u.dvcqg_code)
        for u in units
    ]
    if not data:
        return 0
    client.insert("units", data, column_names=list(COLUMNS + OPTIONAL_COLUMNS))
    return len(data)


#: Accepted events whose ``unit_id`` has no row of ``units`` valid on the event's local
#: date (Asia/Ho_Chi_Minh): misspelt codes, units used before they exist or after they end.
#: One row per event; ``python -m pipeline sql`` reads it as ``SELECT * FROM unknown_unit_events``.
UNKNOWN_UNIT_EVENTS_SQL = """
SELECT e.event_id AS event_id, any(e.event_type) AS event_type, any(e.case_id) AS case_id,
       any(e.unit_id) AS unit_id, any(e.occurred_at) AS occurred_at
FROM (SELECT event_id, event_type, case_id, unit_id, occurred_at,
             toDate(occurred_at, 'Asia/Ho_Chi_Minh') AS local_day FROM case_events FINAL) AS e
LEFT JOIN (SELECT unit_id, valid_from, valid_to FROM units FINAL) AS u ON u.unit_id = e.unit_id
GROUP BY e.event_id
HAVING countIf(u.unit_id != '' AND e.local_day >= u.valid_from
               AND (u.valid_to IS NULL OR e.local_day <= u.valid_to)) = 0
"""
