"""Issue 20, finding 2: a dead letter always fits the dead-letter topic, whatever was rejected.

``contract.rejected`` shapes the letters (an oversized value or key cut to an excerpt, with
the original's size and SHA-256) and the producer's and topic's limits are set from the
same constants (``kafka_clients``). The real broker and worker: test_faults.py
(``test_one_megabyte_message_never_blocks_the_acks``)."""

from __future__ import annotations

import hashlib

import pytest

from pipeline import kafka_clients
from pipeline.config import UserError, load_settings
from pipeline.contract.events import MAX_MESSAGE_BYTES
from pipeline.contract.rejected import (
    DEAD_LETTER_KEY_MAX,
    DEAD_LETTER_MAX_BYTES,
    DLQ_MAX_MESSAGE_BYTES,
    EXCERPT_BYTES,
    dead_letter,
    excerpt,
)


def _size(letter) -> int:
    return len(letter.value) + len(letter.key or b"") + sum(len(k) + len(v) for k, v in letter.headers)


def _letter(key, value, detail="d", topic="tthc.case-events"):
    return dead_letter(key, value, reason="too_large", detail=detail, topic=topic, partition=3, offset=12345)


def test_a_value_within_the_contract_limit_goes_whole():
    value = b"{" + b"x" * (MAX_MESSAGE_BYTES - 1)
    letter = _letter(b"HS-1", value)
    assert letter.value == value and letter.key == b"HS-1"
    headers = dict(letter.headers)
    assert "tthc-truncated" not in headers and "tthc-original-size" not in headers
    assert headers["tthc-source-partition"] == b"3" and headers["tthc-source-offset"] == b"12345"


def test_the_issues_message_becomes_an_excerpt_with_its_size_and_hash():
    value = b'{"note": "' + b"y" * 1_000_096 + b'"}'
    assert len(value) == 1_000_108
    letter = _letter(b"HS-1", value)
    headers = dict(letter.headers)
    assert letter.value == value[:EXCERPT_BYTES]
    assert headers["tthc-truncated"] == b"value"
    assert headers["tthc-original-size"] == b"1000108"
    assert headers["tthc-original-sha256"] == hashlib.sha256(value).hexdigest().encode()
    assert _size(letter) < 10_000


def test_one_byte_over_the_limit_is_cut():
    letter = _letter(None, b"z" * (MAX_MESSAGE_BYTES + 1))
    assert len(letter.value) == EXCERPT_BYTES and letter.key is None
    assert dict(letter.headers)["tthc-truncated"] == b"value"


@pytest.mark.parametrize("width", [2, 3, 4])
def test_an_excerpt_never_splits_a_utf8_character(width):
    char = {2: "é", 3: "ệ", 4: "😀"}[width]
    data = ("a" + char * 5000).encode()  # characters straddle every cut point
    for limit in range(EXCERPT_BYTES - 8, EXCERPT_BYTES + 1):
        cut = excerpt(data, limit)
        assert cut.cut and cut.size == len(data)
        assert limit - width < len(cut.data) <= limit
        cut.data.decode("utf-8")  # valid: raises otherwise


def test_a_non_utf8_value_is_cut_by_bytes():
    data = b"\xff\x80\x80\x80" * 5000
    cut = excerpt(data, 4096)
    assert data.startswith(cut.data) and 4093 <= len(cut.data) <= 4096
    assert cut.sha256 == hashlib.sha256(data).hexdigest()


def test_small_data_is_whole_without_a_hash():
    assert excerpt(b"abc", 3) == excerpt(b"abc", 10)
    assert excerpt(b"abc", 3).sha256 is None and not excerpt(b"abc", 3).cut
    assert excerpt(None, 3).data == b"" and excerpt(None, 3).size == 0


def test_the_worst_letter_stays_under_the_bound_and_the_topic_limit():
    key = "k".encode() * 900_000
    letter = _letter(key, b"v" * 1_500_000, detail="é" * 5000, topic="t" * 249)
    headers = dict(letter.headers)
    assert headers["tthc-truncated"] == b"value,key"
    assert letter.key == key[:DEAD_LETTER_KEY_MAX]
    assert headers["tthc-original-key-size"] == b"900000"
    assert headers["tthc-original-key-sha256"] == hashlib.sha256(key).hexdigest().encode()
    assert len(headers["tthc-detail"]) <= 1000
    assert _size(letter) <= DEAD_LETTER_MAX_BYTES
    # the largest letter that goes whole, with the largest key, fits too
    assert _size(_letter(b"k" * DEAD_LETTER_KEY_MAX, b"v" * MAX_MESSAGE_BYTES, detail="é" * 5000,
                         topic="t" * 249)) <= DEAD_LETTER_MAX_BYTES < DLQ_MAX_MESSAGE_BYTES


def test_the_producer_and_the_topic_limits_are_set_on_purpose():
    settings = load_settings({})
    assert kafka_clients.faust_options(settings)["producer_max_request_size"] == DLQ_MAX_MESSAGE_BYTES
    configs = kafka_clients.dlq_topic_configs(settings)
    assert configs["max.message.bytes"] == str(DLQ_MAX_MESSAGE_BYTES)
    assert configs["min.insync.replicas"] == kafka_clients.topic_configs(settings)["min.insync.replicas"]
    assert "max.message.bytes" not in kafka_clients.topic_configs(settings)  # the input topic keeps the broker's


def test_a_dead_letter_topic_too_small_for_the_letters_is_refused_in_one_line():
    kafka_clients.check_dlq_limit("t.dlq", None)  # the cluster did not say: nothing to check
    kafka_clients.check_dlq_limit("t.dlq", 1_048_588)  # the broker's default
    kafka_clients.check_dlq_limit("t.dlq", DEAD_LETTER_MAX_BYTES)
    with pytest.raises(UserError) as refused:
        kafka_clients.check_dlq_limit("t.dlq", 16)
    text = str(refused.value)
    assert "\n" not in text and "t.dlq" in text and "max.message.bytes" in text


def test_the_docs_quote_the_limits_of_the_code():
    from pipeline.config import PROJECT_ROOT
    from pipeline.contract.rejected import STORED_RAW_MAX

    events = (PROJECT_ROOT / "docs" / "events.md").read_text(encoding="utf-8")
    internals = (PROJECT_ROOT / "docs" / "internals.md").read_text(encoding="utf-8")
    for number in (DEAD_LETTER_MAX_BYTES, EXCERPT_BYTES, DEAD_LETTER_KEY_MAX, STORED_RAW_MAX, MAX_MESSAGE_BYTES):
        assert f"{number:,}" in events, number
    for number in (DEAD_LETTER_MAX_BYTES, EXCERPT_BYTES, DLQ_MAX_MESSAGE_BYTES, STORED_RAW_MAX):
        assert f"{number:,}" in internals, number
