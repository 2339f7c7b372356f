"""The case event contract, version 1: the JSON Schema, compiled, plus a few post-checks.

One Kafka message carries one event: a JSON object, UTF-8, at most
:data:`MAX_MESSAGE_BYTES`, keyed by its ``case_id``. The rules of its content live in
one place, ``schemas/case-event.v1.schema.json``; :func:`parse_event` validates the
decoded object with that schema compiled by ``fastjsonschema`` and either returns a
normalised :class:`CaseEvent` or raises :class:`InvalidEvent` with one reason code out
of :data:`REASONS`.

The checks run in a fixed order and the first failing one decides the reason, so the
same bad message always gets the same reason (``docs/events.md``, "Check order"):

1. value ``None`` or empty -> ``invalid_json``
2. more than ``MAX_MESSAGE_BYTES`` bytes -> ``too_large``
3. not UTF-8 -> ``not_utf8``
4. not JSON (also ``NaN``/``Infinity``, a BOM, nesting too deep) -> ``invalid_json``
5. the schema, field by field (:data:`FIELD_ORDER`): the fields whose failure has a reason
   of its own first (``schema_version``, ``event_type``, see :data:`FIELD_REASONS`), then
   the schema's common properties, then the type's properties, each in schema order.
   The root's ``type`` -> ``not_object``; a missing (absent or null) required field ->
   ``missing_field``; the timestamp ``pattern`` -> ``invalid_timestamp``; any other
   schema error -> ``invalid_field``
6. ``occurred_at`` more than 24 h after ``now_us`` -> ``future_timestamp``
7. message key not the UTF-8 bytes of ``case_id`` -> ``key_mismatch``

Post-checks -- the rules JSON Schema cannot say, run right after a field's schema check
(:func:`_post_check`): an integer must be written as one (``1.0`` is not 1: the field's
reason); a string must hold no lone surrogate (``invalid_field``); a timestamp's instant,
after its offset, must lie in ClickHouse ``DateTime64``'s range (``invalid_timestamp``).

A valid message costs one call of the compiled schema plus the post-checks; only an
invalid one is checked field by field, to find the first failing check.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, Callable, Mapping

import fastjsonschema
import orjson

from pipeline.contract.localtime import DAY_US, EPOCH_ORDINAL, HOUR_US, US

__all__ = [
    "message_key",
    "MAX_MESSAGE_BYTES",
    "EVENT_TYPES",
    "REASONS",
    "InvalidEvent",
    "CaseEvent",
    "parse_event",
    "format_time",
    "parse_time",
]

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "schemas" / "case-event.v1.schema.json"
SCHEMA: dict = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))

MAX_MESSAGE_BYTES = 65536
EVENT_TYPES: frozenset[str] = frozenset(SCHEMA["properties"]["event_type"]["enum"])

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

# The mapping of schema errors to reasons (besides not_object, missing_field and the
# timestamp pattern): a field named here gives its own reason for any other failure.
FIELD_REASONS: dict[str, str] = {
    "schema_version": "unsupported_version",
    "event_type": "unknown_event_type",
}

_SCHEMA_VERSION = SCHEMA["properties"]["schema_version"]["const"]
_MAX_AHEAD_US = 24 * HOUR_US  # occurred_at may be at most this far ahead of now
_TIMESTAMP_REF = "#/$defs/timestamp"
_OPTIONAL_TIMESTAMP_REF = "#/$defs/optional_timestamp"  # v1.2: a timestamp, or null (absent)
_OPTIONAL_BOOL_REF = "#/$defs/optional_bool"
# ClickHouse DateTime64's range for the instant (after the offset); the schema's pattern
# bounds only the written year (1900-2299).
_MIN_US = -2_208_988_800 * US  # 1900-01-01T00:00:00Z
_MAX_US = 10_413_792_000 * US - 1  # 2299-12-31T23:59:59.999999Z
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


# --------------------------------------------------------------------------- time

_TIME_RE = re.compile(SCHEMA["$defs"]["timestamp"]["pattern"])
_DAYS: dict[str, int] = {}  # "YYYY-MM-DD" -> days since the epoch (a small cache)


def _epoch_days(ymd: str) -> int:
    days = date(int(ymd[0:4]), int(ymd[5:7]), int(ymd[8:10])).toordinal() - EPOCH_ORDINAL
    if len(_DAYS) >= 4096:
        _DAYS.clear()
    _DAYS[ymd] = days
    return days


def _instant_us(text: str) -> int:
    """Epoch µs of a string that matches the schema's timestamp pattern; raises
    :class:`ValueError` for an instant outside ClickHouse DateTime64's range."""
    days = _DAYS.get(text[:10])
    if days is None:
        days = _epoch_days(text[:10])
    seconds = int(text[11:13]) * 3600 + int(text[14:16]) * 60 + int(text[17:19])
    rest = text[19:]  # [.fraction] then Z, z or +HH:MM / -HH:MM
    if rest[-1] in "Zz":
        fraction = rest[1:-1]
    else:
        fraction = rest[1:-6]
        offset = int(rest[-5:-3]) * 3600 + int(rest[-2:]) * 60
        seconds = seconds - offset if rest[-6] == "+" else seconds + offset
    us = days * DAY_US + seconds * US
    if fraction:
        us += int(fraction[:6].ljust(6, "0"))
    if not _MIN_US <= us <= _MAX_US:
        raise ValueError(f"instant outside 1900-01-01T00:00:00Z..2299-12-31T23:59:59.999999Z: {_show(text)}")
    return us


def parse_time(text: str) -> int:
    """RFC 3339 date-time with an offset -> epoch microseconds (UTC).

    The grammar is the schema's ``$defs.timestamp`` pattern (``YYYY-MM-DDTHH:MM:SS
    [.f{1,9}](Z|z|+HH:MM|-HH:MM)``, a real calendar date with a written year 1900-2299,
    no leap second); the instant itself must lie between 1900-01-01T00:00:00Z and
    2299-12-31T23:59:59.999999Z (ClickHouse DateTime64's range). Fractions beyond
    microseconds are truncated (towards the past). Raises :class:`ValueError` for
    anything else.
    """
    if not isinstance(text, str):
        raise TypeError(f"timestamp must be a string, got {type(text).__name__}")
    if _TIME_RE.match(text) is None:
        raise ValueError(f"not an RFC 3339 date-time with offset in the years 1900-2299: {_show(text)}")
    return _instant_us(text)


def format_time(us: int) -> str:
    """Epoch microseconds -> ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` (UTC)."""
    if isinstance(us, bool) or not isinstance(us, int):
        raise TypeError(f"epoch microseconds must be an int, got {type(us).__name__}")
    try:  # datetime's C formatting: the stored form of every event goes through here
        return (_EPOCH_NAIVE + timedelta(microseconds=us)).isoformat(timespec="microseconds") + "Z"
    except OverflowError:
        raise ValueError(f"epoch microseconds out of range: {us}") from None


_EPOCH_NAIVE = datetime(1970, 1, 1)


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

    def with_unit(self, unit_id: str) -> "CaseEvent":
        """The same event attributed to ``unit_id`` (``dataclasses.replace`` without its
        per-call introspection: the worker does this for every event of an unknown unit)."""
        return CaseEvent(self.event_id, self.event_type, self.case_id, unit_id, self.occurred_at_us, self.source,
                         self.fields)

    def with_sector(self, sector: str) -> "CaseEvent":
        """The same event with ``fields["sector"]`` = ``sector`` (the worker maps a
        ``received``'s sector outside the registry, ``core.sectors``)."""
        return CaseEvent(self.event_id, self.event_type, self.case_id, self.unit_id, self.occurred_at_us, self.source,
                         {**self.fields, "sector": sector})

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
        for f in _TYPE_FIELDS.get(self.event_type, ()):
            if f.name in fields:
                value = fields[f.name]
                record[f.name] = format_time(value) if f.is_time else value
        return record

    @classmethod
    def from_record(cls, record: dict) -> "CaseEvent":
        """Rebuild an event from :meth:`to_record`'s dict (or any contract object).

        Every content rule is checked again (raises :class:`InvalidEvent`); the
        transport rules (size, future time, message key) are not.
        """
        return _build(record)


# --------------------------------------------------------------------------- the schema, field by field

_ANNOTATIONS = frozenset({"title", "description", "$comment"})
_ABSENT = object()  # "missing and not kept"
_SchemaError = fastjsonschema.JsonSchemaValueException


def _compile(schema: dict) -> Callable[[Any], Any]:
    """A fastjsonschema validator of ``schema``, a part of the contract's schema
    (its ``$ref``s resolve against the contract's ``$defs``)."""
    root = {"$schema": SCHEMA["$schema"], "$defs": SCHEMA["$defs"], **schema}
    return fastjsonschema.compile(root, use_default=False, use_formats=False)


def _refs(schema: dict) -> set[str]:
    refs = {schema["$ref"]} if "$ref" in schema else set()
    for sub in schema.get("allOf", ()):
        refs |= _refs(sub)
    return refs


def _rules(schema: dict) -> dict:
    """The constraints of a property schema with its ``$ref`` and ``allOf`` merged in
    (what a detail message says the field must be)."""
    rules: dict = {}
    for key, value in schema.items():
        if key == "$ref":
            rules.update(_rules(SCHEMA["$defs"][value.removeprefix("#/$defs/")]))
        elif key == "allOf":
            for sub in value:
                rules.update(_rules(sub))
        elif key not in _ANNOTATIONS:
            rules[key] = value
    return rules


@dataclass(frozen=True, slots=True)
class _Field:
    """One property of the schema, in check order."""

    name: str
    required: bool
    validate: Callable[[Any], Any]  # its schema, compiled
    rules: dict  # its constraints, merged (for the detail message)
    is_time: bool  # a $defs.timestamp: kept as epoch µs
    is_int: bool  # of type integer: must be written as one
    default: Any  # kept when missing (optional booleans: False), else _ABSENT
    when: Callable[[Any], bool] | None  # the field counts only if the object passes this (_condition)


def _field(name: str, schema: dict, required: bool, when: Callable[[Any], Any] | None = None) -> _Field:
    rules = _rules(schema)
    types = rules.get("type", ())
    types = (types,) if isinstance(types, str) else tuple(types)
    return _Field(
        name=name,
        required=required,
        validate=_compile(schema),
        rules=rules,
        is_time=bool({_TIMESTAMP_REF, _OPTIONAL_TIMESTAMP_REF} & _refs(schema)),
        is_int="integer" in types,
        default=False if _OPTIONAL_BOOL_REF in _refs(schema) else _ABSENT,
        when=when,
    )


def _condition(schema: dict) -> Callable[[Any], bool]:
    """A predicate: does an object pass ``schema`` (a branch's nested ``if``)?

    ``{"properties": {name: {"const": "text"}}, "required": [name]}`` (the only form the
    contract uses: ``channel`` is ``online``) is a comparison; fastjsonschema would
    raise an exception for every object that fails it. Any other form is compiled."""
    props = schema.get("properties", {})
    if set(schema) == {"properties", "required"} and len(props) == 1 and schema["required"] == list(props):
        (name, rule), = props.items()
        if set(rule) == {"const"} and type(rule["const"]) is str:
            const = rule["const"]
            # properties and required constrain objects only: anything else passes
            return lambda obj: not isinstance(obj, dict) or (type(obj.get(name)) is str and obj[name] == const)
    validate = _compile(schema)
    return lambda obj: _passes(validate, obj)


def _branch_fields(then: dict) -> tuple[_Field, ...]:
    """The fields of one event type's ``then``; a property constrained only by a nested
    ``if``/``then`` (``online_mode``: only when the channel is online) counts only when
    the object passes that ``if`` -- otherwise it is ignored, neither checked nor kept."""
    inner = then.get("then", {})
    inner_props = inner.get("properties", {})
    when = _condition(then["if"]) if "if" in then else None
    fields = []
    for name, schema in then.get("properties", {}).items():
        if name in inner_props:
            if set(schema) - _ANNOTATIONS:
                raise RuntimeError(f"schema: {name} is constrained both always and conditionally")
            fields.append(_field(name, inner_props[name], name in inner.get("required", ()), when))
        else:
            fields.append(_field(name, schema, name in then.get("required", ())))
    return tuple(fields)


def _type_branches() -> dict[str, dict]:
    """Each event type's ``then`` of the schema's ``allOf`` (one ``if``/``then`` per type)."""
    branches: dict[str, dict] = {t: {} for t in SCHEMA["properties"]["event_type"]["enum"]}
    for branch in SCHEMA["allOf"]:
        event_type = branch["if"]["properties"]["event_type"]["const"]
        if event_type not in branches or branch["if"].get("required") != ["event_type"] or set(branch) != {"if", "then"}:
            raise RuntimeError(f"schema: unexpected allOf branch {branch['if']}")
        branches[event_type] = branch["then"]
    return branches


_BRANCHES = _type_branches()
# The schema compiled in two steps, for speed and with the same verdict: the root without
# its allOf, then the one branch whose ``if`` holds (every other branch's ``if`` fails on
# the event_type the root accepted, so that branch holds vacuously). fastjsonschema runs
# a failing ``if`` by raising an exception; seven of them per event cost more than the rest.
_validate_root = _compile({k: v for k, v in SCHEMA.items() if k not in ("allOf", "$defs", "$schema")})
_validate_branch = {t: _compile(then) for t, then in _BRANCHES.items()}
_COMMON: tuple[_Field, ...] = tuple(
    _field(name, SCHEMA["properties"][name], name in SCHEMA["required"])
    for name in sorted(SCHEMA["properties"], key=lambda n: n not in FIELD_REASONS)  # stable: schema order
)
_TYPE_FIELDS = {t: _branch_fields(then) for t, then in _BRANCHES.items()}

FIELD_ORDER: dict[str, tuple[str, ...]] = {
    t: tuple(f.name for f in _COMMON + fields) for t, fields in _TYPE_FIELDS.items()
}
"""Per event type, the fields in the order they are checked."""


# --------------------------------------------------------------------------- errors -> reasons


def _expected(rules: dict) -> str:
    """What a field must be, in words, from its schema."""
    types = rules.get("type", ())
    types = (types,) if isinstance(types, str) else tuple(types)
    or_null = " or null" if "null" in types else ""
    if "const" in rules:
        return f"the {types[0] if types else 'value'} {json.dumps(rules['const'])}"
    if "enum" in rules:
        return f"one of {'|'.join(map(str, rules['enum']))}{or_null}"
    if "pattern" in rules:
        return "an RFC 3339 string"
    if "integer" in types:
        return f"an integer {rules.get('minimum', '')}-{rules.get('maximum', '')}{or_null}"
    if "boolean" in types:
        return f"true, false{or_null}" if or_null else "true or false"
    return f"a string{or_null}"


def _missing(obj: Mapping[str, Any], name: str) -> InvalidEvent:
    state = "null" if name in obj else "absent"
    return InvalidEvent("missing_field", f"{name} is required but is {state}")


def _reason_of(f: _Field, value: Any, rule: str) -> InvalidEvent:
    """The reason and detail of ``value`` failing ``rule`` of field ``f``'s schema."""
    name = f.name
    if rule == "pattern" or (rule == "anyOf" and f.is_time and isinstance(value, str)):  # an optional timestamp
        return InvalidEvent(
            "invalid_timestamp",
            f"{name} must be an RFC 3339 date-time with offset in the years 1900-2299, got {_show(value)}",
        )
    reason = FIELD_REASONS.get(name, "invalid_field")
    if name == "event_type":
        return InvalidEvent(reason, f"event_type {_show(value)} is not a known event type")
    if rule == "anyOf" and f.is_time:
        return InvalidEvent(reason, f"{name} must be an RFC 3339 string or null, got {_show(value)}")
    if rule == "not":
        return InvalidEvent(reason, f"{name} must not be the reserved code {_show(value)}")
    if rule in ("minLength", "maxLength"):
        lo, hi = f.rules.get("minLength"), f.rules["maxLength"]
        length = f"{lo}-{hi} characters" if lo is not None else f"at most {hi} characters"
        return InvalidEvent(reason, f"{name} must be {length} long, got {len(value)}")
    return InvalidEvent(reason, f"{name} must be {_expected(f.rules)}, got {_show(value)}")


def _passes(validate: Callable[[Any], Any], value: Any) -> bool:
    try:
        validate(value)
    except _SchemaError:
        return False
    return True


def _schema_check(f: _Field, obj: Mapping[str, Any], value: Any) -> None:
    """Field ``f`` against its part of the schema (only run once the whole schema failed)."""
    if value is None:  # missing: absent or null
        if f.required:
            raise _missing(obj, f.name)
        return
    try:
        f.validate(value)
    except _SchemaError as exc:
        raise _reason_of(f, value, exc.rule) from None


def _post_check(f: _Field, value: Any) -> Any:
    """The rules the schema cannot say, then normalisation: the kept value, or _ABSENT.

    A timestamp's instant must lie in DateTime64's range; an integer must be written as
    one (1.0 and 1e0 pass JSON Schema's "integer"); a string must hold no lone surrogate.
    """
    if value is None:
        return f.default
    if f.is_time:
        try:
            return _instant_us(value)
        except ValueError:
            raise _reason_of(f, value, "pattern") from None
    if f.is_int:
        if type(value) is not int:
            raise _reason_of(f, value, "type")
    elif type(value) is str and not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise InvalidEvent(
                "invalid_field", f"{f.name} contains a lone surrogate (\\u escape) at character {exc.start}"
            ) from None
    return value


def _checked(obj: Mapping[str, Any], fields: tuple[_Field, ...], by_field: bool) -> dict[str, Any]:
    """The kept values of ``fields``; ``by_field``: check each against its schema first."""
    kept = {}
    for f in fields:
        if f.when is not None and not f.when(obj):
            continue
        value = obj.get(f.name)
        if by_field:
            _schema_check(f, obj, value)
        if value is None or f.is_time or f.is_int or (type(value) is str and not value.isascii()):
            value = _post_check(f, value)
            if value is _ABSENT:
                continue
        kept[f.name] = value
    return kept


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


def _build(obj: Any) -> CaseEvent:
    """Step 5 of the check order: the content rules of a decoded JSON value."""
    error = None  # the schema's message, not the exception: its traceback would hold this frame
    try:
        _validate_root(obj)
        _validate_branch[obj["event_type"]](obj)
    except _SchemaError as exc:
        if exc.rule == "type" and exc.path == ["data"]:
            raise InvalidEvent("not_object", f"the message must be a JSON object, got {_json_kind(obj)}") from None
        error = exc.message
    by_field = error is not None  # invalid: find the first failing check, field by field
    common = _checked(obj, _COMMON, by_field)
    fields = _checked(obj, _TYPE_FIELDS[common["event_type"]], by_field)
    if error is not None:  # a schema rule outside the field map (never expected)
        raise InvalidEvent("invalid_field", f"the event breaks the schema: {error[:200]}")
    return CaseEvent(
        common["event_id"],
        common["event_type"],
        common["case_id"],
        common["unit_id"],
        common["occurred_at"],
        common.get("source"),
        _Fields(fields),
    )


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


_decode = json.JSONDecoder(parse_constant=_reject_constant).decode


def message_key(line: bytes) -> bytes | None:
    """The Kafka key of a message: its ``case_id`` (UTF-8) if it is a JSON object with a string
    case_id, else None (the contract then rejects the event as it would any bad value)."""
    try:
        value = json.loads(line)
    except (ValueError, RecursionError):  # also UnicodeDecodeError
        return None
    if isinstance(value, dict) and isinstance(value.get("case_id"), str):
        try:
            return value["case_id"].encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate via \u escape
            return None
    return None


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
    # A fast decoder first: orjson accepts a subset of what the checked decoder accepts
    # (strict UTF-8, no lone surrogate, no NaN) and gives the same value, except that it
    # reads an integer beyond 64 bits as a float; so a float (or a nested value, where
    # one could hide) sends the message to the checked decoder, as does any refusal:
    # the same outcome and reason as with the checked decoder alone.
    try:
        obj = orjson.loads(value)
    except orjson.JSONDecodeError:
        obj = _decode_checked(value)
    else:
        if type(obj) is not dict or not _CHECKED_TYPES.isdisjoint(map(type, obj.values())):
            obj = _decode_checked(value)
    return _finish(_build(obj), key, now_us)


_CHECKED_TYPES = frozenset((float, list, dict))


def _decode_checked(value: bytes) -> Any:
    """Steps 2-4 of the check order: UTF-8, then JSON (the reason of the first failure)."""
    try:
        text = bytes(value).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidEvent("not_utf8", f"the message is not valid UTF-8 (byte offset {exc.start})") from None
    try:
        return _decode(text)
    except json.JSONDecodeError as exc:
        raise InvalidEvent("invalid_json", f"the message is not valid JSON: {exc.msg} at character {exc.pos}") from None
    except ValueError as exc:  # NaN/Infinity, integers of more than 4300 digits
        raise InvalidEvent("invalid_json", f"the message is not valid JSON: {str(exc)[:100]}") from None
    except RecursionError:
        raise InvalidEvent("invalid_json", "the message is nested too deeply to decode") from None


def _finish(event: CaseEvent, key: bytes | None, now_us: int) -> CaseEvent:
    """The transport rules, after the content rules."""
    if event.occurred_at_us - now_us > _MAX_AHEAD_US:
        ahead_h = (event.occurred_at_us - now_us) / HOUR_US
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
