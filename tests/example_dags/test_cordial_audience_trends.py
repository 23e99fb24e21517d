"""The Cordial example DAG end to end with ``dag.test()``: the sandbox creates the jobs and delivers
their files into moto's S3 the way Cordial delivers into a customer's bucket, and the transfers load
them into SQLite. Every request the hook sends is checked against Cordial's Swagger."""

from __future__ import annotations

import csv
import gzip
import io
import json
import re
import sqlite3
from datetime import datetime, timedelta, timezone

import pytest

from ._no_secret import assert_no_secret

LOGICAL_DATE = datetime(2026, 11, 22, tzinfo=timezone.utc)
DAY = LOGICAL_DATE.date()
KEY_ID, SECRET = "FAKE-DELIVERY-KEY-ID", "fake-delivery-secret-for-tests-only"
MEMBERS = 120

pytestmark = pytest.mark.usefixtures("cordial_requests")


@pytest.fixture
def flow(sandbox, s3, warehouse, load_example_dag, monkeypatch):
    monkeypatch.setenv("AIRFLOW_VAR_EXPORTS_BUCKET", s3.bucket)
    aws = {"conn_type": "aws", "login": KEY_ID, "password": SECRET, "extra": {"region_name": "us-east-1"}}
    monkeypatch.setenv("AIRFLOW_CONN_CORDIAL_DELIVERY", json.dumps(aws))
    sandbox.cordial.s3_endpoint_url = s3.endpoint_url
    sandbox.cordial.job_seconds = 0.3
    sandbox.cordial.add_audience("loyal-customers", members=MEMBERS)
    sandbox.cordial.add_audience("newsletter-subscribers")
    dag = load_example_dag("cordial_audience_trends.py", "cordial_audience_trends")
    for task_id in ("export_trends", "export_members"):
        dag.get_task(task_id).poll_interval = 0.2
    return dag


def states(run) -> dict[str, str]:
    return {ti.task_id: ti.state for ti in run.get_task_instances()}


def rows(warehouse, sql: str) -> list[tuple]:
    with sqlite3.connect(warehouse) as conn:
        return conn.execute(sql).fetchall()


def check_landed(sandbox, s3, warehouse, run: str = "20261122T000000Z", day=DAY) -> None:
    """``run``: the run's part of the job names (its logical date, else its run id); ``day``: the
    run's day (its logical date's, else run_after's)."""
    (trends_job,) = sandbox.cordial.jobs_named(f"cordial-audience-trends-export-trends-{run}")
    (members_job,) = sandbox.cordial.jobs_named(f"cordial-audience-trends-export-members-{run}")
    prefix = f"raw/cordial/ds={day.isoformat()}/"
    assert sorted(s3.keys(prefix)) == [
        f"{prefix}cordial-audience-trends-export-members-{run}.csv.gz",
        f"{prefix}cordial-audience-trends-export-trends-{run}.csv",
    ]
    # trends: the last seven full days, a row per audience and day
    header, *wide = list(csv.reader(io.StringIO(sandbox.cordial.export_file(trends_job).decode())))
    days = [(day - timedelta(days=n)).isoformat() for n in range(7, 0, -1)]
    assert header[1:] == days
    expected = sorted((r[0], d, int(c)) for r in wide for d, c in zip(days, r[1:], strict=True))
    assert (
        rows(warehouse, "SELECT audience, day, count FROM cordial_audience_trends ORDER BY 1, 2") == expected
    )
    assert len(expected) == 2 * 7
    # members: as delivered (a gzipped CSV with its header)
    delivered = gzip.decompress(sandbox.cordial.export_file(members_job)).decode().splitlines()
    assert delivered[0] == "email,first_name,last_name" and len(delivered) == MEMBERS + 1
    stored = rows(warehouse, "SELECT email, first_name, last_name FROM cordial_loyal_members ORDER BY email")
    assert [",".join(r) for r in stored] == sorted(delivered[1:])
    manifests = rows(warehouse, "SELECT destination, vendor, job_ref FROM exports_manifest ORDER BY 1")
    assert manifests == [
        ("cordial_audience_trends", "Cordial", trends_job),
        ("cordial_loyal_members", "Cordial", members_job),
    ]


def test_deferred_waits_create_deliver_and_load(flow, sandbox, s3, warehouse):
    sandbox.cordial.job_reads = 2  # each job: Scheduled at the first look, Done at the second
    run = flow.test(logical_date=LOGICAL_DATE)
    assert run.state == "success", states(run)
    check_landed(sandbox, s3, warehouse)
    # two looks at each job by its wait, one by each transfer before it loads
    assert len(sandbox.cordial.requests_to("/v2/jobs/*")) == 2 * 2 + 2


def test_a_manual_run_without_a_logical_date_takes_the_week_before_run_after(flow, sandbox, s3, warehouse):
    run_after = datetime(2026, 11, 20, 9, 30, tzinfo=timezone.utc)
    run = flow.test(logical_date=None, run_after=run_after)  # Airflow 3's manual runs: no data interval
    assert run.logical_date is None and run.data_interval_start is None
    assert run.state == "success", states(run)
    # the jobs are named after the run id (the same in every try), the files land under run_after's day
    check_landed(sandbox, s3, warehouse, run=re.sub(r"[^A-Za-z0-9]+", "-", run.run_id), day=run_after.date())


def test_waits_in_the_worker_just_the_same(flow, sandbox, s3, warehouse):
    for task_id in ("export_trends", "export_members"):
        flow.get_task(task_id).deferrable = False
    run = flow.test(logical_date=LOGICAL_DATE)
    assert run.state == "success", states(run)
    check_landed(sandbox, s3, warehouse)


def test_no_secret_in_task_logs_xcom_or_rendered_fields(
    flow, sandbox, s3, warehouse, capfd, cordial_requests
):
    run = flow.test(logical_date=LOGICAL_DATE)
    assert run.state == "success", states(run)
    # the keys did travel: in the request bodies, and only there
    bodies = [b for method, _url, _params, b in cordial_requests if method == "POST"]
    assert {b["destination"]["aws_secret_access_key"] for b in bodies} == {SECRET}
    secrets = [sandbox.cordial.connection()["password"], KEY_ID, SECRET]
    assert_no_secret(run, "".join(capfd.readouterr()), secrets)


def test_a_failed_export_fails_its_branch_at_once(flow, sandbox, s3, warehouse, capfd):
    sandbox.cordial.fail_next_jobs(1)  # whichever export the run creates first
    run = flow.test(logical_date=LOGICAL_DATE)
    got = states(run)
    branches = {got[f"export_{b}"] + "/" + got[f"load_{b}"] for b in ("trends", "members")}
    assert branches == {"failed/upstream_failed", "success/success"}  # failed at once, not retried
    assert "ended with status Failed" in "".join(capfd.readouterr())
    assert len(sandbox.cordial.requests_to("/v2/*export*", method="POST")) == 2
