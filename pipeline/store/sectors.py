"""The sectors (lĩnh vực): ``deploy/sectors.csv`` -> codes and Vietnamese names.

File format: CSV, UTF-8, ``#`` comment lines, header ``sector,name_vi`` and optionally
``dvcqg_code`` (the national sector code, ``MaLinhVuc`` of a DVCQG sync call; empty when
unknown; unique where given). Codes are
ASCII (lower-case letters, digits, ``_``), unique, not ``all`` / ``unknown`` (scope
labels); names are non-empty and unique. Errors: one line ``UserError`` (file:line).
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from os import PathLike
from pathlib import Path

from pipeline.config import PROJECT_ROOT, UserError

__all__ = ["Sector", "load_sectors", "DEFAULT_SECTORS_FILE"]

_CODE_RE = re.compile(r"[a-z0-9_]{1,64}")
_RESERVED = frozenset({"all", "unknown"})


DEFAULT_SECTORS_FILE = PROJECT_ROOT / "deploy" / "sectors.csv"


@dataclass(frozen=True, slots=True)
class Sector:
    sector: str
    name_vi: str
    dvcqg_code: str | None = None


def load_sectors(path: str | PathLike[str] | None = None) -> list[Sector]:
    """Read and check the sectors file (default ``deploy/sectors.csv``), in file order."""
    p = Path(path) if path is not None else DEFAULT_SECTORS_FILE
    try:
        text = p.read_text(encoding="utf-8-sig")
    except (FileNotFoundError, IsADirectoryError, PermissionError) as exc:
        raise UserError(f"{p}: cannot read the sectors file ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise UserError(f"{p}: the sectors file must be UTF-8") from None
    lines = ["" if ln.lstrip().startswith("#") else ln for ln in text.splitlines()]
    reader = csv.reader(lines)
    header: list[str] | None = None
    sectors: list[Sector] = []
    seen: dict[str, int] = {}
    names: dict[str, int] = {}
    nationals: dict[str, int] = {}
    try:
        for row in reader:
            line = reader.line_num
            if not row or all(not c.strip() for c in row):
                continue
            cells = [c.strip() for c in row]
            if header is None:
                if cells not in (["sector", "name_vi"], ["sector", "name_vi", "dvcqg_code"]):
                    raise UserError(
                        f"{p}:{line}: the header must be sector,name_vi[,dvcqg_code], got {','.join(cells)}"
                    )
                header = cells
                continue
            if len(cells) != len(header):
                raise UserError(f"{p}:{line}: expected {len(header)} fields, got {len(cells)}")
            code, name = cells[0], cells[1]
            national = cells[2] if len(cells) > 2 and cells[2] else None
            if national is not None:
                if national in nationals:
                    raise UserError(f"{p}:{line}: dvcqg_code {national!r} is also used on line {nationals[national]}")
                nationals[national] = line
            if not _CODE_RE.fullmatch(code) or code in _RESERVED:
                raise UserError(f"{p}:{line}: sector must be a lower-case ASCII code (not all/unknown), got {code!r}")
            if not name:
                raise UserError(f"{p}:{line}: name_vi is empty for {code}")
            if code in seen:
                raise UserError(f"{p}:{line}: duplicate sector {code} (first on line {seen[code]})")
            if name in names:
                raise UserError(f"{p}:{line}: name {name!r} is also used on line {names[name]}")
            seen[code], names[name] = line, line
            sectors.append(Sector(code, name, national))
    except csv.Error as exc:
        raise UserError(f"{p}: bad CSV: {exc}") from None
    if not sectors:
        raise UserError(f"{p}: no sectors in the file")
    return sectors
