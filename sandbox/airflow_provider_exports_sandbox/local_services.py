"""Start and stop the local services tests, the demo and the benchmark need beside the sandbox.

:class:`MotoServer` runs ``moto_server`` as S3 on a free loopback port; :class:`PostgresCluster`
runs a private PostgreSQL cluster (``initdb`` + ``pg_ctl``; as root through
``runuser -u postgres``, since root cannot run the server), throwaway unless given a data directory.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

__all__ = ["MotoServer", "PostgresCluster", "ServiceUnavailable", "free_port"]


class ServiceUnavailable(RuntimeError):
    """A local service's binaries are missing (callers may skip rather than fail)."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class MotoServer:
    """``moto_server`` in a subprocess, acting as S3 on ``127.0.0.1:<port>``."""

    def __init__(self, port: int | None = None, region: str = "us-east-1", detachable: bool = False) -> None:
        self.port = port
        self.region = region
        # A server the demo may leave running (``release``) gets its own session, so a Ctrl-C in
        # the shell that started it does not stop it.
        self.detachable = detachable
        self._proc: subprocess.Popen[bytes] | None = None

    @staticmethod
    def executable() -> str:
        beside = Path(sys.executable).with_name("moto_server")
        if beside.exists():
            return str(beside)
        found = shutil.which("moto_server")
        if found is None:
            raise ServiceUnavailable("moto_server not found: pip install 'moto[server]'")
        return found

    @property
    def endpoint_url(self) -> str:
        if self.port is None:
            raise RuntimeError("moto_server is not started")
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> MotoServer:
        if self._proc is not None:
            return self
        if self.port is None:
            self.port = free_port()
        self._proc = subprocess.Popen(
            [self.executable(), "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
            start_new_session=self.detachable,
        )
        deadline = time.monotonic() + timeout
        while True:
            if self._proc.poll() is not None:
                self._proc = None
                raise RuntimeError(f"moto_server exited early (port {self.port} busy?)")
            try:
                with urllib.request.urlopen(f"{self.endpoint_url}/moto-api/", timeout=1):
                    break
            except (urllib.error.URLError, OSError):
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError("moto_server did not become ready") from None
                time.sleep(0.1)
        return self

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)

    def release(self) -> int:
        """Leave the server running after this process ends; returns its pid (stop it with SIGTERM)."""
        proc, self._proc = self._proc, None
        if proc is None:
            raise RuntimeError("moto_server is not started")
        return proc.pid

    def reset(self) -> None:
        """Drop every bucket and object (moto's reset API)."""
        req = urllib.request.Request(f"{self.endpoint_url}/moto-api/reset", method="POST")
        with urllib.request.urlopen(req, timeout=10):
            pass

    def client(self) -> Any:
        """A boto3 S3 client pointed at this server."""
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=self.region,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    def airflow_conn(self) -> dict[str, Any]:
        """The ``aws`` Connection (JSON form) that points the amazon provider at this server."""
        return {
            "conn_type": "aws",
            "login": "testing",
            "password": "testing",
            "extra": {"endpoint_url": self.endpoint_url, "region_name": self.region},
        }

    def airflow_conn_env(self, conn_id: str = "aws_default") -> dict[str, str]:
        """``{"AIRFLOW_CONN_AWS_DEFAULT": <json>}`` (or the given conn id)."""
        return {f"AIRFLOW_CONN_{conn_id.upper()}": json.dumps(self.airflow_conn())}

    def __enter__(self) -> MotoServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def _pg_bin(name: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)
    if candidates:
        return candidates[0]
    raise ServiceUnavailable(f"PostgreSQL binary {name!r} not found (apt-get install -y postgresql)")


class PostgresCluster:
    """A private PostgreSQL cluster, trust auth, on a loopback port (a free one unless given).

    Throwaway (a temp dir, removed by :meth:`stop`) unless ``data_dir`` is given: then it is
    created there once, kept by :meth:`stop` and started again from it.
    """

    def __init__(
        self,
        port: int | None = None,
        base_dir: Path | None = None,
        user: str = "postgres",
        data_dir: Path | None = None,
    ) -> None:
        self.port = port
        self.user = user
        self.database = "postgres"
        self._base_dir = base_dir
        self._root: Path | None = None
        self.data_dir: Path | None = data_dir
        self._keep = data_dir is not None
        self._started = False

    @staticmethod
    def available() -> bool:
        try:
            _pg_bin("initdb")
            _pg_bin("pg_ctl")
        except ServiceUnavailable:
            return False
        return True

    def _run(self, args: list[str]) -> None:
        cmd = list(args)
        if os.geteuid() == 0:
            # Root cannot run the server: run the tools as the postgres user (TOOLCHAIN.md).
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        result = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise RuntimeError(
                f"{' '.join(args[:2])} failed: {result.stderr.strip() or result.stdout.strip()}"
            )

    def start(self) -> PostgresCluster:
        if self._started:
            return self
        initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
        if self.port is None:
            self.port = free_port()
        if self.data_dir is None:
            self._root = Path(tempfile.mkdtemp(prefix="exports-pg-", dir=self._base_dir))
            self.data_dir = self._root / "data"
        else:
            self._root = self.data_dir.parent
            self._root.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            # The data dir's parent must belong to the postgres user.
            shutil.chown(self._root, user="postgres", group="postgres")
        if not (self.data_dir / "PG_VERSION").exists():
            self._run([initdb, "-D", str(self.data_dir), "-U", self.user, "--auth=trust", "-E", "UTF8"])
        options = f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.data_dir} -c fsync=off"
        log = self._root / "postgres.log"
        self._run([pg_ctl, "-D", str(self.data_dir), "-l", str(log), "-w", "-o", options, "start"])
        self._started = True
        return self

    def running(self) -> bool:
        """Whether a server runs on the data directory (also one this object did not start)."""
        if self.data_dir is None or not (self.data_dir / "postmaster.pid").exists():
            return False
        try:
            self._run([_pg_bin("pg_ctl"), "-D", str(self.data_dir), "status"])
        except RuntimeError:  # pg_ctl status exits 3 when no server runs there
            return False
        return True

    def restart(self, mode: str = "immediate") -> None:
        """``pg_ctl restart -m <mode>``: ``immediate`` drops every connection without a clean
        shutdown (a crash; in-flight transactions roll back on recovery), on the same port."""
        if not self._started or self.data_dir is None:
            raise RuntimeError("the cluster is not running")
        assert self._root is not None
        # -l as at start: a server writing to pg_ctl's captured stdout would hold the pipe open
        log = self._root / "postgres.log"
        self._run([_pg_bin("pg_ctl"), "-D", str(self.data_dir), "-l", str(log), "-m", mode, "-w", "restart"])

    def stop(self) -> None:
        """Stop the server; a kept data directory's server is stopped even if another process
        started it (one left behind by a process that was killed)."""
        if (self._started or self._keep) and self.running():
            assert self.data_dir is not None
            self._run([_pg_bin("pg_ctl"), "-D", str(self.data_dir), "-m", "fast", "-w", "stop"])
        self._started = False
        if self._root is not None and not self._keep:
            shutil.rmtree(self._root, ignore_errors=True)
            self._root = None

    @property
    def host(self) -> str:
        return "127.0.0.1"

    @property
    def uri(self) -> str:
        return f"postgresql://{self.user}@{self.host}:{self.port}/{self.database}"

    def airflow_conn_json(self) -> str:
        """The ``postgres`` Connection in Airflow's JSON form."""
        return json.dumps(
            {
                "conn_type": "postgres",
                "host": self.host,
                "port": self.port,
                "login": self.user,
                "password": "",
                "schema": self.database,
            }
        )

    def airflow_conn(self, conn_id: str = "postgres_default") -> dict[str, str]:
        """``{"AIRFLOW_CONN_<CONN_ID>": <json>}`` for this cluster."""
        return {f"AIRFLOW_CONN_{conn_id.upper()}": self.airflow_conn_json()}

    def connect(self) -> Any:
        """A DB-API connection (psycopg2 if installed, else psycopg 3)."""
        try:
            import psycopg2

            return psycopg2.connect(self.uri)
        except ImportError:
            import psycopg

            return psycopg.connect(self.uri)

    def __enter__(self) -> PostgresCluster:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
