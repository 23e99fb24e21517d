"""What the provider's job-creating operators share: create once, say which job, wait, cancel.

A vendor operator says how to find the job an earlier try of this task created (a retry after a
dead worker reattaches instead of creating a second job), how to create one, which trigger waits
for it, where the vendor allows it how to cancel it, and what the task returns. This base pushes
the job id to XCom before any wait (so a link or a sensor can use it even if the task dies), waits
with the same trigger in the worker (:func:`run_inline`) or deferred (the trigger owns the deadline),
cancels the job on ``on_kill`` (which also ends a wait in the worker at once) and when the wait
times out, and checks the trigger's event strictly.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, ClassVar

from airflow.providers.common.compat.sdk import BaseOperator, conf

from airflow_provider_exports.exceptions import JobWaitTimeout
from airflow_provider_exports.triggers._base import run_inline
from airflow_provider_exports.utils.waiting import WaitInWorker, result_of

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

    from airflow_provider_exports.triggers._base import JobPollingTrigger

#: the XCom key of the id of the job the task created or reattached to
JOB_ID_XCOM_KEY = "job_id"


class ExportJobOperator(BaseOperator, ABC):
    """Create (or find again) a vendor export job, push its id, and wait for it.

    :param wait_for_completion: wait until the job ends (default); otherwise return its id at once.
    :param deferrable: wait in the triggerer instead of holding a worker slot (default:
        ``[operators] default_deferrable``).
    :param poll_interval: seconds between pokes at the job.
    :param timeout: seconds the wait may last; then the job is cancelled where the vendor allows it
        and the task fails with :class:`JobWaitTimeout`.
    """

    vendor: ClassVar[str]

    def __init__(
        self,
        *,
        wait_for_completion: bool = True,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        poll_interval: float = 60.0,
        timeout: float = 7 * 24 * 3600.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.wait_for_completion = wait_for_completion
        self.deferrable = deferrable
        self.poll_interval = poll_interval
        self.timeout = timeout
        self.job_id: str | None = None
        self._wait_in_worker = WaitInWorker()

    # -- what each vendor defines

    @abstractmethod
    def find_job(self, context: Context) -> str | None:
        """The job an earlier try of this task run created, if it exists (reattach to it)."""

    @abstractmethod
    def create_job(self, context: Context) -> str:
        """Create the job; return its id."""

    @abstractmethod
    def make_trigger(self, job_id: str, deadline: float) -> JobPollingTrigger:
        """The trigger that waits for the job (deferred, and inline in the worker)."""

    def cancel_job(self, job_id: str) -> None:
        """Cancel the job at the vendor (best effort: log, never raise)."""

    def task_result(self, context: Context, job_id: str | None, result: Any) -> Any:
        """What the task returns: the job id, or once waited for, what the job's final poke found."""
        return result if self.wait_for_completion else job_id

    # -- the run

    def execute(self, context: Context) -> Any:
        job_id = self.find_job(context)
        if job_id is not None:
            self.log.info(
                "Reattaching to %s job %s, created by an earlier try of this run", self.vendor, job_id
            )
            return self._wait(context, job_id, reattached=True)
        job_id = self.create_job(context)
        self.log.info("Created %s job %s", self.vendor, job_id)
        return self._wait(context, job_id, reattached=False)

    def _wait(self, context: Context, job_id: str, *, reattached: bool) -> Any:
        self.job_id = job_id
        context["ti"].xcom_push(key=JOB_ID_XCOM_KEY, value=job_id)
        if not self.wait_for_completion:
            return self.task_result(context, job_id, None)
        trigger = self.make_trigger(job_id, time.time() + self.timeout)
        if not self.deferrable:
            with self._wait_in_worker.running():
                event = run_inline(trigger)
            return self.execute_complete(context, event, reattached=reattached)
        self.defer(
            trigger=trigger, method_name="execute_complete", kwargs={"reattached": reattached}, timeout=None
        )

    def execute_complete(
        self, context: Context, event: dict[str, Any] | None = None, reattached: bool = False
    ) -> Any:
        job_id = self.job_id or _pulled_job_id(context)
        if reattached and isinstance(event, dict) and event.get("status") == "failed":
            # The job an earlier try created failed after this try reattached to it. Most often the
            # earlier try's own trigger cancelled it: a cleared task's trigger is killed (on_kill
            # cancels the job) while its next try already starts, and that try can find the job
            # still running. A retry would create a new job; this try does so now, once.
            self.log.warning(
                "%s job %s, created by an earlier try and reattached to, failed (%s): creating a new one",
                self.vendor,
                job_id,
                event.get("message"),
            )
            return self._wait(context, self.create_job(context), reattached=False)

        def cancelled_on_timeout(message: str) -> BaseException:
            if job_id is not None:
                self.cancel_job(job_id)
            return JobWaitTimeout(f"{message}; job {job_id} was cancelled where {self.vendor} allows it")

        result = result_of(self.vendor, event, on_timeout=cancelled_on_timeout, log=self.log)
        return self.task_result(context, job_id, result)

    def on_kill(self) -> None:
        if self.job_id is not None:
            self.cancel_job(self.job_id)
        self._wait_in_worker.stop(f"the wait of {self.task_id} for {self.vendor} job {self.job_id}")


def _pulled_job_id(context: Context) -> str | None:
    """The job id this task pushed before it deferred (a resumed task is a new operator object)."""
    ti = context.get("ti")
    value = ti.xcom_pull(task_ids=ti.task_id, key=JOB_ID_XCOM_KEY) if ti is not None else None
    return None if value is None else str(value)
