"""Realistic dossier (hồ sơ) lifecycles as contract events (plain dicts).

Shared by the live simulation (:mod:`pipeline.feed.simulate`) and the deterministic
history scenario (:mod:`pipeline.feed.scenario`). Everything is drawn from one
:class:`random.Random`, so the same seed and the same calls give the same events.

The model
---------
Time is modelled as *working seconds* from the receipt (a working day is 8 hours,
07:30–11:30 and 13:00–17:00 Monday–Friday in Asia/Ho_Chi_Minh, public holidays off:
:mod:`pipeline.calendar_file`); a :class:`Clock` turns them into real instants:

* :class:`WorkingClock` (history scenario): office hours, weekends, the lunch break and
  the public holidays skipped, whole seconds — a dossier due in 5 working days is due 5
  working days later at the same working offset of the day.
* :class:`CompressedClock` (live simulation): one working day lasts
  ``seconds_per_working_day`` real seconds (default 20), so a whole case lives for a
  few minutes. Due dates of cases meant to finish late, or on the due date, are
  compressed the same way (so they really do finish late / on the due date); the due
  date of a case meant to finish *early* is kept at its real calendar distance
  (``working days`` × 24 h) so that its finish falls on an earlier calendar day —
  otherwise ``early`` (a calendar-date comparison) could never be hit within minutes.

Per case the generator draws an outcome class (early / on the due date / late) from
the unit's profile and the sector, then the events: ``received`` (online at the unit's
profile rate, ≈86–94 % at a department, × :data:`LOCAL_ONLINE_FACTOR` (≈79–86 %) at a
commune's or district's desk; the rest ≈90 % direct, ≈10 % postal; due 3–15 working days), maybe a
supplement request (≈15 %, rarely twice, sometimes never answered), fee payments
(≈60 % of cases; ≈75 % online), the finish (``resolved``; a few cases ``withdrawn``
or ``stopped``; ≈3 % have no ``resolved`` so the return is the finish), for a late
case an apology at least one working day before the due at a unit meeting its apology
target (:data:`APOLOGY_LEAD_DAYS`; a weak unit's misses: after the due, only after the
finish, or none), the result
return (mostly electronic), ratings (mostly 4–5); ≈3 % are rejected (some without
any ``received``), ≈0.2 % never finish (stuck, overdue), ≈4 % are transferred (later
processing events then come from the receiving unit). Feedback items (phản ánh, kiến nghị) are generated separately.

Incidents
---------
``Incident(unit, indicator, level)`` sets the unit's probability of a *hit* for that
indicator to ``level``: ``satisfaction`` ratings ≥ 4; ``on_time`` cases on time;
``early`` cases finished before the due date (the others on the due date or late);
``online_payment`` online payments; ``full_online`` fully-online dossiers (the others
direct); ``remote`` online dossiers; ``e_result`` electronic returns;
``digitized``/``data_reuse``/``vneid_auth`` the received's flag; ``apology_coverage``
late cases with an apology at least one working day before the due; ``feedback_on_time``
answers on time. Sector effects (land, construction, investment later and less satisfied:
:data:`SECTOR_LATE_FACTOR`, :data:`SECTOR_SATISFACTION_DROP`) apply to profiles, not to
incidents.
"""

from __future__ import annotations

import json
import random
import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence

from pipeline.calendar_file import load_calendar
from pipeline.config import PROJECT_ROOT, UserError
from pipeline.contract.localtime import LOCAL_TZ, WorkCalendar
from pipeline.feed.calendar import OFFICE_HOURS, WORKDAY_SECONDS
from pipeline.feed.province import Province
from pipeline.store.units import load_units as load_registry_rows

WORKDAY_START = OFFICE_HOURS[0][0]
HOUR = 3600.0

SECTORS: tuple[str, ...] = (
    "dat_dai",
    "xay_dung",
    "dau_tu",
    "ho_tich",
    "tu_phap",
    "giao_thong",
    "lao_dong",
    "y_te",
    "giao_duc",
    "kinh_doanh",
    "chung_thuc",
)

#: Used when ``deploy/units.csv`` is absent or has no currently valid unit.
FALLBACK_UNITS: tuple[str, ...] = (
    "TTPVHCC",
    "SO_NNMT",
    "SO_XD",
    "SO_TC",
    "SO_TP",
    "SO_NV",
    "SO_YT",
    "SO_GDDT",
    "SO_CT",
    "P_KINH_BAC",
    "X_KEP",
    "X_TAY_YEN_TU",
)

# Procedure codes per sector (shape of the national procedure codes, not real ones).
_PROCEDURES = {sector: tuple(f"{i + 1}.{n:06d}" for n in range(4)) for i, sector in enumerate(SECTORS)}
PROCEDURES = _PROCEDURES  # public: the DVCQG form of the lifecycles (pipeline/feed/dvcqg.py) names them

# A unit's hit probabilities (before incidents): per indicator, drawn uniformly from the
# "good" range, or with probability WEAK_SHARE from the "weak" one (a realistic weak spot:
# below the plan's target). Good ranges meet the targets of deploy/targets.toml with a
# margin at a unit's monthly volume; "= 100%" targets are met exactly.
#            indicator: (good_lo, good_hi, weak_lo, weak_hi)
_BASELINE: dict[str, tuple[float, float, float, float]] = {
    "on_time": (0.985, 0.998, 0.88, 0.94),
    "early_given_on_time": (0.74, 0.88, 0.55, 0.6),
    "online_payment": (0.87, 0.95, 0.65, 0.77),
    "remote": (0.86, 0.94, 0.45, 0.58),
    "full_given_online": (0.93, 0.98, 0.6, 0.75),
    "satisfaction": (0.985, 0.998, 0.85, 0.92),
    "e_result": (1.0, 1.0, 0.9, 0.98),
    "digitized": (1.0, 1.0, 0.9, 0.98),
    "data_reuse": (0.87, 0.95, 0.65, 0.76),
    "vneid_auth": (1.0, 1.0, 0.9, 0.98),
    "apology_coverage": (1.0, 1.0, 0.6, 0.9),
    "feedback_on_time": (1.0, 1.0, 0.8, 0.95),
}
WEAK_SHARE = 0.03
#: "realistic" (default: weak spots, sector effects) or "clean" (the demo: see LifecycleGenerator)
BASELINES = ("realistic", "clean")
#: the clean baseline's probabilities (1.0 for the others): every target met even at the minimum
#: volume, where one late dossier of 20 already fails "> 95 %"; a rating below 4 now and then
_CLEAN: dict[str, float] = {"early_given_on_time": 0.88, "satisfaction": 0.998}

#: Sector effects (before incidents): land, construction and investment dossiers are late more
#: often (their late share × the factor, their early share × EARLY_FACTOR) and less satisfied
#: (their satisfaction − the drop: about 94–96 % at a good unit), so the sectors' own 85 % target
#: (deploy/targets.toml) is what they are judged against, and a department that handles mostly
#: land still meets the unit's 95 % (e.g. Sở Nông nghiệp và Môi trường: 60 % land, −2.4 points).
SECTOR_LATE_FACTOR: dict[str, float] = {"dat_dai": 3.0, "xay_dung": 2.5, "dau_tu": 2.0}
SECTOR_EARLY_FACTOR = 0.8
SECTOR_SATISFACTION_DROP: dict[str, float] = {"dat_dai": 0.04, "xay_dung": 0.035, "dau_tu": 0.03}
#: Online filing at the communes' and districts' desks is less common than at the departments
#: (certification and civil status are mostly done in person): the unit's online share × this.
LOCAL_ONLINE_FACTOR = 0.92
#: An apology (phiếu xin lỗi) counts when dated at least one working day before the effective
#: due (Decree 61/2018 art. 19 as the project reads it); a unit that meets its apology target
#: issues it this many working days before the due (drawn uniformly), or at the receipt when
#: the dossier is younger than that.
APOLOGY_LEAD_DAYS: tuple[float, float] = (1.2, 3.0)
_PROFILE_RANGES: dict[str, tuple[float, float]] = {k: (v[0], v[1]) for k, v in _BASELINE.items()}

_AMOUNTS = (10_000, 20_000, 30_000, 50_000, 100_000, 150_000, 200_000, 500_000, 1_000_000)


@dataclass(frozen=True)
class Incident:
    """Drive one unit's indicator down: its hit probability becomes ``level``."""

    unit: str
    indicator: str
    level: float


# --------------------------------------------------------------------------- units


def active_unit_ids(path: str | Path | None = None, today: date | None = None) -> list[str]:
    """Unit ids of the rows of the unit registry valid today (or ``today``), in file order,
    without the province root (it receives no dossier).

    ``path`` defaults to ``deploy/units.csv``, read and checked by
    :func:`pipeline.store.units.load_units`. Falls back to :data:`FALLBACK_UNITS` when the
    file is missing or invalid or has no valid row.
    """
    today = today or date.today()
    try:
        rows = _registry_rows(path)
    except UserError:
        return list(FALLBACK_UNITS)
    units = list(dict.fromkeys(r.unit_id for r in rows if r.kind != "province" and r.valid_on(today)))
    return units or list(FALLBACK_UNITS)


def _registry_rows(path: str | Path | None = None) -> list:
    if path is None:
        path = PROJECT_ROOT / "deploy" / "units.csv"
    return load_registry_rows(path)


def load_province(path: str | Path | None = None) -> Province:
    """The registry (default ``deploy/units.csv``) as a :class:`~pipeline.feed.province.Province`;
    raises :class:`pipeline.config.UserError` when the file is missing or invalid."""
    return Province(_registry_rows(path))


# --------------------------------------------------------------------------- clocks


def format_local_time(t: datetime) -> str:
    """RFC 3339 in +07:00; whole seconds when possible, else milliseconds."""
    local = t.astimezone(LOCAL_TZ)
    return local.isoformat(timespec="seconds" if local.microsecond == 0 else "milliseconds")


class WorkingClock:
    """Office hours (:data:`pipeline.feed.calendar.OFFICE_HOURS`: 07:30–11:30, 13:00–17:00)
    on the working days of a :class:`~pipeline.contract.localtime.WorkCalendar` (weekends and
    public holidays off, make-up Saturdays worked); whole seconds. Without a calendar:
    the 2025 holidays of ``deploy/holidays.csv``."""

    def __init__(self, calendar: WorkCalendar | None = None) -> None:
        self.calendar = calendar if calendar is not None else _default_calendar()
        self._cache: dict[date, tuple[tuple[datetime, datetime], ...]] = {}

    def intervals(self, day: date) -> tuple[tuple[datetime, datetime], ...]:
        """The working intervals of ``day`` (empty on a day off)."""
        got = self._cache.get(day)
        if got is None:
            if self.calendar.is_working_day(day):
                got = tuple(
                    (datetime.combine(day, a, LOCAL_TZ), datetime.combine(day, b, LOCAL_TZ)) for a, b in OFFICE_HOURS
                )
            else:
                got = ()
            self._cache[day] = got
        return got

    def align(self, t: datetime) -> datetime:
        """The first working instant at or after ``t``."""
        local = t.astimezone(LOCAL_TZ)
        day = local.date()
        for _ in range(400):
            for start, end in self.intervals(day):
                if local < end:
                    return max(local, start)
            day += timedelta(days=1)
        raise ValueError(f"no working day within 400 days after {t}")

    def after(self, t: datetime, working_seconds: float) -> datetime:
        """The instant ``working_seconds`` of office time after ``t``."""
        current = self.align(t)
        remaining = timedelta(seconds=round(max(0.0, working_seconds)))
        day = current.date()
        for start, end in self.intervals(day):  # the rest of the current day
            if end <= current:
                continue
            start = max(start, current)
            if remaining <= end - start:
                return start + remaining
            remaining -= end - start
        full = timedelta(seconds=WORKDAY_SECONDS)
        while True:  # whole working days, then the intervals of the last one
            day += timedelta(days=1)
            intervals = self.intervals(day)
            if not intervals:
                continue
            if remaining > full:
                remaining -= full
                continue
            for start, end in intervals:
                if remaining <= end - start:
                    return start + remaining
                remaining -= end - start

    def back(self, t: datetime) -> datetime:
        """The last working instant at or before ``t``."""
        local = t.astimezone(LOCAL_TZ)
        day = local.date()
        for _ in range(400):
            for start, end in reversed(self.intervals(day)):
                if local > start:
                    return min(local, end)
            day -= timedelta(days=1)
        raise ValueError(f"no working day within 400 days before {t}")

    def day_offset(self, t: datetime) -> float:
        """Working seconds already elapsed on ``t``'s working day."""
        local = self.align(t)
        done = 0.0
        for start, end in self.intervals(local.date()):
            if local <= start:
                break
            done += (min(local, end) - start).total_seconds()
        return done

    def due(self, t0: datetime, working_days: int, early: bool) -> datetime:
        return self.after(t0, working_days * WORKDAY_SECONDS)

    def working_days(self, start: date, end: date) -> list[date]:
        """The working days in [start, end)."""
        return self.calendar.working_days(start, end)

    def at_offset(self, day: date, working_seconds: float) -> datetime:
        """The instant ``working_seconds`` into the working day ``day``."""
        return self.after(self.intervals(day)[0][0], working_seconds)


_CALENDAR: list[WorkCalendar] = []


def _default_calendar() -> WorkCalendar:
    if not _CALENDAR:
        try:
            _CALENDAR.append(load_calendar())
        except UserError:  # no holidays file: weekends only
            _CALENDAR.append(WorkCalendar())
    return _CALENDAR[0]


class CompressedClock:
    """Live time: one working day lasts ``seconds_per_working_day`` real seconds."""

    def __init__(self, seconds_per_working_day: float = 20.0) -> None:
        self.seconds_per_working_day = seconds_per_working_day

    def align(self, t: datetime) -> datetime:
        return t

    def after(self, t: datetime, working_seconds: float) -> datetime:
        real = max(0.0, working_seconds) / WORKDAY_SECONDS * self.seconds_per_working_day
        out = t + timedelta(seconds=real)
        return out.replace(microsecond=out.microsecond // 1000 * 1000)

    def back(self, t: datetime) -> datetime:
        return t

    def day_offset(self, t: datetime) -> float:
        return float(WORKDAY_SECONDS)

    def due(self, t0: datetime, working_days: int, early: bool) -> datetime:
        if early:  # a real calendar distance: the finish falls on an earlier date
            return t0 + timedelta(days=working_days)
        return self.after(t0, working_days * WORKDAY_SECONDS)


# --------------------------------------------------------------------------- generator


class LifecycleGenerator:
    """Draws dossier and feedback lifecycles; deterministic given ``rng``.

    ``units``: unit ids to attribute cases to (the incidents' units, else the first one,
    the service centre in the registry, get a triple share). ``new_id``: event id factory (default: a UUID
    drawn from ``rng``).
    """

    def __init__(
        self,
        rng: random.Random,
        units: Sequence[str],
        *,
        clock: WorkingClock | CompressedClock | None = None,
        incidents: Iterable[Incident] = (),
        new_id: Callable[[], str] | None = None,
        province: Province | None = None,
        weak_share: float = WEAK_SHARE,
        baseline: str = "realistic",
    ) -> None:
        if baseline not in BASELINES:
            raise ValueError(f"baseline must be one of {', '.join(BASELINES)}, got {baseline!r}")
        self._restricted = bool(units)  # an explicit unit list: dossiers go only to those
        # "clean" (the demo): no weak spot, every unit at the values of _CLEAN, no sector effect, no lower
        # online share at local desks, no dossier stuck open, so that within minutes only an incident
        # falls below a target, even at the small volumes (20 and up) at which a target starts to count
        clean = baseline == "clean"
        self.sector_effects = not clean
        if clean:
            weak_share = 0.0
        if province is not None and not units:
            units = list(dict.fromkeys(province.unit_ids))
        if not units:
            raise ValueError("at least one unit is needed")
        self.rng = rng
        self.units = list(units)
        self.province = province
        self.clock = clock or WorkingClock()
        self._new_id = new_id or (lambda: str(uuid.UUID(int=self.rng.getrandbits(128), version=4)))
        self.profiles: dict[str, dict[str, float]] = {}
        self.unit_sectors: dict[str, list[float]] = {}
        for unit in self.units:
            profile = {}
            for k, (lo, hi, weak_lo, weak_hi) in _BASELINE.items():
                weak = rng.random() < weak_share
                profile[k] = rng.uniform(weak_lo, weak_hi) if weak else (
                    _CLEAN.get(k, 1.0) if clean else rng.uniform(lo, hi))
            self.profiles[unit] = profile
            weights = [0.2] * len(SECTORS)
            for index in rng.sample(range(len(SECTORS)), 3):
                weights[index] += rng.uniform(1.0, 3.0)
            self.unit_sectors[unit] = weights
        incidents = list(incidents)
        # an explicit list (the live simulation): the units of the incidents (else the first unit, the
        # service centre) get a triple share, so an incident shows within a short demo
        favoured = {i.unit for i in incidents} or ({self.units[0]} if len(self.units) > 1 else set())
        self.unit_weights = [3.0 if u in favoured else rng.uniform(0.6, 1.4) for u in self.units]
        self.overrides: dict[tuple[str, str], float] = {}
        for incident in incidents:
            self.overrides[(incident.unit, incident.indicator)] = float(incident.level)

    # ---- probabilities

    def _profile(self, unit: str) -> dict[str, float]:
        profile = self.profiles.get(unit)
        if profile is None:  # a unit outside the list (e.g. a transfer target): a fresh profile
            profile = {k: (lo + hi) / 2 for k, (lo, hi) in _PROFILE_RANGES.items()}
            self.profiles[unit] = profile
        return profile

    def probability(self, unit: str, indicator: str, sector: str | None = None) -> float:
        """The unit's hit probability for ``indicator`` (incidents applied), in ``sector``
        (the sector effects: :data:`SECTOR_LATE_FACTOR`, :data:`SECTOR_SATISFACTION_DROP`)."""
        override = self.overrides.get((unit, indicator))
        profile = self._profile(unit)
        if indicator == "early":
            on_time = self.probability(unit, "on_time", sector)
            if override is not None:
                return min(override, on_time)
            factor = SECTOR_EARLY_FACTOR if sector in SECTOR_LATE_FACTOR and self.sector_effects else 1.0
            return on_time * profile["early_given_on_time"] * factor
        if override is not None:
            return override
        p = profile[indicator]
        if not self.sector_effects:
            return p
        if indicator == "on_time" and sector in SECTOR_LATE_FACTOR:
            return max(0.0, 1.0 - (1.0 - p) * SECTOR_LATE_FACTOR[sector])
        if indicator == "satisfaction" and sector in SECTOR_SATISFACTION_DROP:
            return max(0.0, p - SECTOR_SATISFACTION_DROP[sector])
        return p

    def _channel_probabilities(self, unit: str) -> tuple[float, float]:
        """(P(online), P(full | online))."""
        profile = self._profile(unit)
        p_online = self.overrides.get((unit, "remote"))
        if p_online is None:
            local = self.sector_effects and self.province is not None and unit in self.province.by_id and \
                self.province.by_id[unit].kind in ("commune", "district")
            p_online = profile["remote"] * (LOCAL_ONLINE_FACTOR if local else 1.0)
        p_full = profile["full_given_online"]
        full_level = self.overrides.get((unit, "full_online"))
        if full_level is not None:  # P(online and full) = level; the dossiers lost go direct
            partial = min(p_online * (1.0 - p_full), 1.0 - full_level)
            p_online = full_level + partial
            p_full = full_level / p_online if p_online > 0 else 0.0
        return p_online, p_full

    def _hit(self, unit: str, indicator: str, sector: str | None = None) -> bool:
        return self.rng.random() < self.probability(unit, indicator, sector)

    # ---- helpers

    def pick_unit(self, t: datetime | None = None) -> str:
        """A unit for a dossier received at ``t``: with a province, one in force on that
        local date, weighted by its volume; else from the fixed list."""
        if self.province is not None and t is not None and not self._restricted:
            return self.province.pick(self.rng, t.astimezone(LOCAL_TZ).date())
        # an explicit list (the live simulation): weighted by ``unit_weights`` (the incidents' units ×3)
        return self.rng.choices(self.units, weights=self.unit_weights)[0]

    def pick_sector(self, unit: str) -> str:
        if self.province is not None:
            sector = self.province.pick_sector(self.rng, unit)
            if sector is not None:
                return sector
        weights = self.unit_sectors.get(unit) or [1.0] * len(SECTORS)
        return self.rng.choices(SECTORS, weights=weights)[0]

    def _transfer_targets(self, unit: str, t: datetime) -> list[str]:
        if self.province is not None:
            day = t.astimezone(LOCAL_TZ).date()
            return [u.unit_id for u in self.province.units_on(day) if u.unit_id != unit]
        return [u for u in self.units if u != unit]

    def _in_force(self, events: list[dict]) -> list[dict]:
        """With a province: an event whose unit is no longer in force at its time names
        the successor in force then (the unit that took over the dossier)."""
        province = self.province
        if province is None:
            return events
        for event in events:
            day = datetime.fromisoformat(event["occurred_at"]).date()  # local (+07:00) date
            for key in ("unit_id", "to_unit_id"):
                if key in event:
                    event[key] = province.in_force(event[key], day)
        return events

    def new_event_id(self) -> str:
        return self._new_id()

    def _event(self, event_type: str, case_id: str, unit: str, t: datetime, source: str | None, **fields) -> dict:
        event = {
            "schema_version": 1,
            "event_id": self.new_event_id(),
            "event_type": event_type,
            "case_id": case_id,
            "unit_id": unit,
            "occurred_at": format_local_time(t),
        }
        if source is not None:
            event["source"] = source
        event.update(fields)
        return event

    # ---- a dossier

    def case(self, case_id: str, received_at: datetime, unit: str | None = None, sector: str | None = None) -> list[dict]:
        """All events of one dossier, in occurred_at order (the first is its receipt
        unless it was rejected at the desk)."""
        return self._in_force(self._case(case_id, received_at, unit, sector))

    def _case(self, case_id: str, received_at: datetime, unit: str | None, sector: str | None) -> list[dict]:
        rng, clock = self.rng, self.clock
        t0 = clock.align(received_at)
        unit = unit or self.pick_unit(t0)
        sector = sector or self.pick_sector(unit)
        days = rng.randint(3, 15)
        due_w = days * WORKDAY_SECONDS

        p_on_time = self.probability(unit, "on_time", sector)
        p_early = self.probability(unit, "early", sector)
        draw = rng.random()
        outcome = "early" if draw < p_early else ("due_day" if draw < p_on_time else "late")
        due = clock.due(t0, days, early=outcome == "early")

        p_online, p_full = self._channel_probabilities(unit)
        if rng.random() < p_online:
            channel = "online"
        else:
            channel = "postal" if rng.random() < 5 / 45 else "direct"
        fields: dict = {
            "procedure_code": rng.choice(_PROCEDURES[sector]) if sector in _PROCEDURES else "9.000001",
            "sector": sector,
            "channel": channel,
        }
        if channel == "online":
            fields["online_mode"] = "full" if rng.random() < p_full else "partial"
        fields["due_at"] = format_local_time(due)
        fields["has_fee"] = rng.random() < 0.6
        fields["digitized"] = self._hit(unit, "digitized")
        fields["reused_data"] = self._hit(unit, "data_reuse")
        if channel == "online":
            fields["vneid_authenticated"] = self._hit(unit, "vneid_auth")
        else:
            fields["vneid_authenticated"] = rng.random() < 0.2
        desk = "dvc-tinh" if channel == "online" else "mot-cua"
        received = self._event("received", case_id, unit, t0, desk, **fields)
        events: list[dict] = [received]

        def at(w: float) -> datetime:  # processing offset -> real time, pauses added
            shift = sum(length for start, length in pauses if w > start)
            return clock.after(t0, w + shift)

        pauses: list[tuple[float, float]] = []  # (processing offset, working length)

        def pay(w: float) -> None:
            pay_at(at(w))

        def pay_at(t: datetime) -> None:
            online = self._hit(unit, "online_payment")
            events.append(
                self._event(
                    "payment", case_id, unit, t, "payment-gateway" if online else "mot-cua",
                    method="online" if online else "offline", amount_vnd=rng.choice(_AMOUNTS),
                )
            )

        kind = rng.random()
        if kind < 0.03:  # rejected (không được tiếp nhận)
            if fields["has_fee"] and channel == "online" and rng.random() < 0.5:
                pay(rng.uniform(60, 900))
            events.append(self._event("rejected", case_id, unit, at(rng.uniform(0.1, 0.5) * WORKDAY_SECONDS), desk))
            if rng.random() < 0.3:
                events.remove(received)  # turned away at the desk: never received
            return _sorted(events)
        ending = "withdrawn" if kind < 0.05 else "stopped" if kind < 0.06 else "stuck" if kind < 0.062 else "resolved"
        if ending == "stuck" and not self.sector_effects:  # the clean baseline: nothing stays open past its due
            ending = "resolved"

        if fields["has_fee"]:
            pay(rng.uniform(120, 4 * HOUR))

        # processing finish offset by outcome class
        if outcome == "early":
            w_finish = rng.uniform(0.15 * due_w, due_w - WORKDAY_SECONDS)
        elif outcome == "due_day":
            w_finish = due_w - rng.uniform(0, clock.day_offset(t0))
        else:
            w_finish = due_w + rng.uniform(0.05, 4.0) * WORKDAY_SECONDS
        w_finish = max(w_finish, 2 * HOUR)

        handler = unit
        targets = self._transfer_targets(unit, t0) if ending == "resolved" else []
        if ending == "resolved" and rng.random() < 0.04 and targets:
            target = rng.choice(targets)
            w_transfer = rng.uniform(0.1, 0.4) * w_finish
            events.append(self._event("transferred", case_id, unit, at(w_transfer), "mot-cua", to_unit_id=target))
            handler = target

        paused = timedelta(0)  # real length of the pauses
        if rng.random() < 0.15:  # supplement requested (Yêu cầu bổ sung)
            w_req = rng.uniform(0.1, 0.6) * w_finish
            length = rng.uniform(0.3, 3.0) * WORKDAY_SECONDS
            t_req = at(w_req)
            events.append(self._event("supplement_requested", case_id, handler, t_req, "mot-cua"))
            if rng.random() < 0.05:  # never handed in
                if rng.random() < 0.5:
                    w_end = w_req + rng.uniform(3, 10) * WORKDAY_SECONDS
                    events.append(self._event("withdrawn", case_id, unit, clock.after(t0, w_end), "mot-cua"))
                return _sorted(events)  # otherwise it stays open, paused
            t_resume = clock.after(t_req, length)
            events.append(self._event("supplement_received", case_id, handler, t_resume, desk))
            pauses.append((w_req, length))
            paused += t_resume - t_req
            # asked a second time: the dossier is late by the national rule, so only among late ones
            if outcome == "late" and rng.random() < 0.3 and w_finish - w_req > HOUR:
                w_req2 = rng.uniform(w_req + 0.25 * (w_finish - w_req), w_req + 0.75 * (w_finish - w_req))
                t_req2 = at(w_req2)
                length2 = rng.uniform(0.3, 2.0) * WORKDAY_SECONDS
                t_resume2 = clock.after(t_req2, length2)
                events.append(self._event("supplement_requested", case_id, handler, t_req2, "mot-cua"))
                events.append(self._event("supplement_received", case_id, handler, t_resume2, desk))
                pauses.append((w_req2, length2))
                paused += t_resume2 - t_req2

        effective_due = due + paused

        def apology_in_time() -> datetime:  # ≥ 1 working day before the effective due (APOLOGY_LEAD_DAYS)
            lead = rng.uniform(*APOLOGY_LEAD_DAYS) * WORKDAY_SECONDS
            return at(max(0.02 * WORKDAY_SECONDS, due_w - lead))

        def apologise(t_apology: datetime, new_due: datetime) -> None:
            events.append(self._event("apology_issued", case_id, handler, t_apology, "mot-cua",
                                      new_due_at=format_local_time(new_due)))

        if ending == "stuck":  # never finished: stays open, overdue; the unit apologises in time if it does so
            if outcome != "early":
                if self._hit(unit, "apology_coverage"):
                    t_apology = apology_in_time()
                    apologise(t_apology, clock.after(effective_due, rng.uniform(2, 5) * WORKDAY_SECONDS))
                elif rng.random() < 0.4:  # only after the due
                    t_apology = clock.after(effective_due, rng.uniform(0.1, 2.0) * WORKDAY_SECONDS)
                    apologise(t_apology, clock.after(t_apology, rng.uniform(2, 5) * WORKDAY_SECONDS))
            return _sorted(events)

        t_finish = at(w_finish)
        if outcome != "late" and t_finish > effective_due:  # the pause stretched over a weekend
            t_finish = clock.back(effective_due)
        elif outcome == "late" and t_finish <= effective_due:
            t_finish = clock.after(effective_due, rng.uniform(0.05, 2.0) * WORKDAY_SECONDS)
        if ending in ("withdrawn", "stopped"):
            events.append(self._event(ending, case_id, handler if ending == "stopped" else unit, t_finish, "mot-cua"))
            return _sorted(events)

        has_resolved = rng.random() >= 0.03
        if has_resolved:
            events.append(self._event("resolved", case_id, handler, t_finish, "mot-cua"))
            return_after = rng.uniform(0.05, 2.0) * WORKDAY_SECONDS
            t_return = clock.after(t_finish, return_after)
            returned = rng.random() < 0.95
        else:  # the return is the finish
            return_after = 0.0
            t_return = t_finish
            returned = True

        if outcome == "late":
            if self._hit(unit, "apology_coverage"):  # in time: ≥ 1 working day before the due
                apologise(apology_in_time(), clock.after(t_finish, rng.uniform(0.5, 3.0) * WORKDAY_SECONDS))
            else:
                miss = rng.random()
                if miss < 0.15 and t_finish > effective_due:  # late: after the due, before the finish
                    t_apology = clock.align(effective_due + (t_finish - effective_due) * rng.uniform(0.1, 0.9))
                    if t_apology >= t_finish:
                        t_apology = clock.back(t_finish - min(timedelta(minutes=10), (t_finish - t0) / 10))
                    apologise(t_apology, clock.after(t_finish, rng.uniform(0.5, 3.0) * WORKDAY_SECONDS))
                elif miss < 0.5 and returned and has_resolved:  # only after the finish
                    t_apology = clock.after(t_finish, rng.uniform(0.1, 0.9) * return_after)
                    apologise(t_apology, clock.after(t_return, 0.5 * WORKDAY_SECONDS))

        if not returned:
            return _sorted(events)
        if fields["has_fee"] and rng.random() < 0.15:  # a charge paid at the return
            pay_at(clock.after(t_finish, 0.9 * return_after))
        electronic = self._hit(unit, "e_result")
        events.append(
            self._event("result_returned", case_id, handler, t_return, "dvc-tinh" if electronic else "mot-cua", electronic_result=electronic)
        )
        if rng.random() < 0.55:
            t_rated = clock.after(t_return, rng.uniform(0, 0.5) * WORKDAY_SECONDS)
            events.append(self._rating(case_id, handler, unit, t_rated, sector))
            if rng.random() < 0.03:
                events.append(self._rating(case_id, handler, unit, clock.after(t_rated, rng.uniform(0.5, 3) * WORKDAY_SECONDS), sector))
        return _sorted(events)

    def _rating(self, case_id: str, handler: str, owner: str, t: datetime, sector: str | None = None) -> dict:
        rng = self.rng
        if self._hit(owner, "satisfaction", sector):
            rating = 5 if rng.random() < 0.65 else 4
        else:
            rating = rng.choices((3, 2, 1), weights=(0.55, 0.3, 0.15))[0]
        return self._event("rated", case_id, handler, t, "danh-gia", rating=rating)

    # ---- a feedback (phản ánh, kiến nghị)

    def feedback(self, feedback_id: str, received_at: datetime, unit: str | None = None) -> list[dict]:
        return self._in_force(self._feedback(feedback_id, received_at, unit))

    def _feedback(self, feedback_id: str, received_at: datetime, unit: str | None) -> list[dict]:
        rng, clock = self.rng, self.clock
        t0 = clock.align(received_at)
        unit = unit or self.pick_unit(t0)
        days = rng.choice((5, 7, 10, 15))
        due_w = days * WORKDAY_SECONDS
        on_time = self._hit(unit, "feedback_on_time")
        due = clock.due(t0, days, early=on_time)
        events = [self._event("feedback_received", feedback_id, unit, t0, "pakn", due_at=format_local_time(due))]
        if rng.random() < 0.06:  # not answered (yet)
            return events
        if on_time:
            w_answer = rng.uniform(0.1, 0.95) * due_w
        else:
            w_answer = due_w + rng.uniform(0.1, 5.0) * WORKDAY_SECONDS
        events.append(self._event("feedback_answered", feedback_id, unit, clock.after(t0, w_answer), "pakn"))
        if rng.random() < 0.02:  # answered again
            events.append(self._event("feedback_answered", feedback_id, unit, clock.after(t0, w_answer + WORKDAY_SECONDS), "pakn"))
        return events


def _sorted(events: list[dict]) -> list[dict]:
    """Stable sort by instant (the generator builds events roughly in order)."""
    return sorted(events, key=lambda e: datetime.fromisoformat(e["occurred_at"]))


def event_bytes(event: Mapping, spaced: bool = False) -> bytes:
    """One JSONL line (no newline): compact JSON, or with spaces, UTF-8."""
    separators = (", ", ": ") if spaced else (",", ":")
    return json.dumps(event, ensure_ascii=False, separators=separators).encode("utf-8")
