"""The one polling loop under every trigger of the provider.

A vendor trigger takes JSON primitives only (a conn id, refs, times — never a token), each kept in
the attribute of its name: that is what it serializes to. It names its hook class (its connection
is its argument of the hook's ``conn_name_attr``), which poke its job needs (the vendor's
:data:`~airflow_provider_exports.utils.waiting.JobPoke`, the one its sensor pokes with too) and,
where the vendor allows it, how to cancel the job. :class:`JobPollingTrigger` pokes until the job's
status is final or the deadline passes (the deadline rule of
:mod:`airflow_provider_exports.utils.waiting`) and yields exactly one event. The same trigger also
serves a job-creating operator's wait in the worker (:func:`run_inline`), so a wait behaves the
same deferred or not.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from typing import Any, ClassVar

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_exports.exceptions import VendorRefused
from airflow_provider_exports.hooks._base import ExportsVendorHook
from airflow_provider_exports.utils.waiting import (
    JobPoke,
    PokeEvent,
    arun_poke,
    next_pause,
    poke_deadline,
    transient_errors_logged,
)


class JobPollingTrigger(BaseTrigger, ABC):
    """Poke one vendor job until it ends or the deadline passes; yield one event.

    Events: ``{"status": "success", "message", "result", "job_ref"}``, ``{"status": "failed",
    "message", "job_ref", "job_status", "errors", "details"}``, ``{"status": "timeout", "message"}``
    or ``{"status": "error", "message"}`` (with ``"refused"``, the fields of a :class:`VendorRefused`).

    :param poll_interval: seconds between pokes.
    :param deadline: epoch seconds at which the wait ends with a ``timeout`` event.
    """

    #: the vendor's hook; the trigger's argument named as its ``conn_name_attr`` is the connection
    hook_class: ClassVar[type[ExportsVendorHook[Any]]]

    def __init__(self, *, poll_interval: float = 60.0, deadline: float | None = None) -> None:
        super().__init__()
        self.poll_interval = float(poll_interval)
        self.deadline = deadline

    @property
    def vendor(self) -> str:
        return self.hook_class.vendor

    def make_hook(self) -> ExportsVendorHook[Any]:
        """A hook for the trigger's connection (resolved through the async connection API)."""
        return self.hook_class(getattr(self, self.hook_class.conn_name_attr))

    # -- what each vendor defines

    @abstractmethod
    def job_poke(self) -> JobPoke:
        """One poke at the job, the vendor's (its sensor pokes with the same)."""

    def timeout_message(self, last: PokeEvent | None) -> str:
        seen = last.description if last is not None else "nothing yet"
        return f"{self.vendor}: the wait reached its deadline; last seen: {seen}"

    async def cancel_job(self, hook: Any) -> None:
        """Cancel the remote job (called when a user kills the deferred task, Airflow 3.3+)."""

    # -- the loop

    def serialize(self) -> tuple[str, dict[str, Any]]:
        # What the triggerer rebuilds the trigger from: every constructor argument (JSON primitives
        # only), read back from the attribute of the same name.
        arguments = list(inspect.signature(type(self).__init__).parameters)[1:]
        return f"{type(self).__module__}.{type(self).__qualname__}", {a: getattr(self, a) for a in arguments}

    async def run(self) -> AsyncIterator[TriggerEvent]:
        hook = self.make_hook()
        last: PokeEvent | None = None
        # The first poke waits a random part of one interval: waits deferred together (a triggerer
        # restarting, many mapped tasks) spread over the interval instead of polling in lockstep.
        # The task poked once before deferring (a sensor's first poke; an operator just created the job).
        pause, last_poke = next_pause(self.poll_interval, self.deadline, first=True)
        try:
            await asyncio.sleep(pause)
            while True:
                poke_started = time.monotonic()
                event: PokeEvent | None = None
                with transient_errors_logged(self.log, self.vendor):
                    event = await arun_poke(hook, self.job_poke(), poke_deadline(self.deadline, last_poke))
                if event is not None:
                    last = event
                    if event.state != "waiting":
                        yield TriggerEvent(event.payload())
                        return
                    self.log.info("%s", event.description)
                if self.deadline is not None and (last_poke or time.time() >= self.deadline):
                    yield TriggerEvent({"status": "timeout", "message": self.timeout_message(last)})
                    return
                pause, last_poke = next_pause(
                    self.poll_interval, self.deadline, spent=time.monotonic() - poke_started
                )
                await asyncio.sleep(pause)
        except Exception as exc:
            error: dict[str, Any] = {"status": "error", "message": f"{type(exc).__name__}: {exc}"}
            if isinstance(exc, VendorRefused):  # so the resumed task fails as it would inline: not retried
                error["refused"] = exc.fields()
            yield TriggerEvent(error)
        finally:
            await hook.aclose()

    async def on_kill(self) -> None:
        hook = self.make_hook()
        try:
            await self.cancel_job(hook)
        finally:
            await hook.aclose()


def run_inline(trigger: JobPollingTrigger) -> dict[str, Any]:
    """Run ``trigger`` to its event in this process (a job-creating operator waiting in the worker)."""

    async def first_event() -> dict[str, Any]:
        async for event in trigger.run():
            return dict(event.payload)
        raise RuntimeError(f"the {trigger.vendor} trigger ended without an event")  # pragma: no cover

    return asyncio.run(first_event())
