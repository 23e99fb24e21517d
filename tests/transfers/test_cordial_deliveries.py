"""Cordial deliveries other than S3, loaded and copied on: the sandbox uploads each export's file to a
real SFTP server (asyncssh) or FTP server (pyftpdlib) that the test run starts, with the user name
and password the create request carried, as Cordial does; the transfers read it back through
Airflow's object storage (sshfs) or fsspec's FTP filesystem with the engine's guarantees.
"""

from __future__ import annotations

import ftplib
import gzip
import json
import logging
import re
import sqlite3
import time
from datetime import datetime, timezone

import asyncssh
import pytest

from airflow_provider_exports.exceptions import ExportConfigError
from airflow_provider_exports.hooks.cordial import CordialHook
from airflow_provider_exports.transfers.cordial_to_s3 import CordialToS3Operator
from airflow_provider_exports.transfers.cordial_to_sql import CordialS3ToSqlOperator

from .conftest import DELIVERY_PASSWORD, FlakyProxy

pytestmark = pytest.mark.usefixtures("cordial_requests")

FOLDER = "/exports/cordial"
#: what a read cut for good raises: a dropped SSH connection, an FTP 426, a reset socket
CUT = (asyncssh.Error, ftplib.Error, OSError)
LOGICAL_DATE = datetime(2026, 11, 22, tzinfo=timezone.utc)


@pytest.fixture(params=["sftp", "ftp"])
def server(request, sandbox, monkeypatch):
    """One delivery server, its folder emptied, behind the connection ``cordial_<kind>`` (the one
    Cordial is given); the sandbox uploads to it."""
    import shutil

    kind = request.param
    found = request.getfixturevalue(f"{kind}_server")
    shutil.rmtree(found.root / "exports", ignore_errors=True)
    (found.root / FOLDER.lstrip("/")).mkdir(parents=True)
    monkeypatch.setenv(f"AIRFLOW_CONN_CORDIAL_{kind.upper()}", json.dumps(found.connection()))
    sandbox.cordial.server_delivery = True
    sandbox.cordial.job_seconds = 0.05
    sandbox.cordial.add_audience("lapsed", members=40)
    found.kind = kind
    return found


def request_destination(server) -> dict:
    """The destination object of a create request to ``server``, as the create operator builds it."""
    conn = server.connection()
    return {
        "type": server.kind.upper(),
        "server": conn["host"],
        "port": conn["port"],
        "username": conn["login"],
        "password": conn["password"],
        "path": FOLDER,
    }


def deliver(sandbox, server, **args) -> dict:
    """A contact export delivered to ``server``, Done; the create operator's reference to it."""
    hook = CordialHook()
    args = {
        "name": "lapsed-members",
        "fields": ["email", "first_name"],
        "account_id": 1,
        "audience_key": "lapsed",
        **args,
    }
    job_id = hook.create_contact_export(destination=request_destination(server), **args)
    deadline = time.monotonic() + 30
    while (status := hook.get_job(job_id)["status"]) not in ("Done", "Failed"):
        assert time.monotonic() < deadline, "the sandbox job did not finish"
        time.sleep(0.05)
    assert status == "Done", hook.get_job(job_id)
    kind = server.kind
    return {
        "vendor": "Cordial",
        "job_id": job_id,
        "name": args["name"],
        "export": "contacts",
        "destination": {"type": kind.upper(), f"{kind}_conn_id": f"cordial_{kind}", "path": FOLDER},
        "export_type": "csv",
        "compress": bool(args.get("compress", False)),
        "show_header": True,
        "file_name": None,
    }


def rows(warehouse, sql: str) -> list[tuple]:
    with sqlite3.connect(warehouse) as conn:
        return conn.execute(sql).fetchall()


def file_name(export: dict) -> str:
    return export["name"] + ".csv" + (".gz" if export["compress"] else "")


def test_a_delivery_loads_into_sql_with_dag_test(sandbox, server, warehouse, run_dag, capfd):
    from airflow.sdk import DAG

    from airflow_provider_exports.operators.cordial import (
        CordialCreateContactExportOperator,
        CordialFtpDestination,
        CordialSftpDestination,
    )

    if server.kind == "sftp":
        destination = CordialSftpDestination(sftp_conn_id="cordial_sftp", path=FOLDER)
    else:
        destination = CordialFtpDestination(ftp_conn_id="cordial_ftp", path=FOLDER)
    with DAG(f"cordial_{server.kind}_delivery", schedule=None, start_date=LOGICAL_DATE) as dag:
        export = CordialCreateContactExportOperator(
            task_id="export",
            destination=destination,
            fields=["email", "first_name"],
            account_id=1,
            audience_key="lapsed",
            compress=True,
            deferrable=False,
            poll_interval=0.1,
        )
        CordialS3ToSqlOperator(
            task_id="load", export=export.output, conn_id="warehouse", table="lapsed_members"
        )
    run = run_dag(dag, logical_date=LOGICAL_DATE)
    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    assert states == {"export": "success", "load": "success"}, states

    (job_id,) = sandbox.cordial.job_ids()
    name = sandbox.cordial.file_name(job_id)
    delivered = (server.root / FOLDER.lstrip("/") / name).read_bytes()
    assert delivered == sandbox.cordial.export_file(job_id)  # what Cordial uploaded, byte for byte
    lines = gzip.decompress(delivered).decode().splitlines()
    stored = rows(warehouse, "SELECT email, first_name FROM lapsed_members ORDER BY email")
    assert [",".join(r) for r in stored] == sorted(lines[1:]) and len(stored) == 40
    (manifest,) = rows(warehouse, "SELECT manifest FROM exports_manifest")
    manifest = json.loads(manifest[0])
    assert manifest["job_details"]["source"] == f"{server.kind}://127.0.0.1{FOLDER}/{name}"
    assert manifest["files"][0]["bytes"] == len(delivered)

    from tests.example_dags._no_secret import assert_no_secret

    secrets = [DELIVERY_PASSWORD, sandbox.cordial.connection()["password"]]
    assert_no_secret(run, "".join(capfd.readouterr()), secrets)


def test_a_delivery_lands_in_s3_as_delivered(sandbox, server, s3):
    export = deliver(sandbox, server, compress=True)
    summary = CordialToS3Operator(
        task_id="copy", export=export, s3_bucket=s3.bucket, s3_key_prefix="raw/cordial/"
    ).execute({})
    delivered = sandbox.cordial.export_file(export["job_id"])
    (key,) = [k for k in s3.keys("raw/cordial/") if k.endswith(file_name(export))]
    assert s3.client().get_object(Bucket=s3.bucket, Key=key)["Body"].read() == delivered
    manifest = json.loads(
        s3.client().get_object(Bucket=s3.bucket, Key="raw/cordial/_manifest.json")["Body"].read()
    )
    assert manifest["files"][0]["bytes"] == len(delivered) and manifest["job_ref"] == export["job_id"]
    assert summary["skipped"] is False
    # a rerun of the same job finds its manifest and skips
    assert CordialToS3Operator(
        task_id="copy", export=export, s3_bucket=s3.bucket, s3_key_prefix="raw/cordial/"
    ).execute({})["skipped"]


@pytest.fixture
def big_export(sandbox, server):
    """A contact export of more than 3 MiB (four chunks of the engine's reads)."""
    sandbox.cordial.add_audience("big", members=80_000)
    export = deliver(sandbox, server, name="big-members", audience_key="big")
    assert len(sandbox.cordial.export_file(export["job_id"])) > 3 * 1024 * 1024
    return export


def cut_reads(server, monkeypatch, times: int) -> FlakyProxy | None:
    """The next ``times`` reads of the delivered file are cut past its first 2 MiB: SFTP through a
    proxy that drops the first connection 2.2 MB in (and the next ones sooner), FTP by the server dropping the data connection of a
    ranged download 200 kB in."""
    if server.kind == "ftp":
        server.cut_after, server.cuts = 200_000, times
        return None
    proxy = FlakyProxy(server.port)
    # the connections after the first are cut before a byte of the file
    proxy.actions = [("cut", 2_200_000)] + [("cut", 20_000)] * (times - 1)
    monkeypatch.setenv("AIRFLOW_CONN_CORDIAL_SFTP", json.dumps(server.connection(proxy.port)))
    return proxy


def test_a_cut_read_resumes_where_it_stopped(sandbox, server, big_export, warehouse, monkeypatch, caplog):
    proxy = cut_reads(server, monkeypatch, 1)
    with caplog.at_level(logging.WARNING):
        summary = CordialS3ToSqlOperator(
            task_id="load", export=big_export, conn_id="warehouse", table="big_members"
        ).execute({})
    if proxy is not None:
        proxy.close()
        assert proxy.connections >= 2
    resumed = [int(m) for m in re.findall(r"read failed at byte (\d+)", caplog.text)]
    assert resumed and resumed[0] > 0, caplog.text  # it went on from where the cut left it
    assert summary["rows"] == 80_000
    assert rows(warehouse, "SELECT count(*), count(DISTINCT email) FROM big_members") == [(80_000, 80_000)]
    assert DELIVERY_PASSWORD not in caplog.text


def test_a_read_that_keeps_failing_leaves_nothing(sandbox, server, big_export, warehouse, s3, monkeypatch):
    from airflow_provider_exports.transfers.engine.sources import SourceFile

    monkeypatch.setattr(SourceFile, "max_attempts", 2)
    proxy = cut_reads(server, monkeypatch, 10)
    try:
        with pytest.raises(CUT) as err:
            CordialS3ToSqlOperator(
                task_id="load", export=big_export, conn_id="warehouse", table="big_members"
            ).execute({})
        assert DELIVERY_PASSWORD not in str(err.value)
        assert rows(warehouse, "SELECT name FROM sqlite_master WHERE name = 'big_members'") == []
        assert rows(warehouse, "SELECT count(*) FROM exports_manifest") == [(0,)]
        with pytest.raises(CUT):
            CordialToS3Operator(
                task_id="copy", export=big_export, s3_bucket=s3.bucket, s3_key_prefix="raw/cordial/"
            ).execute({})
        assert s3.keys("raw/cordial/") == []
    finally:
        if proxy is not None:
            proxy.close()


def test_a_fan_out_group_naming_another_file_is_refused(sandbox, server, warehouse):
    from airflow_provider_exports.transfers.cordial_to_sql import (
        CordialS3ListFilesOperator,
        CordialS3StageFilesToSqlOperator,
    )

    export = deliver(sandbox, server)
    (group,) = CordialS3ListFilesOperator(task_id="list", export=export).execute({})
    ref = group["files"][0]["ref"]
    assert ref == {"path": f"{FOLDER}/{file_name(export)}"}
    stage = CordialS3StageFilesToSqlOperator(
        task_id="stage", export=export, group=group, conn_id="warehouse", table="t"
    )
    for planted in ("/etc/passwd", f"{FOLDER}/../../etc/passwd", "/exports/cordial-old/x.csv", "x.csv"):
        group["files"][0]["ref"] = {"path": planted}
        with pytest.raises(ExportConfigError, match="is not a file the export delivered") as err:
            stage.execute({})
        assert err.value.field == "group.files"
    group["files"][0]["ref"] = ref
    assert stage.execute({})["files"]


def test_a_missing_file_is_named_with_what_is_there(sandbox, server):
    from airflow_provider_exports.exceptions import TransferError

    export = deliver(sandbox, server)
    folder = server.root / FOLDER.lstrip("/")
    (folder / file_name(export)).rename(folder / "other.csv")
    with pytest.raises(TransferError, match=r"lapsed-members\.csv is not there.*other\.csv"):
        CordialS3ToSqlOperator(task_id="load", export=export, conn_id="warehouse", table="t").execute({})


@pytest.mark.parametrize(
    ("destination", "conn_id", "field"),
    [
        ({"type": "GCS", "bucket": "b", "path": "p"}, None, "delivery_conn_id"),
        ({"type": "AZUREBLOB", "account": "a", "container": "c", "path": "p"}, None, "delivery_conn_id"),
        ({"type": "SFTP", "path": "/in"}, None, "delivery_conn_id"),
        ({"type": "SFTP", "sftp_conn_id": "s", "path": "/in"}, "", "delivery_conn_id"),
        ({"type": "ftp", "ftp_conn_id": "f"}, None, "export.destination.path"),
        ({"type": "AZUREBLOB", "account": "a", "path": "p"}, "wasb", "export.destination.container"),
    ],
)
def test_what_cannot_be_read_is_refused_at_parse_time(destination, conn_id, field):
    export = {"job_id": "0" * 24, "name": "n", "export": "contacts", "destination": destination}
    with pytest.raises(ExportConfigError) as err:
        CordialS3ToSqlOperator(task_id="t", export=export, delivery_conn_id=conn_id, conn_id="w", table="t")
    assert err.value.field == field


def test_a_lower_case_destination_type_is_read(sandbox, server, warehouse):
    export = deliver(sandbox, server)
    export["destination"]["type"] = server.kind  # Cordial's own examples spell it in lower case
    summary = CordialS3ToSqlOperator(task_id="load", export=export, conn_id="warehouse", table="t").execute(
        {}
    )
    assert summary["rows"] == 40
