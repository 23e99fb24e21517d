"""Wait for a Cordial export job created elsewhere, in poke, reschedule or deferrable mode.

Succeeds when the job is ``Done`` and returns a small summary of it (``job_id``, ``status``,
``file_name``, ``total_records``); fails at once, never retried, when it is ``Failed``, with the
job's ``result`` counters; keeps waiting on any other status (``Throttled`` included). The wait ends
at ``timeout`` as described in :mod:`airflow_provider_exports.sensors._base`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow_provider_exports.hooks import cordial
from airflow_provider_exports.hooks.cordial import CordialHook
from airflow_provider_exports.sensors._base import JobSensor
from airflow_provider_exports.triggers.cordial import CordialJobTrigger
from airflow_provider_exports.utils.templating import is_template

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context


def check_job_id(job_id: Any) -> str:
    """The hook's check (a rendered template may bring blanks around the id)."""
    return cordial.check_job_id(job_id.strip() if isinstance(job_id, str) else job_id)


class CordialJobSensor(JobSensor):
    """Wait until a Cordial job is ``Done``.

    :param job_id: the job's id, e.g. ``{{ ti.xcom_pull(task_ids='export', key='job_id') }}``. (templated)
    :param cordial_conn_id: the Cordial connection. (templated)
    :param deferrable: wait in the triggerer instead of holding a worker slot.
    """

    trigger_class = CordialJobTrigger
    template_fields: Sequence[str] = ("job_id", "cordial_conn_id")

    def __init__(
        self, *, job_id: str, cordial_conn_id: str = CordialHook.default_conn_name, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.job_id = job_id
        self.cordial_conn_id = cordial_conn_id
        if not is_template(job_id) and not hasattr(job_id, "operator"):
            check_job_id(job_id)

    def trigger_arguments(self, context: Context) -> dict[str, Any]:
        return {"job_id": check_job_id(self.job_id), "cordial_conn_id": self.cordial_conn_id}
