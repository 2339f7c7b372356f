"""The simulator's lifecycles as DVCQG sync calls (``simulate --format dvcqg``).

A dossier's contract events (``pipeline.feed.lifecycle``) become the calls a provincial
one-stop system would send the national portal: a ``DongBoHoSoMC`` snapshot at each
status change (and when a fee is paid online, or a return date moves), and
``CapNhatTienDoHoSoMC`` process steps that name the handling official — plainly
synthetic names, ``Cán bộ Thử nghiệm NN`` — including the apology step (``xin lỗi``);
the steps come from ``pipeline.feed.steps``, the one source the contract format's
``step`` events come from too.
Each snapshot also carries an obviously fake applicant (``Công dân Thử nghiệm …``), so
the intake's personal-data filter is exercised on every call.

What DVCQG records cannot carry is left out: per-dossier ratings (``rated``: DVCQG has
only the monthly summary ``DongBoDanhGia``, written per unit and month here), citizens'
feedback (``feedback_*``), transfers (``transferred``: later calls simply come from the
receiving unit), and a second payment of one dossier (DVCQG lists the fees, paid online
or not, once). docs/intake.md says what that means for each indicator.

Procedure codes: DVCQG decides "fully online" per procedure (its service level), the
simulator per dossier; so a dossier drawn fully online is sent with its procedure's
fully-online variant ``<code>.TT``, and :func:`simulated_procedures` is the catalogue of
the simulated world (every simulator code and its variant; ``99.NNNNNN`` for the sectors
the simulator gives no code of its own). The translator needs it beside
``deploy/procedures.csv`` to read simulated calls (:func:`simulated_registries`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Iterable, Mapping, Sequence

from pipeline.calendar_file import load_calendar
from pipeline.config import Settings
from pipeline.core.catalogue import Catalogue, Procedure
from pipeline.feed.lifecycle import PROCEDURES as _PROCEDURES
from pipeline.feed.steps import OFFICIALS, case_rng, case_steps, dvcqg_row
from pipeline.sources.dvcqg.records import PROGRESS, RATINGS, SNAPSHOT, format_dvcqg_time
from pipeline.sources.dvcqg.translator import Registries
from pipeline.store.procedures import load_procedures
from pipeline.store.sectors import load_sectors
from pipeline.store.units import load_units

__all__ = [
    "DvcqgCall",
    "case_calls",
    "rating_calls",
    "simulated_procedures",
    "simulated_catalogue",
    "registries_for",
    "sim_procedure_code",
    "FULL_SUFFIX",
    "OFFICIALS",
]

FULL_SUFFIX = ".TT"
@dataclass(frozen=True, slots=True)
class DvcqgCall:
    """One sync call: when it is sent (the time of the change it reports) and its body
    (without ``session``: the sender adds it; file mode needs none)."""

    at: datetime
    body: dict[str, Any]


def sim_procedure_code(code: str, sector: str, full: bool, sectors: Sequence[str]) -> str:
    """The DVCQG procedure code of a simulated dossier (see the module doc)."""
    if code not in _PROCEDURES.get(sector, ()):
        code = f"99.{sectors.index(sector) + 1:06d}" if sector in sectors else "99.000000"
    return code + FULL_SUFFIX if full else code


def simulated_procedures(sectors: Sequence[str]) -> list[Procedure]:
    """The catalogue of the simulated world (every code in both variants)."""
    out: list[Procedure] = []
    pairs = [(code, sector) for sector, codes in _PROCEDURES.items() for code in codes]
    pairs += [(f"99.{i + 1:06d}", s) for i, s in enumerate(sectors) if s not in _PROCEDURES]
    for code, sector in pairs:
        out.append(Procedure(code, f"Thủ tục mô phỏng {code}", sector, 5, False, False, "simulator"))
        out.append(Procedure(code + FULL_SUFFIX, f"Thủ tục mô phỏng {code} (toàn trình)", sector, 5, True, False,
                             "simulator"))
    return out


def simulated_catalogue(real: Iterable[Procedure], sectors: Sequence[str]) -> Catalogue:
    """The real catalogue plus the simulated world's codes (none collide)."""
    return Catalogue(list(real) + simulated_procedures(sectors))


def _t(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _d(text: str) -> str:
    return format_dvcqg_time(_t(text))


def case_calls(events: Sequence[Mapping[str, Any]], unit_codes: Mapping[str, str], sectors: Sequence[str]
               ) -> list[DvcqgCall]:
    """One dossier's contract events (sorted by time) -> its DVCQG calls, in time order.
    Feedback items and dossiers of units without a ``dvcqg_code`` give no call."""
    events = [e for e in events if e["event_type"] not in ("rated", "feedback_received", "feedback_answered",
                                                           "transferred")]
    if not events:
        return []
    case_id = events[0]["case_id"]
    rng, _official, _clerk = case_rng(case_id)  # the handlers are the first draws (pipeline.feed.steps)
    steps: dict[int, list[dict[str, Any]]] = {}
    for step in case_steps(events):
        steps.setdefault(step.event_index, []).append(dvcqg_row(case_id, step))
    snap: dict[str, Any] = {
        "MaHoSo": case_id,
        "ChuHoSo": f"Công dân Thử nghiệm {rng.randint(1, 99999):05d}",  # fake, dropped at the door
        "SoDienThoai": f"0900{rng.randint(0, 999999):06d}",
        "TrangThaiHoSo": 1,
    }
    calls: list[DvcqgCall] = []
    fees = 0
    paid_online = False

    def code_of(unit: str) -> str | None:
        return unit_codes.get(unit)

    def send_snapshot(at: str, unit: str) -> None:
        madonvi = code_of(unit)
        if madonvi is not None:
            calls.append(DvcqgCall(_t(at), {"service": SNAPSHOT, "madonvi": madonvi, "isUpdating": True,
                                            "data": [_copy(snap)]}))

    def send_steps(index: int, at: str, unit: str) -> None:
        madonvi = code_of(unit)
        for row in steps.get(index, ()):
            if madonvi is not None:
                calls.append(DvcqgCall(_t(at), {"service": PROGRESS, "madonvi": madonvi, "isUpdating": True,
                                                "data": [row]}))

    for index, e in enumerate(events):
        kind, at, unit = e["event_type"], e["occurred_at"], e["unit_id"]
        if kind == "received":
            full = e.get("channel") == "online" and e.get("online_mode") == "full"
            snap.update({
                "MaTTHC": sim_procedure_code(e["procedure_code"], e["sector"], full, sectors),
                "KenhThucHien": {"direct": 1, "online": 2, "postal": 3}[e["channel"]],
                "NgayNopHoSo": _d(at), "NgayTiepNhan": _d(at), "NgayHenTra": _d(e["due_at"]),
                "TrangThaiHoSo": 2,
                "HoSoCoThanhPhanSoHoa": 1 if e.get("digitized") else 0,
                "TaiLieuNop": [{"TenTepDinhKem": "to-khai.pdf", "DuocSoHoa": 1 if e.get("digitized") else 0,
                                "DuocTaiSuDung": 1 if e.get("reused_data") else 0}],
                "TaiKhoanDuocXacThucVoiVNeID": 1 if e.get("vneid_authenticated") else 0,
            })
            send_snapshot(at, unit)
        elif kind == "payment":
            fees += int(e.get("amount_vnd") or 0)
            snap["DanhSachLePhi"] = [{"MaLePhi": "LP", "Gia": fees}]
            if e.get("method") == "online" and not paid_online and snap["TrangThaiHoSo"] != 1:
                paid_online = True
                snap["DuocThanhToanTrucTuyen"] = 1
                send_snapshot(at, unit)
        elif kind == "supplement_requested":
            snap.setdefault("DanhSachHoSoBoSung", []).append({"NgayBoSung": _d(at)})
            snap["TrangThaiHoSo"] = 5
            send_snapshot(at, unit)
        elif kind == "supplement_received":
            rounds = snap.get("DanhSachHoSoBoSung") or []
            if rounds:
                rounds[-1]["NgayTiepNhanBoSung"] = _d(at)
            snap["TrangThaiHoSo"] = 4
            send_snapshot(at, unit)
        elif kind == "apology_issued":
            snap["NgayHenTra"] = _d(e["new_due_at"])
            send_snapshot(at, unit)
        elif kind == "rejected":
            snap.update({"TrangThaiHoSo": 3, "NgayTuChoi": _d(at)})
            send_snapshot(at, unit)
        elif kind in ("withdrawn", "stopped", "resolved"):
            snap.update({"TrangThaiHoSo": {"withdrawn": 7, "stopped": 8, "resolved": 9}[kind],
                         "NgayKetThucXuLy": _d(at)})
            send_snapshot(at, unit)
        elif kind == "result_returned":
            snap.update({"TrangThaiHoSo": 10, "NgayTra": _d(at), "DanhSachGiayToKetQua": [
                {"TenGiayTo": "Kết quả", "DuongDanTepTinKetQua":
                    f"https://ketqua.example.invalid/{case_id}.pdf" if e.get("electronic_result") else ""}]})
            send_snapshot(at, unit)
        send_steps(index, at, unit)
    calls.sort(key=lambda c: c.at)  # stable: a snapshot before the step of the same instant
    return calls


def _copy(snap: dict[str, Any]) -> dict[str, Any]:
    return {k: ([dict(x) for x in v] if isinstance(v, list) else v) for k, v in snap.items()}


def rating_calls(ratings: Iterable[Mapping[str, Any]], unit_codes: Mapping[str, str], at: datetime
                 ) -> list[DvcqgCall]:
    """Monthly ``DongBoDanhGia`` summaries per unit from per-dossier ``rated`` events."""
    months: dict[tuple[str, str], list[int]] = {}
    for e in ratings:
        t = _t(e["occurred_at"])
        months.setdefault((e["unit_id"], f"{t.month}-{t.year}"), []).append(int(e["rating"]))
    calls = []
    for (unit, month), values in sorted(months.items()):
        code = unit_codes.get(unit)
        if code is None:
            continue
        n = len(values)
        pct = {"RatHaiLong": sum(v == 5 for v in values), "HaiLong": sum(v == 4 for v in values),
               "ChuaHaiLong": sum(v <= 3 for v in values)}
        calls.append(DvcqgCall(at, {"service": RATINGS, "madonvi": code, "isUpdating": False, "data": [{
            "NgayTongHop": month, "TongSoNguoiDanhGia": n,
            "PhanTramDanhGia": {k: f"{100 * v / n:.1f}%" for k, v in pct.items()}}]}))
    return calls


def registries_for(settings: Settings, *, simulated: bool = True) -> Registries:
    """The translator's registries from the deploy files; ``simulated``: the simulated
    world's procedure codes too (they collide with no real code), so simulated calls read
    right (``pipeline.feed.dvcqg``)."""
    units = load_units(settings.units_file)
    sectors = load_sectors()
    procedures = load_procedures(settings.procedures_file)
    catalogue = simulated_catalogue(procedures, [s.sector for s in sectors]) if simulated else Catalogue(procedures)
    return Registries(
        {u.dvcqg_code: u.unit_id for u in units if u.dvcqg_code},
        {s.dvcqg_code: s.sector for s in sectors if s.dvcqg_code},
        catalogue,
        load_calendar(),
    )
