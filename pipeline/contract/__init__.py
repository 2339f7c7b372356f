"""The upstream event contract (``docs/events.md``) as code. Imports nothing of the project."""

from pipeline.contract.events import (
    EVENT_TYPES,
    MAX_MESSAGE_BYTES,
    REASONS,
    CaseEvent,
    InvalidEvent,
    format_time,
    parse_event,
    parse_time,
)

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
