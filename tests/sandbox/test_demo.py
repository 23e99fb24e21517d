"""The demo: the example DAGs on one screen, without Airflow's logs, and ``--keep`` leaves the
local S3 and the warehouse to look at, with commands that work, until ``--stop``."""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from airflow_provider_exports_sandbox.demo import stop_kept


def _main_lane() -> bool:
    from importlib.metadata import version

    from packaging.version import Version

    return Version(version("apache-airflow")) >= Version("3.3")


# The demo is `bash .ci/demo`, which runs on .venv (Airflow 3.3.2) only; Airflow 3.1 has no
# [logging] namespace_levels to keep dag.test()'s XCom lookups of mapped tasks out of its output.
pytestmark = pytest.mark.skipif(not _main_lane(), reason="the demo runs on the main lane's Airflow only")

REPO = Path(__file__).resolve().parents[2]


def _env() -> dict[str, str]:
    """A shell's environment: none of this test session's Airflow settings or connections."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "PYTEST_"))}


def _shell(command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-c", command], cwd=REPO, env=_env(), capture_output=True, text=True, timeout=120
    )


@pytest.fixture
def work(tmp_path: Path):
    yield tmp_path / "demo"
    stop_kept(tmp_path / "demo")  # when the test failed before its own --stop


def test_quiet_on_one_screen_and_keep_leaves_s3_and_the_warehouse(work: Path) -> None:
    demo = subprocess.run(
        [sys.executable, "-m", "airflow_provider_exports_sandbox.demo", "--work-dir", str(work), "--keep"],
        cwd=REPO,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=900,
        stdin=subprocess.DEVNULL,
    )
    out = demo.stdout
    assert demo.returncode == 0, out[-4000:] + demo.stderr[-4000:]
    lines = out.splitlines()
    assert len(lines) < 48, out  # one screen, seven DAGs included (the delta DAG runs twice)
    everything = out + demo.stderr
    assert not re.search(r"\[(debug|info|warning) *\]", everything), everything[:3000]  # Airflow's log lines
    assert "Dropping" not in everything and "deprecat" not in everything.lower(), everything[:3000]
    assert demo.stderr.strip() == ""
    ran = re.findall(r"^  (\w+) +success in ", out, re.M)
    for dag_id in ("adobe_profile_export", "cordial_audience_trends", "sitecore_cdp_audience_export"):
        assert dag_id in ran and f"{dag_id}_fan_out" in ran, out
    assert re.search(rf"^{len(set(ran))} DAGs:$", out, re.M), out  # the count of what runs
    # the delta export's two jobs: the second removed 500 of the 4,000 guests the first added, added 2,000
    delta = re.findall(r"^  sitecore_cdp_audience_delta +success in .*; loyalty_members_current ([\d,]+) rows$", out, re.M)
    assert delta == ["4,000", "5,500"], out
    assert "  loyalty_members_current, 2 delta jobs applied (guests added, removed): +4,000 -1,000, then +2,000 -500\n" in out
    assert re.search(r"  raw/cordial_fan_out/\S+  1 file, ", out), out  # one file, not "1 files"
    assert not re.search(r"\b1 (files|objects|bytes|rows)\b", out), out

    # --keep: the printed boto3 command lists what landed in the local S3, still running
    browse = next(line.strip() for line in lines if " -c 'import boto3" in line)
    listing = _shell(browse)
    assert listing.returncode == 0, listing.stderr
    assert "raw/sitecore/daily_loyalty_members/" in listing.stdout and "_manifest.json" in listing.stdout
    endpoint = re.search(r"the local S3 at (http://127\.0\.0\.1:\d+)", out)[1]  # type: ignore[index]
    with sqlite3.connect(work / "warehouse.db") as conn:
        assert conn.execute("select count(*) from loyalty_members").fetchone()[0] == 5000
        assert conn.execute("select count(*) from loyalty_members_current").fetchone()[0] == 5500

    # the printed stop command stops it
    stop = next(line for line in lines if line.startswith("Stop: "))[len("Stop: ") :].split("   (or")[0]
    stopped = _shell(stop)
    assert stopped.returncode == 0 and "stopped local S3" in stopped.stdout, stopped.stdout + stopped.stderr
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=5)


def test_verbose_shows_airflows_logs(work: Path, tmp_path: Path) -> None:
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "hello.py").write_text(
        "from airflow.sdk import DAG, task\n\n"
        "with DAG('hello', schedule=None):\n\n"
        "    @task\n"
        "    def hello():\n"
        "        print('hello')\n\n"
        "    hello()\n"
    )
    demo = subprocess.run(
        [sys.executable, "-m", "airflow_provider_exports_sandbox.demo", "--work-dir", str(work),
         "--dags-folder", str(dags), "--verbose"],
        cwd=REPO, env=_env(), capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert demo.returncode == 0, demo.stdout[-4000:] + demo.stderr[-4000:]
    assert re.search(r"^  hello +success in ", demo.stdout, re.M), demo.stdout[-3000:]
    assert re.search(r"\[info *\]", demo.stdout + demo.stderr)  # Airflow's own log lines are back


def test_a_failed_run_says_which_try_of_which_task_failed_and_why(work: Path, tmp_path: Path) -> None:
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "boom.py").write_text(
        "from airflow.sdk import DAG, task\n\n"
        "with DAG('boom', schedule=None):\n\n"
        "    @task\n"
        "    def land():\n"
        "        raise ValueError('no bucket named lake')\n\n"
        "    land()\n"
    )
    demo = subprocess.run(
        [sys.executable, "-m", "airflow_provider_exports_sandbox.demo", "--work-dir", str(work),
         "--dags-folder", str(dags)],
        cwd=REPO, env=_env(), capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert demo.returncode == 1, demo.stdout[-4000:] + demo.stderr[-4000:]
    assert re.search(r"^  boom +failed in .*; not successful: land$", demo.stdout, re.M), demo.stdout
    assert "      task land, try 1 of 1: ValueError: no bucket named lake\n" in demo.stdout, demo.stdout


def test_nothing_the_sandbox_exports_is_too_short_for_airflows_masker(sandbox, moto_s3, tmp_path: Path) -> None:
    """Airflow hands every variable's value and every connection's password and extra to its secrets
    masker, which warned "Skipping masking for a secret as it's too short" in every task log of the
    example DAGs while the sandbox exported the variable exports_bucket=lake."""
    import json

    from airflow.configuration import conf

    from airflow_provider_exports_sandbox.demo import services_env

    shortest = conf.getint("logging", "min_length_masked_secret", fallback=5)
    env = {**sandbox.airflow_env(), **services_env(sandbox, moto_s3, tmp_path / "warehouse.db")}
    masked = {}
    for name, value in env.items():
        if name.startswith("AIRFLOW_VAR_"):
            masked[name] = value
        elif name.startswith("AIRFLOW_CONN_"):
            conn = json.loads(value)
            masked[f"{name} password"] = conn.get("password") or ""
            masked[f"{name} extra"] = json.dumps(conn.get("extra")) if conn.get("extra") else ""
    too_short = {name: value for name, value in masked.items() if 0 < len(value) < shortest}
    assert too_short == {}
