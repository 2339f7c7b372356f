"""The procedure catalogue as a pure lookup (``deploy/procedures.csv``, read and checked by
``pipeline.store.procedures``): a national procedure code -> its sector, the time allowed
in working days, and its full-online and fee flags. Nothing here reads files."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping

__all__ = ["Procedure", "Catalogue"]


@dataclass(frozen=True, slots=True)
class Procedure:
    procedure_code: str
    name_vi: str
    sector: str
    days: int  # working days allowed; 0 = the same day
    full_online: bool
    has_fee: bool
    basis: str = ""  # the legal text that sets ``days``


class Catalogue:
    """Procedure code -> :class:`Procedure`."""

    __slots__ = ("_by_code",)

    def __init__(self, procedures: Iterable[Procedure]) -> None:
        self._by_code: Mapping[str, Procedure] = {p.procedure_code: p for p in procedures}

    def get(self, code: str | None) -> Procedure | None:
        return self._by_code.get(code) if code else None

    def __contains__(self, code: object) -> bool:
        return code in self._by_code

    def __len__(self) -> int:
        return len(self._by_code)

    def __iter__(self):
        return iter(self._by_code.values())
