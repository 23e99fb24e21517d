"""The Adobe Experience Platform side of its transfers: read the job, list its batches' files
through Data Access, open them again.

The job must have ``SUCCEEDED`` with every batch in ``success``. Its files are listed with Data
Access (pages of at most 100, directory entries followed) and downloaded with the hook's
authenticated HTTP client, each in ranged windows (``range_window`` bytes, 64 MiB by default) so no call
runs into Adobe's documented 60-second limit per answer; a drop resumes at the byte it reached.
Files are stored as ``<batchId>/<dataSetFileId>/<name>`` (Vendor is silent on whether part names
are unique across dataset files: this layout cannot collide). The manifest records the job id, the
dataset id, the batch ids, and per file its batch, dataset file id and segment.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from airflow_provider_exports.exceptions import ExportConfigError, TransferError, VendorConnectionError
from airflow_provider_exports.hooks._adobe_experience_platform_records import (
    DataAccessFile,
    check_job_id,
    export_job_event,
    job_batch_ids,
    job_dataset_id,
    job_segments_of_batches,
)
from airflow_provider_exports.hooks.adobe_experience_platform import AdobeExperiencePlatformHook
from airflow_provider_exports.transfers._fan_out import ListFilesOperator
from airflow_provider_exports.transfers._parts import ExportSource, Listing, given, only_into
from airflow_provider_exports.transfers.engine import HttpSourceFile, SourceFile
from airflow_provider_exports.utils.openlineage import DatasetRef

log = logging.getLogger(__name__)

#: the default bytes per ranged request. Vendor is silent on Data Access's throughput (it documents
#: a 60 s limit per answer, not a size): 64 MiB takes 60 s only below about 1.1 MB/s.
DEFAULT_RANGE_WINDOW = 64 * 1024 * 1024
JOB_DETAILS = ("jobType", "creationTime", "updateTime", "requestId", "fields", "mergePolicy", "filter")


class DataAccessSourceFile(HttpSourceFile):
    """A Data Access file: authenticated with the hook's token (never in the URL), read in windows.

    Only a cut connection is worth a resume. Vendor is silent on a 403 from Data Access (it lists
    401, 404 and 500): it is read as a missing permission, not an expired URL (the token is in a
    header, not the URL), so no fresh URL is asked for and the file fails.
    """

    def resumable(self, exc: BaseException) -> bool:
        return isinstance(exc, VendorConnectionError)


@dataclass(kw_only=True)
class AdobeExperiencePlatformExportJob(ExportSource[AdobeExperiencePlatformHook]):
    """The batch files of one finished profile export job, through Data Access.

    :param export_job_id: the export job (e.g. the job-creating operator's XCom ``job_id``). (templated)
    :param adobe_aep_conn_id: the Airflow connection id. (templated)
    :param range_window: bytes per ranged download request (Adobe answers each call within 60 s).
    :param flatten_structs: (into SQL) spread struct fields over ``parent_child_leaf`` columns.
    """

    hook_class: ClassVar[type[AdobeExperiencePlatformHook]] = AdobeExperiencePlatformHook
    template_fields: ClassVar[tuple[str, ...]] = ("export_job_id", "adobe_aep_conn_id")

    export_job_id: str | int
    adobe_aep_conn_id: str = AdobeExperiencePlatformHook.default_conn_name
    range_window: int = DEFAULT_RANGE_WINDOW
    flatten_structs: bool = only_into("sql", default=False)

    @classmethod
    def check(cls, arguments: Mapping[str, Any]) -> None:
        if given(arguments["export_job_id"]):
            check_job_id(arguments["export_job_id"])
        if arguments["range_window"] < 1024 * 1024:
            raise ExportConfigError(
                "range_window", f"{arguments['range_window']!r}: give at least 1 MiB per request"
            )

    def _source(self, batch_id: str, f: DataAccessFile, segment: str | None) -> SourceFile:
        url = self.hook.file_url(f.dataset_file_id, f.name)
        attributes = {"batchId": batch_id, "dataSetFileId": f.dataset_file_id, "path": f.name}
        if segment:
            attributes["segmentId"] = segment
        return DataAccessSourceFile(
            self.hook.http,
            f"{batch_id}/{f.dataset_file_id}/{f.name}",
            f.size,
            lambda: url,
            url=url,
            attributes=attributes,
            window=self.range_window,
        )

    def list_files(self) -> Listing:
        job = self.hook.get_export_job(check_job_id(self.export_job_id))
        event = export_job_event(job, {b: self.hook.get_batch(b) for b in job_batch_ids(job)})
        if event.state == "failed":
            raise event.failure(self.hook.vendor)
        if event.state != "success":
            raise TransferError(f"{event.description}: not finished yet, nothing to move")
        batch_ids = list(event.result)
        segments = job_segments_of_batches(job)
        files: list[SourceFile] = []
        for batch_id in batch_ids:
            batch_files = self.hook.batch_files(batch_id)
            log.info("Batch %s: %d file(s) through Data Access", batch_id, len(batch_files))
            files += [self._source(batch_id, f, segments.get(batch_id)) for f in batch_files]
        dataset_id = job_dataset_id(job) or ""
        details = {
            "jobId": str(job.get("id")),
            "datasetId": dataset_id,
            "batchIds": batch_ids,
            "segmentPerBatch": bool((job.get("destination") or {}).get("segmentPerBatch")),
            "schemaName": (job.get("schema") or {}).get("name"),
            "totalExportedProfileCounter": (job.get("metrics") or {}).get("totalExportedProfileCounter"),
            **{k: job[k] for k in JOB_DETAILS if k in job},
        }
        namespace = f"aep://{self.hook.settings.ims_org_id}/{self.hook.settings.sandbox_name}"
        return Listing(
            files,
            export_ref=dataset_id,
            job_ref=str(job.get("id")),
            job_details=details,
            inputs=[DatasetRef(namespace, f"{dataset_id}/{b}") for b in batch_ids],
        )

    def group_files(self, group: Mapping[str, Any]) -> tuple[list[SourceFile], None]:
        """A fan-out group's files (docs/scaling-out.md), addressed again through the hook from
        their batch and dataset file ids (the hook's token goes in a header, never in XCom)."""
        job = group["job"]
        if str(job["job_ref"]) != str(check_job_id(self.export_job_id)):
            raise ExportConfigError(
                "group", f"lists Adobe export job {job['job_ref']}, not export_job_id {self.export_job_id}"
            )
        files = [
            self._source(
                str(f["ref"]["batchId"]),
                DataAccessFile(str(f["ref"]["dataSetFileId"]), str(f["ref"]["path"]), f["size"]),
                f["ref"].get("segmentId"),
            )
            for f in group["files"]
        ]
        return files, None

    def sink_options(self, kind: str, output: None) -> dict[str, Any]:
        return {"file_format": "parquet", "flatten_structs": self.flatten_structs} if kind == "sql" else {}


class AdobeExperiencePlatformListFilesOperator(ListFilesOperator):
    """The list-files task of a fan-out: a finished profile export job's batch files, by batch id,
    dataset file id and path."""

    source_type = AdobeExperiencePlatformExportJob
