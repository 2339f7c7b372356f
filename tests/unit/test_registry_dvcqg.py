"""The registries the DVCQG intake reads: units' and sectors' dvcqg_code, the procedure catalogue."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.config import UserError
from pipeline.store.procedures import load_catalogue, load_procedures
from pipeline.store.sectors import load_sectors
from pipeline.store.units import load_units

REPO = Path(__file__).resolve().parents[2]


def test_every_unit_has_one_dvcqg_code():
    units = load_units(REPO / "deploy" / "units.csv")
    by_id: dict[str, set[str]] = {}
    for u in units:
        assert u.dvcqg_code, f"{u.unit_id} has no dvcqg_code"
        by_id.setdefault(u.unit_id, set()).add(u.dvcqg_code)
    assert all(len(codes) == 1 for codes in by_id.values())
    codes = [next(iter(c)) for c in by_id.values()]
    assert len(set(codes)) == len(codes)  # one code, one unit
    province = next(u for u in units if u.unit_id == "BAC_NINH")
    assert province.dvcqg_code == "000.00.00.H24"
    ward = next(u for u in units if u.unit_id == "P_BAC_GIANG")
    assert ward.dvcqg_code == f"000.{ward.admin_code}.H24"


def test_dvcqg_code_is_the_last_column():
    header = next(ln for ln in (REPO / "deploy" / "units.csv").read_text(encoding="utf-8").splitlines()
                  if not ln.startswith("#"))
    assert header.split(",")[-1] == "dvcqg_code"


def test_a_dvcqg_code_shared_by_two_units_is_refused(tmp_path):
    path = tmp_path / "units.csv"
    path.write_text("unit_id,name_vi,kind,parent_id,valid_from,valid_to,dvcqg_code\n"
                    "P,p,province,,2025-01-01,,X.1\nA,a,commune,P,2025-01-01,,X.1\n", encoding="utf-8")
    with pytest.raises(UserError, match=r"units.csv:3: dvcqg_code X.1 of A is also P's \(line 2\)"):
        load_units(path)


def test_sectors_accept_the_national_code(tmp_path):
    assert all(s.dvcqg_code is None for s in load_sectors())  # none found, none guessed
    path = tmp_path / "sectors.csv"
    path.write_text("sector,name_vi,dvcqg_code\nho_tich,Hộ tịch,G09-TP03\nchung_thuc,Chứng thực,\n", encoding="utf-8")
    assert [s.dvcqg_code for s in load_sectors(path)] == ["G09-TP03", None]
    path.write_text("sector,name_vi,dvcqg_code\na,A,X\nb,B,X\n", encoding="utf-8")
    with pytest.raises(UserError, match="dvcqg_code 'X' is also used on line 2"):
        load_sectors(path)


def test_the_catalogue():
    catalogue = load_catalogue()
    assert len(catalogue) >= 40
    sectors = {s.sector for s in load_sectors()}
    assert all(p.sector in sectors for p in catalogue)
    assert all(p.basis for p in catalogue)  # every time allowed names its legal text
    copy = catalogue.get("2.000815")  # chứng thực bản sao: the same day
    assert copy is not None and copy.days == 0 and copy.sector == "chung_thuc" and copy.has_fee
    birth = catalogue.get("1.001193")
    assert birth is not None and birth.name_vi == "Đăng ký khai sinh" and birth.full_online and not birth.has_fee
    assert catalogue.get("9.999999") is None and catalogue.get(None) is None
    assert {p.sector for p in catalogue} >= {"ho_tich", "chung_thuc", "kinh_doanh", "dat_dai", "lao_dong"}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("code,name\n", "the header must be procedure_code,name_vi,sector,days,full_online,has_fee"),
        ("1.1,A,ho_tich,x,0,0\n", "days must be a whole number"),
        ("1.1,A,ho_tich,-1,0,0\n", "days must be a whole number"),
        ("1.1,A,nowhere,1,0,0\n", "sector 'nowhere' of 1.1 is not in the sectors file"),
        ("1.1,A,ho_tich,1,2,0\n", "full_online must be 0 or 1"),
        ("1.1,A,ho_tich,1,0,yes\n", "has_fee must be 0 or 1"),
        ("1.1,A,ho_tich,1,0,0\n1.1,B,ho_tich,1,0,0\n", "duplicate procedure 1.1 (first on line 3)"),
        ("1 1,A,ho_tich,1,0,0\n", "procedure_code must be"),
        ("1.1,,ho_tich,1,0,0\n", "name_vi is empty"),
        ("1.1,A,ho_tich,1,0\n", "expected 6 fields"),
        ("", "no procedures"),
    ],
)
def test_bad_catalogue(tmp_path, body, message):
    path = tmp_path / "procedures.csv"
    header = "" if body.startswith("code") else "procedure_code,name_vi,sector,days,full_online,has_fee\n"
    path.write_text("# comment\n" + header + body, encoding="utf-8")
    with pytest.raises(UserError) as info:
        load_procedures(path)
    assert message in str(info.value) and "\n" not in str(info.value)
