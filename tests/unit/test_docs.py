"""The README stays a short front page whose board tables follow the generated boards, and every
relative link of the README and docs/ points at a file that exists."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
PAGES = [README, ROOT / "BENCHMARKS.md", *sorted((ROOT / "docs").rglob("*.md"))]
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def test_readme_is_a_front_page_of_at_most_12_kb():
    assert len(README.read_bytes()) <= 12 * 1024


def board_section(text: str, title: str, uid: str) -> str:
    start = text.index(f"**{title}** (`{uid}`)")
    end = text.find("\n**", start + 1)
    end = text.index("\n## ", start) if end == -1 else min(end, text.index("\n## ", start))
    return text[start:end]


@pytest.mark.parametrize("path", sorted((ROOT / "dashboards").glob("*.json")), ids=lambda p: p.stem)
def test_readme_board_table_lists_every_row_and_the_panels_of_each(path):
    board = json.loads(path.read_text(encoding="utf-8"))
    section = board_section(README.read_text(encoding="utf-8"), board["title"], board["uid"])
    rows = {row: cell for row, cell in re.findall(r"^\| ([^|]+?) \| ([^|]+?) \|$", section, re.M)
            if row not in ("row", "---")}
    row = None
    indicator_panels: dict[str, int] = {}
    for panel in board["panels"]:
        if panel["type"] == "row":
            row = panel["title"]
            assert row in rows, f"{board['uid']}: row {row!r} missing from the README"
            continue
        cell = rows[row]
        if panel["title"] not in cell.split(" · "):
            indicator_panels[row] = indicator_panels.get(row, 0) + 1
    for row, count in indicator_panels.items():
        # the panels not named one by one are the per-indicator ones, counted in the cell
        assert f"({count}" in rows[row], f"{board['uid']}: row {row!r} has {count} unnamed panels"
    assert len(rows) == sum(1 for p in board["panels"] if p["type"] == "row")


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(page):
    for target in LINK.findall(page.read_text(encoding="utf-8")):
        if "://" in target:
            continue
        assert (page.parent / target).exists(), f"{page.relative_to(ROOT)} links to missing {target}"
