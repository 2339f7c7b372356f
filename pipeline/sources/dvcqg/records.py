"""DVCQG sync calls at the door: their services, dates, the personal-data filter and the
raw record that goes to Kafka (``tthc.dvcqg-records``).

Pure: no Kafka, no HTTP, no clock (the arrival time is passed in).

**Personal data is dropped by keeping only what the translator needs** (a whitelist per
service, :data:`KEPT_FIELDS`): every other field of a record — ``ChuHoSo``,
``SoGiayToChuHoSo``, ``DinhDanhCHS``, ``MaDoiTuong``, ``Email``, ``Fax``, ``SoDienThoai``,
``DiaChi*``, ``ThongTinKhac``, ``TrichYeuHoSo``, file URLs and names, and any field a
source adds later — never leaves :func:`scrub`. Two values are reduced to what they mean:
a result document's link (``DuongDanTepTinKetQua``) becomes ``1`` (an electronic result
exists), and a step's free text (``NoiDungXuLy``, which may name the applicant) becomes
``XinLoi: 1`` when it matches the apology rule (:data:`APOLOGY_MARKERS`), else nothing.
Officials' names, titles and departments in steps are kept: the plan publishes who was late.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Iterable, Mapping

from pipeline.contract.events import parse_time
from pipeline.contract.localtime import LOCAL_TZ

__all__ = [
    "SNAPSHOT",
    "PROGRESS",
    "RATINGS",
    "SERVICES",
    "KEPT_FIELDS",
    "APOLOGY_MARKERS",
    "RawRecord",
    "BadRecord",
    "scrub",
    "split_call",
    "parse_dvcqg_time",
    "format_dvcqg_time",
    "record_key",
]

SNAPSHOT = "DongBoHoSoMC"  # dossier snapshots
PROGRESS = "CapNhatTienDoHoSoMC"  # process steps
RATINGS = "DongBoDanhGia"  # monthly rating summaries per unit
SERVICES = (SNAPSHOT, PROGRESS, RATINGS)

#: the apology rule (docs/intake.md): a step whose text contains one of these, case-folded
APOLOGY_MARKERS: tuple[str, ...] = ("xin lỗi",)

_SNAPSHOT_FIELDS = (
    "MaHoSo", "MaTTHC", "MaLinhVuc", "KenhThucHien", "NgayNopHoSo", "NgayTiepNhan", "NgayHenTra",
    "TrangThaiHoSo", "NgayTuChoi", "NgayKetThucXuLy", "NgayTra", "HoSoCoThanhPhanSoHoa",
    "TaiKhoanDuocXacThucVoiVNeID", "DuocThanhToanTrucTuyen",
)
_STEP_FIELDS = (
    "MaHoSo", "NguoiXuLy", "ChucDanh", "PhongBanXuLy", "TrangThai", "NgayBatDau", "NgayKetThucTheoQuyDinh",
    "ThoiDiemXuLy",
)
_RATING_FIELDS = ("NgayTongHop", "TongSoNguoiDanhGia", "MaDonVi")
_LIST_FIELDS: dict[str, tuple[str, ...]] = {
    "TaiLieuNop": ("DuocSoHoa", "DuocTaiSuDung", "DuocLayTuKhoDMQG"),
    "DanhSachLePhi": ("Gia",),
    "DanhSachHoSoBoSung": ("NgayBoSung", "NgayTiepNhanBoSung"),
}
_PERCENT_FIELDS = ("RatHaiLong", "HaiLong", "ChuaHaiLong")

#: per service, the fields kept (everything else is dropped at the door)
KEPT_FIELDS: dict[str, frozenset[str]] = {
    SNAPSHOT: frozenset(_SNAPSHOT_FIELDS) | frozenset(_LIST_FIELDS) | {"DanhSachGiayToKetQua"},
    PROGRESS: frozenset(_STEP_FIELDS) | {"XinLoi"},
    RATINGS: frozenset(_RATING_FIELDS) | {"PhanTramDanhGia"},
}

_MAX_TEXT = 256  # a kept text value is cut to this many characters
_MAX_ITEMS = 200  # at most this many items of a kept list


class BadRecord(ValueError):
    """A record the intake cannot take (answered with its index and this reason)."""


def _scalar(value: Any) -> Any:
    """A kept value: numbers, booleans and short text only (anything else is dropped)."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, str):
        return value[:_MAX_TEXT]
    return None


def _is_apology(text: Any) -> bool:
    if not isinstance(text, str):
        return False
    folded = text.casefold()
    return any(marker in folded for marker in APOLOGY_MARKERS)


def scrub(service: str, record: Mapping[str, Any]) -> dict[str, Any]:
    """The record with only the fields of :data:`KEPT_FIELDS` (see the module doc)."""
    out: dict[str, Any] = {}
    if service == SNAPSHOT:
        for name in _SNAPSHOT_FIELDS:
            if name in record:
                out[name] = _scalar(record[name])
        for name, inner in _LIST_FIELDS.items():
            items = record.get(name)
            if isinstance(items, list):
                out[name] = [
                    {k: _scalar(item[k]) for k in inner if k in item}
                    for item in items[:_MAX_ITEMS] if isinstance(item, dict)
                ]
        results = record.get("DanhSachGiayToKetQua")
        if isinstance(results, list):
            out["DanhSachGiayToKetQua"] = [
                {"DuongDanTepTinKetQua": 1 if item.get("DuongDanTepTinKetQua") else 0}
                for item in results[:_MAX_ITEMS] if isinstance(item, dict)
            ]
    elif service == PROGRESS:
        for name in _STEP_FIELDS:
            if name in record:
                out[name] = _scalar(record[name])
        if _is_apology(record.get("NoiDungXuLy")):
            out["XinLoi"] = 1
    elif service == RATINGS:
        for name in _RATING_FIELDS:
            if name in record:
                out[name] = _scalar(record[name])
        pct = record.get("PhanTramDanhGia")
        if isinstance(pct, dict):
            out["PhanTramDanhGia"] = {k: _scalar(pct[k]) for k in _PERCENT_FIELDS if k in pct}
    return out


def record_key(service: str, record: Mapping[str, Any], madonvi: str) -> str:
    """The Kafka key of a record: its ``MaHoSo`` (a rating summary: the call's ``madonvi``)."""
    if service == RATINGS:
        return madonvi
    return str(record["MaHoSo"])


@dataclass(frozen=True, slots=True)
class RawRecord:
    """One record of a sync call, scrubbed, as stored on ``tthc.dvcqg-records``.

    ``arrived_us``: when the intake received the call (the fallback time of a snapshot
    that carries no date of its own; kept in the message so a replay gives the same
    events). ``account``: the sending system's login."""

    service: str
    madonvi: str
    is_updating: bool
    arrived_us: int
    account: str
    data: dict[str, Any]

    @property
    def key(self) -> str:
        return record_key(self.service, self.data, self.madonvi)

    def to_bytes(self) -> bytes:
        return json.dumps(
            {"service": self.service, "madonvi": self.madonvi, "isUpdating": self.is_updating,
             "arrived_us": self.arrived_us, "account": self.account, "data": self.data},
            ensure_ascii=False, separators=(",", ":"), sort_keys=True,
        ).encode("utf-8")

    @classmethod
    def from_bytes(cls, raw: bytes) -> "RawRecord":
        """Decode a message of ``tthc.dvcqg-records``; raises :class:`BadRecord`."""
        try:
            obj = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise BadRecord(f"not JSON: {str(exc)[:100]}") from None
        if not isinstance(obj, dict) or obj.get("service") not in SERVICES or not isinstance(obj.get("data"), dict):
            raise BadRecord("not a DVCQG record (service, data)")
        arrived = obj.get("arrived_us")
        if type(arrived) is not int:
            raise BadRecord("arrived_us must be an integer")
        return cls(obj["service"], str(obj.get("madonvi") or ""), bool(obj.get("isUpdating")), arrived,
                   str(obj.get("account") or ""), obj["data"])


def _check(service: str, item: Any) -> None:
    if not isinstance(item, dict):
        raise BadRecord("a record must be a JSON object")
    if service in (SNAPSHOT, PROGRESS):
        code = item.get("MaHoSo")
        if not isinstance(code, (str, int)) or isinstance(code, bool) or not str(code).strip():
            raise BadRecord("MaHoSo is missing")
        if len(str(code)) > 64:
            raise BadRecord("MaHoSo is longer than 64 characters")


def split_call(
    body: Mapping[str, Any], *, arrived_us: int, account: str
) -> tuple[list[RawRecord], list[tuple[int, str]]]:
    """A call's body (already checked to name a known ``service``) -> (the good records,
    scrubbed; the bad ones as (index in ``data``, reason)). A rating summary without
    ``madonvi`` is bad; a dossier or step without ``MaHoSo`` is bad."""
    service = body["service"]
    madonvi = body.get("madonvi")
    madonvi = "" if madonvi is None else str(madonvi)[:64]
    data = body.get("data")
    items: Iterable[Any] = data if isinstance(data, list) else [data]
    good: list[RawRecord] = []
    bad: list[tuple[int, str]] = []
    for index, item in enumerate(items):
        try:
            _check(service, item)
            if service == RATINGS and not madonvi:
                raise BadRecord("a rating summary needs the call's madonvi")
        except BadRecord as exc:
            bad.append((index, str(exc)))
            continue
        good.append(RawRecord(service, madonvi, bool(body.get("isUpdating")), arrived_us, account,
                              scrub(service, item)))
    return good, bad


# --------------------------------------------------------------------------- dates

_LOCAL_SUFFIX = "+07:00"  # Asia/Ho_Chi_Minh, no DST


def parse_dvcqg_time(value: Any) -> int | None:
    """``yyyyMMddHHmmss`` (local time, UTC+7) -> epoch µs; None when empty; raises
    ``ValueError`` for anything else. ``yyyyMMdd`` alone is read as midnight."""
    if value is None or value == "":
        return None
    text = str(value).strip()
    if len(text) == 8 and text.isdigit():
        text += "000000"
    if len(text) != 14 or not text.isdigit():
        raise ValueError(f"not a date yyyyMMddHHmmss: {text[:20]!r}")
    iso = f"{text[0:4]}-{text[4:6]}-{text[6:8]}T{text[8:10]}:{text[10:12]}:{text[12:14]}{_LOCAL_SUFFIX}"
    return parse_time(iso)


def format_dvcqg_time(t: datetime) -> str:
    """A local (or aware) datetime -> ``yyyyMMddHHmmss`` in local time (the simulator's)."""
    if t.tzinfo is not None:
        t = t.astimezone(LOCAL_TZ)
    return t.strftime("%Y%m%d%H%M%S")
