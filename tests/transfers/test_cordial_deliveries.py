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
from azure.core.exceptions import AzureError

from airflow_provider_exports.exceptions import ExportConfigError
from airflow_provider_exports.hooks.cordial import CordialHook
from airflow_provider_exports.transfers.cordial_to_s3 import CordialToS3Operator
from airflow_provider_exports.transfers.cordial_to_sql import CordialS3ToSqlOperator

from .conftest import AZURITE_ACCOUNT, AZURITE_KEY, DELIVERY_PASSWORD, FlakyProxy

pytestmark = pytest.mark.usefixtures("cordial_requests")

FOLDER = "/exports/cordial"
#: what a read cut for good raises: a dropped SSH connection, an FTP 426, a reset socket, the Azure
#: SDK's disconnect
CUT = (asyncssh.Error, ftplib.Error, OSError, AzureError)
LOGICAL_DATE = datetime(2026, 11, 22, tzinfo=timezone.utc)


class Target:
    """One place Cordial delivers to in these tests: an SFTP or FTP server (the connection
    ``cordial_<kind>``, given to Cordial and by default read with too) or Azurite (Cordial is granted
    access in its UI; the transfer reads with ``delivery_conn_id="cordial_azure"``)."""

    def __init__(self, kind: str, service, monkeypatch) -> None:
        self.kind, self.service, self.monkeypatch = kind, service, monkeypatch
        self.folder = "exports/cordial" if kind == "azure" else FOLDER
        self.connect()

    @property
    def delivery_conn_id(self) -> str | None:
        return "cordial_azure" if self.kind == "azure" else None

    @property
    def secrets(self) -> list[str]:
        return [AZURITE_KEY] if self.kind == "azure" else [DELIVERY_PASSWORD]

    def connect(self, port: int | None = None) -> None:
        """The connection the transfer reads with (through ``port``: a proxy)."""
        conn = self.service.connection(port) if port or self.kind != "ftp" else self.service.connection()
        self.monkeypatch.setenv(f"AIRFLOW_CONN_CORDIAL_{self.kind.upper()}", json.dumps(conn))

    def empty(self) -> None:
        import shutil

        if self.kind == "azure":
            container = self.service.service().get_container_client(self.service.container)
            for blob in container.list_blobs():
                container.delete_blob(blob.name)
            return
        shutil.rmtree(self.service.root / "exports", ignore_errors=True)
        (self.service.root / FOLDER.lstrip("/")).mkdir(parents=True)

    def request_destination(self) -> dict:
        """The destination object of a create request, as the create operator builds it."""
        if self.kind == "azure":
            return {
                "type": "AZUREBLOB",
                "account": AZURITE_ACCOUNT,
                "container": "deliveries",
                "path": self.folder,
            }
        conn = self.service.connection()
        return {
            "type": self.kind.upper(),
            "server": conn["host"],
            "port": conn["port"],
            "username": conn["login"],
            "password": conn["password"],
            "path": FOLDER,
        }

    def operator_destination(self):
        from airflow_provider_exports.operators import cordial

        if self.kind == "azure":
            return cordial.CordialAzureBlobDestination(
                account=AZURITE_ACCOUNT, container="deliveries", path=self.folder
            )
        if self.kind == "sftp":
            return cordial.CordialSftpDestination(sftp_conn_id="cordial_sftp", path=FOLDER)
        return cordial.CordialFtpDestination(ftp_conn_id="cordial_ftp", path=FOLDER)

    def location(self, name: str) -> str:
        if self.kind == "azure":
            return f"abfs://deliveries/{self.folder}/{name}"
        return f"{self.kind}://127.0.0.1{FOLDER}/{name}"

    def delivered(self, name: str) -> bytes:
        if self.kind == "azure":
            blob = self.service.service().get_blob_client("deliveries", f"{self.folder}/{name}")
            return blob.download_blob().readall()
        return (self.service.root / FOLDER.lstrip("/") / name).read_bytes()

    def rename(self, name: str, new: str) -> None:
        if self.kind == "azure":
            self.service.service().get_blob_client("deliveries", f"{self.folder}/{new}").upload_blob(
                self.delivered(name)
            )
            self.service.service().get_blob_client("deliveries", f"{self.folder}/{name}").delete_blob()
            return
        folder = self.service.root / FOLDER.lstrip("/")
        (folder / name).rename(folder / new)


@pytest.fixture(params=["sftp", "ftp", "azure"])
def server(request, sandbox, monkeypatch):
    """One delivery target, emptied; the sandbox delivers to it."""
    kind = request.param
    service = request.getfixturevalue("azurite" if kind == "azure" else f"{kind}_server")
    target = Target(kind, service, monkeypatch)
    target.empty()
    if kind == "azure":
        sandbox.cordial.azure_blob_connection_string = service.connection_string()
    else:
        sandbox.cordial.server_delivery = True
    sandbox.cordial.job_seconds = 0.05
    sandbox.cordial.add_audience("lapsed", members=40)
    return target


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
    job_id = hook.create_contact_export(destination=server.request_destination(), **args)
    deadline = time.monotonic() + 30
    while (status := hook.get_job(job_id)["status"]) not in ("Done", "Failed"):
        assert time.monotonic() < deadline, "the sandbox job did not finish"
        time.sleep(0.05)
    assert status == "Done", hook.get_job(job_id)
    return {
        "vendor": "Cordial",
        "job_id": job_id,
        "name": args["name"],
        "export": "contacts",
        "destination": server.operator_destination().reference(),
        "export_type": "csv",
        "compress": bool(args.get("compress", False)),
        "show_header": True,
        "file_name": None,
    }


def load(server, export, **kwargs) -> CordialS3ToSqlOperator:
    kwargs = {"task_id": "load", "conn_id": "warehouse", "table": "t", **kwargs}
    return CordialS3ToSqlOperator(export=export, delivery_conn_id=server.delivery_conn_id, **kwargs)


def copy(server, export, s3) -> CordialToS3Operator:
    return CordialToS3Operator(
        task_id="copy",
        export=export,
        delivery_conn_id=server.delivery_conn_id,
        s3_bucket=s3.bucket,
        s3_key_prefix="raw/cordial/",
    )


def rows(warehouse, sql: str) -> list[tuple]:
    with sqlite3.connect(warehouse) as conn:
        return conn.execute(sql).fetchall()


def file_name(export: dict) -> str:
    return export["name"] + ".csv" + (".gz" if export["compress"] else "")


def test_a_delivery_loads_into_sql_with_dag_test(sandbox, server, warehouse, run_dag, capfd):
    from airflow.sdk import DAG

    from airflow_provider_exports.operators.cordial import CordialCreateContactExportOperator

    with DAG(f"cordial_{server.kind}_delivery", schedule=None, start_date=LOGICAL_DATE) as dag:
        export = CordialCreateContactExportOperator(
            task_id="export",
            destination=server.operator_destination(),
            fields=["email", "first_name"],
            account_id=1,
            audience_key="lapsed",
            compress=True,
            deferrable=False,
            poll_interval=0.1,
        )
        load(server, export.output, table="lapsed_members")
    run = run_dag(dag, logical_date=LOGICAL_DATE)
    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    assert states == {"export": "success", "load": "success"}, states

    (job_id,) = sandbox.cordial.job_ids()
    name = sandbox.cordial.file_name(job_id)
    delivered = server.delivered(name)
    assert delivered == sandbox.cordial.export_file(job_id)  # what Cordial uploaded, byte for byte
    lines = gzip.decompress(delivered).decode().splitlines()
    stored = rows(warehouse, "SELECT email, first_name FROM lapsed_members ORDER BY email")
    assert [",".join(r) for r in stored] == sorted(lines[1:]) and len(stored) == 40
    (manifest,) = rows(warehouse, "SELECT manifest FROM exports_manifest")
    manifest = json.loads(manifest[0])
    assert manifest["job_details"]["source"] == server.location(name)
    assert manifest["files"][0]["bytes"] == len(delivered)

    from tests.example_dags._no_secret import assert_no_secret

    assert_no_secret(
        run, "".join(capfd.readouterr()), [*server.secrets, sandbox.cordial.connection()["password"]]
    )


def test_a_delivery_lands_in_s3_as_delivered(sandbox, server, s3):
    export = deliver(sandbox, server, compress=True)
    summary = copy(server, export, s3).execute({})
    delivered = sandbox.cordial.export_file(export["job_id"])
    (key,) = [k for k in s3.keys("raw/cordial/") if k.endswith(file_name(export))]
    assert s3.client().get_object(Bucket=s3.bucket, Key=key)["Body"].read() == delivered
    manifest = json.loads(
        s3.client().get_object(Bucket=s3.bucket, Key="raw/cordial/_manifest.json")["Body"].read()
    )
    assert manifest["files"][0]["bytes"] == len(delivered) and manifest["job_ref"] == export["job_id"]
    assert summary["skipped"] is False
    # a rerun of the same job finds its manifest and skips
    assert copy(server, export, s3).execute({})["skipped"]


@pytest.fixture
def big_export(sandbox, server):
    """A contact export of more than 3 MiB (four chunks of the engine's reads)."""
    sandbox.cordial.add_audience("big", members=80_000)
    export = deliver(sandbox, server, name="big-members", audience_key="big")
    assert len(sandbox.cordial.export_file(export["job_id"])) > 3 * 1024 * 1024
    return export


def cut_reads(server, times: int) -> FlakyProxy | None:
    """The next ``times`` reads of the delivered file are cut past its first 2 MiB: SFTP and Azure
    through a proxy that drops the first connection 2.2 MB in (and the next ones before a byte of
    the file), FTP by the server dropping the data connection of a ranged download 200 kB in."""
    if server.kind == "ftp":
        server.service.cut_after, server.service.cuts = 200_000, times
        return None
    proxy = FlakyProxy(server.service.port)
    proxy.actions = [("cut", 2_200_000)] + [("cut", 20_000 if server.kind == "sftp" else 0)] * (times - 1)
    server.connect(proxy.port)
    return proxy


def test_a_cut_read_resumes_where_it_stopped(sandbox, server, big_export, warehouse, caplog):
    proxy = cut_reads(server, 1)
    with caplog.at_level(logging.WARNING):
        summary = load(server, big_export, table="big_members").execute({})
    if proxy is not None:
        proxy.close()
        assert proxy.connections >= 2
    resumed = [int(m) for m in re.findall(r"read failed at byte (\d+)", caplog.text)]
    if server.kind == "azure":
        # the Azure SDK resumes a cut download itself before the engine sees it
        assert resumed or "Incomplete download" in caplog.text, caplog.text
    else:
        assert resumed and resumed[0] > 0, caplog.text  # it went on from where the cut left it
    assert summary["rows"] == 80_000
    assert rows(warehouse, "SELECT count(*), count(DISTINCT email) FROM big_members") == [(80_000, 80_000)]
    assert not [s for s in server.secrets if s in caplog.text]


def test_a_read_that_keeps_failing_leaves_nothing(sandbox, server, big_export, warehouse, s3, monkeypatch):
    from airflow_provider_exports.transfers.engine.sources import SourceFile

    monkeypatch.setattr(SourceFile, "max_attempts", 2)
    if server.kind == "azure":
        from azure.storage.blob._shared.policies_async import AsyncStorageRetryPolicy

        async def no_pause(self, settings, transport) -> None:
            pass  # the SDK's own retries (3, from 15 s apart) without their pauses

        monkeypatch.setattr(AsyncStorageRetryPolicy, "sleep", no_pause)
    proxy = cut_reads(server, 1000)  # more than the Azure SDK's own retries use up
    try:
        with pytest.raises(CUT) as err:
            load(server, big_export, table="big_members").execute({})
        assert not [s for s in server.secrets if s in str(err.value)]
        assert rows(warehouse, "SELECT name FROM sqlite_master WHERE name = 'big_members'") == []
        assert rows(warehouse, "SELECT count(*) FROM exports_manifest") == [(0,)]
        with pytest.raises(CUT):
            copy(server, big_export, s3).execute({})
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
    listed = CordialS3ListFilesOperator(
        task_id="list", export=export, delivery_conn_id=server.delivery_conn_id
    )
    (group,) = listed.execute({})
    ref = group["files"][0]["ref"]
    path = server.location(file_name(export)).split("://", 1)[1]
    assert ref == {"path": path if server.kind == "azure" else path.removeprefix("127.0.0.1")}
    stage = CordialS3StageFilesToSqlOperator(
        task_id="stage",
        export=export,
        group=group,
        delivery_conn_id=server.delivery_conn_id,
        conn_id="warehouse",
        table="t",
    )
    folder = ref["path"].rsplit("/", 1)[0]
    for planted in ("/etc/passwd", f"{folder}/../../etc/passwd", f"{folder}-old/x.csv", "x.csv"):
        group["files"][0]["ref"] = {"path": planted}
        with pytest.raises(ExportConfigError, match="is not a file the export delivered") as err:
            stage.execute({})
        assert err.value.field == "group.files"
    group["files"][0]["ref"] = ref
    assert stage.execute({})["files"]


def test_a_missing_file_is_named_with_what_is_there(sandbox, server):
    from airflow_provider_exports.exceptions import TransferError

    export = deliver(sandbox, server)
    server.rename(file_name(export), "other.csv")
    with pytest.raises(TransferError, match=r"lapsed-members\.csv is not there.*other\.csv"):
        load(server, export).execute({})


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
    export["destination"]["type"] = export["destination"]["type"].lower()  # as Cordial's own examples
    assert load(server, export).execute({})["rows"] == 40


def test_a_gcs_delivery_names_the_provider_it_needs(monkeypatch):
    """No GCS stand-in runs in this suite (see docs/operators/cordial.md): what is tested is that, without the
    Google provider, a GCS delivery fails saying what to install, before reading anything."""
    from airflow.sdk.io.fs import has_fs

    from airflow_provider_exports.exceptions import TransferError
    from airflow_provider_exports.transfers._cordial_deliveries import delivery

    if has_fs("gs"):
        pytest.skip("the Google provider is installed here")
    monkeypatch.setenv("AIRFLOW_CONN_GCS_READER", json.dumps({"conn_type": "google_cloud_platform"}))
    where = delivery({"type": "GCS", "bucket": "lake", "path": "/cordial/"}, "gcs_reader")
    assert (where.folder, where.location(where.path("x.csv"))) == ("lake/cordial", "gs://lake/cordial/x.csv")
    with pytest.raises(TransferError, match="apache-airflow-providers-google installed"):
        where.find("x.csv", "0" * 24)


def test_a_delivery_lands_in_another_object_store(sandbox, server, tmp_path):
    from airflow_provider_exports.transfers.cordial_to_object_storage import CordialToObjectStorageOperator

    export = deliver(sandbox, server)
    summary = CordialToObjectStorageOperator(
        task_id="copy",
        export=export,
        delivery_conn_id=server.delivery_conn_id,
        destination=f"file://{tmp_path}/lake",
    ).execute({})
    manifest = json.loads((tmp_path / "lake" / "_manifest.json").read_text())
    (landed,) = manifest["files"]
    assert (tmp_path / "lake").joinpath(landed["location"].split("/lake/", 1)[1]).read_bytes() == (
        sandbox.cordial.export_file(export["job_id"])
    )
    assert summary["skipped"] is False and manifest["job_ref"] == export["job_id"]


@pytest.mark.parametrize("name", ["../../etc/passwd", "/etc/passwd", "a/./b.csv", "x\u202ecsv.exe"])
def test_a_file_name_from_cordials_answer_cannot_leave_the_delivery_folder(name):
    """The job record's ``metadata.fileName`` is joined to the folder: it is refused before any store
    is asked (on SFTP or FTP ``..`` would walk out of the folder Cordial was given)."""
    from airflow_provider_exports.exceptions import TransferRefused
    from airflow_provider_exports.transfers._cordial import delivered_file_name

    export = {"export": "contacts", "name": "members", "export_type": "csv"}
    with pytest.raises(TransferRefused, match="source file name"):
        delivered_file_name(export, {"metadata": {"fileName": name}})
    assert delivered_file_name(export, {"metadata": {"fileName": "members.csv"}}) == "members.csv"
