"""SitecoreCDPExportSensor: parse-time checks, poke() and deferral over real HTTP against the sandbox.

``poke()`` and ``execute()`` are called directly with a minimal context (``data_interval_start``);
the whole DAG run (``dag.test()``) is tested end to end elsewhere.
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta, timezone

import pytest
from airflow.providers.common.compat.sdk import AirflowSensorTimeout, PokeReturnValue, TaskDeferred

from airflow_provider_exports.exceptions import (
    ExportConfigError,
    ExportJobFailed,
    ExportsError,
    VendorNotFoundError,
)
from airflow_provider_exports.sensors.sitecore_cdp import SitecoreCDPExportSensor
from airflow_provider_exports.triggers.sitecore_cdp import SitecoreCDPExportTrigger
from airflow_provider_exports_sandbox.sitecore_cdp import API_SECRET

EXPORT = "daily_loyalty_members"
REPORTS = f"/v2/audienceExports/definitions/{EXPORT}/reports"
T0 = datetime(2026, 11, 1, tzinfo=timezone.utc)


def make_sensor(**overrides) -> SitecoreCDPExportSensor:
    kwargs = {"task_id": "wait_for_export", "audience_export_ref": EXPORT}
    kwargs.update(overrides)
    return SitecoreCDPExportSensor(**kwargs)


def context(start: datetime | None = T0) -> dict:
    return {"data_interval_start": start}


def done(result: object) -> str:
    """The XCom value of a finished poke (``PokeReturnValue`` has no ``__eq__``)."""
    assert isinstance(result, PokeReturnValue), result
    assert result.is_done is True
    return result.xcom_value


# -- parse time ----------------------------------------------------------------------------------


@pytest.mark.parametrize("ref", ["Daily Loyalty!", "daily-loyalty", "", "DAILY"])
def test_bad_reference_fails_when_the_dag_is_parsed(ref):
    with pytest.raises(ExportConfigError) as err:
        make_sensor(audience_export_ref=ref)
    assert err.value.field == "audience_export_ref"
    assert "audience_export_ref" in str(err.value)


@pytest.mark.parametrize(
    "ref", ["daily_loyalty_members", "0f8fad5b-d9cb-469f-a165-70867728950e", "{{ params.x }}"]
)
def test_good_or_templated_reference_constructs(ref):
    sensor = make_sensor(audience_export_ref=ref)
    assert sensor.audience_export_ref == ref


def test_constructing_makes_no_request(sandbox):
    make_sensor()
    make_sensor(audience_export_ref="{{ params.x }}", deferrable=True)
    assert sandbox.sitecore.requests == []


def test_templated_reference_is_checked_once_rendered(sandbox):
    sensor = make_sensor(audience_export_ref="{{ params.x }}")
    sensor.render_template_fields({**context(), "params": {"x": "Daily Loyalty!"}})
    assert sensor.audience_export_ref == "Daily Loyalty!"
    with pytest.raises(ExportConfigError, match="audience_export_ref"):
        sensor.poke(context())
    assert sandbox.sitecore.requests == []


def test_rendered_templates_are_used(sandbox):
    sandbox.sitecore.add_export(EXPORT)
    sandbox.sitecore.add_job(EXPORT, end_time=T0 + timedelta(hours=1))  # before the rendered time
    later = sandbox.sitecore.add_job(EXPORT, end_time=T0 + timedelta(hours=3))
    sensor = make_sensor(audience_export_ref="{{ params.x }}", finished_after="{{ params.after }}")
    ctx = {**context(), "params": {"x": EXPORT, "after": T0 + timedelta(hours=2)}}
    sensor.render_template_fields(ctx)
    assert done(sensor.poke(ctx)) == later


def test_template_fields():
    assert set(SitecoreCDPExportSensor.template_fields) == {
        "audience_export_ref",
        "finished_after",
        "sitecore_cdp_conn_id",
    }


# -- finished_after --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("yesterday", "ISO-8601"),
        ("2026-13-01T00:00:00+00:00", "ISO-8601"),
        ("2026-11-01T00:00:00", "time zone"),
        (datetime(2026, 11, 1), "time zone"),  # a naive datetime
    ],
    ids=["words", "bad-month", "naive-string", "naive-datetime"],
)
def test_finished_after_errors_name_the_field(sandbox, value, problem):
    with pytest.raises(ExportConfigError) as err:
        make_sensor(finished_after=value)  # a literal is checked when the DAG is parsed
    assert err.value.field == "finished_after"
    assert problem in str(err.value)
    assert sandbox.sitecore.requests == []


def test_rendered_finished_after_is_checked_at_run_time(sandbox):
    sandbox.sitecore.add_export(EXPORT)
    sensor = make_sensor(finished_after="{{ params.since }}")
    sensor.finished_after = "yesterday"  # what the template rendered to
    with pytest.raises(ExportConfigError) as err:
        sensor.poke(context())
    assert err.value.field == "finished_after"


@pytest.mark.parametrize(
    "value",
    [
        "2026-11-01T00:00:00Z",
        "2026-11-01T00:00:00+00:00",
        "2026-11-01 01:00:00+01:00",  # what "{{ data_interval_start }}" renders to
        T0,
        None,  # default: the data interval start
        "",  # an empty rendered template: the data interval start too
        "None",  # "{{ data_interval_start }}" in a DAG without a schedule
    ],
)
def test_finished_after_forms_that_work(sandbox, value):
    sandbox.sitecore.add_export(EXPORT)
    sandbox.sitecore.add_job(EXPORT, end_time=T0 - timedelta(minutes=1))
    sensor = make_sensor(finished_after=value)
    assert sensor.poke(context()) is False  # the only job ended before T0
    newer = sandbox.sitecore.add_job(EXPORT, end_time=T0 + timedelta(minutes=1))
    assert done(sensor.poke(context())) == newer


def test_no_finished_after_and_no_data_interval_takes_any_finished_job(sandbox):
    sandbox.sitecore.add_export(EXPORT)
    job = sandbox.sitecore.add_job(EXPORT, end_time=T0 - timedelta(days=400))
    assert done(make_sensor().poke(context(start=None))) == job


# -- poke ----------------------------------------------------------------------------------------


def test_each_poke_logs_the_newest_job_and_why_the_wait_goes_on(sandbox, caplog, capfd):
    sandbox.sitecore.add_export(EXPORT)
    sensor = make_sensor()
    caplog.set_level("INFO")

    def logged() -> str:
        # The task's logger is stdlib logging (caplog) or structlog writing to the process's stdout
        # (capfd), depending on the Airflow version and how its logging was configured.
        text = caplog.text + "".join(capfd.readouterr())
        caplog.clear()
        return text

    def poke_log() -> str:
        logged()
        assert sensor.poke(context()) is False
        return logged()

    after = f"finished_after {T0.isoformat()}"
    assert f"export {EXPORT}: no job yet; waiting for a job that ends after {after}" in poke_log()

    old = sandbox.sitecore.add_job(EXPORT, end_time=T0 - timedelta(hours=2))
    line = poke_log()
    assert f"export {EXPORT}: job {old} status SUCCESS ended 2026-10-31T22:00:00" in line
    assert f"too old: the newest job ended at or before {after}; waiting for a job that ends after it" in line

    running = sandbox.sitecore.add_job(EXPORT, pending_seconds=3600)
    line = poke_log()
    assert f"job {running} status PENDING_" in line and "ended -" in line
    assert f"the newest job has not ended; waiting for a job that ends after {after}" in line

    newer = sandbox.sitecore.add_job(EXPORT, end_time=T0 + timedelta(minutes=1))
    logged()
    assert done(sensor.poke(context())) == newer
    line = logged()
    assert f"job {newer} status SUCCESS" in line and f"it ended after {after}" in line


def test_poke_returns_the_newest_success(sandbox):
    sandbox.sitecore.add_export(EXPORT)
    sandbox.sitecore.add_job(EXPORT, end_time=T0 + timedelta(hours=1))
    newest = sandbox.sitecore.add_job(EXPORT, end_time=T0 + timedelta(hours=2))
    assert done(make_sensor().poke(context())) == newest


def test_poke_is_false_while_pending_or_before_any_job(sandbox):
    sandbox.sitecore.add_export(EXPORT)
    sensor = make_sensor()
    assert sensor.poke(context()) is False
    sandbox.sitecore.add_job(EXPORT, pending_seconds=120)
    assert sensor.poke(context()) is False


def test_poke_raises_on_a_failed_job_with_counters_and_error_logs(sandbox):
    sandbox.sitecore.add_export(EXPORT)
    job = sandbox.sitecore.add_job(
        EXPORT,
        status="FAILED",
        rows=200,
        end_time=T0 + timedelta(hours=1),
        error_logs=["segment evaluation timed out"],
    )
    with pytest.raises(ExportJobFailed) as err:
        make_sensor().poke(context())
    failure = err.value
    assert failure.job_ref == job and failure.status == "FAILED"
    assert failure.errors == ["segment evaluation timed out"]
    assert failure.details["failures"] == 200 and failure.details["successes"] == 0
    assert "failures=200" in str(failure) and "segment evaluation timed out" in str(failure)


def test_alert_fails_by_default_and_waits_with_fail_on_alert_false(sandbox):
    sandbox.sitecore.add_export(EXPORT)
    sandbox.sitecore.add_job(EXPORT, status="ALERT", end_time=T0 + timedelta(hours=1), error_logs=["w"])
    with pytest.raises(ExportJobFailed) as err:
        make_sensor().poke(context())
    assert err.value.status == "ALERT"
    assert make_sensor(fail_on_alert=False).poke(context()) is False


def test_poke_waits_through_a_rate_limit_outage(sandbox):
    sandbox.sitecore.add_export(EXPORT)
    sandbox.sitecore.add_job(EXPORT, end_time=T0 + timedelta(hours=1))
    fault = sandbox.sitecore.faults.rate_limit(REPORTS, times=None, retry_after="0")
    sensor = make_sensor()
    assert sensor.poke(context()) is False  # retries exhausted: poke again later, do not fail
    sandbox.sitecore.faults.clear()
    assert fault.times is None
    assert done(sensor.poke(context()))


def test_poke_fails_on_an_unknown_export(sandbox):
    with pytest.raises(VendorNotFoundError):
        make_sensor(audience_export_ref="no_such_export").poke(context())


# -- deferrable execute --------------------------------------------------------------------------


def test_deferrable_execute_returns_without_deferring_when_already_done(sandbox):
    sandbox.sitecore.add_export(EXPORT)
    job = sandbox.sitecore.add_job(EXPORT, end_time=T0 + timedelta(hours=1))
    assert make_sensor(deferrable=True).execute(context()) == job


def test_deferrable_execute_fails_without_deferring_on_a_failed_job(sandbox):
    sandbox.sitecore.add_export(EXPORT)
    sandbox.sitecore.add_job(EXPORT, status="FAILED", end_time=T0 + timedelta(hours=1))
    with pytest.raises(ExportJobFailed):
        make_sensor(deferrable=True).execute(context())


def test_deferrable_execute_defers_with_the_deadline_in_the_trigger(sandbox):
    sandbox.sitecore.add_export(EXPORT)
    sandbox.sitecore.add_job(EXPORT, pending_seconds=120)
    sensor = make_sensor(
        deferrable=True,
        fail_on_alert=False,
        poke_interval=30,
        timeout=timedelta(hours=2),
        sitecore_cdp_conn_id="sitecore_cdp_default",
    )
    before = time.time()

    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute(context())

    assert deferred.value.method_name == "execute_complete"
    assert deferred.value.timeout is None  # the trigger owns the deadline
    trigger = deferred.value.trigger
    assert isinstance(trigger, SitecoreCDPExportTrigger)
    classpath, kwargs = trigger.serialize()
    assert classpath == "airflow_provider_exports.triggers.sitecore_cdp.SitecoreCDPExportTrigger"
    assert kwargs["audience_export_ref"] == EXPORT
    assert datetime.fromisoformat(kwargs["finished_after"]) == T0
    assert kwargs["fail_statuses"] == ["FAILED"]
    assert kwargs["sitecore_cdp_conn_id"] == "sitecore_cdp_default"
    assert kwargs["poll_interval"] == 30
    assert before + 7200 <= kwargs["deadline"] <= time.time() + 7200
    dumped = json.dumps(kwargs)
    assert API_SECRET not in dumped


def test_deferred_trigger_carries_an_explicit_finished_after(sandbox):
    sandbox.sitecore.add_export(EXPORT)
    with pytest.raises(TaskDeferred) as deferred:
        make_sensor(deferrable=True, finished_after="2026-11-02T06:00:00Z").execute(context())
    kwargs = deferred.value.trigger.serialize()[1]
    assert datetime.fromisoformat(kwargs["finished_after"]) == T0 + timedelta(days=1, hours=6)
    assert kwargs["fail_statuses"] == ["ALERT", "FAILED"]


# -- execute_complete ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "event",
    [
        None,
        {},
        {"status": "running"},
        "success",
        {"status": "success"},
        {"status": "error", "message": "boom"},
    ],
    ids=["none", "empty", "unknown-status", "not-a-dict", "success-without-ref", "error"],
)
def test_execute_complete_rejects_anything_but_a_success(event):
    with pytest.raises(ExportsError) as err:
        make_sensor().execute_complete(context(), event)
    assert not isinstance(err.value, ExportJobFailed)


def test_execute_complete_error_event_shows_the_message():
    with pytest.raises(ExportsError, match="boom"):
        make_sensor().execute_complete(context(), {"status": "error", "message": "boom"})


def test_execute_complete_timeout_is_a_sensor_timeout():
    event = {"status": "timeout", "message": "export daily_loyalty_members has no finished job"}
    with pytest.raises(AirflowSensorTimeout, match="has no finished job"):
        make_sensor().execute_complete(context(), event)


def test_execute_complete_failed_is_an_export_job_failure():
    event = {
        "status": "failed",
        "job_ref": "0f8fad5b-d9cb-469f-a165-70867728950e",
        "job_status": "FAILED",
        "details": {"total": 10, "failures": 10},
        "errors": ["segment evaluation timed out"],
        "message": "...",
    }
    with pytest.raises(ExportJobFailed) as err:
        make_sensor().execute_complete(context(), event)
    assert err.value.job_ref == event["job_ref"] and err.value.status == "FAILED"
    assert err.value.details == {"total": 10, "failures": 10}
    assert err.value.errors == ["segment evaluation timed out"]


def test_execute_complete_success_returns_the_ref():
    ref = "0f8fad5b-d9cb-469f-a165-70867728950e"
    event = {"status": "success", "result": ref, "job_ref": ref, "message": "ok"}
    assert make_sensor().execute_complete(context(), event) == ref


async def test_trigger_event_feeds_execute_complete(sandbox):
    """The trigger's real event, through JSON as the triggerer stores it, completes the task."""
    sandbox.sitecore.add_export(EXPORT)
    sandbox.sitecore.add_job(EXPORT, pending_seconds=120)
    sensor = make_sensor(deferrable=True, poke_interval=0.2)
    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute(context())
    job = sandbox.sitecore.add_job(EXPORT, end_time=T0 + timedelta(hours=1))

    events = [e async for e in deferred.value.trigger.run()]

    assert len(events) == 1
    payload = json.loads(json.dumps(events[0].payload))
    assert sensor.execute_complete(context(), payload) == job


# -- poke mode: the deadline holds both ways -------------------------------------------------------
# Bounds, never races: execute() ends no earlier than start + timeout and less than LATE seconds after
# it (generous for a busy 2-core machine), whatever the poke interval or the vendor's Retry-After.

LATE = 5.0


def test_poke_mode_429_storm_with_long_retry_after_times_out_at_the_deadline(sandbox):
    sandbox.sitecore.add_export(EXPORT)
    sandbox.sitecore.faults.rate_limit(REPORTS, times=None, retry_after="30")
    sensor = make_sensor(mode="poke", poke_interval=60, timeout=2)
    deadline = time.time() + 2

    with pytest.raises(AirflowSensorTimeout):
        sensor.execute(context())

    assert deadline <= time.time() < deadline + LATE
    # One poke at the start, one last poke at the deadline; neither waited the 30 s.
    assert [r.status for r in sandbox.sitecore.requests_to(REPORTS, "GET")] == [429, 429]


def test_poke_mode_long_interval_still_makes_the_last_poke_at_the_deadline(sandbox):
    sandbox.sitecore.add_export(EXPORT)
    job = sandbox.sitecore.add_job(EXPORT, pending_looks=1)  # finished when poked again
    sensor = make_sensor(mode="poke", poke_interval=60, timeout=2)
    deadline = time.time() + 2

    assert sensor.execute(context(start=None)) == job

    assert deadline <= time.time() < deadline + LATE
    assert len(sandbox.sitecore.requests_to(REPORTS, "GET")) == 2


def test_poke_mode_long_interval_does_not_end_the_wait_early(sandbox):
    sandbox.sitecore.add_export(EXPORT)
    sandbox.sitecore.add_job(EXPORT, pending_seconds=120)
    sensor = make_sensor(mode="poke", poke_interval=60, timeout=2)
    deadline = time.time() + 2

    with pytest.raises(AirflowSensorTimeout):
        sensor.execute(context())

    assert deadline <= time.time() < deadline + LATE
    assert len(sandbox.sitecore.requests_to(REPORTS, "GET")) == 2


def test_deferrable_first_poke_is_bounded_by_the_deadline_too(sandbox):
    sandbox.sitecore.add_export(EXPORT)
    sandbox.sitecore.faults.rate_limit(REPORTS, times=None, retry_after="30")
    sensor = make_sensor(deferrable=True, poke_interval=60, timeout=20)
    started = time.monotonic()

    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute(context())

    assert time.monotonic() - started < 10  # the 429's 30 s would end past the deadline
    assert deferred.value.trigger.serialize()[1]["deadline"] == sensor._deadline


def test_a_deferred_wait_refused_by_the_vendor_fails_the_task_without_its_retries(sandbox, run_dag, capfd):
    """The trigger meets the 404 (the sensor's own first poke, before deferring, found no job yet):
    the task resumes and fails once, as it would have failed inline, instead of three tries."""
    from datetime import timedelta

    from airflow.sdk import DAG

    sandbox.sitecore.add_export(EXPORT)  # no job yet: the first poke waits, then the task defers
    sandbox.sitecore.faults.answer(
        REPORTS, times=None, skip=1, status=404, json={"status": 404, "message": "Export deleted"}, method="GET"
    )
    with DAG("sitecore_deferred_refusal", schedule=None, start_date=T0) as dag:
        make_sensor(deferrable=True, poke_interval=0.2, timeout=60, retries=2, retry_delay=timedelta(0))

    run = run_dag(dag, logical_date=T0)

    ti = run.get_task_instance("wait_for_export")
    assert (ti.state, ti.try_number) == ("failed", 1)
    log = "".join(capfd.readouterr())
    assert "VendorNotFoundRefused" in log and "HTTP 404: Export deleted" in log
    assert "check the task's arguments; if they are right, connection 'sitecore_cdp_default'" in log
