"""The province as the simulator sees it: which units exist on a date, how many dossiers
each receives, in which sectors.

Built from the checked units registry (``deploy/units.csv`` via
:func:`pipeline.store.units.load_units`). Volumes follow population:

* local desks receive :data:`LOCAL_RATE` dossiers per resident per year: from 1 July
  2025 the communes and wards; before, the district-level units (thành phố, thị xã,
  huyện: :data:`DISTRICT_LEVEL_SHARE` of the local volume, the procedures of district
  level) and their communes, wards and towns (the rest);
* the provincial level (departments and the service centre) receives
  :data:`PROVINCIAL_RATE` per resident of the province in force, split by
  :data:`DEPARTMENT_SHARES`.

Together about 0.28 dossiers per resident per year: a province of 3.6 million people
handles about a million dossiers a year.

Populations (:func:`estimate_populations`): the registry's figure where published.
Elsewhere an estimate, never an equal share of the province: a commune of the new
province counts its predecessors (the units of before 1 July 2025 naming it as a
successor, a unit split between n successors counting 1/n for each), and each
predecessor the average resident count per predecessor of the published figures of the
same former district (a published district total counts too: Bắc Giang city), else of
the same former province; the estimates are then scaled so that the whole province has
:data:`PROVINCE_POPULATION` residents (the published figures are kept as they are). A
unit of before 1 July 2025 gets its share of its successors' population (a commune:
1/weight of each successor's; a district: its published figure, else the sum of its
communes'). So a mountain district (Sơn Động, 17 small communes with published figures)
is far smaller than a lowland one (Hiệp Hòa, 25 communes without).

Sectors are drawn from the mix of the unit's kind (:data:`LOCAL_SECTORS`,
:data:`DISTRICT_SECTORS`, :data:`COMMUNE_BEFORE_MERGER_SECTORS`) or of its department
(:data:`DEPARTMENT_SECTORS`, keyed by the code without the ``BG_``/``BN_`` prefix of
the former provinces' units).
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
    "DISTRICT_LEVEL_SHARE",
    "estimate_populations",
]

PROVINCE_POPULATION = 3_600_000  # the new Bắc Ninh province, about 3.6 million residents (issue 9)
LOCAL_RATE = 0.20  # dossiers per resident per year at the commune/district desks
PROVINCIAL_RATE = 0.08  # dossiers per resident per year at the provincial level
WORKING_DAYS_PER_YEAR = 250  # 2025: 261 weekdays − 12 weekdays off + 1 make-up Saturday
#: before 1 July 2025, the share of the local volume received at the district-level desks (land,
#: business registration, construction permits ...); the communes' desks received the rest
DISTRICT_LEVEL_SHARE = 0.45

LOCAL_SECTORS: dict[str, float] = {
    "chung_thuc": 0.34, "ho_tich": 0.28, "dat_dai": 0.14, "lao_dong": 0.08, "kinh_doanh": 0.05,
    "xay_dung": 0.04, "nong_nghiep": 0.03, "van_hoa": 0.02, "giao_duc": 0.02,
}
DISTRICT_SECTORS: dict[str, float] = {
    "dat_dai": 0.30, "chung_thuc": 0.18, "ho_tich": 0.14, "kinh_doanh": 0.12, "xay_dung": 0.08,
    "lao_dong": 0.08, "giao_duc": 0.04, "y_te": 0.03, "moi_truong": 0.03,
}
#: a commune, ward or town of before 1 July 2025 (the district-level procedures were the district's)
COMMUNE_BEFORE_MERGER_SECTORS: dict[str, float] = {
    "chung_thuc": 0.42, "ho_tich": 0.34, "lao_dong": 0.08, "dat_dai": 0.06, "nong_nghiep": 0.04,
    "van_hoa": 0.03, "giao_duc": 0.03,
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
#: relative share of the provincial-level volume (code without ``BG_``/``BN_``); unknown codes get 0.03
DEPARTMENT_SHARES: dict[str, float] = {
    "TTPVHCC": 0.03, "SO_TC": 0.16, "SO_NNMT": 0.16, "SO_XD": 0.14, "SO_TP": 0.12, "SO_YT": 0.08,
    "SO_NV": 0.08, "SO_GDDT": 0.06, "SO_CT": 0.05, "SO_VHTTDL": 0.04, "SO_KHCN": 0.03, "BQL_KCN": 0.04,
    "SO_DTTG": 0.01, "TTHCC": 0.03, "SO_KHDT": 0.10, "SO_TNMT": 0.10, "SO_NNPTNT": 0.06, "SO_GTVT": 0.07,
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
    local_share: float = 1.0  # of LOCAL_RATE × population: district-level vs commune desks before 1 July 2025

    def valid_on(self, day: date) -> bool:
        return self.valid_from <= day and (self.valid_to is None or day <= self.valid_to)


def _code(unit_id: str) -> str:
    return unit_id[3:] if unit_id.startswith(("BG_", "BN_")) else unit_id


def _former_province(unit_id: str) -> str:
    return unit_id[:3] if unit_id.startswith(("BG_", "BN_")) else ""


def estimate_populations(rows: Sequence[Any]) -> dict[str, float]:
    """Residents per commune and district, published or estimated (the module doc)."""
    communes = [r for r in rows if r.kind == "commune"]
    districts = {r.unit_id: r for r in rows if r.kind == "district"}
    old = [r for r in communes if r.parent_id in districts]
    new = [r for r in communes if r.parent_id not in districts]
    # predecessor weight of each new commune, and the former district it mostly comes from
    weight: dict[str, float] = {}
    origin: dict[str, dict[str, float]] = {}
    for r in old:
        for s in r.successors:
            share = 1.0 / len(r.successors)
            weight[s] = weight.get(s, 0.0) + share
            origin.setdefault(s, {}).setdefault(r.parent_id, 0.0)
            origin[s][r.parent_id] += share
    district_of = {s: max(d.items(), key=lambda kv: kv[1])[0] for s, d in origin.items()}
    old_count: dict[str, int] = {}
    for r in old:
        old_count[r.parent_id] = old_count.get(r.parent_id, 0) + 1
    # residents per predecessor where published: by former district, by former province
    known: dict[str, list[float]] = {}  # key -> [residents, predecessors]

    def add(key: str, residents: float, predecessors: float) -> None:
        got = known.setdefault(key, [0.0, 0.0])
        got[0] += residents
        got[1] += predecessors

    for r in new:
        if r.population and r.unit_id in district_of:
            d = district_of[r.unit_id]
            add(d, r.population, weight[r.unit_id])
            add(_former_province(d), r.population, weight[r.unit_id])
    for d, r in districts.items():
        if r.population and old_count.get(d):
            add(d, r.population, old_count[d])
            add(_former_province(d), r.population, old_count[d])
    everywhere = [sum(v[0] for v in known.values()), sum(v[1] for v in known.values())]

    def per_predecessor(unit_id: str) -> float:
        d = district_of.get(unit_id, "")
        for key in (d, _former_province(d)):
            if key in known and known[key][1] > 0:
                return known[key][0] / known[key][1]
        return everywhere[0] / everywhere[1] if everywhere[1] else 1.0

    pop: dict[str, float] = {}
    estimated: dict[str, float] = {}
    for r in new:
        if r.population:
            pop[r.unit_id] = float(r.population)
        else:
            estimated[r.unit_id] = weight.get(r.unit_id, 1.0) * per_predecessor(r.unit_id)
    rest = PROVINCE_POPULATION - sum(pop.values())
    total_estimated = sum(estimated.values())
    scale = rest / total_estimated if total_estimated > 0 and rest > 0 else 1.0
    for unit_id, value in estimated.items():
        pop[unit_id] = value * scale
    for r in old:
        pop[r.unit_id] = float(r.population) if r.population else sum(
            pop.get(s, 0.0) / len(r.successors) / weight[s] for s in r.successors
        )
    for d, r in districts.items():
        pop[d] = float(r.population) if r.population else (
            sum(pop[c.unit_id] for c in old if c.parent_id == d)
            or sum(pop.get(s, 0.0) / max(len(r.successors), 1) for s in r.successors)
        )
    return pop


class Province:
    """The registry's units with volumes and sector mixes (see the module doc)."""

    def __init__(self, rows: Iterable[Any]) -> None:
        rows = [r for r in rows if r.kind != "province"]
        pop = estimate_populations(rows)
        districts = {r.unit_id for r in rows if r.kind == "district"}
        self.units: list[SimUnit] = []
        for r in rows:
            code = _code(r.unit_id)
            if r.kind == "commune":
                mix = COMMUNE_BEFORE_MERGER_SECTORS if r.parent_id in districts else LOCAL_SECTORS
            elif r.kind == "district":
                mix = DISTRICT_SECTORS
            else:
                mix = DEPARTMENT_SECTORS.get(code, {"tu_phap": 1.0})
            share = 1.0
            if r.kind == "district":
                share = DISTRICT_LEVEL_SHARE
            elif r.kind == "commune" and r.parent_id in districts:
                share = 1.0 - DISTRICT_LEVEL_SHARE
            self.units.append(
                SimUnit(r.unit_id, r.kind, r.valid_from, r.valid_to, tuple(r.successors or ()),
                        pop.get(r.unit_id, 0.0), tuple(mix.items()), share)
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
            # the provincial level serves its own province's residents (before 1 July 2025 the
            # former Bắc Giang's departments Bắc Giang's, the former Bắc Ninh's Bắc Ninh's)
            local_pop: dict[str, float] = {}
            total_share: dict[str, float] = {}
            for u in units:
                group = _former_province(u.unit_id)
                if u.kind in _LOCAL_KINDS:
                    local_pop[group] = local_pop.get(group, 0.0) + u.population * u.local_share
                elif u.kind in _PROVINCIAL_KINDS:
                    total_share[group] = total_share.get(group, 0.0) + DEPARTMENT_SHARES.get(_code(u.unit_id), 0.03)
            rates = []
            for u in units:
                if u.kind in _LOCAL_KINDS:
                    rates.append(LOCAL_RATE * u.population * u.local_share / WORKING_DAYS_PER_YEAR)
                else:
                    group = _former_province(u.unit_id)
                    share = DEPARTMENT_SHARES.get(_code(u.unit_id), 0.03) / (total_share.get(group) or 1.0)
                    rates.append(PROVINCIAL_RATE * local_pop.get(group, 0.0) * share / WORKING_DAYS_PER_YEAR)
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
