"""What every wait on a vendor job shares: the verdict of one look, the deadline rule, the events.

A vendor decides, from what its API says, whether a job finished well (``success``, with the value
the task returns), failed for good (``failed``, with the vendor's status, errors and details) or is
still running (``waiting``): a :class:`JobVerdict`. Sensors (``poke``), triggers (``run``) and
job-creating operators all decide with the same vendor function and turn verdicts into the same
JSON events, checked strictly when a deferred task resumes.

The deadline rule: a wait ends at its deadline, not a poll interval before nor a retried call
after. Every look passes the deadline down to the HTTP core (no retry waits past it); the last
pause is cut to end at the deadline and one last look is made there, bounded by
:data:`LAST_LOOK_SECONDS`.

Pauses are jittered so that many waits started together (a triggerer restarting, a mapped sensor)
do not poll in lockstep: the first look of a deferred wait comes after a random part of one poll
interval, and every later pause lasts between :data:`PAUSE_JITTER` short of the interval and the
interval itself, never longer, so a finished job is still seen within one poll interval. A wait
with less than two intervals left looks at once, so a short wait still looks at its start and at
its deadline.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from airflow_provider_exports.exceptions import (
    ExportJobFailed,
    ExportsError,
    VendorConnectionError,
    VendorRateLimitError,
    VendorServerError,
)

#: errors a look may meet that the next look may not: logged, and the wait goes on
TRANSIENT_ERRORS = (VendorRateLimitError, VendorServerError, VendorConnectionError)
#: seconds the look made at the deadline (or past it, when the wait starts late) may take, so a job
#: that finished during the last pause is still seen
LAST_LOOK_SECONDS = 10.0
#: a pause between looks lasts between (1 - PAUSE_JITTER) and 1 times the poll interval
PAUSE_JITTER = 0.2
EVENT_STATUSES = frozenset({"success", "failed", "timeout", "error"})
_MAX_ERRORS_IN_EVENT = 20


def look_deadline(deadline: float | None, last_look: bool) -> float | None:
    """The deadline to pass to one look of a wait that ends at ``deadline`` (epoch seconds)."""
    if deadline is None:
        return None
    if last_look or time.time() >= deadline:
        return time.time() + LAST_LOOK_SECONDS
    return deadline


def next_pause(
    poll_interval: float, deadline: float | None, *, first: bool = False, spent: float = 0.0
) -> tuple[float, bool]:
    """How long to pause before the next look, and whether that look is the last one.

    ``spent``: seconds the last look took; the pause is shortened by them, so looks *start* at
    most one interval apart, however long a look waited for its turn or its answer.

    The pause is jittered (see the module's docstring): in ``[(1 - PAUSE_JITTER) * poll_interval,
    poll_interval]``, cut to end at the deadline. With ``first``, the pause before a wait's first
    look: anywhere in ``[0, poll_interval]``; none when less than two intervals are left (such a
    wait looks at once and at its deadline, as it always did).
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
class JobVerdict:
    """What one look at a vendor job says.

    :ivar state: ``success``, ``failed`` or ``waiting``.
    :ivar description: one line for the task log, never a secret: the job, its status and, where
        the vendor has one, its end ("job 42 status PROCESSING"); a wait that compares jobs with a
        time also says why it goes on (Sitecore: "...; too old: the newest job ended at or before
        finished_after ..."). Sensors log it at every poke, triggers at every look.
    :ivar result: on success, the JSON-able value the task returns (a job ref, batch ids...).
    :ivar job_ref: the job the verdict is about.
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

    def event(self) -> dict[str, Any]:
        """The trigger event of a final verdict."""
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
        raise ValueError("a waiting verdict has no event")

    def failure(self, vendor: str) -> ExportJobFailed:
        return ExportJobFailed(
            vendor, str(self.job_ref), str(self.job_status), errors=list(self.errors), details=self.details
        )


def check_event(vendor: str, event: Any) -> dict[str, Any]:
    """The event a deferred task resumed with, refused unless it is one this provider's triggers send
    (a triggerer of another version, or a lost payload, must not pass for a result)."""
    if not isinstance(event, dict) or event.get("status") not in EVENT_STATUSES:
        raise ExportsError(f"Unexpected event from the {vendor} trigger: {event!r}")
    if event["status"] == "success" and "result" not in event:
        raise ExportsError(f"The {vendor} trigger reported success without a result: {event!r}")
    return event


def failure_from_event(vendor: str, event: Mapping[str, Any]) -> ExportJobFailed:
    """The error of a ``failed`` event, as the verdict that made it would raise it."""
    return JobVerdict(
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
    raise ExportsError(f"Waiting for the {vendor} job failed: {event.get('message')}")
