"""What is kept of a rejected message: a dead letter that always fits, a bounded stored copy.

Pure (bytes in, bytes out; no Kafka, no ClickHouse). The broker accepts a message up to
its ``message.max.bytes`` (about 1 MiB by default), far above the contract's
``MAX_MESSAGE_BYTES`` (64 KiB): such a message is rejected as ``too_large``, and its
dead letter must still be deliverable, or the flush that waits for it never acks again
(issue 20, finding 2). So:

* :func:`dead_letter` — the record for ``<topic>.dlq``. A value up to
  :data:`DEAD_LETTER_VALUE_MAX` (= the contract's limit) and a key up to
  :data:`DEAD_LETTER_KEY_MAX` go as they came; a larger one is cut to its first
  :data:`EXCERPT_BYTES` (:data:`DEAD_LETTER_KEY_MAX` for a key) bytes, never inside a
  UTF-8 sequence, and headers carry the original's size and SHA-256. A letter is
  therefore never larger than :data:`DEAD_LETTER_MAX_BYTES`, which is far below the
  dead-letter topic's ``max.message.bytes`` and the producer's ``max.request.size``
  (:data:`DLQ_MAX_MESSAGE_BYTES`, set on purpose in ``pipeline.kafka_clients``).
* :func:`excerpt` — the same cut, used by ``store.writer`` for ``invalid_events.raw``
  with :data:`STORED_RAW_MAX` (1 MiB: any message a default broker accepts is kept
  whole; a larger one is cut, with ``raw_size`` and ``raw_sha256``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from pipeline.contract.events import MAX_MESSAGE_BYTES

__all__ = [
    "DEAD_LETTER_KEY_MAX",
    "DEAD_LETTER_MAX_BYTES",
    "DEAD_LETTER_VALUE_MAX",
    "DETAIL_MAX",
    "DLQ_MAX_MESSAGE_BYTES",
    "EXCERPT_BYTES",
    "STORED_RAW_MAX",
    "DeadLetterRecord",
    "Excerpt",
    "dead_letter",
    "excerpt",
]

DEAD_LETTER_VALUE_MAX = MAX_MESSAGE_BYTES  # 65,536: any value the contract could accept goes whole
DEAD_LETTER_KEY_MAX = 1024  # case ids are at most 64 characters; a longer key is cut to this
EXCERPT_BYTES = 4096  # what a dead letter keeps of a larger value
DETAIL_MAX = 1000  # bytes of the rejection's detail in its header
STORED_RAW_MAX = 1 << 20  # 1,048,576: bytes of a rejected value kept in invalid_events.raw
_HEADERS_MAX = 4096  # every header name and value together (reason, detail, coordinates, sizes, hashes)
_RECORD_OVERHEAD = 512  # Kafka's batch and record framing of one record (about 70 bytes), rounded up
#: the largest dead letter :func:`dead_letter` makes (value + key + headers + framing)
DEAD_LETTER_MAX_BYTES = DEAD_LETTER_VALUE_MAX + DEAD_LETTER_KEY_MAX + _HEADERS_MAX + _RECORD_OVERHEAD
#: ``max.message.bytes`` of the dead-letter topic and ``max_request_size`` of the producer
#: that writes it (1 MiB; Kafka's broker default is 1,048,588, Faust's producer default
#: 1,000,000): 15 times the largest letter, so a letter is never refused for its size
DLQ_MAX_MESSAGE_BYTES = 1 << 20

assert DEAD_LETTER_MAX_BYTES < DLQ_MAX_MESSAGE_BYTES


@dataclass(frozen=True, slots=True)
class Excerpt:
    """At most ``limit`` leading bytes of some data, and what was cut."""

    data: bytes  # the kept bytes (all of them when not cut)
    size: int  # the original's size in bytes
    sha256: str | None  # hex SHA-256 of the original, only when cut (the kept bytes identify the rest)

    @property
    def cut(self) -> bool:
        return len(self.data) < self.size


def _utf8_boundary(data: bytes, end: int) -> int:
    """``end`` moved back (at most 3 bytes) so that it does not fall inside a UTF-8
    sequence: a cut of valid UTF-8 stays valid UTF-8."""
    stop = max(0, end - 3)
    while end > stop and end < len(data) and (data[end] & 0xC0) == 0x80:
        end -= 1
    return end


def excerpt(data: bytes | None, limit: int) -> Excerpt:
    """``data`` whole when it has at most ``limit`` bytes, else its first ``limit`` bytes
    at most (cut at a UTF-8 character boundary) with the original's size and SHA-256."""
    data = b"" if data is None else bytes(data)
    size = len(data)
    if size <= limit:
        return Excerpt(data, size, None)
    return Excerpt(data[:_utf8_boundary(data, limit)], size, hashlib.sha256(data).hexdigest())


@dataclass(frozen=True, slots=True)
class DeadLetterRecord:
    """One record for the dead-letter topic."""

    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes]]


def dead_letter(key: bytes | None, value: bytes | None, *, reason: str, detail: str, topic: str,
                partition: int, offset: int) -> DeadLetterRecord:
    """The dead letter of a rejected message: reason, detail and source coordinates in
    headers; the key and value as they came, or cut (see the module doc) with
    ``tthc-truncated`` naming what was cut and ``tthc-original-size`` /
    ``tthc-original-sha256`` (value), ``tthc-original-key-size`` /
    ``tthc-original-key-sha256`` (key) describing the original."""
    headers = [
        ("tthc-reason", reason.encode("utf-8", errors="replace")[:100]),
        ("tthc-detail", detail.encode("utf-8", errors="replace")[:DETAIL_MAX]),
        ("tthc-source-topic", topic.encode("utf-8", errors="replace")[:300]),
        ("tthc-source-partition", str(int(partition)).encode()),
        ("tthc-source-offset", str(int(offset)).encode()),
    ]
    body = excerpt(value, DEAD_LETTER_VALUE_MAX)
    cut = []
    if body.cut:
        body = excerpt(value, EXCERPT_BYTES)
        cut.append("value")
        headers += [("tthc-original-size", str(body.size).encode()),
                    ("tthc-original-sha256", body.sha256.encode())]
    letter_key = key
    if key is not None:
        k = excerpt(key, DEAD_LETTER_KEY_MAX)
        if k.cut:
            letter_key = k.data
            cut.append("key")
            headers += [("tthc-original-key-size", str(k.size).encode()),
                        ("tthc-original-key-sha256", k.sha256.encode())]
    if cut:
        headers.append(("tthc-truncated", ",".join(cut).encode()))
    return DeadLetterRecord(letter_key, body.data, headers)
