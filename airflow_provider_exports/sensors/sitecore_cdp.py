"""Wait for a new finished Sitecore CDP audience export job, in poke, reschedule or deferrable mode.

Exports are scheduled inside Sitecore; this sensor succeeds when the export has a job with status
``SUCCESS`` that ended after ``finished_after`` (default: the data interval start) and returns its
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

import time
from collections.abc import Callable, Sequence
from datetime import datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import (
    AirflowSensorTimeout,
    BaseSensorOperator,
    PokeReturnValue,
    conf,
)

from airflow_provider_exports.exceptions import (
    DeadlineExceeded,
    ExportConfigError,
    ExportJobFailed,
    ExportsError,
)
from airflow_provider_exports.hooks.sitecore_cdp import (
    FAILED_STATUSES,
    SitecoreCDPHook,
    check_export_ref,
    failure_details,
    judge_reports,
)
from airflow_provider_exports.triggers.sitecore_cdp import (
    TRANSIENT_ERRORS,
    SitecoreCDPExportTrigger,
    poll_deadline,
)
from airflow_provider_exports.utils.templating import is_template

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

EVENT_STATUSES = frozenset({"success", "failed", "timeout", "error"})


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


class SitecoreCDPExportSensor(BaseSensorOperator):
    """Wait until a Sitecore CDP audience export has a new successfully finished job.

    :param audience_export_ref: the export's friendly ID or UUID reference. (templated)
    :param finished_after: only jobs that ended after this time count; ISO-8601 or a datetime.
        Default: the run's data interval start. (templated)
    :param fail_on_alert: treat a job in ``ALERT`` as failed (default) rather than keep waiting.
    :param sitecore_cdp_conn_id: the Airflow connection id. (templated)
    :param deferrable: wait in the triggerer instead of holding a worker slot.
    """

    template_fields: Sequence[str] = ("audience_export_ref", "finished_after", "sitecore_cdp_conn_id")

    def __init__(
        self,
        *,
        audience_export_ref: str,
        finished_after: str | datetime | None = None,
        fail_on_alert: bool = True,
        sitecore_cdp_conn_id: str = SitecoreCDPHook.default_conn_name,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.audience_export_ref = audience_export_ref
        self.finished_after = finished_after
        self.fail_on_alert = fail_on_alert
        self.sitecore_cdp_conn_id = sitecore_cdp_conn_id
        self.deferrable = deferrable
        if not is_template(audience_export_ref):
            check_export_ref(audience_export_ref)
        if finished_after not in (None, "", "None") and not is_template(finished_after):
            _parse_finished_after(finished_after)
        # Set by execute (epoch seconds); the next poke is the last look once a pause reaches it.
        self._deadline: float | None = None
        self._last_look = False

    @cached_property
    def hook(self) -> SitecoreCDPHook:
        return SitecoreCDPHook(self.sitecore_cdp_conn_id)

    @property
    def fail_statuses(self) -> frozenset[str]:
        return FAILED_STATUSES if self.fail_on_alert else FAILED_STATUSES - {"ALERT"}

    def _finished_after(self, context: Context) -> datetime | None:
        value = self.finished_after
        # A DAG without a schedule renders "{{ data_interval_start }}" as "None".
        if value is None or value in ("", "None"):
            value = context.get("data_interval_start")
        return None if value is None else _parse_finished_after(value)

    def poke(self, context: Context) -> PokeReturnValue | bool:
        check_export_ref(self.audience_export_ref)
        try:
            reports = self.hook.get_reports(
                self.audience_export_ref, deadline=poll_deadline(self._deadline, self._last_look)
            )
        except DeadlineExceeded as exc:
            self.log.info("Sitecore CDP poke stopped: %s", exc)
            return False
        except TRANSIENT_ERRORS as exc:
            self.log.warning("Sitecore CDP still failing after retries (%s); will poke again", exc)
            return False
        verdict = judge_reports(reports, self._finished_after(context), self.fail_statuses)
        self.log.info("Export %s: %s", self.audience_export_ref, verdict.describe())
        if verdict.state == "failed":
            report = verdict.report or {}
            raise ExportJobFailed(
                "Sitecore CDP",
                str(verdict.execution_ref),
                str(report.get("status")),
                errors=list(report.get("errorLogs") or []),
                details=failure_details(report),
            )
        if verdict.state == "success":
            return PokeReturnValue(is_done=True, xcom_value=verdict.execution_ref)
        return False

    def execute(self, context: Context) -> Any:
        # Reschedule mode: each try is a new process and Airflow counts the timeout from the first.
        self._deadline = None if self.reschedule and not self.deferrable else time.time() + self.timeout
        self._last_look = False
        if not self.deferrable:
            return super().execute(context)
        first = self.poke(context)
        if isinstance(first, PokeReturnValue) and first.is_done:
            return first.xcom_value
        after = self._finished_after(context)
        self.defer(
            trigger=SitecoreCDPExportTrigger(
                audience_export_ref=self.audience_export_ref,
                finished_after=after.isoformat() if after else None,
                fail_statuses=sorted(self.fail_statuses),
                sitecore_cdp_conn_id=self.sitecore_cdp_conn_id,
                poll_interval=self.poke_interval,
                deadline=self._deadline,
            ),
            method_name="execute_complete",
            # The trigger owns the deadline so the task ends through execute_complete with a clear message.
            timeout=None,
        )

    def _get_next_poke_interval(
        self, started_at: datetime | float, run_duration: Callable[[], float], poke_count: int
    ) -> float:
        # Airflow cuts the pause to the time left only with exponential_backoff; without it a
        # 60 s interval would carry the wait up to 60 s past the timeout. The poke after a cut
        # pause is the last look.
        interval = super()._get_next_poke_interval(started_at, run_duration, poke_count)
        left = max(0.0, self.timeout - run_duration())
        if interval >= left:
            self._last_look = True
        return min(interval, left)

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> str:
        if not isinstance(event, dict) or event.get("status") not in EVENT_STATUSES:
            raise ExportsError(f"Unexpected event from the Sitecore CDP trigger: {event!r}")
        status = event["status"]
        if status == "success" and event.get("execution_ref"):
            self.log.info("%s", event.get("message"))
            return str(event["execution_ref"])
        if status == "failed":
            raise ExportJobFailed(
                "Sitecore CDP",
                str(event.get("execution_ref")),
                str(event.get("job_status")),
                errors=event.get("error_logs") or [],
                details=event.get("details") or {},
            )
        if status == "timeout":
            raise AirflowSensorTimeout(str(event.get("message")))
        raise ExportsError(f"Waiting for the Sitecore CDP export failed: {event.get('message')}")
