"""The one-command demo: every example DAG end to end against the sandbox, a local S3 and SQLite.

``python -m airflow_provider_exports.sandbox.demo`` (what ``bash .ci/demo`` runs) starts the vendor
sandbox and a moto S3 server on loopback, points Airflow connections at them and at an embedded
SQLite warehouse, runs each DAG in ``example_dags/`` with ``dag.test()`` for yesterday's interval,
prints what landed (objects, bytes, manifests, table rows, time taken) and stops what it started.
Airflow is configured (a private ``AIRFLOW_HOME``) before it is imported.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

BUCKET = "lake"


def seed_demo(sb: Any) -> None:
    """A Sitecore export with one finished job and two Cordial audiences with trends enabled.

    Adobe needs no seed: its DAG creates the dataset and the export job, which the sandbox runs.
    """
    sb.sitecore.add_export("daily_loyalty_members", rows_per_file=2000)
    sb.sitecore.add_job("daily_loyalty_members", rows=5000)
    sb.cordial.add_audience("loyal-customers", members=2000)
    sb.cordial.add_audience("newsletter-subscribers")


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


def _cordial_delivery(sb: Any, moto: Any) -> None:
    """Cordial delivers its exports into the local S3 with the keys of ``cordial_delivery``."""
    sb.cordial.s3_endpoint_url = moto.endpoint_url
    os.environ["AIRFLOW_CONN_CORDIAL_DELIVERY"] = json.dumps(
        {**moto.airflow_conn(), "login": "cordial-demo-key", "password": "cordial-demo-secret"}
    )


def _cordial_rows(conn: sqlite3.Connection) -> list[str]:
    """The audience-trends rows the Cordial DAG loaded (audience, day, count)."""
    found = conn.execute("select 1 from sqlite_master where name = 'cordial_audience_trends'").fetchone()
    if not found:
        return []
    lines = ["\n  cordial_audience_trends (audience, day, count):"]
    for audience, day, count in conn.execute(
        "select audience, day, count from cordial_audience_trends order by 1, 2"
    ):
        lines.append(f"    {audience:<24} {day}  {count:>8,}")
    return lines


def _configure_airflow(work: Path, dags_folder: Path) -> None:
    home = work / "airflow"
    home.mkdir(parents=True, exist_ok=True)
    os.environ.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
            "AIRFLOW_VAR_EXPORTS_BUCKET": BUCKET,
            "AIRFLOW_CONN_WAREHOUSE": json.dumps({"conn_type": "sqlite", "host": str(work / "warehouse.db")}),
        }
    )


def _report(runs: list[tuple[str, str, float]], s3: Any, warehouse: Path, started: float) -> list[str]:
    lines = ["", "=" * 78, "What landed", "=" * 78]
    for dag_id, state, seconds in runs:
        lines.append(f"DAG {dag_id}: {state} in {seconds:.1f} s")
    objects = s3.list_objects_v2(Bucket=BUCKET).get("Contents", [])
    total = sum(o["Size"] for o in objects)
    lines.append(f"\ns3://{BUCKET}/ (local S3): {len(objects)} objects, {total:,} bytes")
    for obj in objects:
        lines.append(f"  {obj['Size']:>12,}  s3://{BUCKET}/{obj['Key']}")
        if obj["Key"].endswith("_manifest.json"):
            manifest = json.loads(s3.get_object(Bucket=BUCKET, Key=obj["Key"])["Body"].read())
            details = manifest.get("job_details") or {}
            lines.append(
                f"                manifest: {manifest['vendor']} export {manifest['export_ref']}, "
                f"job {manifest['job_ref']}, {manifest['file_count']} files, {manifest['total_bytes']:,} bytes"
                + (f", datasetDate {details['datasetDate']}" if details.get("datasetDate") else "")
                + (f", batches {', '.join(details['batchIds'])}" if details.get("batchIds") else "")
            )
    lines.append(f"\nwarehouse (SQLite, {warehouse}):")
    if warehouse.exists():
        with sqlite3.connect(warehouse) as conn:
            tables = [
                r[0] for r in conn.execute("select name from sqlite_master where type='table' order by 1")
            ]
            for table in tables:
                count = conn.execute(f'select count(*) from "{table}"').fetchone()[0]
                columns = [r[1] for r in conn.execute(f'pragma table_info("{table}")')]
                lines.append(
                    f"  {table}: {count:,} rows; columns {', '.join(columns[:8])}{' ...' if len(columns) > 8 else ''}"
                )
            lines += _cordial_rows(conn)
    lines.append(f"\ntotal time: {time.monotonic() - started:.1f} s")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m airflow_provider_exports.sandbox.demo", description=__doc__
    )
    parser.add_argument("--work-dir", type=Path, default=Path(".demo"), help="Airflow home, cache, warehouse")
    parser.add_argument("--dags-folder", type=Path, default=Path("example_dags"), help="the example DAGs")
    args = parser.parse_args(argv)
    started = time.monotonic()
    work: Path = args.work_dir.resolve()
    dags_folder: Path = args.dags_folder.resolve()
    for stale in ("airflow", "warehouse.db"):
        target = work / stale
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
    _configure_airflow(work, dags_folder)

    from airflow_provider_exports.sandbox import Sandbox
    from airflow_provider_exports.sandbox.local_services import MotoServer

    sb = Sandbox(cache_dir=work / "cache").start()
    moto = MotoServer().start()
    try:
        seed_demo(sb)
        os.environ.update(sb.airflow_env())
        os.environ.update(moto.airflow_conn_env())
        _cordial_delivery(sb, moto)
        s3 = moto.client()
        s3.create_bucket(Bucket=BUCKET)
        print(
            f"sandbox: {', '.join(f'{n} {s.url}' for n, s in sb.servers.items())}; local S3: {moto.endpoint_url}"
        )

        from airflow.dag_processing.dagbag import DagBag
        from airflow.utils import db

        db.resetdb()
        bag = DagBag(dag_folder=str(dags_folder))
        if bag.import_errors:
            print(f"example DAGs failed to import: {bag.import_errors}", file=sys.stderr)
            return 1
        logical_date = datetime.now(timezone.utc).replace(
            hour=0, minute=0, second=0, microsecond=0
        ) - timedelta(days=1)
        tune_for_demo(bag.dags)
        runs = []
        for dag_id in sorted(bag.dags):
            t0 = time.monotonic()
            run = bag.dags[dag_id].test(logical_date=logical_date)
            runs.append((dag_id, str(run.state), time.monotonic() - t0))
        print("\n".join(_report(runs, s3, work / "warehouse.db", started)))
        return 0 if all(state == "success" for _, state, _ in runs) else 1
    finally:
        moto.stop()
        sb.stop()


if __name__ == "__main__":
    sys.exit(main())
