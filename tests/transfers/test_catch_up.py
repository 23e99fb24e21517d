"""Delta jobs a run would step over are moved first, oldest first: Sitecore's sandbox into SQLite."""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime, timedelta, timezone

import pytest

from airflow_provider_exports.exceptions import TransferRefused
from airflow_provider_exports.transfers.sitecore_cdp_to_sql import SitecoreCDPToSqlOperator

EXPORT = "loyalty_changes"
T0 = datetime(2026, 11, 1, 3, tzinfo=timezone.utc)


@pytest.fixture
def warehouse(tmp_path, monkeypatch):
    path = tmp_path / "warehouse.db"
    monkeypatch.setenv("AIRFLOW_CONN_WAREHOUSE", json.dumps({"conn_type": "sqlite", "host": str(path)}))
    return path


@pytest.fixture
def jobs(sandbox):
    """Add a delta job of the export, ``day`` days after the first; its ``executionRef``."""
    sandbox.sitecore.add_export(EXPORT, definition_type="DELTA", rows_per_file=150)

    def add(day: int, status: str = "SUCCESS") -> str:
        return sandbox.sitecore.add_job(EXPORT, rows=250, status=status, end_time=T0 + timedelta(days=day))

    return add


def _load(execution_ref: str, **kwargs):
    args = {"audience_export_ref": EXPORT, "conn_id": "warehouse", "table": "members", "mode": "merge"}
    return SitecoreCDPToSqlOperator(task_id="load", **(args | {"key_columns": ["ref"]} | kwargs),
                                    execution_ref=execution_ref).execute({})


def _members(path) -> set[str]:
    with sqlite3.connect(path) as conn:
        return {ref for (ref,) in conn.execute("select ref from members")}


def _applied(sandbox, *jobs: str) -> set[str]:
    """The guests the delta jobs leave in the audience, applied in order."""
    members: set[str] = set()
    for job in jobs:
        members = (members | sandbox.sitecore.guest_refs(job, "added")) - sandbox.sitecore.guest_refs(job, "removed")
    return members


def test_the_jobs_between_the_table_s_newest_and_the_given_one_come_first_oldest_first(sandbox, warehouse, jobs):
    """A failed job is not one to apply; a job before the table's newest is not moved again."""
    before, held = jobs(0), jobs(1)
    _load(before)
    _load(held)
    missed, failed, missed_too, given = jobs(2), jobs(3, "FAILED"), jobs(4), jobs(5)

    summary = _load(given)

    assert [c["job_ref"] for c in summary["caught_up"]] == [missed, missed_too]
    assert all(c["rows"] == 250 and c["skipped"] is False for c in summary["caught_up"])
    assert summary["job_ref"] == given and summary["rows"] == 250
    assert _members(warehouse) == _applied(sandbox, before, held, missed, missed_too, given)
    assert failed not in {c["job_ref"] for c in summary["caught_up"]}


@pytest.mark.parametrize("kwargs", [{"delta": "never"}, {"mode": "replace"}], ids=["delta never", "replace"])
def test_no_job_is_added_where_each_load_stands_alone(sandbox, warehouse, jobs, kwargs):
    """Files taken as full snapshots, or a table each load replaces: an earlier job changes nothing."""
    _load(jobs(0), **kwargs)
    jobs(1)
    summary = _load(jobs(2), **kwargs)
    assert "caught_up" not in summary


def test_a_given_job_already_in_the_table_moves_nothing(sandbox, warehouse, jobs):
    first, second = jobs(0), jobs(1)
    _load(first)
    _load(second)
    third = jobs(2)
    assert _load(first)["skipped"] is True  # an older job run again: held, so nothing before it moves
    assert "caught_up" not in _load(third)


def test_a_job_older_than_the_table_s_is_refused_and_changes_nothing(sandbox, warehouse, jobs):
    older, newer = jobs(0), jobs(1)
    _load(newer)
    with pytest.raises(TransferRefused, match=rf"members holds 1 job\(s\) of Sitecore CDP export {EXPORT}, but none "
                       rf"of the 0 the vendor lists before job {older}"):
        _load(older)
    assert _members(warehouse) == _applied(sandbox, newer)


def test_a_fan_out_commit_refuses_a_job_whose_earlier_ones_the_table_misses(sandbox, warehouse, jobs):
    """It holds one job's staged files: it names the jobs to apply first, and commits once they are."""
    from airflow_provider_exports.transfers._fan_out import FanOutCommitOperator
    from airflow_provider_exports.transfers.sitecore_cdp_to_sql import (
        SitecoreCDPListFilesOperator,
        SitecoreCDPStageFilesToSqlOperator,
    )

    first = jobs(0)
    _load(first)
    missed, given = jobs(1), jobs(2)
    groups = SitecoreCDPListFilesOperator(task_id="list_files", audience_export_ref=EXPORT, execution_ref=given).execute({})
    stage = {"audience_export_ref": EXPORT, "conn_id": "warehouse", "table": "members", "mode": "merge",
             "key_columns": ["ref"]}
    staged = [SitecoreCDPStageFilesToSqlOperator(task_id="load_files", group=g, **stage).execute({}) for g in groups]
    commit = FanOutCommitOperator(task_id="commit", staged=staged)

    with pytest.raises(TransferRefused, match=rf"job {given} builds on jobs members does not hold: \['{missed}'\]"):
        commit.execute({})
    assert _members(warehouse) == _applied(sandbox, first)

    _load(missed)
    assert commit.execute({})["rows"] == 250  # the retry of the commit: the staged files, committed
    assert _members(warehouse) == _applied(sandbox, first, missed, given)


def test_postgres_too(sandbox, jobs, postgres, monkeypatch):
    """The manifest table read on a connection of its own, before the load's lock, on PostgreSQL."""
    import uuid

    monkeypatch.setenv("AIRFLOW_CONN_WAREHOUSE", postgres.airflow_conn("warehouse")["AIRFLOW_CONN_WAREHOUSE"])
    table = f"members_{uuid.uuid4().hex[:8]}"
    first = jobs(0)
    _load(first, table=table)
    missed, given = jobs(1), jobs(2)

    assert [c["job_ref"] for c in _load(given, table=table)["caught_up"]] == [missed]
    with postgres.connect() as conn, conn.cursor() as cur:
        cur.execute(f"select ref from {table}")
        assert {ref for (ref,) in cur.fetchall()} == _applied(sandbox, first, missed, given)


def test_an_earlier_job_the_vendor_no_longer_serves_fails_the_run_saying_which(sandbox, warehouse, jobs):
    first = jobs(0)
    _load(first)
    missed, given = jobs(1), jobs(2)
    sandbox.sitecore.faults.server_error(f"*/executions/{missed}/export", times=None, status=404)

    with pytest.raises(Exception) as failed:  # the vendor's own error, its retries as they were
        _load(given)

    assert f"Listing job {missed}, which came before this run's and which the destination misses" in "".join(
        failed.value.__notes__
    )
    assert _members(warehouse) == _applied(sandbox, first)


def test_a_job_sitecore_lists_no_report_for_is_loaded_alone_and_said(sandbox, warehouse, jobs, caplog):
    """Without the job's report its place among the others is unknown: nothing is added, with a warning."""
    _load(jobs(0), delta="always")
    jobs(1)
    given = jobs(2)
    sandbox.sitecore.faults.answer(f"/v2/audienceExports/definitions/{EXPORT}/reports", times=None, json=[])

    summary = _load(given, delta="always")

    assert "caught_up" not in summary and summary["rows"] == 250
    assert f"Sitecore lists no finished report for job {given}: the jobs before it cannot be told" in caplog.text


def test_a_run_that_fails_after_the_missed_job_committed_applies_only_the_rest_again(sandbox, warehouse, jobs):
    """The missed job's load committed, then the given job's failed (its files answer 500): the
    retry finds the missed job in the manifest table and applies the given one only."""
    from airflow_provider_exports.hooks._retry import RetryPolicy

    first = jobs(0)
    _load(first)
    missed, given = jobs(1), jobs(2)
    sandbox.sitecore.faults.server_error(f"/sitecore-cdp-exports/*/{given}/*", times=None, status=500)
    op = SitecoreCDPToSqlOperator(task_id="load", audience_export_ref=EXPORT, conn_id="warehouse", table="members",
                                  mode="merge", key_columns=["ref"], execution_ref=given)
    op.hook.retry = RetryPolicy(max_attempts=2, backoff_initial=0.01, backoff_max=0.02)
    with pytest.raises(Exception, match="500"):
        op.execute({})
    assert _members(warehouse) == _applied(sandbox, first, missed)

    sandbox.sitecore.faults.clear()
    summary = _load(given)

    assert "caught_up" not in summary and summary["rows"] == 250
    assert _members(warehouse) == _applied(sandbox, first, missed, given)
