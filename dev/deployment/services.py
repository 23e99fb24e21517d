"""The deployment itself: PostgreSQL, Redis, moto, the vendor sandbox and Airflow's components,
started and stopped together, and what the checks read from it (the REST API, the metadata
database, the bucket and the warehouse)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

from airflow_provider_exports_sandbox.demo import CORDIAL_DELIVERY_KEYS, seed_demo
from airflow_provider_exports_sandbox.local_services import MotoServer, PostgresCluster, free_port
from dev.deployment.processes import CheckFailed, Component, log, redis_ping, wait_for

BUCKET = "lake"
DAG_IDS = ("adobe_profile_export", "cordial_audience_trends", "sitecore_cdp_audience_export")
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


@dataclass(frozen=True)
class Ports:
    """Fixed loopback ports (the local Airflow of ``.ci/demo --ui``: its connections and URL stay
    valid from one start to the next); the check itself takes free ones."""

    api: int
    postgres: int
    moto: int
    sandbox: int  # the first of three: Sitecore CDP, Cordial, Adobe

    @classmethod
    def from_base(cls, base: int) -> Ports:
        return cls(api=base, postgres=base + 1, moto=base + 2, sandbox=base + 3)

    def named(self) -> dict[str, int]:
        """Every port by what listens on it."""
        return {
            "api-server": self.api,
            "PostgreSQL": self.postgres,
            "moto (S3)": self.moto,
            "sandbox Sitecore CDP": self.sandbox,
            "sandbox Cordial": self.sandbox + 1,
            "sandbox Adobe AEP": self.sandbox + 2,
        }


@dataclass
class Deployment:
    """Everything the check starts; :meth:`stop` ends all of it."""

    work: Path
    dags_folder: Path
    executor: str
    ports: Ports | None = None
    components: dict[str, Component] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    api_url: str = ""
    token: str = ""
    sandbox: Any = None
    moto: MotoServer | None = None
    postgres: PostgresCluster | None = None
    warehouse: PostgresCluster | None = None
    s3: Any = None
    #: with ``proxy_s3``, the provider's ``aws_default`` goes through a proxy that can answer 5xx
    proxy_s3: bool = False
    s3_proxy: Any = None

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
        self.postgres = self._postgres().start()
        self.warehouse = self._warehouse().start()
        for cluster, database in ((self.postgres, "airflow"), (self.warehouse, "warehouse")):
            with contextlib.closing(cluster.connect()) as conn:
                conn.autocommit = True
                with conn.cursor() as cur:
                    cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,))
                    if cur.fetchone() is None:
                        cur.execute(f"CREATE DATABASE {database}")
        log(
            f"PostgreSQL on 127.0.0.1:{self.postgres.port} (database airflow),"
            f" 127.0.0.1:{self.warehouse.port} (database warehouse)"
        )

        from airflow_provider_exports_sandbox import Sandbox

        self.moto = MotoServer(port=self.ports.moto if self.ports else None).start()
        self.s3 = self.moto.client()
        self.s3.create_bucket(Bucket=BUCKET)
        if self.proxy_s3:
            from dev.deployment.s3_faults import S3FaultProxy

            self.s3_proxy = S3FaultProxy(self.moto.endpoint_url).start()
        self.sandbox = Sandbox(cache_dir=self.work / "cache")
        self.sandbox.start(port_base=self.ports.sandbox if self.ports else None)
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
            wait_for(lambda: redis_ping(redis_port), 20, "redis-server answers PING")
            self.env["AIRFLOW__CELERY__BROKER_URL"] = f"redis://127.0.0.1:{redis_port}/0"
            log(f"Redis on 127.0.0.1:{redis_port}")

        log("airflow db migrate")
        with open(self.work / "logs" / "db-migrate.log", "wb") as out:
            migrate = subprocess.run(
                self.airflow("db", "migrate"), env=self.env, stdout=out, stderr=subprocess.STDOUT, check=False
            )
        if migrate.returncode != 0:
            raise CheckFailed(f"airflow db migrate failed: see {self.work / 'logs' / 'db-migrate.log'}")
        self._migrated()

        api_port = self.ports.api if self.ports else free_port()
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
        wait_for(self._api_ready, 600, "the api-server answers")
        self.token = self._token()
        log(
            f"Airflow ({self.executor} executor): api-server {self.api_url}, "
            + ", ".join(n for n in self.components if n != "redis")
            + f"; up in {time.monotonic() - t0:.0f} s"
        )

    # -- what the local Airflow of ``.ci/demo --ui`` (dev/deployment/ui.py) does otherwise

    def _postgres(self) -> PostgresCluster:
        """A throwaway cluster (gone with :meth:`stop`)."""
        return PostgresCluster()

    def _warehouse(self) -> PostgresCluster:
        """The warehouse's cluster: its own, so that restarting it (the soak's warehouse-restart
        fault) leaves Airflow's metadata database up, as in production."""
        return PostgresCluster()

    def _keys(self) -> dict[str, str]:
        """Fresh secrets for each run: nothing outlives it."""
        from cryptography.fernet import Fernet

        return {
            "AIRFLOW__CORE__FERNET_KEY": Fernet.generate_key().decode(),
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
            "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32),
        }

    def _auth_env(self) -> dict[str, str]:
        """No login: every caller is an admin (the check's REST calls take a token without one)."""
        return {"AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True"}

    def _connections_env(self) -> dict[str, str]:
        """The connections as ``AIRFLOW_CONN_*`` variables, which every component inherits."""
        return {
            f"AIRFLOW_CONN_{conn_id.upper()}": json.dumps(conn) for conn_id, conn in self.connections().items()
        }

    def _migrated(self) -> None:
        """After ``airflow db migrate``, before any component starts."""

    def _token(self) -> str:
        return str(self.api("GET", "/auth/token")["access_token"])

    def connections(self) -> dict[str, dict[str, Any]]:
        """Every connection the example DAGs use, by id, in Airflow's JSON form: the vendors'
        (the sandbox), ``aws_default`` (moto), ``cordial_delivery`` (the keys Cordial writes into
        the bucket with) and ``warehouse`` (the PostgreSQL database ``warehouse``)."""
        assert self.warehouse is not None and self.moto is not None and self.sandbox is not None
        aws = self.moto.airflow_conn()
        if self.s3_proxy is not None:  # the provider's S3 requests only: Cordial writes to moto itself
            aws["extra"] = {**aws["extra"], "endpoint_url": self.s3_proxy.endpoint_url}
        return {
            **self.sandbox.connections(),
            "aws_default": aws,
            "cordial_delivery": {**self.moto.airflow_conn(), **CORDIAL_DELIVERY_KEYS},
            "warehouse": {
                "conn_type": "postgres",
                "host": "127.0.0.1",
                "port": self.warehouse.port,
                "login": "postgres",
                "schema": "warehouse",
            },
        }

    def _add(self, name: str, argv: list[str]) -> Component:
        component = Component(name, argv, self.work / "logs" / f"{name}.log", self.env, self.pid_file)
        self.components[name] = component
        return component

    def _configure(self) -> None:
        assert self.postgres is not None and self.warehouse is not None and self.moto is not None
        home = self.airflow_home
        (home / "config").mkdir(parents=True, exist_ok=True)
        (home / "config" / "airflow_local_settings.py").write_text(LOCAL_SETTINGS)
        (self.work / "logs").mkdir(exist_ok=True)
        pg = f"postgres@127.0.0.1:{self.postgres.port}"
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
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"postgresql+psycopg2://{pg}/airflow",
                "AIRFLOW__CELERY__RESULT_BACKEND": f"db+postgresql+psycopg2://{pg}/airflow",
                "AIRFLOW__CELERY__WORKER_CONCURRENCY": "2",
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
                # No exports_bucket variable: the DAGs' default is BUCKET, and a variable's value
                # this short made Airflow's secrets masker warn in every task log.
                **self._keys(),
                **self._auth_env(),
                **self._connections_env(),
            }
        )
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
        if self.s3_proxy is not None:
            self.s3_proxy.stop()
        if self.moto is not None:
            self.moto.stop()
        for cluster in dict.fromkeys((self.warehouse, self.postgres)):  # one may serve both
            if cluster is not None:
                cluster.stop()
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
        """An XCom value as JSON, or its raw text when it is not JSON (a bare reference)."""
        with self.db() as cur:
            cur.execute(
                "SELECT value FROM xcom WHERE dag_id = %s AND run_id = %s AND task_id = %s AND key = %s",
                (dag_id, run_id, task_id, key),
            )
            row = cur.fetchone()
        if row is None:
            return None
        value = row[0].decode() if isinstance(row[0], bytes) else row[0]
        with contextlib.suppress(TypeError, ValueError):
            return json.loads(value)
        return value

    def secrets(self) -> set[str]:
        """Every credential the deployment's connections hold (passwords, and extras whose name says
        secret, key or token)."""
        found: set[str] = set()
        for conn in self.connections().values():
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

    def warehouse_connect(self) -> Any:
        import psycopg2

        assert self.warehouse is not None
        conn = psycopg2.connect(f"{self.warehouse.uri.rsplit('/', 1)[0]}/warehouse")
        return conn

    def warehouse_count(self, table: str) -> int | None:
        conn = self.warehouse_connect()
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

        wait_for(parsed, timeout, f"the DAG processor parses {', '.join(DAG_IDS)}")

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

        wait_for(done, timeout, f"run {dag_id}/{run_id} ends", poll=2)
        return str(state["state"])

    def wait_for_task(
        self, dag_id: str, run_id: str, task_id: str, states: tuple[str, ...], timeout: float = 300
    ) -> dict[str, Any]:
        seen: dict[str, Any] = {}

        def reached() -> bool:
            seen.update(self.task_instances(dag_id, run_id).get(task_id) or {})
            return seen.get("state") in states

        wait_for(reached, timeout, f"{dag_id}/{run_id} {task_id} is {'/'.join(states)}", poll=0.5)
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

