"""The units registry (deploy/units.csv), its cross-row checks, the UnitRegistry lookup, sectors."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest

from pipeline.config import UserError
from pipeline.core.registry import UNKNOWN_UNIT, UnitRegistry, local_date_of_us
from pipeline.store.sectors import load_sectors
from pipeline.store.units import MERGER_DATE, load_registry, load_units

REPO = Path(__file__).resolve().parents[2]
UNITS = REPO / "deploy" / "units.csv"
HEADER = "unit_id,name_vi,kind,parent_id,valid_from,valid_to,successor\n"
ROOTS = "OLD,Tỉnh cũ,province,,2025-01-01,2025-06-30,NEW\nNEW,Tỉnh mới,province,,2025-07-01,,\n"
LOCAL = timezone(timedelta(hours=7))


def _us(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp() * 1_000_000)


def test_shipped_registry_holds_both_periods():
    units = load_units(UNITS)
    after = [u for u in units if u.valid_on(MERGER_DATE)]
    before = [u for u in units if u.valid_on(date(2025, 6, 30))]
    communes = [u for u in after if u.kind == "commune"]
    assert len(communes) == 99
    assert sum(u.name_vi.startswith("Phường ") for u in communes) == 33
    assert sum(u.name_vi.startswith("Xã ") for u in communes) == 66
    assert {u.kind for u in before} == {"province", "service_centre", "department", "district", "commune"}
    # the two former provinces, 1 January to 30 June 2025: Bắc Giang's 10 and Bắc Ninh's 8 district-level
    # units, their 192 + 121 communes, wards and towns (each under its district), both sets of departments
    assert sum(u.kind == "district" for u in before) == 18
    old_communes = [u for u in before if u.kind == "commune"]
    assert sum(u.unit_id.startswith("BG_") for u in old_communes) == 192
    assert sum(u.unit_id.startswith("BN_") for u in old_communes) == 121
    by_id = {u.unit_id: u for u in before}
    assert all(by_id[u.parent_id].kind == "district" for u in old_communes)
    assert all(u.valid_from == date(2025, 1, 1) and u.valid_to == date(2025, 6, 30) for u in old_communes)
    assert {u.unit_id for u in before if u.kind == "province"} == {"BAC_GIANG", "BN_BAC_NINH"}
    assert {u.unit_id for u in before if u.kind == "service_centre"} == {"BG_TTPVHCC", "BN_TTHCC"}
    # a few units of the national list of before 1 July and where their work went (Resolution 1658)
    assert by_id["BN_P_VU_NINH"].successors == ("P_VU_NINH",)
    assert by_id["BG_P_THO_XUONG"].successors == ("P_BAC_GIANG",)
    assert by_id["BN_TT_CHO"].successors == ("X_YEN_PHONG",) and by_id["BN_TT_CHO"].parent_id == "BN_H_YEN_PHONG"
    assert by_id["BG_X_XA_LY"].successors == ("X_SA_LY",)
    assert len({u.admin_code for u in old_communes}) == 313
    assert {u.unit_id for u in after if u.kind == "service_centre"} == {"TTPVHCC"}
    # every unit of the first half of 2025 leads to units of the new province
    registry = load_registry(UNITS)
    for u in units:
        if u.valid_to is not None:
            assert registry.successors_on(u.unit_id, u.valid_to, MERGER_DATE), u.unit_id
    assert "Quảng Ninh" not in UNITS.read_text(encoding="utf-8").split("unit_id,name_vi")[1]
    # every row is in force on some day of 2025 from its start: the registry starts on 1 January 2025
    assert min(u.valid_from for u in units) == date(2025, 1, 1)
    assert registry.units_on(date(2025, 1, 1)) and "BG_SO_KHDT" in registry.units_on(date(2025, 2, 28))
    assert "BG_SO_KHDT" not in registry.units_on(date(2025, 3, 1))
    assert len({u.admin_code for u in communes}) == 99 and all(u.admin_code for u in communes)


def test_unit_registry_valid_at_uses_the_local_date():
    registry = load_registry(UNITS)
    assert local_date_of_us(_us("2025-06-30T17:00:00+00:00")) == date(2025, 7, 1)
    assert registry.valid_at("BG_TTPVHCC", _us("2025-06-30T23:59:59.999999+07:00"))
    assert not registry.valid_at("BG_TTPVHCC", _us("2025-07-01T00:00:00+07:00"))
    assert registry.valid_at("TTPVHCC", _us("2025-07-01T00:00:00+07:00"))
    assert not registry.valid_at("TTPVHCC", _us("2025-06-30T23:59:59+07:00"))
    assert registry.label("P_HALONG", _us("2025-08-01T09:00:00+07:00")) == UNKNOWN_UNIT
    assert registry.label("X_KEP", _us("2025-08-01T09:00:00+07:00")) == "X_KEP"
    assert not registry.valid_at("X_KEP", _us("2025-05-01T09:00:00+07:00"))


def test_registry_covers_periods_across_rows():
    class Row:
        def __init__(self, unit_id, valid_from, valid_to):
            self.unit_id, self.valid_from, self.valid_to = unit_id, valid_from, valid_to

    r = UnitRegistry([Row("A", date(2025, 1, 1), date(2025, 6, 30)), Row("A", date(2025, 7, 1), None),
                      Row("B", date(2025, 1, 1), date(2025, 3, 1)), Row("B", date(2025, 3, 3), None)])
    assert r.covers("A", date(2025, 2, 1), None) and r.covers("A", date(2025, 6, 1), date(2025, 7, 5))
    assert not r.covers("B", date(2025, 1, 1), date(2025, 3, 5)) and r.covers("B", date(2025, 3, 3), None)
    assert not r.covers("C", date(2025, 1, 1), None)


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ("A,a,commune,NOPE,2025-07-01,,\n", "parent NOPE of A is not in the file"),
        ("A,a,commune,NEW,2025-06-01,,\n", "parent NEW of A is not in the file for the whole period"),
        ("A,a,commune,,2025-07-01,,\n", "parent_id is empty for A"),
        ("A,a,commune,NEW,2025-07-01,,\nA,b,commune,NEW,2025-08-01,,\n", "overlaps"),
        ("A,a,commune,OLD,2025-01-01,2025-06-30,\n", "names no successor"),
        ("A,a,commune,OLD,2025-01-01,2025-06-30,GONE\n", "successor GONE of A is not valid on 2025-07-01"),
        ("A,a,commune,OLD,2025-01-01,2025-06-30,B\nB,b,commune,NEW,2025-07-02,,\n",
         "successor B of A is not valid on 2025-07-01"),
        ("A,a,commune,NEW,2025-07-01,,B\nB,b,commune,NEW,2025-07-01,,\n", "has a successor but no valid_to"),
    ],
)
def test_registry_cross_row_errors_are_one_line(tmp_path, rows, message):
    path = tmp_path / "units.csv"
    path.write_text("# a comment line\n" + HEADER + ROOTS + rows, encoding="utf-8")
    with pytest.raises(UserError) as info:
        load_units(path)
    assert message in str(info.value) and "\n" not in str(info.value)
    assert str(info.value).startswith(f"{path}:")


def test_registry_error_names_the_file_line_after_comments(tmp_path):
    path = tmp_path / "units.csv"
    path.write_text("# one\n# two\n" + HEADER + ROOTS + "A,a,commune,NEW,2025-07-01,,\nB,b,village,NEW,2025-07-01,,\n",
                    encoding="utf-8")
    with pytest.raises(UserError, match=r"units.csv:7: unknown kind 'village'"):
        load_units(path)


def test_optional_columns_parse(tmp_path):
    path = tmp_path / "units.csv"
    path.write_text("unit_id,name_vi,kind,parent_id,valid_from,valid_to,successor,population,admin_code\n"
                    "OLD,o,province,,2025-01-01,2025-06-30,NEW A,,24\nNEW,n,province,,2025-07-01,,,3600000,\n"
                    "A,a,commune,NEW,2025-07-01,,,12x,\n", encoding="utf-8")
    with pytest.raises(UserError, match="population must be a whole number"):
        load_units(path)
    path.write_text(path.read_text(encoding="utf-8").replace("12x", "1200"), encoding="utf-8")
    units = load_units(path)
    assert units[0].successors == ("NEW", "A") and units[1].population == 3_600_000
    assert units[2].population == 1200 and units[0].admin_code == "24"


def test_sectors_file():
    sectors = load_sectors()
    codes = [s.sector for s in sectors]
    assert {"dat_dai", "xay_dung", "dau_tu", "ho_tich", "chung_thuc"} <= set(codes)
    assert dict((s.sector, s.name_vi) for s in sectors)["chung_thuc"] == "Chứng thực"
    import tomllib

    targets = tomllib.loads((REPO / "deploy" / "targets.toml").read_text(encoding="utf-8"))
    overridden = {s for table in targets.values() if isinstance(table, dict) for s in table.get("sectors", {})}
    assert overridden and overridden <= set(codes)  # the targets name only known sectors
    # the simulator draws only known sectors
    from pipeline.feed.lifecycle import SECTORS
    from pipeline.feed.province import DEPARTMENT_SECTORS, DISTRICT_SECTORS, LOCAL_SECTORS

    drawn = set(SECTORS) | set(LOCAL_SECTORS) | set(DISTRICT_SECTORS)
    drawn |= {s for mix in DEPARTMENT_SECTORS.values() for s in mix}
    assert drawn <= set(codes), drawn - set(codes)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("sector,name\nx,y\n", "header must be sector,name_vi"),
        ("sector,name_vi\nDat,Đất\n", "lower-case ASCII code"),
        ("sector,name_vi\nall,Tất cả\n", "lower-case ASCII code"),
        ("sector,name_vi\na,A\na,B\n", "duplicate sector a"),
        ("sector,name_vi\na,A\nb,A\n", "is also used on line 2"),
        ("sector,name_vi\n", "no sectors"),
    ],
)
def test_bad_sectors_file(tmp_path, text, message):
    path = tmp_path / "sectors.csv"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(UserError) as info:
        load_sectors(path)
    assert message in str(info.value) and "\n" not in str(info.value)
