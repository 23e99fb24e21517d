"""Wait for an Adobe Experience Platform profile export job and its Catalog batches, in poke,
reschedule or deferrable mode.

The job must reach ``SUCCEEDED`` and then every batch it wrote must reach ``success`` in Catalog;
the sensor returns the batch ids (one, or one per segment with ``segmentPerBatch``). A ``FAILED``
job fails the task at once, never retried, with every ``errors[]`` entry's code and message;
``NEW``, ``PROCESSING`` and statuses Adobe does not document keep waiting, and so do batch statuses
it does not document. The wait's deadline (``timeout``) holds even while a call is being retried
(see :class:`~airflow_provider_exports.sensors._base.JobSensor`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow_provider_exports.hooks._adobe_experience_platform_records import check_job_id
from airflow_provider_exports.hooks.adobe_experience_platform import AdobeExperiencePlatformHook
from airflow_provider_exports.sensors._base import JobSensor
from airflow_provider_exports.triggers.adobe_experience_platform import AdobeProfileExportJobTrigger
from airflow_provider_exports.utils.templating import is_template

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context


class AdobeProfileExportJobSensor(JobSensor):
    """Wait until a profile export job ``SUCCEEDED`` and its batches reached ``success``; return
    the batch ids.

    :param export_job_id: the export job's id (e.g. the job-creating operator's XCom ``job_id``).
        (templated)
    :param adobe_aep_conn_id: the Airflow connection id. (templated)
    :param deferrable: wait in the triggerer instead of holding a worker slot.
    """

    trigger_class = AdobeProfileExportJobTrigger
    template_fields: Sequence[str] = ("export_job_id", "adobe_aep_conn_id")

    def __init__(
        self,
        *,
        export_job_id: str | int,
        adobe_aep_conn_id: str = AdobeExperiencePlatformHook.default_conn_name,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.export_job_id = export_job_id
        self.adobe_aep_conn_id = adobe_aep_conn_id
        if not is_template(export_job_id) and not hasattr(export_job_id, "operator"):
            check_job_id(export_job_id)

    def trigger_arguments(self, context: Context) -> dict[str, Any]:
        # the job is not the sensor's: a killed sensor does not cancel it
        return {"export_job_id": self.export_job_id, "adobe_aep_conn_id": self.adobe_aep_conn_id}
