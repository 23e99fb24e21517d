"""What every wait on a vendor job shares: one poke, the deadline rule, the events.

A vendor says, once, how one poke at its job goes (see :data:`JobPoke`): a small generator in its
hook module that yields the API reads it needs and returns a :class:`PokeEvent`: the job finished
well (``success``, with the value the task returns), failed for good (``failed``, with the vendor's
status, errors and details) or is still running (``waiting``). :func:`run_poke` runs it with a hook's
``call`` (a sensor's ``poke`` in the worker), :func:`arun_poke` with its ``acall`` (a trigger, which
also serves a job-creating operator's wait in the worker), so every wait decides with the same code
and ends with the same JSON events, checked strictly when a deferred task resumes.

The deadline rule: a wait ends at its deadline, not a poll interval before nor a retried call
after. Every poke passes the deadline down to the HTTP core (no retry waits past it); the last
pause is cut to end at the deadline and one last poke is made there, bounded by
:data:`LAST_POKE_SECONDS`.

Pauses are jittered so that many waits started together (a triggerer restarting, a mapped sensor)
do not poll in lockstep: the first poke of a deferred wait comes after a random part of one poll
interval, and every later pause lasts between :data:`PAUSE_JITTER` short of the interval and the
interval itself, never longer, so a finished job is still seen within one poll interval. A wait
with less than two intervals left pokes at once, so a short wait still pokes at its start and at
its deadline.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from airflow_provider_exports.exceptions import (
    DeadlineExceeded,
    ExportJobFailed,
    ExportsError,
    VendorConnectionError,
    VendorRateLimitError,
    VendorRefused,
    VendorServerError,
    WaitStopped,
)

if TYPE_CHECKING:
    from airflow_provider_exports.hooks._base import ExportsVendorHook

#: errors a poke may meet that the next poke may not: logged, and the wait goes on
TRANSIENT_ERRORS = (VendorRateLimitError, VendorServerError, VendorConnectionError)
#: seconds the poke made at the deadline (or past it, when the wait starts late) may take, so a job
#: that finished during the last pause is still seen
LAST_POKE_SECONDS = 10.0
#: a pause between pokes lasts between (1 - PAUSE_JITTER) and 1 times the poll interval
PAUSE_JITTER = 0.2
EVENT_STATUSES = frozenset({"success", "failed", "timeout", "error"})
_MAX_ERRORS_IN_EVENT = 20


def poke_deadline(deadline: float | None, last_poke: bool) -> float | None:
    """The deadline to pass to one poke of a wait that ends at ``deadline`` (epoch seconds)."""
    if deadline is None:
        return None
    if last_poke or time.time() >= deadline:
        return time.time() + LAST_POKE_SECONDS
    return deadline


def next_pause(
    poll_interval: float, deadline: float | None, *, first: bool = False, spent: float = 0.0
) -> tuple[float, bool]:
    """How long to pause before the next poke, and whether that poke is the last one.

    Jittered as the module's docstring says, and cut to end at the deadline. ``first``: the pause
    before a wait's first poke. ``spent``: seconds the last poke took; the pause is shortened by
    them, so pokes *start* at most one interval apart, however long a poke took.
    """
    left = None if deadline is None else max(0.0, deadline - time.time())
    if first:
        pause = 0.0 if left is not None and left < 2 * poll_interval else random.uniform(0.0, poll_interval)
    else:
        pause = max(0.0, random.uniform((1.0 - PAUSE_JITTER) * poll_interval, poll_interval) - spent)
    if left is None:
        return pause, False
    return min(pause, left), pause >= left


@dataclass(frozen=True)
class PokeEvent:
    """The status event of one poke at a vendor job.

    :ivar state: ``success``, ``failed`` or ``waiting``.
    :ivar description: one line for the task log, never a secret: the job, its status and, where
        the vendor has one, its end ("job 42 status PROCESSING"); a wait that compares jobs with a
        time also says why it goes on (Sitecore: "...; too old: the newest job ended at or before
        finished_after ..."). Sensors log it at every poke, triggers while they wait.
    :ivar result: on success, the JSON-able value the task returns (a job ref, batch ids...).
    :ivar job_ref: the job the event is about.
    :ivar job_status: the vendor's own status word.
    :ivar errors: on failure, the vendor's error entries (JSON-able).
    :ivar details: on failure, the vendor's counters and facts worth showing.
    """

    state: Literal["success", "failed", "waiting"]
    description: str
    result: Any = None
    job_ref: str | None = None
    job_status: str | None = None
    errors: Sequence[Any] = ()
    details: Mapping[str, Any] = field(default_factory=dict)

    def payload(self) -> dict[str, Any]:
        """The trigger event's payload of a final poke."""
        if self.state == "success":
            return {
                "status": "success",
                "message": self.description,
                "result": self.result,
                "job_ref": self.job_ref,
            }
        if self.state == "failed":
            return {
                "status": "failed",
                "message": self.description,
                "job_ref": self.job_ref,
                "job_status": self.job_status,
                "errors": list(self.errors)[:_MAX_ERRORS_IN_EVENT],
                "details": dict(self.details),
            }
        raise ValueError("a waiting poke has no event")

    def failure(self, vendor: str) -> ExportJobFailed:
        return ExportJobFailed(
            vendor, str(self.job_ref), str(self.job_status), errors=list(self.errors), details=self.details
        )


class WaitInWorker:
    """Where a wait in the worker runs, so that ``on_kill`` can end it.

    Airflow 3 calls ``on_kill`` from its SIGTERM handler and then lets the task go on: a poke sensor
    would sleep out its interval and a job operator poll on until the job ends, past the
    supervisor's grace (5 s, then SIGKILL). A handler runs in the thread it interrupts, so when
    :meth:`stop` is called in the thread that waits, it raises there and the wait ends at once,
    wherever it was (a pause, a poll, a request). Called from any other thread it does nothing.
    """

    def __init__(self) -> None:
        self._thread: int | None = None

    @contextmanager
    def running(self) -> Iterator[None]:
        self._thread = threading.get_ident()
        try:
            yield
        finally:
            self._thread = None

    def stop(self, what: str) -> None:
        if self._thread is not None and self._thread == threading.get_ident():
            self._thread = None
            raise WaitStopped(f"{what}: stopped on SIGTERM (Airflow called on_kill); a retry waits again")


#: one API read a poke needs: method, path (under the vendor's API host) and query parameters
ApiRead = tuple[str, str, Mapping[str, Any] | None]
#: a vendor's poke at its job, without I/O: yields the reads it needs, is sent each read's JSON body,
#: and returns the status event
JobPoke = Generator[ApiRead, Any, PokeEvent]


def run_poke(hook: ExportsVendorHook[Any], job_poke: JobPoke, deadline: float | None = None) -> PokeEvent:
    """Run ``job_poke`` with the hook's sync calls, each bounded by ``deadline``."""
    body = None
    try:
        while True:
            method, path, params = job_poke.send(body)
            body = hook.call(method, path, params=params, deadline=deadline)
    except StopIteration as done:
        return done.value


async def arun_poke(hook: ExportsVendorHook[Any], job_poke: JobPoke, deadline: float | None = None) -> PokeEvent:
    """Run ``job_poke`` with the hook's async calls (a trigger's), each bounded by ``deadline``."""
    body = None
    try:
        while True:
            method, path, params = job_poke.send(body)
            body = await hook.acall(method, path, params=params, deadline=deadline)
    except StopIteration as done:
        return done.value


@contextmanager
def transient_errors_logged(log: Any, vendor: str) -> Iterator[None]:
    """Log, and let the wait go on after, a poke that met an error the next poke may not meet (or
    was cut at the deadline: the wait then ends as its deadline says)."""
    try:
        yield
    except DeadlineExceeded as exc:
        log.info("%s poke stopped: %s", vendor, exc)
    except TRANSIENT_ERRORS as exc:
        # The core already retried with backoff; a longer outage is waited out until the deadline.
        log.warning("%s still failing after retries (%s); the wait goes on", vendor, exc)


def check_event(vendor: str, event: Any) -> dict[str, Any]:
    """The event a deferred task resumed with, refused unless it is one this provider's triggers send
    (a triggerer of another version, or a lost payload, must not pass for a result)."""
    if not isinstance(event, dict) or event.get("status") not in EVENT_STATUSES:
        raise ExportsError(f"Unexpected event from the {vendor} trigger: {event!r}")
    if event["status"] == "success" and "result" not in event:
        raise ExportsError(f"The {vendor} trigger reported success without a result: {event!r}")
    return event


def failure_from_event(vendor: str, event: Mapping[str, Any]) -> ExportJobFailed:
    """The error of a ``failed`` event, as the poke that made it would raise it."""
    return PokeEvent(
        "failed",
        str(event.get("message")),
        job_ref=event.get("job_ref"),
        job_status=event.get("job_status"),
        errors=event.get("errors") or [],
        details=event.get("details") or {},
    ).failure(vendor)


def result_of(
    vendor: str, event: Any, *, on_timeout: Callable[[str], BaseException], log: Any = None
) -> Any:
    """What a deferred task that resumed with ``event`` returns; raises for anything but success
    (``on_timeout`` makes the error of a ``timeout`` event: a sensor's, or an operator's that first
    cancels its job)."""
    event = check_event(vendor, event)
    status = event["status"]
    if status == "success":
        if log is not None:
            log.info("%s", event.get("message"))
        return event["result"]
    if status == "failed":
        raise failure_from_event(vendor, event)
    if status == "timeout":
        raise on_timeout(str(event.get("message")))
    refused = event.get("refused")
    if isinstance(refused, Mapping):  # the trigger's call was refused: the same error, not retried
        raise VendorRefused.of(vendor, refused)
    raise ExportsError(f"Waiting for the {vendor} job failed: {event.get('message')}")
