"""CordialHook over real HTTP against the Cordial sandbox."""

from __future__ import annotations

import time

import pytest

from airflow_provider_exports.exceptions import ExportConfigError, VendorAPIError, VendorAuthError
from airflow_provider_exports.hooks._http import RetryPolicy
from airflow_provider_exports.hooks.cordial import CordialHook

FAST = RetryPolicy(max_attempts=3, backoff_initial=0.01, backoff_max=0.05)
S3_DESTINATION = {
    "type": "S3",
    "aws_bucket": "lake",
    "aws_region": "us-east-1",
    "path": "cordial/trends",
    "aws_access_key_id": "testing",
    "aws_secret_access_key": "testing",
}


def _create(hook, **overrides):
    args = {
        "name": "weekly-trends",
        "audiences": ["vip"],
        "selected_timeframe_start": "2026-11-16",
        "selected_timeframe_end": "2026-11-22",
        "destination": S3_DESTINATION,
    } | overrides
    return hook.create_audience_trends_export(**args)


def test_create_then_poll_until_done(sandbox):
    sandbox.cordial.job_seconds = 0.2
    sandbox.cordial.add_audience("vip")
    hook = CordialHook(retry=FAST)
    job_id = _create(hook)
    seen = set()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        status = hook.get_job(job_id)["status"]
        seen.add(status)
        if status == "Done":
            break
        time.sleep(0.1)
    assert "Done" in seen and seen <= {"Scheduled", "Pending", "Processing", "Done"}
    assert any(job.get("_id") == job_id for job in hook.list_jobs())


def test_vendor_error_key_and_message_surface_and_are_not_retried(sandbox):
    hook = CordialHook(retry=FAST)
    with pytest.raises(VendorAPIError) as err:
        _create(hook, audiences=["unknown-audience"])
    assert err.value.http_status == 406
    assert err.value.error_key == "GENERIC_ERROR_KEY"
    assert "Audience 'unknown-audience' does not exist." in err.value.message
    assert len(sandbox.cordial.requests_to("/v2/audiencetrendsexport")) == 1


def test_create_is_not_repeated_after_a_5xx(sandbox):
    sandbox.cordial.add_audience("vip")
    sandbox.cordial.faults.server_error("/v2/audiencetrendsexport", times=1, status=502)
    with pytest.raises(VendorAPIError):
        _create(CordialHook(retry=FAST))
    assert len(sandbox.cordial.requests_to("/v2/audiencetrendsexport")) == 1


def test_create_is_repeated_after_a_429(sandbox):
    sandbox.cordial.add_audience("vip")
    sandbox.cordial.faults.rate_limit("/v2/audiencetrendsexport", times=1, retry_after="0")
    assert _create(CordialHook(retry=FAST))
    assert [r.status for r in sandbox.cordial.requests_to("/v2/audiencetrendsexport")] == [429, 200]


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"name": "weekly trends!"}, "name"),
        ({"selected_timeframe_start": "16/11/2026"}, "selected_timeframe_start"),
        ({"selected_timeframe_end": "2026-11-01"}, "selected_timeframe_end"),
        ({"destination": {"type": "DROPBOX"}}, "destination.type"),
        ({"destination": {"type": "S3", "aws_bucket": "lake", "path": "x"}}, "destination.aws_region"),
        ({"audiences": []}, "audiences"),
    ],
)
def test_bad_input_is_refused_before_any_request(sandbox, overrides, field):
    with pytest.raises(ExportConfigError) as err:
        _create(CordialHook(retry=FAST), **overrides)
    assert err.value.field == field
    assert sandbox.cordial.requests == []


def test_wrong_key_is_an_auth_error(sandbox, monkeypatch):
    import json

    monkeypatch.setenv(
        "AIRFLOW_CONN_CORDIAL_BAD", json.dumps(sandbox.cordial.connection() | {"password": "nope"})
    )
    with pytest.raises(VendorAuthError) as err:
        CordialHook("cordial_bad", retry=FAST).get_job("0" * 24)
    assert "Access Denied" in err.value.message


def test_api_host_defaults_and_accepts_override():
    assert CordialHook.settings_from_connection(None, "k", {}).api_host == "https://api.cordial.io"
    assert CordialHook.settings_from_connection(None, "k", {"api_host": "api.usw2.cordial.io"}).api_host == (
        "https://api.usw2.cordial.io"
    )


async def test_async_get_job(sandbox):
    sandbox.cordial.add_audience("vip")
    hook = CordialHook(retry=FAST)
    job_id = _create(hook)
    try:
        job = await hook.aget_job(job_id)
    finally:
        await hook.aclose()
    assert job["status"] in {"Scheduled", "Processing", "Done"}


def test_a_400_from_the_server_is_not_retried(sandbox):
    sandbox.cordial.add_audience("vip")
    # Cordial alone knows whether an IAM role stands in for keys: without one it answers 400
    no_keys = {k: v for k, v in S3_DESTINATION.items() if not k.startswith("aws_access") and "secret" not in k}
    with pytest.raises(VendorAPIError) as err:
        _create(CordialHook(retry=FAST), destination=no_keys)
    assert err.value.http_status == 400
    assert "aws access key id" in err.value.message
    assert len(sandbox.cordial.requests_to("/v2/audiencetrendsexport")) == 1
