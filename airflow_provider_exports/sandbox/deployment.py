"""A real Airflow deployment on this machine, the example DAGs run through it, and faults under it.

``python -m airflow_provider_exports.sandbox.deployment`` (what ``bash .ci/deployment`` runs) starts,
all on loopback: a private PostgreSQL (Airflow's metadata database and the ``warehouse`` the DAGs
load into), Redis (the Celery broker), moto (S3), the vendor sandbox (in this process, so the
checks can read what the vendors saw), and Airflow's api-server, scheduler, DAG processor,
triggerer and two Celery workers as separate processes. It unpauses the example DAGs so the
scheduler runs them, prints each run's task states, what landed and where the logs are, then
injects faults, each in runs of its own, and checks that nothing was lost or doubled
(``--executor local``: LocalExecutor, no Redis and no workers, every fault but ``worker-kill``):

- ``worker-kill``: the Celery worker running a Sitecore transfer is killed (``SIGKILL``, its whole
  process tree) while the files stream in (the sandbox throttles the downloads);
- ``triggerer-restart``: the triggerer is killed and started again while the Cordial and AEP export
  waits are deferred;
- ``scheduler-restart``: the scheduler is killed and started again while a run is in flight (under
  LocalExecutor its running tasks die with it and are retried);
- ``clear-aep``: the AEP export task is cleared while its job runs at Adobe.

It prints a results table and exits non-zero when a check fails. Everything it started is stopped
on the way out (also on Ctrl-C or SIGTERM); logs stay under ``--work-dir``.

The example DAGs are not changed for this: a cluster policy (``airflow_local_settings.py``, the
way a platform team tunes DAGs it does not own) shortens their retry delays and poll intervals,
as the demo does, because the sandbox's jobs take seconds rather than minutes.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from airflow_provider_exports.sandbox.local_services import MotoServer, PostgresCluster, free_port

BUCKET = "lake"
DAG_IDS = ("adobe_profile_export", "cordial_audience_trends", "sitecore_cdp_audience_export")
SITECORE_FILES = "/sitecore-cdp-exports/*"
AEP_JOBS = "/data/core/ups/export/jobs"
CORDIAL_CREATES = ("/v2/audiencetrendsexport", "/v2/contactexports")
TERMINAL_RUN_STATES = ("success", "failed")
#: Each Cordial and AEP job status lasts this long. A trigger that fires a second or two after its
#: task deferred races the scheduler's handling of the deferring worker's exit, and Airflow 3.3
#: fails such a task (apache/airflow#72716: the task retries, and reattaches to its job).
BASE_JOB_SECONDS = 10.0

#: The cluster policy the deployment installs: the example DAGs' production waits are minutes.
LOCAL_SETTINGS = '''"""Cluster policy of the deployment check: shorter waits than the example DAGs' production ones."""
from datetime import timedelta


def task_policy(task):
    task.retry_delay = timedelta(seconds=2)
    if hasattr(task, "poll_interval"):
        task.poll_interval = 2.0
    if hasattr(task, "poke_interval"):
        task.poke_interval = 2.0
'''


def log(message: str) -> None:
    print(f"[{datetime.now(timezone.utc):%H:%M:%S}] {message}", flush=True)


class CheckFailed(RuntimeError):
    """The deployment did not reach a state a check waits for."""


# -- processes -----------------------------------------------------------------------------------


def _children() -> dict[int, list[int]]:
    """Parent pid -> child pids, from /proc."""
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        tree.setdefault(ppid, []).append(int(entry))
    return tree


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its descendants."""
    tree, found, todo = _children(), [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(tree.get(current, []))
    return found


@dataclass
class Component:
    """One long-running process of the deployment, in a session of its own, logging to a file."""

    name: str
    argv: list[str]
    log_path: Path
    env: dict[str, str]
    pid_file: Path
    proc: subprocess.Popen[bytes] | None = None
    restarts: int = 0

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as out:
            out.write(f"\n=== {datetime.now(timezone.utc).isoformat()} {' '.join(self.argv)}\n".encode())
            out.flush()
            self.proc = subprocess.Popen(
                self.argv, stdout=out, stderr=subprocess.STDOUT, env=self.env, start_new_session=True
            )
        with open(self.pid_file, "a") as pids:  # for the shell's trap, should this process die hard
            pids.write(f"{self.proc.pid}\n")

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """``kill -9`` the process and every descendant at once (a machine lost, not a shutdown)."""
        if self.proc is None:
            return
        for pid in process_tree(self.proc.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def restart(self) -> None:
        self.kill()
        self.restarts += 1
        self.start()

    def terminate(self) -> None:
        """Ask the process group to shut down (``SIGTERM``), without waiting."""
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)

    def stop(self, timeout: float = 15.0) -> None:
        """``SIGTERM``, up to ``timeout`` seconds for a clean exit, then ``kill -9`` what is left."""
        if self.proc is None:
            return
        self.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout)
        self.kill()  # what a clean exit left behind (task processes, pool children)
        self.proc = None


# -- the deployment ------------------------------------------------------------------------------


@dataclass
class Deployment:
    """Everything the check starts; :meth:`stop` ends all of it."""

    work: Path
    dags_folder: Path
    executor: str
    components: dict[str, Component] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    api_url: str = ""
    token: str = ""
    sandbox: Any = None
    moto: MotoServer | None = None
    postgres: PostgresCluster | None = None
    s3: Any = None

    @property
    def pid_file(self) -> Path:
        return self.work / "pids"

    @property
    def airflow_home(self) -> Path:
        return self.work / "airflow"

    @property
    def task_logs(self) -> Path:
        return self.airflow_home / "logs"

    def airflow(self, *args: str) -> list[str]:
        return [str(Path(sys.executable).with_name("airflow")), *args]

    # -- start

    def start(self) -> None:
        self.work.mkdir(parents=True, exist_ok=True)
        self.pid_file.write_text("")
        t0 = time.monotonic()
        self.postgres = PostgresCluster().start()
        with contextlib.closing(self.postgres.connect()) as conn:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute("CREATE DATABASE airflow")
                cur.execute("CREATE DATABASE warehouse")
        log(f"PostgreSQL on 127.0.0.1:{self.postgres.port} (databases airflow, warehouse)")

        from airflow_provider_exports.sandbox import Sandbox
        from airflow_provider_exports.sandbox.demo import seed_demo

        self.moto = MotoServer().start()
        self.s3 = self.moto.client()
        self.s3.create_bucket(Bucket=BUCKET)
        self.sandbox = Sandbox(cache_dir=self.work / "cache").start()
        seed_demo(self.sandbox)
        self.sandbox.cordial.job_seconds = self.sandbox.adobe.job_seconds = BASE_JOB_SECONDS
        self.sandbox.cordial.s3_endpoint_url = self.moto.endpoint_url
        log(
            "sandbox: "
            + ", ".join(f"{n} {s.url}" for n, s in self.sandbox.servers.items())
            + f"; moto (S3): {self.moto.endpoint_url}"
        )
        self._configure()
        if self.executor == "celery":
            redis_port = free_port()
            (self.work / "redis").mkdir(exist_ok=True)
            redis = [shutil.which("redis-server") or "redis-server", "--port", str(redis_port)]
            options = [
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.work / "redis"),
            ]
            self._add("redis", [*redis, *options]).start()
            _wait_for(lambda: _redis_ping(redis_port), 20, "redis-server answers PING")
            self.env["AIRFLOW__CELERY__BROKER_URL"] = f"redis://127.0.0.1:{redis_port}/0"
            log(f"Redis on 127.0.0.1:{redis_port}")

        log("airflow db migrate")
        with open(self.work / "logs" / "db-migrate.log", "wb") as out:
            migrate = subprocess.run(
                self.airflow("db", "migrate"), env=self.env, stdout=out, stderr=subprocess.STDOUT, check=False
            )
        if migrate.returncode != 0:
            raise CheckFailed(f"airflow db migrate failed: see {self.work / 'logs' / 'db-migrate.log'}")

        api_port = free_port()
        self.api_url = f"http://127.0.0.1:{api_port}"
        self.env["AIRFLOW__API__BASE_URL"] = self.api_url
        self.env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] = f"{self.api_url}/execution/"
        self._add(
            "api-server",
            self.airflow("api-server", "--host", "127.0.0.1", "--port", str(api_port), "-w", "1"),
        )
        self._add("scheduler", self.airflow("scheduler", "--skip-serve-logs"))
        self._add("dag-processor", self.airflow("dag-processor"))
        self._add("triggerer", self.airflow("triggerer", "--skip-serve-logs"))
        if self.executor == "celery":
            for n in (1, 2):
                self._add(
                    f"worker-{n}",
                    self.airflow(
                        "celery",
                        "worker",
                        "--skip-serve-logs",
                        "--concurrency",
                        "2",
                        "--celery-hostname",
                        f"worker-{n}@%h",
                        "--without-gossip",
                        "--without-mingle",
                    ),
                )
        for name, component in self.components.items():
            if name != "redis":
                component.start()
        _wait_for(self._api_ready, 600, "the api-server answers")
        self.token = self.api("GET", "/auth/token")["access_token"]
        log(
            f"Airflow ({self.executor} executor): api-server {self.api_url}, "
            + ", ".join(n for n in self.components if n != "redis")
            + f"; up in {time.monotonic() - t0:.0f} s"
        )

    def _add(self, name: str, argv: list[str]) -> Component:
        component = Component(name, argv, self.work / "logs" / f"{name}.log", self.env, self.pid_file)
        self.components[name] = component
        return component

    def _configure(self) -> None:
        assert self.postgres is not None and self.moto is not None
        home = self.airflow_home
        (home / "config").mkdir(parents=True, exist_ok=True)
        (home / "config" / "airflow_local_settings.py").write_text(LOCAL_SETTINGS)
        (self.work / "logs").mkdir(exist_ok=True)
        pg = f"postgres@127.0.0.1:{self.postgres.port}"
        from cryptography.fernet import Fernet

        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("AIRFLOW__", "AIRFLOW_CONN_", "AIRFLOW_VAR_"))
        }
        env.update(
            {
                "AIRFLOW_HOME": str(home),
                "AIRFLOW__CORE__DAGS_FOLDER": str(self.dags_folder),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor" if self.executor == "celery" else "LocalExecutor",
                "AIRFLOW__CORE__PARALLELISM": "8" if self.executor == "celery" else "4",
                "AIRFLOW__CORE__FERNET_KEY": Fernet.generate_key().decode(),
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"postgresql+psycopg2://{pg}/airflow",
                "AIRFLOW__CELERY__RESULT_BACKEND": f"db+postgresql+psycopg2://{pg}/airflow",
                "AIRFLOW__CELERY__WORKER_CONCURRENCY": "2",
                "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
                "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32),
                "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(self.task_logs),
                "AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE": "True",
                # Workers wait up to 5 s for the execution API by default: too short on a busy 2-core machine.
                "AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT": "60",
                # Parsing a DAG file took over the default 30 s there too (the task then fails).
                "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": "120",
                "AIRFLOW__DAG_PROCESSOR__DAG_FILE_PROCESSOR_TIMEOUT": "180",
                # A killed worker's task is noticed after 30 s without a heartbeat (default 300).
                "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "30",
                "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "5",
                # A killed triggerer's triggers move to a healthy one after 15 s (default 30).
                "AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD": "15",
                "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_THRESHOLD": "15",
                # A dead scheduler's running tasks are reset by the next scheduler's orphan check,
                # every 300 s by default: a LocalExecutor task killed with its scheduler waited that
                # long (331 s measured) before its retry.
                "AIRFLOW__SCHEDULER__ORPHANED_TASKS_CHECK_INTERVAL": "20",
                "AIRFLOW_VAR_EXPORTS_BUCKET": BUCKET,
                "AIRFLOW_CONN_WAREHOUSE": json.dumps(
                    {
                        "conn_type": "postgres",
                        "host": "127.0.0.1",
                        "port": self.postgres.port,
                        "login": "postgres",
                        "schema": "warehouse",
                    }
                ),
                "AIRFLOW_CONN_CORDIAL_DELIVERY": json.dumps(
                    {
                        **self.moto.airflow_conn(),
                        "login": "cordial-demo-key",
                        "password": "cordial-demo-secret",
                    }
                ),
            }
        )
        env.update(self.sandbox.airflow_env())
        env.update(self.moto.airflow_conn_env())
        self.env = env

    def _api_ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.api_url}/api/v2/monitor/health", timeout=5) as resp:
                return bool(resp.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    # -- stop

    def stop(self) -> None:
        # Airflow's components first, all at once (one by one took minutes on a busy machine),
        # then Redis, the sandbox, moto and PostgreSQL.
        airflow = [c for name, c in self.components.items() if name != "redis"]
        for component in airflow:
            component.terminate()
        deadline = time.monotonic() + 20
        for component in [*airflow, *([self.components["redis"]] if "redis" in self.components else [])]:
            try:
                component.stop(timeout=max(0.0, deadline - time.monotonic()))
            except Exception as exc:  # keep stopping the others
                log(f"stopping {component.name}: {exc}")
        if self.sandbox is not None:
            self.sandbox.stop()
        if self.moto is not None:
            self.moto.stop()
        if self.postgres is not None:
            self.postgres.stop()
        if self.pid_file.exists():
            self.pid_file.write_text("")

    # -- the REST API and the metadata database

    def api(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(f"{self.api_url}{path}", data=data, method=method)
        req.add_header("Content-Type", "application/json")
        if self.token:
            req.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(req, timeout=60) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as exc:
            raise CheckFailed(f"{method} {path}: {exc.code} {exc.read()[:500]!r}") from None
        return json.loads(raw) if raw else None

    @contextlib.contextmanager
    def db(self) -> Iterator[Any]:
        import psycopg2

        assert self.postgres is not None
        conn = psycopg2.connect(f"{self.postgres.uri.rsplit('/', 1)[0]}/airflow")
        conn.autocommit = True
        try:
            yield conn.cursor()
        finally:
            conn.close()

    def task_instances(self, dag_id: str, run_id: str) -> dict[str, dict[str, Any]]:
        with self.db() as cur:
            cur.execute(
                "SELECT task_id, state, try_number, pid, hostname FROM task_instance"
                " WHERE dag_id = %s AND run_id = %s AND map_index = -1",
                (dag_id, run_id),
            )
            return {
                row[0]: {"state": row[1], "try_number": row[2], "pid": row[3], "hostname": row[4]}
                for row in cur.fetchall()
            }

    def run_state(self, dag_id: str, run_id: str) -> str | None:
        with self.db() as cur:
            cur.execute("SELECT state FROM dag_run WHERE dag_id = %s AND run_id = %s", (dag_id, run_id))
            row = cur.fetchone()
            return None if row is None else str(row[0])

    def xcom(self, dag_id: str, run_id: str, task_id: str, key: str) -> Any:
        with self.db() as cur:
            cur.execute(
                "SELECT value FROM xcom WHERE dag_id = %s AND run_id = %s AND task_id = %s AND key = %s",
                (dag_id, run_id, task_id, key),
            )
            row = cur.fetchone()
        if row is None:
            return None
        value = row[0]
        return json.loads(value) if isinstance(value, (str, bytes)) else value

    def secrets(self) -> set[str]:
        """Every credential the deployment's connections hold (passwords, and extras whose name says
        secret, key or token)."""
        found: set[str] = set()
        for name, value in self.env.items():
            if not name.startswith("AIRFLOW_CONN_") or not value.startswith("{"):
                continue
            conn = json.loads(value)
            extra = conn.get("extra") or {}
            if isinstance(extra, str):
                extra = json.loads(extra) if extra.startswith("{") else {}
            fields = {"password": conn.get("password"), **extra}
            for key, secret in fields.items():
                if (
                    isinstance(secret, str)
                    and len(secret) >= 6
                    and any(word in key.lower() for word in ("password", "secret", "key", "token"))
                ):
                    found.add(secret)
        return found

    def trigger_table_leaks(self) -> tuple[int, list[str]]:
        """The triggers in the metadata database, and the connection credentials any of their
        kwargs holds, decrypted with the deployment's Fernet key as the triggerer reads them."""
        from cryptography.fernet import Fernet

        fernet = Fernet(self.env["AIRFLOW__CORE__FERNET_KEY"].encode())
        with self.db() as cur:
            cur.execute("SELECT kwargs FROM trigger")
            stored = [str(r[0]) for r in cur.fetchall()]
        texts = [s if s.startswith("{") else fernet.decrypt(s.encode()).decode() for s in stored]
        secrets_ = self.secrets()
        return len(texts), sorted({f"{secret[:3]}..." for secret in secrets_ for t in texts if secret in t})

    def triggerer_ids(self) -> tuple[list[int], int | None]:
        """The triggerer ids holding triggers now, and the newest running triggerer job's id."""
        with self.db() as cur:
            cur.execute("SELECT DISTINCT triggerer_id FROM trigger WHERE triggerer_id IS NOT NULL")
            holders = sorted(int(r[0]) for r in cur.fetchall())
            cur.execute("SELECT max(id) FROM job WHERE job_type = 'TriggererJob' AND state = 'running'")
            row = cur.fetchone()
        return holders, (None if row is None or row[0] is None else int(row[0]))

    def warehouse_count(self, table: str) -> int | None:
        import psycopg2

        assert self.postgres is not None
        conn = psycopg2.connect(f"{self.postgres.uri.rsplit('/', 1)[0]}/warehouse")
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT to_regclass(%s)", (table,))
                row = cur.fetchone()
                if row is None or row[0] is None:
                    return None
                cur.execute(f'SELECT count(*) FROM "{table}"')
                counted = cur.fetchone()
                return None if counted is None else int(counted[0])
        finally:
            conn.close()

    # -- runs

    def wait_for_dags(self, timeout: float = 600) -> None:
        def parsed() -> bool:
            dags = {d["dag_id"] for d in self.api("GET", "/api/v2/dags?limit=100")["dags"]}
            return set(DAG_IDS) <= dags

        _wait_for(parsed, timeout, f"the DAG processor parses {', '.join(DAG_IDS)}")

    def trigger(self, dag_id: str, run_id: str, logical_day: date) -> str:
        logical = datetime(logical_day.year, logical_day.month, logical_day.day, tzinfo=timezone.utc)
        self.api(
            "POST",
            f"/api/v2/dags/{dag_id}/dagRuns",
            {"dag_run_id": run_id, "logical_date": logical.isoformat().replace("+00:00", "Z")},
        )
        return run_id

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float = 600) -> str:
        state: dict[str, str | None] = {"state": None}

        def done() -> bool:
            state["state"] = self.run_state(dag_id, run_id)
            return state["state"] in TERMINAL_RUN_STATES

        _wait_for(done, timeout, f"run {dag_id}/{run_id} ends", poll=2)
        return str(state["state"])

    def wait_for_task(
        self, dag_id: str, run_id: str, task_id: str, states: tuple[str, ...], timeout: float = 300
    ) -> dict[str, Any]:
        seen: dict[str, Any] = {}

        def reached() -> bool:
            seen.update(self.task_instances(dag_id, run_id).get(task_id) or {})
            return seen.get("state") in states

        _wait_for(reached, timeout, f"{dag_id}/{run_id} {task_id} is {'/'.join(states)}", poll=0.5)
        return seen

    def describe_run(self, dag_id: str, run_id: str) -> list[str]:
        tis = self.task_instances(dag_id, run_id)
        parts = [
            f"{task}={ti['state']}" + (f" (try {ti['try_number']})" if (ti["try_number"] or 0) > 1 else "")
            for task, ti in sorted(tis.items())
        ]
        return [f"  {dag_id} / {run_id}: {self.run_state(dag_id, run_id)}", f"    {', '.join(parts)}"]

    def run_logs(self, dag_id: str, run_id: str) -> Path:
        return self.task_logs / f"dag_id={dag_id}" / f"run_id={run_id}"

    # -- what landed

    def objects(self, prefix: str) -> dict[str, int]:
        found: dict[str, int] = {}
        paginator = self.s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=BUCKET, Prefix=prefix):
            for obj in page.get("Contents", []):
                found[obj["Key"]] = int(obj["Size"])
        return found

    def manifest(self, prefix: str) -> dict[str, Any] | None:
        try:
            body = self.s3.get_object(Bucket=BUCKET, Key=f"{prefix}_manifest.json")["Body"].read()
        except self.s3.exceptions.NoSuchKey:
            return None
        result: dict[str, Any] = json.loads(body)
        return result

    def one_copy(self, prefix: str) -> tuple[bool, str]:
        """The objects under ``prefix`` are exactly the manifest and the files it lists, each whole."""
        manifest = self.manifest(prefix)
        if manifest is None:
            return False, f"no manifest under s3://{BUCKET}/{prefix}"
        objects = self.objects(prefix)
        listed = {f["location"]: f for f in manifest["files"]}
        extra = sorted(set(objects) - set(listed) - {f"{prefix}_manifest.json"})
        missing = sorted(set(listed) - set(objects))
        bad = []
        for key, entry in listed.items():
            if key in objects:
                body = self.s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
                stored = entry.get("stored_bytes") or entry["bytes"]
                if len(body) != stored or (
                    entry.get("stored_bytes") in (None, entry["bytes"])
                    and hashlib.sha256(body).hexdigest() != entry["sha256"]
                ):
                    bad.append(key)
        ok = not extra and not missing and not bad and manifest["file_count"] == len(listed)
        detail = (
            f"{len(listed)} files + manifest, {sum(objects.get(k, 0) for k in listed):,} bytes"
            + (f"; EXTRA {extra}" if extra else "")
            + (f"; MISSING {missing}" if missing else "")
            + (f"; WRONG BYTES {bad}" if bad else "")
        )
        return ok, detail

    def open_uploads(self, prefix: str) -> int:
        """Multipart uploads left open under ``prefix`` (invisible; a lifecycle rule clears them)."""
        return len(self.s3.list_multipart_uploads(Bucket=BUCKET, Prefix=prefix).get("Uploads", []))

    def landed_report(self) -> list[str]:
        lines = []
        objects = self.objects("")
        lines.append(f"s3://{BUCKET}/ (moto): {len(objects)} objects, {sum(objects.values()):,} bytes")
        for key, size in sorted(objects.items()):
            lines.append(f"  {size:>10,}  {key}")
            if key.endswith("_manifest.json"):
                m = self.manifest(key[: -len("_manifest.json")]) or {}
                lines.append(
                    f"              manifest: {m.get('vendor')} export {m.get('export_ref')}, job {m.get('job_ref')},"
                    f" {m.get('file_count')} files, {m.get('total_bytes', 0):,} bytes"
                )
        lines.append("warehouse (PostgreSQL database 'warehouse'):")
        for table in ("loyalty_members", "cordial_audience_trends", "cordial_loyal_members", "aep_profiles"):
            lines.append(f"  {table}: {self.warehouse_count(table)} rows")
        return lines


def _redis_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def _wait_for(predicate: Callable[[], bool], timeout: float, what: str, poll: float = 1.0) -> None:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while True:
        try:
            if predicate():
                return
        except CheckFailed:
            raise
        except Exception as exc:  # a server still starting: keep looking until the deadline
            last = exc
        else:
            last = None
        if time.monotonic() > deadline:
            raise CheckFailed(
                f"timed out after {timeout:.0f} s waiting until {what}" + (f" ({last})" if last else "")
            )
        time.sleep(poll)


# -- the checks ----------------------------------------------------------------------------------


@dataclass
class Result:
    fault: str
    expected: str
    observed: str
    passed: bool
    seconds: float = 0.0


def _sitecore_prefix(day: date) -> str:
    return f"raw/sitecore/daily_loyalty_members/ds={day.isoformat()}/"


def _aep_prefix(day: date) -> str:
    return f"raw/aep/profiles/ds={day.isoformat()}/"


def scheduled_runs(dep: Deployment) -> tuple[Result, dict[str, str]]:
    """Unpause the example DAGs: the scheduler creates each one's latest run; wait for them."""
    t0 = time.monotonic()
    for dag_id in DAG_IDS:
        dep.api("PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": False})
    runs: dict[str, str] = {}

    def created() -> bool:
        for dag_id in DAG_IDS:
            found = dep.api("GET", f"/api/v2/dags/{dag_id}/dagRuns?limit=5")["dag_runs"]
            if found:
                runs[dag_id] = found[0]["dag_run_id"]
        return len(runs) == len(DAG_IDS)

    _wait_for(created, 300, "the scheduler creates the example DAGs' runs", poll=2)
    states = {dag_id: dep.wait_for_run(dag_id, run_id) for dag_id, run_id in runs.items()}
    ok = all(state == "success" for state in states.values())
    observed = ", ".join(f"{d.split('_')[0]} {s}" for d, s in sorted(states.items()))
    return Result("none: scheduled runs", "3 runs succeed", observed, ok, time.monotonic() - t0), runs


def worker_kill(dep: Deployment, day: date) -> Result:
    """SIGKILL the worker (its whole process tree) while the Sitecore files stream into S3."""
    t0 = time.monotonic()
    dag_id, run_id = "sitecore_cdp_audience_export", "fault-worker-kill"
    sitecore = dep.sandbox.sitecore
    # The first try's three downloads crawl (about 30 s); the retry's go at full speed.
    sitecore.faults.throttle(SITECORE_FILES, bytes_per_second=4096, times=3, method="GET")
    seen_before = len(sitecore.requests_to(SITECORE_FILES, "GET"))
    dep.trigger(dag_id, run_id, day)
    ti = dep.wait_for_task(dag_id, run_id, "land", ("running",))
    _wait_for(
        lambda: len(sitecore.requests_to(SITECORE_FILES, "GET")) >= seen_before + 3,
        60,
        "the transfer's downloads are in flight",
        poll=0.2,
    )
    time.sleep(2)  # some bytes in, no file complete
    committed_before_kill = dep.manifest(_sitecore_prefix(day)) is not None
    owner = _owner(dep, int(ti["pid"]))
    if owner is None or not owner.name.startswith("worker"):
        raise CheckFailed(f"no Celery worker runs the task's process {ti['pid']} (owner: {owner})")
    killed = owner.name
    log(
        f"kill -9 {owner.name} (pid {owner.proc.pid if owner.proc else '?'} and its tree), running land try 1"
    )
    owner.kill()
    owner.start()  # the machine comes back; the retry may land on either worker
    state = dep.wait_for_run(dag_id, run_id, timeout=600)
    tis = dep.task_instances(dag_id, run_id)
    land_try = tis.get("land", {}).get("try_number")
    copy_ok, copy_detail = dep.one_copy(_sitecore_prefix(day))
    manifest = dep.manifest(_sitecore_prefix(day)) or {}
    expected_files = sitecore.expected_files(manifest["job_ref"]) if manifest.get("job_ref") else []
    manifest_ok = sorted((f["name"], f["bytes"], f["sha256"]) for f in manifest.get("files", [])) == sorted(
        (name, size, sha) for name, size, sha, _ in expected_files
    )
    rows = dep.warehouse_count("loyalty_members")
    expected_rows = sum(r for *_, r in expected_files)
    ok = (
        not committed_before_kill
        and state == "success"
        and (land_try or 0) >= 2
        and copy_ok
        and manifest_ok
        and rows == expected_rows
    )
    observed = (
        f"killed {killed} {'AFTER' if committed_before_kill else 'before'} the manifest; run {state}, land try {land_try}; {copy_detail}; manifest "
        f"{'= job files' if manifest_ok else 'WRONG'}; loyalty_members {rows} rows;"
        f" {dep.open_uploads(_sitecore_prefix(day))} multipart uploads left open"
    )
    return Result(
        "worker killed mid-transfer",
        f"land retried; one copy of {len(expected_files)} files, manifest = job, {expected_rows} rows",
        observed,
        ok,
        time.monotonic() - t0,
    )


def _owner(dep: Deployment, pid: int) -> Component | None:
    """The component whose process tree holds ``pid``."""
    for component in dep.components.values():
        if component.proc is not None and pid in process_tree(component.proc.pid):
            return component
    return None


def triggerer_restart(dep: Deployment, day: date) -> Result:
    """Kill the triggerer while the Cordial and AEP waits are deferred; start a new one."""
    t0 = time.monotonic()
    cordial, adobe = dep.sandbox.cordial, dep.sandbox.adobe
    cordial.job_seconds = 20.0  # Scheduled 20 s, then Processing 20 s
    adobe.job_seconds = 20.0  # NEW 20 s, then PROCESSING 20 s
    posts_before = sum(len(cordial.requests_to(p, "POST")) for p in CORDIAL_CREATES)
    aep_before = len(adobe.requests_to(AEP_JOBS, "POST"))
    cordial_jobs_before = len(cordial.job_ids())
    runs = {
        "cordial_audience_trends": dep.trigger("cordial_audience_trends", "fault-triggerer-restart", day),
        "adobe_profile_export": dep.trigger("adobe_profile_export", "fault-triggerer-restart", day),
    }
    waits = {
        "cordial_audience_trends": ("export_trends", "export_members"),
        "adobe_profile_export": ("export_profiles",),
    }
    for dag_id, tasks in waits.items():
        for task in tasks:
            dep.wait_for_task(dag_id, runs[dag_id], task, ("deferred",))
    cordial.job_seconds = adobe.job_seconds = BASE_JOB_SECONDS
    triggers, leaked = dep.trigger_table_leaks()
    holders_before, old_job = dep.triggerer_ids()
    log(f"kill -9 triggerer (job {old_job}) with 3 deferred waits; starting a new one")
    dep.components["triggerer"].restart()
    moved: dict[str, Any] = {}

    def taken_over() -> bool:
        holders, newest = dep.triggerer_ids()
        moved.update(holders=holders, newest=newest)
        return newest not in (None, old_job) and (not holders or holders == [newest])

    _wait_for(taken_over, 120, "a new triggerer holds the triggers", poll=1)
    states = {dag_id: dep.wait_for_run(dag_id, run_id, timeout=600) for dag_id, run_id in runs.items()}
    posts = sum(len(cordial.requests_to(p, "POST")) for p in CORDIAL_CREATES) - posts_before
    aep_posts = len(adobe.requests_to(AEP_JOBS, "POST")) - aep_before
    cordial_jobs = len(cordial.job_ids()) - cordial_jobs_before
    tries = {
        f"{t}": dep.task_instances(d, runs[d]).get(t, {}).get("try_number")
        for d, ts in waits.items()
        for t in ts
    }
    copy_ok, copy_detail = dep.one_copy(_aep_prefix(day))
    ok = (
        all(s == "success" for s in states.values())
        and posts == 2
        and cordial_jobs == 2
        and aep_posts == 1
        and copy_ok
        and triggers >= 3
        and not leaked
    )
    observed = (
        f"{triggers} triggers in the table, {'credentials ' + str(leaked) if leaked else 'no credential'}"
        f" in their kwargs; triggers moved from {holders_before} to {moved.get('holders') or '[] (fired)'}; runs "
        + ", ".join(f"{d.split('_')[0]} {s}" for d, s in states.items())
        + f"; export POSTs: Cordial {posts} ({cordial_jobs} jobs), AEP {aep_posts};"
        + f" tries {tries}; AEP {copy_detail}"
    )
    return Result(
        "triggerer restarted, waits deferred",
        "no credential in the trigger table; waits resume in the new triggerer, runs succeed,"
        " Cordial 2 POSTs, AEP 1 POST",
        observed,
        ok,
        time.monotonic() - t0,
    )


def scheduler_restart(dep: Deployment, day: date) -> Result:
    """Kill the scheduler while a Sitecore transfer runs; start a new one; the run completes."""
    t0 = time.monotonic()
    dag_id, run_id = "sitecore_cdp_audience_export", "fault-scheduler-restart"
    dep.sandbox.sitecore.faults.throttle(SITECORE_FILES, bytes_per_second=8192, times=3, method="GET")
    dep.trigger(dag_id, run_id, day)
    dep.wait_for_task(dag_id, run_id, "land", ("running",))
    log("kill -9 scheduler with land running; starting a new one")
    dep.components["scheduler"].restart()
    state = dep.wait_for_run(dag_id, run_id, timeout=600)
    tis = dep.task_instances(dag_id, run_id)
    copy_ok, copy_detail = dep.one_copy(_sitecore_prefix(day))
    ok = state == "success" and copy_ok
    tries = ", ".join(f"{t} try {ti['try_number']}" for t, ti in sorted(tis.items()))
    return Result(
        "scheduler restarted mid-run",
        "the run completes, one copy",
        f"run {state} ({tries}); {copy_detail}",
        ok,
        time.monotonic() - t0,
    )


def clear_aep(dep: Deployment, day: date) -> Result:
    """Clear the AEP export task while its job runs: the trigger's on_kill cancels the job."""
    t0 = time.monotonic()
    dag_id, run_id = "adobe_profile_export", "fault-clear-aep"
    adobe = dep.sandbox.adobe
    adobe.job_seconds = 30.0
    dep.trigger(dag_id, run_id, day)
    dep.wait_for_task(dag_id, run_id, "export_profiles", ("deferred",))
    adobe.job_seconds = BASE_JOB_SECONDS  # the job the rerun creates
    job_id = dep.xcom(dag_id, run_id, "export_profiles", "job_id")
    # Deferred is not enough: only a trigger the triggerer runs can be cancelled (a cleared task
    # whose trigger no triggerer had picked up yet reattaches to the job on its rerun instead).
    _wait_for(
        lambda: bool(adobe.requests_to(f"{AEP_JOBS}/{job_id}", "GET")),
        120,
        f"the triggerer polls AEP job {job_id}",
        poll=0.5,
    )
    log(f"clearing export_profiles while AEP job {job_id} runs")
    dep.api(
        "POST",
        f"/api/v2/dags/{dag_id}/clearTaskInstances",
        {"dry_run": False, "dag_run_id": run_id, "task_ids": ["export_profiles"], "only_failed": False},
    )
    deletes = f"{AEP_JOBS}/{job_id}"
    cancelled = False
    with contextlib.suppress(CheckFailed):
        _wait_for(lambda: bool(adobe.requests_to(deletes, "DELETE")), 60, f"DELETE {deletes}", poll=0.5)
        cancelled = adobe.job_cancelled(int(job_id))
    state = dep.wait_for_run(dag_id, run_id, timeout=600)
    new_job = dep.xcom(dag_id, run_id, "export_profiles", "job_id")
    copy_ok, copy_detail = dep.one_copy(_aep_prefix(day))
    manifest = dep.manifest(_aep_prefix(day)) or {}
    ok = (
        cancelled
        and state == "success"
        and copy_ok
        and str(manifest.get("job_ref")) == str(new_job) != str(job_id)
    )
    observed = (
        f"job {job_id}: DELETE sent {len(adobe.requests_to(deletes, 'DELETE'))}x, "
        f"{'cancelled' if cancelled else 'NOT cancelled'} ({adobe.job_status(int(job_id))});"
        f" rerun: job {new_job}, run {state}; manifest job {manifest.get('job_ref')}; {copy_detail}"
    )
    return Result(
        "task cleared while its AEP job runs",
        "the job is cancelled at Adobe; the rerun's new job lands, one copy",
        observed,
        ok,
        time.monotonic() - t0,
    )


FAULTS: dict[str, Callable[[Deployment, date], Result]] = {
    "worker-kill": worker_kill,
    "triggerer-restart": triggerer_restart,
    "scheduler-restart": scheduler_restart,
    "clear-aep": clear_aep,
}


def results_table(results: list[Result]) -> str:
    lines = ["", "=" * 100, "Results", "=" * 100]
    for r in results:
        lines.append(f"[{'PASS' if r.passed else 'FAIL'}] {r.fault}  ({r.seconds:.0f} s)")
        lines.append(f"       expected: {r.expected}")
        lines.append(f"       observed: {r.observed}")
    passed = sum(r.passed for r in results)
    lines.append(f"checks: {passed} PASS, {len(results) - passed} FAIL")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m airflow_provider_exports.sandbox.deployment",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--work-dir", type=Path, default=Path(".deployment"), help="Airflow home, logs, cache"
    )
    parser.add_argument("--dags-folder", type=Path, default=Path("example_dags"), help="the example DAGs")
    parser.add_argument(
        "--executor",
        choices=("celery", "local"),
        default="celery",
        help="celery: Redis + two Celery workers (default); local: LocalExecutor, no Redis, no workers",
    )
    parser.add_argument(
        "--faults",
        default=None,
        help=f"comma-separated, from {', '.join(FAULTS)}; '' for none (default: all the executor has;"
        " LocalExecutor has no worker to kill, and there killing the scheduler kills its running tasks too)",
    )
    args = parser.parse_args(argv)
    if args.faults is None:
        faults = [f for f in FAULTS if args.executor == "celery" or f != "worker-kill"]
    else:
        faults = [f for f in args.faults.split(",") if f]
    unknown = sorted(set(faults) - set(FAULTS))
    if unknown:
        parser.error(f"--faults: unknown {unknown}; use {', '.join(FAULTS)}")
    if args.executor == "local" and "worker-kill" in faults:
        parser.error("--faults worker-kill needs --executor celery (LocalExecutor has no worker to kill)")
    started = time.monotonic()
    work: Path = args.work_dir.resolve()
    if work.exists():
        shutil.rmtree(work)
    dep = Deployment(work=work, dags_folder=args.dags_folder.resolve(), executor=args.executor)

    def terminate(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, terminate)
    signal.signal(signal.SIGHUP, terminate)
    results: list[Result] = []
    try:
        dep.start()
        dep.wait_for_dags()
        first, runs = scheduled_runs(dep)
        results.append(first)
        print("\nScheduled runs (task states):")
        for dag_id, run_id in sorted(runs.items()):
            print("\n".join(dep.describe_run(dag_id, run_id)))
        yesterday = datetime.now(timezone.utc).date() - timedelta(days=1)
        fault_runs: list[tuple[str, str]] = []
        for n, name in enumerate(faults, start=1):
            log(f"fault {name}")
            try:
                result = FAULTS[name](dep, yesterday - timedelta(days=n))
            except CheckFailed as exc:
                result = Result(name, "(see the fault's docstring)", f"ERROR: {exc}", False)
            results.append(result)
            log(f"{name}: {'PASS' if result.passed else 'FAIL'} in {result.seconds:.0f} s")
        with dep.db() as cur:
            cur.execute("SELECT dag_id, run_id FROM dag_run WHERE run_id LIKE 'fault-%%' ORDER BY id")
            fault_runs = [(str(d), str(r)) for d, r in cur.fetchall()]
        if fault_runs:
            print("\nFault runs (task states):")
            for dag_id, run_id in fault_runs:
                print("\n".join(dep.describe_run(dag_id, run_id)))
        print("\nWhat landed:")
        print("\n".join(dep.landed_report()))
    except CheckFailed as exc:
        results.append(Result("deployment", "starts and runs", f"ERROR: {exc}", False))
    except KeyboardInterrupt as exc:
        results.append(Result("deployment", "runs to the end", f"interrupted ({exc})", False))
    finally:
        print("\nLogs:")
        print(f"  components: {work / 'logs'}/<name>.log ({', '.join(dep.components)}, db-migrate)")
        print(f"  tasks:      {dep.task_logs}/dag_id=<dag>/run_id=<run>/task_id=<task>/attempt=<n>.log")
        log("stopping everything")
        dep.stop()
    print(results_table(results))
    print(f"total time: {time.monotonic() - started:.0f} s")
    return 0 if results and all(r.passed for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
