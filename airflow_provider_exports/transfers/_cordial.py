"""The Cordial side of its transfers: the file one export job delivered, read back.

Cordial has no download API: it *pushes* an export's file to the destination its request named.
When that is S3 (:class:`~airflow_provider_exports.operators.cordial.CordialS3Destination`), the
delivered object is read from the customer's bucket with the amazon provider's S3Hook (ranged
reads that resume, gzip undone when the export was compressed); when it is SFTP, FTP, GCS or Azure
Blob Storage, through Airflow's object storage with the transfer's ``delivery_conn_id``
(``_cordial_deliveries.py``).

- **Audience trends** files hold a row per audience and a column per day. They load *long*: a row
  per audience and day, columns ``audience`` (TEXT), ``day`` (DATE) and ``count`` (BIGINT), so the
  table keeps one shape whatever the timeframe.
- **Contact exports** load as delivered: CSV (with its header row) or JSON lines.

The transfer waits for nothing: the job must be ``Done`` (the create operator's wait, or
:class:`~airflow_provider_exports.sensors.cordial.CordialJobSensor`), and its file must be there.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any, ClassVar

from airflow_provider_exports.exceptions import ExportConfigError, TransferError
from airflow_provider_exports.hooks.cordial import (
    CordialHook,
    check_job_id,
    delivered_key,
    job_event,
    job_file_name,
)
from airflow_provider_exports.transfers._cordial_deliveries import (
    DELIVERY_FIELDS,
    check_delivery_conn_id,
    delivery,
    delivery_conn,
)
from airflow_provider_exports.transfers._parts import ExportSource, Listing, given
from airflow_provider_exports.transfers.engine.object_store_source import ObjectStoreSourceFile
from airflow_provider_exports.transfers.engine.s3_source import S3SourceFile
from airflow_provider_exports.transfers.engine.sources import check_source_name
from airflow_provider_exports.transfers.engine.transforms import Unpivot
from airflow_provider_exports.utils.openlineage import DatasetRef, s3_prefix, vendor_export

if TYPE_CHECKING:
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    from airflow_provider_exports.transfers.engine import SourceFile

#: the columns of a long audience-trends table and their declared types. ``day`` is DATE in every
#: dialect: PostgreSQL stores a date, SQLite keeps the ISO text (its own convention for dates).
TRENDS_COLUMN_TYPES: Mapping[str, str] = {"audience": "TEXT", "day": "DATE", "count": "BIGINT"}
EXPORT_KINDS = ("audience_trends", "contacts")
#: what gave the bucket of an S3 delivery, as S3's errors name it
DELIVERY_BUCKET = "the create operator's destination=CordialS3Destination(bucket=...)"


def trends_day(header: str) -> str:
    """A day column's header as an ISO date.

    Vendor is silent on the trends CSV's layout (vendor-apis README §2.1): the first column names
    the audience and every other column is a day, headed ``YYYY-MM-DD``. A file that differs fails
    here rather than load wrong rows.
    """
    try:
        return date.fromisoformat(header.strip()).isoformat()
    except ValueError:
        raise TransferError(
            f"the trends file has a column {header!r} where a day (YYYY-MM-DD) was expected: a row per "
            "audience and a column per day is the only layout this transfer reads"
        ) from None


TRENDS_LONG = Unpivot("audience", "day", "count", read_name=trends_day)


def check_export_reference(export: Any) -> dict[str, Any]:
    """The reference a Cordial create operator returns (its ``output``), checked field by field."""
    if not isinstance(export, Mapping):
        raise ExportConfigError(
            "export", f"give the reference a Cordial create operator returns (its .output), got {export!r}"
        )
    for field in ("job_id", "name", "export", "destination"):
        if not export.get(field):
            raise ExportConfigError(f"export.{field}", "is missing; pass a Cordial create operator's output")
    check_job_id(export["job_id"], "export.job_id")
    if export["export"] not in EXPORT_KINDS:
        raise ExportConfigError(
            "export.export", f"{export['export']!r} is not one of {', '.join(EXPORT_KINDS)}"
        )
    destination = export["destination"]
    kind = destination.get("type") if isinstance(destination, Mapping) else None
    # the spec spells the types in capitals, Cordial's own examples in lower case: either is read
    kind = kind.upper() if isinstance(kind, str) else kind
    if kind == "AWS":
        raise ExportConfigError(
            "export.destination",
            "the job delivered to AWS: Cordial keeps that file for download in its UI, and Cordial "
            "offers no download API, so no transfer can load it. Deliver to S3 (CordialS3Destination)",
        )
    if kind not in DELIVERY_FIELDS:
        raise ExportConfigError(
            "export.destination",
            f"{kind!r}: this transfer reads files Cordial delivered to {', '.join(DELIVERY_FIELDS)}",
        )
    for field in DELIVERY_FIELDS[str(kind)]:
        if not destination.get(field):
            raise ExportConfigError(f"export.destination.{field}", "is missing")
    return {**export, "destination": {**destination, "type": kind}}


def dataset(location: str) -> DatasetRef:
    """A delivered file's OpenLineage dataset: ``<scheme>://<host or bucket>`` + its path."""
    scheme, _, rest = location.partition("://")
    netloc, _, path = rest.partition("/")
    return DatasetRef(f"{scheme}://{netloc}", path or "/")


def delivered_file_name(export: Mapping[str, Any], job: Mapping[str, Any]) -> str:
    """The name of the file the job wrote: the one its record names, else the one Cordial is
    expected to write.

    Vendor is silent on the delivered file's name: JobMetadataJ lists ``fileName``/``filename``;
    without either, the export's ``name`` with the type's extension, ``.gz`` added when compressed
    (C-V2 SourceCE.compress: "with the file extension .gz added to the filename").
    """
    named = job_file_name(job) or export.get("file_name")
    if named:
        # Cordial's answer, joined to the delivery folder: one plain name before any store is asked
        return check_source_name(str(named))
    extension = "csv" if export["export"] == "audience_trends" else str(export.get("export_type") or "csv")
    return f"{export['name']}.{extension}" + (".gz" if export.get("compress") else "")


@dataclass(kw_only=True)
class CordialDeliveredFile(ExportSource[CordialHook]):
    """The file one Cordial export job delivered to S3.

    :param export: the reference a Cordial create operator returns: ``trends.output``. (templated)
    :param aws_conn_id: the AWS connection that reads the bucket Cordial delivered to. (templated)
    :param delivery_conn_id: the connection that reads a file Cordial delivered elsewhere: ``sftp``,
        ``ftp``, ``google_cloud_platform`` (GCS) or ``wasb`` (Azure Blob Storage); for SFTP and FTP
        the default is the connection Cordial was given. (templated)
    :param cordial_conn_id: the Cordial connection (to confirm the job is Done, and read its file
        name). (templated)
    """

    hook_class: ClassVar[type[CordialHook]] = CordialHook
    template_fields: ClassVar[tuple[str, ...]] = (
        "export",
        "aws_conn_id",
        "delivery_conn_id",
        "cordial_conn_id",
    )

    export: Any
    aws_conn_id: str | None = "aws_default"
    delivery_conn_id: str | None = None
    cordial_conn_id: str = CordialHook.default_conn_name

    @classmethod
    def check(cls, arguments: Mapping[str, Any]) -> None:
        conn_id = arguments["delivery_conn_id"]
        if given(conn_id):
            check_delivery_conn_id(conn_id)
        if given(arguments["export"]):
            destination = check_export_reference(arguments["export"])["destination"]
            if destination["type"] != "S3" and given(conn_id):
                delivery_conn(destination, conn_id)

    def _s3_hook(self) -> S3Hook:
        from airflow.providers.amazon.aws.hooks.s3 import S3Hook

        return S3Hook(aws_conn_id=self.aws_conn_id)

    def list_files(self) -> Listing:
        export = check_export_reference(self.export)
        job_id = str(export["job_id"])
        job = self.hook.get_job(job_id)
        event = job_event(job_id, job)
        if event.state == "failed":
            raise event.failure(self.hook.vendor)
        if event.state != "success":
            raise TransferError(
                f"{event.description}: the file is not delivered yet; wait for the job first "
                "(wait_for_completion=True, or CordialJobSensor)"
            )
        if export["destination"]["type"] != "S3":
            found = delivery(export["destination"], self.delivery_conn_id).find(
                delivered_file_name(export, job), job_id
            )
            return self._listing(export, job, found, found.location, dataset(found.location))
        # the path as the request sent it (the reference keeps it so): Cordial writes exactly there
        bucket, path = str(export["destination"]["bucket"]), str(export["destination"]["path"])
        name = delivered_file_name(export, job)
        key = delivered_key(path, name)
        s3 = self._s3_hook()
        head = s3.head_object(key, bucket)
        if head is None:
            near = (s3.list_keys(bucket, prefix=delivered_key(path, "")) or [])[:10]
            raise TransferError(
                f"Cordial job {job_id} is Done but s3://{bucket}/{key} is not there; under "
                f"s3://{bucket}/{path}/ there are: {near or 'no objects'}"
            )
        size = head.get("ContentLength")
        source = S3SourceFile(s3, bucket, key, name, size=size, bucket_argument=DELIVERY_BUCKET)
        return self._listing(export, job, source, source.location, s3_prefix(bucket, key))

    def _listing(
        self,
        export: Mapping[str, Any],
        job: Mapping[str, Any],
        source: SourceFile,
        location: str,
        read: DatasetRef,
    ) -> Listing:
        """The job's one delivered file, found at ``location`` (the dataset ``read``)."""
        job_id = str(export["job_id"])
        return Listing(
            [source],
            export_ref=str(export["name"]),
            job_ref=job_id,
            job_details={
                "jobId": job_id,
                "name": export["name"],
                "export": export["export"],
                "source": location,
                **{k: job[k] for k in ("jobName", "status", "times", "result") if k in job},
            },
            inputs=[vendor_export("cordial", self.hook.url(""), str(export["name"]), job_id), read],
            output=export,
        )

    def file_ref(self, file: SourceFile) -> dict[str, Any]:
        if isinstance(file, ObjectStoreSourceFile):
            return {"path": file.path}
        assert isinstance(file, S3SourceFile)
        return {"bucket": file.bucket, "key": file.key}

    def group_files(self, group: Mapping[str, Any]) -> tuple[list[SourceFile], dict[str, Any]]:
        """The group's file, only if its reference (XCom) names an object the export's delivery
        wrote: in its bucket, under its path. A planted one would load any object the AWS
        connection can read."""
        export = check_export_reference(self.export)
        if str(export["job_id"]) != str(group["job"]["job_ref"]):
            raise ExportConfigError(
                "group",
                f"lists Cordial job {group['job']['job_ref']}, but export names job {export['job_id']}",
            )
        if export["destination"]["type"] != "S3":
            return self._delivered_group_files(export, group), export
        bucket, path = str(export["destination"]["bucket"]), str(export["destination"]["path"])
        s3 = self._s3_hook()
        files: list[SourceFile] = []
        for f in group["files"]:
            ref = f["ref"]
            key = ref.get("key") if isinstance(ref, Mapping) else None
            inside = isinstance(key, str) and key.startswith(delivered_key(path, ""))
            if not isinstance(ref, Mapping) or ref.get("bucket") != bucket or not inside:
                raise ExportConfigError(
                    "group.files",
                    f"{ascii(ref)[:200]} is not a file the export delivered to s3://{bucket}/{path}: give the "
                    "groups its list-files task made",
                )
            files.append(
                S3SourceFile(s3, bucket, str(key), f["name"], size=f["size"], bucket_argument=DELIVERY_BUCKET)
            )
        return files, export

    def _delivered_group_files(self, export: Mapping[str, Any], group: Mapping[str, Any]) -> list[SourceFile]:
        """The group's files on a non-S3 delivery, only if each lies in the delivery's folder."""
        where = delivery(export["destination"], self.delivery_conn_id)
        files: list[SourceFile] = []
        for f in group["files"]:
            ref = f["ref"]
            path = ref.get("path") if isinstance(ref, Mapping) else None
            if not where.inside(path):
                raise ExportConfigError(
                    "group.files",
                    f"{ascii(ref)[:200]} is not a file the export delivered to {where.location(where.folder)}: "
                    "give the groups its list-files task made",
                )
            files.append(where.file(str(path), f["name"], f["size"]))
        return files

    def sink_options(self, kind: str, output: Mapping[str, Any]) -> dict[str, Any]:
        if kind != "sql":
            return {}  # the file lands as delivered
        trends = output["export"] == "audience_trends"
        if not trends and output.get("export_type") != "json" and output.get("show_header") is False:
            raise ExportConfigError(
                "export.show_header",
                "the CSV was delivered without a header row, so its columns have no names; create the "
                "export with show_header=True to load it",
            )
        return {
            "known_types": TRENDS_COLUMN_TYPES if trends else None,
            "file_format": "jsonl" if output.get("export_type") == "json" else "csv",
            "batch_transform": TRENDS_LONG if trends else None,
        }
