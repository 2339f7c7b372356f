"""pipeline.contract.events: every rule of docs/events.md, the check order, normalisation,
time parsing and formatting, and the record round trip.

The shared corpus ``tests/data/contract_corpus.jsonl`` holds one example per line:

``id``            unique name
``rule``          what the example shows
``expect``        ``"accept"`` or the rejection reason
``now``           the wall clock (RFC 3339) passed as ``now_us``
``event``         a JSON object, sent as ``json.dumps(event, ensure_ascii=False)`` in UTF-8; or
``text``          the exact value as text (UTF-8), ``null`` for a message without value; or
``hex``           the exact value bytes
``key``           the message key as text (UTF-8) or ``null``; absent: the event's ``case_id``
``pad_to``        pad the event with an ``x_pad`` field to exactly this many bytes
``schema_blind``  rejected only for a rule JSON Schema cannot express (see test_schema_agreement)
"""

from __future__ import annotations

import ast
import copy
import dataclasses
import json
import pickle
import random
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from pipeline import contract
from pipeline.contract import (
    EVENT_TYPES,
    MAX_MESSAGE_BYTES,
    REASONS,
    CaseEvent,
    InvalidEvent,
    format_time,
    parse_event,
    parse_time,
)

ROOT = Path(__file__).resolve().parents[2]
CORPUS_PATH = ROOT / "tests" / "data" / "contract_corpus.jsonl"
HOUR_US = 3_600_000_000
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def to_us(dt: datetime) -> int:
    return (dt - EPOCH) // timedelta(microseconds=1)


# --------------------------------------------------------------------------- corpus


def load_corpus() -> list[dict]:
    with CORPUS_PATH.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def message_of(example: dict) -> tuple[bytes | None, bytes | None]:
    """The (value, key) of a corpus example, as Kafka would deliver them."""
    if "event" in example:
        event = example["event"]
        value = json.dumps(event, ensure_ascii=False).encode("utf-8")
        if "pad_to" in example:
            empty = json.dumps({**event, "x_pad": ""}, ensure_ascii=False).encode("utf-8")
            value = json.dumps({**event, "x_pad": "a" * (example["pad_to"] - len(empty))}, ensure_ascii=False).encode()
            assert len(value) == example["pad_to"]
    elif "hex" in example:
        value = bytes.fromhex(example["hex"])
    else:
        value = None if example["text"] is None else example["text"].encode("utf-8")
    if "key" in example:
        key = None if example["key"] is None else example["key"].encode("utf-8")
    else:
        case_id = example["event"]["case_id"]
        key = case_id.encode("utf-8") if isinstance(case_id, str) else None
    return value, key


def outcome(example: dict) -> CaseEvent | InvalidEvent:
    value, key = message_of(example)
    try:
        return parse_event(value, key=key, now_us=parse_time(example["now"]))
    except InvalidEvent as exc:
        return exc


CORPUS = load_corpus()


def test_corpus_is_well_formed_and_covers_every_reason_and_type():
    ids = [ex["id"] for ex in CORPUS]
    assert len(ids) == len(set(ids)), "corpus ids must be unique"
    assert len(CORPUS) >= 60
    assert {ex["expect"] for ex in CORPUS} == set(REASONS) | {"accept"}
    accepted_types = {ex["event"]["event_type"] for ex in CORPUS if ex["expect"] == "accept" and "event" in ex}
    assert accepted_types == EVENT_TYPES
    for ex in CORPUS:
        assert {"id", "rule", "expect", "now"} <= ex.keys()
        assert sum(k in ex for k in ("event", "text", "hex")) == 1, ex["id"]


@pytest.mark.parametrize("example", CORPUS, ids=[ex["id"] for ex in CORPUS])
def test_corpus_example(example):
    result = outcome(example)
    if example["expect"] == "accept":
        assert isinstance(result, CaseEvent), f"{example['rule']}: rejected with {result}"
    else:
        assert isinstance(result, InvalidEvent), f"{example['rule']}: accepted"
        assert result.reason == example["expect"], f"{example['rule']}: {result}"
        # the detail is a short sentence; never much of the input
        assert 10 <= len(result.detail) <= 300, result.detail
        assert "\n" not in result.detail


def test_branch_conditions_agree_with_the_schema():
    """A branch's nested ``if`` is evaluated as a comparison (no exception per event);
    it gives the compiled schema's verdict on every kind of value."""
    from pipeline.contract.events import _BRANCHES, _compile, _condition, _passes

    values = [None, "online", "ONLINE", "online ", "direct", "", 1, 1.0, True, ["online"], {"x": "online"}]
    objects = [{}, [], "online", None] + [{"channel": v} for v in values] + [{"channel": v, "x": 1} for v in values]
    conditions = [then["if"] for then in _BRANCHES.values() if "if" in then]
    assert conditions
    other = {"properties": {"channel": {"enum": ["online", "postal"]}}, "required": ["channel"]}  # compiled
    for schema in conditions + [other]:
        fast, compiled = _condition(schema), _compile(schema)
        for obj in objects:
            assert fast(obj) == _passes(compiled, obj), (schema, obj)


def test_checking_an_event_makes_no_reference_cycle():
    """The engine freezes what is alive after each flush and collects cycles rarely
    (pipeline.stream.gcpolicy.FreezePolicy): a cycle per rejected event would keep its
    exception's frames, and through them the whole batch, until then."""
    import gc

    gc.collect()
    gc.disable()
    try:
        results = [outcome(example) for example in CORPUS]
        assert {type(r) for r in results} == {CaseEvent, InvalidEvent}
        del results
        assert gc.collect() == 0
    finally:
        gc.enable()


# --------------------------------------------------------------------------- helpers

NOW = parse_time("2025-03-10T00:00:00Z")
CASE = "000.00.12.H56-250309-0001"


def event(kind: str = "received", /, **changes) -> dict:
    """A valid event of type ``kind``; ``changes`` set fields (``...`` removes one)."""
    e = {
        "schema_version": 1,
        "event_id": "evt-1",
        "event_type": kind,
        "case_id": CASE,
        "unit_id": "SXD",
        "occurred_at": "2025-03-09T09:30:00+07:00",
        "source": "igate",
    }
    e.update(
        {
            "received": {
                "procedure_code": "1.004227",
                "sector": "xay_dung",
                "channel": "direct",
                "due_at": "2025-03-23T17:00:00+07:00",
            },
            "transferred": {"to_unit_id": "UBND-TPNT"},
            "payment": {"method": "online", "amount_vnd": 150000},
            "result_returned": {"electronic_result": True},
            "apology_issued": {"new_due_at": "2025-03-30T17:00:00+07:00"},
            "rated": {"rating": 5},
            "feedback_received": {"due_at": "2025-03-19T17:00:00+07:00"},
            "step": {"step_id": "st-1", "started_at": "2025-03-09T09:30:00+07:00"},
        }.get(kind, {})
    )
    for name, value in changes.items():
        if value is ...:
            e.pop(name, None)
        else:
            e[name] = value
    return e


def parse(obj, *, key: bytes | None | str = "case", now_us: int = NOW) -> CaseEvent:
    value = obj if isinstance(obj, (bytes, bytearray, memoryview)) or obj is None else json.dumps(obj).encode()
    if key == "case":
        case_id = obj.get("case_id") if isinstance(obj, dict) else None
        key = case_id.encode() if isinstance(case_id, str) else CASE.encode()
    return parse_event(value, key=key, now_us=now_us)


def reason(obj, **kw) -> str:
    with pytest.raises(InvalidEvent) as info:
        parse(obj, **kw)
    return info.value.reason


# --------------------------------------------------------------------------- interface


def test_public_names():
    assert MAX_MESSAGE_BYTES == 65536
    assert REASONS == (
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
    assert isinstance(EVENT_TYPES, frozenset) and len(EVENT_TYPES) == 15
    assert set(contract.__all__) == {
        "MAX_MESSAGE_BYTES",
        "EVENT_TYPES",
        "REASONS",
        "InvalidEvent",
        "CaseEvent",
        "parse_event",
        "format_time",
        "parse_time",
    }
    assert [f.name for f in dataclasses.fields(CaseEvent)] == [
        "event_id",
        "event_type",
        "case_id",
        "unit_id",
        "occurred_at_us",
        "source",
        "fields",
    ]


def test_module_imports_only_the_schema_compiler_and_local_time():
    source = (ROOT / "pipeline" / "contract" / "events.py").read_text(encoding="utf-8")
    imported = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            imported |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add(node.module or "")
    stdlib = {"__future__", "json", "re", "dataclasses", "datetime", "pathlib", "typing"}
    assert imported <= stdlib | {"fastjsonschema", "orjson", "pipeline.contract.localtime"}, imported


_DECODER_CASES = [
    b'{"a": 1, "a": 2}', b'{"n": 18446744073709551616}', b'{"n": -9223372036854775809}', b'{"n": NaN}',
    b'{"n": Infinity}', b'{"s": "\\ud800"}', b'{"s": "\\ud83d\\ude00"}', b'\xef\xbb\xbf{}', b'{"s": "\xff"}',
    b'[' * 2000 + b']' * 2000, b'{"f": 1e400}', b'{"f": -0.0, "g": 0.1, "h": 5e-324}', b'{"s": "\\u0000\\n"}',
    b' {} ', b'{} x', b'{"k": [1, 2.5, true, null, "x"]}', b'{"k": {"n": 99999999999999999999}}', b'7', b'"x"',
]


@pytest.mark.parametrize("text", _DECODER_CASES)
def test_fast_decoder_agrees_with_the_checked_one(text):
    """parse_event decodes with orjson and takes the checked decoder when orjson refuses
    or gives a float or a nested value: wherever the fast value is kept, the checked
    decoder gives the same one."""
    import orjson

    from pipeline.contract.events import _CHECKED_TYPES, _decode_checked

    try:
        fast = orjson.loads(text)
    except orjson.JSONDecodeError:
        return  # the checked decoder decides (and gives the reason), as before
    if type(fast) is not dict or any(type(v) in _CHECKED_TYPES for v in fast.values()):
        return  # not kept
    assert repr(fast) == repr(_decode_checked(text))


def test_fast_decoder_is_not_kept_for_a_big_integer():
    """orjson reads 2**64 as a float; the checked decoder keeps the integer (and its reason)."""
    text = b'{"n": 18446744073709551616}'
    assert type(orjson_loads(text)["n"]) is float
    from pipeline.contract.events import _decode_checked
    assert _decode_checked(text)["n"] == 2**64


def orjson_loads(text):
    import orjson
    return orjson.loads(text)


def test_invalid_event_carries_reason_and_detail():
    exc = InvalidEvent("invalid_field", "rating must be an integer 1-5, got 4.5")
    assert exc.reason == "invalid_field"
    assert exc.detail == "rating must be an integer 1-5, got 4.5"
    assert str(exc) == "invalid_field: rating must be an integer 1-5, got 4.5"
    back = pickle.loads(pickle.dumps(exc))
    assert (back.reason, back.detail) == (exc.reason, exc.detail)
    with pytest.raises(ValueError):
        InvalidEvent("no_such_reason", "x")


@pytest.mark.parametrize(
    "obj, field, snippet",
    [
        (event("rated", rating=4.5), "rating", "rating must be an integer 1-5, got 4.5"),
        (event("rated", rating=None), "rating", "rating is required but is null"),
        (event(sector=...), "sector", "sector is required but is absent"),
        (event(sector="all"), "sector", "reserved"),
        (event(event_id="x" * 200), "event_id", "1-128 characters"),
        (event(occurred_at="tomorrow"), "occurred_at", "RFC 3339"),
        (event(channel="fax"), "channel", "direct|online|postal"),
        (event(schema_version=2), "schema_version", "got 2"),
        (event(event_type="closed"), "event_type", '"closed"'),
    ],
)
def test_detail_names_the_field(obj, field, snippet):
    with pytest.raises(InvalidEvent) as info:
        parse(obj)
    assert field in info.value.detail
    assert snippet in info.value.detail


def test_detail_never_repeats_much_of_the_input():
    long = "ž" * 5000
    for obj in (
        event(event_type=long),
        event(occurred_at=long),
        event(channel=long),
        event("rated", rating=[long] * 10),
        event(schema_version=long),
    ):
        with pytest.raises(InvalidEvent) as info:
            parse(obj)
        assert info.value.detail.count("ž") <= 200
        assert len(info.value.detail) <= 300


# --------------------------------------------------------------------------- transport rules and order


def test_no_value_and_empty_value_are_invalid_json():
    assert reason(None, key=CASE.encode()) == "invalid_json"
    assert reason(b"", key=CASE.encode()) == "invalid_json"


def test_size_limit_is_inclusive_and_checked_before_decoding():
    base = json.dumps(event("resolved", x_pad="")).encode()
    pad = MAX_MESSAGE_BYTES - len(base)
    exact = json.dumps(event("resolved", x_pad="a" * pad)).encode()
    assert len(exact) == MAX_MESSAGE_BYTES
    assert parse(exact).event_type == "resolved"
    over = json.dumps(event("resolved", x_pad="a" * (pad + 1))).encode()
    assert reason(over) == "too_large"
    # too large beats every other problem, even bytes that are not UTF-8 at all
    assert reason(b"\xff" * (MAX_MESSAGE_BYTES + 1)) == "too_large"


def test_utf8_checked_before_json():
    assert reason(b"\xff not json") == "not_utf8"
    assert reason(b"{not json") == "invalid_json"


def test_bytearray_and_memoryview_values_are_accepted():
    raw = json.dumps(event("resolved")).encode()
    expected = parse(raw)
    assert parse(bytearray(raw)) == expected
    assert parse(memoryview(raw)) == expected
    assert parse_event(raw, key=bytearray(CASE.encode()), now_us=NOW) == expected


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_literals_are_invalid_json(literal):
    raw = json.dumps(event("payment"))[:-1] + f', "x": {literal}}}'
    assert reason(raw.encode()) == "invalid_json"


@pytest.mark.parametrize("text", ["[]", "[1]", '"x"', "1", "1.5", "true", "false", "null"])
def test_non_objects(text):
    assert reason(text.encode()) == "not_object"


# --------------------------------------------------------------------------- version and type


@pytest.mark.parametrize(
    "version, expected",
    [(..., "missing_field"), (None, "missing_field"), (2, "unsupported_version"), (0, "unsupported_version"),
     ("1", "unsupported_version"), (1.0, "unsupported_version"), (True, "unsupported_version"),
     ([1], "unsupported_version"), ({"v": 1}, "unsupported_version")],
)
def test_schema_version(version, expected):
    assert reason(event("resolved", schema_version=version)) == expected


def test_schema_version_1e0_is_not_1():
    raw = json.dumps(event("resolved")).replace('"schema_version": 1', '"schema_version": 1e0')
    assert reason(raw.encode()) == "unsupported_version"


@pytest.mark.parametrize(
    "event_type, expected",
    [(..., "missing_field"), (None, "missing_field"), ("closed", "unknown_event_type"),
     ("RECEIVED", "unknown_event_type"), (" received", "unknown_event_type"), ("", "unknown_event_type"),
     (1, "unknown_event_type"), (True, "unknown_event_type"), (["rated"], "unknown_event_type")],
)
def test_event_type(event_type, expected):
    assert reason(event("resolved", event_type=event_type)) == expected


@pytest.mark.parametrize("event_type", sorted(EVENT_TYPES))
def test_every_type_is_accepted(event_type):
    e = parse(event(event_type))
    assert e.event_type == event_type


# --------------------------------------------------------------------------- common fields


@pytest.mark.parametrize(
    "name, max_len",
    [("event_id", 128), ("case_id", 64), ("unit_id", 64)],
)
def test_common_string_fields(name, max_len):
    def r(value, **kw):
        return reason(event("resolved", **{name: value}), key=CASE.encode(), **kw)

    assert r(...) == "missing_field"
    assert r(None) == "missing_field"
    assert r("") == "invalid_field"
    assert r(1) == "invalid_field"
    assert r(True) == "invalid_field"
    assert r(["x"]) == "invalid_field"
    assert r("x" * (max_len + 1)) == "invalid_field"
    value = "x" * max_len
    assert getattr(parse(event("resolved", **{name: value})), name) == value
    # lengths are in characters (code points)
    value = "ệ" * max_len
    assert getattr(parse(event("resolved", **{name: value})), name) == value


@pytest.mark.parametrize("name", ["event_id", "case_id", "unit_id", "source"])
def test_lone_surrogates_are_invalid(name):
    raw = json.dumps(event("resolved", **{name: "XX"})).replace('"XX"', '"a\\ud83d"')
    assert reason(raw.encode(), key=CASE.encode()) == "invalid_field"
    # a proper pair, written as escapes, is a normal character
    raw = json.dumps(event("resolved", **{name: "XX"})).replace('"XX"', '"a\\ud83d\\ude00"')
    key = "a😀".encode() if name == "case_id" else CASE.encode()
    assert getattr(parse(raw.encode(), key=key), name) == "a😀"


def test_source():
    assert parse(event("resolved", source=...)).source is None
    assert parse(event("resolved", source=None)).source is None
    assert parse(event("resolved", source="")).source == ""
    assert parse(event("resolved", source="s" * 128)).source == "s" * 128
    assert reason(event("resolved", source="s" * 129)) == "invalid_field"
    assert reason(event("resolved", source=5)) == "invalid_field"
    assert reason(event("resolved", source={"name": "igate"})) == "invalid_field"


def test_occurred_at_types():
    assert reason(event("resolved", occurred_at=...)) == "missing_field"
    assert reason(event("resolved", occurred_at=None)) == "missing_field"
    assert reason(event("resolved", occurred_at=1741487400)) == "invalid_field"
    assert reason(event("resolved", occurred_at="")) == "invalid_timestamp"
    assert reason(event("resolved", occurred_at="2025-03-09")) == "invalid_timestamp"


# --------------------------------------------------------------------------- reserved codes


def test_reserved_unit_code():
    assert reason(event("resolved", unit_id="all")) == "invalid_field"
    assert reason(event("transferred", to_unit_id="all")) == "invalid_field"
    # only the exact code is reserved; "unknown" is reserved only for sectors
    assert parse(event("resolved", unit_id="ALL")).unit_id == "ALL"
    assert parse(event("resolved", unit_id="unknown")).unit_id == "unknown"
    assert parse(event("transferred", to_unit_id="unknown")).fields["to_unit_id"] == "unknown"


@pytest.mark.parametrize("sector", ["all", "unknown"])
def test_reserved_sector_codes(sector):
    assert reason(event(sector=sector)) == "invalid_field"


def test_reserved_codes_are_exact():
    for sector in ("All", "ALL", "Unknown", " all", "all ", "unknown_sector"):
        assert parse(event(sector=sector)).fields["sector"] == sector


# --------------------------------------------------------------------------- type fields


def test_received_normalisation():
    e = parse(event(channel="direct", online_mode="whatever", has_fee=True, digitized=None, extra_field=1))
    assert dict(e.fields) == {
        "procedure_code": "1.004227",
        "sector": "xay_dung",
        "channel": "direct",
        "due_at": to_us(datetime(2025, 3, 23, 10, tzinfo=timezone.utc)),
        "has_fee": True,
        "digitized": False,
        "reused_data": False,
        "vneid_authenticated": False,
    }
    assert "online_mode" not in e.fields and "extra_field" not in e.fields


@pytest.mark.parametrize("mode", ["full", "partial"])
def test_online_mode_required_iff_online(mode):
    assert parse(event(channel="online", online_mode=mode)).fields["online_mode"] == mode
    assert reason(event(channel="online")) == "missing_field"
    assert reason(event(channel="online", online_mode=None)) == "missing_field"
    assert reason(event(channel="online", online_mode="Full")) == "invalid_field"
    assert reason(event(channel="online", online_mode=1)) == "invalid_field"
    for channel in ("direct", "postal"):
        e = parse(event(channel=channel, online_mode=mode))
        assert "online_mode" not in e.fields
        assert "online_mode" not in e.to_record()


@pytest.mark.parametrize(
    "event_type, name, bad",
    [
        ("received", "procedure_code", ["", "p" * 65, 1, True]),
        ("received", "sector", ["", "s" * 65, 2, ["dat_dai"], "all", "unknown"]),
        ("received", "channel", ["", "email", "Direct", 0]),
        ("received", "due_at", [20250323, True]),
        ("transferred", "to_unit_id", ["", "u" * 65, 9, "all"]),
        ("payment", "method", ["", "cash", "ONLINE", True]),
        ("apology_issued", "new_due_at", [0, False]),
        ("rated", "rating", [0, 6, -1, 4.5, 4.0, "5", True, False, [5]]),
        ("feedback_received", "due_at", [1, {}]),
    ],
)
def test_required_type_fields(event_type, name, bad):
    assert reason(event(event_type, **{name: ...})) == "missing_field"
    assert reason(event(event_type, **{name: None})) == "missing_field"
    for value in bad:
        assert reason(event(event_type, **{name: value})) == "invalid_field", value


@pytest.mark.parametrize(
    "event_type, name",
    [("received", "has_fee"), ("received", "digitized"), ("received", "reused_data"),
     ("received", "vneid_authenticated"), ("result_returned", "electronic_result")],
)
def test_optional_booleans(event_type, name):
    assert parse(event(event_type, **{name: ...})).fields[name] is False
    assert parse(event(event_type, **{name: None})).fields[name] is False
    assert parse(event(event_type, **{name: False})).fields[name] is False
    assert parse(event(event_type, **{name: True})).fields[name] is True
    for bad in (0, 1, "true", "false", "", [], {}):
        assert reason(event(event_type, **{name: bad})) == "invalid_field", bad


def test_amount_vnd():
    assert parse(event("payment", amount_vnd=0)).fields["amount_vnd"] == 0
    assert parse(event("payment", amount_vnd=2**63 - 1)).fields["amount_vnd"] == 2**63 - 1
    for absent in (..., None):
        e = parse(event("payment", amount_vnd=absent))
        assert "amount_vnd" not in e.fields and "amount_vnd" not in e.to_record()
    for bad in (-1, 1.5, 100.0, "100", True, False, 2**63, [1]):
        assert reason(event("payment", amount_vnd=bad)) == "invalid_field", bad


@pytest.mark.parametrize("rating", [1, 2, 3, 4, 5])
def test_ratings(rating):
    assert parse(event("rated", rating=rating)).fields["rating"] == rating


def test_type_fields_of_other_types_are_ignored():
    e = parse(event("resolved", rating="bad", due_at="bad", channel=5, method=None))
    assert dict(e.fields) == {}
    assert set(e.to_record()) == {"schema_version", "event_id", "event_type", "case_id", "unit_id", "occurred_at", "source"}


@pytest.mark.parametrize(
    "event_type",
    ["rejected", "supplement_requested", "supplement_received", "resolved", "stopped", "withdrawn", "feedback_answered"],
)
def test_types_without_fields(event_type):
    assert dict(parse(event(event_type)).fields) == {}


# --------------------------------------------------------------------------- check order


@pytest.mark.parametrize(
    "obj, key, expected",
    [
        (event("resolved", schema_version=..., event_type="closed"), "case", "missing_field"),
        (event("resolved", schema_version=2, event_type=...), "case", "unsupported_version"),
        (event("resolved", event_type="closed", case_id=...), "case", "unknown_event_type"),
        (event("resolved", event_id="", case_id=...), "case", "invalid_field"),
        (event("resolved", event_id=..., case_id=""), "case", "missing_field"),
        (event("resolved", unit_id="all", occurred_at=...), "case", "invalid_field"),
        (event("resolved", occurred_at="bad", source=1), "case", "invalid_timestamp"),
        (event("received", source=1, procedure_code=...), "case", "invalid_field"),
        (event("received", occurred_at="bad", sector=...), "case", "invalid_timestamp"),
        (event("received", procedure_code=..., sector="all"), "case", "missing_field"),
        (event("received", channel="fax", due_at=...), "case", "invalid_field"),
        (event("received", due_at="bad", has_fee="yes"), "case", "invalid_timestamp"),
        (event("payment", method="cash", amount_vnd=-1), "case", "invalid_field"),
        (event("rated", occurred_at="2030-01-01T00:00:00Z", rating=...), "case", "missing_field"),
        (event("resolved", occurred_at="2030-01-01T00:00:00Z"), None, "future_timestamp"),
        (event("rated", rating=0), None, "invalid_field"),
    ],
)
def test_first_failing_check_wins(obj, key, expected):
    assert reason(obj, key=key) == expected


# --------------------------------------------------------------------------- future and key


@pytest.mark.parametrize("now_us", [NOW, 0, 1_700_000_000_123_457, -5_000_000])
def test_24_hour_boundary(now_us):
    at = now_us + 24 * HOUR_US
    assert parse(event("resolved", occurred_at=format_time(at)), now_us=now_us).occurred_at_us == at
    assert reason(event("resolved", occurred_at=format_time(at + 1)), now_us=now_us) == "future_timestamp"
    # the past is never rejected
    assert parse(event("resolved", occurred_at=format_time(now_us - 400 * 24 * HOUR_US)), now_us=now_us)


def test_24_hour_boundary_with_offset():
    assert parse(event("resolved", occurred_at="2025-03-11T07:00:00+07:00"))
    assert reason(event("resolved", occurred_at="2025-03-11T07:00:00.000001+07:00")) == "future_timestamp"
    # only occurred_at is compared with the clock
    assert parse(event(due_at="2099-01-01T00:00:00Z"))


def test_message_key():
    obj = event("resolved", case_id="HS-Đà-Lạt-001")
    assert parse(obj, key="HS-Đà-Lạt-001".encode("utf-8")).case_id == "HS-Đà-Lạt-001"
    for key in (None, b"", b"HS-D-Lat-001", "HS-Đà-Lạt-001".encode("utf-16-le"), b"HS-\xc4\x90\xc3\xa0-L\xe1\xba\xa1t-001 "):
        assert reason(obj, key=key) == "key_mismatch", key


# --------------------------------------------------------------------------- time


def test_offset_is_converted_to_utc():
    utc = to_us(datetime(2025, 3, 9, 2, 30, tzinfo=timezone.utc))
    assert parse_time("2025-03-09T09:30:00+07:00") == utc
    assert parse_time("2025-03-09T02:30:00Z") == utc
    assert parse_time("2025-03-09t02:30:00z") == utc
    assert parse_time("2025-03-08T21:00:00-05:30") == utc
    assert parse_time("2025-03-09T02:30:00-00:00") == utc
    # across a date line: 00:30 on 1 March in Vietnam is still February in UTC
    assert format_time(parse_time("2024-03-01T00:30:00+07:00")) == "2024-02-29T17:30:00.000000Z"
    e = parse(event("resolved", occurred_at="2025-03-09T09:30:00.25+07:00"))
    assert e.occurred_at_us == utc + 250_000
    assert e.to_record()["occurred_at"] == "2025-03-09T02:30:00.250000Z"


@pytest.mark.parametrize(
    "fraction, micros",
    [("1", 100_000), ("12", 120_000), ("123456", 123_456), ("1234567", 123_456),
     ("123456789", 123_456), ("999999999", 999_999), ("000000999", 0), ("000001", 1)],
)
def test_fractions_are_truncated_to_microseconds(fraction, micros):
    base = parse_time("2025-03-09T02:30:00Z")
    assert parse_time(f"2025-03-09T02:30:00.{fraction}Z") == base + micros
    assert parse_time(f"2025-03-09T09:30:00.{fraction}+07:00") == base + micros


def test_parse_time_matches_datetime():
    rng = random.Random(20250309)
    for _ in range(3000):
        dt = datetime(rng.randint(1901, 2298), rng.randint(1, 12), rng.randint(1, 28),
                      rng.randint(0, 23), rng.randint(0, 59), rng.randint(0, 59), rng.randint(0, 999_999))
        minutes = rng.randint(-(23 * 60 + 59), 23 * 60 + 59)
        tz = timezone(timedelta(minutes=minutes))
        aware = dt.replace(tzinfo=tz)
        sign = "+" if minutes >= 0 else "-"
        text = f"{dt:%Y-%m-%dT%H:%M:%S}.{dt.microsecond:06d}{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"
        assert parse_time(text) == to_us(aware), text
        assert parse_time(aware.isoformat()) == to_us(aware)


def test_format_time():
    assert format_time(0) == "1970-01-01T00:00:00.000000Z"
    assert format_time(1) == "1970-01-01T00:00:00.000001Z"
    assert format_time(-1) == "1969-12-31T23:59:59.999999Z"
    assert format_time(parse_time("2025-03-09T09:30:00.5+07:00")) == "2025-03-09T02:30:00.500000Z"
    rng = random.Random(7)
    lo, hi = parse_time("1900-01-01T00:00:00Z"), parse_time("2299-12-31T23:59:59.999999Z")
    for _ in range(3000):
        us = rng.randint(lo, hi)
        text = format_time(us)
        assert len(text) == 27 and text.endswith("Z")
        assert parse_time(text) == us
        expected = EPOCH + timedelta(microseconds=us)
        assert text == expected.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    with pytest.raises(TypeError):
        format_time(1.5)
    with pytest.raises(TypeError):
        format_time(True)
    with pytest.raises(ValueError):
        format_time(10**20)


@pytest.mark.parametrize(
    "text",
    ["", "2025-03-09", "2025-03-09T09:30:00", "2025-03-09 09:30:00Z", "2025-03-09T09:30Z",
     "2025-03-09T09:30:00.Z", "2025-03-09T09:30:00.1234567890Z", "2025-03-09T09:30:00+0700",
     "2025-03-09T09:30:00+07", "2025-03-09T09:30:00+24:00", "2025-03-09T09:30:00+07:60",
     "2025-03-09T24:00:00Z", "2025-03-09T09:60:00Z", "2016-12-31T23:59:60Z", "2025-02-29T00:00:00Z",
     "2100-02-29T00:00:00Z", "2025-04-31T00:00:00Z", "2025-13-01T00:00:00Z",
     "2025-00-01T00:00:00Z", "2025-01-00T00:00:00Z", "1899-12-31T23:59:59Z", "2300-01-01T00:00:00Z",
     "1900-01-01T00:00:00+00:01", "1900-01-01T06:59:59.999999+07:00", "2299-12-31T23:59:59-00:01",
     "2299-12-31T17:00:00-07:00", "1900-02-29T00:00:00Z",
     "0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "12025-01-01T00:00:00Z", "2025-03-09T09:30:00Z\n",
     " 2025-03-09T09:30:00Z", "2025-03-09T09:30:00ZZ", "2025-3-9T09:30:00Z", "2025-03-09T9:30:00Z",
     "２０２５-03-09T09:30:00Z", "2025-03-09T09:30:00.١Z", "2025-03-09T09:30:00 UTC", "2025-W10-7T09:30:00Z"],
)
def test_parse_time_rejects(text):
    with pytest.raises(ValueError):
        parse_time(text)
    assert reason(event("resolved", occurred_at=text)) == "invalid_timestamp"


@pytest.mark.parametrize(
    "text, utc",
    [("2024-02-29T00:00:00Z", "2024-02-29T00:00:00.000000Z"),
     ("2000-02-29T00:00:00Z", "2000-02-29T00:00:00.000000Z"),
     ("1904-02-29T12:00:00+07:00", "1904-02-29T05:00:00.000000Z"),
     ("1900-01-01T00:00:00Z", "1900-01-01T00:00:00.000000Z"),
     ("1900-01-01T00:00:00-23:59", "1900-01-01T23:59:00.000000Z"),
     ("1900-01-01T07:00:00+07:00", "1900-01-01T00:00:00.000000Z"),
     ("2299-12-31T23:59:59.999999999Z", "2299-12-31T23:59:59.999999Z"),
     ("2299-12-31T16:59:59.999999-07:00", "2299-12-31T23:59:59.999999Z"),
     ("2299-12-31T23:59:59+23:59", "2299-12-31T00:00:59.000000Z")],
)
def test_parse_time_edges_accepted(text, utc):
    assert format_time(parse_time(text)) == utc


def test_parse_time_type_error():
    with pytest.raises(TypeError):
        parse_time(1741487400)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- the event object


OPTIONAL_BOOLS = {"has_fee", "digitized", "reused_data", "vneid_authenticated", "electronic_result"}
ACCEPTED = [ex for ex in CORPUS if ex["expect"] == "accept"]


@pytest.mark.parametrize("example", ACCEPTED, ids=[ex["id"] for ex in ACCEPTED])
def test_record_round_trip(example):
    e = outcome(example)
    assert isinstance(e, CaseEvent)
    record = e.to_record()
    assert json.loads(json.dumps(record)) == record  # JSON-able
    assert CaseEvent.from_record(record) == e
    assert CaseEvent.from_record(json.loads(json.dumps(record))) == e
    # the canonical record is itself a valid message giving the same event
    assert parse_event(json.dumps(record).encode(), key=e.case_id.encode(), now_us=parse_time(example["now"])) == e
    given = example["event"] if "event" in example else json.loads(example["text"])
    assert set(record) - OPTIONAL_BOOLS <= set(given)  # nothing invented but the defaulted booleans
    assert "x_pad" not in record


def test_record_shape():
    e = parse(event(channel="online", online_mode="full", has_fee=True, note="dropped"))
    assert list(e.to_record().items()) == [
        ("schema_version", 1),
        ("event_id", "evt-1"),
        ("event_type", "received"),
        ("case_id", CASE),
        ("unit_id", "SXD"),
        ("occurred_at", "2025-03-09T02:30:00.000000Z"),
        ("source", "igate"),
        ("procedure_code", "1.004227"),
        ("sector", "xay_dung"),
        ("channel", "online"),
        ("online_mode", "full"),
        ("due_at", "2025-03-23T10:00:00.000000Z"),
        ("has_fee", True),
        ("digitized", False),
        ("reused_data", False),
        ("vneid_authenticated", False),
    ]
    assert "source" not in parse(event("resolved", source=None)).to_record()


def test_from_record_checks_content_rules_but_not_transport():
    record = parse(event("rated")).to_record()
    far = dict(record, occurred_at="2099-01-01T00:00:00Z")
    assert CaseEvent.from_record(far).occurred_at_us == parse_time("2099-01-01T00:00:00Z")
    for bad, expected in (
        (dict(record, rating=7), "invalid_field"),
        ({k: v for k, v in record.items() if k != "event_id"}, "missing_field"),
        (dict(record, schema_version=2), "unsupported_version"),
        ([record], "not_object"),
    ):
        with pytest.raises(InvalidEvent) as info:
            CaseEvent.from_record(bad)
        assert info.value.reason == expected


def test_event_is_immutable_hashable_and_copyable():
    e = parse(event(channel="online", online_mode="partial"))
    with pytest.raises(dataclasses.FrozenInstanceError):
        e.unit_id = "other"  # type: ignore[misc]
    with pytest.raises(TypeError):
        e.fields["sector"] = "dat_dai"  # type: ignore[index]
    with pytest.raises(TypeError):
        del e.fields["sector"]  # type: ignore[attr-defined]
    with pytest.raises(TypeError):
        e.fields.update(sector="x")  # type: ignore[attr-defined]
    assert not hasattr(e, "__dict__")  # slotted
    same = parse(event(channel="online", online_mode="partial"))
    assert e == same and hash(e) == hash(same) and len({e, same}) == 1
    assert pickle.loads(pickle.dumps(e)) == e
    assert copy.deepcopy(e) == e and copy.copy(e) == e
    plain = CaseEvent(e.event_id, e.event_type, e.case_id, e.unit_id, e.occurred_at_us, e.source, dict(e.fields))
    assert plain == e and hash(plain) == hash(e)
    assert e.fields == dict(e.fields)
    assert json.loads(json.dumps(e.fields)) == dict(e.fields)
