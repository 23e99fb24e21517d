"""The HTTP core: the User-Agent, no secret in logs or errors, answers bounded (issue 16), downloads.

Everything that can go over real HTTP does, against the Sitecore sandbox (a vendor with a token).
The behaviours of a call, through the sync and the async driver alike, are the table of
``test_request_path.py``; the policy, the answers and the shared clients have their own modules.
"""

from __future__ import annotations

import logging
import time

import pytest

from airflow_provider_exports.exceptions import DeadlineExceeded, LimitExceeded, VendorAPIError
from airflow_provider_exports.hooks._guard import HostGuard
from airflow_provider_exports.hooks._http import HttpClient
from airflow_provider_exports.hooks._retry import RetryPolicy
from airflow_provider_exports.hooks.sitecore_cdp import SitecoreCDPHook

FAST = RetryPolicy(max_attempts=4, backoff_initial=0.01, backoff_max=0.05)
#: a core's guard that lets it reach the sandbox on loopback (as a sandbox connection's own host)
LOOPBACK = HostGuard("Test", own_hosts=frozenset({"127.0.0.1"}))


def test_user_agent_names_package_and_airflow(sandbox):
    sandbox.sitecore.add_export("daily_loyalty_members")
    SitecoreCDPHook(retry=FAST).get_reports("daily_loyalty_members")
    assert "user-agent" in sandbox.sitecore.requests_to("/v2/audienceExports/*")[0].headers_present
    from airflow_provider_exports.hooks._clients import user_agent

    assert user_agent().startswith("airflow-provider-exports/") and "apache-airflow/3." in user_agent()


def test_no_secret_in_logs_or_errors(sandbox, caplog):
    caplog.set_level(logging.DEBUG)
    sandbox.sitecore.add_export("daily_loyalty_members")
    sandbox.sitecore.add_job("daily_loyalty_members", rows=50)
    sandbox.sitecore.faults.rate_limit("/v2/audienceExports/*", times=1, retry_after="0")
    hook = SitecoreCDPHook(retry=FAST)
    output = hook.get_latest_export("daily_loyalty_members")
    sandbox.sitecore.faults.expire_urls()
    errors = []
    with pytest.raises(VendorAPIError) as err, hook.http.stream(output.files[0].url) as body:
        b"".join(body.iter_bytes())
    errors.append(str(err.value))
    from airflow_provider_exports.hooks._auth import TOKENS

    tokens = [t.value for t in TOKENS._tokens.values()]
    query = output.files[0].url.split("?", 1)[1]
    secrets = [*tokens, sandbox.sitecore.connection()["password"], query, "X-Amz-Signature"]
    text = caplog.text + "\n".join(errors) + repr(output)
    assert tokens and all(s not in text for s in secrets)


# -- deadlines -------------------------------------------------------------------------------------
# Bounds, never races: a call with a deadline must end no later than LATE seconds after it (generous
# for a busy 2-core machine), and a Retry-After longer than the time left must end it at once.

REPORTS = "/v2/audienceExports/definitions/daily_loyalty_members/reports"
LATE = 3.0


async def read_reports(hook: SitecoreCDPHook, use_async: bool, **kwargs) -> list:
    """The hook's read of the reports, through the sync or the async path."""
    if not use_async:
        return hook.get_reports("daily_loyalty_members", **kwargs)
    try:
        return await hook.aget_reports("daily_loyalty_members", **kwargs)
    finally:
        await hook.aclose()


def assert_deadline_message(exc: DeadlineExceeded, path: str = REPORTS) -> None:
    text = str(exc)
    assert "wait's deadline" in text and path in text
    assert "?" not in text and "X-Amz" not in text


@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
async def test_a_body_that_trickles_in_is_cut_at_the_deadline(sandbox, use_async):
    """httpx's read timeout restarts with every chunk: a body sent a few bytes at a time would outlive
    the deadline by its whole length (30 s here). Both paths end at the deadline."""
    sandbox.sitecore.add_export("daily_loyalty_members")
    hook = SitecoreCDPHook()
    await read_reports(hook, use_async)  # the token is cached: the wait is the API's
    reports = [{"executionRef": f"{i:036d}", "status": "PENDING_EMR_JOB"} for i in range(200)]
    sandbox.sitecore.faults.answer(REPORTS, json=reports, bytes_per_second=400)
    deadline = time.time() + 1.5
    with pytest.raises(DeadlineExceeded) as err:
        await read_reports(hook, use_async, deadline=deadline)
    assert deadline <= time.time() < deadline + LATE
    assert_deadline_message(err.value)


def test_a_download_opens_within_its_deadline_and_its_body_is_the_callers(sandbox):
    """stream(): the attempts to open a body are bounded by the deadline as a request's are; the body,
    once it flows, is not cut there (the streaming engine bounds it)."""
    sandbox.sitecore.add_export("daily_loyalty_members")
    job = sandbox.sitecore.add_job("daily_loyalty_members", rows=50)
    hook = SitecoreCDPHook(retry=FAST)
    url = hook.get_latest_export("daily_loyalty_members").files[0].url
    files = "/sitecore-cdp-exports/*"

    sandbox.sitecore.faults.rate_limit(files, times=None, retry_after="30")
    started = time.monotonic()
    with pytest.raises(DeadlineExceeded) as err, hook.download_http.stream(url, deadline=time.time() + 20):
        pass
    assert time.monotonic() - started < 10  # at once: the 30 s Retry-After ends past the deadline
    assert_deadline_message(err.value, "/sitecore-cdp-exports/")
    assert "30.0 s" in str(err.value) and len(sandbox.sitecore.requests_to(files)) == 1

    sandbox.sitecore.faults.clear()
    sandbox.sitecore.faults.slow(files, seconds=3, times=1)  # answers 1.5 s after the deadline
    deadline = time.time() + 1.5
    with pytest.raises(DeadlineExceeded), hook.download_http.stream(url, deadline=deadline):
        pass
    assert deadline <= time.time() < deadline + LATE
    until = time.monotonic() + 15  # let the slow answer come, so that it is not the next test's
    while len(sandbox.sitecore.requests_to(files)) < 2 and time.monotonic() < until:
        time.sleep(0.05)

    size = sandbox.sitecore.expected_files(job)[0][1]
    sandbox.sitecore.faults.throttle(files, bytes_per_second=max(1, size // 3))  # about 3 s of body
    with hook.download_http.stream(url, deadline=time.time() + 1) as body:
        assert len(b"".join(body.iter_bytes())) == size
    hook.close()


@pytest.fixture(scope="module")
def gzip_bomb() -> bytes:
    """256 MiB of zeros, gzipped: about 260 KB on the wire."""
    import zlib

    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    zeros = bytes(1 << 20)
    return b"".join([*(packer.compress(zeros) for _ in range(256)), packer.flush()])


@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
async def test_an_answer_that_inflates_past_its_bound_is_refused(sandbox, use_async, gzip_bomb):
    sandbox.sitecore.add_export("daily_loyalty_members")
    hook = SitecoreCDPHook(retry=FAST)
    headers = {"content-type": "application/json", "content-encoding": "gzip"}
    sandbox.sitecore.faults.answer(REPORTS, body=gzip_bomb, headers=headers)
    with pytest.raises(LimitExceeded, match="max_json_body_bytes") as err:
        await read_reports(hook, use_async)
    assert f"more than {64 << 20:,} bytes (after decompression)" in str(err.value)
    assert len(sandbox.sitecore.requests_to(REPORTS)) == 1  # not retried


def test_the_body_bound_is_a_setting(sandbox, monkeypatch):
    sandbox.sitecore.add_export("daily_loyalty_members")
    sandbox.sitecore.add_job("daily_loyalty_members")
    hook = SitecoreCDPHook(retry=FAST)
    assert len(hook.get_reports("daily_loyalty_members")) == 1
    monkeypatch.setenv("AIRFLOW__EXPORTS__MAX_JSON_BODY_BYTES", "100")
    with pytest.raises(LimitExceeded, match=r"AIRFLOW__EXPORTS__MAX_JSON_BODY_BYTES"):
        hook.get_reports("daily_loyalty_members")


def test_an_error_body_is_read_only_to_its_bound(sandbox):
    """A 400 whose body trickles in for 32 s: its first 64 KiB say enough, the rest is not read."""
    sandbox.sitecore.add_export("daily_loyalty_members")
    hook = SitecoreCDPHook(retry=FAST)
    hook.get_reports("daily_loyalty_members")  # the token is cached
    sandbox.sitecore.faults.answer(REPORTS, status=400, body=b"x" * (32 << 20), bytes_per_second=1 << 20)
    started = time.monotonic()
    with pytest.raises(VendorAPIError) as err:
        hook.get_reports("daily_loyalty_members")
    assert time.monotonic() - started < 10
    assert err.value.http_status == 400 and len(str(err.value)) < 500


def test_httpx_does_not_log_request_urls(sandbox, caplog):
    """httpx logs ``HTTP Request: GET <URL>`` at INFO: a presigned URL's query string is a credential."""
    caplog.set_level(logging.INFO)  # a worker's root logger, outside Airflow's own logging set-up
    logging.getLogger("httpx").setLevel(logging.NOTSET)  # as that set-up leaves it
    client = HttpClient("Sitecore CDP", retry=FAST, guard=LOOPBACK)
    with pytest.raises(VendorAPIError):
        client.request("GET", sandbox.sitecore.url + "/files/x.json.gz?X-Amz-Signature=s3cr3t")
    assert sandbox.sitecore.requests  # it was sent
    assert not [r for r in caplog.records if "s3cr3t" in r.getMessage()]
