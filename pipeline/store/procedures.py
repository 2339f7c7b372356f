"""The procedure catalogue: ``deploy/procedures.csv`` -> :class:`pipeline.core.catalogue.Catalogue`.

File format: CSV, UTF-8, ``#`` comment lines (the shipped file names its sources there),
header ``procedure_code,name_vi,sector,days,full_online,has_fee`` and optionally ``basis``
(the legal text of ``days``). ``procedure_code``: 1-64 characters, unique; ``sector``: a
code of the sectors file; ``days``: a whole number of working days (0 = the same day);
``full_online``, ``has_fee``: 0 or 1. Errors: one line ``UserError`` (file:line).
"""

from __future__ import annotations

import csv
from os import PathLike
from pathlib import Path

from pipeline.config import PROJECT_ROOT, UserError
from pipeline.core.catalogue import Catalogue, Procedure
from pipeline.store.sectors import load_sectors

__all__ = ["load_procedures", "load_catalogue", "DEFAULT_PROCEDURES_FILE", "COLUMNS"]

DEFAULT_PROCEDURES_FILE = PROJECT_ROOT / "deploy" / "procedures.csv"
COLUMNS = ("procedure_code", "name_vi", "sector", "days", "full_online", "has_fee")
_OPTIONAL = ("basis",)
_MAX_DAYS = 365


def _flag(text: str, where: str, column: str) -> bool:
    if text not in ("0", "1"):
        raise UserError(f"{where}: {column} must be 0 or 1, got {text!r}")
    return text == "1"


def load_procedures(
    path: str | PathLike[str] | None = None, sectors: frozenset[str] | None = None
) -> list[Procedure]:
    """Read and check the catalogue (default ``deploy/procedures.csv``), in file order.
    ``sectors``: the known sector codes (default: ``deploy/sectors.csv``)."""
    p = Path(path) if path is not None else DEFAULT_PROCEDURES_FILE
    try:
        text = p.read_text(encoding="utf-8-sig")
    except (FileNotFoundError, IsADirectoryError, PermissionError) as exc:
        raise UserError(f"{p}: cannot read the procedures file ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise UserError(f"{p}: the procedures file must be UTF-8") from None
    if sectors is None:
        sectors = frozenset(s.sector for s in load_sectors())
    lines = ["" if ln.lstrip().startswith("#") else ln for ln in text.splitlines()]
    reader = csv.reader(lines)
    header: list[str] | None = None
    out: list[Procedure] = []
    seen: dict[str, int] = {}
    try:
        for row in reader:
            line = reader.line_num
            where = f"{p}:{line}"
            if not row or all(not c.strip() for c in row):
                continue
            cells = [c.strip() for c in row]
            if header is None:
                if tuple(cells) not in (COLUMNS, COLUMNS + _OPTIONAL):
                    raise UserError(f"{where}: the header must be {','.join(COLUMNS)}[,basis], got {','.join(cells)}")
                header = cells
                continue
            if len(cells) != len(header):
                raise UserError(f"{where}: expected {len(header)} fields, got {len(cells)}")
            cell = dict(zip(header, cells))
            code = cell["procedure_code"]
            if not 1 <= len(code) <= 64 or not code.isascii() or any(ch.isspace() for ch in code):
                raise UserError(f"{where}: procedure_code must be 1-64 ASCII characters without spaces, got {code!r}")
            if code in seen:
                raise UserError(f"{where}: duplicate procedure {code} (first on line {seen[code]})")
            if not cell["name_vi"]:
                raise UserError(f"{where}: name_vi is empty for {code}")
            if cell["sector"] not in sectors:
                raise UserError(f"{where}: sector {cell['sector']!r} of {code} is not in the sectors file")
            days = cell["days"]
            if not days.isdigit() or int(days) > _MAX_DAYS:
                raise UserError(f"{where}: days must be a whole number of working days 0-{_MAX_DAYS}, got {days!r}")
            seen[code] = line
            out.append(
                Procedure(
                    code, cell["name_vi"], cell["sector"], int(days),
                    _flag(cell["full_online"], where, "full_online"), _flag(cell["has_fee"], where, "has_fee"),
                    cell.get("basis", ""),
                )
            )
    except csv.Error as exc:
        raise UserError(f"{p}: bad CSV: {exc}") from None
    if not out:
        raise UserError(f"{p}: no procedures in the file")
    return out


def load_catalogue(path: str | PathLike[str] | None = None) -> Catalogue:
    return Catalogue(load_procedures(path))
