"""The Sitecore CDP side of its transfers: pick the job, list its files, open them again.

The job is the one named by ``execution_ref`` (typically the sensor's output) or, when that is
empty, the latest finished one. Its presigned URLs are fetched here, at run time, and handed to the
engine inside :class:`HttpSourceFile` objects whose resolver asks Sitecore again when a URL expires:
they never travel through XCom, templates or logs.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from airflow_provider_exports.exceptions import ExportConfigError, TransferError
from airflow_provider_exports.hooks.sitecore_cdp import (
    ExportFileRef,
    ExportOutput,
    SitecoreCDPHook,
    SitecoreJobStatus,
    check_execution_ref,
    check_export_ref,
    parse_timestamp,
)
from airflow_provider_exports.transfers._fan_out import ListFilesOperator
from airflow_provider_exports.transfers._parts import ExportSource, Listing, given, only_into
from airflow_provider_exports.transfers.engine import HttpSourceFile, SourceFile
from airflow_provider_exports.utils.openlineage import vendor_export

log = logging.getLogger(__name__)

#: the column of a delta export's rows in SQL that says whether the guest was added or removed
DELTA_COLUMN = "_delta"
# Vendor is silent on how delta files are named (vendor-apis README §1.5 says only that added and
# removed guests come in separate files): chosen: the operator's ``delta`` says how to tell them
# apart. "by_name": a file whose name says "added" or "removed" (either case) is one of those, any
# other a full snapshot; "never": every file is a full snapshot; "always": every file must be one of
# those, and a file whose name says neither fails the run before anything is moved. Each row in SQL
# also names its file (``_source_file``), so a wrong guess can be found and undone file by file.
DELTA_KINDS = ("added", "removed")
DeltaMode = Literal["by_name", "never", "always"]
DELTA_MODES: tuple[str, ...] = ("by_name", "never", "always")
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
    """``added`` or ``removed`` when the file's name says one of them (either case), else ``None``;
    a name that says both is refused (either guess could be wrong)."""
    lowered = name.lower()
    kinds = [kind for kind in DELTA_KINDS if kind in lowered]
    if len(kinds) > 1:
        raise TransferError(
            f"{name}: the name says both added and removed; nothing was moved (set delta='never' to "
            "load every file as a full snapshot)"
        )
    return kinds[0] if kinds else None


def check_delta(delta: Any) -> None:
    if delta not in DELTA_MODES:
        raise ExportConfigError("delta", f"{delta!r} is not one of {', '.join(DELTA_MODES)}")


@dataclass(kw_only=True)
class SitecoreCDPExport(ExportSource[SitecoreCDPHook]):
    """The output of one Sitecore CDP audience export job.

    :param audience_export_ref: the export's friendly ID or UUID reference. (templated)
    :param execution_ref: the job to move (e.g. the sensor's ``output``); empty: the latest
        finished job. (templated)
    :param sitecore_cdp_conn_id: the Sitecore CDP connection. (templated)
    :param decompress: (into S3 and object storage) store the files gunzipped (``x.json.gz``
        lands as ``x.json``).
    :param delta: how the added and removed guests' files of a delta export are told apart (they
        land under ``added/`` and ``removed/``, and in SQL their rows say so in ``_delta``):
        ``by_name`` (default): a file whose name says ``added`` or ``removed``, any other is a full
        snapshot; ``never``: every file is a full snapshot (no ``added/``, no ``_delta``);
        ``always``: every file is added or removed, and one whose name says neither fails the task
        before anything is moved, naming it.
    """

    hook_class: ClassVar[type[SitecoreCDPHook]] = SitecoreCDPHook
    removed_when: ClassVar[tuple[str, str] | None] = (DELTA_COLUMN, "removed")
    template_fields: ClassVar[tuple[str, ...]] = ("audience_export_ref", "execution_ref", "sitecore_cdp_conn_id")

    audience_export_ref: str
    execution_ref: str | None = None
    sitecore_cdp_conn_id: str = SitecoreCDPHook.default_conn_name
    decompress: bool = only_into("s3", "object_storage", default=False)
    delta: DeltaMode = "by_name"

    @classmethod
    def check(cls, arguments: Mapping[str, Any]) -> None:
        if given(arguments["delta"]):
            check_delta(arguments["delta"])
        if given(arguments["audience_export_ref"]):
            check_export_ref(arguments["audience_export_ref"])
        if arguments["execution_ref"] and given(arguments["execution_ref"]):
            check_execution_ref(arguments["execution_ref"])

    def _fresh_url(self, execution_ref: str, name: str) -> str:
        log.info("Fetching fresh output URLs of job %s from Sitecore", execution_ref)
        current = self.hook.get_execution_output(execution_ref)
        url = next((f.url for f in current.files if f.name == name), None)
        if url is None:
            raise TransferError(f"{name} is no longer in the output listing of Sitecore CDP job {execution_ref}")
        return url

    def _kinds(self, names: Iterable[str]) -> list[str | None]:
        """Each file's delta kind, as ``delta`` says; with ``always``, a name that says neither
        fails (every such name is named)."""
        check_delta(self.delta)
        names = list(names)
        if self.delta == "never":
            return [None] * len(names)
        kinds = [delta_kind(name) for name in names]
        if self.delta == "always":
            neither = [name for name, kind in zip(names, kinds, strict=True) if kind is None]
            if neither:
                raise TransferError(
                    f"delta='always', but these file names say neither added nor removed: {neither}; "
                    "nothing was moved (delta='by_name' loads them as full snapshots)"
                )
        return kinds

    def _source_files(self, execution_ref: str, refs: Iterable[ExportFileRef]) -> list[SourceFile]:
        files: list[SourceFile] = []
        refs = list(refs)
        for ref, kind in zip(refs, self._kinds(r.name for r in refs), strict=True):
            files.append(
                HttpSourceFile(
                    self.hook.download_http,
                    f"{kind}/{ref.name}" if kind else ref.name,
                    None,  # sizeKB is rounded: the exact size comes from Content-Length
                    functools.partial(self._fresh_url, execution_ref, ref.name),
                    url=ref.url,
                    size_range=size_kb_bounds(ref.size_kb),
                    attributes={"delta": kind} if kind else {},
                )
            )
        return files

    def list_files(self) -> Listing:
        check_export_ref(self.audience_export_ref)
        if self.execution_ref:
            output = self.hook.get_execution_output(check_execution_ref(str(self.execution_ref)))
        else:
            log.info("No execution_ref given: taking the latest finished job of %s", self.audience_export_ref)
            output = self.hook.get_latest_export(self.audience_export_ref)
        reports = self.hook.get_reports(self.audience_export_ref)
        report = next((r for r in reports if r.get("executionRef") == output.execution_ref), {})
        details = {
            "executionRef": output.execution_ref,
            "definitionRef": output.definition_ref,
            "friendlyId": output.friendly_id,
            **{k: report[k] for k in REPORT_DETAILS if k in report},
        }
        export_ref = output.friendly_id or self.audience_export_ref
        files = self._source_files(output.execution_ref, output.files)
        self._check_against_report(output.execution_ref, report.get("definitionType"), files)
        return Listing(
            files,
            export_ref=export_ref,
            job_ref=output.execution_ref,
            job_details=details,
            inputs=[vendor_export("sitecore-cdp", self.hook.url(""), export_ref, output.execution_ref)],
            output=output,
            builds_on=self._builds_on(reports, report, output.execution_ref),
        )

    def _builds_on(self, reports: list[dict[str, Any]], report: Mapping[str, Any], job_ref: str) -> list[str] | None:
        """A delta job's earlier successful jobs, newest first: each holds what changed since the one
        before it (see ``_catch_up.py``). Vendor is silent on whether a failed job's changes come in
        the next one (vendor-apis README §1.5): chosen, only successful jobs are jobs to apply."""
        if self.delta == "never" or (self.delta == "by_name" and report.get("definitionType") != "DELTA"):
            return None
        ended = parse_timestamp(report.get("endTime"))
        if ended is None:
            log.warning(
                "Sitecore lists no finished report for job %s: the jobs before it cannot be told, so none "
                "is checked against the destination",
                job_ref,
            )
            return None
        earlier = [
            (end, r["executionRef"])
            for r in reports
            if r.get("status") == SitecoreJobStatus.SUCCESS and isinstance(r.get("executionRef"), str)
            and r["executionRef"] != job_ref
            and (end := parse_timestamp(r.get("endTime"))) is not None and end <= ended  # a tie: unordered
        ]
        return [job_ref for _, job_ref in sorted(earlier, reverse=True)]

    def earlier_job(self, job_ref: str) -> SitecoreCDPExport:
        return dataclasses.replace(self, execution_ref=job_ref)

    def _check_against_report(self, job_ref: str, definition_type: Any, files: list[SourceFile]) -> None:
        """Say when the job's report and the files' delta kinds disagree (``_source_file`` in SQL
        then tells which rows came from which file)."""
        deltas = sum(1 for f in files if f.attributes.get("delta"))
        if definition_type == "DELTA" and deltas < len(files) and self.delta != "never":
            log.warning(
                "Sitecore reports job %s as a DELTA export, but %d of its %d file(s) are taken as full "
                "snapshots (delta=%r: their names say neither added nor removed); their rows carry no "
                "added/removed mark. Set delta='always' to fail on such a job instead.",
                job_ref,
                len(files) - deltas,
                len(files),
                self.delta,
            )
        elif definition_type == "FULL_SYNC" and deltas:
            log.warning(
                "Sitecore reports job %s as a FULL_SYNC export, but %d of its %d file(s) are taken as "
                "added or removed guests by their names (delta=%r); set delta='never' if they are full "
                "snapshots.",
                job_ref,
                deltas,
                len(files),
                self.delta,
            )

    def file_ref(self, file: SourceFile) -> dict[str, Any]:
        return {"file": file.name.rsplit("/", 1)[-1]}  # the vendor's name (delta files: under added/)

    def group_files(self, group: Mapping[str, Any]) -> tuple[list[SourceFile], ExportOutput]:
        """A fan-out group's files (docs/scaling-out.md), their URLs fetched fresh from Sitecore;
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
        return self._source_files(output.execution_ref, [by_name[n] for n in wanted]), output

    def sink_options(self, kind: str, output: ExportOutput) -> dict[str, Any]:
        if kind != "sql":
            return {"decompress": self.decompress}
        # Delta exports: each row says whether the guest was added or removed (decided from every
        # file of the job, so every group of a fan-out agrees); merge deletes the removed guests.
        delta = self.delta == "always" or any(self._kinds(f.name for f in output.files))
        if not delta:
            return {"attribute_columns": None}
        return {"attribute_columns": {DELTA_COLUMN: "delta"}, "removed_when": self.removed_when}


class SitecoreCDPListFilesOperator(ListFilesOperator):
    """The list-files task of a fan-out: a Sitecore CDP job's output files, by name."""

    source_type = SitecoreCDPExport
