"""The harness holds the shape the team holds the runtime to: no import cycle (imports inside
functions and under ``TYPE_CHECKING`` count), no module over 600 lines, a docstring on each; and the
runtime package imports none of it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import REPO

PACKAGES = {
    "airflow_provider_exports_sandbox": REPO / "sandbox" / "airflow_provider_exports_sandbox",
    "dev": REPO / "dev",
}


def _modules(name: str, root: Path) -> dict[str, Path]:
    found = {}
    for path in sorted(root.rglob("*.py")):
        parts = [name, *path.relative_to(root).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _imports(module: str, path: Path, known: set[str]) -> set[str]:
    """The modules of ``known`` that ``module`` imports anywhere in its file."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join([*package.split(".")[: len(package.split(".")) - node.level + 1], base]).strip(".")
            # `from pkg import sub` imports the module pkg.sub when there is one
            names = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        else:
            continue
        found |= {n for n in names if n in known and n != module}
    return found


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected component of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    return found


@pytest.mark.parametrize("name", sorted(PACKAGES))
def test_no_import_cycle(name: str) -> None:
    modules = _modules(name, PACKAGES[name])
    graph = {m: _imports(m, p, set(modules)) for m, p in modules.items()}
    assert _cycles(graph) == []


@pytest.mark.parametrize("name", sorted(PACKAGES))
def test_small_modules_that_say_what_they_are_for(name: str) -> None:
    for module, path in _modules(name, PACKAGES[name]).items():
        text = path.read_text()
        assert len(text.splitlines()) <= 600, f"{module}: {len(text.splitlines())} lines"
        assert ast.get_docstring(ast.parse(text)), f"{module} has no docstring"


def test_the_runtime_imports_no_harness() -> None:
    runtime = _modules("airflow_provider_exports", REPO / "airflow_provider_exports")
    harness = ("airflow_provider_exports_sandbox", "dev", "tests", "pytest", "moto")
    for module, path in runtime.items():
        for node in ast.walk(ast.parse(path.read_text())):
            names = (
                [a.name for a in node.names] if isinstance(node, ast.Import)
                else [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            )
            assert not [n for n in names if n.split(".")[0] in harness], f"{module} imports {names}"


def test_the_cycle_finder_finds_a_type_hint_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
