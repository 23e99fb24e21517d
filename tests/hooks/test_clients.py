"""One triggerer's many waits: async clients shared per connection and event loop, the
per-connection rate cap, and a 429 that holds the whole connection."""

from __future__ import annotations

import asyncio
import time

import pytest

from airflow_provider_exports.exceptions import DeadlineExceeded
from airflow_provider_exports.hooks._clients import ASYNC_CLIENTS, AsyncRateLimiter
from airflow_provider_exports.hooks.sitecore_cdp import SitecoreCDPHook

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
    cores = [await hook.ahttp() for hook in hooks]

    assert cores[0]._shared().client is cores[1]._shared().client is cores[2]._shared().client
    assert cores[3]._shared().client is not cores[0]._shared().client
    entries = ASYNC_CLIENTS.entries()
    assert entries[cores[0].share_key].users == 3 and entries[cores[3].share_key].users == 1
    # the key names the connection, never its secret
    assert cores[0].share_key.startswith("sitecore_cdp/sitecore_cdp_default/")
    assert cores[3].share_key.startswith("sitecore_cdp/sitecore_two/")
    assert "secret" not in cores[0].share_key
    # one token for the one credential, whatever the connections
    assert len(sandbox.sitecore.requests_to("/oauth/token")) == 1

    # the last user of a connection closes its client; the others keep theirs open
    shared = cores[0]._shared().client
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
        assert (await hook.ahttp())._shared().client is not shared
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
        client = (await hook.ahttp())._shared().client
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
    limiter = AsyncRateLimiter(20.0)
    started = time.monotonic()
    await asyncio.gather(*(limiter.acquire() for _ in range(6)))
    assert time.monotonic() - started >= 5 / 20.0 - 0.01
    with pytest.raises(ValueError, match="rate"):
        AsyncRateLimiter(0)


async def test_a_turn_past_the_deadline_fails_at_once_but_a_hold_lets_a_last_look_through():
    limiter = AsyncRateLimiter(0.1)  # one request every 10 s
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
