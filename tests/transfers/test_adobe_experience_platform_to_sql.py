"""AdobeExperiencePlatformToSqlOperator: AEP profiles from the sandbox into SQLite and PostgreSQL."""

from __future__ import annotations

import json
import sqlite3

import pytest

from airflow_provider_exports.exceptions import ExportConfigError
from airflow_provider_exports.transfers.adobe_experience_platform_to_sql import (
    AdobeExperiencePlatformToSqlOperator,
)

from .test_adobe_experience_platform_to_s3 import finished_job

NESTED = ["identities", "identityMap", "personalEmail", "person", "homeAddress", "segmentMembership"]


@pytest.fixture(params=["sqlite", "postgres"])
def warehouse_db(request, monkeypatch):
    """(kind, conn id, run a query) for SQLite and for the session's real PostgreSQL."""
    if request.param == "sqlite":
        path = request.getfixturevalue("warehouse")

        def query(sql):
            with sqlite3.connect(path) as conn:
                return conn.execute(sql).fetchall()

        return "sqlite", "warehouse", query
    postgres = request.getfixturevalue("postgres")
    monkeypatch.setenv("AIRFLOW_CONN_PG", postgres.airflow_conn_json())
    conn = postgres.connect()
    conn.autocommit = True
    conn.cursor().execute("DROP SCHEMA IF EXISTS public CASCADE; CREATE SCHEMA public")
    request.addfinalizer(conn.close)

    def pg_query(sql):
        cur = conn.cursor()
        cur.execute(sql)
        return cur.fetchall()

    return "postgres", "pg", pg_query


def _types(kind, query, table):
    if kind == "sqlite":
        return {name: t.upper() for _, name, t, *_ in query(f"PRAGMA table_info({table})")}
    rows = query(f"SELECT column_name, data_type FROM information_schema.columns WHERE table_name = '{table}'")
    return {name: t.upper() for name, t in rows}


def test_profiles_load_with_nested_xdm_fields_as_json(sandbox, warehouse_db):
    kind, conn_id, query = warehouse_db
    sandbox.adobe.default_rows = 700
    sandbox.adobe.files_per_batch = 3
    job_id, (batch_id,) = finished_job(sandbox, segments=("seg-a", "seg-b"))
    op = AdobeExperiencePlatformToSqlOperator(
        task_id="load", export_job_id=job_id, conn_id=conn_id, table="profiles", mode="replace"
    )
    summary = op.execute({})
    assert summary["rows"] == 1400 and summary["file_count"] == 3
    assert query("SELECT count(*) FROM profiles") == [(1400,)]
    assert _types(kind, query, "profiles") == {
        **dict.fromkeys(NESTED, "JSONB" if kind == "postgres" else "TEXT"),
        "_source_file": "TEXT",
    }
    # every row names its file as the manifest does (the Data Access file's path, never a URL)
    files = query("SELECT DISTINCT _source_file FROM profiles")
    (membership,) = query('SELECT "segmentMembership" FROM profiles LIMIT 1')[0]
    membership = membership if isinstance(membership, dict) else json.loads(membership)  # jsonb comes back decoded
    assert set(membership["ups"]) == {"seg-a", "seg-b"}
    assert {v["status"] for v in membership["ups"].values()} <= {"realized", "existing"}
    (manifest,) = query("SELECT manifest FROM exports_manifest")[0]
    manifest = json.loads(manifest)
    assert sorted(f for (f,) in files) == sorted(f["name"] for f in manifest["files"])
    assert not any("://" in f or "?" in f for (f,) in files)
    assert manifest["job_ref"] == job_id and manifest["job_details"]["batchIds"] == [batch_id]
    assert sum(f["rows"] for f in manifest["files"]) == 1400
    assert op.execute({})["skipped"] is True  # the same job again: nothing moves


def test_profiles_load_with_structs_flattened(sandbox, warehouse_db):
    kind, conn_id, query = warehouse_db
    sandbox.adobe.default_rows = 200
    job_id, _ = finished_job(sandbox)
    AdobeExperiencePlatformToSqlOperator(
        task_id="load", export_job_id=job_id, conn_id=conn_id, table="flat", flatten_structs=True
    ).execute({})
    types = _types(kind, query, "flat")
    assert types["person_name_firstName"] == types["homeAddress_countryCode"] == "TEXT"
    assert types["identityMap"] == types["segmentMembership"] == ("JSONB" if kind == "postgres" else "TEXT")
    assert "person" not in types and "person_name" not in types
    ((first, email),) = query('SELECT "person_name_firstName", "personalEmail_address" FROM flat LIMIT 1')
    assert email.startswith(first.lower() + ".")


def test_a_bad_mode_fails_when_the_dag_is_parsed():
    with pytest.raises(ExportConfigError, match="key_columns"):
        AdobeExperiencePlatformToSqlOperator(task_id="load", export_job_id="1", conn_id="w", table="t", mode="merge")
