"""The Cordial fan-out example DAG with ``dag.test()``: the delivered trends file listed, staged by
a mapped task and merged by the commit (sandbox → moto's S3 → SQLite)."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from datetime import datetime, timedelta, timezone

import pytest

from ._no_secret import assert_no_secret

LOGICAL_DATE = datetime(2026, 11, 22, tzinfo=timezone.utc)
KEY_ID, SECRET = "FAKE-DELIVERY-KEY-ID", "fake-delivery-secret-for-tests-only"

pytestmark = pytest.mark.usefixtures("cordial_requests")


@pytest.fixture
def flow(sandbox, s3, warehouse, load_example_dag, monkeypatch):
    monkeypatch.setenv("AIRFLOW_VAR_EXPORTS_BUCKET", s3.bucket)
    aws = {"conn_type": "aws", "login": KEY_ID, "password": SECRET, "extra": {"region_name": "us-east-1"}}
    monkeypatch.setenv("AIRFLOW_CONN_CORDIAL_DELIVERY", json.dumps(aws))
    # an S3 endpoint nothing listens on: a stage that reads through it fails for good
    extra = {"endpoint_url": "http://127.0.0.1:9", "config_kwargs": {"retries": {"max_attempts": 1}}}
    broken = {"conn_type": "aws", "login": "x", "password": "y", "extra": extra}
    monkeypatch.setenv("AIRFLOW_CONN_BROKEN_S3", json.dumps(broken))
    sandbox.cordial.s3_endpoint_url = s3.endpoint_url
    sandbox.cordial.job_seconds = 0.3
    sandbox.cordial.add_audience("loyal-customers", members=10)
    sandbox.cordial.add_audience("newsletter-subscribers")
    dag = load_example_dag("cordial_audience_trends_fan_out.py", "cordial_audience_trends_fan_out")
    export = dag.get_task("export_trends")
    export.deferrable = False
    export.poll_interval = 0.2
    # the mapped task keeps the DAG's retries (2): a mapped task instance takes them when it is
    # expanded from the serialized DAG; its retry delay is read from the task, here no wait
    dag.get_task("load_files").retry_delay = timedelta(0)
    return dag


def states(run) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for ti in run.get_task_instances():
        found.setdefault(ti.task_id, []).append(ti.state)
    return found


def rows(warehouse, sql: str) -> list[tuple]:
    with sqlite3.connect(warehouse) as conn:
        return conn.execute(sql).fetchall()


def expected_trends(sandbox, day) -> list[tuple]:
    name = f"cordial-audience-trends-fan-out-export-trends-{day:%Y%m%d}T000000Z"
    (job,) = sandbox.cordial.jobs_named(name)
    header, *wide = list(csv.reader(io.StringIO(sandbox.cordial.export_file(job).decode())))
    return sorted((r[0], d, int(c)) for r in wide for d, c in zip(header[1:], r[1:], strict=True))


def xcoms(run) -> dict[tuple[str, int], object]:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        found = session.query(XComModel).filter_by(run_id=run.run_id, key="return_value")
        return {(x.task_id, x.map_index): _value(x.value) for x in found}


def _value(value):
    return json.loads(value) if isinstance(value, str) else value


TRENDS = "SELECT audience, day, count FROM cordial_audience_trends_fan_out ORDER BY 1, 2"


def asset_events(name: str) -> int:
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session

    with create_session() as session:
        found = session.query(AssetEvent).join(AssetModel, AssetEvent.asset_id == AssetModel.id)
        return found.filter(AssetModel.name == name).count()


def test_lists_stages_and_merges_the_delivered_file(flow, sandbox, s3, warehouse):
    table = "warehouse://cordial_audience_trends_fan_out"
    events = asset_events(table)
    run = flow.test(logical_date=LOGICAL_DATE)
    got = states(run)
    assert run.state == "success", got
    assert got["load_files"] == ["success"]  # Cordial delivers one file: one group
    expected = expected_trends(sandbox, LOGICAL_DATE)
    assert rows(warehouse, TRENDS) == expected and len(expected) == 2 * 7
    assert rows(warehouse, "SELECT vendor, destination FROM exports_manifest") == [
        ("Cordial", "cordial_audience_trends_fan_out")
    ]
    # a rerun of the same run reattaches to its job, which is committed: nothing moves again
    again = flow.test(logical_date=LOGICAL_DATE)
    assert again.state == "success"
    assert xcoms(again)[("commit_load", -1)]["skipped"] is True
    assert rows(warehouse, TRENDS) == expected
    assert asset_events(table) == events + 1  # the table's Asset marked by the first run only


def test_a_manual_run_without_a_logical_date_merges_the_week_before_run_after(flow, sandbox, s3, warehouse):
    run = flow.test(logical_date=None, run_after=datetime(2026, 11, 20, 9, 30, tzinfo=timezone.utc))
    assert run.logical_date is None and run.data_interval_start is None  # Airflow 3's manual runs
    assert run.state == "success", states(run)
    (job,) = sandbox.cordial.job_ids()
    assert s3.keys("raw/cordial_fan_out/ds=2026-11-20/") == [
        f"raw/cordial_fan_out/ds=2026-11-20/{sandbox.cordial.file_name(job)}"
    ]
    header, *wide = list(csv.reader(io.StringIO(sandbox.cordial.export_file(job).decode())))
    assert header[1:] == [f"2026-11-{d}" for d in range(13, 20)]
    expected = sorted((r[0], d, int(c)) for r in wide for d, c in zip(header[1:], r[1:], strict=True))
    assert rows(warehouse, TRENDS) == expected and len(expected) == 2 * 7


def test_a_run_that_fails_for_good_leaves_the_table(flow, sandbox, s3, warehouse):
    assert flow.test(logical_date=LOGICAL_DATE).state == "success"
    before = rows(warehouse, TRENDS)
    flow.get_task("load_files").partial_kwargs["aws_conn_id"] = "broken_s3"
    run = flow.test(logical_date=LOGICAL_DATE + timedelta(days=1))
    got = states(run)
    assert got["load_files"] == ["failed"] and got["commit_load"] == ["upstream_failed"], got
    assert rows(warehouse, TRENDS) == before
    assert len(rows(warehouse, "SELECT job_ref FROM exports_manifest")) == 1


def test_xcom_holds_references_only(flow, sandbox, s3, warehouse, capfd):
    run = flow.test(logical_date=LOGICAL_DATE)
    assert run.state == "success", states(run)

    text = json.dumps(list(xcoms(run).values()))
    assert "http://" not in text and "https://" not in text
    assert_no_secret(
        run, "".join(capfd.readouterr()), [sandbox.cordial.connection()["password"], KEY_ID, SECRET]
    )
