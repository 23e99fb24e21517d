"""The one-command demo: the example DAGs end to end against the sandbox, a local S3 and SQLite.

``python -m airflow_provider_exports_sandbox.demo`` (what ``bash .ci/demo`` runs) starts the vendor
sandbox and a moto S3 server on loopback, points Airflow connections at them and at an embedded
SQLite warehouse, runs each DAG of ``example_dags/`` (Sitecore CDP, Cordial, Adobe Experience
Platform, each also fanned out, and a Sitecore delta export kept as a table) with ``dag.test()`` on
its latest scheduled date (the delta DAG once more, as a manual run after its export's next job),
and prints what landed on one screen; a run that failed says which try of which task failed, with
its exception. Airflow's own logs are off (``--verbose`` shows them). With ``--keep`` the local S3
and the warehouse stay up afterwards, with how to browse them; ``--stop`` ends what ``--keep`` left.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import shutil
import signal
import sqlite3
import sys
import time
import warnings
from collections import defaultdict
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

BUCKET = "lake"
#: what --keep leaves behind, in the work dir: moto's pid and endpoint, the warehouse
KEPT_FILE = "kept.json"
CORDIAL_DELIVERY_KEYS = {"login": "cordial-demo-key", "password": "cordial-demo-secret"}
#: the Sitecore delta export of ``example_dags/sitecore_cdp_audience_delta.py``, and its table
DELTA_EXPORT, DELTA_TABLE = "daily_loyalty_changes", "loyalty_members_current"
#: DAGs the demo runs again, as a manual run, after a new job (rows) of their export: the next delta
#: (the sandbox's delta job removes guests the one before added); each run's line says the table's rows
NEXT_JOB = {"sitecore_cdp_audience_delta": (DELTA_EXPORT, 2500, DELTA_TABLE)}


def seed_demo(sb: Any) -> None:
    """A Sitecore export and a Sitecore delta export with one job each finished now, and two Cordial
    audiences with trends enabled.

    Adobe needs no seed: its DAG creates the dataset and the export job, which the sandbox runs.
    """
    sb.sitecore.add_export("daily_loyalty_members", rows_per_file=2000)
    sb.sitecore.add_job("daily_loyalty_members", rows=5000)
    sb.sitecore.add_export(DELTA_EXPORT, definition_type="DELTA", rows_per_file=2000)
    sb.sitecore.add_job(DELTA_EXPORT, rows=5000)
    sb.cordial.add_audience("loyal-customers", members=2000)
    sb.cordial.add_audience("newsletter-subscribers")


def services_env(sb: Any, moto: Any, warehouse: Path) -> dict[str, str]:
    """The Airflow connections the example DAGs need beside the vendors' own: ``aws_default`` (the
    local S3), ``cordial_delivery`` (the keys Cordial writes into it with: the sandbox delivers
    Cordial's exports into the local S3) and ``warehouse`` (SQLite).

    No ``exports_bucket`` variable: the DAGs' default is this bucket already, and Airflow hands every
    variable's value to its secrets masker, which warned in every task log that ``lake`` is too short
    to mask."""
    sb.cordial.s3_endpoint_url = moto.endpoint_url
    return {
        **moto.airflow_conn_env(),
        "AIRFLOW_CONN_CORDIAL_DELIVERY": json.dumps({**moto.airflow_conn(), **CORDIAL_DELIVERY_KEYS}),
        "AIRFLOW_CONN_WAREHOUSE": json.dumps({"conn_type": "sqlite", "host": str(warehouse)}),
    }


#: polls the demo makes faster than the example DAGs' production intervals, by DAG and task
DEMO_POLL_SECONDS = {
    ("adobe_profile_export", "export_profiles"): 1.0,
    ("cordial_audience_trends", "export_trends"): 1.0,
    ("cordial_audience_trends", "export_members"): 1.0,
    ("adobe_profile_export_fan_out", "export_profiles"): 1.0,
    ("cordial_audience_trends_fan_out", "export_trends"): 1.0,
}


def tune_for_demo(dags: dict[str, Any]) -> None:
    """Shorter poll intervals: the sandbox's jobs take seconds, not the minutes a DAG waits between looks."""
    for (dag_id, task_id), seconds in DEMO_POLL_SECONDS.items():
        if dag_id in dags:
            dags[dag_id].get_task(task_id).poll_interval = seconds


def _quiet() -> None:
    """Airflow's INFO logs and Python's deprecation warnings off (before Airflow is imported)."""
    os.environ["AIRFLOW__LOGGING__LOGGING_LEVEL"] = "ERROR"
    # dag.test() asks for a mapped task's XComs before they exist and logs each 404 as an error,
    # although the run goes on and succeeds (the fan-out DAGs): not an error for a reader.
    os.environ["AIRFLOW__LOGGING__NAMESPACE_LEVELS"] = "airflow.sdk.api.client=CRITICAL"
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=PendingDeprecationWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)


# -- the report ---------------------------------------------------------------------------------


def _s3_lines(s3: Any) -> list[str]:
    """One line per committed transfer (its manifest) and per other folder of the bucket."""
    objects = [o for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET)
               for o in page.get("Contents", [])]  # fmt: skip
    total = sum(o["Size"] for o in objects)
    lines = [f"s3://{BUCKET}/ (local S3): {_count(len(objects), 'object')}, {_count(total, 'byte')}"]
    manifests = {o["Key"].rsplit("/", 1)[0] + "/": o for o in objects if o["Key"].endswith("/_manifest.json")}
    folders: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for obj in objects:
        prefix = next((p for p in manifests if obj["Key"].startswith(p)), None)
        folders[prefix or obj["Key"].rsplit("/", 1)[0] + "/"].append(obj)
    for prefix in sorted(folders):
        if prefix in manifests:
            m = json.loads(s3.get_object(Bucket=BUCKET, Key=manifests[prefix]["Key"])["Body"].read())
            lines.append(
                f"  {prefix}  manifest + {_count(m['file_count'], 'file')}, {_count(m['total_bytes'], 'byte')}"
            )
            lines.append(f"      {m['vendor']} export {_short(m['export_ref'])}, job {_short(m['job_ref'])}")
        else:
            names = ", ".join(o["Key"].rsplit("/", 1)[1] for o in folders[prefix])
            size = sum(o["Size"] for o in folders[prefix])
            lines.append(f"  {prefix}  {_count(len(folders[prefix]), 'file')}, {_count(size, 'byte')}")
            lines.append(f"      {names}")
    return lines


def _count(n: int, noun: str) -> str:
    """``1 file``, ``2 files``, ``1,024 bytes``."""
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def _short(ref: str) -> str:
    return ref if len(ref) <= 24 else ref[:12] + "..."


def _warehouse_lines(warehouse: Path) -> list[str]:
    lines = [f"warehouse (SQLite, {warehouse}):"]
    if not warehouse.exists():
        return [*lines, "  (empty)"]
    with contextlib.closing(sqlite3.connect(warehouse)) as conn:
        tables = [r[0] for r in conn.execute("select name from sqlite_master where type='table' order by 1")]
        width = max(map(len, tables), default=0)
        for table in tables:
            count = conn.execute(f'select count(*) from "{table}"').fetchone()[0]
            columns = [r[1] for r in conn.execute(f'pragma table_info("{table}")')]
            shown = ", ".join(columns[:5]) + (f" (+{len(columns) - 5})" if len(columns) > 5 else "")
            lines.append(f"  {table:<{width}} {_count(count, 'row'):>11}  {shown}")
        if "cordial_audience_trends" in tables:
            rows = conn.execute(
                "select audience, day, count from cordial_audience_trends order by 1, 2"
            ).fetchall()
            days = sorted({day for _, day, _ in rows})
            lines.append(f"  cordial_audience_trends, members per day {days[0]} .. {days[-1]}:")
            counts: dict[str, list[str]] = defaultdict(list)
            for audience, _, count in rows:
                counts[audience].append(f"{count:,}")
            lines += [f"    {audience:<24} {' '.join(values)}" for audience, values in counts.items()]
        if DELTA_TABLE in tables and "exports_manifest" in tables:
            lines.append(_delta_line(conn))
    return lines


def _delta_line(conn: sqlite3.Connection) -> str:
    """The delta jobs applied to the delta table, in order, with the guests each added and removed
    (the job's own counts: the first job's removed guests were never added, so nothing was deleted)."""
    manifests = conn.execute(
        "select manifest from exports_manifest where destination = ? order by committed_at", (DELTA_TABLE,)
    ).fetchall()
    jobs = [json.loads(m)["job_details"] for (m,) in manifests]
    changes = ", then ".join(f"+{j.get('successAdd', 0):,} -{j.get('successRemove', 0):,}" for j in jobs)
    return f"  {DELTA_TABLE}, {_count(len(jobs), 'delta job')} applied (guests added, removed): {changes}"


def _kept_lines(moto: Any, pid: int, warehouse: Path, work: Path) -> list[str]:
    url = moto.endpoint_url
    python = os.path.relpath(sys.executable) if sys.executable.startswith(os.getcwd()) else sys.executable
    boto = (
        f'import boto3; s3 = boto3.client("s3", endpoint_url="{url}", aws_access_key_id="testing", '
        f'aws_secret_access_key="testing", region_name="us-east-1"); '
        f'print(*[o["Key"] for o in s3.list_objects_v2(Bucket="{BUCKET}")["Contents"]], sep="\\n")'
    )
    return [
        "",
        f"Kept running (--keep): the local S3 at {url} (moto, pid {pid}) and the warehouse file. Browse:",
        f"  AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing aws --endpoint-url {url} s3 ls s3://{BUCKET}/ --recursive",
        f"  {python} -c {shlex.quote(boto)}",
        f"  sqlite3 {warehouse} 'select * from cordial_audience_trends limit 5'",
        f"Stop: {python} -m airflow_provider_exports_sandbox.demo --stop --work-dir {work}   (or: kill {pid})",
    ]


# -- --keep and --stop --------------------------------------------------------------------------


def stop_kept(work: Path) -> str | None:
    """Stop the local S3 a ``--keep`` run left in ``work``; returns what was stopped, if anything."""
    kept_file = work / KEPT_FILE
    if not kept_file.exists():
        return None
    kept = json.loads(kept_file.read_text())
    pid, port = int(kept["pid"]), str(kept["port"])
    kept_file.unlink()
    try:  # only our moto_server: a pid may have been reused since
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return None
    if not any(b"moto_server" in part for part in cmdline) or port.encode() not in cmdline:
        return None
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    return f"local S3 {kept['endpoint_url']} (pid {pid})"


# -- main ---------------------------------------------------------------------------------------


def _configure_airflow(work: Path, dags_folder: Path) -> None:
    from airflow_provider_exports_sandbox.testing._airflow import configure_airflow

    os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(dags_folder)
    if configure_airflow(work / "airflow") is None:
        raise RuntimeError("Airflow was imported before the demo could configure it")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m airflow_provider_exports_sandbox.demo", description=__doc__
    )
    parser.add_argument("--work-dir", type=Path, default=Path(".demo"), help="Airflow home, cache, warehouse")
    parser.add_argument("--dags-folder", type=Path, default=Path("example_dags"), help="the example DAGs")
    parser.add_argument("--verbose", action="store_true", help="show Airflow's logs and warnings")
    parser.add_argument(
        "--keep", action="store_true", help="leave the local S3 and the warehouse up afterwards"
    )
    parser.add_argument("--stop", action="store_true", help="stop what a --keep run left, then exit")
    args = parser.parse_args(argv)
    work: Path = args.work_dir.resolve()
    stopped = stop_kept(work)
    if args.stop:
        print(f"stopped {stopped}" if stopped else f"nothing kept running in {work}")
        return 0
    started = time.monotonic()
    dags_folder: Path = args.dags_folder.resolve()
    warehouse = work / "warehouse.db"
    for stale in (work / "airflow", warehouse):
        if stale.is_dir():
            shutil.rmtree(stale)
        elif stale.exists():
            stale.unlink()
    if not args.verbose:
        _quiet()
    _configure_airflow(work, dags_folder)

    from airflow_provider_exports_sandbox import Sandbox
    from airflow_provider_exports_sandbox.local_services import MotoServer

    sb = Sandbox(cache_dir=work / "cache").start()
    moto = MotoServer(detachable=args.keep).start()
    try:
        seed_demo(sb)
        os.environ.update(sb.airflow_env())
        os.environ.update(services_env(sb, moto, warehouse))
        s3 = moto.client()
        s3.create_bucket(Bucket=BUCKET)
        vendors = ", ".join(server.vendor for server in sb.servers.values())
        print(
            f"The DAGs of {dags_folder} with dag.test(), against the local sandbox ({vendors}),\n"
            f"a local S3 (moto, {moto.endpoint_url}) and an SQLite warehouse. "
            + (
                "Airflow's logs follow." if args.verbose else "Airflow's logs are off (--verbose shows them)."
            ),
            flush=True,
        )
        runs = _run_dags(dags_folder, warehouse, lambda export, rows: sb.sitecore.publish_job(export, rows=rows))
        if runs is None:
            return 1
        print("", *_s3_lines(s3), *_warehouse_lines(warehouse), sep="\n")
        print(f"total time: {time.monotonic() - started:.1f} s")
        if args.keep:
            pid = moto.release()
            kept = {
                "pid": pid,
                "port": moto.port,
                "endpoint_url": moto.endpoint_url,
                "warehouse": str(warehouse),
            }
            (work / KEPT_FILE).write_text(json.dumps(kept))
            print(*_kept_lines(moto, pid, warehouse, work), sep="\n")
        return 0 if all(state == "success" for state in runs.values()) else 1
    finally:
        moto.stop()  # a released server is not ours to stop any more
        sb.stop()


def _run_dags(
    dags_folder: Path, warehouse: Path, publish_job: Callable[[str, int], object]
) -> dict[str, str] | None:
    """Each DAG of the folder, one after another (those of :data:`NEXT_JOB` twice, with
    ``publish_job(export, rows)`` between); their end states by DAG id (None: import errors)."""
    from airflow_provider_exports_sandbox.testing._airflow import _dagbag_module, init_metadata_db

    init_metadata_db()
    bag = _dagbag_module().DagBag(dag_folder=str(dags_folder))
    if bag.import_errors:
        for file, error in bag.import_errors.items():
            print(f"{file} failed to import:\n{error}", file=sys.stderr)
        return None
    tune_for_demo(bag.dags)
    print(f"{_count(len(bag.dags), 'DAG')}:", flush=True)
    states = {}
    width = max(map(len, bag.dags), default=0)
    for dag_id in sorted(bag.dags):
        export, rows, table = NEXT_JOB.get(dag_id, ("", 0, ""))
        shown = (warehouse, table) if table else None
        states[dag_id] = _run_one(bag.dags[dag_id], width, shown)
        if export and states[dag_id] == "success":
            publish_job(export, rows)
            # manual: its window starts where the scheduled run's ended, so it takes the new job
            now = datetime.now(timezone.utc)
            states[dag_id] = _run_one(bag.dags[dag_id], width, shown, logical_date=None, run_after=now)
    return states


def _table_rows(warehouse: Path, table: str) -> str:
    with contextlib.closing(sqlite3.connect(warehouse)) as conn:
        (count,) = conn.execute(f'select count(*) from "{table}"').fetchone()
    return f"{table} {_count(count, 'row')}"


def _run_one(dag: Any, width: int, shown: tuple[Path, str] | None, **kwargs: Any) -> str:
    """Run ``dag`` (``run_dag(dag, **kwargs)``) and print one line on it (after a success, the rows
    of ``shown``: a warehouse and its table), and why a try failed."""
    from airflow_provider_exports_sandbox.testing._airflow import failed_tries, run_dag

    t0 = time.monotonic()
    run = run_dag(dag, **kwargs)
    failed = [ti.task_id for ti in run.get_task_instances() if ti.state != "success"]
    when = f"logical date {run.logical_date:%Y-%m-%d %H:%M}" if run.logical_date else "manual run, its next job"
    print(
        f"  {dag.dag_id:<{width}} {run.state} in {time.monotonic() - t0:4.1f} s, {when}"
        + (f"; not successful: {', '.join(failed)}" if failed else f"; {_table_rows(*shown)}" if shown else ""),
        flush=True,
    )
    for failure in failed_tries(run):  # why, without Airflow's logs (--verbose shows them)
        print(f"      {failure}", flush=True)
    return str(run.state)


if __name__ == "__main__":
    sys.exit(main())
