"""The Adobe Experience Platform sandbox speaks AEP as Adobe documents it.

Real HTTP against a started :class:`AdobeAEPServer`; success responses are validated against
Adobe's OpenAPI documents (``adobe-aep/`` of the vendor specs directory, see
``airflow_provider_exports_sandbox.specs``) as if they had come from
``https://platform.adobe.io``; error bodies are checked against Adobe's troubleshooting guide.
"""

from __future__ import annotations

import hashlib
import io
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from airflow_provider_exports_sandbox.adobe import (
    AEP_SCOPES,
    CATALOG_BASE,
    CLIENT_ID,
    CLIENT_SECRET,
    DATA_ACCESS_BASE,
    DEFAULT_DATASET_ID,
    EXPORT_BASE,
    AdobeAEPServer,
)

PLATFORM = "https://platform.adobe.io"
SCOPE = ",".join(AEP_SCOPES)
UNION = "https://ns.adobe.com/xdm/context/profile__union"
JOB_BODY = {"destination": {"datasetId": DEFAULT_DATASET_ID}, "schema": {"name": "_xdm.context.profile"}}


# -- OpenAPI validation ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def specs() -> dict[str, Any]:
    """Adobe's documents through the sandbox's one loader (the one its request check uses)."""
    from airflow_provider_exports_sandbox import specs as vendor_specs

    loaded = {}
    for service, relative in vendor_specs.ADOBE_SPECS.items():
        path = vendor_specs.spec_file(relative)
        if path is None:
            pytest.skip(vendor_specs.missing_reason(relative))
        loaded[service] = vendor_specs.load_adobe_api(service, path)
    return loaded


@dataclass
class _OpenAPIResponse:
    status_code: int
    content_type: str
    headers: Any
    data: bytes | None


def assert_valid(api: Any, response: httpx.Response, *, headers_only: bool = False) -> None:
    """Validate a sandbox response as if it came from https://platform.adobe.io.

    ``headers_only`` is for answers whose body the spec does not describe: HEAD, and the 206
    of a file download (``content: {}`` -- openapi-core would reject any media type there).
    """
    from werkzeug.datastructures import Headers

    from airflow_provider_exports_sandbox.specs import OpenAPIRequest

    req = response.request
    url = urlsplit(str(req.url))
    oa_request = OpenAPIRequest(PLATFORM, url.path, req.method, parse_qs(url.query), req.headers, req.content or None)
    oa_response = _OpenAPIResponse(
        response.status_code,
        response.headers.get("content-type", ""),
        Headers(dict(response.headers)),
        response.content,
    )
    if headers_only:
        from openapi_core.validation.response import V30ResponseHeadersValidator

        V30ResponseHeadersValidator(api.spec).validate(oa_request, oa_response)
    else:
        api.validate_response(oa_request, oa_response)


def assert_headers_declared(api: Any, path: str, method: str, response: httpx.Response) -> None:
    """Every header the spec declares for this response is present (openapi-core insists on a
    body for a declared ``content``, which a HEAD answer never has)."""
    declared = api.spec / "paths" / path / method / "responses" / str(response.status_code) / "headers"
    # A SchemaPath iterates over child paths, not names: .keys() is needed.
    missing = {name for name in declared.keys() if name.lower() not in response.headers}  # noqa: SIM118
    assert not missing, missing


# -- fixtures -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def aep_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AdobeAEPServer]:
    server = AdobeAEPServer(tmp_path_factory.mktemp("aep-cache"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def aep(aep_server: AdobeAEPServer) -> AdobeAEPServer:
    aep_server.reset()
    aep_server.job_seconds = 0.2
    aep_server.default_rows = 200
    return aep_server


@pytest.fixture
def http(aep: AdobeAEPServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=aep.url, timeout=30) as client:
        yield client


def _token(http: httpx.Client) -> str:
    r = http.post(
        "/ims/token/v3",
        data={
            "grant_type": "client_credentials",
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "scope": SCOPE,
        },
    )
    assert r.status_code == 200, r.text
    token: str = r.json()["access_token"]
    return token


@pytest.fixture
def headers(aep: AdobeAEPServer, http: httpx.Client) -> dict[str, str]:
    return {
        "Authorization": f"Bearer {_token(http)}",
        "x-api-key": CLIENT_ID,
        "x-gw-ims-org-id": aep.ims_org_id,
        "x-sandbox-name": "prod",
    }


def _create_job(http: httpx.Client, headers: dict[str, str], **body: Any) -> dict[str, Any]:
    r = http.post(f"{EXPORT_BASE}/export/jobs", headers=headers, json={**JOB_BODY, **body})
    assert r.status_code == 200, r.text
    job: dict[str, Any] = r.json()
    return job


def _wait_terminal(http: httpx.Client, headers: dict[str, str], job_id: int) -> httpx.Response:
    deadline = time.monotonic() + 10
    while True:
        r = http.get(f"{EXPORT_BASE}/export/jobs/{job_id}", headers=headers)
        if r.json()["status"] in ("SUCCEEDED", "FAILED") or time.monotonic() > deadline:
            return r
        time.sleep(0.05)


# -- spec plumbing --------------------------------------------------------------------------------
def test_spec_servers_are_the_sandbox_bases(specs: dict[str, Any]) -> None:
    bases = {"export": EXPORT_BASE, "catalog": CATALOG_BASE, "data_access": DATA_ACCESS_BASE}
    for name, api in specs.items():
        urls = [s["url"] for s in api.spec / "servers"]
        assert any(urlsplit(u.replace("{environment}", "platform")).path == bases[name] for u in urls), urls


# -- IMS ------------------------------------------------------------------------------------------
def test_ims_token(http: httpx.Client, aep: AdobeAEPServer) -> None:
    r = http.post(
        "/ims/token/v3",
        data={
            "grant_type": "client_credentials",
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "scope": SCOPE,
        },
    )
    assert r.status_code == 200
    body = r.json()
    assert set(body) == {"access_token", "token_type", "expires_in"}
    assert body["token_type"] == "bearer" and body["expires_in"] == 86399
    assert aep.tokens.is_valid(body["access_token"])
    # A-IMS: parameters may also be sent in the query string.
    q = http.post(
        "/ims/token/v3",
        params={
            "grant_type": "client_credentials",
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "scope": "openid,AdobeID",
        },
    )
    assert q.status_code == 200


@pytest.mark.parametrize(
    ("change", "status", "error"),
    [
        ({"scope": None}, 400, "invalid_request"),
        ({"client_id": None}, 400, "invalid_request"),
        ({"grant_type": "password"}, 400, "unsupported_grant_type"),
        ({"client_secret": "wrong"}, 401, "invalid_client"),
        ({"client_id": "someone-else"}, 401, "invalid_client"),
        ({"scope": "openid,write_everything"}, 400, "invalid_scope"),
    ],
)
def test_ims_errors(http: httpx.Client, change: dict[str, Any], status: int, error: str) -> None:
    form = {
        "grant_type": "client_credentials",
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "scope": SCOPE,
    }
    form.update(change)
    r = http.post("/ims/token/v3", data={k: v for k, v in form.items() if v is not None})
    assert r.status_code == status
    assert r.json()["error"] == error and r.json()["error_description"]


# -- gateway --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("change", "status", "body"),
    [
        ({"Authorization": None}, 403, {"error_code": "403010", "message": "Oauth token is missing."}),
        (
            {"Authorization": "Bearer nope"},
            401,
            {"error_code": "401013", "message": "Oauth token is not valid"},
        ),
        ({"x-api-key": None}, 403, {"error_code": "403000", "message": "Api Key is required"}),
        ({"x-api-key": "other-client"}, 403, {"error_code": "403003", "message": "Api Key is invalid"}),
        ({"x-gw-ims-org-id": None}, 400, {"error_code": "400003", "message": "Missing header"}),
        (
            {"x-gw-ims-org-id": "OTHER@AdobeOrg"},
            403,
            {"error_code": "403025", "message": "Profile is not valid"},
        ),
        ({"x-sandbox-name": None}, 400, {"error_code": "400003", "message": "Missing header"}),
    ],
)
@pytest.mark.parametrize(
    "path",
    [
        f"{EXPORT_BASE}/export/jobs",
        f"{CATALOG_BASE}/dataSets/{DEFAULT_DATASET_ID}",
        f"{DATA_ACCESS_BASE}/batches/any/files",
    ],
)
def test_gateway_header_errors(
    http: httpx.Client, headers: dict[str, str], path: str, change: dict[str, Any], status: int, body: Any
) -> None:
    sent = {**headers, **change}
    r = http.get(path, headers={k: v for k, v in sent.items() if v is not None})
    assert (r.status_code, r.json()) == (status, body)


def test_post_needs_json_content_type(http: httpx.Client, headers: dict[str, str]) -> None:
    r = http.post(
        f"{EXPORT_BASE}/export/jobs", headers={**headers, "Content-Type": "text/plain"}, content=b"{}"
    )
    assert r.status_code == 400
    assert r.json() == {
        "type": "/placeholder/type/uri",
        "status": 400,
        "title": "BadRequestError",
        "detail": "A valid content-type must be specified",
    }


def test_expired_tokens_get_401013(aep: AdobeAEPServer, http: httpx.Client, headers: dict[str, str]) -> None:
    path = f"{EXPORT_BASE}/export/jobs"
    assert http.get(path, headers=headers).status_code == 200
    aep.faults.expire_tokens()
    r = http.get(path, headers=headers)
    assert (r.status_code, r.json()["error_code"]) == (401, "401013")
    fresh = {**headers, "Authorization": f"Bearer {_token(http)}"}
    assert http.get(path, headers=fresh).status_code == 200


def test_rate_limit_and_server_error_bodies(
    aep: AdobeAEPServer, http: httpx.Client, headers: dict[str, str]
) -> None:
    path = f"{EXPORT_BASE}/export/jobs"
    aep.faults.rate_limit(path, retry_after="2")
    r = http.get(path, headers=headers)
    assert r.status_code == 429 and r.headers["Retry-After"] == "2"
    assert r.json() == {"error_code": "429050", "message": "Too many requests"}
    aep.faults.server_error(path, status=503)
    r = http.get(path, headers=headers)
    assert r.status_code == 503 and r.json()["status"] == 503
    assert http.get(path, headers=headers).status_code == 200


# -- Catalog --------------------------------------------------------------------------------------
def test_create_and_look_up_dataset(
    aep: AdobeAEPServer, http: httpx.Client, headers: dict[str, str], specs: dict[str, Any]
) -> None:
    r = http.post(
        f"{CATALOG_BASE}/dataSets",
        headers=headers,
        json={
            "name": "Profile Data Export",
            "schemaRef": {"id": UNION, "contentType": "application/vnd.adobe.xed+json;version=1"},
        },
    )
    assert r.status_code == 201
    assert_valid(specs["catalog"], r)
    (ref,) = r.json()
    assert ref.startswith("@/dataSets/")
    dataset_id = ref.rsplit("/", 1)[1]
    assert r.headers["Location"] == f"{aep.url}{CATALOG_BASE}/dataSets/{dataset_id}"

    got = http.get(f"{CATALOG_BASE}/dataSets/{dataset_id}", headers=headers)
    assert got.status_code == 200
    assert_valid(specs["catalog"], got)
    assert got.json()[dataset_id]["schemaRef"]["id"] == UNION
    missing = http.get(f"{CATALOG_BASE}/dataSets/000000000000000000000000", headers=headers)
    assert missing.status_code == 404


# -- export jobs ----------------------------------------------------------------------------------
def test_job_progresses_new_processing_succeeded(
    aep: AdobeAEPServer, http: httpx.Client, headers: dict[str, str], specs: dict[str, Any]
) -> None:
    aep.job_seconds = 0.3
    r = http.post(
        f"{EXPORT_BASE}/export/jobs",
        headers={**headers, "x-profile-instance-id": "ups"},
        json={
            **JOB_BODY,
            "fields": "identities.id,personalEmail.address",
            "filter": {"segments": [{"segmentId": "seg-a", "segmentNs": "ups", "status": ["realized"]}]},
        },
    )
    assert r.status_code == 200
    assert_valid(specs["export"], r)
    job = r.json()
    assert job["status"] == "NEW" and isinstance(job["id"], int)
    assert r.headers["X-Location"].endswith(f"{EXPORT_BASE}/export/jobs/{job['id']}")
    batch_id = job["destination"]["batchId"]
    assert batch_id and job["destination"]["datasetId"] == DEFAULT_DATASET_ID
    assert job["creationTime"] > 10**12  # epoch milliseconds, as in every Adobe example

    batch = http.get(f"{CATALOG_BASE}/batches/{batch_id}", headers=headers)
    assert_valid(specs["catalog"], batch)
    assert batch.json()[batch_id]["status"] == "processing"

    seen = []
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        g = http.get(f"{EXPORT_BASE}/export/jobs/{job['id']}", headers=headers)
        assert_valid(specs["export"], g)
        if not seen or seen[-1] != g.json()["status"]:
            seen.append(g.json()["status"])
        if seen[-1] == "SUCCEEDED":
            break
        time.sleep(0.03)
    assert seen == ["NEW", "PROCESSING", "SUCCEEDED"]
    done = g.json()
    assert done["metrics"]["totalExportedProfileCounter"] == 200
    assert done["metrics"]["totalTime"]["totalTimeInMs"] >= 600
    assert done["updateTime"] > done["creationTime"]
    assert done["computeGatewayJobId"]["exportJob"]

    batch = http.get(f"{CATALOG_BASE}/batches/{batch_id}", headers=headers)
    assert_valid(specs["catalog"], batch)
    b = batch.json()[batch_id]
    assert b["status"] == "success" and b["metrics"]["recordsWritten"] == 200
    assert {"type": "dataSet", "id": DEFAULT_DATASET_ID} in b["relatedObjects"]


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"schema": {"name": "_xdm.context.profile"}}, "destination.datasetId"),
        ({"destination": {"datasetId": DEFAULT_DATASET_ID}}, "schema.name"),
        ({**JOB_BODY, "filter": {"segments": [{"segmentNs": "ups"}]}}, "segmentId"),
        ({**JOB_BODY, "destination": {"datasetId": "ffffffffffffffffffffffff"}}, "does not exist"),
    ],
)
def test_create_job_rejects_bad_requests(
    http: httpx.Client, headers: dict[str, str], body: dict[str, Any], needle: str
) -> None:
    r = http.post(f"{EXPORT_BASE}/export/jobs", headers=headers, json=body)
    assert r.status_code == 400
    err = r.json()
    assert err["status"] == 400 and needle in err["title"]
    assert err["errors"]["400"][0]["message"] == err["title"]


def test_failing_segment_fails_the_job(
    aep: AdobeAEPServer, http: httpx.Client, headers: dict[str, str], specs: dict[str, Any]
) -> None:
    aep.failing_segments = {"seg-broken"}
    job = _create_job(http, headers, filter={"segments": [{"segmentId": "seg-broken"}]})
    batch_id = job["destination"]["batchId"]
    r = _wait_terminal(http, headers, job["id"])
    assert_valid(specs["export"], r)
    failed = r.json()
    assert failed["status"] == "FAILED"
    assert failed["destination"]["batchId"] == ""
    assert failed["errors"] and {"code", "msg", "callStack"} <= set(failed["errors"][0])
    batch = http.get(f"{CATALOG_BASE}/batches/{batch_id}", headers=headers)
    assert_valid(specs["catalog"], batch)
    assert batch.json()[batch_id]["status"] == "failure"
    files = http.get(f"{DATA_ACCESS_BASE}/batches/{batch_id}/files", headers=headers)
    assert files.status_code == 200 and files.json()["data"] == []


def test_segment_per_batch(
    aep: AdobeAEPServer, http: httpx.Client, headers: dict[str, str], specs: dict[str, Any]
) -> None:
    aep.segment_rows = {"seg-b": 50}
    job = _create_job(
        http,
        headers,
        destination={"datasetId": DEFAULT_DATASET_ID, "segmentPerBatch": True},
        filter={"segments": [{"segmentId": "seg-a"}, {"segmentId": "seg-b", "status": ["exited"]}]},
    )
    r = _wait_terminal(http, headers, job["id"])
    assert_valid(specs["export"], r)
    done = r.json()
    batches = done["destination"]["batches"]
    assert [b["segmentId"] for b in batches] == ["seg-a", "seg-b"]
    assert batches[1]["status"] == ["exited"]
    assert len({b["batchId"] for b in batches}) == 2
    assert done["metrics"]["totalExportedProfileCounter"] == 250
    rows = [sum(f[4] for f in aep.expected_files(b["batchId"])) for b in batches]
    assert rows == [200, 50]


def test_list_jobs_pages_with_link_next(
    aep: AdobeAEPServer, http: httpx.Client, headers: dict[str, str], specs: dict[str, Any]
) -> None:
    created = []
    for _ in range(5):
        created.append(_create_job(http, headers)["id"])
        time.sleep(0.002)  # distinct creation times keep the expected order obvious
    seen: list[int] = []
    url = f"{EXPORT_BASE}/export/jobs?limit=2"
    pages = 0
    while True:
        r = http.get(url, headers=headers)
        assert r.status_code == 200
        assert_valid(specs["export"], r)
        body = r.json()
        pages += 1
        seen += [rec["id"] for rec in body["records"]]
        assert body["page"]["pageSize"] == len(body["records"])
        assert (
            body["page"]["pageOffset"] == f"{body['records'][-1]['creationTime']}_{body['records'][-1]['id']}"
        )
        if not body["link"]["next"]:
            break
        # link.next is relative to the service base, like "/export/jobs/?limit=2&offset=...".
        assert body["link"]["next"].startswith("/export/jobs/?")
        url = EXPORT_BASE + body["link"]["next"]
    assert pages == 3
    assert seen == sorted(created, reverse=True)

    new_only = http.get(f"{EXPORT_BASE}/export/jobs", params={"status": "NEW"}, headers=headers).json()
    assert {rec["status"] for rec in new_only["records"]} == {"NEW"}
    bad = http.get(f"{EXPORT_BASE}/export/jobs", params={"status": "DONE"}, headers=headers)
    assert bad.status_code == 400


@pytest.mark.parametrize(
    ("style", "status", "body"),
    [
        ("200-body", 200, {"status": True, "message": "Export job has been marked for cancelling"}),
        # A 204 cannot carry the body the Segmentation guide shows; only its Content-Type says JSON.
        ("204-body", 204, None),
        ("204-empty", 204, None),
    ],
)
def test_delete_cancels_in_every_documented_form(
    aep: AdobeAEPServer,
    http: httpx.Client,
    headers: dict[str, str],
    specs: dict[str, Any],
    style: str,
    status: int,
    body: Any,
) -> None:
    aep.job_seconds = 5
    aep.delete_style = style  # type: ignore[assignment]
    job = _create_job(http, headers)
    r = http.delete(f"{EXPORT_BASE}/export/jobs/{job['id']}", headers=headers)
    assert r.status_code == status
    if body is None:
        assert r.content == b""
    else:
        assert r.json() == body
    if style == "204-body":
        assert r.headers["Content-Type"] == "application/json"
    if style == "200-body":
        assert_valid(specs["export"], r)
    cancelled = http.get(f"{EXPORT_BASE}/export/jobs/{job['id']}", headers=headers).json()
    assert cancelled["status"] == "FAILED" and cancelled["errors"]
    assert aep.job_ids() == [int(job["id"])] and aep.job_cancelled(int(job["id"]))


def test_delete_finished_job_and_unknown_ids(
    aep: AdobeAEPServer, http: httpx.Client, headers: dict[str, str]
) -> None:
    job = _create_job(http, headers)
    _wait_terminal(http, headers, job["id"])
    assert not aep.job_cancelled(int(job["id"]))
    assert http.delete(f"{EXPORT_BASE}/export/jobs/{job['id']}", headers=headers).status_code == 200
    gone = http.get(f"{EXPORT_BASE}/export/jobs/{job['id']}", headers=headers)
    assert gone.status_code == 404 and gone.json()["status"] == 404
    assert http.delete(f"{EXPORT_BASE}/export/jobs/999999", headers=headers).status_code == 404
    assert http.get(f"{CATALOG_BASE}/batches/nope", headers=headers).status_code == 404
    assert http.get(f"{DATA_ACCESS_BASE}/batches/nope/files", headers=headers).status_code == 404
    assert http.get(f"{DATA_ACCESS_BASE}/files/nope", headers=headers).status_code == 404


# -- Data Access ----------------------------------------------------------------------------------
def test_batch_files_not_listed_before_success(
    aep: AdobeAEPServer, http: httpx.Client, headers: dict[str, str]
) -> None:
    aep.job_seconds = 5
    job = _create_job(http, headers)
    batch_id = job["destination"]["batchId"]
    r = http.get(f"{DATA_ACCESS_BASE}/batches/{batch_id}/files", headers=headers)
    assert r.status_code == 200 and r.json()["data"] == [] and r.json()["_page"]["count"] == 0
    file_id = f"{aep.expected_files(batch_id)[0][0]}"
    assert http.get(f"{DATA_ACCESS_BASE}/files/{file_id}", headers=headers).status_code == 404


def test_batch_files_paging_over_100(
    aep: AdobeAEPServer, http: httpx.Client, headers: dict[str, str], specs: dict[str, Any]
) -> None:
    aep.default_rows = 230
    aep.rows_per_file = 1
    job = _create_job(http, headers)
    batch_id = job["destination"]["batchId"]
    assert _wait_terminal(http, headers, job["id"]).json()["status"] == "SUCCEEDED"

    ids: list[str] = []
    url = f"{aep.url}{DATA_ACCESS_BASE}/batches/{batch_id}/files?limit=500"  # capped at 100
    sizes = []
    while url:
        r = http.get(url, headers=headers)
        assert_valid(specs["data_access"], r)
        body = r.json()
        assert body["_page"] == {"limit": 100, "count": 230}
        sizes.append(len(body["data"]))
        ids += [d["dataSetFileId"] for d in body["data"]]
        url = body["_links"].get("next", {}).get("href")
    assert sizes == [100, 100, 30]
    expected = aep.expected_files(batch_id)
    assert ids == [f[0] for f in expected] and len(set(ids)) == 230

    small = http.get(
        f"{DATA_ACCESS_BASE}/batches/{batch_id}/files", params={"start": 5, "limit": 7}, headers=headers
    ).json()
    assert [d["dataSetFileId"] for d in small["data"]] == ids[5:12]
    assert parse_qs(urlsplit(small["_links"]["next"]["href"]).query) == {"start": ["12"], "limit": ["7"]}
    first = small["data"][0]
    assert first["records"] == "1" and first["isValid"] is True
    assert first["_links"]["self"]["href"] == f"{aep.url}{DATA_ACCESS_BASE}/files/{first['dataSetFileId']}"


def test_file_directory_head_range_and_parquet(
    aep: AdobeAEPServer, http: httpx.Client, headers: dict[str, str], specs: dict[str, Any]
) -> None:
    import pyarrow.parquet as pq

    aep.default_rows = 3000
    aep.files_per_batch = 1
    aep.parts_per_file = 2
    aep.row_group_rows = 500
    job = _create_job(
        http,
        headers,
        fields="identities.id,personalEmail.address,segmentMembership",
        filter={"segments": [{"segmentId": "seg-vip", "segmentNs": "ups"}]},
    )
    batch_id = job["destination"]["batchId"]
    _wait_terminal(http, headers, job["id"])
    listing = http.get(f"{DATA_ACCESS_BASE}/batches/{batch_id}/files", headers=headers).json()
    (entry,) = listing["data"]
    assert entry["records"] == "3000"

    d = http.get(entry["_links"]["self"]["href"], headers=headers)
    assert_valid(specs["data_access"], d)
    parts = d.json()["data"]
    assert len(parts) == 2 and d.json()["_page"]["count"] == 2
    expected = {name: (size, sha, rows) for _, name, size, sha, rows in aep.expected_files(batch_id)}
    assert int(entry["size"]) == sum(v[0] for v in expected.values())
    paths = aep.file_paths(batch_id)  # the files a check reads the rows from
    assert {n: hashlib.sha256(p.read_bytes()).hexdigest() for n, p in paths.items()} == {
        n: v[1] for n, v in expected.items()
    }
    for part in parts:
        name = part["name"]
        assert name.startswith("part-") and name.endswith(".c000.snappy.parquet")
        assert part["_links"]["self"]["href"].endswith(f"?path={name}")
        size, sha, rows = expected[name]
        assert part["length"] == str(size)
        href = part["_links"]["self"]["href"]

        head = http.head(href, headers=headers)
        assert_valid(specs["data_access"], head, headers_only=True)
        assert_headers_declared(specs["data_access"], "/files/{dataSetFileId}", "head", head)
        assert head.headers["Content-Length"] == str(size) and head.headers["Accept-Ranges"] == "bytes"

        ranged = http.get(href, headers={**headers, "Range": "bytes=0-99"})
        assert ranged.status_code == 206
        assert_valid(specs["data_access"], ranged, headers_only=True)
        assert_headers_declared(specs["data_access"], "/files/{dataSetFileId}", "get", ranged)
        assert ranged.headers["Content-Range"] == f"bytes 0-99/{size}"
        assert ranged.headers["Content-Type"] == "application/octet-stream"
        assert ranged.content[:4] == b"PAR1"
        tail = http.get(href, headers={**headers, "Range": "bytes=-8"})
        assert tail.status_code == 206 and tail.content[-4:] == b"PAR1"

        full = http.get(href, headers=headers)
        assert full.status_code == 200 and hashlib.sha256(full.content).hexdigest() == sha
        table = pq.read_table(io.BytesIO(full.content))
        assert table.num_rows == rows == 1500
        assert table.column_names == ["identities", "personalEmail", "segmentMembership"]
        row = table.slice(0, 1).to_pylist()[0]
        assert row["personalEmail"]["address"].endswith("@example.com")
        assert dict(dict(row["segmentMembership"])["ups"])["seg-vip"]["status"] in ("realized", "existing")
        assert pq.ParquetFile(io.BytesIO(full.content)).metadata.num_row_groups == 3

    assert (
        http.get(f"{entry['_links']['self']['href']}?path=nope.parquet", headers=headers).status_code == 404
    )


def test_dropped_download_resumes_with_range(
    aep: AdobeAEPServer, http: httpx.Client, headers: dict[str, str]
) -> None:
    aep.files_per_batch = 1
    job = _create_job(http, headers)
    _wait_terminal(http, headers, job["id"])
    ((file_id, name, size, sha, _),) = aep.expected_files(job["destination"]["batchId"])
    href = f"{DATA_ACCESS_BASE}/files/{file_id}?path={name}"
    aep.faults.drop_connection(f"{DATA_ACCESS_BASE}/files/*", after_bytes=1000)
    got = bytearray()
    with pytest.raises(httpx.RemoteProtocolError), http.stream("GET", href, headers=headers) as r:
        assert r.headers["Content-Length"] == str(size)
        for chunk in r.iter_raw():
            got += chunk
    assert len(got) == 1000
    rest = http.get(href, headers={**headers, "Range": f"bytes={len(got)}-"})
    assert rest.status_code == 206 and rest.headers["Content-Range"] == f"bytes 1000-{size - 1}/{size}"
    assert hashlib.sha256(bytes(got) + rest.content).hexdigest() == sha


def test_files_are_deterministic_across_jobs(
    aep: AdobeAEPServer, http: httpx.Client, headers: dict[str, str]
) -> None:
    first = _create_job(http, headers)
    second = _create_job(http, headers)
    a = aep.expected_files(first["destination"]["batchId"])
    b = aep.expected_files(second["destination"]["batchId"])
    assert [(f[2], f[3], f[4]) for f in a] == [(f[2], f[3], f[4]) for f in b]
    assert {f[0] for f in a}.isdisjoint({f[0] for f in b})


def test_connection(aep: AdobeAEPServer) -> None:
    conn = aep.connection()
    assert conn == {
        "conn_type": "adobe_aep",
        "login": "sandbox-aep-client",
        "password": "sandbox-aep-secret",
        "extra": {
            "ims_org_id": aep.ims_org_id,
            "sandbox_name": "prod",
            "ims_host": aep.url,
            "platform_host": aep.url,
        },
    }
    assert conn["extra"]["ims_org_id"].endswith("@AdobeOrg")


# -- what the AEP flow added: dataset lists, directory entries, spellings, lagging batches ------------
def test_list_datasets_filters_by_property_and_pages(
    aep: AdobeAEPServer, http: httpx.Client, headers: dict[str, str], specs: dict[str, Any]
) -> None:
    ids = []
    for name in ("exports", "exports", "other"):
        r = http.post(f"{CATALOG_BASE}/dataSets", headers=headers, json={"name": name, "schemaRef": {"id": UNION}})
        ids.append(r.json()[0].rsplit("/", 1)[1])
    r = http.get(
        f"{CATALOG_BASE}/dataSets",
        headers=headers,
        params={"property": "name==exports", "orderBy": "asc:created", "properties": "name,schemaRef", "limit": 100},
    )
    assert_valid(specs["catalog"], r)
    body = r.json()
    assert list(body) == ids[:2] and all(set(v) == {"name", "schemaRef"} for v in body.values())
    assert list(http.get(f"{CATALOG_BASE}/dataSets", headers=headers, params={"name": "other"}).json()) == [ids[2]]
    page = http.get(f"{CATALOG_BASE}/dataSets", headers=headers, params={"start": 1, "limit": 2}).json()
    assert len(page) == 2  # the default dataset and three new ones: 4 in all
    bad = http.get(f"{CATALOG_BASE}/dataSets", headers=headers, params={"property": "name~x"})
    assert bad.status_code == 400


def test_directory_entries_lead_to_the_parts(
    aep: AdobeAEPServer, http: httpx.Client, headers: dict[str, str], specs: dict[str, Any]
) -> None:
    aep.directory_depth = 2
    aep.files_per_batch = 1
    job = _create_job(http, headers)
    _wait_terminal(http, headers, job["id"])
    ((file_id, name, size, _sha, _rows),) = aep.expected_files(job["destination"]["batchId"])
    r = http.get(f"{DATA_ACCESS_BASE}/files/{file_id}", headers=headers)
    assert_valid(specs["data_access"], r)
    (entry,) = r.json()["data"]
    assert entry["dataSetFileId"] == f"{file_id}~d1"
    assert entry["_links"]["self"]["href"] == f"{aep.url}{DATA_ACCESS_BASE}/files/{file_id}~d1"
    (entry,) = http.get(entry["_links"]["self"]["href"], headers=headers).json()["data"]
    assert entry["dataSetFileId"] == f"{file_id}~d2"
    (part,) = http.get(f"{DATA_ACCESS_BASE}/files/{file_id}~d2", headers=headers).json()["data"]
    assert part["name"] == name and part["length"] == str(size)
    got = http.get(f"{DATA_ACCESS_BASE}/files/{file_id}~d2", params={"path": name}, headers=headers)
    assert got.status_code == 200 and len(got.content) == size
    # a file is only under the last level
    assert http.get(f"{DATA_ACCESS_BASE}/files/{file_id}", params={"path": name}, headers=headers).status_code == 404
    assert http.get(f"{DATA_ACCESS_BASE}/files/{file_id}~d3", headers=headers).status_code == 404


def test_the_dataset_id_spelling_of_some_examples(
    aep: AdobeAEPServer, http: httpx.Client, headers: dict[str, str], specs: dict[str, Any]
) -> None:
    aep.dataset_id_key = "dataSetId"
    job = _create_job(http, headers)
    r = http.get(f"{EXPORT_BASE}/export/jobs/{job['id']}", headers=headers)
    assert_valid(specs["export"], r)
    assert r.json()["destination"]["dataSetId"] == DEFAULT_DATASET_ID and "datasetId" not in r.json()["destination"]


def test_a_batch_can_lag_its_job_for_a_counted_number_of_looks(
    aep: AdobeAEPServer, http: httpx.Client, headers: dict[str, str], specs: dict[str, Any]
) -> None:
    aep.batch_pending_looks = 2
    job = _create_job(http, headers)
    assert _wait_terminal(http, headers, job["id"]).json()["status"] == "SUCCEEDED"
    batch_id = job["destination"]["batchId"]
    looks = [http.get(f"{CATALOG_BASE}/batches/{batch_id}", headers=headers) for _ in range(3)]
    for r in looks:
        assert_valid(specs["catalog"], r)
    assert [r.json()[batch_id]["status"] for r in looks] == ["processing", "processing", "success"]


# -- the sandbox judges every Platform request by Adobe's documents (airflow_provider_exports_sandbox.specs)
SEED_FILE_DESCRIPTION = {"persisted": True, "containerFormat": "parquet", "format": "parquet"}


def test_a_dataset_as_the_seed_creates_it(
    aep: AdobeAEPServer, http: httpx.Client, headers: dict[str, str], specs: dict[str, Any]
) -> None:
    body = {
        "name": "Profile Data Export",
        "schemaRef": {"id": UNION, "contentType": "application/vnd.adobe.xed+json;version=1"},
        "fileDescription": SEED_FILE_DESCRIPTION,
    }
    r = http.post(f"{CATALOG_BASE}/dataSets", headers=headers, json=body)
    assert r.status_code == 201, r.text
    dataset_id = r.json()[0].rsplit("/", 1)[1]
    got = http.get(f"{CATALOG_BASE}/dataSets/{dataset_id}", headers=headers)
    assert got.json()[dataset_id]["fileDescription"] == SEED_FILE_DESCRIPTION
    assert_valid(specs["catalog"], got)


@pytest.mark.parametrize(
    ("method", "path", "request_args", "detail"),
    [
        (
            "post",
            f"{CATALOG_BASE}/dataSets",
            {"json": {"name": "x", "fileDescription": {"format": "xls"}}},
            "fileDescription.format: 'xls' is not one of",
        ),
        ("post", f"{CATALOG_BASE}/dataSets", {"json": {"name": "x", "schemaRef": {"id": 5}}}, "schemaRef.id"),
        # openapi-core words it by version: 0.23 (main lane) "is not of type", 0.19 (floor) "cast"
        ("post", f"{CATALOG_BASE}/dataSets", {"json": ["x"]}, "is not of type 'object'|cast value to object type"),
        ("get", f"{CATALOG_BASE}/dataSets", {"params": {"limit": "many"}}, "limit"),
        ("head", f"{DATA_ACCESS_BASE}/files/f1", {}, None),
    ],
)
def test_catalog_and_data_access_refuse_what_their_documents_refuse(
    http: httpx.Client,
    headers: dict[str, str],
    specs: dict[str, Any],
    method: str,
    path: str,
    request_args: dict[str, Any],
    detail: str | None,
) -> None:
    r = http.request(method.upper(), path, headers=headers, **request_args)
    assert r.status_code == 400
    if detail is not None:
        assert r.json()["title"] == "BadRequestError" and re.search(detail, r.json()["detail"])


@pytest.mark.parametrize(
    ("method", "request_args", "message"),
    [
        ("post", {"json": {**JOB_BODY, "fields": ["a.b"]}}, "fields: ['a.b'] is not of type 'string'"),
        ("post", {"json": {**JOB_BODY, "mergePolicy": {"id": 7}}}, "mergePolicy.id: 7 is not of type 'string'"),
        # the spec's list filter: NEW, SUCCEEDED, FAILED (no PROCESSING)
        ("get", {"params": {"status": "PROCESSING"}}, "status: 'PROCESSING' is not one of"),
        ("get", {"params": {"limit": "ten"}}, "limit"),
    ],
)
def test_export_jobs_refuse_what_segmentation_yaml_refuses(
    http: httpx.Client, headers: dict[str, str], specs: dict[str, Any], method: str, request_args: dict[str, Any], message: str
) -> None:
    r = http.request(method.upper(), f"{EXPORT_BASE}/export/jobs", headers=headers, **request_args)
    assert r.status_code == 400
    assert message in r.json()["title"]


def test_the_gateway_answers_before_the_documents(http: httpx.Client, headers: dict[str, str]) -> None:
    """A request without the gateway's headers gets A-TRB's answer, not a schema refusal."""
    r = http.get(f"{EXPORT_BASE}/export/jobs", params={"status": "PROCESSING"}, headers={**headers, "x-api-key": ""})
    assert r.status_code == 403 and r.json()["error_code"] == "403000"


def test_without_the_documents_the_sandbox_serves_unvalidated(
    http: httpx.Client, headers: dict[str, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from airflow_provider_exports_sandbox import specs as vendor_specs

    monkeypatch.setenv(vendor_specs.SPECS_ENV, str(tmp_path))
    vendor_specs.adobe_api.cache_clear()
    vendor_specs.unvalidated.cache_clear()
    try:
        with caplog.at_level("WARNING", logger=vendor_specs.__name__):
            for _ in range(2):
                r = http.get(f"{EXPORT_BASE}/export/jobs", params={"status": "PROCESSING"}, headers=headers)
                assert r.status_code == 200
        said = [r.getMessage() for r in caplog.records if "unvalidated" in r.getMessage()]
        assert len(said) == 1 and str(tmp_path) in said[0]
    finally:
        monkeypatch.undo()
        vendor_specs.adobe_api.cache_clear()
        vendor_specs.unvalidated.cache_clear()
