"""DVCQG records -> contract events (spec: ``intake.md``, "From snapshots to contract events").

Pure and stateful: :meth:`Translator.apply` takes one scrubbed record
(:class:`~pipeline.sources.dvcqg.records.RawRecord`) and the dossier's state (a JSON-able
dict, ``None`` for a dossier not seen yet) and returns a :class:`Translation`: the new
state, the contract events (canonical records, each checked by the contract), problems,
and rating summaries. Nothing here reads a clock, a file or a socket, so a runner (the
worker's agent) keeps the state durable like the case records and replays give the same
answer.

Exactly once in effect: every event id is derived from (``MaHoSo``, event type, its
time) — ``dvcqg:<MaHoSo>:<type>:<epoch µs>`` — so a crash between the events and the
state yields duplicates (which the worker drops), never double counts; and the state keeps
the fingerprints of the records it has seen (service, ``madonvi`` and scrubbed content; the
last 256 per dossier, with the status each one met), so a record sent again changes
nothing; an old snapshot replayed after newer ones is *stale* (below) and opens no new
supplement round.

Mapping decisions where the spec is silent (docs/intake.md lists them):

- received: the first snapshot whose status is 2 or 4-10; time ``NgayTiepNhan``, else
  ``NgayNopHoSo``, else the snapshot's time; due = the first ``NgayHenTra`` seen, else
  the receipt + the catalogue's working days (17:00 local of the N-th working day from the
  receipt's day, that day being day 0); with neither, the ``received`` waits (problem
  ``no_due``) for a snapshot that carries ``NgayHenTra``.
- sector: the catalogue's for ``MaTTHC``, else ``MaLinhVuc`` through the sectors'
  ``dvcqg_code``, else a code outside the registry (``linhvuc_<MaLinhVuc>`` or
  ``chua_xac_dinh``) that the worker's gauges sum under ``unknown`` (the contract forbids
  the literal ``unknown``) while the facts keep the source's code.
- supplement rounds: the number of requests (and receipts) emitted is the larger of what
  ``DanhSachHoSoBoSung`` and the status walk (into 5 / out of 5) imply; a round's own date
  is used when the list has it, else the snapshot's time — one round is never counted
  twice when a source fills the list after reporting status 5.
- a status going backwards (:data:`STATUS_RANK`) is counted (``regressions`` in the
  state, problem ``status_regression``); nothing is taken back, and that snapshot's status
  drives nothing (a stale snapshot replayed after a newer one opens no new round); its
  dated facts (supplement rounds, due dates) still count.
- steps: ``step_id`` = ``st-`` + 20 hex digits of SHA-1 over (``MaHoSo``, ``NgayBatDau``,
  ``PhongBanXuLy``, ``NguoiXuLy``); a step is sent again only when its ``ThoiDiemXuLy``
  changes (open -> done).
- apology: a step marked ``XinLoi`` (the rule applied at the door) -> ``apology_issued`` at
  ``ThoiDiemXuLy`` (else ``NgayBatDau``); ``new_due_at`` = the latest ``NgayHenTra`` seen
  when it moved from the first, else the step's ``NgayKetThucTheoQuyDinh``, else the
  latest due known, else the apology's time.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Mapping

from pipeline.contract.events import CaseEvent, InvalidEvent, format_time
from pipeline.core.catalogue import Catalogue
from pipeline.contract.localtime import HOUR_US, WorkCalendar, local_date, local_midnight_us
from pipeline.core.registry import UNKNOWN_UNIT
from pipeline.sources.dvcqg.records import PROGRESS, RATINGS, SNAPSHOT, RawRecord, parse_dvcqg_time

__all__ = [
    "Registries",
    "Translator",
    "Translation",
    "Problem",
    "RatingSummary",
    "STATE_VERSION",
    "STATUS_RANK",
    "SOURCE",
    "NO_SECTOR",
    "step_id_of",
]

STATE_VERSION = 1
SOURCE = "dvcqg"
NO_SECTOR = "chua_xac_dinh"  # neither the catalogue nor MaLinhVuc names a sector

#: progress order of TrangThaiHoSo: a move to a lower rank is a regression
STATUS_RANK: dict[int, int] = {1: 0, 2: 1, 4: 2, 5: 2, 6: 2, 9: 3, 3: 4, 7: 4, 8: 4, 10: 4}
_RECEIVED_STATUSES = frozenset({2, 4, 5, 6, 7, 8, 9, 10})
_DUE_HOUR_US = 17 * HOUR_US  # a due date computed from the catalogue: 17:00 local
_SECTOR_CHARS = re.compile(r"[^a-z0-9_]")
_SEEN_KEPT = 256  # fingerprints of the records seen, per dossier


@dataclass(frozen=True, slots=True)
class Registries:
    """What the translator looks up: unit and sector by their DVCQG codes, the procedure
    catalogue and the working-day calendar (for due dates the source does not send)."""

    units_by_code: Mapping[str, str]
    sectors_by_code: Mapping[str, str]
    catalogue: Catalogue
    calendar: WorkCalendar = field(default_factory=WorkCalendar)


@dataclass(frozen=True, slots=True)
class Problem:
    """``kind``: ``bad_record`` / ``invalid_event`` (to the dead-letter topic),
    ``status_regression``, ``bad_date``, ``no_due`` (counted and logged)."""

    kind: str
    detail: str


@dataclass(frozen=True, slots=True)
class RatingSummary:
    """A unit's monthly rating summary (``DongBoDanhGia``), stored beside the per-dossier
    ``rated`` events, never mixed into their counts."""

    unit_id: str
    madonvi: str
    month: str  # YYYY-MM
    raters: int | None
    very_satisfied_pct: float | None
    satisfied_pct: float | None
    unsatisfied_pct: float | None


@dataclass(slots=True)
class Translation:
    state: dict[str, Any] | None
    events: list[dict[str, Any]] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    ratings: list[RatingSummary] = field(default_factory=list)


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    return None


def _flag(value: Any, *accepted: int) -> bool:
    return _int(value) in (accepted or (1,))


def _amount(value: Any) -> int:
    if isinstance(value, bool) or value is None:
        return 0
    if isinstance(value, (int, float)):
        return max(0, int(value))
    try:
        return max(0, int(float(str(value).replace(",", "").strip() or 0)))
    except ValueError:
        return 0


def _new_state(case_id: str) -> dict[str, Any]:
    return {
        "v": STATE_VERSION, "case_id": case_id, "status": None, "rank": -1, "first_due": None,
        "last_due": None, "received": None, "done": [], "sup_req": 0, "sup_rec": 0,
        "payment": None, "steps": {}, "regressions": 0, "seen": [],
    }


class Translator:
    """Raw records -> contract events; see the module doc."""

    def __init__(self, registries: Registries) -> None:
        self.reg = registries

    # -- helpers -------------------------------------------------------------
    def unit_of(self, madonvi: str) -> str:
        return self.reg.units_by_code.get(madonvi, UNKNOWN_UNIT)

    def sector_of(self, procedure_code: str | None, sector_code: Any) -> str:
        proc = self.reg.catalogue.get(procedure_code)
        if proc is not None:
            return proc.sector
        code = "" if sector_code is None else str(sector_code).strip()
        if code:
            known = self.reg.sectors_by_code.get(code)
            if known is not None:
                return known
            return ("linhvuc_" + _SECTOR_CHARS.sub("_", code.lower()))[:64]
        return NO_SECTOR

    def due_from_catalogue(self, received_us: int, days: int) -> int:
        """17:00 local of the ``days``-th working day from the receipt's local day (day 0)."""
        cal = self.reg.calendar
        day = local_date(received_us)
        while not cal.is_working_day(day):
            day += timedelta(days=1)
        left = days
        while left > 0:
            day += timedelta(days=1)
            if cal.is_working_day(day):
                left -= 1
        return max(local_midnight_us(day) + _DUE_HOUR_US, received_us)

    # -- the entry point -----------------------------------------------------
    def apply(self, record: RawRecord, state: dict[str, Any] | None) -> Translation:
        """One record and the dossier's state -> the new state, events, problems."""
        if record.service == RATINGS:
            return self._ratings(record, state)
        data = record.data
        case_id = str(data.get("MaHoSo") or "").strip()
        if not case_id or len(case_id) > 64:
            return Translation(state, problems=[Problem("bad_record", "MaHoSo is missing or too long")])
        if state is None:
            state = _new_state(case_id)
        else:
            if state.get("v") != STATE_VERSION:
                raise ValueError(f"unsupported translator state version {state.get('v')!r}")
            if _digest(record, state["status"]) in state.get("seen", ()):
                return Translation(state)  # the same record again (a resend, a replayed log): nothing new
            state = _copy(state)
        out = Translation(state)
        seen = state["seen"]
        seen.append(_digest(record, state["status"]))
        if len(seen) > _SEEN_KEPT:
            del seen[: len(seen) - _SEEN_KEPT]
        if record.service == SNAPSHOT:
            self._snapshot(record, state, out)
        elif record.service == PROGRESS:
            self._step(record, state, out)
        else:
            out.problems.append(Problem("bad_record", f"unknown service {record.service!r}"))
        return out

    # -- events --------------------------------------------------------------
    def _emit(self, out: Translation, event_type: str, case_id: str, unit: str, t_us: int, key: str = "",
              **fields: Any) -> None:
        suffix = f":{key}" if key else ""
        record: dict[str, Any] = {
            "schema_version": 1,
            "event_id": f"dvcqg:{case_id}:{event_type}:{t_us}{suffix}",
            "event_type": event_type,
            "case_id": case_id,
            "unit_id": unit,
            "occurred_at": format_time(t_us),
            "source": SOURCE,
        }
        for name, value in fields.items():
            if value is None:
                continue
            record[name] = format_time(value) if name in _TIME_FIELDS else value
        try:
            out.events.append(CaseEvent.from_record(record).to_record())
        except InvalidEvent as exc:
            out.problems.append(Problem("invalid_event", f"{event_type} of {case_id}: {exc}"))

    def _time(self, data: Mapping[str, Any], name: str, out: Translation) -> int | None:
        try:
            return parse_dvcqg_time(data.get(name))
        except ValueError as exc:
            out.problems.append(Problem("bad_date", f"{name}: {exc}"))
            return None

    def _snapshot(self, record: RawRecord, st: dict[str, Any], out: Translation) -> None:
        data = record.data
        case_id = st["case_id"]
        unit = self.unit_of(record.madonvi)
        times = {name: self._time(data, name, out) for name in _SNAPSHOT_TIMES}
        rounds = []
        for item in data.get("DanhSachHoSoBoSung") or ():
            if isinstance(item, dict):
                rounds.append((self._time(item, "NgayBoSung", out), self._time(item, "NgayTiepNhanBoSung", out)))
        dated = [t for name, t in times.items() if name in _SNAPSHOT_CLOCK and t is not None]
        dated += [t for pair in rounds for t in pair if t is not None]
        snap_t = max(dated) if dated else record.arrived_us

        status = _int(data.get("TrangThaiHoSo"))
        previous = st["status"]
        rank = STATUS_RANK.get(status, -1) if status is not None else -1
        stale = snap_t < st.get("last_t", snap_t)
        if status is not None and rank < 0:
            out.problems.append(Problem("bad_record", f"{case_id}: unknown TrangThaiHoSo {data.get('TrangThaiHoSo')!r}"))
            status = None
        if stale:
            # older than a snapshot already applied (a late or replayed one): counted apart;
            # its status drives nothing, its dated facts (supplement rounds) still count
            st["stale"] = st.get("stale", 0) + 1
            status = None
        elif status is not None and rank < st["rank"]:
            # backwards at the same time or later: the source moved back. Counted; its status
            # drives nothing, its dated facts still count
            st["regressions"] += 1
            out.problems.append(Problem("status_regression", f"{case_id}: status {previous} -> {status}"))
            status = None
        else:
            st["last_t"] = snap_t
        due = times["NgayHenTra"]
        if due is not None:
            if st["first_due"] is None:
                st["first_due"] = due
            if not stale:
                st["last_due"] = due
        done = set(st["done"])

        # received
        if status in _RECEIVED_STATUSES and st["received"] is None:
            rec_t = times["NgayTiepNhan"] or times["NgayNopHoSo"] or snap_t
            self._received(record, st, out, unit, rec_t)
        # rejected
        if status == 3 and "rejected" not in done:
            rej_t = times["NgayTuChoi"] or times["NgayTiepNhan"] or times["NgayNopHoSo"] or snap_t
            self._emit(out, "rejected", case_id, unit, rej_t)
            done.add("rejected")
        # supplement rounds: requests, then receipts
        want_req = len(rounds)
        want_rec = sum(1 for _req, rec in rounds if rec is not None)
        if status == 5 and previous != 5:
            want_req = max(want_req, st["sup_rec"] + 1)  # a new round by the status walk
        if previous == 5 and status is not None and status != 5:
            want_rec = max(want_rec, st["sup_req"])  # that round closed
        while st["sup_req"] < want_req:
            i = st["sup_req"]
            t = (rounds[i][0] if i < len(rounds) else None) or snap_t
            self._emit(out, "supplement_requested", case_id, unit, t, key=str(i + 1))
            st["sup_req"] += 1
        want_rec = min(want_rec, st["sup_req"])
        while st["sup_rec"] < want_rec:
            i = st["sup_rec"]
            t = (rounds[i][1] if i < len(rounds) else None) or snap_t
            self._emit(out, "supplement_received", case_id, unit, t, key=str(i + 1))
            st["sup_rec"] += 1
        # payment
        fees = [item for item in data.get("DanhSachLePhi") or () if isinstance(item, dict)]
        if fees and st["payment"] is None:
            amount = sum(_amount(item.get("Gia")) for item in fees)
            if _flag(data.get("DuocThanhToanTrucTuyen"), 1, 2):
                self._emit(out, "payment", case_id, unit, snap_t, method="online", amount_vnd=amount)
                st["payment"] = "online"
            elif status in (9, 10):
                self._emit(out, "payment", case_id, unit, snap_t, method="offline", amount_vnd=amount)
                st["payment"] = "offline"
        # finish
        end_t = times["NgayKetThucXuLy"] or snap_t
        if status == 7 and "withdrawn" not in done:
            self._emit(out, "withdrawn", case_id, unit, end_t)
            done.add("withdrawn")
        if status == 8 and "stopped" not in done:
            self._emit(out, "stopped", case_id, unit, end_t)
            done.add("stopped")
        if status in (9, 10) and "resolved" not in done:
            self._emit(out, "resolved", case_id, unit, end_t)
            done.add("resolved")
        if status == 10 and "result_returned" not in done:
            electronic = any(_flag(item.get("DuongDanTepTinKetQua")) or item.get("DuongDanTepTinKetQua") is True
                             for item in data.get("DanhSachGiayToKetQua") or () if isinstance(item, dict))
            self._emit(out, "result_returned", case_id, unit, times["NgayTra"] or snap_t,
                       electronic_result=electronic)
            done.add("result_returned")
        st["done"] = sorted(done)
        if status is not None:
            st["status"] = status
            st["rank"] = rank

    def _received(self, record: RawRecord, st: dict[str, Any], out: Translation, unit: str, rec_t: int) -> None:
        data = record.data
        code = str(data.get("MaTTHC") or "").strip()[:64] or "unknown"
        proc = self.reg.catalogue.get(code)
        due = st["first_due"]
        if due is None and proc is not None:
            due = self.due_from_catalogue(rec_t, proc.days)
        if due is None:
            out.problems.append(Problem("no_due", f"{st['case_id']}: no NgayHenTra and {code} not in the catalogue; "
                                                  "received waits for a snapshot with NgayHenTra"))
            return
        channel = {2: "online", 3: "postal"}.get(_int(data.get("KenhThucHien")) or 1, "direct")
        fees = data.get("DanhSachLePhi") or []
        docs = [item for item in data.get("TaiLieuNop") or () if isinstance(item, dict)]
        fields: dict[str, Any] = {
            "procedure_code": code,
            "sector": self.sector_of(code, data.get("MaLinhVuc")),
            "channel": channel,
            "due_at": due,
            "has_fee": bool((proc is not None and proc.has_fee) or fees),
            "digitized": _flag(data.get("HoSoCoThanhPhanSoHoa")) or any(_flag(d.get("DuocSoHoa")) for d in docs),
            "reused_data": any(_flag(d.get("DuocTaiSuDung"), 1, 2) or _flag(d.get("DuocLayTuKhoDMQG")) for d in docs),
            "vneid_authenticated": _flag(data.get("TaiKhoanDuocXacThucVoiVNeID")),
        }
        if channel == "online":
            fields["online_mode"] = "full" if proc is not None and proc.full_online else "partial"
        self._emit(out, "received", st["case_id"], unit, rec_t, **fields)
        st["received"] = rec_t

    def _step(self, record: RawRecord, st: dict[str, Any], out: Translation) -> None:
        data = record.data
        case_id = st["case_id"]
        unit = self.unit_of(record.madonvi)
        started = self._time(data, "NgayBatDau", out)
        finished = self._time(data, "ThoiDiemXuLy", out)
        due = self._time(data, "NgayKetThucTheoQuyDinh", out)
        if started is None:
            started = finished
        if started is None:
            out.problems.append(Problem("bad_record", f"{case_id}: a step without NgayBatDau nor ThoiDiemXuLy"))
            return
        name, title, dept = (_text(data.get(k)) for k in ("NguoiXuLy", "ChucDanh", "PhongBanXuLy"))
        step_id = step_id_of(case_id, data.get("NgayBatDau") or data.get("ThoiDiemXuLy"), dept, name)
        seen = st["steps"].get(step_id)
        mark = finished or 0
        if seen != mark:
            status = data.get("TrangThai")
            self._emit(
                out, "step", case_id, unit, finished or started, key=step_id,
                step_id=step_id, handler_name=name, handler_title=title, department=dept, started_at=started,
                step_due_at=due, finished_at=finished,
                status_code=None if status is None else str(status)[:32],
            )
            st["steps"][step_id] = mark
        if _flag(data.get("XinLoi")):
            t = finished or started
            key = f"apology:{t}"
            if key not in st["done"]:
                first, last = st["first_due"], st["last_due"]
                new_due = last if last is not None and last != first else (due or last or t)
                self._emit(out, "apology_issued", case_id, unit, t, new_due_at=new_due)
                st["done"] = sorted(set(st["done"]) | {key})

    def _ratings(self, record: RawRecord, state: dict[str, Any] | None) -> Translation:
        data = record.data
        out = Translation(state)
        month = str(data.get("NgayTongHop") or "").strip()
        m = re.fullmatch(r"(\d{1,2})-(\d{4})", month)
        if m is None or not 1 <= int(m.group(1)) <= 12:
            out.problems.append(Problem("bad_record", f"NgayTongHop must be M-YYYY, got {month[:20]!r}"))
            return out
        pct = data.get("PhanTramDanhGia") if isinstance(data.get("PhanTramDanhGia"), dict) else {}
        out.ratings.append(
            RatingSummary(
                self.unit_of(record.madonvi), record.madonvi, f"{m.group(2)}-{int(m.group(1)):02d}",
                _int(data.get("TongSoNguoiDanhGia")),
                _percent(pct.get("RatHaiLong")), _percent(pct.get("HaiLong")), _percent(pct.get("ChuaHaiLong")),
            )
        )
        return out


_SNAPSHOT_TIMES = ("NgayNopHoSo", "NgayTiepNhan", "NgayHenTra", "NgayTuChoi", "NgayKetThucXuLy", "NgayTra")
_SNAPSHOT_CLOCK = frozenset({"NgayTiepNhan", "NgayTuChoi", "NgayKetThucXuLy", "NgayTra"})  # the snapshot's time
_TIME_FIELDS = frozenset({"due_at", "new_due_at", "started_at", "step_due_at", "finished_at"})


def _copy(state: dict[str, Any]) -> dict[str, Any]:
    new = dict(state)
    new["done"] = list(state.get("done", ()))
    new["steps"] = dict(state.get("steps", {}))
    new["seen"] = list(state.get("seen", ()))
    return new


def _digest(record: RawRecord, status: int | None) -> str:
    """A record's fingerprint: its service and (scrubbed) content, not its arrival, and the
    dossier's status it met (status 4 before and after a supplement round look the same)."""
    text = json.dumps([record.service, record.madonvi, record.data, status], ensure_ascii=False, sort_keys=True,
                      separators=(",", ":"))
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:16]


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text[:256] or None


def _percent(value: Any) -> float | None:
    if value is None:
        return None
    try:
        return float(str(value).strip().rstrip("%").replace(",", "."))
    except ValueError:
        return None


def step_id_of(case_id: str, started: Any, department: str | None, handler: str | None) -> str:
    """The derived ``step_id`` of a step row (see the module doc)."""
    raw = "\x1f".join((case_id, str(started or ""), department or "", handler or ""))
    return "st-" + hashlib.sha1(raw.encode("utf-8")).hexdigest()[:20]
