"""The fixtures work: the sandbox bundle, moto as S3, a private PostgreSQL, and the CLI."""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import httpx
import pytest

from airflow_provider_exports_sandbox import Sandbox
from airflow_provider_exports_sandbox.demo import BUCKET
from airflow_provider_exports_sandbox.local_services import MotoServer, PostgresCluster

EXAMPLE_DAGS = Path(__file__).resolve().parents[2] / "example_dags"


def test_exports_sandbox_session_connections(exports_sandbox_session: Sandbox) -> None:
    conns = exports_sandbox_session.connections()
    assert {"sitecore_cdp_default", "cordial_default"} <= set(conns)
    assert conns["sitecore_cdp_default"]["extra"]["api_host"] == exports_sandbox_session.sitecore.url
    assert conns["cordial_default"]["conn_type"] == "cordial"
    env = exports_sandbox_session.airflow_env()
    assert json.loads(env["AIRFLOW_CONN_CORDIAL_DEFAULT"]) == conns["cordial_default"]


def test_sandbox_fixture_exports_env(sandbox: Sandbox) -> None:
    assert json.loads(os.environ["AIRFLOW_CONN_SITECORE_CDP_DEFAULT"]) == sandbox.sitecore.connection()


def test_moto_s3(moto_s3: MotoServer) -> None:
    client = moto_s3.client()
    client.create_bucket(Bucket="plain-moto")
    client.put_object(Bucket="plain-moto", Key="k", Body=b"v")
    assert client.get_object(Bucket="plain-moto", Key="k")["Body"].read() == b"v"
    conn = json.loads(moto_s3.airflow_conn_env()["AIRFLOW_CONN_AWS_DEFAULT"])
    assert conn["extra"] == {"endpoint_url": moto_s3.endpoint_url, "region_name": "us-east-1"}


def test_s3_fixture(s3: Any) -> None:
    assert json.loads(os.environ["AIRFLOW_CONN_AWS_DEFAULT"])["extra"]["endpoint_url"] == s3.endpoint_url
    s3.client().put_object(Bucket=s3.bucket, Key="a/b.txt", Body=b"x")
    assert s3.keys() == ["a/b.txt"]


def test_postgres(postgres: PostgresCluster) -> None:
    conn = postgres.connect()
    try:
        cur = conn.cursor()
        cur.execute("CREATE TABLE guests (ref text PRIMARY KEY, n int)")
        cur.execute("INSERT INTO guests VALUES ('a', 1), ('b', 2)")
        cur.execute("SELECT sum(n) FROM guests")
        assert cur.fetchone()[0] == 3
        conn.rollback()
    finally:
        conn.close()
    conn_json = json.loads(postgres.airflow_conn("pg")["AIRFLOW_CONN_PG"])
    assert conn_json["port"] == postgres.port


@pytest.mark.skipif(not PostgresCluster.available(), reason="PostgreSQL server binaries are missing")
def test_postgres_with_a_data_dir_keeps_it_and_stops_a_server_left_running() -> None:
    # Not under pytest's temp dirs (mode 700): as root the server runs as postgres, who must reach it.
    top = Path(tempfile.mkdtemp(prefix="kept-pg-"))
    top.chmod(0o755)
    data = top / "pg" / "data"
    try:
        first = PostgresCluster(data_dir=data).start()
        with contextlib.closing(first.connect()) as conn:
            conn.cursor().execute("CREATE TABLE kept (n int); INSERT INTO kept VALUES (7)")
            conn.commit()
        first.stop()
        assert (data / "PG_VERSION").exists() and not first.running()
        again = PostgresCluster(data_dir=data).start()  # no initdb over it: the row is there
        with contextlib.closing(again.connect()) as conn:
            cur = conn.cursor()
            cur.execute("SELECT n FROM kept")
            assert cur.fetchone()[0] == 7
        # a server whose starter died is stopped by any object on its data directory
        left = PostgresCluster(data_dir=data)
        assert left.running()
        left.stop()
        assert not again.running()
    finally:
        PostgresCluster(data_dir=data).stop()
        shutil.rmtree(top, ignore_errors=True)


def test_cli_prints_env_and_serves() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "airflow_provider_exports_sandbox", "--print-env", "--seed-demo"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline() for _ in range(2)]
        assert lines[0].startswith("export AIRFLOW_CONN_SITECORE_CDP_DEFAULT=")
        conn = json.loads(lines[0].split("=", 1)[1].strip().strip("'"))
        resp = httpx.get(
            f"{conn['extra']['api_host']}/v2/audienceExports/definitions/daily_loyalty_members/reports"
        )
        assert resp.status_code == 401
    finally:
        proc.terminate()
        proc.wait(10)
    assert proc.returncode == 0


def test_cli_services_run_an_example_dag_alone(
    exports_load_dag, exports_run_dag, monkeypatch, tmp_path
) -> None:
    """With ``--services`` the CLI's printed environment is all the Sitecore example DAG needs."""
    warehouse = tmp_path / "warehouse.db"
    proc = subprocess.Popen(
        [sys.executable, "-m", "airflow_provider_exports_sandbox", "--print-env", "--seed-demo", "--services",
         "--warehouse", str(warehouse), "--cache-dir", str(tmp_path / "cache")],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        env = {}
        while "AIRFLOW_CONN_WAREHOUSE" not in env:  # the last line
            line = proc.stdout.readline()
            assert line.startswith("export "), line
            key, value = line[len("export ") :].rstrip("\n").split("=", 1)
            env[key] = shlex.split(value)[0]
        assert {"AIRFLOW_CONN_AWS_DEFAULT", "AIRFLOW_CONN_WAREHOUSE", "AIRFLOW_CONN_CORDIAL_DELIVERY"} <= set(
            env
        )
        for key in [k for k in os.environ if k.startswith(("AIRFLOW_CONN_", "AIRFLOW_VAR_"))]:
            monkeypatch.delenv(key)
        for key, value in env.items():
            monkeypatch.setenv(key, value)

        dag = exports_load_dag(EXAMPLE_DAGS / "sitecore_cdp_audience_export.py")
        run = exports_run_dag(dag)
        assert run.state == "success", {ti.task_id: ti.state for ti in run.get_task_instances()}
        with sqlite3.connect(warehouse) as conn:
            assert conn.execute("select count(*) from loyalty_members").fetchone()[0] == 5000
        endpoint = json.loads(env["AIRFLOW_CONN_AWS_DEFAULT"])["extra"]["endpoint_url"]
        s3 = MotoServer(port=int(endpoint.rsplit(":", 1)[1])).client()
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET)["Contents"]]
        assert f"raw/sitecore/daily_loyalty_members/ds={run.logical_date:%Y-%m-%d}/_manifest.json" in keys
    finally:
        proc.terminate()
        proc.wait(10)
    assert proc.returncode == 0


def test_postgres_restart_drops_connections_and_keeps_data() -> None:
    import psycopg2
    import pytest

    if not PostgresCluster.available():
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) not found")
    with PostgresCluster() as cluster:  # its own: a restart would cut the session cluster's users
        conn = cluster.connect()
        conn.autocommit = True
        conn.cursor().execute("CREATE TABLE kept (n int); INSERT INTO kept VALUES (1)")
        port = cluster.port
        cluster.restart("immediate")
        with pytest.raises(psycopg2.OperationalError):
            conn.cursor().execute("SELECT 1")  # a restart ends every connection
        conn.close()
        again = cluster.connect()
        try:
            cur = again.cursor()
            cur.execute("SELECT n FROM kept")
            assert cur.fetchall() == [(1,)] and cluster.port == port
        finally:
            again.close()
