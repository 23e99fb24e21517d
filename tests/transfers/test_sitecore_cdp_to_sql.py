"""SitecoreCDPToSqlOperator against the Sitecore sandbox, SQLite and a real PostgreSQL."""

from __future__ import annotations

import json
import sqlite3

import pytest

from airflow_provider_exports.exceptions import ExportConfigError
from airflow_provider_exports.transfers.sitecore_cdp_to_sql import SitecoreCDPToSqlOperator

EXPORT = "daily_loyalty_members"


@pytest.fixture
def sqlite_warehouse(tmp_path, monkeypatch):
    path = tmp_path / "warehouse.db"
    monkeypatch.setenv("AIRFLOW_CONN_WAREHOUSE", json.dumps({"conn_type": "sqlite", "host": str(path)}))
    return path


def _load(**kwargs):
    args = {"task_id": "load", "audience_export_ref": EXPORT, "conn_id": "warehouse", "table": "members"}
    return SitecoreCDPToSqlOperator(**(args | kwargs)).execute({})


def test_replace_loads_every_row_into_sqlite_and_reruns_skip(sandbox, sqlite_warehouse):
    sandbox.sitecore.add_export(EXPORT, rows_per_file=250)
    ref = sandbox.sitecore.add_job(EXPORT, rows=1000)
    summary = _load(mode="replace", execution_ref=ref)
    assert summary["rows"] == 1000
    with sqlite3.connect(sqlite_warehouse) as conn:
        assert conn.execute("select count(*) from members").fetchone()[0] == 1000
    assert _load(mode="replace", execution_ref=ref)["skipped"] is True


def test_failure_halfway_leaves_the_table_as_it_was(sandbox, sqlite_warehouse):
    sandbox.sitecore.add_export(EXPORT, rows_per_file=250)
    first = sandbox.sitecore.add_job(EXPORT, rows=500)
    _load(mode="append", execution_ref=first)
    second = sandbox.sitecore.add_job(EXPORT, rows=1000)
    # the third file of four fails for good: the first two were already inserted, inside the transaction
    sandbox.sitecore.faults.server_error("/sitecore-cdp-exports/*part-00003*", times=None, status=500)
    op = SitecoreCDPToSqlOperator(
        task_id="load", audience_export_ref=EXPORT, conn_id="warehouse", table="members", execution_ref=second
    )
    from airflow_provider_exports.hooks._retry import RetryPolicy

    op.hook.retry = RetryPolicy(max_attempts=2, backoff_initial=0.01, backoff_max=0.02)
    with pytest.raises(Exception, match="500"):
        op.execute({})
    with sqlite3.connect(sqlite_warehouse) as conn:
        assert conn.execute("select count(*) from members").fetchone()[0] == 500


def test_delta_rows_say_whether_added_or_removed(sandbox, sqlite_warehouse):
    sandbox.sitecore.add_export(EXPORT, definition_type="DELTA")
    ref = sandbox.sitecore.add_job(EXPORT, rows=500)
    _load(mode="replace", execution_ref=ref)
    with sqlite3.connect(sqlite_warehouse) as conn:
        counts = dict(conn.execute("select _delta, count(*) from members group by _delta").fetchall())
    assert set(counts) == {"added", "removed"} and sum(counts.values()) == 500


def test_postgres_copy_load(sandbox, postgres, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_WAREHOUSE", postgres.airflow_conn("warehouse")["AIRFLOW_CONN_WAREHOUSE"])
    sandbox.sitecore.add_export(EXPORT, rows_per_file=400)
    ref = sandbox.sitecore.add_job(EXPORT, rows=1000)
    summary = _load(mode="replace", table="sitecore_members_pg", execution_ref=ref)
    assert summary["rows"] == 1000
    with postgres.connect() as conn, conn.cursor() as cur:
        cur.execute("select count(*) from sitecore_members_pg")
        assert cur.fetchone()[0] == 1000


def test_merge_needs_key_columns_at_parse_time():
    with pytest.raises(ExportConfigError) as err:
        SitecoreCDPToSqlOperator(
            task_id="t", audience_export_ref=EXPORT, conn_id="warehouse", table="t", mode="merge"
        )
    assert err.value.field == "key_columns"


@pytest.mark.parametrize("allow_empty", [False, True])
def test_allow_empty_reaches_the_sql_sink(allow_empty):
    from airflow_provider_exports.hooks.sitecore_cdp import ExportOutput

    op = SitecoreCDPToSqlOperator(
        task_id="t", audience_export_ref=EXPORT, conn_id="warehouse", table="t", mode="replace",
        allow_empty=allow_empty,
    )
    output = ExportOutput(execution_ref="e", definition_ref="d", friendly_id="f", expire_at=None,
                          total_size_kb=0, files=())
    with op.open_source() as source:
        assert op.make_sink(source, output).allow_empty is allow_empty
