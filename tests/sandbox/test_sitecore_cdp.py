"""The Sitecore CDP sandbox speaks the Audience export REST API as vendor-apis README §1 describes it.

No machine-readable Sitecore spec could be obtained, so responses are validated against JSON
schemas written here from the tables of README §1.3 (token) and §1.4a (listing and report).
"""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import json
import time
from typing import Any
from urllib.parse import urlsplit

import httpx
import jsonschema
import pytest

from airflow_provider_exports_sandbox import Sandbox
from airflow_provider_exports_sandbox.sitecore_cdp import API_KEY, API_SECRET, AUDIENCE
from airflow_provider_exports_sandbox.sitecore_cdp_jobs import PENDING_STATES

_RFC3339_MS_UTC = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$"
_UUID = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"

# README §1.3 "Token response".
TOKEN_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["access_token", "scope", "expires_in", "token_type"],
    "properties": {
        "access_token": {"type": "string", "minLength": 1},
        "scope": {"const": "cdp.audience_exports:r"},
        "expires_in": {"type": "integer"},
        "token_type": {"const": "Bearer"},
    },
}

# README §1.4a "Output-URL listing".
LISTING_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": [
        "executionRef",
        "definitionRef",
        "friendlyId",
        "clientKey",
        "expireAt",
        "numberOfFiles",
        "totalSizeKB",
        "exports",
    ],
    "properties": {
        "executionRef": {"type": "string", "pattern": _UUID},
        "definitionRef": {"type": "string", "pattern": _UUID},
        "friendlyId": {"type": "string", "pattern": "^[a-z0-9_]+$"},
        "clientKey": {"type": "string"},
        "expireAt": {"type": "string", "pattern": _RFC3339_MS_UTC},
        "numberOfFiles": {"type": "integer", "minimum": 0},
        "totalSizeKB": {"type": "integer", "minimum": 0},
        "exports": {
            "type": "array",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["url", "sizeKB"],
                "properties": {"url": {"type": "string"}, "sizeKB": {"type": "integer"}},
            },
        },
    },
}

_COUNTERS = [
    "total",
    "filterMatchedGuests",
    "filterNotMatchedGuests",
    "filterFailures",
    "successes",
    "failures",
    "successAdd",
    "successRemove",
]
# README §1.4a "Finished-job report". endTime may be null while a job is pending (sandbox choice).
REPORT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": [
        "clientKey",
        "executionRef",
        "definitionRef",
        "friendlyId",
        "executionType",
        "status",
        "definitionType",
        "segmentExecutionType",
        *_COUNTERS,
        "programmableErrors",
        "filterErrors",
        "errorLogs",
        "datasetDate",
        "startTime",
        "endTime",
    ],
    "properties": {
        "clientKey": {"type": "string"},
        "executionRef": {"type": "string", "pattern": _UUID},
        "definitionRef": {"type": "string", "pattern": _UUID},
        "friendlyId": {"type": "string"},
        "executionType": {"enum": ["INSTANT_RUN", "SCHEDULED"]},
        "status": {"enum": [*PENDING_STATES, "SUCCESS", "FAILED", "ALERT"]},
        "definitionType": {"enum": ["DELTA", "FULL_SYNC"]},
        "segmentExecutionType": {"enum": ["ON_DEMAND", "LIVE"]},
        **{name: {"type": "integer"} for name in _COUNTERS},
        "programmableErrors": {"type": "array", "items": {"type": "object"}},
        "filterErrors": {"type": "array", "items": {"type": "object"}},
        "errorLogs": {"type": "array", "items": {"type": "string"}},
        "datasetDate": {"type": "string"},
        "startTime": {"type": "string"},
        "endTime": {"type": ["string", "null"]},
    },
}
REPORTS_SCHEMA: dict[str, Any] = {"type": "array", "items": REPORT_SCHEMA}


def token(sb: Sandbox) -> str:
    resp = httpx.post(
        f"{sb.sitecore.url}/oauth/token",
        data={
            "client_id": API_KEY,
            "client_secret": API_SECRET,
            "grant_type": "client_credentials",
            "audience": AUDIENCE,
        },
    )
    assert resp.status_code == 200, resp.text
    body = resp.json()
    jsonschema.validate(body, TOKEN_SCHEMA)
    return str(body["access_token"])


@pytest.fixture
def api(sandbox: Sandbox) -> httpx.Client:
    with httpx.Client(
        base_url=sandbox.sitecore.url, headers={"Authorization": f"Bearer {token(sandbox)}"}
    ) as c:
        yield c  # type: ignore[misc]


def read_jsonl_gz(data: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in gzip.decompress(data).splitlines() if line]


def test_token_endpoint_matches_readme(sandbox: Sandbox) -> None:
    resp = httpx.post(
        f"{sandbox.sitecore.url}/oauth/token",
        data={
            "client_id": API_KEY,
            "client_secret": API_SECRET,
            "grant_type": "client_credentials",
            "audience": AUDIENCE,
        },
    )
    assert resp.json()["expires_in"] == 86400
    jsonschema.validate(resp.json(), TOKEN_SCHEMA)
    bad = httpx.post(
        f"{sandbox.sitecore.url}/oauth/token",
        data={
            "client_id": API_KEY,
            "client_secret": "nope",
            "grant_type": "client_credentials",
            "audience": AUDIENCE,
        },
    )
    assert bad.status_code == 401
    wrong_grant = httpx.post(
        f"{sandbox.sitecore.url}/oauth/token",
        data={
            "client_id": API_KEY,
            "client_secret": API_SECRET,
            "grant_type": "password",
            "audience": AUDIENCE,
        },
    )
    assert wrong_grant.status_code == 400


def test_latest_export_listing_and_files_are_byte_identical(sandbox: Sandbox, api: httpx.Client) -> None:
    definition_ref = sandbox.sitecore.add_export("daily_loyalty_members", rows_per_file=400)
    execution_ref = sandbox.sitecore.add_job("daily_loyalty_members", rows=1000)
    for ref in ("daily_loyalty_members", definition_ref):
        resp = api.get(f"/v2/audienceExports/definitions/{ref}/latestExport")
        assert resp.status_code == 200, resp.text
        listing = resp.json()
        jsonschema.validate(listing, LISTING_SCHEMA)
        assert listing["executionRef"] == execution_ref
        assert listing["definitionRef"] == definition_ref
    expected = sandbox.sitecore.expected_files(execution_ref)
    assert [rows for *_, rows in expected] == [400, 400, 200]
    assert listing["numberOfFiles"] == 3
    assert listing["totalSizeKB"] == sum(e["sizeKB"] for e in listing["exports"])
    expire_at = dt.datetime.strptime(listing["expireAt"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=dt.timezone.utc
    )
    assert 3000 < (expire_at - dt.datetime.now(dt.timezone.utc)).total_seconds() <= 3600
    refs: set[str] = set()
    for entry, (name, size, sha256, rows) in zip(listing["exports"], expected, strict=True):
        assert urlsplit(entry["url"]).path.endswith("/" + name)
        assert "X-Amz-Signature=" in entry["url"]
        data = httpx.get(entry["url"]).content  # presigned: no Authorization header
        assert (len(data), hashlib.sha256(data).hexdigest()) == (size, sha256)
        guests = read_jsonl_gz(data)
        assert len(guests) == rows
        refs |= {g["ref"] for g in guests}
        assert sandbox.sitecore.file_path(execution_ref, name).read_bytes() == data  # what a check reads
    assert len(refs) == 1000


def test_sized_job_in_several_files(sandbox: Sandbox, api: httpx.Client) -> None:
    sandbox.sitecore.add_export("bench_many")
    target = 3 * 1024 * 1024
    one = sandbox.sitecore.add_job("bench_many", target_bytes=target)
    many = sandbox.sitecore.add_job("bench_many", target_bytes=target, target_files=3)
    assert [name for name, *_ in sandbox.sitecore.expected_files(one)] == ["part-00000.json.gz"]
    expected = sandbox.sitecore.expected_files(many)
    assert [name for name, *_ in expected] == [f"part-{i:05d}.json.gz" for i in range(3)]
    assert len({sha for _n, _s, sha, _r in expected}) == 3  # each file has bytes of its own
    listing = api.get(f"/v2/audienceExports/executions/{many}/export").json()
    jsonschema.validate(listing, LISTING_SCHEMA)
    assert listing["numberOfFiles"] == 3
    for entry, (_name, size, sha256, rows) in zip(listing["exports"], expected, strict=True):
        assert abs(size - target // 3) < target // 3 * 0.01
        data = httpx.get(entry["url"]).content
        assert (len(data), hashlib.sha256(data).hexdigest()) == (size, sha256)
        assert len(read_jsonl_gz(data)) == rows
    reports = api.get("/v2/audienceExports/definitions/bench_many/reports").json()
    [report] = [r for r in reports if r["executionRef"] == many]
    assert report["successes"] == sum(rows for *_, rows in expected)
    with pytest.raises(ValueError, match="target_files"):
        sandbox.sitecore.add_job("bench_many", target_bytes=target, target_files=0)


def test_presigned_url_rejects_a_bearer_header_like_s3(sandbox: Sandbox, api: httpx.Client) -> None:
    sandbox.sitecore.add_export("members")
    sandbox.sitecore.add_job("members", rows=10)
    url = api.get("/v2/audienceExports/definitions/members/latestExport").json()["exports"][0]["url"]
    resp = api.get(url)  # the client sends its Bearer token to the presigned URL
    assert resp.status_code == 400
    assert "<Code>InvalidArgument</Code>" in resp.text


def test_reports_show_pending_then_success(sandbox: Sandbox, api: httpx.Client) -> None:
    sandbox.sitecore.add_export("weekly_vip")
    execution_ref = sandbox.sitecore.add_job("weekly_vip", rows=50, pending_looks=1)
    reports = api.get("/v2/audienceExports/definitions/weekly_vip/reports").json()
    jsonschema.validate(reports, REPORTS_SCHEMA)
    assert reports[0]["status"] in PENDING_STATES
    assert reports[0]["endTime"] is None
    assert api.get("/v2/audienceExports/definitions/weekly_vip/latestExport").status_code == 404
    assert api.get(f"/v2/audienceExports/executions/{execution_ref}/export").status_code == 404
    reports = api.get("/v2/audienceExports/definitions/weekly_vip/reports").json()
    jsonschema.validate(reports, REPORTS_SCHEMA)
    assert reports[0]["status"] == "SUCCESS"
    assert reports[0]["successes"] == 50
    listing = api.get(f"/v2/audienceExports/executions/{execution_ref}/export").json()
    jsonschema.validate(listing, LISTING_SCHEMA)


def test_latest_export_is_the_most_recent_success(sandbox: Sandbox, api: httpx.Client) -> None:
    sandbox.sitecore.add_export("daily")
    now = dt.datetime.now(dt.timezone.utc)
    newest_ok = sandbox.sitecore.add_job("daily", rows=5, end_time=now - dt.timedelta(hours=1))
    sandbox.sitecore.add_job("daily", rows=5, end_time=now - dt.timedelta(days=1))
    failed = sandbox.sitecore.add_job("daily", status="FAILED", error_logs=["EMR step failed"])
    sandbox.sitecore.add_job("daily", rows=5, pending_seconds=60)
    assert api.get("/v2/audienceExports/definitions/daily/latestExport").json()["executionRef"] == newest_ok
    reports = api.get("/v2/audienceExports/definitions/daily/reports").json()
    jsonschema.validate(reports, REPORTS_SCHEMA)
    assert len(reports) == 4
    failed_report = next(r for r in reports if r["executionRef"] == failed)
    assert failed_report["status"] == "FAILED"
    assert failed_report["errorLogs"] == ["EMR step failed"]
    assert api.get(f"/v2/audienceExports/executions/{failed}/export").status_code == 404


def test_delta_export_has_added_and_removed_files(sandbox: Sandbox, api: httpx.Client) -> None:
    sandbox.sitecore.add_export("delta_members", definition_type="DELTA")
    execution_ref = sandbox.sitecore.add_job("delta_members", rows=100)
    names = [name for name, *_ in sandbox.sitecore.expected_files(execution_ref)]
    assert any("added" in n for n in names)
    assert any("removed" in n for n in names)
    report = api.get("/v2/audienceExports/definitions/delta_members/reports").json()[0]
    assert report["definitionType"] == "DELTA"
    assert (report["successAdd"], report["successRemove"]) == (80, 20)


def test_unknown_refs_and_missing_token(sandbox: Sandbox, api: httpx.Client) -> None:
    assert api.get("/v2/audienceExports/definitions/nope/latestExport").status_code == 404
    assert (
        api.get("/v2/audienceExports/executions/00000000-0000-0000-0000-000000000000/export").status_code
        == 404
    )
    sandbox.sitecore.add_export("x")
    resp = httpx.get(f"{sandbox.sitecore.url}/v2/audienceExports/definitions/x/reports")
    assert resp.status_code == 401
    assert resp.json()["status"] == 401


def test_token_expires_after_its_lifetime(sandbox: Sandbox) -> None:
    sandbox.sitecore.token_ttl_seconds = 3  # room for a slow first request on a busy machine
    sandbox.sitecore.add_export("x")
    headers = {"Authorization": f"Bearer {token(sandbox)}"}
    url = f"{sandbox.sitecore.url}/v2/audienceExports/definitions/x/reports"
    assert httpx.get(url, headers=headers).status_code == 200
    time.sleep(3.05)
    assert httpx.get(url, headers=headers).status_code == 401


def test_sized_job_makes_one_big_file(sandbox: Sandbox) -> None:
    sandbox.sitecore.add_export("bench")
    target = 64 * 1024 * 1024
    execution_ref = sandbox.sitecore.add_job("bench", target_bytes=target)
    [(name, size, _sha, rows)] = sandbox.sitecore.expected_files(execution_ref)
    assert abs(size - target) < target * 0.01
    assert rows > 100_000
    assert name.endswith(".json.gz")


# -- sandbox control: publish a job on demand --------------------------------------------------


def test_publish_job_over_http_gives_a_job_finished_now(sandbox: Sandbox, api: httpx.Client) -> None:
    sandbox.sitecore.add_export("daily_loyalty_members")
    before = dt.datetime.now(dt.timezone.utc)
    body = {"export": "daily_loyalty_members", "rows": 7}
    answer = httpx.post(f"{sandbox.sitecore.url}/_sandbox/jobs", json=body)
    assert answer.status_code == 201, answer.text
    published = answer.json()
    ended = dt.datetime.fromisoformat(published["endTime"].replace("Z", "+00:00"))
    assert before - dt.timedelta(milliseconds=1) <= ended <= dt.datetime.now(dt.timezone.utc)
    # the API's answer: the export's newest finished job, with the rows asked for
    latest = api.get("/v2/audienceExports/definitions/daily_loyalty_members/latestExport").json()
    assert latest["executionRef"] == published["executionRef"]
    ((_name, _size, _sha, rows),) = sandbox.sitecore.expected_files(published["executionRef"])
    assert rows == 7


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ({"export": "nightly"}, "export: 'nightly' is not defined here; defined: daily_loyalty_members"),
        ({}, "export: '' is not defined here"),
        ({"export": "daily_loyalty_members", "rows": 0}, "rows: 0 is not a positive number"),
        ({"export": "daily_loyalty_members", "rows": "many"}, "invalid literal"),
        (["daily_loyalty_members"], "the body is a JSON object"),
    ],
)
def test_publish_job_refuses_what_it_cannot_publish(sandbox: Sandbox, body: Any, problem: str) -> None:
    sandbox.sitecore.add_export("daily_loyalty_members")
    answer = httpx.post(f"{sandbox.sitecore.url}/_sandbox/jobs", json=body)
    assert answer.status_code == 400 and problem in answer.json()["error"]
    assert sandbox.sitecore._jobs == {}
