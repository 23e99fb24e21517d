"""How the provider's modules import: cheap for a DAG parse, and never in a cycle.

The example DAG files are imported in a fresh process after ``airflow.sdk`` and the amazon
provider's ``S3Hook`` (which a DAG using the provider loads anyway); the packages that appear
only then must not include an HTTP client, boto3, pyarrow or a database driver. (The time it
takes is measured by ``benchmarks/imports.py``, not here.)

No module of the provider or of the sandbox distribution may import itself through others: every
import counts, the ones inside functions and under ``TYPE_CHECKING`` too (each ties the two
modules' designs).
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import EXAMPLE_DAGS, REPO

#: the import packages built from this repository: the provider and the sandbox distribution's
PACKAGES = (REPO / "airflow_provider_exports", REPO / "sandbox" / "airflow_provider_exports_sandbox")

HEAVY = ["httpx", "httpcore", "boto3", "botocore", "pyarrow", "psycopg", "psycopg2", "asyncpg", "sqlite3"]

_PROBE = """
import json, sys
import airflow.sdk
from airflow.providers.amazon.aws.hooks.s3 import S3Hook
before = set(sys.modules)
sys.path.insert(0, {dags!r})
for dag in {dags_to_import!r}:
    __import__(dag)
added = {{m.split(".")[0] for m in set(sys.modules) - before}}
ours = sorted(m for m in sys.modules if m.startswith("airflow_provider_exports."))
print(json.dumps({{"added": sorted(added), "loaded": sorted({{m.split(".")[0] for m in sys.modules}}), "ours": ours}}))
"""


def test_parsing_the_example_dags_imports_nothing_heavy(tmp_path):
    dags = sorted(p.stem for p in EXAMPLE_DAGS.glob("*.py"))
    assert len(dags) >= 3
    env = {**os.environ, "AIRFLOW_HOME": str(tmp_path), "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE.format(dags=str(EXAMPLE_DAGS), dags_to_import=dags)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    seen = json.loads(proc.stdout.strip().splitlines()[-1])
    assert {"airflow_provider_exports", *dags} <= set(seen["added"])  # the probe did import them
    assert [m for m in HEAVY if m in seen["added"]] == []
    # pyarrow never at parse time (database drivers only as Airflow's own: 3.1 imports psycopg2)
    assert "pyarrow" not in seen["loaded"]
    # the engine's moving parts are imported when a task runs, not when its DAG is parsed
    engine = "airflow_provider_exports.transfers.engine."
    assert [
        m
        for m in seen["ours"]
        if m in {engine + "runner", engine + "s3_sink", engine + "s3_multipart", engine + "progress", engine + "sql.sink"}
    ] == []


def _module_names(root: Path) -> dict[str, Path]:
    """Every module of the package under ``root``, by dotted name (a package by its own name)."""
    modules = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def _imported(module: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The package's modules that ``module`` imports anywhere in its file: at the top, inside a
    function, under ``TYPE_CHECKING``. ``from a import b`` imports ``a.b`` when that is a module."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*parent, *([base] if base else [])])
            found.update(f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names)
    return {name for name in found if name in modules and name != module}


def _cycles(graph: dict[str, set[str]]) -> list[set[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[set[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        for other in graph[module]:
            if other not in index:
                visit(other)
                low[module] = min(low[module], low[other])
            elif other in stack:
                low[module] = min(low[module], index[other])
        if low[module] == index[module]:
            component = set()
            while True:
                member = stack.pop()
                component.add(member)
                if member == module:
                    break
            if len(component) > 1:
                found.append(component)

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return found


def test_no_module_imports_itself_through_others():
    modules = {name: path for root in PACKAGES for name, path in _module_names(root).items()}
    graph = {name: _imported(name, path, modules) for name, path in modules.items()}
    # the walk found both packages
    assert graph["airflow_provider_exports.transfers.engine.runner"] and graph["airflow_provider_exports_sandbox.server"]
    cycles = [{module: sorted(graph[module] & cycle) for module in sorted(cycle)} for cycle in _cycles(graph)]
    assert cycles == []


def test_the_cycle_finder_sees_lazy_and_type_checking_imports(tmp_path):
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sub" / "__init__.py").write_text("")
    (package / "a.py").write_text("from pkg.sub import b\n")
    (package / "sub" / "b.py").write_text("def f():\n    from .. import c\n")
    (package / "c.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import pkg.a\n")
    (package / "d.py").write_text("from pkg import a\n")
    modules = _module_names(package)
    graph = {name: _imported(name, path, modules) for name, path in modules.items()}
    assert _cycles(graph) == [{"pkg.a", "pkg.sub.b", "pkg.c"}]
