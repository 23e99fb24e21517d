"""The triggerer-side wait for one Cordial export job.

Each look reads ``GET /v2/jobs/{id}`` with the async hook and decides with :func:`job_verdict`, the
same function :class:`~airflow_provider_exports.sensors.cordial.CordialJobSensor` pokes with; the
loop, its deadline and its event come from
:class:`~airflow_provider_exports.triggers._base.JobPollingTrigger`. Terminal statuses are ``Done``
and ``Failed``; any other (``Throttled``, or one Cordial may add) keeps the wait going. Cordial's API
cannot stop a job, so there is nothing to cancel when the task is killed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from airflow_provider_exports.hooks.cordial import (
    DONE,
    FAILED,
    VENDOR,
    CordialHook,
    failure_details,
    job_file_name,
)
from airflow_provider_exports.triggers._base import JobPollingTrigger
from airflow_provider_exports.utils.waiting import JobVerdict


def job_verdict(job_id: str, job: Mapping[str, Any]) -> JobVerdict:
    """What one job record says; a Done job's result is a small summary of it (JSON, no secret)."""
    status = str(job.get("status"))
    done, total = job.get("completedItems"), job.get("totalItems")
    progress = f", {done} of {total} items" if total is not None else ""
    description = f"Cordial job {job_id}: status {status}{progress}"
    if status == DONE:
        summary = {
            "job_id": job_id,
            "status": status,
            "file_name": job_file_name(job),
            "total_records": (job.get("result") or {}).get("totalRecords"),
        }
        return JobVerdict("success", description, result=summary, job_ref=job_id, job_status=status)
    if status == FAILED:
        result = job.get("result") or {}
        errors = [f"{result['error']} record(s) in error"] if result.get("error") else []
        return JobVerdict(
            "failed",
            description,
            job_ref=job_id,
            job_status=status,
            errors=errors,
            details=failure_details(job),
        )
    return JobVerdict("waiting", description, job_ref=job_id, job_status=status)


class CordialJobTrigger(JobPollingTrigger):
    """Wait until a Cordial job is ``Done`` (success) or ``Failed``.

    :param job_id: the job's id (the ``jobId`` its create call answered).
    :param cordial_conn_id: the Airflow connection id.
    :param poll_interval: seconds between looks.
    :param deadline: epoch seconds at which the wait ends with a ``timeout`` event.
    """

    vendor = VENDOR

    def __init__(
        self,
        *,
        job_id: str,
        cordial_conn_id: str = CordialHook.default_conn_name,
        poll_interval: float = 30.0,
        deadline: float | None = None,
    ) -> None:
        super().__init__(poll_interval=poll_interval, deadline=deadline)
        self.job_id = job_id
        self.cordial_conn_id = cordial_conn_id

    def job_kwargs(self) -> dict[str, Any]:
        return {"job_id": self.job_id, "cordial_conn_id": self.cordial_conn_id}

    def make_hook(self) -> CordialHook:
        return CordialHook(self.cordial_conn_id)

    async def look(self, hook: CordialHook, deadline: float | None) -> JobVerdict:
        return job_verdict(self.job_id, await hook.aget_job(self.job_id, deadline=deadline))
