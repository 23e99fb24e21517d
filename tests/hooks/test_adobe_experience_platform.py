"""AdobeExperiencePlatformHook over real HTTP against the AEP sandbox."""

from __future__ import annotations

import hashlib
import time

import pytest

from airflow_provider_exports.exceptions import ExportConfigError, VendorAuthError
from airflow_provider_exports.hooks._http import RetryPolicy
from airflow_provider_exports.hooks.adobe_experience_platform import AdobeExperiencePlatformHook

FAST = RetryPolicy(max_attempts=3, backoff_initial=0.01, backoff_max=0.05)


def _job_body(dataset_id, segment="seg-vip"):
    return {
        "filter": {"segments": [{"segmentId": segment}]},
        "destination": {"datasetId": dataset_id},
        "schema": {"name": "_xdm.context.profile"},
    }


def _wait(hook, job_id, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = hook.get_export_job(job_id)
        if job["status"] in ("SUCCEEDED", "FAILED"):
            return job
        time.sleep(0.1)
    raise AssertionError("job did not finish")


def test_dataset_job_batch_and_files_end_to_end(sandbox):
    sandbox.adobe.job_seconds = 0.2
    sandbox.adobe.default_rows = 300
    sandbox.adobe.files_per_batch = 3
    hook = AdobeExperiencePlatformHook(retry=FAST)
    dataset_id = hook.create_profile_dataset("airflow-exports-test")
    job = _wait(hook, hook.create_export_job(_job_body(dataset_id))["id"])
    assert job["status"] == "SUCCEEDED"
    batch_id = job["destination"]["batchId"]
    assert hook.get_batch(batch_id)["status"] == "success"

    files = hook.batch_files(batch_id)
    expected = sandbox.adobe.expected_files(batch_id)
    assert [(f.dataset_file_id, f.name) for f in files] == [(e[0], e[1]) for e in expected]
    first = files[0]
    assert hook.file_size(first.dataset_file_id, first.name) == expected[0][2]
    with hook.open_file(first.dataset_file_id, first.name) as body:
        data = b"".join(body.iter_bytes())
    assert hashlib.sha256(data).hexdigest() == expected[0][3]
    with hook.open_file(first.dataset_file_id, first.name, offset=100) as body:
        assert body.status_code == 206 and b"".join(body.iter_bytes()) == data[100:]
    # every call carried the four platform headers and one token served them all
    platform_calls = sandbox.adobe.requests_to("/data/*")
    assert all(
        {"authorization", "x-api-key", "x-gw-ims-org-id", "x-sandbox-name"} <= r.headers_present
        for r in platform_calls
    )
    assert len(sandbox.adobe.requests_to("/ims/token/v3")) == 1


def test_failed_job_carries_errors(sandbox):
    sandbox.adobe.job_seconds = 0.1
    sandbox.adobe.failing_segments = {"seg-broken"}
    hook = AdobeExperiencePlatformHook(retry=FAST)
    job = _wait(hook, hook.create_export_job(_job_body(hook.create_profile_dataset("t"), "seg-broken"))["id"])
    assert job["status"] == "FAILED" and job["errors"] and job["errors"][0]["code"]


@pytest.mark.parametrize("style", ["200-body", "204-empty", "204-body"])
def test_cancel_accepts_every_documented_answer(sandbox, style):
    sandbox.adobe.delete_style = style
    sandbox.adobe.job_seconds = 30
    hook = AdobeExperiencePlatformHook(retry=FAST)
    job = hook.create_export_job(_job_body(hook.create_profile_dataset("t")))
    hook.cancel_export_job(job["id"])
    assert hook.get_export_job(job["id"])["status"] == "FAILED"


def test_list_follows_link_next(sandbox):
    hook = AdobeExperiencePlatformHook(retry=FAST)
    dataset_id = hook.create_profile_dataset("t")
    created = {hook.create_export_job(_job_body(dataset_id))["id"] for _ in range(5)}
    listed = [j["id"] for j in hook.list_export_jobs(limit=2)]
    assert created <= set(listed) and len(listed) == len(set(listed))
    assert len(sandbox.adobe.requests_to("/data/core/ups/export/jobs", "GET")) >= 3


def test_expired_token_is_refreshed_once(sandbox):
    hook = AdobeExperiencePlatformHook(retry=FAST)
    hook.create_profile_dataset("t")
    sandbox.adobe.faults.expire_tokens()
    hook.create_profile_dataset("t2")
    assert len(sandbox.adobe.requests_to("/ims/token/v3")) == 2


def test_wrong_secret_surfaces_ims_error(sandbox, monkeypatch):
    import json

    monkeypatch.setenv("AIRFLOW_CONN_AEP_BAD", json.dumps(sandbox.adobe.connection() | {"password": "nope"}))
    with pytest.raises(VendorAuthError) as err:
        AdobeExperiencePlatformHook("aep_bad", retry=FAST).create_profile_dataset("t")
    assert err.value.error_key == "invalid_client"


@pytest.mark.parametrize(
    ("extras", "field"),
    [
        ({"sandbox_name": "prod"}, "extra.ims_org_id"),
        ({"ims_org_id": "ABC@AdobeOrg"}, "extra.sandbox_name"),
        ({"ims_org_id": "ABC@AdobeOrg", "sandbox_name": "Prod"}, "extra.sandbox_name"),
    ],
)
def test_connection_settings_name_the_bad_field(extras, field):
    with pytest.raises(ExportConfigError) as err:
        AdobeExperiencePlatformHook.settings_from_connection("id", "secret", extras)
    assert err.value.field == field


def test_required_job_fields_are_checked_before_sending(sandbox):
    with pytest.raises(ExportConfigError, match=r"destination\.datasetId"):
        AdobeExperiencePlatformHook().create_export_job({"schema": {"name": "_xdm.context.profile"}})
    assert sandbox.adobe.requests == []


async def test_async_reads(sandbox):
    hook = AdobeExperiencePlatformHook(retry=FAST)
    job = hook.create_export_job(_job_body(hook.create_profile_dataset("t")))
    try:
        polled = await hook.aget_export_job(job["id"])
        batch = await hook.aget_batch(job["destination"]["batchId"])
    finally:
        await hook.aclose()
    assert polled["id"] == job["id"] and batch["status"] in ("processing", "success")
