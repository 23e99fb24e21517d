"""AdobeProfileExportJobSensor over real HTTP against the AEP sandbox: poke, deferrable, failures."""

from __future__ import annotations

import json
import time

import pytest
from airflow.providers.common.compat.sdk import PokeReturnValue, TaskDeferred

from airflow_provider_exports.exceptions import ExportConfigError, ExportJobFailed
from airflow_provider_exports.hooks._retry import RetryPolicy
from airflow_provider_exports.sensors.adobe_experience_platform import AdobeProfileExportJobSensor
from airflow_provider_exports.triggers.adobe_experience_platform import AdobeProfileExportJobTrigger

FAST = RetryPolicy(max_attempts=3, backoff_initial=0.01, backoff_max=0.05)


def _create_job(sandbox, segments=("seg-a",), per_batch=False) -> str:
    return str(sandbox.adobe.add_job(segments=segments, segment_per_batch=per_batch))


def make_sensor(job_id, **overrides) -> AdobeProfileExportJobSensor:
    kwargs = {"task_id": "wait_for_job", "export_job_id": job_id, "poke_interval": 0.2, "timeout": 30}
    kwargs.update(overrides)
    return AdobeProfileExportJobSensor(**kwargs)


def _poke_until_done(sensor, limit=60):
    for _ in range(int(limit / 0.1)):
        result = sensor.poke({})
        if isinstance(result, PokeReturnValue) and result.is_done:
            return result.xcom_value
        time.sleep(0.1)
    raise AssertionError("the job did not finish")


@pytest.mark.parametrize("job_id", ["abc", "", "12a", None, True])
def test_a_bad_literal_job_id_fails_when_the_dag_is_parsed(job_id):
    with pytest.raises(ExportConfigError) as err:
        make_sensor(job_id)
    assert err.value.field == "export_job_id"


@pytest.mark.parametrize("job_id", ["24115", 24115, "{{ ti.xcom_pull(task_ids='export', key='job_id') }}"])
def test_a_good_or_templated_job_id_constructs(job_id):
    assert make_sensor(job_id).template_fields == ("export_job_id", "adobe_aep_conn_id")


def test_poke_returns_the_batch_id_once_job_and_batch_are_done(sandbox):
    sandbox.adobe.job_seconds = 0.2
    sandbox.adobe.batch_pending_looks = 1
    job_id = _create_job(sandbox)
    sensor = make_sensor(job_id)
    assert sensor.poke({}) is False  # NEW
    assert _poke_until_done(sensor) == sandbox.adobe.batch_ids(int(job_id))


def test_poke_returns_one_batch_per_segment_with_segment_per_batch(sandbox):
    sandbox.adobe.job_seconds = 0.1
    job_id = _create_job(sandbox, ("s1", "s2", "s3"), per_batch=True)
    batches = _poke_until_done(make_sensor(job_id))
    assert batches == sandbox.adobe.batch_ids(int(job_id)) and len(batches) == 3


def test_a_failed_job_fails_at_once_with_every_error(sandbox):
    sandbox.adobe.job_seconds = 0.1
    sandbox.adobe.failing_segments = {"seg-broken"}
    job_id = _create_job(sandbox, ("seg-broken",))
    sensor = make_sensor(job_id, mode="poke")
    with pytest.raises(ExportJobFailed) as err:
        sensor.execute({})
    message = str(err.value)
    assert "[0090000009] Error writing profiles" in message and "[unknown] Job aborted." in message
    assert err.value.status == "FAILED"


def test_poke_waits_through_a_rate_limit_outage(sandbox):
    sandbox.adobe.job_seconds = 0.1
    job_id = _create_job(sandbox)
    sandbox.adobe.faults.rate_limit("/data/core/ups/export/jobs/*", times=None, retry_after="0")
    sensor = make_sensor(job_id)
    sensor.hook.retry = FAST
    assert sensor.poke({}) is False  # still 429 after the core's retries: poke again later
    sandbox.adobe.faults.clear()
    assert _poke_until_done(sensor)


def test_deferrable_execute_defers_to_a_trigger_that_does_not_cancel(sandbox):
    sandbox.adobe.job_seconds = 60
    job_id = _create_job(sandbox)
    sensor = make_sensor(job_id, deferrable=True, poke_interval=30, timeout=3600, adobe_aep_conn_id="adobe_aep_default")
    before = time.time()
    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute({})
    assert deferred.value.method_name == "execute_complete" and deferred.value.timeout is None
    trigger = deferred.value.trigger
    assert isinstance(trigger, AdobeProfileExportJobTrigger)
    _, kwargs = trigger.serialize()
    assert kwargs["export_job_id"] == job_id and kwargs["cancel_on_kill"] is False
    assert before + 3600 <= kwargs["deadline"] <= time.time() + 3600
    assert sandbox.adobe.connection()["password"] not in json.dumps(kwargs)


def test_deferrable_execute_returns_at_once_when_already_done(sandbox):
    sandbox.adobe.job_seconds = 0.1
    job_id = _create_job(sandbox)
    expected = _poke_until_done(make_sensor(job_id))
    assert make_sensor(job_id, deferrable=True).execute({}) == expected


@pytest.mark.parametrize(
    ("event", "error"),
    [
        (None, "Unexpected event"),
        ({"status": "weird"}, "Unexpected event"),
        ({"status": "success"}, "without a result"),
        ({"status": "error", "message": "boom"}, "boom"),
    ],
)
def test_execute_complete_is_strict(event, error):
    with pytest.raises(Exception, match=error):
        make_sensor("1").execute_complete({}, event)
