"""CordialS3ToSqlOperator: what a Cordial job delivered into S3 (moto, written by the sandbox the way
Cordial writes into a customer's bucket) loaded into SQLite and PostgreSQL.

Jobs are created with the hook over real HTTP; the transfer's ``execute`` runs with an empty context
(it reads none). The example DAG test runs the whole flow with ``dag.test()``.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import sqlite3
import time

import pytest

from airflow_provider_exports.exceptions import ExportConfigError, ExportJobFailed, TransferError
from airflow_provider_exports.hooks.cordial import CordialHook
from airflow_provider_exports.transfers.cordial_to_sql import CordialS3ToSqlOperator

pytestmark = pytest.mark.usefixtures("cordial_requests")


@pytest.fixture
def cordial_s3(sandbox, s3):
    sandbox.cordial.s3_endpoint_url = s3.endpoint_url
    sandbox.cordial.job_seconds = 0.05
    sandbox.cordial.add_audience("vip", base_size=5000)
    sandbox.cordial.add_audience("lapsed", members=40)
    return s3


def deliver(sandbox, s3, kind: str = "audience_trends", *, wait: bool = True, **args) -> dict:
    """Create a job delivering to S3, wait until it is Done, and return the create operator's reference."""
    hook = CordialHook()
    destination = {
        "type": "S3",
        "aws_bucket": s3.bucket,
        "aws_region": "us-east-1",
        "path": "cordial/exports",
        "aws_access_key_id": "testing",
        "aws_secret_access_key": "testing",
    }
    if kind == "audience_trends":
        args = {
            "name": "weekly-trends",
            "audiences": ["vip", "lapsed"],
            "selected_timeframe_start": "2026-11-16",
            "selected_timeframe_end": "2026-11-22",
            **args,
        }
        job_id = hook.create_audience_trends_export(destination=destination, **args)
        delivery = {"export_type": "csv", "compress": False, "show_header": True}
    else:
        args = {
            "name": "lapsed-members",
            "fields": ["email", "first_name"],
            "account_id": 1,
            "audience_key": "lapsed",
            **args,
        }
        job_id = hook.create_contact_export(destination=destination, **args)
        delivery = {
            k: args.get(k, d) for k, d in (("export_type", "csv"), ("compress", False), ("show_header", True))
        }
    deadline = time.monotonic() + 20
    while wait and hook.get_job(job_id)["status"] not in ("Done", "Failed"):
        assert time.monotonic() < deadline, "the sandbox job did not finish"
        time.sleep(0.05)
    return {
        "vendor": "Cordial",
        "job_id": job_id,
        "name": args["name"],
        "export": kind,
        "destination": {"type": "S3", "bucket": s3.bucket, "path": "cordial/exports", "region": None},
        **delivery,
        "file_name": None,
    }


def transfer(export, **overrides) -> CordialS3ToSqlOperator:
    kwargs = {
        "task_id": "load",
        "export": export,
        "conn_id": "warehouse",
        "table": "audience_trends",
        **overrides,
    }
    return CordialS3ToSqlOperator(**kwargs)


def wide_csv(sandbox, job_id: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(sandbox.cordial.export_file(job_id).decode())))


def long_rows(wide: list[list[str]]) -> list[tuple]:
    header, *rows = wide
    return sorted(
        (row[0], day, int(count)) for row in rows for day, count in zip(header[1:], row[1:], strict=True)
    )


def rows(warehouse, sql: str) -> list[tuple]:
    with sqlite3.connect(warehouse) as conn:
        return conn.execute(sql).fetchall()


def test_trends_load_long_into_sqlite(sandbox, cordial_s3, warehouse):
    export = deliver(sandbox, cordial_s3)
    summary = transfer(export).execute({})

    expected = long_rows(wide_csv(sandbox, export["job_id"]))
    assert len(expected) == 2 * 7
    assert rows(warehouse, "SELECT audience, day, count FROM audience_trends ORDER BY 1, 2") == expected
    assert rows(warehouse, "SELECT typeof(day), typeof(count) FROM audience_trends LIMIT 1") == [
        ("text", "integer")
    ]
    assert [r[1:3] for r in rows(warehouse, "PRAGMA table_info(audience_trends)")] == [
        ("audience", "TEXT"),
        ("day", "DATE"),
        ("count", "BIGINT"),
        ("_source_file", "TEXT"),
    ]
    assert (summary["rows"], summary["skipped"], summary["job_ref"]) == (14, False, export["job_id"])
    (manifest,) = rows(warehouse, "SELECT manifest FROM exports_manifest")
    manifest = json.loads(manifest[0])
    assert manifest["vendor"] == "Cordial" and manifest["export_ref"] == "weekly-trends"
    assert manifest["files"][0]["bytes"] == len(sandbox.cordial.export_file(export["job_id"]))  # as delivered
    # every row names its file as the manifest does
    assert rows(warehouse, "SELECT DISTINCT _source_file FROM audience_trends") == [(manifest["files"][0]["name"],)]
    assert manifest["job_details"]["source"] == f"s3://{cordial_s3.bucket}/cordial/exports/weekly-trends.csv"
    # a rerun of the same job finds its manifest row and skips
    assert transfer(export).execute({})["skipped"] is True


def test_daily_merge_keeps_one_row_per_audience_and_day(sandbox, cordial_s3, postgres, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_PG", postgres.airflow_conn_json())
    conn = postgres.connect()
    conn.autocommit = True
    conn.cursor().execute("DROP SCHEMA IF EXISTS public CASCADE; CREATE SCHEMA public")
    load = {"conn_id": "pg", "mode": "merge", "key_columns": ["audience", "day"]}
    first = deliver(
        sandbox, cordial_s3, selected_timeframe_start="2026-11-16", selected_timeframe_end="2026-11-22"
    )
    transfer(first, **load).execute({})
    # the next week's export overlaps by two days and lands under another name
    second = deliver(
        sandbox,
        cordial_s3,
        name="next-week",
        selected_timeframe_start="2026-11-21",
        selected_timeframe_end="2026-11-27",
    )
    transfer(second, **load).execute({})

    cur = conn.cursor()
    cur.execute("SELECT audience, to_char(day, 'YYYY-MM-DD'), count FROM audience_trends ORDER BY 1, 2")
    stored = cur.fetchall()
    expected = dict(((a, d), c) for a, d, c in long_rows(wide_csv(sandbox, first["job_id"])))
    expected.update(((a, d), c) for a, d, c in long_rows(wide_csv(sandbox, second["job_id"])))
    assert stored == sorted((a, d, c) for (a, d), c in expected.items())
    assert len(stored) == 2 * 12
    cur.execute(
        "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'audience_trends' ORDER BY 1"
    )
    assert cur.fetchall() == [("_source_file", "text"), ("audience", "text"), ("count", "bigint"), ("day", "date")]
    conn.close()


@pytest.mark.parametrize(
    ("args", "decode"),
    [
        ({"compress": True}, lambda b: gzip.decompress(b).decode()),
        ({"export_type": "json"}, lambda b: b.decode()),
    ],
    ids=["csv-gzip", "json-lines"],
)
def test_contacts_load_as_delivered(sandbox, cordial_s3, warehouse, args, decode):
    export = deliver(sandbox, cordial_s3, "contacts", **args)
    summary = transfer(export, table="lapsed_members").execute({})
    assert summary["rows"] == 40
    stored = rows(warehouse, "SELECT email, first_name FROM lapsed_members ORDER BY email")
    assert stored[0] == ("lapsed-00000@example.com", "first_name-0") and len(stored) == 40
    delivered = decode(sandbox.cordial.export_file(export["job_id"]))
    assert "lapsed-00039@example.com" in delivered


def test_the_ui_download_destination_cannot_be_loaded(sandbox):
    export = {"job_id": "0" * 24, "name": "n", "export": "contacts", "destination": {"type": "AWS"}}
    with pytest.raises(ExportConfigError, match="Cordial offers no download API") as err:
        transfer(export)
    assert err.value.field == "export.destination"
    other = {**export, "destination": {"type": "DROPBOX", "path": "/in"}}
    with pytest.raises(ExportConfigError, match="delivered to S3, SFTP, FTP, GCS, AZUREBLOB"):
        transfer(other)


def test_a_job_that_is_not_done_is_not_loaded(sandbox, cordial_s3, warehouse):
    sandbox.cordial.job_seconds = 60
    export = deliver(sandbox, cordial_s3, wait=False)
    with pytest.raises(TransferError, match=r"status Scheduled.*not delivered yet"):
        transfer(export).execute({})
    sandbox.cordial.job_seconds = 0.05
    sandbox.cordial.fail_next_jobs(1)
    failed = deliver(sandbox, cordial_s3, name="failing")
    with pytest.raises(ExportJobFailed, match="ended with status Failed"):
        transfer(failed).execute({})
    assert (
        not warehouse.exists()
        or rows(warehouse, "SELECT name FROM sqlite_master WHERE name = 'audience_trends'") == []
    )


def test_a_missing_file_is_named_with_what_is_there(sandbox, cordial_s3):
    export = deliver(sandbox, cordial_s3)
    cordial_s3.client().delete_object(Bucket=cordial_s3.bucket, Key="cordial/exports/weekly-trends.csv")
    cordial_s3.client().put_object(Bucket=cordial_s3.bucket, Key="cordial/exports/other.csv", Body=b"x")
    with pytest.raises(TransferError, match=r"weekly-trends\.csv is not there.*cordial/exports/other\.csv"):
        transfer(export).execute({})


def test_a_trends_file_of_another_layout_is_refused(sandbox, cordial_s3, warehouse):
    export = deliver(sandbox, cordial_s3)
    key = "cordial/exports/weekly-trends.csv"
    cordial_s3.client().put_object(Bucket=cordial_s3.bucket, Key=key, Body=b"audience,Nov 16\r\nvip,10\r\n")
    with pytest.raises(TransferError, match="column 'Nov 16' where a day"):
        transfer(export).execute({})


def test_a_csv_without_its_header_is_refused(sandbox, cordial_s3):
    export = deliver(sandbox, cordial_s3, "contacts", show_header=False)
    with pytest.raises(ExportConfigError, match="show_header=True") as err:
        transfer(export, table="lapsed_members").execute({})
    assert err.value.field == "export.show_header"


def test_on_kill_stops_a_load_whose_read_waits_and_leaves_nothing(
    sandbox, cordial_s3, flaky_s3, warehouse
):
    import threading

    from airflow_provider_exports.exceptions import TransferCancelled

    sandbox.cordial.add_audience("big", members=5000)
    export = deliver(sandbox, cordial_s3, "contacts", name="big-members", audience_key="big")
    # S3 goes silent 64 KiB into an answer (the HEAD's connection and the GET's may differ)
    flaky_s3.actions = [("stall", 64 * 1024)] * 3
    op = transfer(export, table="big_members", aws_conn_id="flaky_s3")
    outcome: list[BaseException | dict] = []

    def load() -> None:
        try:
            outcome.append(op.execute({}))
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=load)
    thread.start()
    assert flaky_s3.stalled.wait(30), outcome
    killed = time.monotonic()
    op.on_kill()
    thread.join(30)
    assert not thread.is_alive() and time.monotonic() - killed < 5
    assert len(outcome) == 1 and isinstance(outcome[0], TransferCancelled), outcome
    assert rows(warehouse, "SELECT name FROM sqlite_master WHERE name = 'big_members'") == []
    assert rows(warehouse, "SELECT count(*) FROM exports_manifest") == [(0,)]


@pytest.mark.parametrize(
    "planted",
    [
        {"bucket": "finance", "key": "cordial/exports/ledger.csv"},  # another bucket
        {"key": "finance/ledger.csv"},  # the export's bucket, outside its delivery path
        {"key": "cordial/exports-old/ledger.csv"},  # a sibling that only starts like the path
        "cordial/exports/weekly-trends.csv",  # not a reference at all
    ],
)
def test_a_fan_out_group_naming_another_object_is_refused(sandbox, cordial_s3, warehouse, planted):
    from airflow_provider_exports.transfers.cordial_to_sql import (
        CordialS3ListFilesOperator,
        CordialS3StageFilesToSqlOperator,
    )

    export = deliver(sandbox, cordial_s3)
    cordial_s3.client().put_object(Bucket=cordial_s3.bucket, Key="finance/ledger.csv", Body=b"a,b\n1,2\n")
    (group,) = CordialS3ListFilesOperator(task_id="list", export=export).execute({})
    ref = group["files"][0]["ref"]
    group["files"][0]["ref"] = {**ref, **planted} if isinstance(planted, dict) else planted
    stage = CordialS3StageFilesToSqlOperator(
        task_id="stage", export=export, group=group, conn_id="warehouse", table="t"
    )
    with pytest.raises(ExportConfigError, match="is not a file the export delivered") as err:
        stage.execute({})
    assert err.value.field == "group.files"
    group["files"][0]["ref"] = ref
    assert stage.execute({})["files"]  # the group as listed stages


# -- where Cordial writes: `<path>/<file name>`, the path exactly as the request sent it ------------


@pytest.mark.parametrize(
    ("sent", "key"),
    [
        ("cordial/exports", "cordial/exports/weekly-trends.csv"),  # as the provider sends a path
        # a reference whose path went out as given (before paths were sent as C-ATE recommends):
        # Cordial wrote the duplicate slash the seed warns of, and the file is read there
        ("cordial/exports/", "cordial/exports//weekly-trends.csv"),
    ],
)
def test_the_file_is_read_exactly_where_cordial_wrote_it(sandbox, cordial_s3, warehouse, sent, key):
    import httpx

    from airflow_provider_exports_sandbox.cordial import API_KEY

    body = {
        "name": "weekly-trends",
        "exportType": "csv",
        "selected_timeframe_start": "2026-11-16",
        "selected_timeframe_end": "2026-11-22",
        "audiences": ["vip", "lapsed"],
        "destination": {
            "type": "S3",
            "aws_bucket": cordial_s3.bucket,
            "aws_region": "us-east-1",
            "path": sent,
            "aws_access_key_id": "testing",
            "aws_secret_access_key": "testing",
        },
    }
    answer = httpx.post(f"{sandbox.cordial.url}/v2/audiencetrendsexport", json=body, auth=(API_KEY, ""))
    job_id = answer.json()["jobId"]
    hook = CordialHook()
    deadline = time.monotonic() + 20
    while hook.get_job(job_id)["status"] != "Done":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert cordial_s3.keys() == [key]
    export = {
        "vendor": "Cordial",
        "job_id": job_id,
        "name": "weekly-trends",
        "export": "audience_trends",
        "destination": {"type": "S3", "bucket": cordial_s3.bucket, "path": sent, "region": None},
        "export_type": "csv",
        "compress": False,
        "show_header": True,
        "file_name": None,
    }
    summary = transfer(export).execute({})
    assert summary["rows"] == 14
    (manifest,) = rows(warehouse, "SELECT manifest FROM exports_manifest")
    assert json.loads(manifest[0])["job_details"]["source"] == f"s3://{cordial_s3.bucket}/{key}"


def test_a_user_path_with_slashes_lands_where_the_transfer_looks(sandbox, cordial_s3, warehouse, run_dag):
    from datetime import datetime, timezone

    from airflow.sdk import DAG

    from airflow_provider_exports.operators.cordial import (
        CordialCreateAudienceTrendsExportOperator,
        CordialS3Destination,
    )

    sandbox.cordial.s3_iam_role = True  # Cordial writes with the account's IAM role: no keys
    with DAG("cordial_slashes", schedule="@daily", start_date=datetime(2026, 11, 22, tzinfo=timezone.utc)) as dag:
        export = CordialCreateAudienceTrendsExportOperator(
            task_id="export",
            name="weekly-trends",
            audiences=["vip", "lapsed"],
            selected_timeframe_start="2026-11-16",
            selected_timeframe_end="2026-11-22",
            destination=CordialS3Destination(
                bucket=cordial_s3.bucket, path="//cordial/{{ ds }}/", region="us-east-1"
            ),
            poll_interval=0.1,
        )
        export >> transfer(export.output)
    run = run_dag(dag, logical_date=datetime(2026, 11, 22, tzinfo=timezone.utc))
    assert {ti.task_id: ti.state for ti in run.get_task_instances()} == {"export": "success", "load": "success"}
    assert cordial_s3.keys() == ["cordial/2026-11-22/weekly-trends.csv"]
    assert rows(warehouse, "SELECT count(*) FROM audience_trends") == [(14,)]
