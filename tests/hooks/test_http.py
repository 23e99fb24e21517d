"""The HTTP core: retry policy, Retry-After, redaction, downloads, shared async clients and their cap.

Everything that can go over real HTTP does, against the Sitecore sandbox (a vendor with a token).
The behaviours of a call, through the sync and the async driver alike, are the table of
``test_request_path.py``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import pytest

from airflow_provider_exports.exceptions import (
    DeadlineExceeded,
    LimitExceeded,
    VendorAPIError,
    VendorConnectionError,
    VendorRateLimitError,
    VendorServerError,
)
from airflow_provider_exports.hooks._call import Call, drive
from airflow_provider_exports.hooks._guard import HostGuard
from airflow_provider_exports.hooks._http import (
    ASYNC_CLIENTS,
    AsyncRateLimiter,
    HttpCore,
    RetryPolicy,
    parse_retry_after,
    rate_limit_wait,
    redact_url,
)
from airflow_provider_exports.hooks.sitecore_cdp import SitecoreCDPHook

FAST = RetryPolicy(max_attempts=4, backoff_initial=0.01, backoff_max=0.05)
#: a core's guard that lets it reach the sandbox on loopback (as a sandbox connection's own host)
LOOPBACK = HostGuard("Test", own_hosts=frozenset({"127.0.0.1"}))


def test_redact_url_drops_query_and_userinfo():
    url = "https://user:pw@bucket.s3.amazonaws.com:8443/a/b.json.gz?X-Amz-Signature=abc&X-Amz-Credential=k"
    assert redact_url(url) == "https://bucket.s3.amazonaws.com:8443/a/b.json.gz"


def test_retry_after_seconds_and_http_date():
    assert parse_retry_after("3") == 3.0
    now = datetime(2026, 11, 23, 12, 0, 0, tzinfo=timezone.utc)
    later = format_datetime(now + timedelta(seconds=42), usegmt=True)
    assert parse_retry_after(later, now=now.timestamp()) == pytest.approx(42.0)
    assert parse_retry_after("garbage") is None
    assert parse_retry_after(None) is None


def test_a_429_without_retry_after_waits_for_the_rate_limit_reset():
    headers = {"X-Rate-Limit-Limit": "120", "X-Rate-Limit-Remaining": "0", "X-Rate-Limit-Reset": "17"}
    assert rate_limit_wait(headers) == (17.0, " (rate limit: limit 120, remaining 0, reset in 17)")
    assert rate_limit_wait({**headers, "Retry-After": "3"})[0] == 3.0  # Retry-After, the minimum, wins
    assert rate_limit_wait({}) == (None, "")


@pytest.mark.parametrize(
    ("exc", "idempotent", "expected"),
    [
        (
            VendorRateLimitError("V", status_code=429, error_key=None, message="", method="POST", url=""),
            False,
            True,
        ),
        (
            VendorServerError("V", status_code=503, error_key=None, message="", method="GET", url=""),
            True,
            True,
        ),
        (
            VendorServerError("V", status_code=503, error_key=None, message="", method="POST", url=""),
            False,
            False,
        ),
        (
            VendorServerError("V", status_code=501, error_key=None, message="", method="GET", url=""),
            True,
            False,
        ),
        (VendorAPIError("V", status_code=400, error_key=None, message="", method="GET", url=""), True, False),
        (
            VendorConnectionError("V", status_code=None, error_key=None, message="", method="GET", url=""),
            True,
            True,
        ),
    ],
    ids=["429-post", "503-get", "503-post", "501", "400", "read-error"],
)
def test_what_is_retried(exc, idempotent, expected):
    assert RetryPolicy().should_retry(exc, idempotent=idempotent) is expected


def test_backoff_is_jittered_and_capped_and_retry_after_wins():
    policy = RetryPolicy(backoff_initial=1.0, backoff_max=4.0, retry_after_max=10.0)
    waits = {policy.wait_seconds(6, None) for _ in range(50)}
    assert all(0 <= w <= 4.0 for w in waits) and len(waits) > 1
    limited = VendorRateLimitError(
        "V", status_code=429, error_key=None, message="", method="GET", url="", retry_after=60
    )
    assert policy.wait_seconds(1, limited) == 10.0


def test_user_agent_names_package_and_airflow(sandbox):
    sandbox.sitecore.add_export("daily_loyalty_members")
    SitecoreCDPHook(retry=FAST).get_reports("daily_loyalty_members")
    assert "user-agent" in sandbox.sitecore.requests_to("/v2/audienceExports/*")[0].headers_present
    from airflow_provider_exports.hooks._http import user_agent

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
    with pytest.raises(VendorAPIError) as err, hook.core.stream(output.files[0].url) as body:
        b"".join(body.iter_bytes())
    errors.append(str(err.value))
    from airflow_provider_exports.hooks._http import TOKENS

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


def test_wait_within_refuses_a_wait_past_the_deadline_but_not_after_the_last_attempt():
    policy = RetryPolicy(max_attempts=3, retry_after_max=300)
    limited = VendorRateLimitError(
        "V", status_code=429, error_key="SLOW_DOWN", message="later", method="GET", url="", retry_after=30
    )
    soon = time.time() + 5
    with pytest.raises(DeadlineExceeded) as err:
        policy.wait_within(1, limited, soon, "V GET https://host/path")
    assert "30.0 s" in str(err.value) and "HTTP 429 (SLOW_DOWN): later" in str(err.value)
    assert err.value.__cause__ is limited
    assert 30 <= policy.wait_within(1, limited, time.time() + 60, "V") <= 35  # with its jitter
    assert 30 <= policy.wait_within(1, limited, None, "V") <= 35

    # After the last attempt nothing waits: the failure itself is raised, not the deadline's error.
    def refused():
        raise limited
        yield  # a flow

    call = Call("V", "GET", "https://host/path", deadline=soon)
    with pytest.raises(VendorRateLimitError):
        drive(RetryPolicy(max_attempts=1).attempts(call, refused), lambda effect: None)


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
    with pytest.raises(DeadlineExceeded) as err, hook.download_core.stream(url, deadline=time.time() + 20):
        pass
    assert time.monotonic() - started < 10  # at once: the 30 s Retry-After ends past the deadline
    assert_deadline_message(err.value, "/sitecore-cdp-exports/")
    assert "30.0 s" in str(err.value) and len(sandbox.sitecore.requests_to(files)) == 1

    sandbox.sitecore.faults.clear()
    sandbox.sitecore.faults.slow(files, seconds=3, times=1)  # answers 1.5 s after the deadline
    deadline = time.time() + 1.5
    with pytest.raises(DeadlineExceeded), hook.download_core.stream(url, deadline=deadline):
        pass
    assert deadline <= time.time() < deadline + LATE
    until = time.monotonic() + 15  # let the slow answer come, so that it is not the next test's
    while len(sandbox.sitecore.requests_to(files)) < 2 and time.monotonic() < until:
        time.sleep(0.05)

    size = sandbox.sitecore.expected_files(job)[0][1]
    sandbox.sitecore.faults.throttle(files, bytes_per_second=max(1, size // 3))  # about 3 s of body
    with hook.download_core.stream(url, deadline=time.time() + 1) as body:
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
    core = HttpCore("Sitecore CDP", retry=FAST, guard=LOOPBACK)
    with pytest.raises(VendorAPIError):
        core.request("GET", sandbox.sitecore.url + "/files/x.json.gz?X-Amz-Signature=s3cr3t")
    assert sandbox.sitecore.requests  # it was sent
    assert not [r for r in caplog.records if "s3cr3t" in r.getMessage()]


async def test_a_cancel_that_lands_with_the_answer_is_not_lost():
    """A killed trigger must stop: the cancel arrives in the same loop turn as the answer."""
    call = Call("Sitecore CDP", "GET", "http://example.invalid/", deadline=time.time() + 30)
    outer: asyncio.Task[str]

    async def answer() -> str:
        await asyncio.sleep(0)
        outer.cancel()  # delivered while the answer is being returned
        return "answer"

    outer = asyncio.create_task(call.bounded(answer))
    with pytest.raises(asyncio.CancelledError):
        await outer


# -- one triggerer, many waits: shared clients, the per-connection cap, Retry-After with jitter ------

REPORTS = "/v2/audienceExports/definitions/daily_loyalty_members/reports"


def second_sitecore_connection(sandbox, monkeypatch) -> str:
    """Another connection id with the same settings (one credential, two connections)."""
    import json

    monkeypatch.setenv("AIRFLOW_CONN_SITECORE_TWO", json.dumps(sandbox.sitecore.connection()))
    return "sitecore_two"


async def test_hooks_of_one_connection_share_one_client_per_loop_and_two_connections_do_not(
    sandbox, monkeypatch
):
    sandbox.sitecore.add_export("daily_loyalty_members")
    two = second_sitecore_connection(sandbox, monkeypatch)
    hooks = [SitecoreCDPHook() for _ in range(3)] + [SitecoreCDPHook(two)]
    for hook in hooks:
        await hook.aget_reports("daily_loyalty_members")
    cores = [await hook.acore() for hook in hooks]

    assert cores[0]._async_client() is cores[1]._async_client() is cores[2]._async_client()
    assert cores[3]._async_client() is not cores[0]._async_client()
    entries = ASYNC_CLIENTS.entries()
    assert entries[cores[0].share_key].users == 3 and entries[cores[3].share_key].users == 1
    # the key names the connection, never its secret
    assert cores[0].share_key.startswith("sitecore_cdp/sitecore_cdp_default/")
    assert cores[3].share_key.startswith("sitecore_cdp/sitecore_two/")
    assert "secret" not in cores[0].share_key
    # one token for the one credential, whatever the connections
    assert len(sandbox.sitecore.requests_to("/oauth/token")) == 1

    # the last user of a connection closes its client; the others keep theirs open
    shared = cores[0]._async_client()
    for hook in hooks[:2]:
        await hook.aclose()
    assert not shared.is_closed
    await hooks[2].aclose()
    assert shared.is_closed and cores[0].share_key not in ASYNC_CLIENTS.entries()
    await hooks[3].aclose()
    assert ASYNC_CLIENTS.entries() == {}
    # a later hook of the connection gets a new client
    hook = SitecoreCDPHook()
    try:
        await hook.aget_reports("daily_loyalty_members")
        assert (await hook.acore())._async_client() is not shared
    finally:
        await hook.aclose()


def test_an_edited_connection_gets_its_own_client(sandbox, monkeypatch):
    import json

    before = SitecoreCDPHook()
    before.settings  # noqa: B018 - resolves the connection
    edited = {**sandbox.sitecore.connection(), "password": "rotated-secret"}
    monkeypatch.setenv("AIRFLOW_CONN_SITECORE_CDP_DEFAULT", json.dumps(edited))
    after = SitecoreCDPHook()
    after.settings  # noqa: B018
    assert before.share_key != after.share_key
    assert before.share_key.rsplit("/", 1)[0] == after.share_key.rsplit("/", 1)[0]
    assert "rotated-secret" not in after.share_key


def test_clients_of_a_loop_are_gone_with_it(sandbox):
    """A loop that ends takes its entries with it, also where a hook was never closed."""
    import gc
    import weakref

    sandbox.sitecore.add_export("daily_loyalty_members")
    closed = []
    loops = []

    async def use(close: bool) -> None:
        loops.append(weakref.ref(asyncio.get_running_loop()))
        hook = SitecoreCDPHook()
        await hook.aget_reports("daily_loyalty_members")
        client = (await hook.acore())._async_client()
        if close:
            await hook.aclose()
            closed.append(client.is_closed)

    asyncio.run(use(close=True))
    asyncio.run(use(close=False))
    gc.collect()
    assert closed == [True]
    # no entry outlives its users, closed or not; the registry holds no loop (asgiref's thread-local
    # may keep the last loop of a thread alive, but no client of ours with it)
    for ref in loops:
        loop = ref()
        assert loop is None or ASYNC_CLIENTS.entries(loop) == {}


async def test_the_rate_cap_holds_per_connection(sandbox, monkeypatch):
    """Several hooks of one connection calling as fast as they can: the sandbox never sees more than
    the cap allows over the window (an upper bound: a slow machine only sends fewer)."""
    sandbox.sitecore.add_export("daily_loyalty_members")
    monkeypatch.setattr(SitecoreCDPHook, "max_requests_per_second", 10.0)
    hooks = [SitecoreCDPHook() for _ in range(4)]
    await hooks[0].aget_reports("daily_loyalty_members")  # the token first, outside the window
    sandbox.sitecore.requests.clear()
    until = time.monotonic() + 1.5

    async def hammer(hook: SitecoreCDPHook) -> int:
        calls = 0
        while time.monotonic() < until:
            await hook.aget_reports("daily_loyalty_members")
            calls += 1
        return calls

    started = time.monotonic()
    try:
        calls = await asyncio.gather(*(hammer(h) for h in hooks))
    finally:
        for hook in hooks:
            await hook.aclose()
    elapsed = time.monotonic() - started

    seen = len(sandbox.sitecore.requests_to(REPORTS, "GET"))
    assert seen == sum(calls)
    assert seen <= 1 + 10.0 * elapsed  # one at once, then one every 100 ms
    # without the cap, four callers on loopback send far more than 15 in 1.5 s
    assert all(c >= 1 for c in calls)


async def test_the_cap_spaces_requests_in_turn():
    """The limiter itself: n turns take at least (n - 1) / rate (a lower bound on time: robust)."""
    limiter = AsyncRateLimiter(20.0, burst=1)
    started = time.monotonic()
    await asyncio.gather(*(limiter.acquire() for _ in range(6)))
    assert time.monotonic() - started >= 5 / 20.0 - 0.01
    with pytest.raises(ValueError, match="rate"):
        AsyncRateLimiter(0)


async def test_a_turn_past_the_deadline_fails_at_once_but_a_hold_lets_a_last_look_through():
    limiter = AsyncRateLimiter(0.1, burst=1)  # one request every 10 s
    await limiter.acquire()
    started = time.monotonic()
    with pytest.raises(DeadlineExceeded, match="next free turn"):
        await limiter.acquire(deadline=time.time() + 2, what="look")
    assert time.monotonic() - started < 1
    limiter = AsyncRateLimiter(100.0)
    limiter.hold(30)
    await asyncio.wait_for(limiter.acquire(deadline=time.time() + 5), timeout=2)  # a last look


async def test_a_429_holds_the_connection_so_its_other_callers_do_not_spend_requests(sandbox, monkeypatch):
    """Ten callers on one connection meet a 429 storm (Retry-After 1 s) of 1.5 s: the first 429
    holds the connection, so the sandbox answers fewer 429s than there are callers (each would have
    met at least one on its own), and every call succeeds once the storm is over."""
    sandbox.sitecore.add_export("daily_loyalty_members")
    monkeypatch.setattr(SitecoreCDPHook, "max_requests_per_second", 5.0)
    hooks = [SitecoreCDPHook() for _ in range(10)]
    await hooks[0].aget_reports("daily_loyalty_members")  # token first
    sandbox.sitecore.requests.clear()
    sandbox.sitecore.faults.rate_limit(REPORTS, times=None, retry_after="1")

    async def storm_ends() -> None:
        await asyncio.sleep(1.5)
        sandbox.sitecore.faults.clear()

    ending = asyncio.create_task(storm_ends())
    try:
        results = await asyncio.gather(
            *(h.aget_reports("daily_loyalty_members", deadline=time.time() + 60) for h in hooks)
        )
    finally:
        await ending
        for hook in hooks:
            await hook.aclose()

    assert len(results) == 10
    statuses = [r.status for r in sandbox.sitecore.requests_to(REPORTS, "GET")]
    assert statuses.count(200) == 10
    assert 1 <= statuses.count(429) < 10


def test_retry_after_is_jittered_within_the_deadline():
    """Both drivers: the waits of one policy (sync and async alike since issue 17)."""
    policy = RetryPolicy()
    limited = VendorRateLimitError(
        "V", status_code=429, error_key=None, message="slow down", method="GET", url="u", retry_after=10.0
    )
    waits = [policy.wait_within(1, limited, None, "x") for _ in range(200)]
    assert all(10.0 <= w <= 10.0 + 2.5 for w in waits)  # at most a quarter more (and 5 s)
    assert len(set(waits)) > 150 and max(waits) > 11.0
    # with a deadline: judged on the server's wait; the jitter takes at most half the slack
    near = [policy.wait_within(1, limited, time.time() + 11, "x") for _ in range(200)]
    assert all(10.0 <= w <= 10.5 + 0.01 for w in near)
    with pytest.raises(DeadlineExceeded):
        policy.wait_within(1, limited, time.time() + 9, "x")
    long = VendorRateLimitError(
        "V", status_code=429, error_key=None, message="slow down", method="GET", url="u", retry_after=100.0
    )
    assert all(100.0 <= policy.wait_within(1, long, None, "x") <= 105.0 for _ in range(50))
    # backoff without Retry-After is jittered already and gets nothing more
    assert all(policy.wait_within(1, None, None, "x") <= 1.0 for _ in range(50))
