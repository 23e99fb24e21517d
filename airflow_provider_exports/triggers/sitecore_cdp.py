"""The triggerer-side wait for a new finished Sitecore CDP audience export job.

Each look reads the export's reports with the async hook and decides with :func:`export_verdict`,
the same function the sensor's ``poke`` uses; the loop, its deadline and its event come from
:class:`~airflow_provider_exports.triggers._base.JobPollingTrigger`. Sitecore's API cannot cancel
an export job, so there is nothing to do when the task is killed.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from airflow_provider_exports.hooks.sitecore_cdp import SitecoreCDPHook, failure_details, judge_reports
from airflow_provider_exports.triggers._base import JobPollingTrigger
from airflow_provider_exports.utils.waiting import JobVerdict

VENDOR = "Sitecore CDP"


def export_verdict(
    export_ref: str,
    reports: list[dict[str, Any]],
    finished_after: datetime | None,
    fail_statuses: frozenset[str],
) -> JobVerdict:
    """Whether the export has a job that finished after ``finished_after``, as a verdict whose
    result is that job's ``executionRef``."""
    judged = judge_reports(reports, finished_after, fail_statuses)
    report: Mapping[str, Any] = judged.report or {}
    ref = judged.execution_ref
    # One line for the task log each look: the newest job, its status and end, and why the wait goes on.
    description = f"export {export_ref}: {judged.describe()}; {judged.why()}"
    if judged.state == "success":
        return JobVerdict("success", description, result=ref, job_ref=ref, job_status=report.get("status"))
    if judged.state == "failed":
        return JobVerdict(
            "failed",
            description,
            job_ref=ref,
            job_status=report.get("status"),
            errors=list(report.get("errorLogs") or []),
            details=failure_details(report),
        )
    return JobVerdict("waiting", description, job_ref=ref, job_status=report.get("status"))


class SitecoreCDPExportTrigger(JobPollingTrigger):
    """Wait until an audience export has a job that finished after ``finished_after``.

    :param audience_export_ref: the export's friendly ID or UUID reference.
    :param finished_after: ISO-8601 time; only jobs that ended after it count (``None``: any).
    :param fail_statuses: job statuses that end the wait as a failure.
    :param sitecore_cdp_conn_id: the Airflow connection id.
    :param poll_interval: seconds between polls.
    :param deadline: epoch seconds after which the wait ends with a ``timeout`` event.
    """

    vendor = VENDOR

    def __init__(
        self,
        *,
        audience_export_ref: str,
        finished_after: str | None,
        fail_statuses: list[str],
        sitecore_cdp_conn_id: str = SitecoreCDPHook.default_conn_name,
        poll_interval: float = 60.0,
        deadline: float | None = None,
    ) -> None:
        super().__init__(poll_interval=poll_interval, deadline=deadline)
        self.audience_export_ref = audience_export_ref
        self.finished_after = finished_after
        self.fail_statuses = list(fail_statuses)
        self.sitecore_cdp_conn_id = sitecore_cdp_conn_id

    def job_kwargs(self) -> dict[str, Any]:
        return {
            "audience_export_ref": self.audience_export_ref,
            "finished_after": self.finished_after,
            "fail_statuses": self.fail_statuses,
            "sitecore_cdp_conn_id": self.sitecore_cdp_conn_id,
        }

    def make_hook(self) -> SitecoreCDPHook:
        return SitecoreCDPHook(self.sitecore_cdp_conn_id)

    async def look(self, hook: SitecoreCDPHook, deadline: float | None) -> JobVerdict:
        reports = await hook.aget_reports(self.audience_export_ref, deadline=deadline)
        after = datetime.fromisoformat(self.finished_after) if self.finished_after else None
        return export_verdict(self.audience_export_ref, reports, after, frozenset(self.fail_statuses))

    def timeout_message(self, last: JobVerdict | None) -> str:
        # The job part of the last description (export_verdict: "export <ref>: <job>; <why>").
        newest = last.description.partition(": ")[2].partition("; ")[0] if last is not None else "no job yet"
        return (
            f"export {self.audience_export_ref} has no finished job after {self.finished_after} "
            f"before the deadline; newest: {newest}"
        )
