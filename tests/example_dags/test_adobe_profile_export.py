"""The Adobe Experience Platform example DAG end to end: sandbox → S3 (moto) and SQLite, via ``dag.test()``."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from datetime import datetime, timezone

import pytest

from ._no_secret import assert_no_secret

LOGICAL_DATE = datetime(2026, 11, 22, tzinfo=timezone.utc)
# a manual run's: before the other tests' logical dates (the metadata DB is the session's), so no
# earlier successful run: its window has no start
RUN_AFTER = datetime(2026, 11, 20, 9, 30, tzinfo=timezone.utc)
SEGMENTS = ["vip-customers", "newsletter-subscribers"]
PREFIX = f"raw/aep/profiles/ds={LOGICAL_DATE:%Y-%m-%d}/"


@pytest.fixture
def flow(sandbox, s3, warehouse, load_example_dag, monkeypatch):
    monkeypatch.setenv("AIRFLOW_VAR_EXPORTS_BUCKET", s3.bucket)
    sandbox.adobe.job_seconds = 0.5
    sandbox.adobe.default_rows = 300
    sandbox.adobe.files_per_batch = 2
    dag = load_example_dag("adobe_profile_export.py", "adobe_profile_export")
    dag.get_task("export_profiles").poll_interval = 0.2
    return dag


def _states(run):
    return {ti.task_id: ti.state for ti in run.get_task_instances()}


def _the_job(sandbox):
    (post,) = sandbox.adobe.requests_to("/data/core/ups/export/jobs", "POST")
    assert post.status == 200
    (job_id,) = sandbox.adobe._jobs  # the one job the run created
    return job_id


def _check_landed(sandbox, s3, warehouse, prefix=PREFIX):
    job_id = _the_job(sandbox)
    (batch_id,) = sandbox.adobe.batch_ids(job_id)
    expected = sandbox.adobe.expected_files(batch_id)
    manifest = s3.manifest(prefix)
    assert manifest["job_ref"] == str(job_id)
    details = manifest["job_details"]
    assert details["batchIds"] == [batch_id] and details["jobId"] == str(job_id)
    assert manifest["export_ref"] == details["datasetId"] == sandbox.adobe._jobs[job_id].dataset_id
    landed = {f["name"]: f for f in manifest["files"]}
    assert sorted(landed) == sorted(f"{batch_id}/{fid}/{name}" for fid, name, *_ in expected)
    for fid, name, size, sha256, _rows in expected:
        record = landed[f"{batch_id}/{fid}/{name}"]
        assert record["attributes"] == {"batchId": batch_id, "dataSetFileId": fid, "path": name}
        body = s3.read(record["location"])
        assert len(body) == size == record["bytes"] and hashlib.sha256(body).hexdigest() == sha256
    with sqlite3.connect(warehouse) as conn:
        assert conn.execute("select count(*) from aep_profiles").fetchone()[0] == sum(e[4] for e in expected) == 600
        memberships = conn.execute("select segmentMembership from aep_profiles limit 1").fetchone()[0]
    assert set(json.loads(memberships)["ups"]) == set(SEGMENTS)
    return job_id


@pytest.mark.parametrize("deferrable", [True, False], ids=["deferrable", "in-the-worker"])
def test_export_lands_in_s3_and_loads_the_table(flow, sandbox, s3, warehouse, deferrable):
    flow.get_task("export_profiles").deferrable = deferrable
    run = flow.test(logical_date=LOGICAL_DATE)
    assert run.state == "success", _states(run)
    job_id = _check_landed(sandbox, s3, warehouse)
    request = sandbox.adobe._jobs[job_id].request
    assert [s["segmentId"] for s in request["filter"]["segments"]] == SEGMENTS
    assert request["filter"]["fromIngestTimestamp"] == "2026-11-21T00:00:00+00:00"
    # the job, then its batch: the wait read Catalog once the job had SUCCEEDED
    assert sandbox.adobe.requests_to("/data/foundation/catalog/batches/*", "GET")


def test_a_manual_run_without_a_logical_date_exports_every_profile(flow, sandbox, s3, warehouse):
    # Airflow 3's manual runs have no logical date, so no data interval: the first one (no earlier
    # successful run) exports profiles ingested at any time, and lands them under run_after's day.
    flow.get_task("export_profiles").deferrable = False
    run = flow.test(logical_date=None, run_after=RUN_AFTER)
    assert run.logical_date is None and run.data_interval_start is None
    assert run.state == "success", _states(run)
    job_id = _check_landed(sandbox, s3, warehouse, prefix=f"raw/aep/profiles/ds={RUN_AFTER:%Y-%m-%d}/")
    assert "fromIngestTimestamp" not in sandbox.adobe._jobs[job_id].request.get("filter", {})


def test_a_second_run_reuses_the_dataset(flow, sandbox, s3, warehouse):
    flow.get_task("export_profiles").deferrable = False
    assert flow.test(logical_date=LOGICAL_DATE).state == "success"
    assert flow.test(logical_date=datetime(2026, 11, 23, tzinfo=timezone.utc)).state == "success"
    assert len(sandbox.adobe.requests_to("/data/foundation/catalog/dataSets", "POST")) == 1
    datasets = {j.dataset_id for j in sandbox.adobe._jobs.values()}
    assert len(sandbox.adobe._jobs) == 2 and len(datasets) == 1


def test_a_failed_job_fails_the_run_with_every_error(flow, sandbox, s3, warehouse, capfd):
    sandbox.adobe.failing_segments = {"vip-customers"}
    flow.get_task("export_profiles").deferrable = True
    run = flow.test(logical_date=LOGICAL_DATE)
    states = _states(run)
    assert states["export_profiles"] == "failed" and states["land"] != "success", states
    task_log = "".join(capfd.readouterr())
    assert "ended with status FAILED" in task_log
    assert "[0090000009] Error writing profiles" in task_log and "[unknown] Job aborted." in task_log
    # not retried, although the DAG allows retries: one job only
    assert len(sandbox.adobe.requests_to("/data/core/ups/export/jobs", "POST")) == 1
    assert s3.keys() == []


def test_a_retry_reattaches_to_the_job_instead_of_creating_another(flow, sandbox, s3, warehouse):
    """Try 1 creates the job and then fails (its first look gets a proxy's page instead of JSON,
    which fails the try and which Airflow retries, as a worker that died would leave it); try 2 finds
    the run's job and waits for it. (A 403 would fail the task for good: a refused call is not
    retried; a 5xx the wait rides out.)"""
    sandbox.adobe.job_seconds = 2.0
    task = flow.get_task("export_profiles")
    task.deferrable = False
    task.retries = 1
    task.retry_delay = 0
    sandbox.adobe.faults.answer("/data/core/ups/export/jobs/*", body="<html>Bad gateway</html>", method="GET")
    run = flow.test(logical_date=LOGICAL_DATE)
    assert run.state == "success", _states(run)
    ti = next(t for t in run.get_task_instances() if t.task_id == "export_profiles")
    assert ti.try_number == 2
    assert len(sandbox.adobe.requests_to("/data/core/ups/export/jobs", "POST")) == 1  # one job
    _check_landed(sandbox, s3, warehouse)


def test_no_secret_in_task_logs_xcom_rendered_fields_or_trigger_kwargs(flow, sandbox, s3, warehouse, capfd):
    flow.get_task("export_profiles").deferrable = True
    run = flow.test(logical_date=LOGICAL_DATE)
    assert run.state == "success", _states(run)

    from airflow_provider_exports.hooks._auth import TOKENS
    from airflow_provider_exports.triggers.adobe_experience_platform import AdobeProfileExportJobTrigger

    kwargs = AdobeProfileExportJobTrigger(export_job_id="1", deadline=1.0).serialize()[1]
    secrets = [sandbox.adobe.connection()["password"], *(t.value for t in TOKENS._tokens.values())]
    assert len(secrets) == 2, "the run obtained a token"
    assert_no_secret(run, "".join(capfd.readouterr()), secrets, trigger_kwargs=json.dumps(kwargs))
    assert set(kwargs) == {"export_job_id", "adobe_aep_conn_id", "cancel_on_kill", "poll_interval", "deadline"}
