"""AdobeProfileExportJobTrigger over real HTTP against the AEP sandbox.

The trigger builds its own hook with the default retry policy (Retry-After honoured, backoff from
1 s), so the fault storms here are short and use ``Retry-After: 1``.
"""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from airflow.triggers.base import TriggerEvent

from airflow_provider_exports.hooks._retry import RetryPolicy
from airflow_provider_exports.triggers.adobe_experience_platform import AdobeProfileExportJobTrigger

FAST = RetryPolicy(max_attempts=3, backoff_initial=0.01, backoff_max=0.05)
CLASSPATH = "airflow_provider_exports.triggers.adobe_experience_platform.AdobeProfileExportJobTrigger"
JOBS = "/data/core/ups/export/jobs"


def _create_job(sandbox, segments=("seg-a",), per_batch=False) -> str:
    return str(sandbox.adobe.add_job(segments=segments, segment_per_batch=per_batch))


def make_trigger(job_id: str, **overrides) -> AdobeProfileExportJobTrigger:
    kwargs = {"export_job_id": job_id, "poll_interval": 0.2, "deadline": time.time() + 15}
    kwargs.update(overrides)
    return AdobeProfileExportJobTrigger(**kwargs)


async def only_payload(trigger, limit: float = 30.0) -> dict:
    async def collect() -> list[TriggerEvent]:
        return [event async for event in trigger.run()]

    events = await asyncio.wait_for(collect(), timeout=limit)
    assert len(events) == 1, events
    json.dumps(events[0].payload)
    return events[0].payload


def test_serialize_is_json_primitives_without_secrets(sandbox):
    trigger = make_trigger("24115", adobe_aep_conn_id="aep_prod", cancel_on_kill=True, deadline=1_900_000_000.5)
    classpath, kwargs = trigger.serialize()
    assert classpath == CLASSPATH
    assert kwargs == {
        "export_job_id": "24115",
        "adobe_aep_conn_id": "aep_prod",
        "cancel_on_kill": True,
        "poll_interval": 0.2,
        "deadline": 1_900_000_000.5,
    }
    assert json.loads(json.dumps(kwargs)) == kwargs
    assert AdobeProfileExportJobTrigger(**kwargs).serialize() == (classpath, kwargs)


async def test_success_waits_for_the_job_then_every_batch(sandbox):
    sandbox.adobe.job_seconds = 0.3
    sandbox.adobe.batch_pending_looks = 2
    sandbox.adobe.batch_pending_status = "staging"  # seen by Adobe's own client, not in the spec
    job_id = _create_job(sandbox, segments=("seg-a", "seg-b"), per_batch=True)
    payload = await only_payload(make_trigger(job_id))
    batches = sandbox.adobe.batch_ids(int(job_id))
    assert payload["status"] == "success" and payload["result"] == batches and len(batches) == 2
    # each batch answered "staging" twice before "success": the wait went on through an unknown status
    for batch in batches:
        assert len(sandbox.adobe.requests_to(f"/data/foundation/catalog/batches/{batch}")) >= 3


async def test_a_failed_job_gives_a_failed_event_with_every_error(sandbox):
    sandbox.adobe.job_seconds = 0.2
    sandbox.adobe.failing_segments = {"seg-broken"}
    job_id = _create_job(sandbox, segments=("seg-broken",))
    payload = await only_payload(make_trigger(job_id))
    assert payload["status"] == "failed" and payload["job_status"] == "FAILED"
    assert payload["errors"][0].startswith("[0090000009] Error writing profiles")
    assert payload["errors"][1] == "[unknown] Job aborted."


async def test_a_429_storm_is_ridden_out(sandbox):
    sandbox.adobe.job_seconds = 0.2
    job_id = _create_job(sandbox)
    sandbox.adobe.faults.rate_limit(f"{JOBS}/*", times=3, retry_after="1", method="GET")
    started = time.monotonic()
    payload = await only_payload(make_trigger(job_id))
    assert payload["status"] == "success"
    assert time.monotonic() - started >= 3.0  # every Retry-After was kept
    assert [r.status for r in sandbox.adobe.requests_to(f"{JOBS}/{job_id}")][:4] == [429, 429, 429, 200]


async def test_the_deadline_holds_while_a_call_is_being_retried(sandbox):
    sandbox.adobe.job_seconds = 60
    job_id = _create_job(sandbox)
    sandbox.adobe.faults.rate_limit(f"{JOBS}/*", times=None, retry_after="30", method="GET")
    started = time.time()
    deadline = started + 2.0
    payload = await only_payload(make_trigger(job_id, deadline=deadline))
    ended = time.time()
    assert payload["status"] == "timeout" and f"export job {job_id}" in payload["message"]
    assert deadline <= ended < deadline + 5  # a 30 s Retry-After wait is not started past the deadline


def _airflow_3_3_plus() -> bool:
    from airflow import __version__
    from packaging.version import Version

    return Version(Version(__version__).base_version) >= Version("3.3.0")


@pytest.mark.skipif(
    not _airflow_3_3_plus(),
    reason="Airflow older than 3.3 never calls a trigger's on_kill when a deferred task is killed",
)
@pytest.mark.parametrize(("cancel_on_kill", "deletes"), [(True, 1), (False, 0)], ids=["operator", "sensor"])
async def test_a_user_killing_the_deferred_task_cancels_the_job(sandbox, cancel_on_kill, deletes, monkeypatch):
    """Through the triggerer's own code: a trigger cancelled by a user action gets ``on_kill``."""
    from airflow.jobs.triggerer_job_runner import TriggerRunner

    monkeypatch.setenv("AIRFLOW_DISABLE_GREENBACK_PORTAL", "true")
    sandbox.adobe.job_seconds = 60
    job_id = _create_job(sandbox)
    trigger = make_trigger(job_id, cancel_on_kill=cancel_on_kill, deadline=time.time() + 60)
    trigger.task_instance = None
    runner = TriggerRunner()
    task = asyncio.create_task(runner.run_trigger(1, trigger))
    runner.triggers[1] = {"task": task, "name": "aep", "events": 0}
    while not sandbox.adobe.requests_to(f"{JOBS}/{job_id}", "GET"):  # the trigger is polling
        await asyncio.sleep(0.05)
    runner.to_cancel.append(1)
    await runner.cancel_triggers()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert len(sandbox.adobe.requests_to(f"{JOBS}/{job_id}", "DELETE")) == deletes
    assert sandbox.adobe.job_status(int(job_id)) == ("FAILED" if deletes else "NEW")


@pytest.mark.parametrize("job_id", ["1/../../dataSets", "24115?x=1", "", None])
def test_a_job_id_that_could_leave_its_path_is_refused_when_the_trigger_is_made(job_id):
    from airflow_provider_exports.exceptions import ExportConfigError

    with pytest.raises(ExportConfigError, match="export_job_id"):
        AdobeProfileExportJobTrigger(export_job_id=job_id)
