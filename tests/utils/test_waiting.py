"""The wait rules every sensor, trigger and job operator share: poke events, strict checks, the deadline,
and the two drivers of one poke."""

from __future__ import annotations

import asyncio
import json
import logging
import time

import pytest

from airflow_provider_exports.exceptions import (
    DeadlineExceeded,
    ExportConfigError,
    ExportJobFailed,
    ExportsError,
    VendorServerError,
)
from airflow_provider_exports.utils.waiting import (
    LAST_POKE_SECONDS,
    PAUSE_JITTER,
    JobPoke,
    PokeEvent,
    arun_poke,
    check_event,
    failure_from_event,
    next_pause,
    poke_deadline,
    run_poke,
    transient_errors_logged,
)


def test_a_failed_poke_survives_its_event_as_the_same_error():
    poke = PokeEvent(
        "failed", "job 7 FAILED", job_ref="7", job_status="FAILED", errors=[{"code": "X1", "message": "no"}],
        details={"count": 3},
    )
    event = json.loads(json.dumps(poke.payload()))  # what the triggerer stores

    direct, resumed = poke.failure("V"), failure_from_event("V", check_event("V", event))

    assert isinstance(resumed, ExportJobFailed) and str(resumed) == str(direct)
    assert resumed.errors == [{"code": "X1", "message": "no"}] and resumed.details == {"count": 3}


def test_a_success_event_carries_the_result():
    event = PokeEvent("success", "job 7 done", result=["b1", "b2"], job_ref="7").payload()
    assert check_event("V", event)["result"] == ["b1", "b2"]
    with pytest.raises(ValueError):
        PokeEvent("waiting", "job 7 running").payload()


@pytest.mark.parametrize(
    "event",
    [None, "success", {"status": "done"}, {"status": "success", "message": "no result"}],
)
def test_events_a_trigger_of_this_provider_does_not_send_are_refused(event):
    with pytest.raises(ExportsError, match="V trigger"):
        check_event("V", event)


def test_the_deadline_rule():
    now = time.time()
    assert poke_deadline(None, False) is None
    assert poke_deadline(now + 60, False) == now + 60
    # the last poke, or a poke past the deadline, gets a short budget of its own
    assert now + LAST_POKE_SECONDS <= poke_deadline(now + 60, True) <= time.time() + LAST_POKE_SECONDS
    assert poke_deadline(now - 5, False) >= now + LAST_POKE_SECONDS
    # the pause is cut to end at the deadline, and the poke after it is the last
    pause, last = next_pause(30.0, None)
    assert 30.0 * (1 - PAUSE_JITTER) <= pause <= 30.0 and not last
    pause, last = next_pause(30.0, time.time() + 5)
    assert pause <= 5 and last
    pause, last = next_pause(1.0, time.time() + 60)
    assert 1.0 * (1 - PAUSE_JITTER) <= pause <= 1.0 and not last
    # a wait with less than two intervals left pokes at once (and again at its deadline)
    assert next_pause(30.0, time.time() + 59, first=True) == (0.0, False)
    assert next_pause(30.0, time.time() - 1, first=True) == (0.0, True)  # started past the deadline
    pause, last = next_pause(30.0, time.time() + 61, first=True)
    assert 0.0 <= pause <= 30.0 and not last


def test_pauses_are_jittered_within_bounds_never_longer_than_the_interval():
    """Jitter dephases waits started together; never past one interval, so a finished job is
    seen within one poll interval, and never past the deadline."""
    later = [next_pause(10.0, None)[0] for _ in range(400)]
    first = [next_pause(10.0, None, first=True)[0] for _ in range(400)]
    assert all(10.0 * (1 - PAUSE_JITTER) <= p <= 10.0 for p in later)
    assert all(0.0 <= p <= 10.0 for p in first)
    assert len(set(later)) > 300 and len(set(first)) > 300  # jittered, not a constant
    # spread over the range, not bunched: both halves of each range are used
    assert min(later) < 9.0 < max(later) and min(first) < 5.0 < max(first)
    # the mean pause stays near the interval (polling costs at most a tenth more requests)
    assert sum(later) / len(later) >= 10.0 * (1 - PAUSE_JITTER / 2) - 0.3
    # the time a poke took comes off the pause after it: pokes start at most one interval apart
    assert all(next_pause(10.0, None, spent=3.0)[0] <= 7.0 for _ in range(50))
    assert next_pause(10.0, None, spent=30.0)[0] == 0.0
    deadline = time.time() + 3
    assert all(next_pause(10.0, deadline, first=f)[0] <= 3.0 for f in (True, False) for _ in range(50))


# -- one poke, two drivers ---------------------------------------------------------------------------


_SERVER_DOWN = VendorServerError(
    "V", status_code=503, error_key=None, message="down", method="GET", url="https://v.example/jobs/9"
)


class _Hook:
    """What the drivers ask of a hook: ``call`` and ``acall``; answers by path, records each read."""

    def __init__(self, answers):
        self.answers, self.reads = answers, []

    def call(self, method, path, *, params=None, deadline=None):
        self.reads.append((method, path, params, deadline))
        answer = self.answers[path]
        if isinstance(answer, Exception):
            raise answer
        return answer

    async def acall(self, method, path, *, params=None, deadline=None):
        await asyncio.sleep(0)
        return self.call(method, path, params=params, deadline=deadline)


def _two_stage_poke(job_id: str) -> JobPoke:
    """A poke shaped like AEP's: the job, then (once done) each of its parts."""
    if "/" in job_id:
        raise ExportConfigError("job_id", "no slashes")
    job = yield ("GET", f"/jobs/{job_id}", None)
    if job["status"] != "done":
        return PokeEvent("waiting", f"job {job_id} {job['status']}", job_ref=job_id)
    parts = []
    for part in job["parts"]:
        parts.append((yield ("GET", f"/parts/{part}", {"full": "1"}))["status"])
    state = "success" if all(p == "ok" for p in parts) else "waiting"
    return PokeEvent(state, f"job {job_id} parts {parts}", result=job["parts"], job_ref=job_id)


@pytest.mark.parametrize("driver", ["sync", "async"])
def test_both_drivers_run_one_poke_the_same_way(driver):
    def run(hook, poke, deadline):
        if driver == "sync":
            return run_poke(hook, poke, deadline)
        return asyncio.run(arun_poke(hook, poke, deadline))

    hook = _Hook(
        {"/jobs/7": {"status": "done", "parts": ["a", "b"]}, "/parts/a": {"status": "ok"}, "/parts/b": {"status": "ok"}}
    )
    event = run(hook, _two_stage_poke("7"), 123.0)
    assert (event.state, event.result) == ("success", ["a", "b"])
    assert hook.reads == [
        ("GET", "/jobs/7", None, 123.0),
        ("GET", "/parts/a", {"full": "1"}, 123.0),
        ("GET", "/parts/b", {"full": "1"}, 123.0),
    ]
    running = _Hook({"/jobs/8": {"status": "running"}})
    assert run(running, _two_stage_poke("8"), None).state == "waiting" and len(running.reads) == 1
    # a bad id fails before any read; a failed read fails the poke
    with pytest.raises(ExportConfigError):
        run(running, _two_stage_poke("8/.."), None)
    assert len(running.reads) == 1
    failing = _Hook({"/jobs/9": _SERVER_DOWN})
    with pytest.raises(VendorServerError):
        run(failing, _two_stage_poke("9"), None)


def test_a_poke_that_meets_a_transient_error_or_its_deadline_is_logged_and_the_wait_goes_on(caplog):
    log = logging.getLogger("test_waiting")
    caplog.set_level("INFO", "test_waiting")
    for error in (_SERVER_DOWN, DeadlineExceeded("V GET /jobs/9", time.time(), "no time left")):
        with transient_errors_logged(log, "V"):
            raise error
    assert "V still failing after retries" in caplog.text and "V poke stopped: V GET /jobs/9" in caplog.text
    with pytest.raises(ExportConfigError), transient_errors_logged(log, "V"):
        raise ExportConfigError("job_id", "bad")  # not transient: the wait ends
