"""The Cordial sandbox speaks v2 ``audiencetrendsexport`` and ``jobs`` as Cordial's Swagger documents it.

Responses are validated with jsonschema against the ``definitions`` of
/work/shared/vendor-apis/cordial/cordial-v2-openapi-original.json (Swagger 2.0), after working
around the spec's known defects where they are met (the ``cordial_swagger`` fixture, conftest.py).
"""

from __future__ import annotations

import gzip
import json
import time
from typing import Any

import httpx
import pytest

from airflow_provider_exports_sandbox import Sandbox
from airflow_provider_exports_sandbox.cordial import API_KEY

AUTH = (API_KEY, "")
BODY: dict[str, Any] = {
    "name": "weekly-trends",
    "exportType": "csv",
    "destination": {"type": "AWS"},
    "selected_timeframe_start": "2026-11-01",
    "selected_timeframe_end": "2026-11-07",
    "audiences": ["vip"],
}


@pytest.fixture
def cordial(sandbox: Sandbox) -> httpx.Client:
    sandbox.cordial.job_seconds = 0.15
    sandbox.cordial.add_audience("vip")
    sandbox.cordial.add_audience("dormant", trends_enabled=False)
    with httpx.Client(base_url=sandbox.cordial.url, auth=AUTH) as client:
        yield client  # type: ignore[misc]


def s3_destination(bucket: str, path: str) -> dict[str, Any]:
    """An S3 destination with keys (the sandbox account has no IAM role unless told so)."""
    return {
        "type": "S3",
        "aws_access_key_id": "testing",
        "aws_secret_access_key": "testing",
        "aws_bucket": bucket,
        "aws_region": "us-east-1",
        "path": path,
    }


def create(client: httpx.Client, swagger: Any, **changes: Any) -> httpx.Response:
    body = {**BODY, **changes}
    swagger.validate(body, {"$ref": "#/definitions/SourceAE"})
    return client.post("/v2/audiencetrendsexport", json=body)


def test_export_job_runs_scheduled_processing_done(
    sandbox: Sandbox, cordial: httpx.Client, cordial_swagger: Any
) -> None:
    sandbox.cordial.job_reads = 3  # the job moves on with each read of it, not with time
    resp = create(cordial, cordial_swagger)
    assert resp.status_code == 200, resp.text
    # The spec gives the 200 only as "jobId"; sibling exporters define {"jobId": string}.
    cordial_swagger.validate(resp.json(), {"$ref": "#/definitions/ContactExportsResponse"})
    job_id = resp.json()["jobId"]
    assert len(job_id) == 24
    int(job_id, 16)
    seen = []
    for _ in range(3):
        job = cordial.get(f"/v2/jobs/{job_id}")
        cordial_swagger.validate_response(job, "/v2/jobs/{id}", "get")
        assert job.json()["_id"] == job_id
        seen.append(job.json()["status"])
    assert seen == ["Scheduled", "Processing", "Done"]
    assert job.json()["times"]["end"]
    csv = cordial.get(f"/_sandbox/files/{job_id}").text.splitlines()
    assert csv[0].split(",") == ["audience", *[f"2026-11-0{d}" for d in range(1, 8)]]
    assert csv[1].startswith("vip,")
    assert sandbox.cordial.export_file(job_id).decode().splitlines() == csv


def test_failed_job(sandbox: Sandbox, cordial: httpx.Client, cordial_swagger: Any) -> None:
    sandbox.cordial.fail_next_jobs(1)
    job_id = create(cordial, cordial_swagger).json()["jobId"]
    time.sleep(0.35)
    job = cordial.get(f"/v2/jobs/{job_id}")
    cordial_swagger.validate_response(job, "/v2/jobs/{id}", "get")
    assert job.json()["status"] == "Failed"


def test_job_list_filters_and_errors(sandbox: Sandbox, cordial: httpx.Client, cordial_swagger: Any) -> None:
    sandbox.cordial.job_reads = 2  # each job is Done once read twice, however slow the machine
    ids = [create(cordial, cordial_swagger, name=f"t-{i}").json()["jobId"] for i in range(3)]
    resp = cordial.get("/v2/jobs")
    cordial_swagger.validate_response(resp, "/v2/jobs", "get")
    assert {j["_id"] for j in resp.json()} == set(ids)
    assert len(cordial.get("/v2/jobs", params={"per_page": "2", "page": "2"}).json()) == 1
    assert_no_jobs(cordial.get("/v2/jobs", params={"status": "Done"}), cordial_swagger)
    for job_id in ids * 2:
        cordial.get(f"/v2/jobs/{job_id}")
    done = cordial.get("/v2/jobs", params={"status": "Done", "times[end][gte]": "01-01-2020"})
    cordial_swagger.validate_response(done, "/v2/jobs", "get")
    assert len(done.json()) == 3
    assert_no_jobs(cordial.get("/v2/jobs", params={"times[start][lt]": "01-01-2020"}), cordial_swagger)
    for bad in ("yesterday-ish", "2020-01-01", "2020-01-01T00:00:00+00:00", "1-1-2020", "13-01-2020"):
        bad_time = cordial.get("/v2/jobs", params={"times[start][gte]": bad})
        assert bad_time.status_code == 422, bad
        assert bad_time.json()["message"] == "Time value is incorrect"
        cordial_swagger.validate_response(bad_time, "/v2/jobs", "get")
    too_many = cordial.get("/v2/jobs", params={"include": "statistic", "per_page": "26"})
    assert too_many.status_code == 400
    assert too_many.json()["errorKey"] == "JOBS_STATISTIC_PER_PAGE_EXCEEDED"
    cordial_swagger.validate_response(too_many, "/v2/jobs", "get")


def assert_no_jobs(resp: httpx.Response, swagger: Any) -> None:
    """C-V2: the jobs list answers 404 RecordNotFound when no job matches."""
    assert resp.status_code == 404, resp.text
    assert resp.json() == {"error": True, "errorKey": "RECORD_NOT_FOUND", "message": "record not found"}
    swagger.validate_response(resp, "/v2/jobs", "get")


def test_an_empty_jobs_list_is_record_not_found_on_every_page(
    sandbox: Sandbox, cordial: httpx.Client, cordial_swagger: Any
) -> None:
    assert_no_jobs(cordial.get("/v2/jobs", params={"per_page": "1"}), cordial_swagger)
    create(cordial, cordial_swagger)
    assert len(cordial.get("/v2/jobs", params={"per_page": "1"}).json()) == 1
    assert_no_jobs(cordial.get("/v2/jobs", params={"per_page": "1", "page": "2"}), cordial_swagger)


@pytest.mark.parametrize(("zone", "taken"), [("UTC", True), ("Pacific/Kiritimati", True), ("Etc/GMT+12", False)])
def test_a_day_filter_is_midnight_in_the_accounts_time_zone(
    sandbox: Sandbox, cordial: httpx.Client, cordial_swagger: Any, zone: str, taken: bool
) -> None:
    import datetime as dt

    sandbox.cordial.account_timezone = zone
    sandbox.cordial.job_reads = 1  # Done, with its start, at the first read
    job_id = create(cordial, cordial_swagger).json()["jobId"]
    start = dt.datetime.fromisoformat(cordial.get(f"/v2/jobs/{job_id}").json()["times"]["start"])
    # midnight of the job's UTC day: before its start in UTC and at UTC+14, 12 h after it at UTC-12
    # unless the job started after noon UTC
    resp = cordial.get("/v2/jobs", params={"times[start][gte]": start.strftime("%m-%d-%Y")})
    if taken or start.hour >= 12:
        assert [j["_id"] for j in resp.json()] == [job_id]
    else:
        assert_no_jobs(resp, cordial_swagger)


def test_unknown_job_is_record_not_found(cordial: httpx.Client, cordial_swagger: Any) -> None:
    resp = cordial.get("/v2/jobs/ffffffffffffffffffffffff")
    assert resp.status_code == 404
    assert resp.json() == {"error": True, "errorKey": "RECORD_NOT_FOUND", "message": "record not found"}
    cordial_swagger.validate_response(resp, "/v2/jobs/{id}", "get")


@pytest.mark.parametrize(
    ("destination", "message"),
    [
        ({}, "The destination.type field is required."),
        (
            {"type": "SFTP", "server": "sftp.example.com", "path": "/in"},
            "The destination.username field is required.",
        ),
        (
            {"type": "SFTP", "server": "sftp.example.com", "username": "u", "path": "/in"},
            "Parameter password is not set",
        ),
        ({"type": "GCS", "gcs_bucket": "b"}, "The destination.path field is required."),
        ({"type": "S3", "path": "x"}, "The destination.aws access key id field is required."),
        (
            {
                "type": "S3",
                "path": "x",
                "aws_access_key_id": "a",
                "aws_secret_access_key": "s",
                "aws_region": "r",
            },
            "The destination.aws bucket field is required.",
        ),
    ],
)
def test_destination_errors_are_400(
    cordial: httpx.Client, destination: dict[str, Any], message: str, cordial_swagger: Any
) -> None:
    resp = cordial.post("/v2/audiencetrendsexport", json={**BODY, "destination": destination})
    assert resp.status_code == 400
    assert resp.json() == {"error": True, "errorKey": "GENERIC_ERROR_KEY", "message": message}
    cordial_swagger.validate_response(resp, "/v2/audiencetrendsexport", "post")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"audiences": []}, "Field 'audiences' should be provided."),
        ({"audiences": ["ghost"]}, "Audience 'ghost' does not exist."),
        ({"audiences": ["dormant"]}, "For Audience 'dormant' analytics disabled."),
        ({"name": ""}, "Field 'name' should be provided."),
        (
            {"selected_timeframe_end": None},
            "Both fields 'selected_timeframe_start' and 'selected_timeframe_end' should be present.",
        ),
        (
            {"selected_timeframe_start": "2026-13-45"},
            "The 'selected_timeframe_start' is invalid. ISO-8601 is a recommended format.",
        ),
        (
            {"selected_timeframe_start": "2026-11-09"},
            "'selected_timeframe_end' cannot be in past in comparison with 'selected_timeframe_start'",
        ),
    ],
)
def test_config_errors_are_406(
    cordial: httpx.Client, changes: dict[str, Any], message: str, cordial_swagger: Any
) -> None:
    body = {k: v for k, v in {**BODY, **changes}.items() if v is not None}
    resp = cordial.post("/v2/audiencetrendsexport", json=body)
    assert resp.status_code == 406
    assert resp.json()["message"] == message
    cordial_swagger.validate_response(resp, "/v2/audiencetrendsexport", "post")


def test_wrong_content_type_is_415_and_bad_key_is_401(
    sandbox: Sandbox, cordial: httpx.Client, cordial_swagger: Any
) -> None:
    resp = cordial.post("/v2/audiencetrendsexport", content=b"name=x", headers={"Content-Type": "text/plain"})
    assert resp.status_code == 415
    cordial_swagger.validate(resp.json(), {"$ref": "#/definitions/MediaTypeIsIncorrect"})
    denied = httpx.get(f"{sandbox.cordial.url}/v2/jobs", auth=("wrong-key", ""))
    assert denied.status_code == 401
    assert denied.json() == {"error": "Access Denied: Authentication Failure"}
    assert httpx.get(f"{sandbox.cordial.url}/v2/jobs", auth=(API_KEY, "not-blank")).status_code == 401


def test_rate_limit_has_cordial_headers(sandbox: Sandbox, cordial: httpx.Client) -> None:
    sandbox.cordial.faults.rate_limit("/v2/jobs", retry_after="2")
    resp = cordial.get("/v2/jobs")
    assert resp.status_code == 429
    assert resp.headers["Retry-After"] == "2"
    for header in ("X-Rate-Limit-Limit", "X-Rate-Limit-Remaining", "X-Rate-Limit-Reset"):
        assert header in resp.headers
    assert resp.json()["error"] is True
    assert cordial.get("/v2/jobs").status_code == 404  # no job: RecordNotFound, no longer limited


def test_s3_destination_is_delivered_to_moto(
    sandbox: Sandbox, cordial: httpx.Client, s3: Any, cordial_swagger: Any
) -> None:
    sandbox.cordial.s3_endpoint_url = s3.endpoint_url
    job_id = create(cordial, cordial_swagger, destination=s3_destination(s3.bucket, "cordial/trends")).json()[
        "jobId"
    ]
    time.sleep(0.35)
    assert cordial.get(f"/v2/jobs/{job_id}").json()["status"] == "Done"
    assert s3.keys() == ["cordial/trends/weekly-trends.csv"]
    assert s3.read("cordial/trends/weekly-trends.csv") == sandbox.cordial.export_file(job_id)


CONTACTS: dict[str, Any] = {
    "name": "vip-members",
    "exportType": "csv",
    "destination": {"type": "AWS"},
    "fields": ["email", "first_name"],
    "accountId": 1234,
    "audience-key": "vip",
    "showHeader": True,
}


def create_contacts(client: httpx.Client, swagger: Any, **changes: Any) -> httpx.Response:
    body = {k: v for k, v in {**CONTACTS, **changes}.items() if v is not None}
    swagger.validate(body, {"$ref": "#/definitions/SourceCE"})
    return client.post("/v2/contactexports", json=body)


def _wait_done(client: httpx.Client, job_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        job = client.get(f"/v2/jobs/{job_id}").json()
        if job["status"] in ("Done", "Failed"):
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} did not finish")


def test_contact_export_delivers_the_audiences_members(
    sandbox: Sandbox, cordial: httpx.Client, cordial_swagger: Any
) -> None:
    sandbox.cordial.add_audience("vip", members=7)
    resp = create_contacts(cordial, cordial_swagger, lists=[8756])
    assert resp.status_code == 200, resp.text
    cordial_swagger.validate_response(resp, "/v2/contactexports", "post")
    job = _wait_done(cordial, resp.json()["jobId"])
    cordial_swagger.validate(job, {"$ref": "#/definitions/JobJ"})
    assert job["jobName"] == "ExportContacts"
    assert job["metadata"] == {
        "name": "vip-members",
        "exportType": "csv",
        "fileName": "vip-members.csv",
        "lists": ["8756"],
    }
    rows = sandbox.cordial.export_file(job["_id"]).decode().splitlines()
    assert rows[0] == "email,first_name,8756"
    assert len(rows) == 8 and rows[1] == "vip-00000@example.com,first_name-0,0"


def test_contact_export_json_and_gzip(sandbox: Sandbox, cordial: httpx.Client, cordial_swagger: Any) -> None:
    sandbox.cordial.add_audience("vip", members=3)
    job_id = create_contacts(cordial, cordial_swagger, exportType="json", compress=True).json()["jobId"]
    _wait_done(cordial, job_id)
    assert sandbox.cordial.file_name(job_id) == "vip-members.json.gz"
    lines = gzip.decompress(sandbox.cordial.export_file(job_id)).decode().splitlines()
    assert [json.loads(line)["email"] for line in lines] == [f"vip-0000{i}@example.com" for i in range(3)]


def test_contact_export_header_is_off_by_default(
    sandbox: Sandbox, cordial: httpx.Client, cordial_swagger: Any
) -> None:
    sandbox.cordial.add_audience("vip", members=2)
    job_id = create_contacts(cordial, cordial_swagger, showHeader=None).json()["jobId"]
    _wait_done(cordial, job_id)
    assert sandbox.cordial.export_file(job_id).decode().splitlines()[0].startswith("vip-00000@")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"fields": None}, "The fields field is required."),
        # the spec's schema, in Laravel's wording (as Cordial's documented messages)
        ({"accountId": None}, "The account id field is required."),
        ({"accountId": "7"}, "The account id must be an integer."),
        ({"lists": ["weekly"]}, "The lists.0 must be a number."),
        ({"compress": "yes"}, "The compress field must be true or false."),
        ({"exportType": "xml"}, "The selected export type is invalid."),
        ({"audience-key": "ghost"}, "Audience with name: 'ghost' does not exist."),
        (
            {
                "destination": {
                    "type": "SFTP",
                    "server": "sftp.example.com",
                    "username": "u",
                    "savedKey": "k9",
                    "path": "/",
                }
            },
            "SSH key with such Name/ID: k9 does not exist.",
        ),
        (
            {"destination": {"type": "S3", "aws_bucket": "b", "aws_region": "r", "path": "p"}},
            "The destination.aws access key id field is required.",
        ),
    ],
)
def test_contact_export_errors_are_400(
    sandbox: Sandbox, cordial: httpx.Client, cordial_swagger: Any, changes: dict[str, Any], message: str
) -> None:
    sandbox.cordial.add_audience("vip")
    body = {k: v for k, v in {**CONTACTS, **changes}.items() if v is not None}
    resp = cordial.post("/v2/contactexports", json=body)
    assert resp.status_code == 400
    assert resp.json() == {"error": True, "errorKey": "GENERIC_ERROR_KEY", "message": message}
    cordial_swagger.validate_response(resp, "/v2/contactexports", "post")


def test_saved_sftp_key_and_iam_role_stand_in_for_secrets(
    sandbox: Sandbox, cordial: httpx.Client, cordial_swagger: Any
) -> None:
    sandbox.cordial.add_audience("vip")
    sandbox.cordial.add_saved_key("k9")
    sftp = {
        "type": "SFTP",
        "server": "sftp.example.com",
        "port": 22,
        "username": "u",
        "savedKey": "k9",
        "path": "/",
    }
    assert create_contacts(cordial, cordial_swagger, destination=sftp).status_code == 200
    s3 = {"type": "S3", "aws_bucket": "b", "aws_region": "us-east-1", "path": "p"}
    assert create_contacts(cordial, cordial_swagger, destination=s3).status_code == 400
    sandbox.cordial.s3_iam_role = True
    assert create_contacts(cordial, cordial_swagger, destination=s3).status_code == 200


def test_every_answer_carries_the_rate_limit_headers(sandbox: Sandbox, cordial: httpx.Client) -> None:
    sandbox.cordial.rate_limit_per_minute = 50
    first = cordial.get("/v2/jobs")
    second = cordial.get("/v2/jobs/ffffffffffffffffffffffff")
    assert first.headers["X-Rate-Limit-Limit"] == "50"
    assert int(second.headers["X-Rate-Limit-Remaining"]) == int(first.headers["X-Rate-Limit-Remaining"]) - 1
    assert 0 < int(second.headers["X-Rate-Limit-Reset"]) <= 60


def test_a_create_can_be_answered_with_an_empty_200(
    sandbox: Sandbox, cordial: httpx.Client, cordial_swagger: Any
) -> None:
    sandbox.cordial.answer_creates_empty(1)
    resp = create(cordial, cordial_swagger)
    assert resp.status_code == 200 and resp.content == b""  # the spec's 200 has no schema
    assert sandbox.cordial.jobs_named("weekly-trends") != []
    assert create(cordial, cordial_swagger).json()["jobId"]


def test_a_job_not_started_has_no_start_time_and_is_found_by_status(
    sandbox: Sandbox, cordial: httpx.Client, cordial_swagger: Any
) -> None:
    sandbox.cordial.job_seconds = 60.0
    job_id = create(cordial, cordial_swagger).json()["jobId"]
    job = cordial.get(f"/v2/jobs/{job_id}").json()
    assert job["status"] == "Scheduled" and "start" not in job["times"]
    assert_no_jobs(cordial.get("/v2/jobs", params={"times[start][gte]": "01-01-2020"}), cordial_swagger)
    assert [j["_id"] for j in cordial.get("/v2/jobs", params={"status": "Scheduled"}).json()] == [job_id]


def test_a_throttled_job_says_so_while_it_runs(
    sandbox: Sandbox, cordial: httpx.Client, cordial_swagger: Any
) -> None:
    sandbox.cordial.throttle_next_jobs(1)
    sandbox.cordial.job_reads = 3
    job_id = create(cordial, cordial_swagger).json()["jobId"]
    seen = [cordial.get(f"/v2/jobs/{job_id}").json()["status"] for _ in range(3)]
    assert seen == ["Scheduled", "Throttled", "Done"]


def test_contacts_are_delivered_gzipped_to_moto(
    sandbox: Sandbox, cordial: httpx.Client, s3: Any, cordial_swagger: Any
) -> None:
    sandbox.cordial.s3_endpoint_url = s3.endpoint_url
    sandbox.cordial.add_audience("vip", members=4)
    destination = s3_destination(s3.bucket, "cordial/members")
    job_id = create_contacts(cordial, cordial_swagger, destination=destination, compress=True).json()["jobId"]
    assert _wait_done(cordial, job_id)["status"] == "Done"
    assert s3.keys() == ["cordial/members/vip-members.csv.gz"]
    assert gzip.decompress(s3.read("cordial/members/vip-members.csv.gz")).count(b"\n") == 5


@pytest.mark.parametrize(
    ("path", "key"),
    [
        ("exports/", "exports//weekly-trends.csv"),
        ("/exports", "/exports/weekly-trends.csv"),
        ("exports", "exports/weekly-trends.csv"),
    ],
)
def test_s3_delivery_writes_the_path_as_sent_then_the_file_name(
    sandbox: Sandbox, cordial: httpx.Client, s3: Any, cordial_swagger: Any, path: str, key: str
) -> None:
    """C-ATE: omit the trailing slash "to avoid duplicate slashes being added by default"."""
    sandbox.cordial.s3_endpoint_url = s3.endpoint_url
    job_id = create(cordial, cordial_swagger, destination=s3_destination(s3.bucket, path)).json()["jobId"]
    assert _wait_done(cordial, job_id)["status"] == "Done"
    assert s3.keys() == [key]


SFTP = {"type": "SFTP", "server": "sftp.example.com", "port": 2222, "username": "u", "password": "p", "path": "/"}


@pytest.mark.parametrize(
    ("destination", "message"),
    [
        ({"type": "aws"}, "The selected destination.type is invalid."),
        ({"type": "s3"}, "The selected destination.type is invalid."),
        ({**SFTP, "type": "Sftp"}, "The selected destination.type is invalid."),
        ({k: v for k, v in SFTP.items() if k != "port"}, "The destination.port field is required."),
        (
            {"type": "FTP", "server": "ftp.example.com", "username": "u", "password": "p", "path": "in"},
            "The destination.port field is required.",
        ),
    ],
)
def test_a_destination_is_taken_only_as_the_documents_spell_it(
    sandbox: Sandbox, cordial: httpx.Client, cordial_swagger: Any, destination: dict[str, Any], message: str
) -> None:
    """The type as C-V2 lists it, never upper-cased by the sandbox; FTP/SFTP with a port (C-ATE)."""
    if destination["type"] == "s3":
        destination = {**s3_destination("lake", "p"), **destination}
    for path, body in (("/v2/audiencetrendsexport", BODY), ("/v2/contactexports", CONTACTS)):
        resp = cordial.post(path, json={**body, "destination": destination})
        assert resp.status_code == 400, resp.text
        assert resp.json() == {"error": True, "errorKey": "GENERIC_ERROR_KEY", "message": message}
    assert sandbox.cordial.job_ids() == []
    assert cordial.post("/v2/contactexports", json={**CONTACTS, "destination": SFTP}).status_code == 200


# -- the sandbox judges every request by the Swagger (airflow_provider_exports_sandbox.specs) --------


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        # SourceAE.required (after the spec defect is worked around) and exportType's enum
        ({"exportType": None}, "The export type field is required."),
        ({"exportType": "json"}, "The selected export type is invalid."),
        ({"audiences": "vip"}, "The audiences must be an array."),
        ({"destination": {"type": "S3", "port": "21"}}, "The destination.port must be an integer."),
    ],
)
def test_a_body_the_spec_refuses_is_400(
    cordial: httpx.Client, changes: dict[str, Any], message: str, cordial_swagger: Any
) -> None:
    body = {k: v for k, v in {**BODY, **changes}.items() if v is not None}
    resp = cordial.post("/v2/audiencetrendsexport", json=body)
    assert resp.status_code == 400
    assert resp.json() == {"error": True, "errorKey": "GENERIC_ERROR_KEY", "message": message}
    cordial_swagger.validate_response(resp, "/v2/audiencetrendsexport", "post")


@pytest.mark.parametrize(
    ("path", "query", "status", "message"),
    [
        ("/v2/jobs", {"status": "done"}, 422, "status='done' is not one of"),
        ("/v2/jobs", {"jobName": "Nope"}, 422, "jobName='Nope' is not one of"),
        ("/v2/jobs", {"perpage": "5"}, 422, "query parameter 'perpage' is not in the spec"),
        ("/v2/jobs/0123456789abcdef01234567", {"expand": "x"}, 422, "query parameter 'expand' is not in the spec"),
        ("/v2/nothing", {}, 404, "no such path in the spec"),
    ],
)
def test_a_query_the_spec_refuses(
    cordial: httpx.Client, path: str, query: dict[str, str], status: int, message: str, cordial_swagger: Any
) -> None:
    resp = cordial.get(path, params=query)
    assert resp.status_code == status
    assert resp.json()["error"] is True
    assert message in resp.json()["message"]
    if path.startswith("/v2/jobs"):
        cordial_swagger.validate_response(resp, "/v2/jobs", "get")


def test_without_the_spec_the_sandbox_serves_unvalidated(
    cordial: httpx.Client, monkeypatch: pytest.MonkeyPatch, tmp_path: Any, caplog: pytest.LogCaptureFixture
) -> None:
    from airflow_provider_exports_sandbox import specs

    monkeypatch.setenv(specs.SPECS_ENV, str(tmp_path))
    specs.cordial_swagger.cache_clear()
    specs.unvalidated.cache_clear()
    try:
        with caplog.at_level("WARNING", logger=specs.__name__):
            for _ in range(2):
                resp = cordial.get("/v2/jobs", params={"perpage": "5"})
                # not the spec's refusal (422): the list itself, empty here (C-V2: 404 RecordNotFound)
                assert resp.status_code == 404 and resp.json()["errorKey"] == "RECORD_NOT_FOUND"
        said = [r.getMessage() for r in caplog.records if "unvalidated" in r.getMessage()]
        assert len(said) == 1 and str(tmp_path) in said[0]
    finally:
        monkeypatch.undo()
        specs.cordial_swagger.cache_clear()
        specs.unvalidated.cache_clear()
