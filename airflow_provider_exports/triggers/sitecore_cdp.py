"""The triggerer-side wait for a new finished Sitecore CDP audience export job.

Polls the export's reports with the async hook (same retry policy as everywhere), decides with the
same :func:`judge_reports` as the sensor's ``poke``, honours an absolute deadline and yields exactly
one event. The deadline holds both ways: the last pause is cut to end at it and one last poll is
made there (at most :data:`LAST_POLL_SECONDS`), and every poll passes it down to the HTTP core so a
retried call (a 429 asking for minutes) cannot run past it. Its kwargs are JSON primitives: a conn
id, never a token. Sitecore's API cannot cancel an export job, so there is nothing to do when the
task is killed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_exports.exceptions import (
    DeadlineExceeded,
    VendorConnectionError,
    VendorRateLimitError,
    VendorServerError,
)
from airflow_provider_exports.hooks.sitecore_cdp import SitecoreCDPHook, failure_details, judge_reports

TRANSIENT_ERRORS = (VendorRateLimitError, VendorServerError, VendorConnectionError)
# The poll made at the deadline (or past it, when the wait starts late) is a last look: it gets
# this long of its own, so a job that finished during the last pause is still seen.
LAST_POLL_SECONDS = 10.0


def poll_deadline(deadline: float | None, last_look: bool) -> float | None:
    """The deadline to pass to one poll of a wait that ends at ``deadline`` (epoch seconds)."""
    if deadline is None:
        return None
    if last_look or time.time() >= deadline:
        return time.time() + LAST_POLL_SECONDS
    return deadline


class SitecoreCDPExportTrigger(BaseTrigger):
    """Wait until an audience export has a job that finished after ``finished_after``.

    :param audience_export_ref: the export's friendly ID or UUID reference.
    :param finished_after: ISO-8601 time; only jobs that ended after it count (``None``: any).
    :param fail_statuses: job statuses that end the wait as a failure.
    :param sitecore_cdp_conn_id: the Airflow connection id.
    :param poll_interval: seconds between polls.
    :param deadline: epoch seconds after which the wait ends with a ``timeout`` event.
    """

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
        super().__init__()
        self.audience_export_ref = audience_export_ref
        self.finished_after = finished_after
        self.fail_statuses = list(fail_statuses)
        self.sitecore_cdp_conn_id = sitecore_cdp_conn_id
        self.poll_interval = float(poll_interval)
        self.deadline = deadline

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "audience_export_ref": self.audience_export_ref,
                "finished_after": self.finished_after,
                "fail_statuses": self.fail_statuses,
                "sitecore_cdp_conn_id": self.sitecore_cdp_conn_id,
                "poll_interval": self.poll_interval,
                "deadline": self.deadline,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        hook = SitecoreCDPHook(self.sitecore_cdp_conn_id)
        after = datetime.fromisoformat(self.finished_after) if self.finished_after else None
        ref = self.audience_export_ref
        last_seen = "no job yet"
        last_look = False
        try:
            while True:
                try:
                    reports = await hook.aget_reports(ref, deadline=poll_deadline(self.deadline, last_look))
                except DeadlineExceeded as exc:
                    self.log.info("Sitecore CDP poll stopped: %s", exc)
                except TRANSIENT_ERRORS as exc:
                    # The core already retried with backoff; a longer outage is waited out until the deadline.
                    self.log.warning("Sitecore CDP still failing after retries (%s); polling on", exc)
                else:
                    verdict = judge_reports(reports, after, frozenset(self.fail_statuses))
                    last_seen = verdict.describe()
                    if verdict.state == "success":
                        yield TriggerEvent(
                            {
                                "status": "success",
                                "execution_ref": verdict.execution_ref,
                                "message": f"export {ref}: {last_seen}",
                            }
                        )
                        return
                    if verdict.state == "failed":
                        report = verdict.report or {}
                        yield TriggerEvent(
                            {
                                "status": "failed",
                                "execution_ref": verdict.execution_ref,
                                "job_status": report.get("status"),
                                "details": failure_details(report),
                                "error_logs": list(report.get("errorLogs") or [])[:20],
                                "message": f"export {ref}: {last_seen}",
                            }
                        )
                        return
                    self.log.info("Export %s: %s", ref, last_seen)
                if self.deadline is not None and (last_look or time.time() >= self.deadline):
                    yield TriggerEvent(
                        {
                            "status": "timeout",
                            "message": f"export {ref} has no finished job after {self.finished_after} "
                            f"before the deadline; newest: {last_seen}",
                        }
                    )
                    return
                pause = self.poll_interval
                if self.deadline is not None:
                    # The last pause ends at the deadline, and the poll after it is the last look.
                    left = max(0.0, self.deadline - time.time())
                    pause, last_look = min(pause, left), pause >= left
                await asyncio.sleep(pause)
        except Exception as exc:
            yield TriggerEvent({"status": "error", "message": f"{type(exc).__name__}: {exc}"})
        finally:
            await hook.aclose()
