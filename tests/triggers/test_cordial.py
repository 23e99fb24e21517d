"""CordialJobTrigger over real HTTP against the Cordial sandbox, run to its event by ``run_inline``
(the same path a job-creating operator waits on in the worker).

The trigger builds its own hook with the default retry policy (5 attempts, Retry-After honoured).
"""

from __future__ import annotations

import json
import time

import pytest

from airflow_provider_exports.triggers._base import run_inline
from airflow_provider_exports.triggers.cordial import CordialJobTrigger
from airflow_provider_exports_sandbox.cordial import API_KEY

pytestmark = pytest.mark.usefixtures("cordial_requests")

CLASSPATH = "airflow_provider_exports.triggers.cordial.CordialJobTrigger"
JOB = "/v2/jobs/*"
# Bounds, never races: a wait ends no earlier than its deadline and less than LATE seconds after it.
LATE = 5.0


def make_trigger(job_id: str, **overrides) -> CordialJobTrigger:
    return CordialJobTrigger(
        **{"job_id": job_id, "poll_interval": 0.1, "deadline": time.time() + 20, **overrides}
    )


def test_serialize_round_trip_is_json_primitives_without_secrets():
    trigger = CordialJobTrigger(job_id="6b0b", cordial_conn_id="cordial_eu", poll_interval=5, deadline=1.9e9)
    classpath, kwargs = trigger.serialize()
    assert classpath == CLASSPATH
    assert kwargs == {
        "job_id": "6b0b",
        "cordial_conn_id": "cordial_eu",
        "poll_interval": 5.0,
        "deadline": 1.9e9,
    }
    dumped = json.dumps(kwargs)
    assert API_KEY not in dumped
    assert CordialJobTrigger(**json.loads(dumped)).serialize() == (classpath, kwargs)


def test_waits_through_scheduled_and_processing_until_done(sandbox, cordial_job):
    sandbox.cordial.job_reads = 3  # Scheduled, Processing, then Done at the third poke
    job_id = cordial_job()
    payload = run_inline(make_trigger(job_id))
    assert payload == {
        "status": "success",
        "message": f"Cordial job {job_id}: status Done, 1 of 1 items",
        "result": {"job_id": job_id, "status": "Done", "file_name": "weekly-trends.csv", "total_records": 1},
        "job_ref": job_id,
    }
    assert len(sandbox.cordial.requests_to(JOB)) == 3


def test_a_throttled_job_is_waited_for(sandbox, cordial_job):
    sandbox.cordial.throttle_next_jobs(1)
    job_id = cordial_job()
    payload = run_inline(make_trigger(job_id))
    assert payload["status"] == "success"


def test_a_failed_job_is_a_failed_event_with_its_result(sandbox, cordial_job):
    sandbox.cordial.fail_next_jobs(1)
    job_id = cordial_job()
    payload = run_inline(make_trigger(job_id))
    assert (
        payload["status"] == "failed" and payload["job_ref"] == job_id and payload["job_status"] == "Failed"
    )
    assert payload["details"] == {
        "totalRecords": 0,
        "updated": 0,
        "rejected": 0,
        "inserted": 0,
        "error": 1,
        "ignored": 0,
        "totalItems": 1,
        "completedItems": 0,
    }
    assert payload["errors"] == ["1 record(s) in error"]


def test_an_unknown_job_is_an_error_event_at_once(sandbox):
    time.monotonic()
    payload = run_inline(make_trigger("ffffffffffffffffffffffff"))
    assert payload["status"] == "error"
    assert "HTTP 404 (RECORD_NOT_FOUND): record not found" in payload["message"]
    assert len(sandbox.cordial.requests_to(JOB)) == 1  # a 404 is not retried


def test_rides_out_a_429_storm_longer_than_one_calls_retries(sandbox, cordial_job):
    job_id = cordial_job(seconds=0.05)
    # Six 429s: one poke makes 5 attempts (Retry-After 1 s each), gives up, and the wait goes on.
    sandbox.cordial.faults.rate_limit(JOB, times=6, retry_after="1")
    started = time.monotonic()
    payload = run_inline(make_trigger(job_id))
    assert payload["status"] == "success"
    assert time.monotonic() - started >= 5  # Retry-After was honoured
    assert [r.status for r in sandbox.cordial.requests_to(JOB)] == [429] * 6 + [200]


def test_the_wait_ends_at_its_deadline_while_a_call_is_retried(sandbox, cordial_job):
    job_id = cordial_job(seconds=120)
    sandbox.cordial.faults.rate_limit(JOB, times=None, retry_after="30")
    deadline = time.time() + 2
    payload = run_inline(make_trigger(job_id, poll_interval=60, deadline=deadline))
    ended = time.time()
    assert payload == {
        "status": "timeout",
        "message": "Cordial: the wait reached its deadline; last seen: nothing yet",
    }
    assert deadline <= ended < deadline + LATE
    # one poke at the start, one last poke at the deadline; neither waited the 30 s
    assert [r.status for r in sandbox.cordial.requests_to(JOB)] == [429, 429]
