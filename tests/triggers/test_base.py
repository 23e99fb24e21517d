"""The polling loop every trigger shares, as the triggerer runs it: many waits on one event loop.

Real HTTP to the sandbox. Triggers of one connection share one async client and one rate limiter on
the loop (two connections: two); the clients close when their last wait ends; connections are read
through the async connection API, never synchronously on the loop; what the triggerer stores (the
kwargs) holds no secret, also after a run.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from typing import Any

import pytest

from airflow_provider_exports.hooks._base import ExportsVendorHook
from airflow_provider_exports.hooks._clients import ASYNC_CLIENTS
from airflow_provider_exports.triggers.adobe_experience_platform import AdobeProfileExportJobTrigger
from airflow_provider_exports.triggers.cordial import CordialJobTrigger
from airflow_provider_exports.triggers.sitecore_cdp import SitecoreCDPExportTrigger
from airflow_provider_exports_sandbox.adobe import CLIENT_SECRET
from airflow_provider_exports_sandbox.cordial import API_KEY
from airflow_provider_exports_sandbox.sitecore_cdp import API_SECRET

EXPORT = "daily_loyalty_members"
SECRETS = (API_SECRET, API_KEY, CLIENT_SECRET)


def sitecore_trigger(conn_id: str = "sitecore_cdp_default", **overrides: Any) -> SitecoreCDPExportTrigger:
    kwargs: dict[str, Any] = {
        "audience_export_ref": EXPORT,
        "finished_after": None,
        "fail_statuses": ["FAILED"],
        "sitecore_cdp_conn_id": conn_id,
        "poll_interval": 0.2,
        "deadline": time.time() + 30,
    }
    return SitecoreCDPExportTrigger(**{**kwargs, **overrides})


async def first_event(trigger) -> dict[str, Any]:
    async for event in trigger.run():
        return dict(event.payload)
    raise AssertionError("no event")


async def test_waits_of_one_connection_share_a_client_and_two_connections_have_two(sandbox, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_SITECORE_TWO", json.dumps(sandbox.sitecore.connection()))
    sandbox.sitecore.add_export(EXPORT)
    job = sandbox.sitecore.add_job(EXPORT, pending_seconds=120)  # pending until a test adds a finished one
    triggers = [sitecore_trigger() for _ in range(4)] + [sitecore_trigger("sitecore_two") for _ in range(2)]
    tasks = [asyncio.create_task(first_event(t)) for t in triggers]

    async def all_polling() -> dict[str, Any]:
        while True:
            entries = ASYNC_CLIENTS.entries()
            if sorted(e.users for e in entries.values()) == [2, 4]:
                return entries
            await asyncio.sleep(0.05)

    entries = await asyncio.wait_for(all_polling(), timeout=60)
    keys = sorted(entries)
    assert keys[0].startswith("sitecore_cdp/sitecore_cdp_default/") and keys[1].startswith(
        "sitecore_cdp/sitecore_two/"
    )
    clients = [e.client for e in entries.values()]
    assert clients[0] is not clients[1] and not any(c.is_closed for c in clients)
    # one TLS context for the process: building one per client costs the loop ~0.15 s each
    contexts = {id(c._transport._pool._ssl_context) for c in clients}  # type: ignore[attr-defined]
    assert len(contexts) == 1
    assert all(
        e.limiter is not None and e.limiter.rate == ExportsVendorHook.max_requests_per_second
        for e in entries.values()
    )

    done = sandbox.sitecore.add_job(EXPORT)
    payloads = await asyncio.wait_for(asyncio.gather(*tasks), timeout=60)

    assert [p["status"] for p in payloads] == ["success"] * 6 and {p["result"] for p in payloads} == {
        done
    } != {job}
    # every wait closed its lease; the last of each connection closed the client
    assert ASYNC_CLIENTS.entries() == {} and all(c.is_closed for c in clients)
    # one token for the one credential, though six waits on two connections
    assert len(sandbox.sitecore.requests_to("/oauth/token")) == 1


async def test_mixed_vendor_waits_share_nothing_across_vendors_and_all_end(sandbox, cordial_job):
    sandbox.sitecore.add_export(EXPORT)
    sandbox.sitecore.add_job(EXPORT, pending_seconds=0.5)
    cordial_ids = [cordial_job(seconds=0.2) for _ in range(2)]
    sandbox.adobe.job_seconds = 0.2
    aep_ids = [str(sandbox.adobe.add_job(segments=["seg-a"])) for _ in range(2)]
    triggers = [sitecore_trigger() for _ in range(2)]
    triggers += [
        CordialJobTrigger(job_id=j, poll_interval=0.2, deadline=time.time() + 30) for j in cordial_ids
    ]
    triggers += [
        AdobeProfileExportJobTrigger(export_job_id=j, poll_interval=0.2, deadline=time.time() + 30)
        for j in aep_ids
    ]
    seen: set[int] = set()

    async def watch() -> None:
        while True:
            seen.add(len(ASYNC_CLIENTS.entries()))
            await asyncio.sleep(0.02)

    watcher = asyncio.create_task(watch())
    try:
        payloads = await asyncio.wait_for(asyncio.gather(*(first_event(t) for t in triggers)), timeout=60)
    finally:
        watcher.cancel()
    assert [p["status"] for p in payloads] == ["success"] * 6
    assert max(seen) <= 3  # one client per connection: three connections, six waits
    assert ASYNC_CLIENTS.entries() == {}


async def test_connections_are_never_read_synchronously_on_the_event_loop(sandbox, monkeypatch, cordial_job):
    """Airflow 3.3.2+: ``aget_connection``; older: the sync lookup in a worker thread (common-compat),
    as the triggerer needs (a sync supervisor call on its loop deadlocks or is refused). The same for
    the extras and for masking the tokens obtained."""
    from airflow.providers.common.compat.sdk import Connection

    from airflow_provider_exports.hooks import _http

    on_loop: list[str] = []

    def running_loop_here() -> bool:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return False
        return True

    original_get = ExportsVendorHook.get_connection.__func__  # type: ignore[attr-defined]

    def get_connection(cls, conn_id: str):
        if running_loop_here():
            on_loop.append(f"get_connection({conn_id}) in {threading.current_thread().name}")
        return original_get(cls, conn_id)

    original_extra = Connection.extra_dejson

    def extra_dejson(self):
        if running_loop_here():
            on_loop.append("extra_dejson")
        return original_extra.fget(self)

    original_mask = _http._mask

    def mask(secret: str) -> None:
        if running_loop_here():
            on_loop.append("mask_secret")
        original_mask(secret)

    sandbox.sitecore.add_export(EXPORT)
    sandbox.sitecore.add_job(EXPORT)
    sandbox.adobe.job_seconds = 0.1
    triggers = [
        sitecore_trigger(),
        CordialJobTrigger(job_id=cordial_job(seconds=0.1), poll_interval=0.2, deadline=time.time() + 30),
        AdobeProfileExportJobTrigger(
            export_job_id=str(sandbox.adobe.add_job(segments=["seg-a"])),
            poll_interval=0.2,
            deadline=time.time() + 30,
        ),
    ]
    # watched from here: the set-up above (the Cordial job made through the sync hook) is not a trigger
    monkeypatch.setattr(ExportsVendorHook, "get_connection", classmethod(get_connection))
    monkeypatch.setattr(Connection, "extra_dejson", property(extra_dejson))
    monkeypatch.setattr(_http, "_mask", mask)
    payloads = await asyncio.wait_for(asyncio.gather(*(first_event(t) for t in triggers)), timeout=60)

    assert [p["status"] for p in payloads] == ["success"] * 3
    assert on_loop == []
    # tokens were obtained (and masked) on this path: Sitecore's and Adobe's
    assert len(sandbox.sitecore.requests_to("/oauth/token")) == 1


@pytest.mark.parametrize("vendor", ["sitecore", "cordial", "adobe"])
async def test_what_the_triggerer_stores_holds_no_secret_also_after_a_run(sandbox, cordial_job, vendor):
    if vendor == "sitecore":
        sandbox.sitecore.add_export(EXPORT)
        sandbox.sitecore.add_job(EXPORT)
        trigger: Any = sitecore_trigger()
    elif vendor == "cordial":
        trigger = CordialJobTrigger(
            job_id=cordial_job(seconds=0.1), poll_interval=0.2, deadline=time.time() + 30
        )
    else:
        sandbox.adobe.job_seconds = 0.1
        job = str(sandbox.adobe.add_job(segments=["seg-a"]))
        trigger = AdobeProfileExportJobTrigger(
            export_job_id=job, cancel_on_kill=True, poll_interval=0.2, deadline=time.time() + 30
        )
    before = trigger.serialize()
    payload = await asyncio.wait_for(first_event(trigger), timeout=60)
    after = trigger.serialize()

    assert payload["status"] == "success" and after == before
    stored = json.dumps(after[1]) + json.dumps(payload)
    assert all(isinstance(v, (str, int, float, bool, list, type(None))) for v in after[1].values())
    for secret in SECRETS:
        assert secret not in stored
    assert "Bearer" not in stored and "token" not in stored.lower()
