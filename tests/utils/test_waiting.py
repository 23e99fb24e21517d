"""The wait rules every sensor, trigger and job operator share: verdict events, strict checks, the deadline."""

from __future__ import annotations

import json
import time

import pytest

from airflow_provider_exports.exceptions import ExportJobFailed, ExportsError
from airflow_provider_exports.utils.waiting import (
    LAST_LOOK_SECONDS,
    PAUSE_JITTER,
    JobVerdict,
    check_event,
    failure_from_event,
    look_deadline,
    next_pause,
)


def test_a_failed_verdict_survives_its_event_as_the_same_error():
    verdict = JobVerdict(
        "failed", "job 7 FAILED", job_ref="7", job_status="FAILED", errors=[{"code": "X1", "message": "no"}],
        details={"count": 3},
    )
    event = json.loads(json.dumps(verdict.event()))  # what the triggerer stores

    direct, resumed = verdict.failure("V"), failure_from_event("V", check_event("V", event))

    assert isinstance(resumed, ExportJobFailed) and str(resumed) == str(direct)
    assert resumed.errors == [{"code": "X1", "message": "no"}] and resumed.details == {"count": 3}


def test_a_success_event_carries_the_result():
    event = JobVerdict("success", "job 7 done", result=["b1", "b2"], job_ref="7").event()
    assert check_event("V", event)["result"] == ["b1", "b2"]
    with pytest.raises(ValueError):
        JobVerdict("waiting", "job 7 running").event()


@pytest.mark.parametrize(
    "event",
    [None, "success", {"status": "done"}, {"status": "success", "message": "no result"}],
)
def test_events_a_trigger_of_this_provider_does_not_send_are_refused(event):
    with pytest.raises(ExportsError, match="V trigger"):
        check_event("V", event)


def test_the_deadline_rule():
    now = time.time()
    assert look_deadline(None, False) is None
    assert look_deadline(now + 60, False) == now + 60
    # the last look, or a look past the deadline, gets a short budget of its own
    assert now + LAST_LOOK_SECONDS <= look_deadline(now + 60, True) <= time.time() + LAST_LOOK_SECONDS
    assert look_deadline(now - 5, False) >= now + LAST_LOOK_SECONDS
    # the pause is cut to end at the deadline, and the look after it is the last
    pause, last = next_pause(30.0, None)
    assert 30.0 * (1 - PAUSE_JITTER) <= pause <= 30.0 and not last
    pause, last = next_pause(30.0, time.time() + 5)
    assert pause <= 5 and last
    pause, last = next_pause(1.0, time.time() + 60)
    assert 1.0 * (1 - PAUSE_JITTER) <= pause <= 1.0 and not last
    # a wait with less than two intervals left looks at once (and again at its deadline)
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
    # the time a look took comes off the pause after it: looks start at most one interval apart
    assert all(next_pause(10.0, None, spent=3.0)[0] <= 7.0 for _ in range(50))
    assert next_pause(10.0, None, spent=30.0)[0] == 0.0
    deadline = time.time() + 3
    assert all(next_pause(10.0, deadline, first=f)[0] <= 3.0 for f in (True, False) for _ in range(50))
