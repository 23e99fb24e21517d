"""CordialJobSensor: parse-time checks, poke() and the deferrable wait over real HTTP against the sandbox.

``poke()`` and ``execute()`` are called directly with an empty context (the sensor reads none);
the operators' waits run whole DAGs (tests/operators, tests/example_dags).
"""

from __future__ import annotations

import json
import time

import pytest
from airflow.providers.common.compat.sdk import (
    AirflowFailException,
    AirflowSensorTimeout,
    PokeReturnValue,
    TaskDeferred,
)

from airflow_provider_exports.exceptions import ExportConfigError, ExportJobFailed, ExportsError
from airflow_provider_exports.sensors.cordial import CordialJobSensor
from airflow_provider_exports.triggers._base import run_inline
from airflow_provider_exports.triggers.cordial import CordialJobTrigger

pytestmark = pytest.mark.usefixtures("cordial_requests")

JOB = "/v2/jobs/*"
LATE = 5.0


def sensor(**overrides) -> CordialJobSensor:
    return CordialJobSensor(**{"task_id": "wait", "poke_interval": 0.1, "timeout": 20, **overrides})


@pytest.mark.parametrize(
    "job_id", ["", "  ", "jobs/1", None, "1/../../contacts/alice@example.com", "548817d0367df1ef518b456"]
)
def test_a_bad_job_id_fails_when_the_dag_is_parsed(job_id):
    with pytest.raises(ExportConfigError, match="not a Cordial job id") as err:
        sensor(job_id=job_id)
    assert err.value.field == "job_id"


def test_constructing_makes_no_request_and_templates_wait_for_run_time(sandbox):
    sensor(job_id="{{ ti.xcom_pull(task_ids='export', key='job_id') }}", deferrable=True)
    assert sandbox.cordial.requests == []


def test_poke_false_while_running_then_the_jobs_summary(sandbox, cordial_job):
    sandbox.cordial.job_reads = 2  # Scheduled at the first poke, Done at the second
    job_id = cordial_job()
    waiting = sensor(job_id=job_id)
    assert waiting.poke({}) is False
    done = waiting.poke({})
    assert isinstance(done, PokeReturnValue) and done.is_done
    assert done.xcom_value == {
        "job_id": job_id,
        "status": "Done",
        "file_name": "weekly-trends.csv",
        "total_records": 1,
    }


def test_a_failed_job_fails_the_poke_for_good(sandbox, cordial_job):
    sandbox.cordial.fail_next_jobs(1)
    job_id = cordial_job()
    with pytest.raises(ExportJobFailed, match=r"ended with status Failed\. totalRecords=0") as err:
        sensor(job_id=job_id).execute({})
    assert isinstance(err.value, AirflowFailException)  # never retried: a failed job stays failed


def test_poke_mode_ends_at_the_timeout_while_a_call_is_retried(sandbox, cordial_job):
    job_id = cordial_job(seconds=120)
    sandbox.cordial.faults.rate_limit(JOB, times=None, retry_after="30")
    deadline = time.time() + 2
    with pytest.raises(AirflowSensorTimeout):
        sensor(job_id=job_id, mode="poke", poke_interval=60, timeout=2).execute({})
    assert deadline <= time.time() < deadline + LATE
    assert [r.status for r in sandbox.cordial.requests_to(JOB)] == [429, 429]


def test_deferrable_defers_to_the_trigger_whose_event_completes_it(sandbox, cordial_job):
    sandbox.cordial.job_reads = 2  # the first poke sees it Scheduled, the trigger sees it Done
    job_id = cordial_job()
    waiting = sensor(job_id=job_id, deferrable=True)
    with pytest.raises(TaskDeferred) as deferred:
        waiting.execute({})
    trigger = deferred.value.trigger
    assert isinstance(trigger, CordialJobTrigger) and deferred.value.timeout is None
    assert trigger.serialize()[1] == {
        "job_id": job_id,
        "cordial_conn_id": "cordial_default",
        "poll_interval": 0.1,
        "deadline": waiting._deadline,
    }
    event = json.loads(json.dumps(run_inline(trigger)))
    assert waiting.execute_complete({}, event)["status"] == "Done"


@pytest.mark.parametrize(
    ("event", "error"),
    [
        (None, ExportsError),
        ({"status": "weird"}, ExportsError),
        ({"status": "success"}, ExportsError),  # success without a result
        ({"status": "error", "message": "RECORD_NOT_FOUND"}, ExportsError),
        ({"status": "timeout", "message": "late"}, AirflowSensorTimeout),
        (
            {
                "status": "failed",
                "message": "m",
                "job_ref": "j",
                "job_status": "Failed",
                "details": {"error": 1},
            },
            ExportJobFailed,
        ),
    ],
)
def test_execute_complete_is_strict(event, error):
    with pytest.raises(error):
        sensor(job_id="0" * 24).execute_complete({}, event)
