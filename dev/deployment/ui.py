"""The local Airflow of ``bash .ci/demo --ui``: a real Airflow with the provider and its UI, in the
background, until ``--stop``.

``python -m dev.deployment.ui`` (from the repository root) starts the deployment check's
:class:`~dev.deployment.services.Deployment` with LocalExecutor (PostgreSQL, moto, the vendor
sandbox, the api-server, scheduler, DAG processor and triggerer), but for a person rather than for
checks: on fixed loopback ports (``--port-base``), its state kept in ``--work-dir`` from one start
to the next (the metadata database, the warehouse, the Fernet key, the login), the example DAGs'
connections written into the metadata database (so the UI lists and edits them), the DAGs unpaused
when first parsed, and a login (the simple auth manager's user ``admin``, its generated password).

The components and the sandbox belong to a background process (the sandbox serves from its
threads); this command starts it, waits until the DAGs are parsed, prints the URL, the login and
how to stop, and returns. ``--stop`` ends the background process, which stops all of it, and then
whatever a killed one left behind.

It lives in dev/, beside the deployment check whose process control it reuses, not in the sandbox
distribution: it needs the repository (its example DAGs, its PostgreSQL recipe), not an installed wheel.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time
import traceback
import urllib.request
from pathlib import Path
from typing import Any

from airflow_provider_exports_sandbox.local_services import PostgresCluster
from dev.deployment.processes import CheckFailed, log, wait_for
from dev.deployment.services import Deployment, Ports

REPO = Path(__file__).resolve().parents[2]
DEFAULT_PORT_BASE = 28080
USER = "admin"
#: written by the background process once everything is up; gone once it has stopped
STATE_FILE = "running.json"
#: the simple auth manager's passwords, in AIRFLOW_HOME (Airflow's default name)
PASSWORDS_FILE = "simple_auth_manager_passwords.json.generated"
KEYS_FILE = "keys.json"


class LocalAirflow(Deployment):
    """A :class:`Deployment` that keeps its state in ``work`` and asks for a login."""

    @property
    def connections_file(self) -> Path:
        return self.work / "connections.json"

    def _postgres(self) -> PostgresCluster:
        assert self.ports is not None
        return PostgresCluster(port=self.ports.postgres, data_dir=self.work / "postgres" / "data")

    def _warehouse(self) -> PostgresCluster:
        # One kept cluster on one fixed port holds both databases (no fault restarts it here).
        assert self.postgres is not None
        return self.postgres

    def _keys(self) -> dict[str, str]:
        # Kept: the Fernet key decrypts the connections stored with it; the others keep logins valid.
        path = self.work / KEYS_FILE
        if not path.exists():
            path.touch(mode=0o600)
            path.write_text(json.dumps(super()._keys()))
        keys: dict[str, str] = json.loads(path.read_text())
        return keys

    def _auth_env(self) -> dict[str, str]:
        return {
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{USER}:admin",
            # Unpaused when the DAG processor first sees them; a DAG paused in the UI stays paused.
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        }

    def _connections_env(self) -> dict[str, str]:
        return {}  # in the metadata database instead: _migrated

    def _migrated(self) -> None:
        """The example DAGs' connections into the metadata database, before any component starts
        (so no run meets them missing), overwriting the ones a previous start wrote."""
        log("airflow connections import: " + ", ".join(self.connections()))
        path = self.connections_file
        path.touch(mode=0o600)
        path.write_text(json.dumps(self.connections()))
        try:
            with open(self.work / "logs" / "connections-import.log", "wb") as out:
                imported = subprocess.run(
                    self.airflow("connections", "import", "--overwrite", str(path)),
                    env=self.env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    check=False,
                )
        finally:
            path.unlink()
        if imported.returncode != 0:
            log_path = self.work / "logs" / "connections-import.log"
            raise CheckFailed(f"airflow connections import failed: see {log_path}")

    def password(self) -> str:
        """The password the api-server generated for :data:`USER` (kept in its file from then on)."""
        passwords: dict[str, str] = json.loads((self.airflow_home / PASSWORDS_FILE).read_text())
        return passwords[USER]

    def _token(self) -> str:
        wait_for(
            lambda: (self.airflow_home / PASSWORDS_FILE).exists(),
            60,
            "the api-server writes the generated password",
        )
        body = json.dumps({"username": USER, "password": self.password()}).encode()
        req = urllib.request.Request(f"{self.api_url}/auth/token", data=body, method="POST")
        req.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(req, timeout=60) as resp:
            return str(json.loads(resp.read())["access_token"])

    def wait_until_parsed(self, timeout: float = 300) -> tuple[list[str], dict[str, str], list[str]]:
        """Wait until the DAG processor has seen each file of the DAGs folder that may hold a DAG
        (by its safe mode's test: the words "airflow" and "dag" in it); the DAG ids, the import
        errors by file, and the files still not seen at the deadline (the start goes on)."""
        files = {
            str(p) for p in self.dags_folder.rglob("*.py")
            if all(word in p.read_bytes().lower() for word in (b"airflow", b"dag"))
        }  # fmt: skip
        found: dict[str, Any] = {"dags": [], "errors": {}, "seen": set()}

        def seen() -> bool:
            dags = self.api("GET", "/api/v2/dags?limit=1000")["dags"]
            errors = self.api("GET", "/api/v2/importErrors?limit=1000")["import_errors"]
            found["dags"] = sorted(d["dag_id"] for d in dags)
            # an import error's file is relative to the DAGs folder (the bundle), a DAG's absolute
            found["errors"] = {str(self.dags_folder / e["filename"]): e["stack_trace"] for e in errors}
            found["seen"] = {d["fileloc"] for d in dags} | set(found["errors"])
            return files <= found["seen"]

        try:
            wait_for(seen, timeout, f"the DAG processor parses {len(files)} files of {self.dags_folder}", 2)
        except CheckFailed as exc:
            log(str(exc))
        return found["dags"], found["errors"], sorted(files - found["seen"])


# -- the background process ---------------------------------------------------------------------


def serve(work: Path, dags_folder: Path, ports: Ports) -> int:
    """Start everything, write :data:`STATE_FILE`, and stop everything on SIGTERM (or SIGINT, SIGHUP)."""

    def terminate(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, terminate)
    dep = LocalAirflow(work=work, dags_folder=dags_folder, executor="local", ports=ports)
    state = work / STATE_FILE
    try:
        dep.start()
        dags, errors, unparsed = dep.wait_until_parsed()
        running = {
            "pid": os.getpid(),
            "url": dep.api_url,
            "user": USER,
            "password": dep.password(),
            "ports": dep.ports and dep.ports.named(),
            "dags": dags,
            "import_errors": errors,
            "unparsed": unparsed,
            "components": {name: c.proc.pid for name, c in dep.components.items() if c.proc is not None},
            "task_logs": str(dep.task_logs),
        }
        tmp = state.with_suffix(".tmp")
        tmp.touch(mode=0o600)  # it holds the password
        tmp.write_text(json.dumps(running))
        tmp.rename(state)
        log("ready")
        exited: set[str] = set()
        while True:  # say in this log when a component dies (the health endpoint says it too)
            time.sleep(5)
            for name, component in dep.components.items():
                if name not in exited and component.proc is not None and component.proc.poll() is not None:
                    exited.add(name)
                    log(f"{name} exited ({component.proc.returncode}): see {component.log_path}")
    except KeyboardInterrupt as exc:
        log(f"stopping ({exc})")
    except Exception:
        log(f"failed:\n{traceback.format_exc()}")
        return 1
    finally:
        state.unlink(missing_ok=True)
        dep.stop()
        log("stopped")
    return 0


# -- the command: start, stop -------------------------------------------------------------------


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _daemon_pid(work: Path) -> int | None:
    """The background process's pid, if it runs (a pid may have been reused: its command line says)."""
    pid_file = work / "ui.pid"
    if not pid_file.exists():
        return None
    pid = int(pid_file.read_text())
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return pid if _alive(pid) and b"dev.deployment.ui" in cmdline and str(work).encode() in cmdline else None


def _leftovers(work: Path) -> list[int]:
    """Processes a killed background process left: those in its session (moto) or in a component's
    (each has its own; the pid file lists them), and Airflow's or moto's by their command line
    (a session id is not reused while a process of it lives; the command line guards against a
    stale file)."""
    listed = [work / "ui.pid", work / "pids"]
    sessions = {int(line) for f in listed if f.exists() for line in f.read_text().split()}
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[3]) in sessions and fields[0] != "Z" and any(
            word in cmdline for word in (b"airflow", b"moto_server", str(work).encode())
        ):
            found.append(int(entry))
    return found


def stop(work: Path) -> list[str]:
    """Stop the background process (it stops everything it started), then what a killed one left;
    what was stopped."""
    stopped = []
    pid = _daemon_pid(work)
    if pid is not None:
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 120
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
        stopped.append(f"the local Airflow (pid {pid})")
    leftovers = _leftovers(work)
    for leftover in leftovers:
        with contextlib.suppress(ProcessLookupError):
            os.kill(leftover, signal.SIGKILL)
    if leftovers:
        stopped.append(f"{len(leftovers)} processes it left (pids {', '.join(map(str, leftovers))})")
    postgres = PostgresCluster(data_dir=work / "postgres" / "data")
    if postgres.running():
        postgres.stop()
        stopped.append("the PostgreSQL it left")
    for name in ("ui.pid", STATE_FILE):
        (work / name).unlink(missing_ok=True)
    if (work / "pids").exists():
        (work / "pids").write_text("")
    return stopped


def _unreachable_for_postgres(work: Path) -> Path | None:
    """As root, the first directory above ``work`` the postgres user cannot enter (PostgresCluster
    runs the server as that user)."""
    if os.geteuid() != 0:
        return None
    for directory in reversed(work.parents):
        info = directory.stat()
        if not info.st_mode & stat.S_IXOTH:
            return directory
    return None


def _busy(ports: Ports) -> list[str]:
    busy = []
    for name, port in ports.named().items():
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            # as the servers bind: a port whose last connections linger in TIME_WAIT is free to them
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                busy.append(f"{port} ({name})")
    return busy


def _print_running(running: dict[str, Any], work: Path, stop_command: str) -> None:
    ports = running["ports"]
    print(
        "",
        f"Airflow is running: {running['url']}",
        f"  user:     {running['user']}",
        f"  password: {running['password']}   (kept in {work / 'airflow' / PASSWORDS_FILE})",
        f"  DAGs:     {', '.join(running['dags'])} (unpaused when first parsed)",
        "  connections (in the metadata database): "
        "sitecore_cdp_default, cordial_default, adobe_aep_default, aws_default, cordial_delivery, warehouse",
        "  ports:    " + ", ".join(f"{name} {port}" for name, port in ports.items()),
        f"  logs:     {work / 'logs'}/<component>.log, task logs in {running['task_logs']}",
        f"Stop it:    {stop_command}",
        sep="\n",
    )
    if running["unparsed"]:
        print(f"Not parsed yet: {', '.join(running['unparsed'])} (see {work / 'logs' / 'dag-processor.log'})")
    for file, error in running["import_errors"].items():
        print(f"\nImport error in {file}:\n{error}")


def start(work: Path, dags_folder: Path, ports: Ports, stop_command: str, timeout: float = 900) -> int:
    work.mkdir(parents=True, exist_ok=True)
    state = work / STATE_FILE
    if _daemon_pid(work) is not None:
        if not state.exists():
            print(f"It is starting (its log: {work / 'logs' / 'ui.log'}); or stop it: {stop_command}")
            return 1
        print("Already running.")
        _print_running(json.loads(state.read_text()), work, stop_command)
        return 0
    stop(work)  # what a killed run left (nothing, usually)
    if not PostgresCluster.available():
        print(
            "The local Airflow's metadata database is PostgreSQL, whose server binaries (initdb, pg_ctl)"
            " are missing: install them (Debian/Ubuntu: sudo apt-get install -y postgresql) and run this"
            " again.",
            file=sys.stderr,
        )
        return 1
    unreachable = _unreachable_for_postgres(work)
    if unreachable is not None:
        print(
            "PostgreSQL runs as the user postgres (root may not run it), who cannot enter"
            f" {unreachable}: chmod o+x {unreachable}, or give --work-dir a directory it can reach.",
            file=sys.stderr,
        )
        return 1
    busy = _busy(ports)
    if busy:
        print(
            f"Ports in use: {', '.join(busy)}. Stop what uses them, or choose other ports with"
            f" --port-base N (N to N+5; now {ports.api}).",
            file=sys.stderr,
        )
        return 1
    (work / "logs").mkdir(exist_ok=True)
    log_path = work / "logs" / "ui.log"
    with open(log_path, "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "dev.deployment.ui", "--serve", "--work-dir", str(work),
             "--dags-folder", str(dags_folder), "--port-base", str(ports.api)],
            cwd=REPO,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a Ctrl-C or a closed terminal does not reach it
        )
    (work / "ui.pid").write_text(str(proc.pid))
    print(f"Starting Airflow in the background (its log: {log_path}); the first start takes a minute or two.")
    shown = log_path.stat().st_size
    deadline = time.monotonic() + timeout
    try:
        while not state.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                print(log_path.read_text(errors="replace")[shown:], end="", file=sys.stderr)
                print(f"The local Airflow did not start: its log is {log_path}", file=sys.stderr)
                stop(work)
                return 1
            with open(log_path, "rb") as f:  # its progress, as it comes
                f.seek(shown)
                new = f.read()
            shown += len(new)
            print(new.decode(errors="replace"), end="", flush=True)
            time.sleep(1)
    except KeyboardInterrupt:
        print("\nInterrupted: stopping what was started.", file=sys.stderr)
        stop(work)
        return 130
    with open(log_path, "rb") as f:
        f.seek(shown)
        print(f.read().decode(errors="replace"), end="")
    _print_running(json.loads(state.read_text()), work, stop_command)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m dev.deployment.ui",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--work-dir", type=Path, default=Path(".demo/ui"), help="its state and logs (default: .demo/ui)"
    )
    parser.add_argument(
        "--dags-folder", type=Path, default=REPO / "example_dags", help="the DAGs (default: example_dags/)"
    )
    parser.add_argument(
        "--port-base",
        type=int,
        default=DEFAULT_PORT_BASE,
        help="the api-server's port N, then PostgreSQL N+1, moto N+2, the sandbox N+3..N+5"
        f" (default {DEFAULT_PORT_BASE})",
    )
    parser.add_argument("--stop", action="store_true", help="stop it")
    parser.add_argument("--stop-command", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)  # the background process
    args = parser.parse_args(argv)
    if not 1024 <= args.port_base <= 65535 - 5:
        parser.error(f"--port-base: {args.port_base} is not a port from 1024 to 65530")
    work: Path = args.work_dir.resolve()
    ports = Ports.from_base(args.port_base)
    if args.serve:
        return serve(work, args.dags_folder.resolve(), ports)
    if args.stop:
        stopped = stop(work)
        print(f"Stopped {', '.join(stopped)}." if stopped else f"Nothing was running from {work}.")
        return 0
    stop_command = args.stop_command or f"{sys.executable} -m dev.deployment.ui --stop --work-dir {work}"
    return start(work, args.dags_folder.resolve(), ports, stop_command)


if __name__ == "__main__":
    sys.exit(main())
