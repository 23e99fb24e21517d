"""SitecoreCDPExportTrigger over real HTTP against the Sitecore sandbox.

The trigger builds its own hook with the default retry policy (Retry-After honoured, backoff from
1 s), so the fault storms here are short and use ``Retry-After: 1``.
"""

from __future__ import annotations

import asyncio
import json
import time
from datetime import datetime, timedelta, timezone

import pytest
from airflow.providers.common.compat.sdk import AirflowFailException, AirflowSensorTimeout
from airflow.triggers.base import TriggerEvent

from airflow_provider_exports.exceptions import VendorAuthRefused, VendorNotFoundRefused
from airflow_provider_exports.triggers.sitecore_cdp import SitecoreCDPExportTrigger
from airflow_provider_exports.utils import waiting
from airflow_provider_exports_sandbox.sitecore_cdp import API_SECRET

EXPORT = "daily_loyalty_members"
REPORTS = f"/v2/audienceExports/definitions/{EXPORT}/reports"
T0 = datetime(2026, 11, 1, tzinfo=timezone.utc)
CLASSPATH = "airflow_provider_exports.triggers.sitecore_cdp.SitecoreCDPExportTrigger"


def make_trigger(**overrides) -> SitecoreCDPExportTrigger:
    kwargs = {
        "audience_export_ref": EXPORT,
        "finished_after": T0.isoformat(),
        "fail_statuses": ["ALERT", "FAILED"],
        "poll_interval": 0.2,
        "deadline": time.time() + 8,
    }
    kwargs.update(overrides)
    return SitecoreCDPExportTrigger(**kwargs)


async def run_events(trigger: SitecoreCDPExportTrigger, limit: float = 15.0) -> list[TriggerEvent]:
    """Every event the trigger yields until it returns; fails the test if it runs past ``limit``."""

    async def collect() -> list[TriggerEvent]:
        return [event async for event in trigger.run()]

    return await asyncio.wait_for(collect(), timeout=limit)


def only_payload(events: list[TriggerEvent]) -> dict:
    assert len(events) == 1, f"expected exactly one event, got {events!r}"
    payload = events[0].payload
    json.dumps(payload)  # what the triggerer stores must be JSON
    return payload


# -- serialize -----------------------------------------------------------------------------------


def test_serialize_round_trip_is_json_primitives_without_secrets():
    trigger = make_trigger(sitecore_cdp_conn_id="cdp_eu", deadline=1_900_000_000.5)
    classpath, kwargs = trigger.serialize()

    assert classpath == CLASSPATH
    assert kwargs == {
        "audience_export_ref": EXPORT,
        "finished_after": T0.isoformat(),
        "fail_statuses": ["ALERT", "FAILED"],
        "sitecore_cdp_conn_id": "cdp_eu",
        "poll_interval": 0.2,
        "deadline": 1_900_000_000.5,
    }
    dumped = json.dumps(kwargs)
    assert API_SECRET not in dumped and "token" not in dumped.lower()

    # The triggerer rebuilds the trigger from exactly these kwargs.
    again = SitecoreCDPExportTrigger(**json.loads(dumped))
    assert again.serialize() == (classpath, kwargs)


def test_serialize_accepts_no_finished_after_and_no_deadline():
    classpath, kwargs = make_trigger(finished_after=None, deadline=None).serialize()
    assert classpath == CLASSPATH
    assert kwargs["finished_after"] is None and kwargs["deadline"] is None
    json.dumps(kwargs)


async def test_kwargs_hold_no_token_after_running(sandbox):
    sandbox.sitecore.add_export(EXPORT)
    sandbox.sitecore.add_job(EXPORT, end_time=T0 + timedelta(hours=1))
    trigger = make_trigger()
    await run_events(trigger)
    dumped = json.dumps(trigger.serialize()[1])
    assert API_SECRET not in dumped and "Bearer" not in dumped


# -- run() against the sandbox ----------------------------------------------------------------


async def test_success_is_the_newest_success_after_finished_after(sandbox):
    sandbox.sitecore.add_export(EXPORT)
    sandbox.sitecore.add_job(EXPORT, end_time=T0 - timedelta(days=1))  # before: ignored
    older = sandbox.sitecore.add_job(EXPORT, end_time=T0 + timedelta(hours=1))
    newest = sandbox.sitecore.add_job(EXPORT, rows=50, end_time=T0 + timedelta(hours=5))
    sandbox.sitecore.add_job(EXPORT, status="FAILED", end_time=T0 + timedelta(hours=3))

    payload = only_payload(await run_events(make_trigger()))

    assert payload["status"] == "success"
    assert payload["result"] == newest != older
    assert EXPORT in payload["message"]


async def test_old_success_only_is_not_enough(sandbox):
    sandbox.sitecore.add_export(EXPORT)
    sandbox.sitecore.add_job(EXPORT, end_time=T0 - timedelta(minutes=1))
    started = time.monotonic()

    payload = only_payload(await run_events(make_trigger(deadline=time.time() + 0.5)))

    assert payload["status"] == "timeout"
    assert time.monotonic() - started < 0.5 + LATE


async def test_uuid_reference_works_like_the_friendly_id(sandbox):
    definition_ref = sandbox.sitecore.add_export(EXPORT)
    job = sandbox.sitecore.add_job(EXPORT, end_time=T0 + timedelta(hours=1))
    payload = only_payload(await run_events(make_trigger(audience_export_ref=definition_ref)))
    assert payload == {"status": "success", "result": job, "job_ref": job, "message": payload["message"]}


async def test_pending_job_that_turns_success_while_polling(sandbox):
    sandbox.sitecore.add_export(EXPORT)
    job = sandbox.sitecore.add_job(EXPORT, pending_looks=2)  # PENDING for two polls

    payload = only_payload(await run_events(make_trigger(finished_after=None)))

    assert payload["status"] == "success" and payload["result"] == job
    assert len(sandbox.sitecore.requests_to(REPORTS, "GET")) == 3  # PENDING_*, PENDING_*, SUCCESS


async def test_failed_job_yields_failed_with_counters_and_error_logs(sandbox):
    sandbox.sitecore.add_export(EXPORT)
    job = sandbox.sitecore.add_job(
        EXPORT,
        status="FAILED",
        rows=200,
        end_time=T0 + timedelta(hours=2),
        error_logs=["segment evaluation timed out", "retry limit reached"],
    )

    payload = only_payload(await run_events(make_trigger()))

    assert payload["status"] == "failed"
    assert payload["job_ref"] == job
    assert payload["job_status"] == "FAILED"
    assert payload["errors"] == ["segment evaluation timed out", "retry limit reached"]
    assert payload["details"]["failures"] == 200
    assert payload["details"]["successes"] == 0
    assert {"total", "filterMatchedGuests", "filterFailures"} <= payload["details"].keys()


async def test_success_wins_over_a_later_failure(sandbox):
    sandbox.sitecore.add_export(EXPORT)
    ok = sandbox.sitecore.add_job(EXPORT, end_time=T0 + timedelta(hours=1))
    sandbox.sitecore.add_job(EXPORT, status="FAILED", end_time=T0 + timedelta(hours=2))
    payload = only_payload(await run_events(make_trigger()))
    assert payload["status"] == "success" and payload["result"] == ok


async def test_alert_fails_when_listed_in_fail_statuses(sandbox):
    sandbox.sitecore.add_export(EXPORT)
    job = sandbox.sitecore.add_job(
        EXPORT, status="ALERT", end_time=T0 + timedelta(hours=1), error_logs=["12 guests skipped"]
    )
    payload = only_payload(await run_events(make_trigger(fail_statuses=["ALERT", "FAILED"])))
    assert payload["status"] == "failed"
    assert payload["job_ref"] == job and payload["job_status"] == "ALERT"
    assert payload["errors"] == ["12 guests skipped"]


async def test_alert_keeps_waiting_when_not_a_fail_status(sandbox):
    sandbox.sitecore.add_export(EXPORT)
    sandbox.sitecore.add_job(EXPORT, status="ALERT", end_time=T0 + timedelta(hours=1))
    trigger = make_trigger(fail_statuses=["FAILED"])

    # Still waiting after a few polls (counted, not timed: a busy machine may be slow to make them) ...
    task = asyncio.create_task(run_events(trigger))
    while len(sandbox.sitecore.requests_to(REPORTS, "GET")) < 2:
        assert not task.done(), task.result()
        await asyncio.sleep(0.05)
    assert not task.done()

    # ... until a successful job arrives.
    job = sandbox.sitecore.add_job(EXPORT, end_time=T0 + timedelta(hours=2))
    payload = only_payload(await task)
    assert payload["status"] == "success" and payload["result"] == job


async def test_pending_past_the_deadline_times_out_in_bounded_time(sandbox):
    sandbox.sitecore.add_export(EXPORT)
    sandbox.sitecore.add_job(EXPORT, pending_seconds=120)
    started = time.monotonic()

    payload = only_payload(await run_events(make_trigger(deadline=time.time() + 1.0), limit=5))

    elapsed = time.monotonic() - started
    assert payload["status"] == "timeout"
    assert 0.5 < elapsed < 1 + LATE
    message = payload["message"]
    assert EXPORT in message and "deadline" in message
    assert T0.isoformat() in message


async def test_a_timeout_says_what_the_wait_last_saw(sandbox):
    # The deadline is moved up once the sandbox has answered a poke (the trigger reads it before
    # each pause): a fixed short deadline can pass before the first poke ends on a busy machine.
    sandbox.sitecore.add_export(EXPORT)
    sandbox.sitecore.add_job(EXPORT, pending_seconds=120)
    trigger = make_trigger(deadline=time.time() + 60)
    waiting = asyncio.ensure_future(run_events(trigger, limit=60))
    while not [r for r in sandbox.sitecore.requests_to(REPORTS, "GET") if r.status == 200]:
        await asyncio.sleep(0.05)
    trigger.deadline = time.time()

    payload = only_payload(await waiting)
    assert payload["status"] == "timeout"
    assert "PENDING_" in payload["message"]  # the job's status at the last poke


async def test_deadline_already_passed_polls_once_then_times_out(sandbox):
    sandbox.sitecore.add_export(EXPORT)
    payload = only_payload(await run_events(make_trigger(deadline=time.time() - 10), limit=5))
    assert payload["status"] == "timeout"
    assert "no job yet" in payload["message"]
    assert len(sandbox.sitecore.requests_to(REPORTS, "GET")) == 1


async def test_deadline_already_passed_still_reports_a_finished_job(sandbox):
    sandbox.sitecore.add_export(EXPORT)
    job = sandbox.sitecore.add_job(EXPORT, end_time=T0 + timedelta(hours=1))
    payload = only_payload(await run_events(make_trigger(deadline=time.time() - 10)))
    assert payload["status"] == "success" and payload["result"] == job


async def test_rides_out_a_429_storm_longer_than_one_call_retries(sandbox):
    sandbox.sitecore.add_export(EXPORT)
    job = sandbox.sitecore.add_job(EXPORT, end_time=T0 + timedelta(hours=1))
    # Six 429s: the default policy makes 5 attempts per call, so the first poll gives up and the
    # trigger has to poll again rather than end the wait.
    sandbox.sitecore.faults.rate_limit(REPORTS, times=6, retry_after="1")
    started = time.monotonic()

    payload = only_payload(await run_events(make_trigger(deadline=time.time() + 30), limit=12))

    assert payload["status"] == "success" and payload["result"] == job
    assert time.monotonic() - started >= 5  # Retry-After was honoured: ~1 s per 429
    assert [r.status for r in sandbox.sitecore.requests_to(REPORTS, "GET")] == [429] * 6 + [200]


async def test_unknown_export_is_an_error_event(sandbox):
    sandbox.sitecore.add_export(EXPORT)
    time.monotonic()

    payload = only_payload(await run_events(make_trigger(audience_export_ref="no_such_export")))

    assert payload["status"] == "error"
    assert "404" in payload["message"] and "no_such_export" in payload["message"]
    assert len(sandbox.sitecore.requests_to("/v2/audienceExports/*", "GET")) == 1  # a 404 is not retried
    # the resumed task fails as the call would inline: not retried by Airflow, saying what to check
    with pytest.raises(VendorNotFoundRefused) as err:
        waiting.result_of("Sitecore CDP", payload, on_timeout=AirflowSensorTimeout)
    assert isinstance(err.value, AirflowFailException) and err.value.http_status == 404
    assert "Audience export no_such_export not found" in str(err.value)
    assert "check the task's arguments; if they are right, connection 'sitecore_cdp_default'" in str(err.value)


async def test_bad_credentials_are_an_error_event(sandbox, monkeypatch):
    conn = sandbox.sitecore.connection()
    conn["password"] = "wrong-secret"
    monkeypatch.setenv("AIRFLOW_CONN_CDP_WRONG", json.dumps(conn))
    payload = only_payload(await run_events(make_trigger(sitecore_cdp_conn_id="cdp_wrong")))
    assert payload["status"] == "error"
    assert "wrong-secret" not in payload["message"] and "wrong-secret" not in json.dumps(payload)
    with pytest.raises(VendorAuthRefused) as err:
        waiting.result_of("Sitecore CDP", payload, on_timeout=AirflowSensorTimeout)
    assert isinstance(err.value, AirflowFailException)
    assert "connection 'cdp_wrong': Check login (the API key, i.e. client ID) and password" in str(err.value)


@pytest.mark.parametrize("ref", ["Daily Loyalty!", ""])
async def test_bad_reference_is_an_error_event_without_a_request(sandbox, ref):
    payload = only_payload(await run_events(make_trigger(audience_export_ref=ref)))
    assert payload["status"] == "error" and "audience_export_ref" in payload["message"]
    assert sandbox.sitecore.requests == []


# -- the deadline holds both ways ------------------------------------------------------------------
# Bounds, never races: the wait ends no earlier than its deadline and less than LATE seconds after
# it (generous for a busy 2-core machine), whatever the poll interval or the vendor's Retry-After.

LATE = 5.0


def wait_for_answers(server, path: str, count: int) -> None:
    """Let the sandbox answer requests a test left hanging, so they are not logged in the next test."""
    until = time.monotonic() + 15
    while len(server.requests_to(path)) < count and time.monotonic() < until:
        time.sleep(0.05)


async def test_a_429_storm_with_long_retry_after_times_out_at_the_deadline(sandbox):
    sandbox.sitecore.add_export(EXPORT)
    sandbox.sitecore.add_job(EXPORT, pending_seconds=120)
    sandbox.sitecore.faults.rate_limit(REPORTS, times=None, retry_after="30")
    deadline = time.time() + 2

    payload = only_payload(await run_events(make_trigger(poll_interval=60, deadline=deadline), limit=30))

    ended = time.time()
    assert payload["status"] == "timeout"
    assert deadline <= ended < deadline + LATE
    assert payload["message"] == (
        f"export {EXPORT} has no finished job after {T0.isoformat()} before the deadline; newest: no job yet"
    )
    # One poke at the start, one last poke at the deadline; neither waited the 30 s.
    assert [r.status for r in sandbox.sitecore.requests_to(REPORTS, "GET")] == [429, 429]


async def test_a_long_poll_interval_still_makes_the_last_poll_at_the_deadline(sandbox):
    sandbox.sitecore.add_export(EXPORT)
    job = sandbox.sitecore.add_job(EXPORT, pending_looks=1)  # finished when poked again
    deadline = time.time() + 2

    payload = only_payload(
        await run_events(make_trigger(finished_after=None, poll_interval=60, deadline=deadline), limit=30)
    )

    ended = time.time()
    assert payload["status"] == "success" and payload["result"] == job
    assert deadline <= ended < deadline + LATE
    assert len(sandbox.sitecore.requests_to(REPORTS, "GET")) == 2


async def test_a_long_poll_interval_does_not_end_the_wait_early(sandbox):
    sandbox.sitecore.add_export(EXPORT)
    sandbox.sitecore.add_job(EXPORT, pending_seconds=120)
    deadline = time.time() + 2

    payload = only_payload(await run_events(make_trigger(poll_interval=60, deadline=deadline), limit=30))

    ended = time.time()
    assert payload["status"] == "timeout" and "PENDING_" in payload["message"]
    assert deadline <= ended < deadline + LATE
    assert len(sandbox.sitecore.requests_to(REPORTS, "GET")) == 2


async def test_a_poll_that_hangs_past_the_deadline_is_cut_there(sandbox):
    sandbox.sitecore.add_export(EXPORT)
    sandbox.sitecore.add_job(EXPORT, pending_seconds=120)
    sandbox.sitecore.faults.slow(REPORTS, seconds=4, times=None)  # answers 2 s after the deadline
    deadline = time.time() + 2

    payload = only_payload(await run_events(make_trigger(poll_interval=60, deadline=deadline), limit=30))

    ended = time.time()
    # Cut, not answered (it would have shown the pending job); and the poll cut at the deadline
    # was the poke at the deadline: no second one follows it.
    assert payload["status"] == "timeout" and payload["message"].endswith("newest: no job yet")
    assert deadline <= ended < deadline + LATE
    wait_for_answers(sandbox.sitecore, REPORTS, 1)
    assert len(sandbox.sitecore.requests_to(REPORTS, "GET")) == 1


async def test_the_last_poke_past_the_deadline_is_bounded_too(sandbox, monkeypatch):
    monkeypatch.setattr(waiting, "LAST_POKE_SECONDS", 1.0)
    sandbox.sitecore.add_export(EXPORT)
    sandbox.sitecore.add_job(EXPORT, pending_seconds=120)
    sandbox.sitecore.faults.slow(REPORTS, seconds=3, times=None)  # answers 2 s after the last poke's end
    started = time.time()

    payload = only_payload(await run_events(make_trigger(deadline=started - 10), limit=30))

    assert payload["status"] == "timeout" and payload["message"].endswith("newest: no job yet")
    assert started + 1.0 <= time.time() < started + 1.0 + LATE
    wait_for_answers(sandbox.sitecore, REPORTS, 1)
