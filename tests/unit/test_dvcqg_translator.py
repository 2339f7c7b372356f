"""The DVCQG translator, row by row of the spec's mapping table (intake.md), and the door.

Every event the translator emits passes the contract (``CaseEvent.from_record``); these
tests check which events, at which times, with which fields, and that nothing doubles."""

from __future__ import annotations

import ast
import json
from datetime import date
from pathlib import Path

import pytest

from pipeline.contract.events import CaseEvent, parse_time
from pipeline.core.catalogue import Catalogue, Procedure
from pipeline.contract.localtime import WorkCalendar
from pipeline.sources.dvcqg.records import (
    PROGRESS,
    RATINGS,
    SNAPSHOT,
    BadRecord,
    RawRecord,
    parse_dvcqg_time,
    scrub,
    split_call,
)
from pipeline.sources.dvcqg.translator import NO_SECTOR, Registries, Translator, step_id_of

UNIT_CODE, UNIT = "000.00.09.H24", "SO_TP"
ARRIVED = parse_time("2025-06-30T10:00:00+07:00")
CAT = Catalogue([
    Procedure("2.000815", "Chứng thực bản sao", "chung_thuc", 0, False, True),
    Procedure("1.001193", "Đăng ký khai sinh", "ho_tich", 0, True, False),
    Procedure("1.001612", "Đăng ký thành lập hộ kinh doanh", "kinh_doanh", 3, True, True),
])
REG = Registries({UNIT_CODE: UNIT}, {"G09-TP03": "ho_tich"}, CAT,
                 WorkCalendar(holidays=frozenset({date(2025, 9, 1), date(2025, 9, 2)})))


def T(text: str) -> int:
    """``yyyyMMddHHmmss`` local -> µs."""
    return parse_dvcqg_time(text)


def snap(status, madonvi=UNIT_CODE, **fields) -> RawRecord:
    data = {"MaHoSo": "HS-1", "MaTTHC": "1.001612", "TrangThaiHoSo": status, **fields}
    return RawRecord(SNAPSHOT, madonvi, True, ARRIVED, "acct", scrub(SNAPSHOT, data))


def step_rec(**fields) -> RawRecord:
    data = {"MaHoSo": "HS-1", "NguoiXuLy": "Cán bộ Thử nghiệm 07", "ChucDanh": "Chuyên viên",
            "PhongBanXuLy": "Phòng Hành chính", "NgayBatDau": "20250602080000", **fields}
    return RawRecord(PROGRESS, UNIT_CODE, True, ARRIVED, "acct", scrub(PROGRESS, data))


def run(*records, state=None, translator=None):
    """Apply records in order; (state, all events, all problems)."""
    tr = translator or Translator(REG)
    events, problems = [], []
    for rec in records:
        out = tr.apply(rec, state)
        state = out.state
        events += out.events
        problems += out.problems
    for e in events:
        assert CaseEvent.from_record(e).to_record() == e  # contract-valid, canonical
    json.dumps(state)  # JSON-able
    return state, events, problems


def types(events):
    return [e["event_type"] for e in events]


RECEIVED = dict(NgayNopHoSo="20250602073000", NgayTiepNhan="20250602080000", NgayHenTra="20250605170000")


# --------------------------------------------------------------------------- received


@pytest.mark.parametrize("status", [2, 4, 5, 6, 7, 8, 9, 10])
def test_first_status_2_or_4_to_10_is_received(status):
    _, events, _ = run(snap(status, **RECEIVED))
    assert types(events)[0] == "received"
    rec = events[0]
    assert rec["occurred_at"] == "2025-06-02T01:00:00.000000Z"  # NgayTiepNhan, UTC
    assert rec["due_at"] == "2025-06-05T10:00:00.000000Z"
    assert rec["unit_id"] == UNIT and rec["procedure_code"] == "1.001612" and rec["sector"] == "kinh_doanh"
    assert rec["event_id"] == f"dvcqg:HS-1:received:{T('20250602080000')}" and rec["source"] == "dvcqg"


@pytest.mark.parametrize("status", [1, None, 3])
def test_status_1_or_none_or_3_is_not_received(status):
    _, events, _ = run(snap(status, **RECEIVED))
    assert "received" not in types(events)


def test_received_once_with_the_first_due_seen():
    moved = {**RECEIVED, "NgayHenTra": "20250610170000"}
    _, events, _ = run(snap(2, **RECEIVED), snap(4, **moved), snap(4, **moved))
    assert types(events) == ["received"]
    assert events[0]["due_at"] == "2025-06-05T10:00:00.000000Z"


def test_due_from_the_catalogue_in_working_days_when_the_snapshot_has_none():
    # received Friday 29 Aug 2025; 1-2 Sep are holidays (National Day): 3 working days -> Fri 5 Sep 17:00
    rec = {"NgayTiepNhan": "20250829100000"}
    _, events, _ = run(snap(2, **rec))
    assert events[0]["due_at"] == "2025-09-05T10:00:00.000000Z"
    # 0 days (chứng thực): the same day at 17:00
    _, events, _ = run(snap(2, MaTTHC="2.000815", **rec))
    assert events[0]["due_at"] == "2025-08-29T10:00:00.000000Z"


def test_no_due_and_no_catalogue_waits_for_a_due():
    state, events, problems = run(snap(2, MaTTHC="9.999999", NgayTiepNhan="20250602080000"))
    assert events == [] and [p.kind for p in problems] == ["no_due"]
    _, events, _ = run(snap(4, MaTTHC="9.999999", **RECEIVED), state=state)
    assert types(events) == ["received"] and events[0]["due_at"] == "2025-06-05T10:00:00.000000Z"


def test_received_time_falls_back_to_submission_then_the_snapshot():
    _, events, _ = run(snap(2, NgayNopHoSo="20250602073000", NgayHenTra="20250605170000"))
    assert events[0]["occurred_at"] == "2025-06-02T00:30:00.000000Z"
    _, events, _ = run(snap(2, NgayHenTra="20250605170000"))
    assert events[0]["occurred_at"] == "2025-06-30T03:00:00.000000Z"  # no date: the call's arrival


@pytest.mark.parametrize(
    ("kenh", "procedure", "channel", "mode"),
    [(None, "1.001612", "direct", None), ("", "1.001612", "direct", None), (1, "1.001612", "direct", None),
     (2, "1.001612", "online", "full"), ("2", "9.999999", "online", "partial"), (3, "1.001612", "postal", None)],
)
def test_channel_and_online_mode(kenh, procedure, channel, mode):
    _, events, _ = run(snap(2, KenhThucHien=kenh, MaTTHC=procedure, **RECEIVED))
    assert events[0]["channel"] == channel and events[0].get("online_mode") == mode


def test_has_fee_from_the_catalogue_or_the_fee_list():
    _, events, _ = run(snap(2, MaTTHC="1.001193", **RECEIVED))
    assert events[0]["has_fee"] is False
    _, events, _ = run(snap(2, MaTTHC="1.001193", DanhSachLePhi=[{"Gia": 8000}], **RECEIVED))
    assert events[0]["has_fee"] is True
    _, events, _ = run(snap(2, MaTTHC="2.000815", **RECEIVED))
    assert events[0]["has_fee"] is True


@pytest.mark.parametrize(
    ("fields", "digitized", "reused", "vneid"),
    [
        ({}, False, False, False),
        ({"HoSoCoThanhPhanSoHoa": 1}, True, False, False),
        ({"TaiLieuNop": [{"DuocSoHoa": "1"}]}, True, False, False),
        ({"TaiLieuNop": [{"DuocTaiSuDung": 2}]}, False, True, False),
        ({"TaiLieuNop": [{"DuocTaiSuDung": 1}]}, False, True, False),
        ({"TaiLieuNop": [{"DuocLayTuKhoDMQG": 1}]}, False, True, False),
        ({"TaiLieuNop": [{"DuocTaiSuDung": 0, "DuocSoHoa": 0}]}, False, False, False),
        ({"TaiKhoanDuocXacThucVoiVNeID": 1}, False, False, True),
    ],
)
def test_digitized_reused_vneid(fields, digitized, reused, vneid):
    _, events, _ = run(snap(2, **RECEIVED, **fields))
    e = events[0]
    assert (e["digitized"], e["reused_data"], e["vneid_authenticated"]) == (digitized, reused, vneid)


def test_sector_from_catalogue_then_national_sector_code_then_outside_the_registry():
    _, events, _ = run(snap(2, MaTTHC="9.999999", MaLinhVuc="G09-TP03", **RECEIVED))
    assert events[0]["sector"] == "ho_tich"
    _, events, _ = run(snap(2, MaTTHC="9.999999", MaLinhVuc="X-1", **RECEIVED))
    assert events[0]["sector"] == "linhvuc_x_1"
    _, events, _ = run(snap(2, MaTTHC="9.999999", **RECEIVED))
    assert events[0]["sector"] == NO_SECTOR


def test_unknown_madonvi_is_the_unknown_unit():
    _, events, _ = run(snap(2, madonvi="000.99.99.H99", **RECEIVED))
    assert events[0]["unit_id"] == "unknown"


# --------------------------------------------------------------------------- rejected


def test_status_3_is_rejected_at_its_date_with_fallbacks():
    _, events, _ = run(snap(3, NgayNopHoSo="20250602073000", NgayTuChoi="20250602090000"))
    assert types(events) == ["rejected"] and events[0]["occurred_at"] == "2025-06-02T02:00:00.000000Z"
    _, events, _ = run(snap(3, NgayNopHoSo="20250602073000", NgayTiepNhan="20250602080000"))
    assert events[0]["occurred_at"] == "2025-06-02T01:00:00.000000Z"
    _, events, _ = run(snap(3, NgayNopHoSo="20250602073000"))
    assert events[0]["occurred_at"] == "2025-06-02T00:30:00.000000Z"
    _, events, _ = run(snap(3, NgayTuChoi="20250602090000"), snap(3, NgayTuChoi="20250602090000"))
    assert types(events) == ["rejected"]


# --------------------------------------------------------------------------- supplements


def test_supplement_by_the_status_walk_at_the_snapshot_time():
    s4 = snap(4, **RECEIVED)
    s5 = snap(5, **RECEIVED)
    _, events, _ = run(s4, s5, s5, snap(4, **RECEIVED))
    assert types(events) == ["received", "supplement_requested", "supplement_received"]
    # no date newer than receipt: the snapshot's time is its latest date (the spec's rule)
    assert events[1]["occurred_at"] == events[0]["occurred_at"]


def test_supplement_rounds_with_their_dates_and_no_double_count_with_the_status():
    r1 = {"NgayBoSung": "20250603090000"}
    r1_back = {"NgayBoSung": "20250603090000", "NgayTiepNhanBoSung": "20250604100000"}
    r2 = {"NgayBoSung": "20250605090000"}
    _, events, _ = run(
        snap(4, **RECEIVED),
        snap(5, **RECEIVED, DanhSachHoSoBoSung=[r1]),
        snap(5, **RECEIVED),  # the list left out: nothing new
        snap(4, **RECEIVED, DanhSachHoSoBoSung=[r1_back]),
        snap(5, **RECEIVED, DanhSachHoSoBoSung=[r1_back, r2]),
    )
    assert types(events) == ["received", "supplement_requested", "supplement_received", "supplement_requested"]
    assert [e["occurred_at"] for e in events[1:]] == [
        "2025-06-03T02:00:00.000000Z", "2025-06-04T03:00:00.000000Z", "2025-06-05T02:00:00.000000Z"]
    assert len({e["event_id"] for e in events}) == 4


def test_status_5_first_then_the_list_fills_in_counts_one_round():
    _, events, _ = run(snap(5, **RECEIVED), snap(4, **RECEIVED, DanhSachHoSoBoSung=[
        {"NgayBoSung": "20250603090000", "NgayTiepNhanBoSung": "20250604100000"}]))
    assert types(events) == ["received", "supplement_requested", "supplement_received"]


# --------------------------------------------------------------------------- payment


def test_online_payment_at_the_first_snapshot_that_shows_it():
    fee = {"DanhSachLePhi": [{"Gia": 50000}, {"Gia": "100000"}]}
    _, events, _ = run(snap(4, **RECEIVED, **fee),
                       snap(4, **RECEIVED, **fee, DuocThanhToanTrucTuyen=2, NgayKetThucXuLy=None),
                       snap(9, **RECEIVED, **fee, DuocThanhToanTrucTuyen=1, NgayKetThucXuLy="20250604150000"))
    assert types(events) == ["received", "payment", "resolved"]
    pay = events[1]
    assert pay["method"] == "online" and pay["amount_vnd"] == 150000


def test_offline_payment_when_the_dossier_reaches_9_or_10_with_a_fee_and_no_online_flag():
    fee = {"DanhSachLePhi": [{"Gia": 20000}]}
    _, events, _ = run(snap(4, **RECEIVED, **fee), snap(10, **RECEIVED, **fee, NgayKetThucXuLy="20250604150000",
                                                         NgayTra="20250604160000"))
    assert types(events) == ["received", "payment", "resolved", "result_returned"]
    assert events[1]["method"] == "offline" and events[1]["amount_vnd"] == 20000
    assert events[1]["occurred_at"] == "2025-06-04T09:00:00.000000Z"  # that snapshot's time (NgayTra)


def test_no_fee_no_payment():
    _, events, _ = run(snap(10, **RECEIVED, DuocThanhToanTrucTuyen=1, NgayKetThucXuLy="20250604150000"))
    assert "payment" not in types(events)


# --------------------------------------------------------------------------- finish


@pytest.mark.parametrize(("status", "event_type"), [(7, "withdrawn"), (8, "stopped")])
def test_withdrawn_and_stopped(status, event_type):
    _, events, _ = run(snap(4, **RECEIVED), snap(status, **RECEIVED, NgayKetThucXuLy="20250603100000"))
    assert types(events) == ["received", event_type] and events[1]["occurred_at"] == "2025-06-03T03:00:00.000000Z"
    _, events, _ = run(snap(4, **RECEIVED), snap(status, **RECEIVED))  # no end date: the snapshot's time
    assert events[1]["occurred_at"] == events[0]["occurred_at"]


def test_resolved_then_result_returned_with_electronic_result():
    _, events, _ = run(
        snap(4, **RECEIVED),
        snap(9, **RECEIVED, NgayKetThucXuLy="20250604150000"),
        snap(10, **RECEIVED, NgayKetThucXuLy="20250604150000", NgayTra="20250605090000",
             DanhSachGiayToKetQua=[{"DuongDanTepTinKetQua": "https://example.invalid/kq.pdf", "TenTep": "kq.pdf"}]),
    )
    assert types(events) == ["received", "resolved", "result_returned"]
    assert events[1]["occurred_at"] == "2025-06-04T08:00:00.000000Z"
    assert events[2]["occurred_at"] == "2025-06-05T02:00:00.000000Z" and events[2]["electronic_result"] is True


def test_status_10_first_is_received_resolved_and_returned_without_electronic_result():
    _, events, _ = run(snap(10, **RECEIVED, NgayKetThucXuLy="20250604150000", NgayTra="20250605090000",
                            DanhSachGiayToKetQua=[{"DuongDanTepTinKetQua": ""}]))
    assert types(events) == ["received", "resolved", "result_returned"]
    assert events[2]["electronic_result"] is False


# --------------------------------------------------------------------------- once, regressions


def test_a_replayed_log_doubles_nothing_and_ids_do_not_depend_on_the_state():
    log = [snap(4, **RECEIVED), snap(5, **RECEIVED, DanhSachHoSoBoSung=[{"NgayBoSung": "20250603090000"}]),
           snap(9, **RECEIVED, NgayKetThucXuLy="20250604150000")]
    state, first, _ = run(*log)
    _, again, _ = run(*log, state=state)
    assert again == []  # the state spares sending them again
    _, fresh, _ = run(*log)  # state lost (a crash before it was kept): the same ids, dropped downstream
    assert [e["event_id"] for e in fresh] == [e["event_id"] for e in first]


def test_a_status_going_backwards_is_counted_not_undone():
    done = {**RECEIVED, "NgayKetThucXuLy": "20250604150000"}
    state, events, problems = run(snap(9, **done), snap(4, **done), snap(5, **done))
    assert types(events) == ["received", "resolved"]  # the 5 opens no supplement round
    assert state["regressions"] == 2 and [p.kind for p in problems] == ["status_regression"] * 2
    assert state["status"] == 9


def test_an_older_snapshot_arriving_late_is_stale_not_a_regression():
    state, events, problems = run(snap(9, **RECEIVED, NgayKetThucXuLy="20250604150000"),
                                  snap(5, **RECEIVED, DanhSachHoSoBoSung=[{"NgayBoSung": "20250603090000"}]))
    # its status drives nothing; its dated round still counts (the dossier did pause)
    assert types(events) == ["received", "resolved", "supplement_requested"]
    assert state["stale"] == 1 and state["regressions"] == 0 and problems == [] and state["status"] == 9


def test_state_survives_a_json_round_trip():
    state, _, _ = run(snap(4, **RECEIVED), step_rec())
    again = json.loads(json.dumps(state))
    _, events, _ = run(snap(9, **RECEIVED, NgayKetThucXuLy="20250604150000"), state=again)
    assert types(events) == ["resolved"]


def test_a_record_without_mahoso_is_a_problem():
    rec = RawRecord(SNAPSHOT, UNIT_CODE, True, ARRIVED, "a", {"TrangThaiHoSo": 2})
    out = Translator(REG).apply(rec, None)
    assert out.events == [] and [p.kind for p in out.problems] == ["bad_record"]


def test_a_bad_date_is_reported_and_ignored():
    _, events, problems = run(snap(2, NgayTiepNhan="2025-06-02", NgayHenTra="20250605170000"))
    assert [p.kind for p in problems] == ["bad_date"] and types(events) == ["received"]


# --------------------------------------------------------------------------- steps and apology


def test_a_step_open_then_done():
    state, events, _ = run(step_rec(NgayKetThucTheoQuyDinh="20250603170000", TrangThai=1))
    assert types(events) == ["step"]
    s = events[0]
    assert s["step_id"] == step_id_of("HS-1", "20250602080000", "Phòng Hành chính", "Cán bộ Thử nghiệm 07")
    assert s["handler_name"] == "Cán bộ Thử nghiệm 07" and s["handler_title"] == "Chuyên viên"
    assert s["department"] == "Phòng Hành chính" and s["status_code"] == "1"
    assert s["started_at"] == "2025-06-02T01:00:00.000000Z" and s["step_due_at"] == "2025-06-03T10:00:00.000000Z"
    assert "finished_at" not in s and s["occurred_at"] == s["started_at"]
    done = step_rec(NgayKetThucTheoQuyDinh="20250603170000", ThoiDiemXuLy="20250604090000", TrangThai=2)
    state, events, _ = run(done, done, state=state)
    assert types(events) == ["step"] and events[0]["finished_at"] == "2025-06-04T02:00:00.000000Z"
    assert events[0]["step_id"] == s["step_id"] and events[0]["event_id"] != s["event_id"]


def test_a_step_without_a_start_uses_its_finish_and_without_either_is_a_problem():
    _, events, _ = run(step_rec(NgayBatDau=None, ThoiDiemXuLy="20250604090000"))
    assert events[0]["started_at"] == events[0]["finished_at"]
    _, events, problems = run(step_rec(NgayBatDau=None))
    assert events == [] and [p.kind for p in problems] == ["bad_record"]


def test_apology_step_with_the_moved_due():
    moved = {**RECEIVED, "NgayHenTra": "20250610170000"}
    apology = step_rec(NoiDungXuLy="Gửi phiếu XIN LỖI và hẹn lại ngày trả", ThoiDiemXuLy="20250605160000")
    _, events, _ = run(snap(4, **RECEIVED), snap(4, **moved), apology, apology)
    assert types(events) == ["received", "step", "apology_issued"]
    assert events[2]["occurred_at"] == "2025-06-05T09:00:00.000000Z"
    assert events[2]["new_due_at"] == "2025-06-10T10:00:00.000000Z"
    # the due not moved yet: the step's own due
    _, events, _ = run(snap(4, **RECEIVED), step_rec(NoiDungXuLy="xin lỗi", ThoiDiemXuLy="20250605160000",
                                                      NgayKetThucTheoQuyDinh="20250609170000"))
    assert events[-1]["event_type"] == "apology_issued" and events[-1]["new_due_at"] == "2025-06-09T10:00:00.000000Z"


def test_a_plain_step_text_is_not_an_apology():
    _, events, _ = run(step_rec(NoiDungXuLy="Chuyển lãnh đạo phê duyệt"))
    assert types(events) == ["step"]


# --------------------------------------------------------------------------- ratings


def test_monthly_rating_summary():
    rec = RawRecord(RATINGS, UNIT_CODE, False, ARRIVED, "a", scrub(RATINGS, {
        "NgayTongHop": "6-2025", "TongSoNguoiDanhGia": "120",
        "PhanTramDanhGia": {"RatHaiLong": "80%", "HaiLong": "15%", "ChuaHaiLong": "5%"}}))
    out = Translator(REG).apply(rec, None)
    assert out.events == [] and len(out.ratings) == 1
    r = out.ratings[0]
    assert (r.unit_id, r.month, r.raters, r.very_satisfied_pct, r.unsatisfied_pct) == (UNIT, "2025-06", 120, 80.0, 5.0)
    bad = RawRecord(RATINGS, UNIT_CODE, False, ARRIVED, "a", {"NgayTongHop": "2025-06"})
    assert [p.kind for p in Translator(REG).apply(bad, None).problems] == ["bad_record"]


# --------------------------------------------------------------------------- the door


PII = {
    "ChuHoSo": "Nguyễn Văn Riêng", "SoGiayToChuHoSo": "001099012345", "DinhDanhCHS": "ID-PRIVATE-1",
    "MaDoiTuong": "DT-PRIVATE", "Email": "rieng@example.invalid", "Fax": "0240000001", "SoDienThoai": "0912345678",
    "DiaChiThuongTru": "Số 1 phố Bí Mật", "DiaChiLienHe": "Ngõ Riêng Tư", "ThongTinKhac": "ghi chú riêng",
    "TrichYeuHoSo": "Hồ sơ của ông Nguyễn Văn Riêng",
}


def test_personal_data_is_dropped_at_the_door():
    body = {"service": SNAPSHOT, "madonvi": UNIT_CODE, "isUpdating": False, "data": [
        {"MaHoSo": "HS-9", "TrangThaiHoSo": 2, **PII,
         "TaiLieuNop": [{"TenTepDinhKem": "cccd-rieng.pdf", "DuongDanTaiTep": "https://x.invalid/cccd.pdf",
                         "DuocSoHoa": 1}],
         "DanhSachGiayToKetQua": [{"DuongDanTepTinKetQua": "https://x.invalid/kq-rieng.pdf", "TenGiayTo": "kq"}]},
    ]}
    good, bad = split_call(body, arrived_us=ARRIVED, account="a")
    assert bad == [] and len(good) == 1
    text = good[0].to_bytes().decode()
    for value in list(PII.values()) + ["cccd-rieng.pdf", "x.invalid", "kq-rieng"]:
        assert value not in text
    assert good[0].data["TaiLieuNop"] == [{"DuocSoHoa": 1}]
    assert good[0].data["DanhSachGiayToKetQua"] == [{"DuongDanTepTinKetQua": 1}]
    step = scrub(PROGRESS, {"MaHoSo": "HS-9", "NoiDungXuLy": "Xin lỗi ông Nguyễn Văn Riêng", "NguoiXuLy": "Cán bộ 1"})
    assert step == {"MaHoSo": "HS-9", "NguoiXuLy": "Cán bộ 1", "XinLoi": 1}


def test_split_call_keeps_the_good_records_of_a_call_with_bad_ones():
    body = {"service": SNAPSHOT, "madonvi": UNIT_CODE, "data": [
        {"MaHoSo": "A", "TrangThaiHoSo": 2}, {"TrangThaiHoSo": 2}, "not an object", {"MaHoSo": ""},
        {"MaHoSo": "x" * 65}, {"MaHoSo": 12345}]}
    good, bad = split_call(body, arrived_us=ARRIVED, account="a")
    assert [g.key for g in good] == ["A", "12345"]
    assert [i for i, _ in bad] == [1, 2, 3, 4] and "MaHoSo is missing" in bad[0][1]
    ratings, bad = split_call({"service": RATINGS, "data": [{"NgayTongHop": "6-2025"}]}, arrived_us=0, account="a")
    assert ratings == [] and "madonvi" in bad[0][1]


def test_raw_record_round_trip_and_bad_messages():
    rec = snap(2, **RECEIVED)
    assert RawRecord.from_bytes(rec.to_bytes()) == rec
    for raw in (b"{", b"[]", b'{"service":"X","data":{}}', b'{"service":"DongBoHoSoMC","data":{}}'):
        with pytest.raises(BadRecord):
            RawRecord.from_bytes(raw)


def test_dvcqg_dates():
    assert parse_dvcqg_time("20250602080000") == parse_time("2025-06-02T08:00:00+07:00")
    assert parse_dvcqg_time("20250602") == parse_time("2025-06-02T00:00:00+07:00")
    assert parse_dvcqg_time("") is None and parse_dvcqg_time(None) is None
    for bad in ("2025-06-02", "20251302080000", "abc", 2025):
        with pytest.raises(ValueError):
            parse_dvcqg_time(bad)


SOURCES = Path(__file__).resolve().parents[2] / "pipeline" / "sources"


@pytest.mark.parametrize("path", sorted(SOURCES.rglob("*.py")), ids=lambda p: p.name)
def test_the_source_adapter_imports_only_the_contract_and_the_core(path):
    allowed_stdlib = {"__future__", "collections", "hashlib", "json", "re", "dataclasses", "datetime", "typing"}
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
            [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
        for name in names:
            ok = name in allowed_stdlib or name.startswith(("pipeline.contract", "pipeline.core", "pipeline.sources"))
            assert ok, f"{path.name} imports {name}"


def test_an_unknown_status_is_reported_and_drives_nothing():
    state, events, problems = run(snap(11, **RECEIVED))
    assert events == [] and [p.kind for p in problems] == ["bad_record"] and state["status"] is None


def test_a_whole_log_sent_again_changes_nothing():
    """Replayed after the dossier moved on, old snapshots are neither regressions nor new rounds."""
    r1 = {"NgayBoSung": "20250603090000"}
    r1_back = {"NgayBoSung": "20250603090000", "NgayTiepNhanBoSung": "20250604100000"}
    r2 = {"NgayBoSung": "20250605090000"}
    r2_back = {"NgayBoSung": "20250605090000", "NgayTiepNhanBoSung": "20250605150000"}
    log = [snap(4, **RECEIVED), snap(4, **RECEIVED), snap(5, **RECEIVED), snap(4, **RECEIVED),  # a walk
           snap(5, **RECEIVED, DanhSachHoSoBoSung=[r1]),
           snap(4, **RECEIVED, DanhSachHoSoBoSung=[r1_back]), snap(5, **RECEIVED, DanhSachHoSoBoSung=[r1_back, r2]),
           snap(4, **RECEIVED, DanhSachHoSoBoSung=[r1_back, r2_back]),
           step_rec(), snap(9, **RECEIVED, NgayKetThucXuLy="20250606100000")]
    state, first, _ = run(*log)
    assert types(first).count("supplement_requested") == 3  # the walk: 3 times into 5 (more than the list's 2)
    again_state, again, problems = run(*log, state=state)
    assert again == [] and problems == [] and again_state["regressions"] == 0
