"""The Sitecore CDP fan-out example DAG with ``dag.test()``: list, mapped stages, one commit per
destination (sandbox → S3 on moto and SQLite); retries, failures and what XCom holds."""

from __future__ import annotations

import gzip
import hashlib
import json
import sqlite3
from datetime import datetime, timedelta, timezone

import pytest

from ._no_secret import assert_no_secret

EXPORT = "daily_loyalty_members"
LOGICAL_DATE = datetime(2026, 11, 22, tzinfo=timezone.utc)
# a manual run's: before the other tests' logical dates (the metadata DB is the session's), so no
# earlier successful run: its window has no start
RUN_AFTER = datetime(2026, 11, 20, 9, 30, tzinfo=timezone.utc)
PREFIX = f"raw/sitecore/{EXPORT}_fan_out/ds={LOGICAL_DATE:%Y-%m-%d}/"
FILE_PATH = "/sitecore-cdp-exports/*/{name}"


@pytest.fixture
def flow(sandbox, s3, warehouse, load_example_dag, monkeypatch):
    monkeypatch.setenv("AIRFLOW_VAR_EXPORTS_BUCKET", s3.bucket)
    sandbox.sitecore.add_export(EXPORT, rows_per_file=100)
    dag = load_example_dag("sitecore_cdp_audience_export_fan_out.py", "sitecore_cdp_audience_export_fan_out")
    assert dag.get_task("wait_for_export").deferrable is True  # as written; the other example tests the deferral
    dag.get_task("wait_for_export").deferrable = False
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


def rows(warehouse, sql: str) -> list[tuple]:
    with sqlite3.connect(warehouse) as conn:
        return conn.execute(sql).fetchall()


def check_landed(sandbox, s3, warehouse, ref: str, total_rows: int, prefix: str = PREFIX) -> None:
    expected = sandbox.sitecore.expected_files(ref)
    manifest = s3.manifest(prefix)
    assert manifest["job_ref"] == ref and manifest["job_details"]["friendlyId"] == EXPORT
    landed = {f["name"]: f for f in manifest["files"]}
    assert sorted(landed) == sorted(name for name, *_ in expected)
    run_dir = prefix + "run-" + manifest["run_id"] + "/"
    assert sorted(s3.keys(prefix)) == sorted([prefix + "_manifest.json", *(run_dir + n for n in landed)])
    for name, size, sha256, n in expected:
        body = s3.read(landed[name]["location"])
        assert len(body) == size == landed[name]["bytes"]
        assert hashlib.sha256(body).hexdigest() == sha256 == landed[name]["sha256"]
        assert gzip.decompress(body).count(b"\n") == n
    assert rows(warehouse, "select count(*), count(distinct ref) from loyalty_members_fan_out") == [
        (total_rows, total_rows)
    ]
    assert (ref,) in rows(warehouse, "select job_ref from exports_manifest")
    # the staging tables are dropped after the commit
    assert not rows(warehouse, "select name from sqlite_master where name like '_exports_stage%'")


def downloads(sandbox, name: str) -> int:
    return len(sandbox.sitecore.requests_to(FILE_PATH.format(name=name), "GET"))


def test_lands_and_loads_through_mapped_tasks(flow, sandbox, s3, warehouse):
    ref = sandbox.sitecore.add_job(EXPORT, rows=500, end_time=LOGICAL_DATE + timedelta(hours=3))
    run = flow.test(logical_date=LOGICAL_DATE)
    got = states(run)
    assert run.state == "success", got
    # 5 files, 2 per group: 3 mapped tasks per destination
    assert got["land_files"] == got["load_files"] == ["success"] * 3, got
    check_landed(sandbox, s3, warehouse, ref, 500)
    # each file downloaded once per destination; each group asked Sitecore for fresh URLs itself
    assert {downloads(sandbox, name) for name, *_ in sandbox.sitecore.expected_files(ref)} == {2}
    assert len(sandbox.sitecore.requests_to("/v2/audienceExports/executions/*")) >= 1 + 3 + 3


def test_a_manual_run_without_a_logical_date_lands_the_newest_job(flow, sandbox, s3, warehouse):
    # no logical date, no data interval, no earlier successful run: the newest finished job
    ref = sandbox.sitecore.add_job(EXPORT, rows=300, end_time=LOGICAL_DATE - timedelta(days=20))
    run = flow.test(logical_date=None, run_after=RUN_AFTER)
    assert run.logical_date is None and run.data_interval_start is None
    assert run.state == "success", states(run)
    check_landed(sandbox, s3, warehouse, ref, 300, prefix=f"raw/sitecore/{EXPORT}_fan_out/ds=2026-11-20/")


def test_a_failed_group_is_retried_alone(flow, sandbox, s3, warehouse):
    ref = sandbox.sitecore.add_job(EXPORT, rows=500, end_time=LOGICAL_DATE + timedelta(hours=3))
    names = [name for name, *_ in sandbox.sitecore.expected_files(ref)]
    # the third file (group 1) is refused once: its group fails, then its retry moves it
    sandbox.sitecore.faults.server_error(FILE_PATH.format(name=names[2]), times=1, status=404)
    run = flow.test(logical_date=LOGICAL_DATE)
    assert run.state == "success", states(run)
    tries = {ti.map_index: ti.try_number for ti in run.get_task_instances() if ti.task_id == "land_files"}
    assert tries == {0: 1, 1: 2, 2: 1}
    # group 1 (files 2 and 3) downloaded again in its retry; the other groups' files were not
    # (each file is downloaded once more by the SQL load)
    assert [downloads(sandbox, n) for n in names] == [2, 2, 3, 3, 2]
    check_landed(sandbox, s3, warehouse, ref, 500)


def test_a_run_that_fails_for_good_leaves_the_last_good_run(flow, sandbox, s3, warehouse):
    first = sandbox.sitecore.add_job(EXPORT, rows=300, end_time=LOGICAL_DATE + timedelta(hours=1))
    assert flow.test(logical_date=LOGICAL_DATE).state == "success"
    before = s3.manifest(PREFIX)
    kept = sorted(s3.keys(PREFIX))
    second = sandbox.sitecore.add_job(EXPORT, rows=700, end_time=LOGICAL_DATE + timedelta(hours=2))
    names = [name for name, *_ in sandbox.sitecore.expected_files(second)]
    sandbox.sitecore.faults.server_error(FILE_PATH.format(name=names[-1]), times=None, status=404)
    run = flow.test(logical_date=LOGICAL_DATE)
    got = states(run)
    assert "failed" in got["land_files"] and got["commit_land"] == ["upstream_failed"], got
    # the manifest and every object it lists are untouched; the failed run's staged objects are
    # in its own run directory, which no manifest lists
    assert s3.manifest(PREFIX) == before
    assert set(kept) <= set(s3.keys(PREFIX))
    for f in before["files"]:
        assert s3.read(f["location"])
    assert rows(warehouse, "select count(*) from loyalty_members_fan_out") == [(300,)]
    assert rows(warehouse, "select job_ref from exports_manifest") == [(first,)]

    # the next good run commits, and its commit removes what the failed run left
    sandbox.sitecore.faults.clear()
    flow.get_task("commit_land").stale_after = 0
    flow.get_task("commit_load").stale_after = 0
    assert flow.test(logical_date=LOGICAL_DATE).state == "success"
    check_landed(sandbox, s3, warehouse, second, 700)


def test_xcom_holds_references_only(flow, sandbox, s3, warehouse, capfd):
    sandbox.sitecore.add_job(EXPORT, rows=300, end_time=LOGICAL_DATE + timedelta(hours=1))
    run = flow.test(logical_date=LOGICAL_DATE)
    assert run.state == "success", states(run)

    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    from airflow_provider_exports.hooks._auth import TOKENS

    with create_session() as session:
        xcoms = {
            (x.task_id, x.map_index): x.value for x in session.query(XComModel).filter_by(run_id=run.run_id)
        }
    text = json.dumps(list(xcoms.values()))
    assert "http://" not in text and "https://" not in text
    groups = xcoms[("list_files", -1)]
    group = json.loads(groups) if isinstance(groups, str) else groups
    assert [sorted(f) for f in group[0]["files"]] == [["attributes", "name", "ref", "size", "size_range"]] * 2
    secrets = [
        sandbox.sitecore.connection()["password"],
        *(t.value for t in TOKENS._tokens.values()),
        "X-Amz-Signature",
        "X-Amz-Security-Token",
        "Signature=",
    ]
    assert_no_secret(run, "".join(capfd.readouterr()), secrets)
