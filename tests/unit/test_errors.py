"""The one rule that turns an exception into one line (pipeline.errors.one_line)."""

from __future__ import annotations

from pipeline.errors import ConfigError, UserError, one_line


def test_one_line_collapses_lines_and_names_the_type():
    assert one_line(OSError("cannot\n  connect\tto x")) == "OSError: cannot connect to x"
    assert one_line(OSError("cannot\nconnect"), with_type=False) == "cannot connect"


def test_a_clickhouse_stack_trace_is_cut():
    exc = RuntimeError("Code: 164. DB::Exception: readonly. (READONLY)\nStack trace:\n0. DB::x\n1. DB::y")
    assert one_line(exc, with_type=False) == "Code: 164. DB::Exception: readonly. (READONLY)"
    exc = RuntimeError("Code: 62. DB::Exception: Syntax error. (SYNTAX_ERROR) (version 24.1.1)")
    assert one_line(exc) == "RuntimeError: Code: 62. DB::Exception: Syntax error. (SYNTAX_ERROR)"


def test_an_empty_message_gives_the_type_and_a_long_one_is_bounded():
    assert one_line(TimeoutError()) == "TimeoutError"
    assert one_line(TimeoutError(), with_type=False) == "TimeoutError"
    assert one_line(ValueError("x" * 2000)) == "ValueError: " + "x" * 488
    assert len(one_line(ValueError("x" * 2000), limit=50)) == 50


def test_a_text_is_collapsed_as_it_is():
    assert one_line("a\nb  c") == "a b c"


def test_config_errors_are_user_errors_and_value_errors():
    assert issubclass(ConfigError, UserError) and issubclass(ConfigError, ValueError)
