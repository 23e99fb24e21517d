"""What the provider's job sensors share: poke, reschedule and deferrable waits from one poke.

A vendor sensor names its trigger (whose hook class and connection argument, named as the hook's
``conn_name_attr``, are the sensor's) and the trigger's arguments. A poke in the worker is the
trigger's own :meth:`~airflow_provider_exports.triggers._base.JobPollingTrigger.job_poke` run with
the sensor's hook, so a wait decides the same whatever its mode. This base keeps the wait's
deadline in every mode (:mod:`airflow_provider_exports.utils.waiting`), fails at once — never
retried — when the job failed, ends a wait in the worker at once on SIGTERM (``on_kill``), and
checks the trigger's event strictly when the task resumes.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from datetime import datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar

from airflow.providers.common.compat.sdk import (
    AirflowSensorTimeout,
    BaseSensorOperator,
    PokeReturnValue,
    conf,
)

from airflow_provider_exports.utils.waiting import (
    PokeEvent,
    WaitInWorker,
    poke_deadline,
    result_of,
    run_poke,
    transient_errors_logged,
)

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

    from airflow_provider_exports.hooks._base import ExportsVendorHook
    from airflow_provider_exports.triggers._base import JobPollingTrigger


class JobSensor(BaseSensorOperator, ABC):
    """Wait for a vendor job in poke, reschedule or deferrable mode; return what its final poke found.

    :param deferrable: wait in the triggerer instead of holding a worker slot (default:
        ``[operators] default_deferrable``).
    """

    #: the trigger that waits for the job when deferred; its poke and its hook class are the sensor's too
    trigger_class: ClassVar[type[JobPollingTrigger]]

    def __init__(
        self,
        *,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.deferrable = deferrable
        # Set by execute (epoch seconds); the next poke is the last one once a pause reaches it.
        self._deadline: float | None = None
        self._last_poke = False
        self._wait = WaitInWorker()

    @property
    def vendor(self) -> str:
        return self.trigger_class.hook_class.vendor

    @cached_property
    def hook(self) -> ExportsVendorHook[Any]:
        """The hook the worker pokes with."""
        hook_class = self.trigger_class.hook_class
        return hook_class(getattr(self, hook_class.conn_name_attr))

    @abstractmethod
    def trigger_arguments(self, context: Context) -> dict[str, Any]:
        """The trigger's arguments but ``poll_interval`` and ``deadline``, from the rendered fields."""

    def make_trigger(self, context: Context, deadline: float | None) -> JobPollingTrigger:
        arguments = self.trigger_arguments(context)
        return self.trigger_class(**arguments, poll_interval=self.poke_interval, deadline=deadline)

    # -- the wait

    def poke(self, context: Context) -> PokeReturnValue | bool:
        job_poke = self.make_trigger(context, self._deadline).job_poke()
        event: PokeEvent | None = None
        with transient_errors_logged(self.log, self.vendor):
            event = run_poke(self.hook, job_poke, poke_deadline(self._deadline, self._last_poke))
        if event is None:
            return False
        self.log.info("%s", event.description)
        if event.state == "failed":
            raise event.failure(self.vendor)
        if event.state == "success":
            return PokeReturnValue(is_done=True, xcom_value=event.result)
        return False

    def execute(self, context: Context) -> Any:
        # Reschedule mode: each try is a new process and Airflow counts the timeout from the first.
        self._deadline = None if self.reschedule and not self.deferrable else time.time() + self.timeout
        self._last_poke = False
        if not self.deferrable:
            with self._wait.running():
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

    def on_kill(self) -> None:
        self._wait.stop(f"the wait of {self.task_id} for {self.vendor}")

    def _get_next_poke_interval(
        self, started_at: datetime | float, run_duration: Callable[[], float], poke_count: int
    ) -> float:
        # Airflow cuts the pause to the time left only with exponential_backoff; without it a
        # 60 s interval would carry the wait up to 60 s past the timeout. The poke after a cut
        # pause is the last one.
        interval = super()._get_next_poke_interval(started_at, run_duration, poke_count)
        left = max(0.0, self.timeout - run_duration())
        if interval >= left:
            self._last_poke = True
        return min(interval, left)

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> Any:
        return result_of(self.vendor, event, on_timeout=AirflowSensorTimeout, log=self.log)
