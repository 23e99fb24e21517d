"""The triggerer-side wait for one Cordial export job: the hook module's
:func:`~airflow_provider_exports.hooks.cordial.poke_job` (the sensor's poke too) in
:class:`~airflow_provider_exports.triggers._base.JobPollingTrigger`'s loop. Cordial's API cannot
stop a job, so there is nothing to cancel when the task is killed.
"""

from __future__ import annotations

from airflow_provider_exports.hooks.cordial import CordialHook, poke_job
from airflow_provider_exports.triggers._base import JobPollingTrigger
from airflow_provider_exports.utils.waiting import JobPoke


class CordialJobTrigger(JobPollingTrigger):
    """Wait until a Cordial job is ``Done`` (success) or ``Failed``.

    :param job_id: the job's id (the ``jobId`` its create call answered).
    :param cordial_conn_id: the Airflow connection id.
    :param poll_interval: seconds between pokes.
    :param deadline: epoch seconds at which the wait ends with a ``timeout`` event.
    """

    hook_class = CordialHook

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

    def job_poke(self) -> JobPoke:
        return poke_job(self.job_id)
