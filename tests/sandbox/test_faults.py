"""Every fault kind, seen by a plain httpx client over loopback, plus the request log."""

from __future__ import annotations

import time

import httpx
import pytest

from airflow_provider_exports_sandbox import Sandbox
from airflow_provider_exports_sandbox.sitecore_cdp import API_KEY, API_SECRET, AUDIENCE

TOKEN_FORM = {
    "client_id": API_KEY,
    "client_secret": API_SECRET,
    "grant_type": "client_credentials",
    "audience": AUDIENCE,
}


def bearer(sb: Sandbox) -> dict[str, str]:
    token = httpx.post(f"{sb.sitecore.url}/oauth/token", data=TOKEN_FORM).json()["access_token"]
    return {"Authorization": f"Bearer {token}"}


def file_url(sb: Sandbox, rows: int = 2000) -> str:
    sb.sitecore.add_export("faulty")
    sb.sitecore.add_job("faulty", rows=rows)
    listing = httpx.get(
        f"{sb.sitecore.url}/v2/audienceExports/definitions/faulty/latestExport", headers=bearer(sb)
    ).json()
    return str(listing["exports"][0]["url"])


def test_rate_limit_counts_down(sandbox: Sandbox) -> None:
    sandbox.sitecore.faults.rate_limit("/oauth/*", times=2, retry_after="3")
    url = f"{sandbox.sitecore.url}/oauth/token"
    for _ in range(2):
        resp = httpx.post(url, data=TOKEN_FORM)
        assert resp.status_code == 429
        assert resp.headers["Retry-After"] == "3"
        assert resp.json()["status"] == 429
    assert httpx.post(url, data=TOKEN_FORM).status_code == 200


def test_server_error_forever_until_cleared(sandbox: Sandbox) -> None:
    sandbox.cordial.faults.server_error("/v2/*", times=None, status=502)
    for _ in range(3):
        resp = httpx.get(f"{sandbox.cordial.url}/v2/jobs", auth=("sandbox-cordial-key", ""))
        assert resp.status_code == 502
        assert resp.json()["error"] is True
    sandbox.cordial.faults.clear()
    # the ordinary answer again: an account without jobs is C-V2's 404 RecordNotFound
    assert httpx.get(f"{sandbox.cordial.url}/v2/jobs", auth=("sandbox-cordial-key", "")).status_code == 404


def test_drop_connection_mid_body(sandbox: Sandbox) -> None:
    url = file_url(sandbox)
    full = httpx.get(url).content
    sandbox.sitecore.faults.drop_connection("/sitecore-cdp-exports/*", after_bytes=1000)
    received = bytearray()
    with pytest.raises(httpx.RemoteProtocolError), httpx.stream("GET", url) as resp:
        assert resp.headers["Content-Length"] == str(len(full))
        for chunk in resp.iter_raw():
            received += chunk
    assert bytes(received) == full[:1000]
    assert httpx.get(url).content == full


def test_slow_response(sandbox: Sandbox) -> None:
    sandbox.cordial.faults.slow("/v2/jobs", seconds=0.3)
    started = time.perf_counter()
    # an account without jobs: C-V2's 404 RecordNotFound, late
    assert httpx.get(f"{sandbox.cordial.url}/v2/jobs", auth=("sandbox-cordial-key", "")).status_code == 404
    assert time.perf_counter() - started >= 0.3


def test_expire_tokens(sandbox: Sandbox) -> None:
    sandbox.sitecore.add_export("x")
    headers = bearer(sandbox)
    url = f"{sandbox.sitecore.url}/v2/audienceExports/definitions/x/reports"
    assert httpx.get(url, headers=headers).status_code == 200
    sandbox.sitecore.faults.expire_tokens()
    assert httpx.get(url, headers=headers).status_code == 401
    assert httpx.get(url, headers=bearer(sandbox)).status_code == 200


def test_expire_urls(sandbox: Sandbox) -> None:
    url = file_url(sandbox, rows=10)
    assert httpx.get(url).status_code == 200
    sandbox.sitecore.faults.expire_urls()
    resp = httpx.get(url)
    assert resp.status_code == 403
    assert "Request has expired" in resp.text
    assert httpx.get(file_url_again(sandbox)).status_code == 200


def file_url_again(sb: Sandbox) -> str:
    listing = httpx.get(
        f"{sb.sitecore.url}/v2/audienceExports/definitions/faulty/latestExport", headers=bearer(sb)
    ).json()
    return str(listing["exports"][0]["url"])


def test_faults_over_http(sandbox: Sandbox) -> None:
    base = sandbox.cordial.url
    resp = httpx.post(
        f"{base}/_sandbox/faults", json={"kind": "server_error", "path_glob": "/v2/*", "times": None}
    )
    assert resp.status_code == 201
    assert httpx.get(f"{base}/v2/jobs", auth=("sandbox-cordial-key", "")).status_code == 503
    assert httpx.delete(f"{base}/_sandbox/faults").status_code == 204
    # an account without jobs: C-V2's 404 RecordNotFound
    assert httpx.get(f"{base}/v2/jobs", auth=("sandbox-cordial-key", "")).status_code == 404
    assert httpx.post(f"{base}/_sandbox/faults", json={"kind": "nonsense"}).status_code == 400
    assert httpx.post(f"{base}/_sandbox/faults", json={"kind": "expire_tokens"}).status_code == 201


def test_request_log_records_header_names_not_values(sandbox: Sandbox) -> None:
    sandbox.sitecore.faults.rate_limit("/oauth/token")
    httpx.post(f"{sandbox.sitecore.url}/oauth/token", data=TOKEN_FORM)
    bearer(sandbox)
    token_requests = sandbox.sitecore.requests_to("/oauth/token", "POST")
    assert [r.status for r in token_requests] == [429, 200]
    sandbox.sitecore.add_export("x")
    httpx.get(
        f"{sandbox.sitecore.url}/v2/audienceExports/definitions/x/reports",
        params={"q": "1"},
        headers=bearer(sandbox),
    )
    last = sandbox.sitecore.requests[-1]
    assert (last.method, last.path, last.query, last.status) == (
        "GET",
        "/v2/audienceExports/definitions/x/reports",
        {"q": "1"},
        200,
    )
    assert "authorization" in last.headers_present
    assert not any("Bearer" in str(v) for v in vars(last).values())
    sandbox.reset()
    assert sandbox.sitecore.requests == []


def test_a_request_that_outlives_a_reset_stays_out_of_the_new_log(sandbox: Sandbox) -> None:
    import threading

    sandbox.sitecore.faults.slow("/oauth/*", seconds=1.0)
    answered: list[int] = []
    pending = threading.Thread(
        target=lambda: answered.append(httpx.post(f"{sandbox.sitecore.url}/oauth/token", data=TOKEN_FORM).status_code)
    )
    pending.start()
    deadline = time.monotonic() + 30
    while sandbox.sitecore.faults.active and time.monotonic() < deadline:
        time.sleep(0.01)  # until the request has reached the server and is being delayed
    sandbox.reset()  # what the next test's fixture does
    pending.join(30)

    assert answered == [200]
    assert sandbox.sitecore.requests == []


def test_throttle_and_shift_range(sandbox: Sandbox) -> None:
    url = file_url(sandbox)
    whole = httpx.get(url).content
    sandbox.sitecore.faults.throttle("/sitecore-cdp-exports/*", bytes_per_second=20_000)
    started = time.monotonic()
    assert httpx.get(url).content == whole
    assert time.monotonic() - started >= (len(whole) / 20_000) * 0.5  # trickled, not sent at once

    sandbox.sitecore.faults.shift_range("/sitecore-cdp-exports/*", by_bytes=100)
    shifted = httpx.get(url, headers={"Range": "bytes=1000-"})
    assert shifted.status_code == 206
    assert shifted.headers["Content-Range"] == f"bytes 1100-{len(whole) - 1}/{len(whole)}"
    assert shifted.content == whole[1100:]


def test_answer_serves_exactly_what_a_misbehaving_vendor_would(sandbox: Sandbox) -> None:
    jobs = [{"_id": f"job{i}", "status": "Done"} for i in range(3)]
    sandbox.cordial.faults.answer("/v2/jobs", times=2, json=jobs, headers={"X-Odd": "yes"})
    for _ in range(2):
        resp = httpx.get(f"{sandbox.cordial.url}/v2/jobs", auth=("sandbox-cordial-key", ""))
        assert (resp.status_code, resp.json(), resp.headers["x-odd"]) == (200, jobs, "yes")
    assert httpx.get(f"{sandbox.cordial.url}/v2/jobs", auth=("sandbox-cordial-key", "")).json() != jobs
    big = b"x" * (3 << 20)  # more than one body message
    sandbox.sitecore.faults.apply_spec({"kind": "answer", "path_glob": "/v2/*", "status": 400, "body": "no"})
    sandbox.sitecore.faults.answer("/x/*", status=502, body=big)
    resp = httpx.get(f"{sandbox.sitecore.url}/x/y")
    assert (resp.status_code, resp.content == big, resp.headers["content-length"]) == (502, True, str(len(big)))
    assert httpx.get(f"{sandbox.sitecore.url}/v2/z").content == b"no"
