"""``python -m pipeline grafana build``: the boards' JSON in ``dashboards/``.

Also writes Grafana's provisioning files (``deploy/grafana/provisioning``). Both are
generated, never edited by hand: a unit test fails when the committed files differ
from what this module produces.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from grafana_foundation_sdk.builders.dashboard import Dashboard
from grafana_foundation_sdk.cog.encoder import JSONEncoder

from pipeline.boards import boards
from pipeline.boards.panels import datasource_variables
from pipeline.boards.queries import CLICKHOUSE_TYPE, panel_queries
from pipeline.config import PROJECT_ROOT, Settings, UserError
from pipeline.core.targets import Targets, TargetsError
from pipeline.targets_file import load_targets

DASHBOARDS_DIR = PROJECT_ROOT / "dashboards"


@dataclass(frozen=True)
class BoardSpec:
    file_name: str
    build: Callable[[Targets], Dashboard]


BOARDS: tuple[BoardSpec, ...] = (
    BoardSpec("tthc-tong-quan.json", boards.overview),
    BoardSpec("tthc-don-vi.json", boards.unit_drilldown),
    BoardSpec("tthc-linh-vuc.json", boards.sectors),
    BoardSpec("tthc-van-hanh.json", boards.operations),
)


def _plain(built) -> dict:
    return json.loads(json.dumps(built, cls=JSONEncoder))


def render(board: Dashboard) -> str:
    """The dashboard's JSON model as committed: 2-space indent, UTF-8 text, final newline.

    The data source variables its panels use come first among its variables (one place
    for every board, so no board can forget them)."""
    model = _plain(board.build())
    clickhouse = any(query["datasource"]["type"] == CLICKHOUSE_TYPE for query in panel_queries(model))
    variables = [_plain(variable.build()) for variable in datasource_variables(clickhouse)]
    model.setdefault("templating", {}).setdefault("list", [])[:0] = variables
    return json.dumps(model, indent=2, ensure_ascii=False) + "\n"


def generate(targets: Targets) -> dict[str, str]:
    """{file name: JSON text} of every board."""
    return {spec.file_name: render(spec.build(targets)) for spec in BOARDS}


def targets_of(settings: Settings) -> Targets:
    try:
        return load_targets(settings.targets_file)
    except TargetsError as exc:
        raise UserError(str(exc)) from None


def write_boards(targets: Targets, out_dir: Path = DASHBOARDS_DIR) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in generate(targets).items():
        path = out_dir / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written
