"""docs/events.md names nothing the schema and the reason mapping do not have.

The prose is the third copy of the contract; the validator is the compiled schema plus
the reason mapping (``pipeline.contract.events``). Every field, event type and reason code
that the prose names in its tables, and its check order, must exist there.
"""

from __future__ import annotations

import re
from pathlib import Path

from pipeline.contract import EVENT_TYPES, REASONS
from pipeline.contract.events import FIELD_ORDER, FIELD_REASONS, SCHEMA

DOC = (Path(__file__).resolve().parents[2] / "docs" / "events.md").read_text(encoding="utf-8")


def _section(title: str) -> str:
    start = DOC.index(f"\n{title}\n")
    end = DOC.find("\n## ", start + 1)
    return DOC[start:end if end >= 0 else None]


def _table_first_column(text: str) -> list[str]:
    """The backticked names in the first column of the markdown tables of ``text``."""
    return re.findall(r"^\| `([a-z_0-9]+)` \|", text, flags=re.M)


def _schema_properties() -> set[str]:
    names = set(SCHEMA["properties"])
    for branch in SCHEMA["allOf"]:
        names |= set(branch["then"].get("properties", {}))
    return names


def _branch_properties(event_type: str) -> set[str]:
    for branch in SCHEMA["allOf"]:
        if branch["if"]["properties"]["event_type"]["const"] == event_type:
            return set(branch["then"].get("properties", {}))
    return set()


def test_every_field_in_the_field_tables_is_a_schema_property():
    names = _table_first_column(_section("## Fields of every event")) + _table_first_column(
        DOC[DOC.index("Fields of `received`:"):DOC.index("## Timestamps")]
    )
    assert len(names) >= 15
    missing = set(names) - _schema_properties()
    assert not missing, f"docs/events.md names fields the schema does not have: {missing}"


def test_the_common_field_table_is_the_schema_root():
    names = _table_first_column(_section("## Fields of every event"))
    assert set(names) == set(SCHEMA["properties"])


def test_every_event_type_and_its_extra_fields_are_in_the_schema():
    section = _section("## Event types").split("Fields of `received`:")[0]
    rows = re.findall(r"^\| `([a-z_]+)` \| [^|]+ \| (.+) \|$", section, flags=re.M)[1:]  # [0]: the header
    assert {t for t, _ in rows} == EVENT_TYPES == set(SCHEMA["properties"]["event_type"]["enum"])
    for event_type, extra in rows:
        if event_type == "received":
            continue  # its own table, checked above
        named = set(re.findall(r"`([a-z_]+)`: ", extra))
        assert named == _branch_properties(event_type), event_type


def test_every_reason_code_in_the_docs_is_a_reason_and_back():
    documented = _table_first_column(_section("## Reason codes"))
    assert documented == list(REASONS)


def test_the_reasons_of_the_mapping_are_documented():
    documented = set(_table_first_column(_section("## Reason codes")))
    assert set(FIELD_REASONS.values()) <= documented
    assert set(FIELD_REASONS) <= set(SCHEMA["properties"])


def test_the_documented_check_order_is_the_validators():
    order = _section("## Check order")
    common = re.search(r"the common fields, in the order (.+?); then", order, flags=re.S).group(1)
    received = re.search(r"for `received`:\s+(.+?); for", order, flags=re.S).group(1)
    payment = re.search(r"for `payment`: (.+?)\)", order, flags=re.S).group(1)
    names = lambda text: re.findall(r"`([a-z_]+)`", text)  # noqa: E731
    head = ["schema_version", "event_type"] + names(common)
    assert list(FIELD_ORDER["received"]) == head + names(received)
    assert list(FIELD_ORDER["payment"]) == head + names(payment)
