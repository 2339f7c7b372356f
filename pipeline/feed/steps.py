"""The process steps of a simulated dossier, and the officials who handle them — one source
for both of the simulator's formats.

:func:`case_steps` reads one dossier's contract events (``pipeline.feed.lifecycle``) and
returns every report of its process steps (:class:`StepUpdate`): the reception at the
desk (done at once), the processing by a department's official (opened at the receipt,
due at the dossier's due, done when the dossier is rejected, resolved, withdrawn, stopped or its
result returned, whichever comes first), and the apology step (``xin lỗi``, done when the
apology is issued). A supplement request closes the processing step (the official asked for
it then); the supplement's receipt opens the next one, same official, due at the previous
step's due plus the pause (as the dossier's effective due moves), so a citizen's delay is
never the official's. The officials' names are plainly synthetic, ``Cán bộ Thử nghiệm NN``
(:data:`OFFICIALS` per unit), drawn from the dossier code, never from the simulator's own
random stream (its draws stay the same with or without steps).

``pipeline.feed.dvcqg`` sends them as ``CapNhatTienDoHoSoMC`` rows (:func:`dvcqg_row`);
``simulate --history`` (contract format) and ``build_scenario(steps=True)`` write them as
contract ``step`` events (:func:`step_events`) with the ``step_id`` the DVCQG translator
derives from the same row, so both formats fill the ``steps`` table alike.
"""

from __future__ import annotations

import random
import uuid
import zlib
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Mapping, Sequence

from pipeline.feed.lifecycle import format_local_time
from pipeline.sources.dvcqg.records import format_dvcqg_time
from pipeline.sources.dvcqg.translator import step_id_of

__all__ = [
    "OFFICIALS",
    "RECEPTION",
    "DEPARTMENT",
    "OTHER_DEPARTMENT",
    "APOLOGY_TEXT",
    "PROCESSING_TEXT",
    "RESUMED_TEXT",
    "StepUpdate",
    "case_rng",
    "case_steps",
    "dvcqg_row",
    "step_events",
    "with_steps",
]

OFFICIALS = 30  # Cán bộ Thử nghiệm 01..30 per unit
RECEPTION = "Bộ phận Một cửa"
DEPARTMENT = {
    "ho_tich": "Phòng Tư pháp - Hộ tịch", "chung_thuc": "Phòng Tư pháp - Hộ tịch", "tu_phap": "Phòng Tư pháp - Hộ tịch",
    "dat_dai": "Phòng Kinh tế - Đất đai", "xay_dung": "Phòng Kinh tế - Hạ tầng", "giao_thong": "Phòng Kinh tế - Hạ tầng",
    "kinh_doanh": "Phòng Kinh tế", "dau_tu": "Phòng Kinh tế", "lao_dong": "Phòng Văn hóa - Xã hội",
    "y_te": "Phòng Văn hóa - Xã hội", "giao_duc": "Phòng Văn hóa - Xã hội", "van_hoa": "Phòng Văn hóa - Xã hội",
}
OTHER_DEPARTMENT = "Phòng Chuyên môn"
APOLOGY_TEXT = "Gửi phiếu xin lỗi và hẹn lại ngày trả kết quả"
PROCESSING_TEXT = "Thẩm định, xử lý hồ sơ"
RESUMED_TEXT = "Thẩm định, xử lý hồ sơ sau bổ sung"
_STEP_IDS = uuid.UUID("6f1d3c2a-5b7e-4d0a-9c1e-22b0a5e1c0de")  # namespace of the contract step events' ids
_FINISHING = ("rejected", "withdrawn", "stopped", "resolved", "result_returned")


@dataclass(frozen=True, slots=True)
class StepUpdate:
    """One report of a step: sent when the step opens and again when it is done.

    ``event_index``: the dossier event that triggers the report (its position in the
    events given to :func:`case_steps`); times are the events' own RFC 3339 texts."""

    event_index: int
    at: str
    unit: str
    handler_name: str
    handler_title: str
    department: str
    text: str
    status: int  # TrangThai: 1 in progress, 2 done
    started_at: str
    due_at: str | None
    finished_at: str | None


def case_rng(case_id: str) -> tuple[random.Random, str, str]:
    """The dossier's own random stream and, drawn first from it, its processing official
    and its reception clerk."""
    rng = random.Random(zlib.crc32(case_id.encode("utf-8")))
    official = f"Cán bộ Thử nghiệm {rng.randint(1, OFFICIALS):02d}"
    clerk = f"Cán bộ Thử nghiệm {rng.randint(1, OFFICIALS):02d}"
    return rng, official, clerk


def case_steps(events: Sequence[Mapping[str, Any]]) -> list[StepUpdate]:
    """Every step report of one dossier (its events in time order), in the events' order."""
    if not events:
        return []
    _rng, official, clerk = case_rng(str(events[0]["case_id"]))
    out: list[StepUpdate] = []
    received = next((e for e in events if e["event_type"] == "received"), None)
    department = DEPARTMENT.get(received["sector"] if received else "", OTHER_DEPARTMENT)
    processing: StepUpdate | None = None
    paused_at: str | None = None  # a supplement request closed the processing step then
    ended = False
    for i, e in enumerate(events):
        kind, at, unit = e["event_type"], e["occurred_at"], e["unit_id"]
        if kind == "received":
            out.append(StepUpdate(i, at, unit, clerk, "Công chức tiếp nhận", RECEPTION, "Tiếp nhận hồ sơ", 2,
                                  at, at, at))
            processing = StepUpdate(i, at, unit, official, "Chuyên viên", department, PROCESSING_TEXT, 1,
                                    at, e["due_at"], None)
            out.append(processing)
        elif kind == "supplement_requested" and processing is not None and processing.finished_at is None:
            processing = replace(processing, event_index=i, at=at, unit=unit, status=2, finished_at=at)
            out.append(processing)
            paused_at = at
        elif kind == "supplement_received" and processing is not None and paused_at is not None and not ended:
            # the processing goes on after the supplement, its due moved by the pause (as the dossier's)
            due = processing.due_at
            if due is not None:
                due = format_local_time(datetime.fromisoformat(due)
                                        + (datetime.fromisoformat(at) - datetime.fromisoformat(paused_at)))
            processing = StepUpdate(i, at, unit, official, "Chuyên viên", department, RESUMED_TEXT, 1, at, due, None)
            out.append(processing)
            paused_at = None
        elif kind == "apology_issued":
            out.append(StepUpdate(i, at, unit, official, "Chuyên viên", department, APOLOGY_TEXT, 2,
                                  at, None, at))
        elif kind in _FINISHING:
            ended = True
            if processing is not None and processing.finished_at is None:
                processing = replace(processing, event_index=i, at=at, unit=unit, status=2, finished_at=at)
                out.append(processing)
    return out


def _dvcqg_time(text: str) -> str:
    return format_dvcqg_time(datetime.fromisoformat(text))


def dvcqg_row(case_id: str, step: StepUpdate) -> dict[str, Any]:
    """The step as a ``CapNhatTienDoHoSoMC`` row."""
    row: dict[str, Any] = {"MaHoSo": case_id, "NguoiXuLy": step.handler_name, "ChucDanh": step.handler_title,
                           "PhongBanXuLy": step.department, "NoiDungXuLy": step.text, "TrangThai": step.status,
                           "NgayBatDau": _dvcqg_time(step.started_at)}
    if step.due_at is not None:
        row["NgayKetThucTheoQuyDinh"] = _dvcqg_time(step.due_at)
    if step.finished_at is not None:
        row["ThoiDiemXuLy"] = _dvcqg_time(step.finished_at)
    return row


def step_events(events: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The dossier's steps as contract ``step`` events (``occurred_at``: the report's time);
    ``step_id`` as the DVCQG translator derives it, ``event_id`` derived from the step and
    the report's time (the same events on every run)."""
    if not events:
        return []
    case_id = str(events[0]["case_id"])
    out = []
    for s in case_steps(events):
        step_id = step_id_of(case_id, _dvcqg_time(s.started_at), s.department, s.handler_name)
        event: dict[str, Any] = {
            "schema_version": 1,
            "event_id": str(uuid.uuid5(_STEP_IDS, f"{case_id}\x1f{step_id}\x1f{s.at}\x1f{s.status}")),
            "event_type": "step",
            "case_id": case_id,
            "unit_id": s.unit,
            "occurred_at": s.at,
            "step_id": step_id,
            "handler_name": s.handler_name,
            "handler_title": s.handler_title,
            "department": s.department,
            "started_at": s.started_at,
            "status_code": str(s.status),
        }
        if s.due_at is not None:
            event["step_due_at"] = s.due_at
        if s.finished_at is not None:
            event["finished_at"] = s.finished_at
        out.append(event)
    return out


def with_steps(events: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """A dossier's events with its step events, in time order (a step after the event that
    triggers it)."""
    merged = [dict(e) for e in events]
    steps = step_events(events)
    if not steps:
        return merged
    return sorted(merged + steps, key=lambda e: datetime.fromisoformat(e["occurred_at"]))
