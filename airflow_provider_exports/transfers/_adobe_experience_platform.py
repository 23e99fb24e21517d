"""What the Adobe Experience Platform transfer operators share: read the job, list its batches'
files through Data Access, run the engine.

The job must have ``SUCCEEDED`` with every batch in ``success``. Its files are listed with Data
Access (pages of at most 100, directory entries followed) and downloaded with the hook's
authenticated core, each in ranged windows (``range_window`` bytes, 64 MiB by default) so no call
runs into Adobe's documented 60-second limit per answer; a drop resumes at the byte it reached.
Files are stored as ``<batchId>/<dataSetFileId>/<name>`` (Vendor is silent on whether part names
are unique across dataset files: this layout cannot collide). The manifest records the job id, the
dataset id, the batch ids, and per file its batch, dataset file id and segment.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow_provider_exports.exceptions import ExportConfigError, TransferError, VendorConnectionError
from airflow_provider_exports.hooks.adobe_experience_platform import (
    AdobeExperiencePlatformHook,
    DataAccessFile,
    check_job_id,
    job_batch_ids,
    job_dataset_id,
    job_segments_of_batches,
)
from airflow_provider_exports.hooks.adobe_experience_platform import export_job_event as judge_export_job
from airflow_provider_exports.transfers._base import TransferPlan, VendorTransferOperator
from airflow_provider_exports.transfers._fan_out import ListFilesMixin
from airflow_provider_exports.transfers.engine import HttpSourceFile, SourceFile
from airflow_provider_exports.utils.openlineage import aep_batch
from airflow_provider_exports.utils.templating import is_template

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

VENDOR = AdobeExperiencePlatformHook.vendor
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


class AdobeExperiencePlatformTransferBase(VendorTransferOperator):
    """Move the batch files of one finished profile export job into a sink.

    :param export_job_id: the export job (e.g. the job-creating operator's XCom ``job_id``). (templated)
    :param adobe_aep_conn_id: the Airflow connection id. (templated)
    :param overwrite: move the job again even when its manifest is already at the destination.
    :param max_concurrent_files: files moved at once.
    :param allow_empty: commit a job without any file or row (it replaces what the destination had).
    :param range_window: bytes per ranged download request (Adobe answers each call within 60 s).
    """

    vendor = VENDOR
    template_fields: Sequence[str] = ("export_job_id", "adobe_aep_conn_id")

    def __init__(
        self,
        *,
        export_job_id: str | int,
        adobe_aep_conn_id: str = AdobeExperiencePlatformHook.default_conn_name,
        range_window: int = DEFAULT_RANGE_WINDOW,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.export_job_id = export_job_id
        self.adobe_aep_conn_id = adobe_aep_conn_id
        self.range_window = range_window
        if not is_template(export_job_id) and not hasattr(export_job_id, "operator"):
            check_job_id(export_job_id)
        if range_window < 1024 * 1024:
            raise ExportConfigError("range_window", f"{range_window!r}: give at least 1 MiB per request")

    @cached_property
    def hook(self) -> AdobeExperiencePlatformHook:
        return AdobeExperiencePlatformHook(self.adobe_aep_conn_id)

    def _finished_job(self) -> tuple[dict[str, Any], list[str]]:
        job_id = check_job_id(self.export_job_id)
        job = self.hook.get_export_job(job_id)
        batches = {b: self.hook.get_batch(b) for b in job_batch_ids(job)}
        verdict = judge_export_job(job, batches)
        if verdict.state == "failed":
            raise verdict.failure(VENDOR)
        if verdict.state != "success":
            raise TransferError(f"{verdict.description}: not finished yet, nothing to move")
        return job, list(verdict.result)

    def _sources(self, job: dict[str, Any], batch_ids: list[str]) -> list[SourceFile]:
        segments = job_segments_of_batches(job)
        sources: list[SourceFile] = []
        for batch_id in batch_ids:
            files = self.hook.batch_files(batch_id)
            self.log.info("Batch %s: %d file(s) through Data Access", batch_id, len(files))
            for f in files:
                sources.append(self._source(batch_id, f, segments.get(batch_id)))
        return sources

    def _source(self, batch_id: str, f: DataAccessFile, segment: str | None) -> SourceFile:
        url = self.hook.file_url(f.dataset_file_id, f.name)
        attributes = {"batchId": batch_id, "dataSetFileId": f.dataset_file_id, "path": f.name}
        if segment:
            attributes["segmentId"] = segment
        return DataAccessSourceFile(
            self.hook.core,
            f"{batch_id}/{f.dataset_file_id}/{f.name}",
            f.size,
            lambda: url,
            url=url,
            attributes=attributes,
            window=self.range_window,
        )

    def plan(self, context: Context) -> TransferPlan:
        job, batch_ids = self._finished_job()
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
        return TransferPlan(
            self._sources(job, batch_ids),
            self.make_sink(context, job),
            export_ref=dataset_id,
            job_ref=str(job.get("id")),
            job_details=details,
            inputs=[
                aep_batch(self.hook.settings.ims_org_id, self.hook.settings.sandbox_name, dataset_id, b)
                for b in batch_ids
            ],
        )

    def close(self) -> None:
        self.hook.close()

    def group_sources(self, group: Mapping[str, Any]) -> tuple[list[SourceFile], dict[str, Any]]:
        """A fan-out group's files (README, "Scaling out"), addressed again through the hook from
        their batch and dataset file ids (the hook's token goes in a header, never in XCom)."""
        job = group["job"]
        if str(job["job_ref"]) != str(check_job_id(self.export_job_id)):
            raise ExportConfigError(
                "group", f"lists Adobe export job {job['job_ref']}, not export_job_id {self.export_job_id}"
            )
        sources = [
            self._source(
                str(f["ref"]["batchId"]),
                DataAccessFile(str(f["ref"]["dataSetFileId"]), str(f["ref"]["path"]), f["size"]),
                f["ref"].get("segmentId"),
            )
            for f in group["files"]
        ]
        return sources, dict(job)


class AdobeExperiencePlatformListFilesOperator(ListFilesMixin, AdobeExperiencePlatformTransferBase):
    """The list-files task of a fan-out (README, "Scaling out"): a finished profile export job's
    batch files through Data Access, in groups of references (batch id, dataset file id, path,
    size; never a URL) for ``AdobeExperiencePlatformStageFilesToS3Operator`` /
    ``AdobeExperiencePlatformStageFilesToSqlOperator`` ``.expand(group=...)``.

    :param export_job_id: the export job. (templated)
    :param adobe_aep_conn_id: the Airflow connection id. (templated)
    :param files_per_group: files per mapped task (1).
    :param max_groups: at most this many mapped tasks (groups grow to fit).
    """

    def file_ref(self, source: SourceFile) -> dict[str, Any]:
        a = source.attributes
        ref = {"batchId": a["batchId"], "dataSetFileId": a["dataSetFileId"], "path": a["path"]}
        return {**ref, "segmentId": a["segmentId"]} if a.get("segmentId") else ref
