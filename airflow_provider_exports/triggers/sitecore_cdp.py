"""The triggerer-side wait for a new finished Sitecore CDP audience export job.

Each poke is the hook module's :func:`~airflow_provider_exports.hooks.sitecore_cdp.poke_export`
(the export's reports, read for a job that finished after ``finished_after``), the one the sensor
pokes with; the loop, its deadline and its event come from
:class:`~airflow_provider_exports.triggers._base.JobPollingTrigger`. Sitecore's API cannot cancel
an export job, so there is nothing to do when the task is killed.
"""

from __future__ import annotations

from airflow_provider_exports.hooks.sitecore_cdp import SitecoreCDPHook, parse_timestamp, poke_export
from airflow_provider_exports.triggers._base import JobPollingTrigger
from airflow_provider_exports.utils.waiting import JobPoke, PokeEvent


class SitecoreCDPExportTrigger(JobPollingTrigger):
    """Wait until an audience export has a job that finished after ``finished_after``.

    :param audience_export_ref: the export's friendly ID or UUID reference.
    :param finished_after: ISO-8601 time; only jobs that ended after it count (``None``: any).
    :param fail_statuses: job statuses that end the wait as a failure.
    :param sitecore_cdp_conn_id: the Airflow connection id.
    :param poll_interval: seconds between pokes.
    :param deadline: epoch seconds after which the wait ends with a ``timeout`` event.
    """

    hook_class = SitecoreCDPHook

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

    def job_poke(self) -> JobPoke:
        return poke_export(self.audience_export_ref, parse_timestamp(self.finished_after), self.fail_statuses)

    def timeout_message(self, last: PokeEvent | None) -> str:
        # The job part of the last description (export_event: "export <ref>: <job>; <why>").
        newest = last.description.partition(": ")[2].partition("; ")[0] if last is not None else "no job yet"
        return (
            f"export {self.audience_export_ref} has no finished job after {self.finished_after} "
            f"before the deadline; newest: {newest}"
        )
