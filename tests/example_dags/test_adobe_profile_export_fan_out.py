"""The Adobe Experience Platform fan-out example DAG with ``dag.test()``: list the batch files,
mapped stages into S3 (moto) and SQLite, one commit per destination; retries, failures, XCom."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from datetime import datetime, timedelta, timezone

import pytest

from ._no_secret import assert_no_secret

LOGICAL_DATE = datetime(2026, 11, 22, tzinfo=timezone.utc)
# a manual run's: before the other tests' logical dates (the metadata DB is the session's), so no
# earlier successful run: its window has no start
RUN_AFTER = datetime(2026, 11, 20, 9, 30, tzinfo=timezone.utc)
PREFIX = f"raw/aep/profiles_fan_out/ds={LOGICAL_DATE:%Y-%m-%d}/"
FILES = "/data/foundation/export/files/{fid}"


@pytest.fixture
def flow(sandbox, s3, warehouse, load_example_dag, monkeypatch):
    monkeypatch.setenv("AIRFLOW_VAR_EXPORTS_BUCKET", s3.bucket)
    sandbox.adobe.job_seconds = 0.3
    sandbox.adobe.default_rows = 300
    sandbox.adobe.files_per_batch = 3
    dag = load_example_dag("adobe_profile_export_fan_out.py", "adobe_profile_export_fan_out")
    export = dag.get_task("export_profiles")
    export.deferrable = False
    export.poll_interval = 0.2
    # the mapped tasks keep the DAG's retries (2): a mapped task instance takes them when it is
    # expanded from the serialized DAG; their retry delay is read from the task, here no wait
    for task_id in ("land_files", "load_files"):
        dag.get_task(task_id).retry_delay = timedelta(0)
    return dag


def states(run) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for ti in run.get_task_instances():
        found.setdefault(ti.task_id, []).append(ti.state)
    return found


def count(warehouse, sql: str):
    with sqlite3.connect(warehouse) as conn:
        return conn.execute(sql).fetchall()


def the_files(sandbox, job_id):
    (batch_id,) = sandbox.adobe.batch_ids(job_id)
    return batch_id, sandbox.adobe.expected_files(batch_id)


def downloads(sandbox, fid: str) -> int:
    """Reads of the file's bytes (``?path=``), not the listing of its dataset file (no ``path``)."""
    return len([r for r in sandbox.adobe.requests_to(FILES.format(fid=fid), "GET") if "path" in r.query])


def check_landed(sandbox, s3, warehouse, job_id, rows: int, prefix: str = PREFIX) -> None:
    batch_id, expected = the_files(sandbox, job_id)
    manifest = s3.manifest(prefix)
    assert manifest["job_ref"] == str(job_id) and manifest["job_details"]["batchIds"] == [batch_id]
    landed = {f["name"]: f for f in manifest["files"]}
    assert sorted(landed) == sorted(f"{batch_id}/{fid}/{name}" for fid, name, *_ in expected)
    for fid, name, size, sha256, _rows in expected:
        record = landed[f"{batch_id}/{fid}/{name}"]
        body = s3.read(record["location"])
        assert len(body) == size and hashlib.sha256(body).hexdigest() == sha256 == record["sha256"]
    assert count(warehouse, "select count(*) from aep_profiles_fan_out") == [(rows,)]
    # one table, typed once from every file: the nested XDM fields are JSON text
    membership = count(warehouse, "select segmentMembership from aep_profiles_fan_out limit 1")[0][0]
    assert "ups" in json.loads(membership)
    assert not count(warehouse, "select name from sqlite_master where name like '_exports_stage%'")


def test_lands_and_loads_through_mapped_tasks(flow, sandbox, s3, warehouse):
    run = flow.test(logical_date=LOGICAL_DATE)
    got = states(run)
    assert run.state == "success", got
    assert got["land_files"] == got["load_files"] == ["success"] * 3, got
    (job_id,) = sandbox.adobe._jobs
    check_landed(sandbox, s3, warehouse, job_id, 600)
    _, expected = the_files(sandbox, job_id)
    assert [downloads(sandbox, fid) for fid, *_ in expected] == [2, 2, 2]  # once per destination


def test_a_manual_run_without_a_logical_date_lands_and_loads(flow, sandbox, s3, warehouse):
    run = flow.test(logical_date=None, run_after=RUN_AFTER)  # Airflow 3's manual runs: no data interval
    assert run.logical_date is None and run.data_interval_start is None
    assert run.state == "success", states(run)
    (job_id,) = sandbox.adobe._jobs
    check_landed(sandbox, s3, warehouse, job_id, 600, prefix="raw/aep/profiles_fan_out/ds=2026-11-20/")
    assert "fromIngestTimestamp" not in sandbox.adobe._jobs[job_id].request.get("filter", {})


def test_a_failed_group_is_retried_alone(flow, sandbox, s3, warehouse):
    # the job's files are not known before the run: let the listing (three dataset files) and the
    # three S3 stages through, then refuse the first SQL stage's read once
    sandbox.adobe.faults.server_error(FILES.format(fid="*"), times=1, status=404, method="GET")
    sandbox.adobe.faults.active[0].skip = 3 + 3
    run = flow.test(logical_date=LOGICAL_DATE)
    assert run.state == "success", states(run)
    tries = {ti.map_index: ti.try_number for ti in run.get_task_instances() if ti.task_id == "load_files"}
    (retried,) = [i for i, n in tries.items() if n == 2]
    assert sorted(tries.values()) == [1, 1, 2]
    (job_id,) = sandbox.adobe._jobs
    _, expected = the_files(sandbox, job_id)
    # one file per group, in listing order: the retried group's file was downloaded three times
    # (its S3 stage, its failed SQL stage, the retry), every other file twice (once per destination)
    counts = [downloads(sandbox, fid) for fid, *_ in expected]
    assert counts == [3 if i == retried else 2 for i in range(3)]
    check_landed(sandbox, s3, warehouse, job_id, 600)


def test_a_run_that_fails_for_good_leaves_the_last_good_run(flow, sandbox, s3, warehouse):
    assert flow.test(logical_date=LOGICAL_DATE).state == "success"
    before = s3.manifest(PREFIX)
    first_rows = count(warehouse, "select count(*) from aep_profiles_fan_out")
    manifests = count(warehouse, "select job_ref from exports_manifest")
    # the next run lists its three dataset files, lands its first file, then no read succeeds
    sandbox.adobe.faults.server_error(FILES.format(fid="*"), times=None, status=404, method="GET")
    sandbox.adobe.faults.active[0].skip = 3 + 1
    run = flow.test(logical_date=LOGICAL_DATE)
    got = states(run)
    assert "failed" in got["land_files"] and got["commit_land"] == ["upstream_failed"], got
    assert s3.manifest(PREFIX) == before
    for f in before["files"]:
        assert s3.read(f["location"])
    assert count(warehouse, "select count(*) from aep_profiles_fan_out") == first_rows
    assert count(warehouse, "select job_ref from exports_manifest") == manifests


def test_xcom_holds_references_only(flow, sandbox, s3, warehouse, capfd):
    run = flow.test(logical_date=LOGICAL_DATE)
    assert run.state == "success", states(run)

    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    from airflow_provider_exports.hooks._auth import TOKENS

    with create_session() as session:
        text = json.dumps([x.value for x in session.query(XComModel).filter_by(run_id=run.run_id)])
    assert "http://" not in text and "https://" not in text
    secrets = [sandbox.adobe.connection()["password"], *(t.value for t in TOKENS._tokens.values())]
    assert len(secrets) == 2, "the run obtained a token"
    assert_no_secret(run, "".join(capfd.readouterr()), secrets)
