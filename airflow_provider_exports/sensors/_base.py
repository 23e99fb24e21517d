"""What the provider's job sensors share: poke, reschedule and deferrable waits from one verdict.

A vendor sensor says how one look at the job reads in the worker (:meth:`JobSensor.look`, the sync
twin of its trigger's) and which trigger waits for it when deferred. This base keeps the wait's
deadline in every mode (:mod:`airflow_provider_exports.utils.waiting`), fails at once — never
retried — when the job failed, and checks the trigger's event strictly when the task resumes.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar

from airflow.providers.common.compat.sdk import (
    AirflowSensorTimeout,
    BaseSensorOperator,
    PokeReturnValue,
    conf,
)

from airflow_provider_exports.exceptions import DeadlineExceeded
from airflow_provider_exports.utils.waiting import TRANSIENT_ERRORS, JobVerdict, look_deadline, result_of

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

    from airflow_provider_exports.triggers._base import JobPollingTrigger


class JobSensor(BaseSensorOperator, ABC):
    """Wait for a vendor job in poke, reschedule or deferrable mode; return the verdict's result.

    :param deferrable: wait in the triggerer instead of holding a worker slot (default:
        ``[operators] default_deferrable``).
    """

    vendor: ClassVar[str]

    def __init__(
        self,
        *,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.deferrable = deferrable
        # Set by execute (epoch seconds); the next poke is the last look once a pause reaches it.
        self._deadline: float | None = None
        self._last_look = False

    # -- what each vendor defines

    @abstractmethod
    def look(self, context: Context, deadline: float | None) -> JobVerdict:
        """One look at the job from the worker; pass ``deadline`` to every call."""

    @abstractmethod
    def make_trigger(self, context: Context, deadline: float | None) -> JobPollingTrigger:
        """The trigger that waits for the same job when deferred."""

    # -- the wait

    def poke(self, context: Context) -> PokeReturnValue | bool:
        try:
            verdict = self.look(context, look_deadline(self._deadline, self._last_look))
        except DeadlineExceeded as exc:
            self.log.info("%s poke stopped: %s", self.vendor, exc)
            return False
        except TRANSIENT_ERRORS as exc:
            self.log.warning("%s still failing after retries (%s); will poke again", self.vendor, exc)
            return False
        self.log.info("%s", verdict.description)
        if verdict.state == "failed":
            raise verdict.failure(self.vendor)
        if verdict.state == "success":
            return PokeReturnValue(is_done=True, xcom_value=verdict.result)
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
        self.defer(
            trigger=self.make_trigger(context, self._deadline),
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

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> Any:
        return result_of(self.vendor, event, on_timeout=AirflowSensorTimeout, log=self.log)
