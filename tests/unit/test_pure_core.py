"""The pure core (pipeline/core and the contract) reads no files and imports nothing of Kafka, ClickHouse, HTTP."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "pipeline"
# the contract reads its JSON schema file once at import; its time module is pure
MODULES = sorted((PACKAGE / "core").glob("*.py")) + [PACKAGE / "contract" / "localtime.py"]

# I/O and the adapters: the core takes parsed data, the adapters read and write
FORBIDDEN = {
    "os", "io", "pathlib", "tomllib", "csv", "socket", "urllib", "http", "shutil", "sqlite3",
    "faust", "mode", "kafka", "aiokafka", "aiohttp", "clickhouse_connect", "chdb", "rocksdict",
    "prometheus_client", "pipeline.store", "pipeline.stream", "pipeline.feed", "pipeline.infra",
    "pipeline.config", "pipeline.targets_file",
}


def _imports(tree: ast.AST) -> set[str]:
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            names.add(node.module or "")
    return names


@pytest.mark.parametrize("path", MODULES, ids=[p.name for p in MODULES])
def test_core_module_imports_no_io_or_adapter(path):
    imported = _imports(ast.parse(path.read_text(encoding="utf-8")))
    bad = {n for n in imported if any(n == f or n.startswith(f + ".") for f in FORBIDDEN)}
    assert not bad, f"{path.name} imports {bad}"


@pytest.mark.parametrize("path", MODULES, ids=[p.name for p in MODULES])
def test_core_module_opens_no_file(path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    calls = {
        node.func.id if isinstance(node.func, ast.Name) else node.func.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, (ast.Name, ast.Attribute))
    }
    assert not calls & {"open", "read_text", "read_bytes", "write_text", "write_bytes"}, path.name


def test_the_core_has_modules():
    assert {p.name for p in MODULES} >= {"cases.py", "targets.py", "windows.py", "localtime.py"}
