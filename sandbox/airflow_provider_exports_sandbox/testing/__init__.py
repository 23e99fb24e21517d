"""Opt-in pytest kit for testing DAGs that use this provider, offline.

Load it with ``pytest -p airflow_provider_exports_sandbox.testing``, or in the top-level ``conftest.py``::

    pytest_plugins = ["airflow_provider_exports_sandbox.testing"]

Installing it (the sandbox distribution) registers nothing with pytest. Once loaded, the kit gives
Airflow a private home and SQLite metadata database in a temp dir (before Airflow is imported) and
adds these fixtures, none of them autouse:

- ``exports_airflow_db`` (session): the metadata tables, created once; returns the Airflow home.
- ``exports_load_dag``: ``load(path, dag_id=None)`` parses that one DAG file (not its folder: a
  sibling file's import error stays out of the test).
- ``exports_run_dag``: ``run(dag, **kwargs)`` is ``dag.test()`` on the logical date the scheduler
  would have run last (:func:`scheduled_logical_date`) unless ``logical_date`` is given. When a test
  asserts ``run.state == "success"`` of a run that failed, the assertion names every failed try: its
  task, try number and exception (:func:`failed_tries` lists them).
- ``exports_sandbox``: the vendor sandbox (started once per session, reset for each test) with
  ``AIRFLOW_CONN_SITECORE_CDP_DEFAULT``, ``..._CORDIAL_DEFAULT`` and ``..._ADOBE_AEP_DEFAULT`` set.
- ``exports_s3``: a fresh bucket on a local S3 (moto server) with ``AIRFLOW_CONN_AWS_DEFAULT`` set.
- ``exports_warehouse``: an SQLite warehouse behind the connection ``warehouse``;
  ``exports_postgres_warehouse``: a fresh PostgreSQL database there instead (skipped when the
  PostgreSQL server binaries are not installed).
- ``exports_sandbox_session``, ``exports_moto``, ``exports_postgres`` (session): the servers themselves.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from airflow_provider_exports_sandbox.testing._airflow import (
    AirflowNotConfigured,
    FailedTry,
    configure_airflow,
    explain_run_state,
    failed_tries,
    init_metadata_db,
    load_dag_file,
    remove_home,
    run_dag,
    scheduled_logical_date,
)
from airflow_provider_exports_sandbox.testing._stores import S3Bucket, Warehouse

if TYPE_CHECKING:
    from airflow_provider_exports_sandbox import Sandbox
    from airflow_provider_exports_sandbox.local_services import MotoServer, PostgresCluster

__all__ = [
    "AirflowNotConfigured",
    "FailedTry",
    "S3Bucket",
    "Warehouse",
    "failed_tries",
    "load_dag_file",
    "run_dag",
    "scheduled_logical_date",
]

WAREHOUSE_CONN_ID = "warehouse"


# -- configuration: before Airflow is imported ---------------------------------------------------


def pytest_load_initial_conftests(early_config: pytest.Config, parser: Any, args: list[str]) -> None:
    """``-p airflow_provider_exports_sandbox.testing``: configure before any conftest.py is imported."""
    configure_airflow()


def pytest_configure(config: pytest.Config) -> None:
    """``pytest_plugins = [...]``: configure right after the conftest.py that listed the kit."""
    configure_airflow()


def pytest_unconfigure(config: pytest.Config) -> None:
    remove_home()


def pytest_assertrepr_compare(config: pytest.Config, op: str, left: object, right: object) -> list[str] | None:
    """``assert run.state == "success"`` of a failed run: which tries failed, and with what."""
    return explain_run_state(op, left, right)


# -- Airflow ------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def exports_airflow_db() -> Path:
    """Airflow's metadata tables in the kit's private SQLite database, created once per session."""
    return init_metadata_db()


@pytest.fixture
def exports_load_dag(exports_airflow_db: Path) -> Callable[..., Any]:
    """``load(path, dag_id=None)``: the DAG a file defines, parsed alone (not the files beside it)."""
    return load_dag_file


@pytest.fixture
def exports_run_dag(exports_airflow_db: Path) -> Callable[..., Any]:
    """``run(dag, **kwargs)``: ``dag.test()`` on the latest scheduled logical date; the DagRun."""
    return run_dag


# -- the vendor sandbox -------------------------------------------------------------------------


@pytest.fixture(scope="session")
def exports_sandbox_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    """The vendor sandbox (all vendors), started once for the session."""
    from airflow_provider_exports_sandbox import Sandbox

    sb = Sandbox(cache_dir=tmp_path_factory.mktemp("exports-sandbox-cache"))
    sb.start()
    try:
        yield sb
    finally:
        sb.stop()


@pytest.fixture
def exports_sandbox(exports_sandbox_session: Sandbox, monkeypatch: pytest.MonkeyPatch) -> Sandbox:
    """The session's sandbox after ``reset()``, its connections exported as ``AIRFLOW_CONN_*``."""
    exports_sandbox_session.reset()
    for name, value in exports_sandbox_session.airflow_env().items():
        monkeypatch.setenv(name, value)
    return exports_sandbox_session


# -- S3 -----------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def exports_moto() -> Iterator[MotoServer]:
    """``moto_server`` as S3 on a free loopback port for the whole session."""
    from airflow_provider_exports_sandbox.local_services import MotoServer

    server = MotoServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def exports_s3(
    exports_moto: MotoServer, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> S3Bucket:
    """A fresh bucket for this test, with ``AIRFLOW_CONN_AWS_DEFAULT`` pointing at the local S3."""
    for name, value in exports_moto.airflow_conn_env().items():
        monkeypatch.setenv(name, value)
    stem = re.sub(r"[^a-z0-9-]", "-", request.node.name.lower())[:40].strip("-") or "test"
    bucket = f"{stem}-{uuid.uuid4().hex[:8]}"
    exports_moto.client().create_bucket(Bucket=bucket)
    return S3Bucket(exports_moto, bucket)


# -- warehouses ---------------------------------------------------------------------------------


@pytest.fixture
def exports_warehouse(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Warehouse:
    """An embedded SQLite warehouse (a new file) behind the connection ``warehouse``."""
    path = tmp_path / "warehouse.db"
    conn = {"conn_type": "sqlite", "host": str(path)}
    monkeypatch.setenv(f"AIRFLOW_CONN_{WAREHOUSE_CONN_ID.upper()}", json.dumps(conn))
    return Warehouse(conn_id=WAREHOUSE_CONN_ID, kind="sqlite", path=path)


@pytest.fixture(scope="session")
def exports_postgres() -> Iterator[PostgresCluster]:
    """A private throwaway PostgreSQL cluster; skips only when the server binaries are absent."""
    from airflow_provider_exports_sandbox.local_services import PostgresCluster

    if not PostgresCluster.available():
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) not found: apt-get install -y postgresql")
    cluster = PostgresCluster().start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def exports_postgres_warehouse(
    exports_postgres: PostgresCluster, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Warehouse]:
    """A new PostgreSQL database on the session's cluster behind the connection ``warehouse``."""
    database = f"warehouse_{uuid.uuid4().hex[:12]}"
    _autocommit(exports_postgres, f'CREATE DATABASE "{database}"')
    conn = {
        "conn_type": "postgres",
        "host": exports_postgres.host,
        "port": exports_postgres.port,
        "login": exports_postgres.user,
        "password": "",
        "schema": database,
    }
    monkeypatch.setenv(f"AIRFLOW_CONN_{WAREHOUSE_CONN_ID.upper()}", json.dumps(conn))
    uri = f"postgresql://{exports_postgres.user}@{exports_postgres.host}:{exports_postgres.port}/{database}"
    yield Warehouse(conn_id=WAREHOUSE_CONN_ID, kind="postgres", uri=uri)
    _autocommit(exports_postgres, f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


def _autocommit(cluster: PostgresCluster, statement: str) -> None:
    conn = cluster.connect()
    try:
        conn.autocommit = True
        conn.cursor().execute(statement)
    finally:
        conn.close()
