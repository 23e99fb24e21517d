"""The triggerer-side wait for an Adobe Experience Platform profile export job and its batches.

Each poke is the hook module's
:func:`~airflow_provider_exports.hooks.adobe_experience_platform.poke_export_job` (the job and, once
it ``SUCCEEDED``, its Catalog batches), the one the sensor pokes with; the loop, its deadline and its
event come from
:class:`~airflow_provider_exports.triggers._base.JobPollingTrigger`. A job-creating operator's
trigger cancels the job (``DELETE``) when the user kills the deferred task (Airflow 3.3 and newer:
older versions never call a trigger's ``on_kill``); a sensor's does not, the job is not its own.
"""

from __future__ import annotations

from airflow_provider_exports.hooks.adobe_experience_platform import (
    AdobeExperiencePlatformHook,
    check_job_id,
    poke_export_job,
)
from airflow_provider_exports.triggers._base import JobPollingTrigger
from airflow_provider_exports.utils.waiting import JobPoke, PokeEvent


class AdobeProfileExportJobTrigger(JobPollingTrigger):
    """Wait until a profile export job ``SUCCEEDED`` and its batch(es) reached ``success``.

    :param export_job_id: the export job's id.
    :param adobe_aep_conn_id: the Airflow connection id.
    :param cancel_on_kill: cancel the job when the user kills the deferred task (the operator that
        created the job sets it; the sensor does not).
    :param poll_interval: seconds between pokes.
    :param deadline: epoch seconds after which the wait ends with a ``timeout`` event.
    """

    hook_class = AdobeExperiencePlatformHook

    def __init__(
        self,
        *,
        export_job_id: str,
        adobe_aep_conn_id: str = AdobeExperiencePlatformHook.default_conn_name,
        cancel_on_kill: bool = False,
        poll_interval: float = 60.0,
        deadline: float | None = None,
    ) -> None:
        super().__init__(poll_interval=poll_interval, deadline=deadline)
        self.export_job_id = check_job_id(export_job_id)
        self.adobe_aep_conn_id = adobe_aep_conn_id
        self.cancel_on_kill = cancel_on_kill

    def job_poke(self) -> JobPoke:
        return poke_export_job(self.export_job_id)

    def timeout_message(self, last: PokeEvent | None) -> str:
        seen = last.description if last is not None else "nothing yet"
        return f"export job {self.export_job_id} did not finish before the deadline; last seen: {seen}"

    async def cancel_job(self, hook: AdobeExperiencePlatformHook) -> None:
        if not self.cancel_on_kill:
            return
        try:
            await hook.acancel_export_job(self.export_job_id)
        except Exception:  # best effort: the task is being killed either way
            self.log.warning("Could not cancel export job %s", self.export_job_id, exc_info=True)
        else:
            self.log.info("Cancelled export job %s (the deferred task was killed)", self.export_job_id)
