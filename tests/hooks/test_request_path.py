"""One request path, two drivers: every behaviour of a call, played through the sync and the async driver.

Each row of :data:`CASES` is a behaviour (retried or not, Retry-After, the 401 refresh, deadlines,
idempotency, body bounds); each runs in two columns, ``sync`` (``HttpClient.request``, a worker's) and
``async`` (``HttpClient.arequest``, a triggerer's), over real HTTP against the Sitecore sandbox (a
vendor with a token, so every call also goes through the auth flow). What cannot be a row of data
follows the table: callers at once, in the same two columns, and ``stop``, which only the sync
driver (a transfer's) takes.

Timing bounds, never races: a bound is generous for a busy 2-core machine, and where a wait's
length is the point, its lower bound is asserted (load only makes waits longer).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
import time
import zlib
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

import pytest

from airflow_provider_exports.exceptions import (
    DeadlineExceeded,
    LimitExceeded,
    VendorAPIError,
    VendorAuthError,
    VendorConnectionError,
    VendorNotFoundError,
    VendorRateLimitError,
    VendorServerError,
)
from airflow_provider_exports.hooks._retry import RetryPolicy
from airflow_provider_exports.hooks.sitecore_cdp import SitecoreCDPHook

EXPORT = "daily_loyalty_members"
REPORTS = f"/v2/audienceExports/definitions/{EXPORT}/reports"
LATEST = "/v2/audienceExports/definitions/no_such_export/latest"
TOKEN = "/oauth/token"
CLOSED = "http://127.0.0.1:9/unused"  # nothing listens on the discard port
FAST = RetryPolicy(max_attempts=4, backoff_initial=0.01, backoff_max=0.05)
DEFAULT = RetryPolicy()  # a task's policy: 5 attempts, Retry-After honoured up to 300 s
#: a call with a deadline ends no later than this many seconds after it
LATE = 3.0


@functools.cache
def gzip_bomb() -> bytes:
    """256 MiB of zeros, gzipped: about 260 KB on the wire."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    zeros = bytes(1 << 20)
    return b"".join([*(packer.compress(zeros) for _ in range(256)), packer.flush()])


def widest_jitter(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every Retry-After jitter at its widest, so that a wait proves it was jittered."""
    monkeypatch.setattr(
        RetryPolicy, "jitter_for", lambda self, exc, seconds: min(5.0, self.retry_after_jitter * seconds)
    )


@dataclass(frozen=True)
class Case:
    """One behaviour: what the Sitecore sandbox does, the call made, and what must come of it.

    :ivar arrange: switches the sandbox's faults on, after the warm-up call (if any).
    :ivar target: a path on the API host, or a whole URL.
    :ivar deadline_in: the call's deadline, seconds from its start.
    :ivar warm: a first call caches the token, so that the waits are the API's.
    :ivar patch: changes the process before the call (a setting, the jitter).
    :ivar calls: how many times the call is made.
    :ivar answered: the statuses the sandbox answered on ``seen_on``, in order, warm-up included.
    :ivar tokens: the token requests the sandbox saw.
    :ivar retried: the retry waits the policy logged.
    :ivar took: the least and the most seconds the calls took.
    :ivar at_deadline: the call ended between its deadline and ``LATE`` seconds after it.
    """

    arrange: Callable[[Any], object] = lambda server: None
    method: str = "GET"
    target: str = REPORTS
    options: Mapping[str, Any] = field(default_factory=dict)
    deadline_in: float | None = None
    policy: RetryPolicy = FAST
    warm: bool = False
    patch: Callable[[pytest.MonkeyPatch], None] = lambda monkeypatch: None
    calls: int = 1
    raises: type[Exception] | None = None
    says: tuple[str, ...] = ()
    answered: list[int] | None = None
    seen_on: str = REPORTS
    tokens: int | None = None
    retried: int | None = None
    took: tuple[float, float] = (0.0, 10.0)
    at_deadline: bool = False


CASES = {
    # -- what is retried
    "a 5xx is retried": Case(
        arrange=lambda s: s.faults.server_error(REPORTS, times=2, status=503),
        answered=[503, 503, 200],
        retried=2,
    ),
    "a 5xx that persists surfaces with the vendor's key and message": Case(
        arrange=lambda s: s.faults.server_error(REPORTS, times=None, status=503),
        raises=VendorServerError,
        says=("HTTP 503 (SERVICE_UNAVAILABLE)", "The server could not process the request"),
        answered=[503] * FAST.max_attempts,
    ),
    "a 429 is retried after its Retry-After": Case(
        arrange=lambda s: s.faults.rate_limit(REPORTS, times=2, retry_after="1"),
        answered=[429, 429, 200],
        took=(2.0, 10.0),  # two waits of Retry-After: 1, not the 0.05 s backoff
    ),
    "a Retry-After is waited without a deadline": Case(
        arrange=lambda s: s.faults.rate_limit(REPORTS, times=1, retry_after="2"),
        answered=[429, 200],
        took=(2.0, 10.0),
    ),
    "a Retry-After that fits before the deadline is waited": Case(
        arrange=lambda s: s.faults.rate_limit(REPORTS, times=2, retry_after="1"),
        deadline_in=30,
        answered=[429, 429, 200],
    ),
    "a Retry-After is jittered": Case(
        arrange=lambda s: s.faults.rate_limit(REPORTS, times=1, retry_after="2"),
        patch=widest_jitter,
        deadline_in=30,
        answered=[429, 200],
        took=(2.5, 10.0),  # 2 s asked for, and a quarter more
    ),
    "a connection cut mid-answer is retried": Case(
        arrange=lambda s: s.faults.drop_connection(REPORTS, after_bytes=1),
        answered=[200, 200],
        retried=1,
    ),
    "a failure to connect is retried, then raised": Case(
        target=CLOSED, raises=VendorConnectionError, retried=FAST.max_attempts - 1
    ),
    "a 4xx is not retried": Case(
        target=LATEST, raises=VendorNotFoundError, says=("HTTP 404",), answered=[404], seen_on=LATEST, retried=0
    ),
    # -- idempotency: a POST (which may create a job) is repeated only when it provably did not run
    "a POST refused with a 429 is retried": Case(
        arrange=lambda s: (
            s.faults.rate_limit(REPORTS, times=1, retry_after="0", method="POST"),
            s.faults.answer(REPORTS, method="POST", status=201, json={"created": True}),
        ),
        method="POST",
        options={"json": {"name": "x"}, "expected": (201,)},
        answered=[429, 201],
    ),
    "a POST that never connected is retried": Case(
        method="POST", target=CLOSED, raises=VendorConnectionError, retried=FAST.max_attempts - 1
    ),
    "a POST answered with a 5xx is not retried": Case(
        arrange=lambda s: s.faults.server_error(REPORTS, times=None, status=503, method="POST"),
        method="POST",
        options={"json": {"name": "x"}},
        raises=VendorServerError,
        answered=[503],
        retried=0,
    ),
    # -- credentials
    "a 401 to a stale token refreshes it once": Case(
        warm=True,
        arrange=lambda s: s.faults.expire_tokens(),
        calls=2,
        answered=[200, 401, 200, 200],
        tokens=2,
    ),
    "a 401 to a fresh token is the vendor's answer": Case(
        warm=True,
        arrange=lambda s: s.faults.answer(REPORTS, times=2, status=401, json={"error": "nope"}),
        raises=VendorAuthError,
        answered=[200, 401, 401],
        tokens=2,
    ),
    # -- deadlines
    "a Retry-After longer than the time left ends the call at once": Case(
        arrange=lambda s: s.faults.rate_limit(REPORTS, times=None, retry_after="30"),
        deadline_in=20,
        policy=DEFAULT,
        raises=DeadlineExceeded,
        says=("wait's deadline", REPORTS, "30.0 s", "HTTP 429"),
        answered=[429],
    ),
    "a slow answer is cut at the deadline": Case(
        warm=True,
        arrange=lambda s: s.faults.slow(REPORTS, seconds=3, times=1),  # 1.5 s after the deadline
        deadline_in=1.5,
        policy=DEFAULT,
        raises=DeadlineExceeded,
        says=("wait's deadline", REPORTS, "no answer came before it"),
        answered=[200, 200],  # the slow answer too, once it came (so it is not the next test's)
        at_deadline=True,
    ),
    "a body that trickles in is cut at the deadline": Case(
        warm=True,
        arrange=lambda s: s.faults.answer(
            REPORTS,
            json=[{"executionRef": f"{i:036d}", "status": "PENDING_EMR_JOB"} for i in range(200)],
            bytes_per_second=400,  # 30 s for the whole body
        ),
        deadline_in=1.5,
        policy=DEFAULT,
        raises=DeadlineExceeded,
        says=("wait's deadline", REPORTS),
        at_deadline=True,
    ),
    "the token request counts against the deadline": Case(
        arrange=lambda s: s.faults.rate_limit(TOKEN, times=None, retry_after="60"),
        deadline_in=20,
        policy=DEFAULT,
        raises=DeadlineExceeded,
        says=("wait's deadline", TOKEN),
        answered=[],
    ),
    "a deadline already passed sends nothing": Case(
        target="/files/x.json.gz?X-Amz-Signature=s3cr3t&X-Amz-Credential=k",
        options={"authenticate": False},
        deadline_in=-1,
        raises=DeadlineExceeded,
        says=("wait's deadline", "/files/x.json.gz"),
        answered=[],
        seen_on="*",
    ),
    # -- body bounds (issue 16)
    "an answer that inflates past its bound is refused, not retried": Case(
        arrange=lambda s: s.faults.answer(
            REPORTS, body=gzip_bomb(), headers={"content-type": "application/json", "content-encoding": "gzip"}
        ),
        raises=LimitExceeded,
        says=("max_json_body_bytes", f"more than {64 << 20:,} bytes (after decompression)"),
        answered=[200],
    ),
    "the body bound is a setting": Case(
        warm=True,
        patch=lambda monkeypatch: monkeypatch.setenv("AIRFLOW__EXPORTS__MAX_JSON_BODY_BYTES", "100"),
        arrange=lambda s: s.add_job(EXPORT),
        raises=LimitExceeded,
        says=("AIRFLOW__EXPORTS__MAX_JSON_BODY_BYTES",),
    ),
    "an error body is read only to its bound": Case(
        warm=True,
        arrange=lambda s: s.faults.answer(REPORTS, status=400, body=b"x" * (32 << 20), bytes_per_second=1 << 20),
        raises=VendorAPIError,
        says=("HTTP 400",),
        answered=[200, 400],
    ),
}


@pytest.fixture(params=["sync", "async"])
def driver(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def send(driver: str, hook: SitecoreCDPHook, method: str, target: str, **options: Any) -> Any:
    """One call through the hook's core, by ``driver``; its answer."""
    url = target if "://" in target else hook.url(target)
    if driver == "sync":
        return hook.http.request(method, url, **options)
    client = await hook.ahttp()
    try:
        return await client.arequest(method, url, **options)
    finally:
        await hook.aclose()


def wait_for_answers(server: Any, path: str, count: int) -> None:
    """Let the sandbox answer what a call left hanging, so that it is not logged in the next test."""
    until = time.monotonic() + 15
    while len(server.requests_to(path)) < count and time.monotonic() < until:
        time.sleep(0.05)


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
async def test_request_path(sandbox, monkeypatch, caplog, case: Case, driver: str) -> None:
    server = sandbox.sitecore
    server.add_export(EXPORT)
    hook = SitecoreCDPHook(retry=case.policy)
    if case.warm:
        await send(driver, hook, "GET", REPORTS)
    case.patch(monkeypatch)
    case.arrange(server)
    caplog.set_level(logging.WARNING, logger="airflow_provider_exports.hooks._retry")
    options = dict(case.options)
    if case.deadline_in is not None:
        options["deadline"] = deadline = time.time() + case.deadline_in
    started = time.monotonic()

    with pytest.raises(case.raises) if case.raises else nullcontext() as raised:
        for _ in range(case.calls):
            await send(driver, hook, case.method, case.target, **options)
    took, ended = time.monotonic() - started, time.time()

    if raised is not None:
        text = str(raised.value)
        assert all(said in text for said in case.says), text
        assert len(text) < 500
        if case.raises is DeadlineExceeded or "?" in case.target:  # URLs only as scheme, host and path
            assert "?" not in text and "X-Amz" not in text
    if case.answered is not None:
        wait_for_answers(server, case.seen_on, len(case.answered))
        assert [r.status for r in server.requests_to(case.seen_on)] == case.answered
    if case.tokens is not None:
        assert len(server.requests_to(TOKEN)) == case.tokens
    if case.retried is not None:
        assert len([r for r in caplog.records if "retrying in" in r.getMessage()]) == case.retried
    if case.at_deadline:
        assert deadline <= ended < deadline + LATE
    else:
        assert case.took[0] <= took < case.took[1]


# -- what is not a row of data: callers at once, and stop -------------------------------------------


async def test_one_token_fetch_per_credential_at_a_time(sandbox, driver: str) -> None:
    """Many callers without a token at once: one token request (the others wait for its token)."""
    sandbox.sitecore.add_export(EXPORT)
    hook = SitecoreCDPHook(retry=FAST)
    if driver == "sync":
        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(lambda _: hook.get_reports(EXPORT), range(24)))
    else:
        try:
            results = await asyncio.gather(*(hook.aget_reports(EXPORT) for _ in range(16)))
        finally:
            await hook.aclose()
    assert len(results) in (16, 24)
    assert len(sandbox.sitecore.requests_to(TOKEN)) == 1


async def test_stop_ends_the_retries(sandbox) -> None:
    """Once ``stop`` is set (a cancelled transfer), the wait in progress ends with the last failure."""
    sandbox.sitecore.add_export(EXPORT)
    sandbox.sitecore.faults.rate_limit(REPORTS, times=None, retry_after="30")
    stop = threading.Event()
    threading.Timer(0.5, stop.set).start()
    started = time.monotonic()
    with pytest.raises(VendorRateLimitError):
        await send("sync", SitecoreCDPHook(), "GET", REPORTS, stop=stop)
    assert time.monotonic() - started < 10  # not 30 s
    assert [r.status for r in sandbox.sitecore.requests_to(REPORTS)] == [429]


async def test_api_calls_ask_for_json_and_downloads_for_anything(sandbox, driver: str) -> None:
    """Issue 18 §10: the vendors' documented requests send ``Accept: application/json``; every API
    call of every hook does (token requests too), through either driver; a download keeps ``*/*``."""
    from airflow_provider_exports.hooks.adobe_experience_platform import AdobeExperiencePlatformHook
    from airflow_provider_exports.hooks.cordial import CordialHook

    sandbox.sitecore.add_export(EXPORT)
    sandbox.sitecore.add_job(EXPORT, rows=5)
    await send(driver, SitecoreCDPHook(retry=FAST), "GET", REPORTS)
    with pytest.raises(VendorNotFoundError, match="RECORD_NOT_FOUND"):  # C-V2: no jobs yet
        await send(driver, CordialHook(retry=FAST), "GET", "/v2/jobs")
    await send(driver, AdobeExperiencePlatformHook(retry=FAST), "GET", "/data/core/ups/export/jobs")
    hook = SitecoreCDPHook(retry=FAST)
    with hook.download_http.stream(hook.get_latest_export(EXPORT).files[0].url) as body:
        b"".join(body.iter_bytes())

    downloads = sandbox.sitecore.requests_to("/sitecore-cdp-exports/*")
    api_calls = [
        r for server in (sandbox.sitecore, sandbox.cordial, sandbox.adobe) for r in server.requests if r not in downloads
    ]
    assert {r.path for r in api_calls} >= {TOKEN, REPORTS, "/v2/jobs", "/ims/token/v3", "/data/core/ups/export/jobs"}
    assert {(r.path, r.accept) for r in api_calls} == {(r.path, "application/json") for r in api_calls}
    assert [r.accept for r in downloads] == ["*/*"]
