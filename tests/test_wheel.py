"""The two wheels the README tells users to build: the provider's holds the runtime package and the
provider's entry point and nothing of the harness; the sandbox distribution's holds the vendor
stand-ins, the opt-in pytest kit and the demo."""

from __future__ import annotations

import configparser
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import airflow_provider_exports
import airflow_provider_exports_sandbox

REPO = Path(__file__).resolve().parents[1]


def _uv() -> list[str]:
    """uv as the set-up found or installed it (.ci/_setup.sh: on PATH, ``python -m uv``, else in
    ``.venv-uv/``); CI, which always has it, fails without it rather than skip the wheels."""
    found = shutil.which("uv")
    if found:
        return [found]
    probe = subprocess.run([sys.executable, "-m", "uv", "--version"], capture_output=True, check=False)
    if probe.returncode == 0:
        return [sys.executable, "-m", "uv"]
    installed = REPO / ".venv-uv" / "bin" / "uv"
    if installed.is_file():
        return [str(installed)]
    if os.environ.get("CI") == "true":
        pytest.fail("uv not found on PATH, as a module or in .venv-uv/: CI's set-up installs it")
    pytest.skip("uv not found (pip install uv)")


def _build(source: Path, out_dir: Path) -> tuple[str, set[str], configparser.ConfigParser]:
    """``uv build --wheel`` of ``source``: the wheel's file name, its members and its entry points."""
    result = subprocess.run(
        [*_uv(), "build", "--wheel", "--out-dir", str(out_dir), str(source)],
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (wheel,) = out_dir.glob("*.whl")
    entry_points = configparser.ConfigParser()
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        dist_info = next(n.split("/")[0] for n in names if n.endswith(".dist-info/METADATA"))
        if f"{dist_info}/entry_points.txt" in names:
            entry_points.read_string(zf.read(f"{dist_info}/entry_points.txt").decode())
    return wheel.name, names, entry_points


def _modules(package: Path) -> set[str]:
    return {p.relative_to(package.parent).as_posix() for p in package.rglob("*.py")}


def test_the_provider_wheel_holds_the_runtime_package_only(tmp_path: Path) -> None:
    name, names, entry_points = _build(REPO, tmp_path)
    assert name == f"airflow_provider_exports-{airflow_provider_exports.__version__}-py3-none-any.whl"
    modules = _modules(REPO / "airflow_provider_exports")
    assert modules <= names, sorted(modules - names)
    assert "airflow_provider_exports/py.typed" in names
    assert dict(entry_points["apache_airflow_provider"]) == {
        "provider_info": "airflow_provider_exports.get_provider_info:get_provider_info"
    }
    assert "pytest11" not in entry_points  # no pytest plugin in the runtime
    # no vendor stand-in, kit, demo or deployment check; no tests, DAGs or benchmarks
    packages = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert packages == {"airflow_provider_exports"}
    harness = ("sandbox", "testing", "demo", "deployment", "local_services", "synthetic", "faults")
    assert [n for n in names if any(word in n for word in harness)] == []
    assert not any(n.startswith(("tests/", "example_dags/", "benchmarks/", "dev/")) for n in names)


def test_the_sandbox_wheel_holds_the_stand_ins_the_kit_and_the_demo(tmp_path: Path) -> None:
    name, names, entry_points = _build(REPO / "sandbox", tmp_path)
    version = airflow_provider_exports_sandbox.__version__
    assert name == f"airflow_provider_exports_sandbox-{version}-py3-none-any.whl"
    package = REPO / "sandbox" / "airflow_provider_exports_sandbox"
    modules = _modules(package)
    assert modules <= names, sorted(modules - names)
    for member in ("server.py", "sitecore_cdp.py", "cordial/__init__.py", "adobe/__init__.py",
                   "testing/__init__.py", "demo.py", "__main__.py", "py.typed"):
        assert f"airflow_provider_exports_sandbox/{member}" in names
    packages = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert packages == {"airflow_provider_exports_sandbox"}  # not the provider, not dev/
    assert "pytest11" not in entry_points  # the kit is opt-in
