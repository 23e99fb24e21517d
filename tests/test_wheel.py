"""The wheel the README tells users to build holds the package and the provider's entry point."""

from __future__ import annotations

import configparser
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import airflow_provider_exports

REPO = Path(__file__).resolve().parents[1]


def _uv() -> list[str]:
    found = shutil.which("uv")
    if found:
        return [found]
    probe = subprocess.run([sys.executable, "-m", "uv", "--version"], capture_output=True, check=False)
    if probe.returncode == 0:
        return [sys.executable, "-m", "uv"]
    pytest.skip("uv not found (pip install uv)")


def test_uv_build_makes_a_wheel_with_the_package(tmp_path: Path) -> None:
    result = subprocess.run(
        [*_uv(), "build", "--wheel", "--out-dir", str(tmp_path), str(REPO)],
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (wheel,) = tmp_path.glob("*.whl")
    assert wheel.name == f"airflow_provider_exports-{airflow_provider_exports.__version__}-py3-none-any.whl"
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        dist_info = next(n.split("/")[0] for n in names if n.endswith(".dist-info/METADATA"))
        entry_points = configparser.ConfigParser()
        entry_points.read_string(zf.read(f"{dist_info}/entry_points.txt").decode())
    package = REPO / "airflow_provider_exports"
    modules = {p.relative_to(REPO).as_posix() for p in package.rglob("*.py")}
    assert modules <= names, sorted(modules - names)
    assert "airflow_provider_exports/py.typed" in names
    assert not any(n.startswith(("tests/", "example_dags/", "benchmarks/")) for n in names)
    assert dict(entry_points["apache_airflow_provider"]) == {
        "provider_info": "airflow_provider_exports.get_provider_info:get_provider_info"
    }
    assert "pytest11" not in entry_points  # the test kit is opt-in
