"""The case (hồ sơ) as the pipeline sees it, and the outcomes it yields.

Implements the case rules of docs/indicators.md exactly. A ``CaseState`` holds
the events of one ``case_id`` compactly, kept sorted by (occurred_at, event_id),
so every rule that says "earliest" is "first in the list" and the result never
depends on arrival order.

Each event is kept as a compact named row (a ``NamedTuple`` in memory, a list in
``to_dict()``): ``t`` (occurred_at, µs), ``event_id``, ``type``, ``unit``, then only
what the rules need of its type:

    ``ReceivedRow``   sector, procedure_code, channel, online_mode, due_us,
                      digitized, reused_data, vneid_authenticated
    ``PaymentRow``    online (bool: method == "online")
    ``ResultRow``     electronic (bool: electronic_result)
    ``RatedRow``      rating (int)
    ``FeedbackRow``   due_us
    ``EventRow``      (all other types) nothing

Everything here is pure: no I/O, no clock; the clock ``now_us`` is passed in.
"""

from __future__ import annotations

from bisect import insort
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple, Union

from pipeline.contract.localtime import DAY_US as _DAY_US, LOCAL_OFFSET_US as _LOCAL_OFFSET_US
from pipeline.core.apology import ApologyRule
from pipeline.core.outcomes import Outcome, make_outcome

if TYPE_CHECKING:  # pragma: no cover - the contract module is only needed for typing
    from pipeline.contract.events import CaseEvent

__all__ = [
    "CaseState",
    "EventRow",
    "ReceivedRow",
    "PaymentRow",
    "ResultRow",
    "RatedRow",
    "FeedbackRow",
    "Row",
    "CaseSummary",
    "OpenCase",
    "case_outcomes_and_open",
    "case_summary",
    "held_since_us",
    "OnTime766",
    "on_time_766_status",
    "LATE_ALWAYS",
    "UNKNOWN_SECTOR",
    "STATE_VERSION",
]

UNKNOWN_SECTOR = "unknown"
STATE_VERSION = 1
#: late-after time of an open case that is late at any clock (two supplement requests)
LATE_ALWAYS = -(1 << 62)

_FINISH_TYPES = frozenset(("resolved", "stopped", "withdrawn"))


class EventRow(NamedTuple):
    """An event whose type carries nothing the rules need beyond its time and unit."""

    t: int
    event_id: str
    type: str
    unit: str


class ReceivedRow(NamedTuple):
    t: int
    event_id: str
    type: str
    unit: str
    sector: str | None
    procedure_code: str | None
    channel: str | None
    online_mode: str | None
    due_us: int | None
    digitized: bool
    reused_data: bool
    vneid_authenticated: bool


class PaymentRow(NamedTuple):
    t: int
    event_id: str
    type: str
    unit: str
    online: bool  # method == "online"


class ResultRow(NamedTuple):
    t: int
    event_id: str
    type: str
    unit: str
    electronic: bool  # electronic_result


class RatedRow(NamedTuple):
    t: int
    event_id: str
    type: str
    unit: str
    rating: int | None


class FeedbackRow(NamedTuple):
    t: int
    event_id: str
    type: str
    unit: str
    due_us: int | None


Row = Union[EventRow, ReceivedRow, PaymentRow, ResultRow, RatedRow, FeedbackRow]
#: the row class of each event type (rows sort by (t, event_id) like plain tuples)
ROW_TYPES: dict[str, type] = {
    "received": ReceivedRow,
    "payment": PaymentRow,
    "result_returned": ResultRow,
    "rated": RatedRow,
    "feedback_received": FeedbackRow,
}
_new_row = tuple.__new__


def _row(fields: tuple | list) -> Row:
    """A stored row (list) back into its named row."""
    return _new_row(ROW_TYPES.get(fields[2], EventRow), fields)


def _compact(ev: "CaseEvent") -> Row:
    typ = ev.event_type
    f = ev.fields
    head = (ev.occurred_at_us, ev.event_id, typ, ev.unit_id)
    if typ == "received":
        return _new_row(ReceivedRow, head + (
            f.get("sector"),
            f.get("procedure_code"),
            f.get("channel"),
            f.get("online_mode"),
            f.get("due_at"),
            bool(f.get("digitized", False)),
            bool(f.get("reused_data", False)),
            bool(f.get("vneid_authenticated", False)),
        ))
    if typ == "payment":
        return _new_row(PaymentRow, head + (f.get("method") == "online",))
    if typ == "result_returned":
        return _new_row(ResultRow, head + (bool(f.get("electronic_result", False)),))
    if typ == "rated":
        return _new_row(RatedRow, head + (f.get("rating"),))
    if typ == "feedback_received":
        return _new_row(FeedbackRow, head + (f.get("due_at"),))
    return _new_row(EventRow, head)


class CaseState:
    """The events of one case, compact and sorted by (occurred_at, event_id)."""

    __slots__ = ("case_id", "_events", "_ids")

    def __init__(self, case_id: str, events: list[Row] | None = None) -> None:
        self.case_id = case_id
        self._events: list[Row] = events if events is not None else []
        self._ids: set[str] | None = None  # built lazily

    @classmethod
    def new(cls, case_id: str) -> "CaseState":
        return cls(case_id)

    # -- membership ---------------------------------------------------------
    @property
    def event_ids(self) -> set[str]:
        ids = self._ids
        if ids is None:
            ids = self._ids = {e.event_id for e in self._events}
        return ids

    def __contains__(self, event_id: object) -> bool:
        return event_id in self.event_ids

    def __len__(self) -> int:
        return len(self._events)

    @property
    def events(self) -> tuple[Row, ...]:
        """The named rows, earliest first (read-only view)."""
        return tuple(self._events)

    # -- mutation -----------------------------------------------------------
    def add(self, event: "CaseEvent") -> bool:
        """Add one event; False (and no change) when its event_id is already here."""
        if event.case_id != self.case_id:
            raise ValueError(
                f"event {event.event_id!r} belongs to case {event.case_id!r}, not {self.case_id!r}"
            )
        ids = self.event_ids
        eid = event.event_id
        if eid in ids:
            return False
        row = _compact(event)
        events = self._events
        if not events or events[-1] < row:
            events.append(row)  # the usual case: events arrive roughly in order
        else:
            insort(events, row)
        ids.add(eid)
        return True

    # -- serialisation ------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (str/int/bool/None/list/dict only)."""
        return {"v": STATE_VERSION, "case_id": self.case_id, "events": [list(e) for e in self._events]}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "CaseState":
        v = d.get("v", STATE_VERSION)
        if v != STATE_VERSION:
            raise ValueError(f"unsupported case state version {v!r}")
        events = [_row(r) for r in d["events"]]
        # rows are stored sorted; re-sort only if something else wrote them
        for i in range(1, len(events)):
            if not events[i - 1] < events[i]:
                events.sort()
                break
        return cls(d["case_id"], events)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CaseState):
            return NotImplemented
        return self.case_id == other.case_id and self._events == other._events

    def __repr__(self) -> str:
        return f"CaseState({self.case_id!r}, {len(self._events)} events)"


# ---------------------------------------------------------------------------
# the rules


class _Scan:
    """One pass over the sorted events, collecting what the rules need."""

    __slots__ = (
        "rejected",
        "received",
        "finish_ev",
        "first_rr",
        "sups",
        "first_apology_t",
        "payments",
        "ratings",
        "fb_received",
        "fb_answers",
    )

    def __init__(self, events: list[Row]) -> None:
        rejected = False
        received = finish_ev = first_rr = fb_received = None
        first_apology_t = None
        sups: list[tuple[int, bool]] = []
        payments: list[tuple] = []
        ratings: list[tuple] = []
        fb_answers: list[int] = []
        for e in events:
            typ = e.type
            if typ == "payment":
                payments.append(e)
            elif typ == "received":
                if received is None:
                    received = e
            elif typ == "supplement_requested":
                sups.append((e.t, True))
            elif typ == "supplement_received":
                sups.append((e.t, False))
            elif typ == "result_returned":
                if first_rr is None:
                    first_rr = e
            elif typ in _FINISH_TYPES:
                if finish_ev is None:
                    finish_ev = e
            elif typ == "rated":
                ratings.append(e)
            elif typ == "apology_issued":
                if first_apology_t is None:
                    first_apology_t = e.t
            elif typ == "rejected":
                rejected = True
            elif typ == "feedback_received":
                if fb_received is None:
                    fb_received = e
            elif typ == "feedback_answered":
                fb_answers.append(e.t)
            # transferred and unknown types: recorded, no effect on the rules
        if finish_ev is None:
            finish_ev = first_rr
        self.rejected = rejected
        self.received = received
        self.finish_ev = finish_ev
        self.first_rr = first_rr
        self.sups = sups
        self.first_apology_t = first_apology_t
        self.payments = payments
        self.ratings = ratings
        self.fb_received = fb_received
        self.fb_answers = fb_answers


def _pauses(sups: list[tuple[int, bool]], finish_t: int | None, now_us: int) -> tuple[int, int]:
    """(paused_us, requests) over the supplement events with occurred_at <= finish.

    Unfinished (finish_t None): all events; a pause still open counts up to now_us
    (never negative). Finished: a pause still open is closed at the finish.
    """
    paused = 0
    requests = 0
    open_at: int | None = None
    for t, is_request in sups:
        if finish_t is not None and t > finish_t:
            break
        if is_request:
            requests += 1
            if open_at is None:
                open_at = t
        elif open_at is not None:
            paused += t - open_at
            open_at = None
    if open_at is not None:
        end = finish_t if finish_t is not None else now_us
        if end > open_at:
            paused += end - open_at
    return paused, requests


def _open_pauses(sups: list[tuple[int, bool]]) -> tuple[int, int, int | None]:
    """(closed pause time, requests, start of a pause still open or None) of an
    unfinished case: the same walk as ``_pauses``, without a clock."""
    closed = 0
    requests = 0
    open_at: int | None = None
    for t, is_request in sups:
        if is_request:
            requests += 1
            if open_at is None:
                open_at = t
        elif open_at is not None:
            closed += t - open_at
            open_at = None
    return closed, requests, open_at


def _local_day(us: int) -> int:
    return (us + _LOCAL_OFFSET_US) // _DAY_US


def _feedback_outcomes(s: _Scan, out: list[Outcome]) -> None:
    fr = s.fb_received
    if fr is None or not s.fb_answers:
        return
    unit = fr.unit
    due = fr.due_us
    for t in s.fb_answers:
        out.append(make_outcome("feedback_on_time", unit, "", t, due is not None and t <= due))


def case_outcomes_and_open(
    state: CaseState, now_us: int, hold_retention_us: int, *, apology: ApologyRule
) -> tuple[list[Outcome], "OpenCase | None"]:
    """All outcomes the case yields at clock ``now_us`` (docs/indicators.md), and its
    open-case entry (None when it is not open), from one pass over its events.

    The outcomes depend on ``now_us`` only through held events (attributed once
    ``occurred_at + hold_retention_us < now_us``). Outcome times may lie after
    ``now_us`` (future-dated events); the windows exclude them. Order is deterministic
    and independent of arrival order."""
    s = _Scan(state._events)
    return _outcomes(s, now_us, hold_retention_us, apology), _open_entry(s, apology)


def _outcomes(s: _Scan, now_us: int, hold_retention_us: int, apology: ApologyRule) -> list[Outcome]:
    out: list[Outcome] = []
    if not s.rejected:
        rec = s.received
        if rec is not None:
            unit = rec.unit
            sector = rec.sector
            rt = rec.t
            online = rec.channel == "online"
            out.append(make_outcome("full_online", unit, sector, rt, online and rec.online_mode == "full"))
            out.append(make_outcome("remote", unit, sector, rt, online))
            out.append(make_outcome("digitized", unit, sector, rt, rec.digitized))
            out.append(make_outcome("data_reuse", unit, sector, rt, rec.reused_data))
            if online:
                out.append(make_outcome("vneid_auth", unit, sector, rt, rec.vneid_authenticated))
            fin = s.finish_ev
            due = rec.due_us
            if fin is not None and due is not None:
                ft = fin.t
                if s.sups:
                    paused, requests = _pauses(s.sups, ft, now_us)
                else:
                    paused = requests = 0
                eff_due = due + paused
                on_time = ft <= eff_due and requests <= 1
                out.append(make_outcome("on_time", unit, sector, ft, on_time))
                # on_time_766 counts finished cases exactly as on_time; its open cases
                # are counted at the clock by the live view (the open-case entry)
                out.append(make_outcome("on_time_766", unit, sector, ft, on_time))
                out.append(
                    make_outcome("early", unit, sector, ft, on_time and _local_day(ft) < _local_day(eff_due))
                )
                if not on_time:
                    # v1.2: the apology counts only when dated by the end of the working day
                    # ``lead`` working days before the effective due; open late cases are
                    # counted at the clock by the live view (``OpenCase.apology_hit_from_us``)
                    out.append(make_outcome("apology_coverage", unit, sector, ft, apology.counts(s.first_apology_t, eff_due)))
            rr = s.first_rr
            if rr is not None:
                out.append(make_outcome("e_result", unit, sector, rr.t, rr.electronic))
            for p in s.payments:
                out.append(make_outcome("online_payment", unit, sector, p.t, p.online))
            for r in s.ratings:
                rating = r.rating
                out.append(make_outcome("satisfaction", unit, sector, r.t, rating is not None and rating >= 4))
        else:
            # held: attributed to the event's own unit, sector "unknown", after retention
            limit = now_us - hold_retention_us  # released when t + retention < now, i.e. t < limit
            rr = s.first_rr
            if rr is not None and rr.t < limit:
                out.append(make_outcome("e_result", rr.unit, UNKNOWN_SECTOR, rr.t, rr.electronic))
            for p in s.payments:
                if p.t < limit:
                    out.append(make_outcome("online_payment", p.unit, UNKNOWN_SECTOR, p.t, p.online))
            for r in s.ratings:
                if r.t < limit:
                    rating = r.rating
                    out.append(
                        make_outcome("satisfaction", r.unit, UNKNOWN_SECTOR, r.t, rating is not None and rating >= 4)
                    )
    if s.fb_received is not None:
        _feedback_outcomes(s, out)
    return out


def held_since_us(
    state: CaseState, now_us: int | None = None, hold_retention_us: int | None = None
) -> int | None:
    """Earliest occurred_at among events whose outcomes are still held, else None.

    Held events are the ``payment``, ``rated`` and first ``result_returned`` events of
    a case with no ``received`` (and no ``rejected``). Without ``now_us`` every such
    event counts; with ``now_us`` and ``hold_retention_us`` only those not released
    yet (``occurred_at + retention >= now_us``). The worker should re-evaluate the
    case once its clock is strictly greater than ``held_since + retention``.
    """
    s = _Scan(state._events)
    if s.rejected or s.received is not None:
        return None
    times = [p.t for p in s.payments]
    times.extend(r.t for r in s.ratings)
    if s.first_rr is not None:
        times.append(s.first_rr.t)
    if now_us is not None:
        if hold_retention_us is None:
            raise ValueError("hold_retention_us is required with now_us")
        limit = now_us - hold_retention_us
        times = [t for t in times if t >= limit]
    return min(times) if times else None


# ---------------------------------------------------------------------------
# open cases (for the live open/overdue gauges)


class OpenCase(NamedTuple):  # a named tuple: made and compared in C, once per event
    """What the open-case gauges and ``on_time_766`` need of an open case, clock-free.

    ``overdue_after_us``: the case is overdue at clock T exactly when
    ``overdue_after_us < T`` (None: it cannot become overdue as things stand, i.e.
    it has no due date, or a supplement pause opened before it was overdue is still
    open: the paused time keeps moving its effective due along with T).
    ``requests``: supplement requests so far (two or more: late for ``on_time_766``
    whatever the clock).
    ``apology_hit_from_us``: ``apology_coverage`` counts the case at T (when it is late
    at T, :meth:`late_766_after_us`) as a hit exactly when this is at or before T
    (None: never, as things stand). It already includes "late at T", so it is at least
    ``late_766_after_us() + 1``.
    """

    unit: str
    sector: str
    overdue_after_us: int | None
    has_apology: bool
    requests: int = 0
    apology_hit_from_us: int | None = None

    def late_766_after_us(self) -> int | None:
        """``on_time_766`` counts the case late at T exactly when this is before T
        (None: never, as things stand)."""
        return LATE_ALWAYS if self.requests > 1 else self.overdue_after_us


def _open_entry(s: _Scan, apology: ApologyRule) -> OpenCase | None:
    rec = s.received
    if s.rejected or rec is None or s.finish_ev is not None:
        return None
    due = rec.due_us
    closed, requests, open_at = _open_pauses(s.sups)
    threshold = None
    hit_from = None
    if due is not None:
        # effective due at T = due + closed + max(0, T - open_at): overdue when it is
        # before T, i.e. T > due + closed while that is also before the open pause
        deadline = due + closed
        if open_at is None or deadline < open_at:
            threshold = deadline
        late_after = LATE_ALWAYS if requests > 1 else threshold
        ap = s.first_apology_t
        if late_after is not None and ap is not None:
            if open_at is None:  # the effective due is fixed: the apology counts or not
                hit_from = late_after + 1 if apology.counts(ap, deadline) else None
            else:
                # the effective due moves with T (deadline + T - open_at): the apology
                # counts once that reaches the first due day it is early enough for
                moving = open_at + max(0, apology.first_due_us(ap) - deadline)
                hit_from = max(late_after + 1, moving)
    return _new_row(OpenCase, (rec.unit, rec.sector, threshold, s.first_apology_t is not None, requests, hit_from))


# ---------------------------------------------------------------------------
# summary (for the `cases` table and the open-case gauges)


@dataclass(frozen=True, slots=True)
class CaseSummary:
    case_id: str
    unit: str | None
    sector: str | None
    procedure_code: str | None
    channel: str | None
    status: str  # open | finished | rejected | held | feedback_open | feedback_answered
    received_at_us: int | None
    due_at_us: int | None
    effective_due_us: int | None
    finished_at_us: int | None
    finish_type: str | None  # resolved | stopped | withdrawn | result_returned | None
    on_time: bool | None
    early: bool | None
    supplement_requests: int
    paused_us: int
    has_apology: bool
    overdue: bool
    event_count: int


def case_summary(state: CaseState, now_us: int) -> CaseSummary:
    """The case at clock ``now_us``.

    status: ``rejected`` if any rejected event; else ``finished``/``open`` if it has a
    received; else ``feedback_answered``/``feedback_open`` if it has a
    feedback_received; else ``held``. For feedback the unit is the earliest
    feedback_received's unit, the sector ``""``, received/due/finished are the
    feedback's receipt, due_at and earliest answer, and on_time is whether that
    earliest answer was at or before the due time.
    """
    s = _Scan(state._events)
    rec = s.received
    fin = s.finish_ev
    fin_t = fin.t if fin is not None else None
    paused, requests = _pauses(s.sups, fin_t, now_us)
    if fin_t is not None:
        has_apology = s.first_apology_t is not None and s.first_apology_t <= fin_t
    else:
        has_apology = s.first_apology_t is not None

    unit = sector = proc = channel = None
    received_at = due = eff_due = None
    on_time = early = None
    overdue = False
    finished_at = fin_t
    finish_type = fin.type if fin is not None else None

    if rec is not None:
        unit, sector, proc, channel = rec.unit, rec.sector, rec.procedure_code, rec.channel
        received_at, due = rec.t, rec.due_us
        if due is not None:
            eff_due = due + paused
    if s.rejected:
        status = "rejected"
    elif rec is not None:
        if fin is None:
            status = "open"
            overdue = eff_due is not None and eff_due < now_us
        else:
            status = "finished"
            if eff_due is not None:
                on_time = fin_t <= eff_due and requests <= 1
                early = on_time and _local_day(fin_t) < _local_day(eff_due)
    elif s.fb_received is not None:
        fr = s.fb_received
        unit, sector = fr.unit, ""
        received_at, due = fr.t, fr.due_us
        eff_due = due
        finish_type = None
        if s.fb_answers:
            status = "feedback_answered"
            finished_at = s.fb_answers[0]
            on_time = due is not None and finished_at <= due
        else:
            status = "feedback_open"
            finished_at = None
        paused, requests, has_apology = 0, 0, False
    else:
        status = "held"
    return CaseSummary(
        case_id=state.case_id,
        unit=unit,
        sector=sector,
        procedure_code=proc,
        channel=channel,
        status=status,
        received_at_us=received_at,
        due_at_us=due,
        effective_due_us=eff_due,
        finished_at_us=finished_at,
        finish_type=finish_type,
        on_time=on_time,
        early=early,
        supplement_requests=requests,
        paused_us=paused,
        has_apology=has_apology,
        overdue=overdue,
        event_count=len(state._events),
    )


# ---------------------------------------------------------------------------
# on_time_766 (the national index's rule, docs/indicators.md)



@dataclass(frozen=True, slots=True)
class OnTime766:
    """What ``on_time_766`` needs of one dossier, independent of the clock.

    A *finished* case yields one outcome at ``finish_us`` (hit = ``on_time``), like
    ``on_time``. An *open* case yields one outcome at the clock T itself (so it is in
    every window at T), a hit unless it is late at T: :meth:`late_at`. Its state only
    changes with a new event of the case, so between events ``late_at(T)`` is a
    threshold on T: late exactly when ``T > late_after_us`` (``None``: not late at any
    T, because a pause opened before the due date is still open — the due date moves
    with T; :data:`LATE_ALWAYS`: two or more supplement requests).
    """

    unit: str
    sector: str
    received_at_us: int
    finished: bool
    finish_us: int | None  # finished only
    on_time: bool | None  # finished only
    requests: int  # supplement requests so far (open) / up to the finish (finished)
    due_base_us: int  # due_at + the pauses closed so far (open) / all pauses (finished)
    pause_open_since_us: int | None  # open only: start of a pause still open

    @property
    def late_after_us(self) -> int | None:
        if self.finished:
            raise ValueError("late_after_us is for open cases; a finished case has on_time")
        if self.requests > 1:
            return LATE_ALWAYS
        if self.pause_open_since_us is not None:
            # effective due at T = due_base + (T - open_since): late iff due_base < open_since
            return LATE_ALWAYS if self.due_base_us < self.pause_open_since_us else None
        return self.due_base_us

    def effective_due_at(self, now_us: int) -> int:
        """Open case: the effective due at clock ``now_us`` (an open pause counts up to it)."""
        if self.pause_open_since_us is not None and now_us > self.pause_open_since_us:
            return self.due_base_us + (now_us - self.pause_open_since_us)
        return self.due_base_us

    def late_at(self, now_us: int) -> bool:
        """Open case: late at clock ``now_us`` (past its effective due, or two requests)."""
        if self.finished:
            raise ValueError("late_at is for open cases; a finished case has on_time")
        return self.requests > 1 or self.effective_due_at(now_us) < now_us

    def hit_at(self, now_us: int) -> bool:
        """The outcome's hit: ``on_time`` when finished, else not late at ``now_us``."""
        return bool(self.on_time) if self.finished else not self.late_at(now_us)


def on_time_766_status(state: CaseState) -> OnTime766 | None:
    """The case's ``on_time_766`` status, or None when it yields no such outcome
    (rejected, no received yet, a received without due date, or feedback).

    Considers every event held; callers evaluating at a clock T hold only events with
    ``occurred_at <= T`` (as the batch command does).
    """
    s = _Scan(state._events)
    rec = s.received
    if s.rejected or rec is None or rec.due_us is None:
        return None
    unit, sector, due = rec.unit, rec.sector, rec.due_us
    fin = s.finish_ev
    if fin is not None:
        ft = fin.t
        paused, requests = _pauses(s.sups, ft, ft)
        return OnTime766(unit, sector, rec.t, True, ft, ft <= due + paused and requests <= 1,
                         requests, due + paused, None)
    closed, requests, open_at = _open_pauses(s.sups)
    return OnTime766(unit, sector, rec.t, False, None, None, requests, due + closed, open_at)
