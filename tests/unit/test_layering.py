"""The package's structure, drawn from its imports: no cycle, arrows only down the layer table,
and no import inside a function to hide either (docs/internals.md, "Layers")."""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

PIPELINE = Path(__file__).resolve().parents[2] / "pipeline"

# unit (a top-level module or package of `pipeline`) -> the units it may import.
# Bottom to top; each row names every unit below it that it uses, nothing above it.
_BASE = {"errors", "contract", "secrets", "config", "safetext"}
LAYERS: dict[str, set[str]] = {
    "errors": set(),
    "contract": set(),
    "core": {"contract"},
    "secrets": {"errors"},
    "config": {"errors", "secrets", "contract"},
    "progress": set(),
    "safetext": set(),
    "webguard": _BASE,
    "targets_file": _BASE | {"core"},
    "calendar_file": _BASE | {"core"},
    "store": _BASE | {"core"},
    "sources": {"contract", "core"},
    "intake": _BASE | {"core", "store", "kafka_clients", "infra", "sources", "webguard", "progress", "calendar_file"},
    "kafka_clients": _BASE,
    "access": _BASE | {"core", "store", "webguard"},
    "infra": _BASE | {"kafka_clients"},
    "alerting": _BASE | {"core", "store", "targets_file"},
    "boards": _BASE | {"core", "store", "targets_file", "calendar_file"},
    "stream": _BASE | {"core", "store", "kafka_clients", "webguard", "targets_file", "calendar_file", "progress",
                       "sources"},  # the DVCQG translation agent runs the pure translator
    "reports": _BASE | {"core", "store", "access", "targets_file", "calendar_file", "progress"},
    # the simulator, replay and the sample report: tools above the product, which never imports them
    "feed": _BASE | {"core", "store", "kafka_clients", "infra", "access", "reports", "targets_file", "sources", "intake",
                     "calendar_file", "progress"},
    "cli": {"errors", "contract", "core", "secrets", "config", "progress", "safetext", "webguard", "targets_file", "calendar_file",
            "store", "kafka_clients", "access", "infra", "alerting", "boards", "stream", "reports", "feed",
            "sources", "intake"},
    "__main__": {"cli"},
    "pipeline": set(),  # pipeline/__init__.py
}

# project modules that may import project modules inside a function, and why
FUNCTION_IMPORTS_ALLOWED = {
    "pipeline.cli": "each command imports only its own stack: importing every command's modules takes "
                    "~7 s here against 0.5 s for the CLI alone (Faust, chDB, matplotlib, the Grafana SDK)",
}


@dataclass(frozen=True)
class Import:
    source: str  # importing module
    target: str  # imported project module
    line: int
    in_function: bool
    commented: bool  # a `#` comment on the import's line or the line above


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(name: str, source: str, modules: set[str], is_package: bool = False) -> list[Import]:
    """Every ``pipeline`` import of a module's source, at any depth (functions, classes,
    ``if TYPE_CHECKING``), and whether it sits inside a function."""
    lines = source.splitlines()
    package = name if is_package else name.rpartition(".")[0]
    found: list[Import] = []

    def commented(node: ast.stmt) -> bool:
        here = lines[node.lineno - 1]
        above = lines[node.lineno - 2].strip() if node.lineno > 1 else ""
        return "#" in here or above.startswith("#")

    def add(node: ast.stmt, target: str, in_function: bool) -> None:
        if target == "pipeline" or target.startswith("pipeline."):
            found.append(Import(name, target, node.lineno, in_function, commented(node)))

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inside = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.Import):
                for alias in child.names:
                    add(child, alias.name, in_function)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    anchor = package.split(".")[: len(package.split(".")) - child.level + 1]
                    base = ".".join(anchor + ([base] if base else []))
                for alias in child.names:
                    full = f"{base}.{alias.name}"
                    add(child, full if full in modules else base, in_function)
            visit(child, inside)

    visit(ast.parse(source), False)
    return found


def all_imports(root: Path = PIPELINE) -> list[Import]:
    paths = sorted(root.rglob("*.py"))
    modules = {module_name(p, root) for p in paths}
    found = []
    for p in paths:
        found += imports_of(module_name(p, root), p.read_text(encoding="utf-8"), modules, p.name == "__init__.py")
    return found


def unit_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one node, or with a self-loop (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(edges.get(node, ())):
            if nxt not in index:
                connect(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1 or node in edges.get(node, ()):
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            connect(node)
    return found


def back_arrows(found: list[Import]) -> list[str]:
    return sorted(
        f"{i.source}:{i.line} imports {i.target} ({unit_of(i.source)} may not import {unit_of(i.target)})"
        for i in found
        if unit_of(i.source) != unit_of(i.target) and unit_of(i.target) not in LAYERS.get(unit_of(i.source), set())
    )


def hidden_imports(found: list[Import]) -> list[str]:
    return sorted(
        f"{i.source}:{i.line} imports {i.target} inside a function"
        for i in found
        if i.in_function and i.source not in FUNCTION_IMPORTS_ALLOWED
    )


IMPORTS = all_imports()


def test_the_graph_is_read():
    edges = {(i.source, i.target) for i in IMPORTS}
    assert ("pipeline.stream.worker", "pipeline.stream.channel") in edges  # `from pipeline.stream import channel`
    assert ("pipeline.cli", "pipeline.stream.worker") in edges  # a function-level one
    assert {unit_of(i.source) for i in IMPORTS} <= set(LAYERS)


def test_every_unit_of_the_package_has_a_row():
    units = {unit_of(module_name(p, PIPELINE)) for p in PIPELINE.rglob("*.py")}
    assert units == set(LAYERS), units ^ set(LAYERS)


def test_the_layer_table_is_a_stack():
    assert cycles(LAYERS) == []
    assert all(target in LAYERS for targets in LAYERS.values() for target in targets)


def test_no_import_cycle():
    edges: dict[str, set[str]] = {}
    for i in IMPORTS:
        if i.source != i.target:
            edges.setdefault(i.source, set()).add(i.target)
    assert cycles(edges) == []


def test_arrows_point_down_the_layer_table():
    assert back_arrows(IMPORTS) == []


def test_no_project_import_inside_a_function_unless_allowed():
    assert hidden_imports(IMPORTS) == []


def test_every_import_left_inside_a_function_says_why():
    """Third-party imports inside functions (heavy, on a rarely used path) carry a comment; a
    run of imports shares the comment of its first line."""
    bare = []
    for path in sorted(PIPELINE.rglob("*.py")):
        lines = path.read_text(encoding="utf-8").splitlines()
        inner = sorted(
            {node.lineno for fn in ast.walk(ast.parse("\n".join(lines)))
             if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef))
             for node in ast.walk(fn) if isinstance(node, (ast.Import, ast.ImportFrom))}
        )
        explained: set[int] = set()
        for number in inner:
            here, above = lines[number - 1], lines[number - 2].strip()
            if "#" in here or above.startswith("#") or number - 1 in explained:
                explained.add(number)
            elif not here.strip().startswith("from pipeline") and not here.strip().startswith("import pipeline"):
                bare.append(f"{path.relative_to(PIPELINE.parent)}:{number}: {here.strip()}")
    assert bare == []


# -- the checks themselves can fail ------------------------------------------------------
MODULES = {"pipeline.contract.events", "pipeline.core.cases", "pipeline.store.writer", "pipeline.feed.replay"}


def test_a_cycle_hidden_in_a_function_is_found():
    found = imports_of("pipeline.core.cases", "from pipeline.contract import events\n", MODULES)
    found += imports_of("pipeline.contract.events", "def f():\n    from pipeline.core.cases import X\n", MODULES)
    edges: dict[str, set[str]] = {}
    for i in found:
        edges.setdefault(i.source, set()).add(i.target)
    assert cycles(edges) == [["pipeline.contract.events", "pipeline.core.cases"]]
    assert hidden_imports(found) == ["pipeline.contract.events:2 imports pipeline.core.cases inside a function"]
    assert back_arrows(found) == [
        "pipeline.contract.events:2 imports pipeline.core.cases (contract may not import core)"
    ]


@pytest.mark.parametrize(
    "source, target",
    [
        ("from pipeline.feed.replay import message_key\n", "pipeline.feed.replay"),
        ("from ..feed import replay\n", "pipeline.feed.replay"),
        ("import pipeline.feed.replay as r\n", "pipeline.feed.replay"),
        ("if True:\n    from pipeline.feed.replay import x\n", "pipeline.feed.replay"),
    ],
)
def test_a_back_arrow_is_found_in_every_spelling(source, target):
    found = imports_of("pipeline.store.writer", source, MODULES)
    assert [i.target for i in found] == [target]
    assert back_arrows(found) == [f"pipeline.store.writer:{found[0].line} imports {target} (store may not import feed)"]
