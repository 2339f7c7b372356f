"""The province as the simulator sees it: which units exist on a date, how many dossiers
each receives, in which sectors.

Built from the checked units registry (``deploy/units.csv`` via
:func:`pipeline.store.units.load_units`). Volumes follow population:

* commune-level units (phường, xã; before 1 July 2025 the district-level units, which
  held the local one-stop desks of the registry) receive :data:`LOCAL_RATE` dossiers per
  resident per year;
* the provincial level (departments and the service centre) receives
  :data:`PROVINCIAL_RATE` per resident of the province in force, split by
  :data:`DEPARTMENT_SHARES`.

Together about 0.28 dossiers per resident per year: a province of 3.6 million people
handles about a million dossiers a year. Populations: the registry's figure where
published; otherwise a commune gets an equal share of what the published figures leave
of :data:`PROVINCE_POPULATION`, and a district the sum of its successor communes.
Sectors are drawn from the mix of the unit's kind (:data:`LOCAL_SECTORS`,
:data:`DISTRICT_SECTORS`) or of its department (:data:`DEPARTMENT_SECTORS`, keyed by
the code without the ``BG_`` prefix of the former Bắc Giang units).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date
from typing import Any, Iterable, Sequence

__all__ = [
    "Province",
    "SimUnit",
    "PROVINCE_POPULATION",
    "LOCAL_RATE",
    "PROVINCIAL_RATE",
    "WORKING_DAYS_PER_YEAR",
]

PROVINCE_POPULATION = 3_600_000  # the new Bắc Ninh province, about 3.6 million residents (issue 9)
LOCAL_RATE = 0.20  # dossiers per resident per year at the commune/district desks
PROVINCIAL_RATE = 0.08  # dossiers per resident per year at the provincial level
WORKING_DAYS_PER_YEAR = 250  # 2025: 261 weekdays − 12 weekdays off + 1 make-up Saturday

LOCAL_SECTORS: dict[str, float] = {
    "chung_thuc": 0.34, "ho_tich": 0.28, "dat_dai": 0.14, "lao_dong": 0.08, "kinh_doanh": 0.05,
    "xay_dung": 0.04, "nong_nghiep": 0.03, "van_hoa": 0.02, "giao_duc": 0.02,
}
DISTRICT_SECTORS: dict[str, float] = {
    "dat_dai": 0.30, "chung_thuc": 0.18, "ho_tich": 0.14, "kinh_doanh": 0.12, "xay_dung": 0.08,
    "lao_dong": 0.08, "giao_duc": 0.04, "y_te": 0.03, "moi_truong": 0.03,
}
DEPARTMENT_SECTORS: dict[str, dict[str, float]] = {
    "TTPVHCC": {"dau_tu": 0.3, "kinh_doanh": 0.3, "tu_phap": 0.2, "xay_dung": 0.2},
    "SO_TC": {"kinh_doanh": 0.6, "dau_tu": 0.4},
    "SO_NNMT": {"dat_dai": 0.6, "moi_truong": 0.2, "nong_nghiep": 0.2},
    "SO_XD": {"giao_thong": 0.5, "xay_dung": 0.5},
    "SO_TP": {"tu_phap": 0.8, "ho_tich": 0.2},
    "SO_YT": {"y_te": 1.0},
    "SO_GDDT": {"giao_duc": 1.0},
    "SO_NV": {"lao_dong": 0.6, "noi_vu": 0.4},
    "SO_CT": {"cong_thuong": 1.0},
    "SO_VHTTDL": {"van_hoa": 1.0},
    "SO_KHCN": {"khoa_hoc": 0.6, "thong_tin": 0.4},
    "SO_DTTG": {"dan_toc": 1.0},
    "BQL_KCN": {"dau_tu": 0.5, "lao_dong": 0.3, "xay_dung": 0.2},
    "SO_KHDT": {"kinh_doanh": 0.6, "dau_tu": 0.4},
    "SO_TNMT": {"dat_dai": 0.8, "moi_truong": 0.2},
    "SO_NNPTNT": {"nong_nghiep": 1.0},
    "SO_GTVT": {"giao_thong": 1.0},
    "SO_LDTBXH": {"lao_dong": 1.0},
    "SO_TTTT": {"thong_tin": 1.0},
    "BAN_DT": {"dan_toc": 1.0},
}
#: relative share of the provincial-level volume (code without ``BG_``); unknown codes get 0.03
DEPARTMENT_SHARES: dict[str, float] = {
    "TTPVHCC": 0.03, "SO_TC": 0.16, "SO_NNMT": 0.16, "SO_XD": 0.14, "SO_TP": 0.12, "SO_YT": 0.08,
    "SO_NV": 0.08, "SO_GDDT": 0.06, "SO_CT": 0.05, "SO_VHTTDL": 0.04, "SO_KHCN": 0.03, "BQL_KCN": 0.04,
    "SO_DTTG": 0.01, "SO_KHDT": 0.10, "SO_TNMT": 0.10, "SO_NNPTNT": 0.06, "SO_GTVT": 0.07,
    "SO_LDTBXH": 0.05, "SO_TTTT": 0.01, "BAN_DT": 0.01,
}
_PROVINCIAL_KINDS = ("department", "service_centre")
_LOCAL_KINDS = ("commune", "district")


@dataclass(frozen=True)
class SimUnit:
    unit_id: str
    kind: str
    valid_from: date
    valid_to: date | None
    successors: tuple[str, ...]
    population: float  # residents (published or estimated); 0 for the provincial level
    sectors: tuple[tuple[str, float], ...]

    def valid_on(self, day: date) -> bool:
        return self.valid_from <= day and (self.valid_to is None or day <= self.valid_to)


def _code(unit_id: str) -> str:
    return unit_id[3:] if unit_id.startswith("BG_") else unit_id


class Province:
    """The registry's units with volumes and sector mixes (see the module doc)."""

    def __init__(self, rows: Iterable[Any]) -> None:
        rows = [r for r in rows if r.kind != "province"]
        communes = [r for r in rows if r.kind == "commune"]
        known = sum(r.population or 0 for r in communes)
        unknown = [r for r in communes if not r.population]
        share = (PROVINCE_POPULATION - known) / len(unknown) if unknown else 0.0
        pop: dict[str, float] = {r.unit_id: float(r.population or share) for r in communes}
        for r in rows:
            if r.kind == "district":
                pop[r.unit_id] = float(r.population or sum(pop.get(s, 0.0) for s in r.successors))
        self.units: list[SimUnit] = []
        for r in rows:
            code = _code(r.unit_id)
            if r.kind == "commune":
                mix = LOCAL_SECTORS
            elif r.kind == "district":
                mix = DISTRICT_SECTORS
            else:
                mix = DEPARTMENT_SECTORS.get(code, {"tu_phap": 1.0})
            self.units.append(
                SimUnit(r.unit_id, r.kind, r.valid_from, r.valid_to, tuple(r.successors or ()),
                        pop.get(r.unit_id, 0.0), tuple(mix.items()))
            )
        self.by_id = {u.unit_id: u for u in self.units}
        self._rows: dict[str, list[SimUnit]] = {}
        for u in self.units:
            self._rows.setdefault(u.unit_id, []).append(u)
        self._day_cache: dict[date, tuple[list[SimUnit], list[float]]] = {}

    @property
    def unit_ids(self) -> list[str]:
        return [u.unit_id for u in self.units]

    def units_on(self, day: date) -> list[SimUnit]:
        return self._day(day)[0]

    def daily_rates(self, day: date) -> list[tuple[SimUnit, float]]:
        """(unit, expected dossiers received on a working day) for the units in force."""
        units, rates = self._day(day)
        return list(zip(units, rates))

    def daily_total(self, day: date) -> float:
        return sum(self._day(day)[1])

    def _day(self, day: date) -> tuple[list[SimUnit], list[float]]:
        got = self._day_cache.get(day)
        if got is None:
            units = [u for u in self.units if u.valid_on(day)]
            local_pop = sum(u.population for u in units if u.kind in _LOCAL_KINDS)
            provincial = [u for u in units if u.kind in _PROVINCIAL_KINDS]
            shares = {u.unit_id: DEPARTMENT_SHARES.get(_code(u.unit_id), 0.03) for u in provincial}
            total_share = sum(shares.values()) or 1.0
            rates = []
            for u in units:
                if u.kind in _LOCAL_KINDS:
                    rates.append(LOCAL_RATE * u.population / WORKING_DAYS_PER_YEAR)
                else:
                    rates.append(PROVINCIAL_RATE * local_pop * shares[u.unit_id] / total_share / WORKING_DAYS_PER_YEAR)
            got = self._day_cache[day] = (units, rates)
        return got

    def pick(self, rng: random.Random, day: date) -> str:
        units, rates = self._day(day)
        if not units:
            raise ValueError(f"no unit of the registry is in force on {day}")
        return rng.choices(units, weights=rates)[0].unit_id

    def pick_sector(self, rng: random.Random, unit_id: str) -> str | None:
        unit = self.by_id.get(unit_id)
        if unit is None:
            return None
        sectors, weights = zip(*unit.sectors)
        return rng.choices(sectors, weights=weights)[0]

    def valid_on(self, unit_id: str, day: date) -> bool:
        return any(u.valid_on(day) for u in self._rows.get(unit_id, ()))

    def in_force(self, unit_id: str, day: date) -> str:
        """``unit_id`` if in force on ``day``, else the first successor (followed as far as
        needed) in force then; ``unit_id`` itself when none is."""
        current, seen = unit_id, set()
        while not self.valid_on(current, day) and current not in seen:
            seen.add(current)
            rows = [u for u in self._rows.get(current, ()) if u.valid_to is not None and u.valid_to < day]
            nxt = next((s for r in sorted(rows, key=lambda r: r.valid_from, reverse=True) for s in r.successors), None)
            if nxt is None:
                return unit_id
            current = nxt
        return current if self.valid_on(current, day) else unit_id

    def expected_dossiers(self, start: date, end: date, working_days: Sequence[date]) -> float:
        """Expected dossiers received on ``working_days`` within [start, end)."""
        return sum(self.daily_total(d) for d in working_days if start <= d < end)
