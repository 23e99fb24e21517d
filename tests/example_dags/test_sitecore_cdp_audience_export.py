"""The Sitecore CDP example DAG end to end: sandbox → S3 (moto) and SQLite, via ``dag.test()``."""

from __future__ import annotations

import gzip
import sqlite3
from datetime import datetime, timedelta, timezone

import pytest

from ._no_secret import assert_no_secret

EXPORT = "daily_loyalty_members"
LOGICAL_DATE = datetime(2026, 11, 22, tzinfo=timezone.utc)
# a manual run's: before the other tests' logical dates (the metadata DB is the session's), so no
# earlier successful run: its window has no start
RUN_AFTER = datetime(2026, 11, 20, 9, 30, tzinfo=timezone.utc)


@pytest.fixture
def flow(sandbox, s3, warehouse, load_example_dag, monkeypatch):
    monkeypatch.setenv("AIRFLOW_VAR_EXPORTS_BUCKET", s3.bucket)
    sandbox.sitecore.add_export(EXPORT, rows_per_file=400)
    dag = load_example_dag("sitecore_cdp_audience_export.py", "sitecore_cdp_audience_export")
    return dag


def _states(run):
    return {ti.task_id: ti.state for ti in run.get_task_instances()}


def _check_landed(sandbox, s3, warehouse, execution_ref, rows, day=LOGICAL_DATE):
    prefix = f"raw/sitecore/{EXPORT}/ds={day:%Y-%m-%d}/"
    expected = sandbox.sitecore.expected_files(execution_ref)
    landed = s3.committed(prefix)
    assert sorted(s3.keys(prefix)) == sorted([*landed.values(), prefix + "_manifest.json"])
    assert sorted(landed) == sorted(name for name, *_ in expected)
    for name, size, sha256, _rows in expected:
        body = s3.read(landed[name])
        assert len(body) == size
        import hashlib

        assert hashlib.sha256(body).hexdigest() == sha256
        assert gzip.decompress(body).count(b"\n") == _rows
    manifest = s3.manifest(prefix)
    assert manifest["job_ref"] == execution_ref
    assert manifest["job_details"]["friendlyId"] == EXPORT
    with sqlite3.connect(warehouse) as conn:
        assert conn.execute("select count(*) from loyalty_members").fetchone()[0] == rows


def test_poke_mode_lands_and_loads(flow, sandbox, s3, warehouse):
    ref = sandbox.sitecore.add_job(EXPORT, rows=1000, end_time=LOGICAL_DATE + timedelta(hours=3))
    flow.get_task("wait_for_export").deferrable = False
    run = flow.test(logical_date=LOGICAL_DATE)
    assert run.state == "success", _states(run)
    _check_landed(sandbox, s3, warehouse, ref, 1000)


def test_the_example_waits_in_the_trigger(flow, sandbox, s3, warehouse):
    ref = sandbox.sitecore.add_job(EXPORT, rows=500, pending_looks=2)
    wait = flow.get_task("wait_for_export")
    assert wait.deferrable is True  # as the example is written: no worker slot held while it waits
    wait.poke_interval = 0.5
    run = flow.test(logical_date=LOGICAL_DATE)
    assert run.state == "success", _states(run)
    # the first poke saw a pending job, the trigger polled until it finished
    assert len(sandbox.sitecore.requests_to(f"/v2/audienceExports/definitions/{EXPORT}/reports")) >= 3
    _check_landed(sandbox, s3, warehouse, ref, 500)


def test_failed_job_fails_the_run_with_its_error_logs(flow, sandbox, s3, warehouse, capfd):
    sandbox.sitecore.add_job(
        EXPORT,
        status="FAILED",
        end_time=LOGICAL_DATE + timedelta(hours=1),
        error_logs=["segment evaluation failed"],
    )
    flow.get_task("wait_for_export").deferrable = False
    run = flow.test(logical_date=LOGICAL_DATE)
    assert _states(run)["wait_for_export"] == "failed"  # at once: a failed job is not retried
    task_log = "".join(capfd.readouterr())
    assert "ended with status FAILED" in task_log and "segment evaluation failed" in task_log
    assert s3.keys() == []


def test_reschedule_mode_releases_the_slot_between_pokes(flow, sandbox, s3, warehouse):
    ref = sandbox.sitecore.add_job(EXPORT, rows=300, pending_looks=1)
    wait = flow.get_task("wait_for_export")
    wait.deferrable = False
    wait.mode = "reschedule"
    wait.poke_interval = 0.5
    run = flow.test(logical_date=LOGICAL_DATE)
    assert run.state == "success", _states(run)
    assert len(sandbox.sitecore.requests_to(f"/v2/audienceExports/definitions/{EXPORT}/reports")) >= 2
    _check_landed(sandbox, s3, warehouse, ref, 300)


def test_no_secret_in_task_logs_xcom_or_rendered_fields(flow, sandbox, s3, warehouse, capfd):
    sandbox.sitecore.add_job(EXPORT, rows=300)
    flow.get_task("wait_for_export").deferrable = False
    run = flow.test(logical_date=LOGICAL_DATE)
    assert run.state == "success", _states(run)

    from airflow_provider_exports.hooks._auth import TOKENS

    secrets = [
        sandbox.sitecore.connection()["password"],
        *(t.value for t in TOKENS._tokens.values()),
        "X-Amz-Signature",
        "X-Amz-Security-Token",
    ]
    assert_no_secret(run, "".join(capfd.readouterr()), secrets)
    assert TOKENS._tokens, "the run obtained a token"



def test_a_manual_run_without_a_logical_date_lands_the_newest_job(flow, sandbox, s3, warehouse):
    # Airflow 3's manual runs (CLI, UI, REST API) have no logical date, so no data interval: the
    # first one takes the newest finished job, however old, and lands it under run_after's day.
    sandbox.sitecore.add_job(EXPORT, rows=100, end_time=LOGICAL_DATE - timedelta(days=30))
    ref = sandbox.sitecore.add_job(EXPORT, rows=200, end_time=LOGICAL_DATE - timedelta(days=20))
    flow.get_task("wait_for_export").deferrable = False
    run = flow.test(logical_date=None, run_after=RUN_AFTER)
    assert run.logical_date is None and run.data_interval_start is None
    assert run.state == "success", _states(run)
    _check_landed(sandbox, s3, warehouse, ref, 200, day=RUN_AFTER)


def test_a_manual_run_after_a_scheduled_one_waits_for_a_newer_job(flow, sandbox, s3, warehouse):
    scheduled_ref = sandbox.sitecore.add_job(EXPORT, rows=100, end_time=LOGICAL_DATE - timedelta(hours=1))
    wait = flow.get_task("wait_for_export")
    wait.deferrable = False
    assert flow.test(logical_date=LOGICAL_DATE).state == "success"
    # the scheduled run's data interval ended at LOGICAL_DATE: only a job that finished later counts
    wait.poke_interval, wait.timeout = 0.2, 1
    run_after = LOGICAL_DATE + timedelta(days=2, hours=9)
    assert _states(flow.test(logical_date=None, run_after=run_after))["wait_for_export"] == "failed"
    newer = sandbox.sitecore.add_job(EXPORT, rows=300, end_time=LOGICAL_DATE + timedelta(hours=2))
    run = flow.test(logical_date=None, run_after=run_after + timedelta(minutes=1))
    assert run.state == "success", _states(run)
    assert newer != scheduled_ref
    _check_landed(sandbox, s3, warehouse, newer, 300, day=run_after)


def _events(uri: str) -> list[dict]:
    """The extras of every event of the asset named ``uri`` (its name; Airflow adds a slash to the
    URI) in the metadata DB (the session's)."""
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session

    with create_session() as session:
        found = session.query(AssetEvent).join(AssetModel, AssetEvent.asset_id == AssetModel.id)
        return [dict(e.extra or {}) for e in found.filter(AssetModel.name == uri).order_by(AssetEvent.id)]


def test_a_rerun_that_lands_nothing_new_emits_no_asset_event(flow, sandbox, s3, warehouse):
    table = "warehouse://loyalty_members"
    ref = sandbox.sitecore.add_job(EXPORT, rows=100, end_time=LOGICAL_DATE + timedelta(hours=3))
    flow.get_task("wait_for_export").deferrable = False
    before = len(_events(table))
    assert flow.test(logical_date=LOGICAL_DATE).state == "success"
    assert len(_events(table)) == before + 1
    # the next day's run finds the same job, already loaded: it succeeds, and downstream DAGs stay put
    again = flow.test(logical_date=LOGICAL_DATE + timedelta(days=1))
    assert again.state == "success", _states(again)
    assert len(_events(table)) == before + 1
    assert [(e["job_ref"], e["rows"]) for e in _events(table)[before:]] == [(ref, 100)]
    # a new job lands, and marks the table again
    newer = sandbox.sitecore.add_job(EXPORT, rows=50, end_time=LOGICAL_DATE + timedelta(days=1, hours=3))
    assert flow.test(logical_date=LOGICAL_DATE + timedelta(days=2)).state == "success"
    assert [e["job_ref"] for e in _events(table)[before:]] == [ref, newer]
