"""AdobeExperiencePlatformHook over real HTTP against the AEP sandbox."""

from __future__ import annotations

import hashlib
import time

import pytest

from airflow_provider_exports.exceptions import ExportConfigError, VendorAuthError
from airflow_provider_exports.hooks._adobe_experience_platform_records import (
    AdobeBatchStatus,
    AdobeExportJobStatus,
    epoch_seconds,
    export_job_event,
    job_batch_ids,
    job_dataset_id,
    poke_export_job,
)
from airflow_provider_exports.hooks._retry import RetryPolicy
from airflow_provider_exports.hooks.adobe_experience_platform import (
    PROFILE_UNION_SCHEMA,
    AdobeExperiencePlatformHook,
)
from airflow_provider_exports.operators.adobe_experience_platform import export_job_request
from airflow_provider_exports.utils.waiting import arun_poke, run_poke

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
    assert first.size == expected[0][2]
    with hook.http.stream(hook.file_url(first.dataset_file_id, first.name)) as body:
        data = b"".join(body.iter_bytes())
    assert hashlib.sha256(data).hexdigest() == expected[0][3]
    with hook.http.stream(hook.file_url(first.dataset_file_id, first.name), offset=100) as body:
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
    sandbox.adobe.job_seconds = 0  # done at once: the poke reads the job, then its batch
    hook = AdobeExperiencePlatformHook(retry=FAST)
    job = hook.create_export_job(_job_body(hook.create_profile_dataset("t")))
    try:
        event = await arun_poke(hook, poke_export_job(job["id"]))
    finally:
        await hook.aclose()
    assert event.job_ref == str(job["id"]) and event.result == [job["destination"]["batchId"]]


# -- what Adobe's answers mean (_adobe_experience_platform_records) --------------------------------


def test_epoch_times_in_milliseconds_and_seconds():
    assert epoch_seconds(1538573416687) == pytest.approx(1538573416.687)
    assert epoch_seconds("1538573416687") == pytest.approx(1538573416.687)
    assert epoch_seconds(1538573416) == 1538573416
    assert epoch_seconds(None) is None and epoch_seconds("soon") is None


def test_both_dataset_id_spellings_and_batch_ids():
    assert job_dataset_id({"destination": {"datasetId": "a"}}) == "a"
    assert job_dataset_id({"destination": {"dataSetId": "b"}}) == "b"
    assert job_batch_ids({"destination": {"batchId": "b1"}}) == ["b1"]
    assert job_batch_ids({"destination": {"batchId": ""}}) == []
    per_segment = {"destination": {"batches": [{"segmentId": "s1", "batchId": "b1"}, {"segmentId": "s2", "batchId": "b2"}]}}
    assert job_batch_ids(per_segment) == ["b1", "b2"]


# -- the status event: the job, then its batches -------------------------------------------------------

_ERRORS = [
    {"code": "0090000009", "msg": "Error writing profiles", "callStack": "x"},
    {"code": "unknown", "msg": "Job aborted."},
]


@pytest.mark.parametrize(
    ("job", "batches", "state"),
    [
        ({"status": "NEW"}, None, "waiting"),
        ({"status": "PROCESSING"}, None, "waiting"),
        ({"status": "QUEUED_SOMEWHERE"}, None, "waiting"),
        ({"status": "FAILED", "errors": _ERRORS}, None, "failed"),
        ({"status": "SUCCEEDED", "destination": {"batchId": "b"}}, {"b": {"status": "processing"}}, "waiting"),
        ({"status": "SUCCEEDED", "destination": {"batchId": "b"}}, {"b": {"status": "staging"}}, "waiting"),
        ({"status": "SUCCEEDED", "destination": {"batchId": "b"}}, {"b": {"status": "brand-new"}}, "waiting"),
        ({"status": "SUCCEEDED", "destination": {"batchId": "b"}}, {}, "waiting"),
        ({"status": "SUCCEEDED", "destination": {"batchId": "b"}}, {"b": {"status": "success"}}, "success"),
        ({"status": "SUCCEEDED", "destination": {"batchId": "b"}}, {"b": {"status": "failure"}}, "failed"),
        ({"status": "SUCCEEDED", "destination": {"batchId": ""}}, {}, "failed"),
        (
            {"status": "SUCCEEDED", "destination": {"batches": [{"batchId": "b1"}, {"batchId": "b2"}]}},
            {"b1": {"status": "success"}, "b2": {"status": "processing"}},
            "waiting",
        ),
        (
            {"status": "SUCCEEDED", "destination": {"batches": [{"batchId": "b1"}, {"batchId": "b2"}]}},
            {"b1": {"status": "success"}, "b2": {"status": "success"}},
            "success",
        ),
    ],
)
def test_export_job_event(job, batches, state):
    event = export_job_event({"id": 7, **job}, batches)
    assert event.state == state


def test_every_documented_job_and_batch_status():
    def state(status: str, batch_status: str = "success") -> str:
        job = {"id": 7, "status": status, "destination": {"batchId": "b"}}
        return export_job_event(job, {"b": {"status": batch_status}}).state

    assert {s.value: state(s) for s in AdobeExportJobStatus} == {
        "NEW": "waiting",
        "PROCESSING": "waiting",
        "SUCCEEDED": "success",
        "FAILED": "failed",
    }
    batches = {s.value: state("SUCCEEDED", s) for s in AdobeBatchStatus}
    assert {b for b, s in batches.items() if s == "success"} == {"success", "active"}
    assert {b for b, s in batches.items() if s == "failed"} == {"failure", "failed", "aborted", "abandoned", "deleted"}
    assert {b for b, s in batches.items() if s == "waiting"} == {
        "processing", "queued", "retrying", "stalled", "inactive", "loading", "loaded", "staged", "staging"
    }


def test_a_failed_job_names_every_error():
    event = export_job_event({"id": 7, "status": "FAILED", "errors": _ERRORS})
    assert list(event.errors) == ["[0090000009] Error writing profiles", "[unknown] Job aborted."]
    message = str(event.failure("Adobe Experience Platform"))
    assert "[0090000009] Error writing profiles" in message and "[unknown] Job aborted." in message


def test_success_returns_the_batch_ids():
    job = {"id": 7, "status": "SUCCEEDED", "destination": {"batches": [{"batchId": "b1"}, {"batchId": "b2"}]}}
    event = export_job_event(job, {"b1": {"status": "success"}, "b2": {"status": "success"}})
    assert event.result == ["b1", "b2"] and event.payload()["result"] == ["b1", "b2"]


# -- Catalog datasets: looked up by name first -------------------------------------------------------


def test_a_dataset_of_the_same_name_is_reused(sandbox):
    hook = AdobeExperiencePlatformHook(retry=FAST)
    first, created = hook.get_or_create_profile_dataset("airflow-profiles")
    again, created_again = hook.get_or_create_profile_dataset("airflow-profiles")
    other, _ = hook.get_or_create_profile_dataset("airflow-profiles-2")
    assert created and not created_again and first == again != other
    assert len(sandbox.adobe.requests_to("/data/foundation/catalog/dataSets", "POST")) == 2
    lookups = sandbox.adobe.requests_to("/data/foundation/catalog/dataSets", "GET")
    assert lookups[0].query["property"] == "name==airflow-profiles"


def test_of_several_datasets_with_one_name_the_oldest_is_reused(sandbox):
    hook = AdobeExperiencePlatformHook(retry=FAST)
    first = hook.create_profile_dataset("twice")
    hook.create_profile_dataset("twice")  # Catalog does not keep names unique
    assert hook.get_or_create_profile_dataset("twice") == (first, False)


def test_a_dataset_of_the_same_name_on_another_schema_is_refused(sandbox):
    hook = AdobeExperiencePlatformHook(retry=FAST)
    hook.call(
        "POST",
        "/data/foundation/catalog/dataSets",
        json={"name": "events", "schemaRef": {"id": "https://ns.adobe.com/acme/schemas/events"}},
        expected=(201,),
    )
    with pytest.raises(ExportConfigError, match="not the profile union schema") as err:
        hook.get_or_create_profile_dataset("events")
    assert err.value.field == "dataset_name" and PROFILE_UNION_SCHEMA in str(err.value)


# -- reattach: the run's job into the same dataset since a time -------------------------------------


@pytest.mark.parametrize("key", ["datasetId", "dataSetId"])
def test_find_export_job_since(sandbox, key):
    sandbox.adobe.job_seconds = 30
    sandbox.adobe.dataset_id_key = key
    hook = AdobeExperiencePlatformHook(retry=FAST)
    dataset = hook.create_profile_dataset("t")
    other = hook.create_profile_dataset("u")
    before = time.time() - 1
    job = hook.create_export_job(_job_body(dataset))
    hook.create_export_job(_job_body(other))
    assert hook.find_export_job_since(dataset, before)["id"] == job["id"]
    assert hook.find_export_job_since(dataset, time.time() + 5) is None
    hook.cancel_export_job(job["id"])  # FAILED now: nothing to reattach to
    assert hook.find_export_job_since(dataset, before) is None


def test_a_job_that_succeeded_while_the_worker_was_dead_is_reattached_to(sandbox):
    sandbox.adobe.job_seconds = 0  # done at once, as if it finished while no worker watched
    hook = AdobeExperiencePlatformHook(retry=FAST)
    dataset = hook.create_profile_dataset("t")
    before = time.time() - 1
    job = hook.create_export_job(_job_body(dataset))
    assert hook.get_export_job(job["id"])["status"] == "SUCCEEDED"

    assert hook.find_export_job_since(dataset, before)["id"] == job["id"]


# -- Data Access listings ---------------------------------------------------------------------------


def test_batch_files_past_100_and_through_directory_entries(sandbox):
    sandbox.adobe.job_seconds = 0.1
    sandbox.adobe.default_rows = 230
    sandbox.adobe.rows_per_file = 1
    sandbox.adobe.directory_depth = 2
    hook = AdobeExperiencePlatformHook(retry=FAST)
    job = _wait(hook, hook.create_export_job(_job_body(hook.create_profile_dataset("t")))["id"])
    batch_id = job["destination"]["batchId"]
    files = hook.batch_files(batch_id)
    expected = sandbox.adobe.expected_files(batch_id)
    assert len(files) == 230 == len(expected)
    assert [(f.dataset_file_id, f.name, f.size) for f in files] == [
        (f"{e[0]}~d2", e[1], e[2]) for e in expected
    ]
    pages = sandbox.adobe.requests_to(f"/data/foundation/export/batches/{batch_id}/files")
    assert [r.query["start"] for r in pages] == ["0", "100", "200"]


def test_one_token_per_credential_and_429_honoured(sandbox):
    sandbox.adobe.faults.rate_limit("/data/core/ups/export/jobs", times=2, retry_after="1")
    hooks = [AdobeExperiencePlatformHook(retry=FAST) for _ in range(3)]
    dataset = hooks[0].create_profile_dataset("t")
    started = time.monotonic()
    job = hooks[1].create_export_job(_job_body(dataset))  # a POST: retried since a 429 proves it unsent
    assert time.monotonic() - started >= 2.0  # both Retry-After waits were kept
    assert [h.get_export_job(job["id"])["id"] for h in hooks] == [job["id"]] * 3
    posts = sandbox.adobe.requests_to("/data/core/ups/export/jobs", "POST")
    assert [r.status for r in posts] == [429, 429, 200]
    assert len(sandbox.adobe.requests_to("/ims/token/v3")) == 1


# -- every request the hook sends, against Adobe's OpenAPI documents ------------------------------------


def _validate_requests(sent) -> list[str]:
    """Validate each httpx request to the Platform gateway against Adobe's OpenAPI file for its API,
    as if it went to https://platform.adobe.io (the sandbox's one check, airflow_provider_exports_sandbox.specs);
    returns the operations seen."""
    from urllib.parse import parse_qs, urlsplit

    from airflow_provider_exports_sandbox import specs
    from airflow_provider_exports_sandbox.adobe.validation import SERVICES

    seen = []
    for req in sent:
        url = urlsplit(str(req.url))
        found = next(((b, s) for b, s, _ in SERVICES if url.path.startswith(b + "/")), None)
        if found is None:
            assert url.path == "/ims/token/v3", url.path  # IMS has no OpenAPI file here
            continue
        base, service = found
        api = specs.adobe_api(service)
        if api is None:
            pytest.skip(specs.missing_reason(specs.ADOBE_SPECS[service]))
        request = specs.OpenAPIRequest(
            specs.PLATFORM, url.path, req.method, parse_qs(url.query), req.headers, req.content or None
        )
        assert specs.openapi_problem(api, request) is None, specs.openapi_problem(api, request)
        seen.append(f"{req.method} {base}")
    return seen


async def test_every_request_the_hook_sends_validates_against_adobes_openapi(sandbox):
    sandbox.adobe.job_seconds = 0.0
    sandbox.adobe.default_rows = 120
    sandbox.adobe.rows_per_file = 1
    sandbox.adobe.directory_depth = 1
    sent = []
    hook = AdobeExperiencePlatformHook(retry=FAST)
    hook.http.client.event_hooks["request"].append(sent.append)

    dataset, _ = hook.get_or_create_profile_dataset("validated")
    hook.get_or_create_profile_dataset("validated")
    body = export_job_request(
        dataset_id=dataset,
        fields="identities.id,person",
        merge_policy_id="mp",
        merge_policy_version=1,
        segments=["s1", {"segmentId": "s2", "segmentNs": "ups", "status": ["exited"]}],
        segment_qualification_start="2026-11-21T00:00:00Z",
        from_ingest_timestamp="2026-11-21T00:00:00Z",
        empty_profiles=False,
        event_fields="eventType",
        event_from_ingest_timestamp="2026-11-20T00:00:00Z",
        segment_per_batch=True,
        evaluate_segments=True,
    )
    job_id = hook.create_export_job(body)["id"]
    event = run_poke(hook, poke_export_job(job_id))
    assert event.state == "success"
    hook.find_export_job_since(dataset, time.time() - 60)
    files = [f for b in event.result for f in hook.batch_files(b)]
    assert len(files) > 100
    with hook.http.stream(hook.file_url(files[0].dataset_file_id, files[0].name), offset=10, length=100) as stream:
        assert len(b"".join(stream.iter_bytes())) == 100
    second = hook.create_export_job(export_job_request(dataset_id=dataset))["id"]
    hook.cancel_export_job(second)
    hook.check_access()

    async def collect(request):
        sent.append(request)

    client = await hook.ahttp()
    client._shared().client.event_hooks["request"].append(collect)
    try:
        await arun_poke(hook, poke_export_job(job_id))
        await hook.acancel_export_job(job_id)
    finally:
        await hook.aclose()

    seen = set(_validate_requests(sent))
    assert seen == {
        "GET /data/foundation/catalog",
        "POST /data/foundation/catalog",
        "POST /data/core/ups",
        "GET /data/core/ups",
        "DELETE /data/core/ups",
        "GET /data/foundation/export",
    }


# -- untrusted edges: ids checked and escaped, listings bounded ---------------------------------------

from airflow_provider_exports.exceptions import LimitExceeded, VendorAPIError  # noqa: E402

EXPORT_JOBS = "/data/core/ups/export/jobs"
DATASETS = "/data/foundation/catalog/dataSets"
DATA_ACCESS = "/data/foundation/export"
# seen on main: each of these reached another resource of the account (the first two Catalog's
# GET /dataSets, the third GET /batches/b/files of Data Access)
ESCAPES = {
    "export_job_id": "1/../../../../../foundation/catalog/dataSets",
    "batch_id": "x/../../dataSets",
    "dataset_file_id": "x/../../batches/b/files",
}


async def _call(hook, name, value):
    calls = {
        "get_export_job": lambda: hook.get_export_job(value),
        "cancel_export_job": lambda: hook.cancel_export_job(value),
        "acancel_export_job": lambda: hook.acancel_export_job(value),
        "poke_export_job": lambda: run_poke(hook, poke_export_job(value)),
        "apoke_export_job": lambda: arun_poke(hook, poke_export_job(value)),
        "get_batch": lambda: hook.get_batch(value),
        "batch_files": lambda: hook.batch_files(value),
        "file_url": lambda: hook.file_url(value, "part-00000.parquet"),
    }
    result = calls[name]()
    if hasattr(result, "__await__"):
        await result


@pytest.mark.parametrize(
    ("call", "field"),
    [
        ("get_export_job", "export_job_id"),
        ("cancel_export_job", "export_job_id"),  # the cancel DELETE
        ("acancel_export_job", "export_job_id"),
        ("poke_export_job", "export_job_id"),
        ("apoke_export_job", "export_job_id"),
        ("get_batch", "batch_id"),
        ("batch_files", "batch_id"),
        ("file_url", "dataset_file_id"),
    ],
)
async def test_an_id_that_would_escape_its_path_is_refused_before_any_request(sandbox, call, field):
    hook = AdobeExperiencePlatformHook(retry=FAST)
    try:
        for bad in (ESCAPES[field], "..", "", "24115?limit=1", "24115#x", "%2e%2e"):
            with pytest.raises(ExportConfigError) as err:
                await _call(hook, call, bad)
            assert err.value.field == field, bad
    finally:
        await hook.aclose()
    assert sandbox.adobe.requests == []


@pytest.mark.parametrize("bad", ["24115.5", "-1", "²", "24 115", True, 1.5])
def test_an_export_job_id_is_a_number(sandbox, bad):
    with pytest.raises(ExportConfigError, match="a number such as 24115"):
        AdobeExperiencePlatformHook(retry=FAST).get_export_job(bad)
    assert sandbox.adobe.requests == []


def test_ids_of_every_documented_shape_pass_their_checks():
    from airflow_provider_exports.hooks._adobe_experience_platform_records import (
        BATCH_ID,
        DATASET_FILE_ID,
        DATASET_ID,
        check_job_id,
    )

    assert [check_job_id(v) for v in (24115, "11400769", 100.0, " 7 ")] == ["24115", "11400769", "100", "7"]
    datasets = ("5b7c86968f7b6501e21ba9df", "15b4657a-058a-47b0-a356-7b63328138c6", "51b340e26b64ed3eb31ec9z8")
    for dataset in datasets:
        assert DATASET_ID.check(dataset, "dataset_id") == dataset
    for batch in ("da5cfb4de32c4b93a09f7e37fa53ad52", "65e18145-a5e8-4993-94f3-c70fadaa1fef", "01H9ZQ6P3T2B"):
        assert BATCH_ID.check(batch, "batch_id") == batch
    file_id = "65e18145-a5e8-4993-94f3-c70fadaa1fef-1"
    assert DATASET_FILE_ID.check(file_id, "dataset_file_id") == file_id


def _succeeded(destination):
    return {"id": 7, "status": "SUCCEEDED", "destination": {"datasetId": "ds1", **destination}}


@pytest.mark.parametrize(
    ("destination", "field"),
    [
        ({"batchId": "x/../../../core/ups/export/jobs"}, "destination.batchId"),
        (
            {
                "segmentPerBatch": True,
                "batches": [{"segmentId": "s1", "batchId": "b1"}, {"segmentId": "s2", "batchId": ".."}],
            },
            "destination.batches[1].batchId",
        ),
    ],
)
async def test_a_batch_id_adobe_answers_is_checked_before_it_is_used(sandbox, destination, field):
    sandbox.adobe.faults.answer(f"{EXPORT_JOBS}/7", times=2, json=_succeeded(destination))
    hook = AdobeExperiencePlatformHook(retry=FAST)
    with pytest.raises(ExportConfigError, match="is not a batch id") as err:
        run_poke(hook, poke_export_job(7))
    assert err.value.field == field
    try:
        with pytest.raises(ExportConfigError):
            await arun_poke(hook, poke_export_job(7))
    finally:
        await hook.aclose()
    assert sandbox.adobe.requests_to("/data/foundation/*") == []


@pytest.mark.parametrize(
    ("listing", "entry"),
    [
        ("/batches/b1/files", {"dataSetFileId": "../../../core/ups/export/jobs"}),
        ("/files/b1-1", {"dataSetFileId": "b1-2/../../../../core/ups/export/jobs"}),
        # a directory entry that names its child only in its self link
        ("/files/b1-1", {"_links": {"self": {"href": f"https://platform.adobe.io{DATA_ACCESS}/files/x/../../../../core"}}}),
    ],
)
def test_a_dataset_file_id_adobe_lists_is_checked_before_it_is_followed(sandbox, listing, entry):
    sandbox.adobe.faults.answer(f"{DATA_ACCESS}{listing}", json={"data": [entry]})  # first match wins
    sandbox.adobe.faults.answer(f"{DATA_ACCESS}/batches/b1/files", json={"data": [{"dataSetFileId": "b1-1"}]})
    with pytest.raises(ExportConfigError, match="is not a dataset file id") as err:
        AdobeExperiencePlatformHook(retry=FAST).batch_files("b1")
    assert "dataSetFileId" in err.value.field
    assert sandbox.adobe.requests_to("/data/core/*") == []
    assert len(sandbox.adobe.requests_to(f"{DATA_ACCESS}/*")) == (1 if "batches" in listing else 2)


def test_a_dataset_id_catalog_answers_is_checked(sandbox):
    sandbox.adobe.faults.answer(DATASETS, status=201, json=["@/dataSets/.."], method="POST")
    hook = AdobeExperiencePlatformHook(retry=FAST)
    with pytest.raises(ExportConfigError, match="is not a dataset id"):
        hook.create_profile_dataset("t")
    sandbox.adobe.faults.answer(DATASETS, json={"x/../y": {"name": "t"}}, method="GET")
    with pytest.raises(ExportConfigError, match="is not a dataset id"):
        hook.find_datasets("t")


# Each listing below is answered 40 times by the misbehaving vendor, then by the sandbox itself: a
# hook without the bound reads all 40 and ends without LimitExceeded (or with the sandbox's 404).


def test_export_jobs_pages_stop_at_max_pages(sandbox, monkeypatch):
    monkeypatch.setenv("AIRFLOW__EXPORTS__MAX_PAGES", "2")
    hook = AdobeExperiencePlatformHook(retry=FAST)
    dataset_id = hook.create_profile_dataset("t")
    for _ in range(4):
        hook.create_export_job(_job_body(dataset_id))
    with pytest.raises(LimitExceeded, match="max_pages") as err:
        list(hook.list_export_jobs(limit=1))
    assert EXPORT_JOBS in err.value.what
    assert len(sandbox.adobe.requests_to(EXPORT_JOBS, "GET")) == 2


def _jobs_page(offset, sort="desc"):
    return {
        "records": [{"id": 1, "status": "SUCCEEDED", "creationTime": 1540974701302}],
        "page": {"sortField": "createdTime", "sort": sort, "pageOffset": offset, "pageSize": 1},
        "link": {"next": f"/export/jobs/?limit=1&offset={offset}"},
    }


def test_a_link_next_that_repeats_its_offset_ends_the_listing(sandbox):
    sandbox.adobe.faults.answer(EXPORT_JOBS, times=40, json=_jobs_page("1540974701302_96"), method="GET")
    with pytest.raises(VendorAPIError, match="repeats the offset of an earlier page"):
        list(AdobeExperiencePlatformHook(retry=FAST).list_export_jobs())
    assert len(sandbox.adobe.requests_to(EXPORT_JOBS, "GET")) == 2


@pytest.mark.parametrize(
    ("sort", "offsets"),
    [("desc", ["1540974701302_96", "1540974709999_97"]), ("asc", ["1540974709999_97", "1540974701302_96"])],
)
def test_a_link_next_that_goes_back_ends_the_listing(sandbox, sort, offsets):
    for offset in offsets:
        sandbox.adobe.faults.answer(EXPORT_JOBS, times=1, json=_jobs_page(offset, sort), method="GET")
    sandbox.adobe.faults.answer(EXPORT_JOBS, times=40, json=_jobs_page(offsets[0], sort), method="GET")
    with pytest.raises(VendorAPIError, match=f"goes back in the listing's {sort} order"):
        list(AdobeExperiencePlatformHook(retry=FAST).list_export_jobs())
    assert len(sandbox.adobe.requests_to(EXPORT_JOBS, "GET")) == 2


def test_a_link_next_that_moves_on_is_followed(sandbox):
    for offset in ("3_3", "2_2", "1_1"):
        sandbox.adobe.faults.answer(EXPORT_JOBS, times=1, json=_jobs_page(offset), method="GET")
    sandbox.adobe.faults.answer(EXPORT_JOBS, json={"records": [], "link": {"next": ""}}, method="GET")
    assert len(list(AdobeExperiencePlatformHook(retry=FAST).list_export_jobs())) == 3


def test_dataset_pages_that_are_always_full_stop_at_max_pages(sandbox, monkeypatch):
    monkeypatch.setenv("AIRFLOW__EXPORTS__MAX_PAGES", "5")
    full = {f"{i:024x}": {"name": "other", "created": 1540974701302} for i in range(100)}
    sandbox.adobe.faults.answer(DATASETS, times=40, json=full, method="GET")
    with pytest.raises(LimitExceeded, match="max_pages"):
        AdobeExperiencePlatformHook(retry=FAST).find_datasets("t")
    assert len(sandbox.adobe.requests_to(DATASETS, "GET")) == 5


def _endless(entry, path):
    return {"data": [entry], "_links": {"next": {"href": f"https://platform.adobe.io{path}?start=1"}}}


@pytest.mark.parametrize(
    "path",
    [
        f"{DATA_ACCESS}/batches/b1/files",  # the batch's listing, naming b1-1 page after page
        f"{DATA_ACCESS}/files/b1-1",  # a directory that lists itself, page after page
    ],
)
def test_data_access_pages_that_never_end_stop_at_max_pages(sandbox, monkeypatch, path):
    monkeypatch.setenv("AIRFLOW__EXPORTS__MAX_PAGES", "5")
    sandbox.adobe.faults.answer(path, times=40, json=_endless({"dataSetFileId": "b1-1"}, path))
    # the other listing: the batch names b1-1 once; b1-1 holds nothing
    sandbox.adobe.faults.answer(f"{DATA_ACCESS}/batches/b1/files", json={"data": [{"dataSetFileId": "b1-1"}]})
    sandbox.adobe.faults.answer(f"{DATA_ACCESS}/files/b1-1", json={"data": []})
    hook = AdobeExperiencePlatformHook(retry=FAST)
    with pytest.raises(LimitExceeded, match="max_pages") as err:
        hook.batch_files("b1")
    assert path in err.value.what
    assert len(sandbox.adobe.requests_to(path)) == 5


def test_directories_deeper_than_max_listing_depth_are_refused(sandbox, monkeypatch):
    monkeypatch.setenv("AIRFLOW__EXPORTS__MAX_LISTING_DEPTH", "2")
    sandbox.adobe.job_seconds = 0.05
    sandbox.adobe.files_per_batch = 1
    sandbox.adobe.directory_depth = 6
    hook = AdobeExperiencePlatformHook(retry=FAST)
    batch_id = _wait(hook, hook.create_export_job(_job_body(hook.create_profile_dataset("t")))["id"])[
        "destination"
    ]["batchId"]
    with pytest.raises(LimitExceeded, match=r"a directory 3 levels deep.*max_listing_depth"):
        hook.batch_files(batch_id)
    assert len(sandbox.adobe.requests_to(f"{DATA_ACCESS}/files/*")) == 3  # the file, then 2 levels


def test_one_listing_of_directories_shares_one_page_bound(sandbox, monkeypatch):
    monkeypatch.setenv("AIRFLOW__EXPORTS__MAX_PAGES", "3")
    sandbox.adobe.job_seconds = 0.05
    sandbox.adobe.files_per_batch = 1
    sandbox.adobe.directory_depth = 6  # one page per level: 7 pages for the whole listing
    hook = AdobeExperiencePlatformHook(retry=FAST)
    batch_id = _wait(hook, hook.create_export_job(_job_body(hook.create_profile_dataset("t")))["id"])[
        "destination"
    ]["batchId"]
    with pytest.raises(LimitExceeded, match="max_pages"):
        hook.batch_files(batch_id)
    assert len(sandbox.adobe.requests_to(f"{DATA_ACCESS}/files/*")) == 3


# -- the dataset as the seed shows it (issue 18 point 4) ----------------------------------------------


def _post_dataset(hook, name: str, **extra) -> str:
    """A dataset on the profile union schema made by someone else (``extra``: more of its fields)."""
    body = {"name": name, "schemaRef": {"id": PROFILE_UNION_SCHEMA}, **extra}
    return hook.call("POST", "/data/foundation/catalog/dataSets", json=body, expected=(201,))[0].rsplit("/", 1)[1]


def test_the_dataset_is_created_as_the_seed_shows_it(sandbox):
    """The seed's request carries fileDescription (Parquet); the sandbox judges it by catalog.yaml."""
    hook = AdobeExperiencePlatformHook(retry=FAST)
    dataset_id, created = hook.get_or_create_profile_dataset("seeded")
    assert created
    ((found, dataset),) = hook.find_datasets("seeded")
    assert found == dataset_id
    assert dataset["fileDescription"] == {"persisted": True, "containerFormat": "parquet", "format": "parquet"}
    assert [r.status for r in sandbox.adobe.requests_to("/data/foundation/catalog/dataSets", "POST")] == [201]


@pytest.mark.parametrize(
    "extra",
    [
        {},  # as the current guide creates it: no fileDescription in the answer
        {"fileDescription": {"persisted": True, "containerFormat": "parquet", "format": "parquet"}},
        {"fileDescription": {"format": ""}},
    ],
    ids=["without-fileDescription", "parquet", "format-empty"],
)
def test_a_dataset_answer_with_or_without_file_description_is_reused(sandbox, extra):
    hook = AdobeExperiencePlatformHook(retry=FAST)
    existing = _post_dataset(hook, "theirs", **extra)
    assert hook.get_or_create_profile_dataset("theirs") == (existing, False)


def test_a_dataset_whose_files_are_not_parquet_is_refused(sandbox):
    hook = AdobeExperiencePlatformHook(retry=FAST)
    _post_dataset(hook, "csv-files", fileDescription={"format": "csv", "delimiters": [","]})
    with pytest.raises(ExportConfigError, match="'csv'") as err:
        hook.get_or_create_profile_dataset("csv-files")
    assert err.value.field == "dataset_name" and "parquet" in str(err.value)
