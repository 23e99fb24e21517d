"""Wait for a new finished Sitecore CDP audience export job, in poke, reschedule or deferrable mode.

Exports are scheduled inside Sitecore; this sensor succeeds when the export has a job with status
``SUCCESS`` that ended after ``finished_after`` (default: the start of the run's window,
:func:`~airflow_provider_exports.utils.windows.run_window`) and returns its
``executionRef`` (so ``sensor.output`` feeds the transfer operators). A job that failed since then
fails the task with the job's counters and error logs.

The wait ends at ``timeout`` from the start of ``execute``, in poke and deferrable mode alike: each
call gets that deadline (a retried call cannot run past it), the last pause is cut to end at it,
and one last poll is made there. In reschedule mode every poke runs in a new try, and Airflow
checks the timeout (counted from the first try) after each poke: there a poke is not cut by the
deadline and may end past it by its retries (at most 5 attempts, each ``Retry-After`` capped at
300 s).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from airflow_provider_exports.exceptions import ExportConfigError
from airflow_provider_exports.hooks.sitecore_cdp import (
    FAILED_STATUSES,
    SitecoreCDPHook,
    SitecoreJobStatus,
    check_export_ref,
)
from airflow_provider_exports.sensors._base import JobSensor
from airflow_provider_exports.triggers.sitecore_cdp import SitecoreCDPExportTrigger
from airflow_provider_exports.utils.templating import is_template
from airflow_provider_exports.utils.windows import run_window

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context


def _parse_finished_after(value: str | datetime) -> datetime:
    """An aware datetime from an ISO-8601 string or a datetime; the error names the field."""
    if isinstance(value, datetime):
        parsed = value
    else:
        try:
            parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            raise ExportConfigError("finished_after", f"{value!r} is not an ISO-8601 date-time") from None
    if parsed.tzinfo is None:
        raise ExportConfigError("finished_after", f"{value!r} has no time zone; add one (e.g. +00:00)")
    return parsed


class SitecoreCDPExportSensor(JobSensor):
    """Wait until a Sitecore CDP audience export has a new successfully finished job.

    :param audience_export_ref: the export's friendly ID or UUID reference. (templated)
    :param finished_after: only jobs that ended after this time count; ISO-8601 or a datetime.
        Default: the data interval start; without one (a manual run), the end of the last successful
        run's (any job when there is none). (templated)
    :param fail_on_alert: treat a job in ``ALERT`` as failed (default) rather than keep waiting.
    :param sitecore_cdp_conn_id: the Airflow connection id. (templated)
    :param deferrable: wait in the triggerer instead of holding a worker slot.
    """

    trigger_class = SitecoreCDPExportTrigger
    template_fields: Sequence[str] = ("audience_export_ref", "finished_after", "sitecore_cdp_conn_id")

    def __init__(
        self,
        *,
        audience_export_ref: str,
        finished_after: str | datetime | None = None,
        fail_on_alert: bool = True,
        sitecore_cdp_conn_id: str = SitecoreCDPHook.default_conn_name,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.audience_export_ref = audience_export_ref
        self.finished_after = finished_after
        self.fail_on_alert = fail_on_alert
        self.sitecore_cdp_conn_id = sitecore_cdp_conn_id
        if not is_template(audience_export_ref):
            check_export_ref(audience_export_ref)
        if finished_after not in (None, "", "None") and not is_template(finished_after):
            _parse_finished_after(finished_after)

    @property
    def fail_statuses(self) -> frozenset[str]:
        return FAILED_STATUSES if self.fail_on_alert else FAILED_STATUSES - {SitecoreJobStatus.ALERT}

    def _finished_after(self, context: Context) -> datetime | None:
        value = self.finished_after
        # A DAG without a schedule renders "{{ data_interval_start }}" as "None".
        if value is None or value in ("", "None"):
            value = run_window(context).start
        return None if value is None else _parse_finished_after(value)

    def trigger_arguments(self, context: Context) -> dict[str, Any]:
        after = self._finished_after(context)
        return {
            "audience_export_ref": self.audience_export_ref,
            "finished_after": after.isoformat() if after else None,
            "fail_statuses": sorted(str(status) for status in self.fail_statuses),
            "sitecore_cdp_conn_id": self.sitecore_cdp_conn_id,
        }
