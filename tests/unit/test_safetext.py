"""pipeline.safetext: CSV cells a spreadsheet would evaluate, control characters on a terminal
(issue 20, finding 6 and the table output of finding 7), and the writers that use them."""

from __future__ import annotations

import csv
import io

import pytest

from pipeline.access import format_rows
from pipeline.reports import render
from pipeline.safetext import FORMULA_STARTS, spreadsheet_cell, terminal_text

HOSTILE = ["=HYPERLINK(\"http://x\",\"y\")", "+1+1", "-2+3", "@SUM(A1)", "\tcmd", "\rcmd", "＝1+1", "＋1", "－1", "＠x"]


@pytest.mark.parametrize("text", HOSTILE)
def test_formula_looking_text_gets_a_quote(text):
    assert text.startswith(FORMULA_STARTS)
    assert spreadsheet_cell(text) == "'" + text


@pytest.mark.parametrize("value", ["plain", "Sở Tư pháp", "", "1=1", "a-b", -3, 2.5, None, "'quoted"])
def test_anything_else_is_left_alone(value):
    assert spreadsheet_cell(value) == value


def test_sql_csv_output_neutralises_every_cell_and_header():
    out = format_rows(["=name", "n"], [(text, -1) for text in HOSTILE], "csv")
    rows = list(csv.reader(io.StringIO(out, newline="")))
    assert rows[0] == ["'=name", "n"]
    assert [r[0] for r in rows[1:]] == ["'" + t for t in HOSTILE]
    assert {r[1] for r in rows[1:]} == {"-1"}  # a number stays a number


def test_report_csv_neutralises_every_cell(tmp_path):
    path = render._csv(tmp_path / "x.csv", ["@h", "b"], [["=cmd|'/c calc'!A0", 5], ["ok", -5]])
    rows = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8-sig"))))
    assert rows == [["'@h", "b"], ["'=cmd|'/c calc'!A0", "5"], ["ok", "-5"]]


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("\x1b]0;pwned\x07", "\\x1b]0;pwned\\x07"),
        ("\x1b[2J\x1b[31mred", "\\x1b[2J\\x1b[31mred"),
        ("a\nb\tc\rd", "a\\nb\\tc\\rd"),
        ("\x9b31m", "\\x9b31m"),
        ("\x7f\x00", "\\x7f\\x00"),
        ("abc\u202edcba", "abc\\u202edcba"),
        ("Sở Tư pháp – hồ sơ", "Sở Tư pháp – hồ sơ"),
    ],
)
def test_terminal_text_shows_control_characters_as_escapes(text, shown):
    assert terminal_text(text) == shown


def test_sql_table_output_has_no_control_character():
    out = format_rows(["a\x1b[2J"], [("\x1b]0;title\x07x",), ("line\nbreak",)], "table")
    assert not any(ord(c) < 32 and c != "\n" for c in out) and "\x7f" not in out
    assert "\\x1b]0;title\\x07x" in out and "line\\nbreak" in out and "a\\x1b[2J" in out
    assert len(out.splitlines()) == 5  # header, rule, two rows, count: no row broken in two
