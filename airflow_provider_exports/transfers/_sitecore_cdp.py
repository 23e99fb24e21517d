"""What the Sitecore CDP transfer operators share: pick the job, list its files, run the engine.

The job is the one named by ``execution_ref`` (typically the sensor's output) or, when that is
empty, the latest finished one. Its presigned URLs are fetched here, at run time, and handed to the
engine inside :class:`HttpSourceFile` objects whose resolver asks Sitecore again when a URL expires:
they never travel through XCom, templates or logs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow_provider_exports.exceptions import ExportConfigError, TransferError
from airflow_provider_exports.hooks.sitecore_cdp import (
    ExportOutput,
    SitecoreCDPHook,
    check_execution_ref,
    check_export_ref,
)
from airflow_provider_exports.transfers._base import TransferPlan, VendorTransferOperator
from airflow_provider_exports.transfers._fan_out import ListFilesMixin
from airflow_provider_exports.transfers.engine import HttpSourceFile, SourceFile
from airflow_provider_exports.utils.openlineage import sitecore_export
from airflow_provider_exports.utils.templating import is_template

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

VENDOR = "Sitecore CDP"
# Vendor is silent on how delta files are named (vendor-apis README §1.5 says only that added and
# removed guests come in separate files): a file whose name says "added" or "removed" is one of those.
DELTA_KINDS = ("added", "removed")
REPORT_DETAILS = (
    "definitionType",
    "executionType",
    "datasetDate",
    "startTime",
    "endTime",
    "total",
    "successes",
    "failures",
    "successAdd",
    "successRemove",
)


def size_kb_bounds(size_kb: int) -> tuple[int, int]:
    """The byte counts a listed ``sizeKB`` allows.

    Vendor is silent on what a KB is and how it is rounded (vendor-apis README §1.4a): we accept
    1000 or 1024 bytes per KB, rounded up, down or to the nearest, so a file is within one KB of it.
    """
    return max(0, (size_kb - 1) * 1000), (size_kb + 1) * 1024


def delta_kind(name: str) -> str | None:
    lowered = name.lower()
    return next((kind for kind in DELTA_KINDS if kind in lowered), None)


class SitecoreCDPTransferBase(VendorTransferOperator):
    """Move the output of one Sitecore CDP audience export job into a sink.

    :param audience_export_ref: the export's friendly ID or UUID reference. (templated)
    :param execution_ref: the job to move (e.g. the sensor's ``output``); empty: the latest
        finished job. (templated)
    :param sitecore_cdp_conn_id: the Sitecore CDP connection. (templated)
    :param overwrite: move the job again even when its manifest is already at the destination.
    :param max_concurrent_files: files moved at once.
    :param allow_empty: commit a job without any data (it replaces what the destination had);
        by default such a job fails and the destination keeps what it had.
    """

    vendor = VENDOR
    template_fields: Sequence[str] = ("audience_export_ref", "execution_ref", "sitecore_cdp_conn_id")

    def __init__(
        self,
        *,
        audience_export_ref: str,
        execution_ref: str | None = None,
        sitecore_cdp_conn_id: str = SitecoreCDPHook.default_conn_name,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.audience_export_ref = audience_export_ref
        self.execution_ref = execution_ref
        self.sitecore_cdp_conn_id = sitecore_cdp_conn_id
        if not is_template(audience_export_ref):
            check_export_ref(audience_export_ref)
        if execution_ref and not is_template(execution_ref) and not hasattr(execution_ref, "operator"):
            check_execution_ref(execution_ref)

    @cached_property
    def hook(self) -> SitecoreCDPHook:
        return SitecoreCDPHook(self.sitecore_cdp_conn_id)

    def _output(self) -> ExportOutput:
        check_export_ref(self.audience_export_ref)
        if self.execution_ref:
            return self.hook.get_execution_output(check_execution_ref(str(self.execution_ref)))
        self.log.info(
            "No execution_ref given: taking the latest finished job of %s", self.audience_export_ref
        )
        return self.hook.get_latest_export(self.audience_export_ref)

    def _source_files(self, output: ExportOutput) -> list[SourceFile]:
        def resolver(name: str) -> Any:
            def fresh_url() -> str:
                self.log.info("Fetching fresh output URLs of job %s from Sitecore", output.execution_ref)
                current = self.hook.get_execution_output(output.execution_ref)
                url = next((f.url for f in current.files if f.name == name), None)
                if url is None:
                    raise TransferError(
                        f"{name} is no longer in the output listing of Sitecore CDP job {output.execution_ref}"
                    )
                return url

            return fresh_url

        files: list[SourceFile] = []
        for ref in output.files:
            kind = delta_kind(ref.name)
            files.append(
                HttpSourceFile(
                    self.hook.download_core,
                    f"{kind}/{ref.name}" if kind else ref.name,
                    None,  # sizeKB is rounded: the exact size comes from Content-Length
                    resolver(ref.name),
                    url=ref.url,
                    size_range=size_kb_bounds(ref.size_kb),
                    attributes={"delta": kind} if kind else {},
                )
            )
        return files

    def plan(self, context: Context) -> TransferPlan:
        output = self._output()
        report = self.hook.get_report(self.audience_export_ref, output.execution_ref) or {}
        details = {
            "executionRef": output.execution_ref,
            "definitionRef": output.definition_ref,
            "friendlyId": output.friendly_id,
            **{k: report[k] for k in REPORT_DETAILS if k in report},
        }
        export_ref = output.friendly_id or self.audience_export_ref
        return TransferPlan(
            self._source_files(output),
            self.make_sink(context, output),
            export_ref=export_ref,
            job_ref=output.execution_ref,
            job_details=details,
            inputs=[sitecore_export(self.hook.url(""), export_ref, output.execution_ref)],
        )

    def close(self) -> None:
        self.hook.close()

    def group_sources(self, group: Mapping[str, Any]) -> tuple[list[SourceFile], ExportOutput]:
        """A fan-out group's files (README, "Scaling out"), their URLs fetched fresh from Sitecore;
        and the job's whole output (the sink decides on delta columns from every file)."""
        job = group["job"]
        check_export_ref(self.audience_export_ref)
        names = (job["export_ref"], job["details"].get("definitionRef"), job["details"].get("friendlyId"))
        if self.audience_export_ref not in names:
            raise ExportConfigError(
                "group", f"lists a job of export {job['export_ref']!r}, not of {self.audience_export_ref!r}"
            )
        output = self.hook.get_execution_output(check_execution_ref(str(job["job_ref"])))
        by_name = {f.name: f for f in output.files}
        wanted = [str(f["ref"]["file"]) for f in group["files"]]
        missing = [n for n in wanted if n not in by_name]
        if missing:
            raise TransferError(
                f"{missing} no longer in the output listing of Sitecore CDP job {output.execution_ref}"
            )
        picked = dataclasses.replace(output, files=tuple(by_name[n] for n in wanted))
        return self._source_files(picked), output


class SitecoreCDPListFilesOperator(ListFilesMixin, SitecoreCDPTransferBase):
    """The list-files task of a fan-out (README, "Scaling out"): a Sitecore CDP job's output files
    in groups, references only (file names, never their presigned URLs), for
    ``SitecoreCDPStageFilesToS3Operator`` / ``SitecoreCDPStageFilesToSqlOperator`` ``.expand(group=...)``.

    :param audience_export_ref: the export's friendly ID or UUID reference. (templated)
    :param execution_ref: the job (e.g. the sensor's ``output``); empty: the latest finished job.
        (templated)
    :param sitecore_cdp_conn_id: the Sitecore CDP connection. (templated)
    :param files_per_group: files per mapped task (1).
    :param max_groups: at most this many mapped tasks (groups grow to fit).
    """

    def file_ref(self, source: SourceFile) -> dict[str, Any]:
        return {"file": source.name.rsplit("/", 1)[-1]}  # the vendor's name (delta files: under added/)
