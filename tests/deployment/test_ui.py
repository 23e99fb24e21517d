"""The local Airflow of ``bash .ci/demo --ui`` (dev/deployment/ui.py), started once for the module
as a newcomer starts it (its command line, with no virtualenv on PATH), checked through Airflow's
REST API, restarted, and stopped.

It runs the locked Airflow (.venv from requirements/ci.lock), as ``.ci/demo --ui`` does: the floor
lane skips it. It needs PostgreSQL's server binaries.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_exports_sandbox.local_services import PostgresCluster
from dev.deployment.processes import wait_for

REPO = Path(__file__).resolve().parents[2]
LOCKED_AIRFLOW = re.search(r"^apache-airflow==(\S+)", (REPO / "requirements" / "ci.lock").read_text(), re.M)
EXAMPLE_DAG_IDS = sorted(p.stem for p in (REPO / "example_dags").glob("*.py"))
CONNECTIONS = {
    "sitecore_cdp_default": "sitecore_cdp",
    "cordial_default": "cordial",
    "adobe_aep_default": "adobe_aep",
    "aws_default": "aws",
    "cordial_delivery": "aws",
    "warehouse": "postgres",
}

pytestmark = [
    pytest.mark.skipif(not PostgresCluster.available(), reason="PostgreSQL server binaries are missing"),
    pytest.mark.skipif(
        LOCKED_AIRFLOW is None or importlib.metadata.version("apache-airflow") != LOCKED_AIRFLOW[1],
        reason="the local Airflow runs the Airflow of requirements/ci.lock (.venv), not this lane's",
    ),
]


def _port_base() -> int:
    """Six consecutive free ports below the ephemeral range, which the other tests' servers take
    their free ports from (so none of them takes one of these meanwhile)."""
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    for _ in range(100):
        base = random.randrange(20000, low - 10)
        try:
            for port in range(base, base + 6):
                with socket.socket() as sock:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                    sock.bind(("127.0.0.1", port))
        except OSError:
            continue
        return base
    raise RuntimeError("no six consecutive free ports")


def _command(work: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "PYTEST"))}
    # `airflow standalone` found its components through PATH; this must not need the venv on it.
    venv_bin = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join(d for d in env.get("PATH", "").split(os.pathsep) if d and d != venv_bin)
    return subprocess.run(
        [sys.executable, "-m", "dev.deployment.ui", "--work-dir", str(work), *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )


@dataclass
class LocalUI:
    work: Path
    base: int
    started: subprocess.CompletedProcess[str]
    seconds: float
    pids: set[int] = field(default_factory=set)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.base}"

    def printed(self, label: str) -> str:
        found = re.search(rf"^\s*{label}:\s+(\S+)", self.started.stdout, re.M)
        assert found, f"no {label!r} line in:\n{self.started.stdout}"
        return found[1]

    def token(self, password: str | None = None) -> str:
        body = {"username": self.printed("user"), "password": password or self.printed("password")}
        answer = _http("POST", f"{self.url}/auth/token", body)
        return str(answer["access_token"])

    def api(self, method: str, path: str, body: Any = None) -> Any:
        return _http(method, f"{self.url}{path}", body, self.token())

    def record_pids(self) -> None:
        """Every process of it now: the background process and the components' trees."""
        running = json.loads((self.work / "running.json").read_text())
        self.pids |= {running["pid"], *running["components"].values()}
        tree: dict[int, list[int]] = {}
        for entry in filter(str.isdigit, os.listdir("/proc")):
            try:
                ppid = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except OSError:
                continue
            tree.setdefault(ppid, []).append(int(entry))
        todo = list(self.pids)
        while todo:
            children = tree.get(todo.pop(), [])
            self.pids.update(children)
            todo.extend(children)


def _http(method: str, url: str, body: Any = None, token: str | None = None) -> Any:
    req = urllib.request.Request(url, data=None if body is None else json.dumps(body).encode(), method=method)
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(req, timeout=60) as resp:
        return json.loads(resp.read())


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.fixture(scope="module")
def ui() -> Iterator[LocalUI]:
    # Not under pytest's temp dirs (mode 700): as root, PostgreSQL runs as the postgres user, who
    # must reach the data directory.
    top = Path(tempfile.mkdtemp(prefix="local-airflow-"))
    top.chmod(0o755)
    work = top / "ui"
    base = _port_base()
    t0 = time.monotonic()
    started = _command(work, "--port-base", str(base))
    local = LocalUI(work, base, started, time.monotonic() - t0)
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        local.record_pids()
        yield local
    finally:
        _command(work, "--stop")
        shutil.rmtree(top, ignore_errors=True)


def test_prints_the_url_the_login_and_how_to_stop(ui: LocalUI) -> None:
    print(f"started in {ui.seconds:.0f} s")
    assert ui.printed("Airflow is running") == ui.url
    assert ui.printed("user") == "admin"
    generated = json.loads((ui.work / "airflow" / "simple_auth_manager_passwords.json.generated").read_text())
    assert ui.printed("password") == generated["admin"]
    stop = f"Stop it:    {sys.executable} -m dev.deployment.ui --stop --work-dir {ui.work}"
    assert stop in ui.started.stdout


def test_every_component_is_healthy(ui: LocalUI) -> None:
    health: dict[str, Any] = {}

    def healthy() -> bool:
        health.update(_http("GET", f"{ui.url}/api/v2/monitor/health"))
        components = ("metadatabase", "scheduler", "triggerer", "dag_processor")
        return all(health[c]["status"] == "healthy" for c in components)

    wait_for(healthy, 120, "every component is healthy", poll=2)


def test_a_login_is_required(ui: LocalUI) -> None:
    with pytest.raises(urllib.error.HTTPError) as refused:
        _http("GET", f"{ui.url}/api/v2/connections")
    assert refused.value.code == 401
    with pytest.raises(urllib.error.HTTPError) as wrong:
        ui.token(password="not-the-password")
    assert wrong.value.code == 401


def test_the_connections_are_in_the_metadata_database(ui: LocalUI) -> None:
    # The REST API lists the metadata database's connections only (not AIRFLOW_CONN_* variables).
    listed = {c["connection_id"]: c for c in ui.api("GET", "/api/v2/connections?limit=100")["connections"]}
    assert {conn_id: c["conn_type"] for conn_id, c in listed.items()} == CONNECTIONS
    sitecore = json.loads(listed["sitecore_cdp_default"]["extra"])
    assert sitecore["api_host"] == f"http://127.0.0.1:{ui.base + 3}"
    assert json.loads(listed["aws_default"]["extra"])["endpoint_url"] == f"http://127.0.0.1:{ui.base + 2}"
    assert (listed["warehouse"]["host"], listed["warehouse"]["port"]) == ("127.0.0.1", ui.base + 1)


def test_the_example_dags_are_unpaused_and_import(ui: LocalUI) -> None:
    dags = {d["dag_id"]: d["is_paused"] for d in ui.api("GET", "/api/v2/dags?limit=100")["dags"]}
    assert dags == dict.fromkeys(EXAMPLE_DAG_IDS, False)
    assert ui.api("GET", "/api/v2/importErrors")["total_entries"] == 0
    assert "Not parsed yet" not in ui.started.stdout and "Import error" not in ui.started.stdout


def test_a_run_triggered_without_a_logical_date_succeeds(ui: LocalUI) -> None:
    dag_id = "adobe_profile_export"
    run = ui.api("POST", f"/api/v2/dags/{dag_id}/dagRuns", {"logical_date": None})
    assert run["logical_date"] is None
    path = f"/api/v2/dags/{dag_id}/dagRuns/{urllib.request.quote(run['dag_run_id'], safe='')}"
    seen: dict[str, Any] = {}

    def ended() -> bool:
        seen.update(ui.api("GET", path))
        return seen["state"] in ("success", "failed")

    wait_for(ended, 300, f"the run {run['dag_run_id']} ends", poll=2)
    tasks = {t["task_id"]: t["state"] for t in ui.api("GET", f"{path}/taskInstances")["task_instances"]}
    assert seen["state"] == "success", tasks
    ui.record_pids()  # its task processes too


def test_a_restart_keeps_connections_runs_and_login_then_stop_leaves_nothing(ui: LocalUI) -> None:
    runs_before = ui.api("GET", "/api/v2/dags/~/dagRuns?limit=1")["total_entries"]
    stopped = _command(ui.work, "--stop")
    assert stopped.returncode == 0 and "Stopped the local Airflow" in stopped.stdout, stopped.stdout
    t0 = time.monotonic()
    again = _command(ui.work, "--port-base", str(ui.base))
    assert again.returncode == 0, again.stdout + again.stderr
    print(f"restarted in {time.monotonic() - t0:.0f} s")
    ui.record_pids()
    assert f"password: {ui.printed('password')} " in again.stdout  # the same login
    listed = {c["connection_id"] for c in ui.api("GET", "/api/v2/connections?limit=100")["connections"]}
    assert listed == set(CONNECTIONS)
    assert ui.api("GET", "/api/v2/dags/~/dagRuns?limit=1")["total_entries"] >= runs_before

    stopped = _command(ui.work, "--stop")
    assert stopped.returncode == 0 and "Stopped the local Airflow" in stopped.stdout, stopped.stdout
    assert "left" not in stopped.stdout  # nothing was left for the clean-up of a killed run
    assert not [pid for pid in ui.pids if _alive(pid)]
    assert not PostgresCluster(data_dir=ui.work / "postgres" / "data").running()
    assert not (ui.work / "running.json").exists()
    for port in range(ui.base, ui.base + 6):
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("127.0.0.1", port))
    assert "Nothing was running" in _command(ui.work, "--stop").stdout
