"""The case event contract, version 1, as code.

One Kafka message carries one event: a JSON object, UTF-8, at most
:data:`MAX_MESSAGE_BYTES`, keyed by its ``case_id``. :func:`parse_event` checks every
rule of the contract (``docs/events.md``) by hand -- it runs once per message, so it
uses no JSON Schema at runtime -- and either returns a normalised :class:`CaseEvent`
or raises :class:`InvalidEvent` with one reason code out of :data:`REASONS`.

The checks run in a fixed order and the first failing one decides the reason, so the
same bad message always gets the same reason:

1. value ``None`` or empty -> ``invalid_json``
2. more than ``MAX_MESSAGE_BYTES`` bytes -> ``too_large``
3. not UTF-8 -> ``not_utf8``
4. not JSON (also ``NaN``/``Infinity``, a BOM, nesting too deep) -> ``invalid_json``
5. not a JSON object -> ``not_object``
6. ``schema_version`` absent/null -> ``missing_field``; not the integer 1 -> ``unsupported_version``
7. ``event_type`` absent/null -> ``missing_field``; not one of the 14 types -> ``unknown_event_type``
8. the common fields, then the type's fields, in the order of the contract tables:
   absent/null -> ``missing_field``; wrong type, length, value -> ``invalid_field``;
   a timestamp string that is not RFC 3339 with an offset -> ``invalid_timestamp``
9. ``occurred_at`` more than 24 h after ``now_us`` -> ``future_timestamp``
10. message key not the UTF-8 bytes of ``case_id`` -> ``key_mismatch``

This module imports nothing of the project and only the standard library.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import date
from typing import Any, Callable, Mapping

__all__ = [
    "MAX_MESSAGE_BYTES",
    "EVENT_TYPES",
    "REASONS",
    "InvalidEvent",
    "CaseEvent",
    "parse_event",
    "format_time",
    "parse_time",
]

MAX_MESSAGE_BYTES = 65536

EVENT_TYPES: frozenset[str] = frozenset(
    {
        "received",
        "rejected",
        "transferred",
        "supplement_requested",
        "supplement_received",
        "payment",
        "resolved",
        "result_returned",
        "stopped",
        "withdrawn",
        "apology_issued",
        "rated",
        "feedback_received",
        "feedback_answered",
    }
)

REASONS: tuple[str, ...] = (
    "too_large",
    "not_utf8",
    "invalid_json",
    "not_object",
    "unsupported_version",
    "unknown_event_type",
    "missing_field",
    "invalid_field",
    "invalid_timestamp",
    "future_timestamp",
    "key_mismatch",
)
_REASON_SET = frozenset(REASONS)

_SCHEMA_VERSION = 1
_MAX_AHEAD_US = 24 * 3600 * 1_000_000  # occurred_at may be at most this far ahead of now
_RESERVED_UNITS = frozenset({"all"})
_RESERVED_SECTORS = frozenset({"all", "unknown"})
_MAX_AMOUNT = 2**63 - 1  # fits Int64/UInt64 columns
# Timestamps must lie in ClickHouse DateTime64's range: years 1900-2299 as written, and the
# instant itself (after the offset) within 1900-01-01T00:00:00Z .. 2299-12-31T23:59:59.999999Z.
_MIN_YEAR, _MAX_YEAR = 1900, 2299
_MIN_US = -2_208_988_800_000_000  # 1900-01-01T00:00:00Z
_MAX_US = 10_413_791_999_999_999  # 2299-12-31T23:59:59.999999Z
_SHOW_CHARS = 60  # at most this many characters of the input in a detail


class InvalidEvent(Exception):
    """A message breaks the contract. ``reason`` is one of :data:`REASONS`;
    ``detail`` is a short English sentence naming the field."""

    def __init__(self, reason: str, detail: str) -> None:
        if reason not in _REASON_SET:
            raise ValueError(f"unknown rejection reason {reason!r}")
        super().__init__(reason, detail)
        self.reason = reason
        self.detail = detail

    def __str__(self) -> str:
        return f"{self.reason}: {self.detail}"


# --------------------------------------------------------------------------- time

_EPOCH_ORDINAL = 719163  # date(1970, 1, 1).toordinal()
_DAY_US = 86_400_000_000
_TIME_RE = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt](?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]"
    r"(?:\.([0-9]{1,9}))?(?:[Zz]|([+-])((?:[01][0-9]|2[0-3])):([0-5][0-9]))"
)
_DAYS: dict[str, int] = {}  # "YYYY-MM-DD" -> days since the epoch (a small cache)


def _epoch_days(ymd: str) -> int:
    year = int(ymd[0:4])
    if not _MIN_YEAR <= year <= _MAX_YEAR:
        raise ValueError(f"year must be {_MIN_YEAR}-{_MAX_YEAR}")
    days = date(year, int(ymd[5:7]), int(ymd[8:10])).toordinal() - _EPOCH_ORDINAL  # ValueError: no such date
    if len(_DAYS) >= 4096:
        _DAYS.clear()
    _DAYS[ymd] = days
    return days


def parse_time(text: str) -> int:
    """RFC 3339 date-time with an offset -> epoch microseconds (UTC).

    Accepts ``YYYY-MM-DDTHH:MM:SS[.f{1,9}](Z|z|+HH:MM|-HH:MM)``, ``T`` or ``t``,
    a real calendar date in the years 1900-2299, hours 00-23, no leap second
    (``:60``), offsets up to +-23:59, and the instant itself between
    1900-01-01T00:00:00Z and 2299-12-31T23:59:59.999999Z (ClickHouse DateTime64's
    range). Fractions beyond microseconds are truncated (towards the past).
    Raises :class:`ValueError` for anything else.
    """
    if not isinstance(text, str):
        raise TypeError(f"timestamp must be a string, got {type(text).__name__}")
    m = _TIME_RE.fullmatch(text)
    if m is None:
        raise ValueError(f"not an RFC 3339 date-time with offset: {_show(text)}")
    days = _DAYS.get(text[:10])
    if days is None:
        try:
            days = _epoch_days(text[:10])
        except ValueError as exc:
            raise ValueError(f"{exc}: {_show(text)}") from None
    seconds = days * 86400 + int(text[11:13]) * 3600 + int(text[14:16]) * 60 + int(text[17:19])
    frac, sign, off_h, off_m = m.groups()
    if sign is not None:
        offset = int(off_h) * 3600 + int(off_m) * 60
        seconds = seconds - offset if sign == "+" else seconds + offset
    us = seconds * 1_000_000
    if frac is not None:
        us += int(frac[:6].ljust(6, "0"))
    if not _MIN_US <= us <= _MAX_US:
        raise ValueError(f"instant outside 1900-01-01T00:00:00Z..2299-12-31T23:59:59.999999Z: {_show(text)}")
    return us


def format_time(us: int) -> str:
    """Epoch microseconds -> ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` (UTC)."""
    if isinstance(us, bool) or not isinstance(us, int):
        raise TypeError(f"epoch microseconds must be an int, got {type(us).__name__}")
    days, rest = divmod(us, _DAY_US)
    try:
        d = date.fromordinal(days + _EPOCH_ORDINAL)
    except (ValueError, OverflowError):
        raise ValueError(f"epoch microseconds out of range: {us}") from None
    seconds, micros = divmod(rest, 1_000_000)
    hour, seconds = divmod(seconds, 3600)
    minute, second = divmod(seconds, 60)
    return (
        f"{d.year:04d}-{d.month:02d}-{d.day:02d}"
        f"T{hour:02d}:{minute:02d}:{second:02d}.{micros:06d}Z"
    )


# --------------------------------------------------------------------------- the event


class _Fields(dict):
    """The type fields of an event: a read-only, hashable dict."""

    __slots__ = ()

    def _readonly(self, *args: Any, **kwargs: Any) -> None:
        raise TypeError("CaseEvent.fields is read-only")

    __setitem__ = __delitem__ = _readonly  # type: ignore[assignment]
    clear = pop = popitem = setdefault = update = _readonly  # type: ignore[assignment]
    __ior__ = _readonly  # type: ignore[assignment]

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(frozenset(self.items()))

    def __reduce__(self) -> tuple:
        return (_Fields, (dict(self),))

    def __copy__(self) -> "_Fields":
        return self

    def __deepcopy__(self, memo: dict) -> "_Fields":
        return self


@dataclass(frozen=True, slots=True)
class CaseEvent:
    """One valid event, normalised.

    ``fields`` holds only the type's extra fields: timestamps as epoch microseconds,
    booleans as bool, optional booleans absent -> False, ``amount_vnd`` only when
    given, ``online_mode`` only when the channel is ``online``.
    """

    event_id: str
    event_type: str
    case_id: str
    unit_id: str
    occurred_at_us: int
    source: str | None
    fields: Mapping[str, Any]

    def __post_init__(self) -> None:
        if type(self.fields) is not _Fields:
            object.__setattr__(self, "fields", _Fields(self.fields))

    def to_record(self) -> dict:
        """The canonical JSON-able dict: contract fields only, timestamps as
        ``...Z`` with 6 fractional digits, ``source`` only when not None."""
        record: dict[str, Any] = {
            "schema_version": _SCHEMA_VERSION,
            "event_id": self.event_id,
            "event_type": self.event_type,
            "case_id": self.case_id,
            "unit_id": self.unit_id,
            "occurred_at": format_time(self.occurred_at_us),
        }
        if self.source is not None:
            record["source"] = self.source
        fields = self.fields
        for name, _check in _TYPE_FIELDS.get(self.event_type, ()):
            if name in fields:
                value = fields[name]
                record[name] = format_time(value) if name in _TIME_FIELDS else value
        return record

    @classmethod
    def from_record(cls, record: dict) -> "CaseEvent":
        """Rebuild an event from :meth:`to_record`'s dict (or any contract object).

        Every content rule is checked again (raises :class:`InvalidEvent`); the
        transport rules (size, future time, message key) are not.
        """
        return _build(record)


# --------------------------------------------------------------------------- checks

_ABSENT = object()  # a checker's "not kept"


def _show(value: Any) -> str:
    """A short rendering of (part of) the input for a detail message."""
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        text = value if len(value) <= _SHOW_CHARS else value[:_SHOW_CHARS] + "..."
        return json.dumps(text, ensure_ascii=False)
    text = json.dumps(value) if isinstance(value, (bool, int, float)) or value is None else repr(value)
    return text if len(text) <= _SHOW_CHARS else text[:_SHOW_CHARS] + "..."


def _missing(obj: Mapping[str, Any], name: str) -> InvalidEvent:
    state = "null" if name in obj else "absent"
    return InvalidEvent("missing_field", f"{name} is required but is {state}")


def _text(obj: Mapping[str, Any], name: str, max_len: int, reserved: frozenset[str] = frozenset()) -> str:
    value = obj.get(name)
    if value is None:
        raise _missing(obj, name)
    if not isinstance(value, str):
        raise InvalidEvent("invalid_field", f"{name} must be a string, got {_show(value)}")
    n = len(value)
    if n == 0 or n > max_len:
        raise InvalidEvent("invalid_field", f"{name} must be 1-{max_len} characters long, got {n}")
    if value in reserved:
        raise InvalidEvent("invalid_field", f"{name} must not be the reserved code {_show(value)}")
    if not value.isascii():
        _check_unicode(name, value)
    return value


def _check_unicode(name: str, value: str) -> None:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidEvent(
            "invalid_field", f"{name} contains a lone surrogate (\\u escape) at character {exc.start}"
        ) from None


def _enum(obj: Mapping[str, Any], name: str, allowed: tuple[str, ...]) -> str:
    value = obj.get(name)
    if value is None:
        raise _missing(obj, name)
    if not isinstance(value, str) or value not in allowed:
        raise InvalidEvent("invalid_field", f"{name} must be one of {'|'.join(allowed)}, got {_show(value)}")
    return value


def _time(obj: Mapping[str, Any], name: str) -> int:
    value = obj.get(name)
    if value is None:
        raise _missing(obj, name)
    if not isinstance(value, str):
        raise InvalidEvent("invalid_field", f"{name} must be an RFC 3339 string, got {_show(value)}")
    try:
        return parse_time(value)
    except ValueError:
        raise InvalidEvent(
            "invalid_timestamp",
            f"{name} must be an RFC 3339 date-time with offset in the years {_MIN_YEAR}-{_MAX_YEAR}, "
            f"got {_show(value)}",
        ) from None


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# Type-field checkers: (obj, name) -> normalised value, or _ABSENT when not kept.
_Checker = Callable[[Mapping[str, Any], str], Any]


def _code(obj: Mapping[str, Any], name: str) -> str:
    return _text(obj, name, 64)


def _unit_code(obj: Mapping[str, Any], name: str) -> str:
    return _text(obj, name, 64, _RESERVED_UNITS)


def _sector(obj: Mapping[str, Any], name: str) -> str:
    return _text(obj, name, 64, _RESERVED_SECTORS)


def _channel(obj: Mapping[str, Any], name: str) -> str:
    return _enum(obj, name, ("direct", "online", "postal"))


def _online_mode(obj: Mapping[str, Any], name: str) -> Any:
    if obj.get("channel") != "online":
        return _ABSENT  # only meaningful for online dossiers: ignored, not kept
    return _enum(obj, name, ("full", "partial"))


def _method(obj: Mapping[str, Any], name: str) -> str:
    return _enum(obj, name, ("online", "offline"))


def _opt_bool(obj: Mapping[str, Any], name: str) -> bool:
    value = obj.get(name)
    if value is None:
        return False
    if value is True or value is False:
        return value
    raise InvalidEvent("invalid_field", f"{name} must be true, false or null, got {_show(value)}")


def _amount(obj: Mapping[str, Any], name: str) -> Any:
    value = obj.get(name)
    if value is None:
        return _ABSENT
    if not _is_int(value) or not 0 <= value <= _MAX_AMOUNT:
        raise InvalidEvent("invalid_field", f"{name} must be an integer 0-{_MAX_AMOUNT}, got {_show(value)}")
    return value


def _rating(obj: Mapping[str, Any], name: str) -> int:
    value = obj.get(name)
    if value is None:
        raise _missing(obj, name)
    if not _is_int(value) or not 1 <= value <= 5:
        raise InvalidEvent("invalid_field", f"{name} must be an integer 1-5, got {_show(value)}")
    return value


# Per event type: its extra fields in check (and record) order.
_TYPE_FIELDS: dict[str, tuple[tuple[str, _Checker], ...]] = {
    "received": (
        ("procedure_code", _code),
        ("sector", _sector),
        ("channel", _channel),
        ("online_mode", _online_mode),
        ("due_at", _time),
        ("has_fee", _opt_bool),
        ("digitized", _opt_bool),
        ("reused_data", _opt_bool),
        ("vneid_authenticated", _opt_bool),
    ),
    "rejected": (),
    "transferred": (("to_unit_id", _unit_code),),
    "supplement_requested": (),
    "supplement_received": (),
    "payment": (("method", _method), ("amount_vnd", _amount)),
    "resolved": (),
    "result_returned": (("electronic_result", _opt_bool),),
    "stopped": (),
    "withdrawn": (),
    "apology_issued": (("new_due_at", _time),),
    "rated": (("rating", _rating),),
    "feedback_received": (("due_at", _time),),
    "feedback_answered": (),
}
assert frozenset(_TYPE_FIELDS) == EVENT_TYPES
_TIME_FIELDS = frozenset({"due_at", "new_due_at"})


def _build(obj: Any) -> CaseEvent:
    """Steps 5-8 of the check order: the content rules of a decoded JSON value."""
    if not isinstance(obj, dict):
        raise InvalidEvent("not_object", f"the message must be a JSON object, got {_json_kind(obj)}")

    version = obj.get("schema_version")
    if version is None:
        raise _missing(obj, "schema_version")
    if not (_is_int(version) and version == _SCHEMA_VERSION):
        raise InvalidEvent("unsupported_version", f"schema_version must be the integer 1, got {_show(version)}")

    event_type = obj.get("event_type")
    if event_type is None:
        raise _missing(obj, "event_type")
    spec = _TYPE_FIELDS.get(event_type) if isinstance(event_type, str) else None
    if spec is None:
        raise InvalidEvent("unknown_event_type", f"event_type {_show(event_type)} is not a known event type")

    event_id = _text(obj, "event_id", 128)
    case_id = _text(obj, "case_id", 64)
    unit_id = _text(obj, "unit_id", 64, _RESERVED_UNITS)
    occurred_at_us = _time(obj, "occurred_at")
    source = obj.get("source")
    if source is not None:
        if not isinstance(source, str):
            raise InvalidEvent("invalid_field", f"source must be a string or null, got {_show(source)}")
        if len(source) > 128:
            raise InvalidEvent("invalid_field", f"source must be at most 128 characters long, got {len(source)}")
        if not source.isascii():
            _check_unicode("source", source)

    fields = {}
    for name, check in spec:
        value = check(obj, name)
        if value is not _ABSENT:
            fields[name] = value

    return CaseEvent(event_id, event_type, case_id, unit_id, occurred_at_us, source, _Fields(fields))


def _json_kind(value: Any) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    return "a number"


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


_decode = json.JSONDecoder(parse_constant=_reject_constant).decode


def parse_event(value: bytes | None, *, key: bytes | None, now_us: int) -> CaseEvent:
    """Check one Kafka message against the contract; return the normalised event.

    ``value``/``key`` are the raw message value and key; ``now_us`` is the wall
    clock in epoch microseconds (for the future-timestamp rule). Raises
    :class:`InvalidEvent` with the reason of the first failing check.
    """
    if not value:
        raise InvalidEvent("invalid_json", "the message value is empty" if value is not None else "the message has no value")
    size = len(value)
    if size > MAX_MESSAGE_BYTES:
        raise InvalidEvent("too_large", f"the message is {size} bytes, more than the limit of {MAX_MESSAGE_BYTES}")
    try:
        text = bytes(value).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidEvent("not_utf8", f"the message is not valid UTF-8 (byte offset {exc.start})") from None
    try:
        obj = _decode(text)
    except json.JSONDecodeError as exc:
        raise InvalidEvent("invalid_json", f"the message is not valid JSON: {exc.msg} at character {exc.pos}") from None
    except ValueError as exc:  # NaN/Infinity, integers of more than 4300 digits
        raise InvalidEvent("invalid_json", f"the message is not valid JSON: {str(exc)[:100]}") from None
    except RecursionError:
        raise InvalidEvent("invalid_json", "the message is nested too deeply to decode") from None

    event = _build(obj)

    if event.occurred_at_us - now_us > _MAX_AHEAD_US:
        ahead_h = (event.occurred_at_us - now_us) / 3_600_000_000
        raise InvalidEvent(
            "future_timestamp",
            f"occurred_at is {ahead_h:.1f} h after the current time; at most 24 h ahead is allowed",
        )
    if key is None or bytes(key) != event.case_id.encode("utf-8"):
        raise InvalidEvent(
            "key_mismatch",
            "the message has no key; it must be the case_id" if key is None
            else "the message key is not the UTF-8 bytes of case_id",
        )
    return event
