"""The AEP dataset and export-job operators against the sandbox: checks, create, wait, cancel, reattach.

The DAG-level runs (deferred and in the worker, a retry that reattaches, a failed job) are in
``tests/example_dags/test_adobe_profile_export.py``; here each operator runs on its own, with the
smallest task-instance stand-in that ``execute`` needs (``xcom_push``/``xcom_pull``).
"""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import datetime, timezone
from types import SimpleNamespace

import pytest
from airflow.providers.common.compat.sdk import TaskDeferred

from airflow_provider_exports.exceptions import ExportConfigError, ExportJobFailed, JobWaitTimeout
from airflow_provider_exports.hooks._retry import RetryPolicy
from airflow_provider_exports.hooks.adobe_experience_platform import AdobeExperiencePlatformHook
from airflow_provider_exports.operators.adobe_experience_platform import (
    AdobeCreateProfileDatasetOperator,
    AdobeCreateProfileExportJobOperator,
    export_job_request,
)

FAST = RetryPolicy(max_attempts=3, backoff_initial=0.01, backoff_max=0.05)
JOBS = "/data/core/ups/export/jobs"


class _TI:
    """What ``execute`` asks of a task instance: XCom, and which try this is."""

    def __init__(self, try_number: int = 1) -> None:
        self.task_id = "export_profiles"
        self.try_number = try_number
        self.xcom: dict[str, object] = {}

    def xcom_push(self, key, value):
        self.xcom[key] = value

    def xcom_pull(self, task_ids=None, key=None):
        return self.xcom.get(key)


def context(try_number: int = 1, run_started: datetime | None = None) -> dict:
    return {"ti": _TI(try_number), "dag_run": SimpleNamespace(start_date=run_started)}


def make_operator(**overrides) -> AdobeCreateProfileExportJobOperator:
    kwargs = {"task_id": "export_profiles", "dataset_id": "ds", "poll_interval": 0.2, "segments": ["seg-a"]}
    kwargs.update(overrides)
    return AdobeCreateProfileExportJobOperator(**kwargs)


def _dataset() -> str:
    return AdobeExperiencePlatformHook(retry=FAST).create_profile_dataset("t")


# -- parse time -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"dataset_id": ""}, "dataset_id"),
        ({"schema_name": ""}, "schema_name"),
        ({"from_ingest_timestamp": "yesterday"}, "from_ingest_timestamp"),
        ({"segment_qualification_start": "2026-11-21T00:00:00"}, "segment_qualification_start"),
        ({"segment_statuses": ["qualified"]}, "segment_statuses"),
        ({"segments": [{"segmentId": "s", "status": ["gone"]}]}, "segments[0].status"),
        ({"empty_profiles": "maybe"}, "empty_profiles"),
        ({"segments": ["seg-a", {"segmentId": "seg-b"}]}, "merge_policy_id"),
    ],
)
def test_a_bad_literal_fails_when_the_dag_is_parsed(kwargs, field):
    with pytest.raises(ExportConfigError) as err:
        make_operator(**kwargs)
    assert err.value.field == field


def test_templated_arguments_are_checked_once_rendered():
    op = make_operator(
        dataset_id="{{ ti.xcom_pull(task_ids='profile_dataset') }}",
        from_ingest_timestamp="{{ data_interval_start }}",
        segment_statuses=["realized"],  # literal, checked although segments beside it may be templated
        segments="{{ params.segments }}",
        merge_policy_id="mp",
    )
    assert set(op.template_fields) >= {"dataset_id", "segments", "from_ingest_timestamp", "adobe_aep_conn_id"}
    op.dataset_id, op.segments, op.from_ingest_timestamp = "ds", '["a", "b"]', "2026-11-21 00:00:00+00:00"
    assert op.request_body()["filter"] == {
        "segments": [{"segmentId": "a", "status": ["realized"]}, {"segmentId": "b", "status": ["realized"]}],
        "fromIngestTimestamp": "2026-11-21T00:00:00+00:00",
    }
    op.from_ingest_timestamp = "not a time"
    with pytest.raises(ExportConfigError, match="from_ingest_timestamp"):
        op.request_body()


def test_several_segments_need_a_merge_policy():
    """segmentation.yaml on mergePolicy: "Include this parameter when there are multiple segment
    definitions being exported": refused when the DAG is parsed, naming the parameter."""
    with pytest.raises(ExportConfigError, match="multiple segment definitions") as err:
        make_operator(segments=["seg-a", "seg-b"])
    assert err.value.field == "merge_policy_id" and "2 given" in str(err.value)
    assert make_operator(segments=["seg-a", "seg-b"], merge_policy_id="mp").request_body()["mergePolicy"] == {"id": "mp"}
    assert "mergePolicy" not in make_operator(segments=["seg-a"]).request_body()
    # Templated, either one stands in for a valid value when parsed; the rendered request is checked.
    op = make_operator(segments="{{ params.segments }}")
    op2 = make_operator(segments=["seg-a", "seg-b"], merge_policy_id="{{ params.policy }}")
    op.segments, op2.merge_policy_id = '["a", "b"]', ""
    for rendered in (op, op2):
        with pytest.raises(ExportConfigError, match="merge_policy_id"):
            rendered.request_body()


def test_a_dag_with_several_segments_and_no_merge_policy_does_not_parse(tmp_path, exports_load_dag):
    dag_file = tmp_path / "aep_segments.py"
    dag_file.write_text(
        "import pendulum\n"
        "from airflow.sdk import DAG\n"
        "from airflow_provider_exports.operators.adobe_experience_platform import AdobeCreateProfileExportJobOperator\n"
        "with DAG('aep_segments', start_date=pendulum.datetime(2026, 11, 1, tz='UTC'), schedule=None):\n"
        "    AdobeCreateProfileExportJobOperator(task_id='export', dataset_id='ds', segments=['a', 'b'])\n"
    )
    with pytest.raises(ImportError, match="merge_policy_id"):
        exports_load_dag(dag_file, "aep_segments")


def test_constructing_makes_no_request(sandbox):
    make_operator()
    AdobeCreateProfileDatasetOperator(task_id="d", dataset_name="x")
    assert sandbox.adobe.requests == []


def test_the_dataset_operator_reuses_a_dataset_of_the_same_name(sandbox):
    with pytest.raises(ExportConfigError, match="dataset_name"):
        AdobeCreateProfileDatasetOperator(task_id="d", dataset_name=" ")
    op = AdobeCreateProfileDatasetOperator(task_id="d", dataset_name="profiles")
    first, again = op.execute({}), op.execute({})
    assert first == again
    assert len(sandbox.adobe.requests_to("/data/foundation/catalog/dataSets", "POST")) == 1


# -- create and wait ---------------------------------------------------------------------------------


def test_the_job_id_is_pushed_before_the_wait_and_the_batch_ids_returned(sandbox):
    sandbox.adobe.job_seconds = 0.2
    ctx = context()
    op = make_operator(dataset_id=_dataset())
    batches = op.execute(ctx)
    (job_id,) = sandbox.adobe._jobs
    assert ctx["ti"].xcom == {"job_id": str(job_id)} and batches == sandbox.adobe.batch_ids(job_id)
    assert sandbox.adobe.requests_to(JOBS, "GET") == []  # a first try does not look for an earlier job


def test_without_waiting_the_job_id_is_returned(sandbox):
    sandbox.adobe.job_seconds = 60
    job_id = make_operator(dataset_id=_dataset(), wait_for_completion=False).execute(context())
    assert sandbox.adobe.job_status(int(job_id)) == "NEW"


def test_a_failed_job_raises_every_error(sandbox):
    sandbox.adobe.job_seconds = 0.1
    sandbox.adobe.failing_segments = {"seg-broken"}
    with pytest.raises(ExportJobFailed, match=r"\[0090000009\].*\[unknown\] Job aborted"):
        make_operator(dataset_id=_dataset(), segments=["seg-broken"]).execute(context())


def test_a_retry_reattaches_to_the_runs_active_job(sandbox):
    sandbox.adobe.job_seconds = 0.5
    dataset = _dataset()
    started = datetime.now(timezone.utc)
    first = make_operator(dataset_id=dataset, wait_for_completion=False).execute(context(1, started))
    ctx = context(2, started)
    make_operator(dataset_id=dataset).execute(ctx)
    assert ctx["ti"].xcom["job_id"] == first
    assert len(sandbox.adobe.requests_to(JOBS, "POST")) == 1


def test_a_retry_after_the_job_ended_creates_a_new_one(sandbox):
    sandbox.adobe.job_seconds = 60
    dataset = _dataset()
    started = datetime.now(timezone.utc)
    first = make_operator(dataset_id=dataset, wait_for_completion=False).execute(context(1, started))
    AdobeExperiencePlatformHook(retry=FAST).cancel_export_job(first)  # FAILED: nothing active
    second = make_operator(dataset_id=dataset, wait_for_completion=False).execute(context(2, started))
    assert second != first and len(sandbox.adobe.requests_to(JOBS, "POST")) == 2


def test_a_cleared_try_that_reattached_to_the_job_its_predecessor_cancels_creates_a_new_one(sandbox):
    """Clearing a deferred task kills its trigger, whose on_kill cancels the job, while the next try
    already starts: that try can find the job still running and reattach (seen under CeleryExecutor).
    Here the cancel lands after the reattach, as it did there."""
    sandbox.adobe.job_seconds = 60
    dataset = _dataset()
    started = datetime.now(timezone.utc)
    first = make_operator(dataset_id=dataset, wait_for_completion=False).execute(context(1, started))
    ctx = context(2, started)
    with pytest.raises(TaskDeferred) as deferred:
        make_operator(dataset_id=dataset, deferrable=True).execute(ctx)
    assert ctx["ti"].xcom["job_id"] == first and deferred.value.kwargs == {"reattached": True}
    AdobeExperiencePlatformHook(retry=FAST).cancel_export_job(first)  # the cleared try's on_kill
    sandbox.adobe.job_seconds = 0.2  # the job the resumed try creates

    async def first_event(trigger):
        async for event in trigger.run():
            return event.payload

    event = asyncio.run(first_event(deferred.value.trigger))
    assert event["status"] == "failed"
    resumed = make_operator(dataset_id=dataset, deferrable=True)  # a resumed task is a new object
    with pytest.raises(TaskDeferred) as again:
        resumed.execute_complete(ctx, event, **deferred.value.kwargs)
    second = ctx["ti"].xcom["job_id"]
    assert second != first and len(sandbox.adobe.requests_to(JOBS, "POST")) == 2
    assert again.value.kwargs == {"reattached": False}  # created by this try: a failure now is final
    done = asyncio.run(first_event(again.value.trigger))
    assert done["status"] == "success"
    assert make_operator(dataset_id=dataset).execute_complete(ctx, done, **again.value.kwargs) == (
        sandbox.adobe.batch_ids(int(second))
    )


def test_a_job_this_try_created_that_fails_fails_the_task_without_a_new_job(sandbox):
    sandbox.adobe.job_seconds = 60
    ctx = context()
    with pytest.raises(TaskDeferred) as deferred:
        make_operator(dataset_id=_dataset(), deferrable=True).execute(ctx)
    AdobeExperiencePlatformHook(retry=FAST).cancel_export_job(ctx["ti"].xcom["job_id"])

    async def first_event():
        async for event in deferred.value.trigger.run():
            return event.payload

    event = asyncio.run(first_event())
    with pytest.raises(ExportJobFailed):
        make_operator(dataset_id="ds", deferrable=True).execute_complete(ctx, event, **deferred.value.kwargs)
    assert len(sandbox.adobe.requests_to(JOBS, "POST")) == 1


# -- cancel ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("style", ["200-body", "204-empty", "204-body"])
def test_on_kill_cancels_the_job_the_worker_waits_for(sandbox, style):
    sandbox.adobe.job_seconds = 60
    sandbox.adobe.delete_style = style
    op = make_operator(dataset_id=_dataset())
    outcome: list[BaseException] = []

    def run():
        try:
            op.execute(context())
        except BaseException as exc:
            outcome.append(exc)

    worker = threading.Thread(target=run)
    worker.start()
    for _ in range(600):  # until the wait has poked the job once
        if sandbox.adobe.requests_to(f"{JOBS}/*", "GET"):
            break
        time.sleep(0.05)
    op.on_kill()  # what Airflow calls on SIGTERM
    worker.join(60)
    (job_id,) = sandbox.adobe._jobs
    deletes = sandbox.adobe.requests_to(f"{JOBS}/{job_id}", "DELETE")
    assert [d.status for d in deletes] == [200 if style == "200-body" else 204]
    assert sandbox.adobe.job_status(job_id) == "FAILED"
    # the wait saw the job end cancelled and the task failed (not retried)
    assert not worker.is_alive() and isinstance(outcome[0], ExportJobFailed)


def test_on_kill_never_raises(sandbox):
    op = make_operator()
    op.job_id = "999999"  # no such job: Adobe answers 404
    op.on_kill()
    assert [r.status for r in sandbox.adobe.requests_to(f"{JOBS}/999999", "DELETE")] == [404]


def test_a_wait_that_times_out_in_the_worker_cancels_then_fails(sandbox):
    sandbox.adobe.job_seconds = 60
    op = make_operator(dataset_id=_dataset(), timeout=1.0)
    with pytest.raises(JobWaitTimeout, match="did not finish before the deadline"):
        op.execute(context())
    (job_id,) = sandbox.adobe._jobs
    assert len(sandbox.adobe.requests_to(f"{JOBS}/{job_id}", "DELETE")) == 1


def test_a_deferred_wait_that_times_out_cancels_then_fails(sandbox):
    sandbox.adobe.job_seconds = 60
    op = make_operator(dataset_id=_dataset(), deferrable=True, timeout=1.0)
    ctx = context()
    with pytest.raises(TaskDeferred) as deferred:
        op.execute(ctx)
    assert deferred.value.timeout is None and deferred.value.trigger.cancel_on_kill is True

    async def first_event():
        async for event in deferred.value.trigger.run():
            return event.payload

    event = asyncio.run(first_event())
    assert event["status"] == "timeout"
    resumed = make_operator(dataset_id="ds", deferrable=True)  # a resumed task is a new object
    with pytest.raises(JobWaitTimeout):
        resumed.execute_complete(ctx, event)
    job_id = ctx["ti"].xcom["job_id"]
    assert len(sandbox.adobe.requests_to(f"{JOBS}/{job_id}", "DELETE")) == 1


# -- the request body (CreateExportJobRequest) the operator builds --------------------------------


def test_export_job_request_carries_every_documented_field():
    body = export_job_request(
        dataset_id="ds1",
        fields=["identities.id", "personalEmail.address"],
        merge_policy_id="mp1",
        merge_policy_version="2",
        segments=["seg-a", {"segmentId": "seg-b", "segmentNs": "aam", "status": ["exited"]}],
        segment_namespace="ups",
        segment_statuses=["realized"],
        segment_qualification_start="2026-11-21T00:00:00Z",
        segment_qualification_end="2026-11-22T00:00:00+00:00",
        from_ingest_timestamp="2026-11-21T00:00:00.123Z",
        empty_profiles=True,
        event_fields="endUserIDs._experience.emailid.id,eventType",
        event_from_ingest_timestamp="2026-11-20T00:00:00Z",
        event_to_ingest_timestamp="2026-11-21T00:00:00Z",
        segment_per_batch=True,
        evaluate_segments=False,
    )
    assert body == {
        "fields": "identities.id,personalEmail.address",
        "mergePolicy": {"id": "mp1", "version": 2},
        "filter": {
            "segments": [
                {"segmentId": "seg-a", "segmentNs": "ups", "status": ["realized"]},
                {"segmentId": "seg-b", "segmentNs": "aam", "status": ["exited"]},
            ],
            "segmentQualificationTime": {
                "startTime": "2026-11-21T00:00:00Z",
                "endTime": "2026-11-22T00:00:00+00:00",
            },
            "fromIngestTimestamp": "2026-11-21T00:00:00.123Z",
            "emptyProfiles": True,
        },
        "additionalFields": {
            "eventList": {
                "fields": "endUserIDs._experience.emailid.id,eventType",
                "filter": {
                    "fromIngestTimestamp": "2026-11-20T00:00:00Z",
                    "toIngestTimestamp": "2026-11-21T00:00:00Z",
                },
            }
        },
        "destination": {"datasetId": "ds1", "segmentPerBatch": True},
        "schema": {"name": "_xdm.context.profile"},
        "evaluationInfo": {"segmentation": False},
    }
    # the minimum: Adobe's defaults for everything else
    assert export_job_request(dataset_id="ds1") == {
        "destination": {"datasetId": "ds1"},
        "schema": {"name": "_xdm.context.profile"},
    }


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"dataset_id": ""}, "dataset_id"),
        ({"dataset_id": None}, "dataset_id"),
        ({"dataset_id": "d", "schema_name": " "}, "schema_name"),
        ({"dataset_id": "d", "from_ingest_timestamp": "2026-11-21"}, "from_ingest_timestamp"),
        ({"dataset_id": "d", "from_ingest_timestamp": "2026-11-21T00:00:00"}, "from_ingest_timestamp"),
        ({"dataset_id": "d", "segment_qualification_end": "yesterday"}, "segment_qualification_end"),
        ({"dataset_id": "d", "event_to_ingest_timestamp": "2026-13-01T00:00:00Z"}, "event_to_ingest_timestamp"),
        ({"dataset_id": "d", "segments": ["s"], "segment_statuses": ["active"]}, "segment_statuses"),
        ({"dataset_id": "d", "segments": [{"segmentId": "s", "status": ["gone"]}]}, "segments[0].status"),
        ({"dataset_id": "d", "segments": [{"segmentNs": "ups"}]}, "segments[0].segmentId"),
        ({"dataset_id": "d", "segments": [{"segmentId": "s", "ns": "ups"}]}, "segments[0]"),
        ({"dataset_id": "d", "segment_statuses": ["realized"]}, "segments"),
        ({"dataset_id": "d", "merge_policy_version": 1}, "merge_policy_version"),
        ({"dataset_id": "d", "merge_policy_id": "m", "merge_policy_version": "latest"}, "merge_policy_version"),
        ({"dataset_id": "d", "empty_profiles": "yes"}, "empty_profiles"),
        ({"dataset_id": "d", "segment_per_batch": "yes"}, "segment_per_batch"),
        ({"dataset_id": "d", "segments": "[not json"}, "segments"),
        ({"dataset_id": "d", "fields": "identities id"}, "fields"),
    ],
)
def test_export_job_request_names_the_bad_argument(kwargs, field):
    with pytest.raises(ExportConfigError) as err:
        export_job_request(**kwargs)
    assert err.value.field == field


def test_a_dataset_id_that_is_no_dataset_id_is_refused_when_the_dag_is_parsed():
    with pytest.raises(ExportConfigError, match="is not a dataset id") as err:
        export_job_request(dataset_id="ds1/../../x")
    assert err.value.field == "dataset_id"
