"""The one HTTP core under every vendor hook and every download: one request path, two thin drivers.

A call runs as one flow (:mod:`._call`): the retry policy (:mod:`._retry`) around attempts that
take their headers from the auth scheme (:mod:`._auth`), send, and turn an unexpected answer into
the vendor's error (:mod:`._answers`). The sync driver (a worker's calls and downloads) does its
effects with the core's own ``httpx.Client`` (connections a cancelled transfer can cut, addresses
the host guard checks on connect), ``stop.wait`` and thread locks, and cuts a body at the deadline;
the async driver (triggers) with the connection's shared ``httpx.AsyncClient`` and rate limiter
(:mod:`._clients`), ``asyncio.sleep``, asyncio locks and ``amask_secret``, and cancels the whole
call at its deadline.

The core's modules are the only ones of the provider that import httpx. Redaction: headers are
never logged; URLs are logged and put into errors only as ``scheme://host/path``; every token
obtained goes through ``mask_secret`` before anything else can see it.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import weakref
from collections.abc import Hashable, Iterator, Mapping
from contextlib import contextmanager
from functools import partial
from typing import Any, Unpack

import httpx

from airflow_provider_exports.hooks._answers import RefusalHint, error_for, redact_url, refused
from airflow_provider_exports.hooks._auth import AuthScheme
from airflow_provider_exports.hooks._call import (
    KEY_LOCKS,
    BodyBound,
    Call,
    CallOptions,
    Effect,
    Flow,
    MaskSecret,
    OneAtATime,
    Send,
    SubCall,
    Wait,
    adrive,
    drive,
)
from airflow_provider_exports.hooks._clients import ASYNC_CLIENTS, SharedClient, sync_client, warm_ssl_context
from airflow_provider_exports.hooks._guard import HostGuard
from airflow_provider_exports.hooks._retry import RetryPolicy
from airflow_provider_exports.hooks._streams import ByteStream, ConnectionTracker, deadline_cut

log = logging.getLogger(__name__)


class HttpClient:
    """Sync and async HTTP for one vendor credential: auth, retries, errors and redaction.

    :param vendor: display name used in logs and errors.
    :param auth: how requests authenticate; ``None`` for presigned URLs.
    :param timeout: seconds for connect, read and write (connect is capped at 10 s).
    :param retry: the retry policy (default: :class:`~._retry.RetryPolicy`'s defaults).
    :param share_key: names the connection and credentials (no secret): cores with the same key
        share one async client and one rate limiter per event loop. ``None``: this core's own.
    :param max_requests_per_second: the async rate cap of the share key on one event loop
        (``None``: no cap). The sync path has none: a worker runs one task.
    :param guard: where requests may go (:class:`~._guard.HostGuard`): checked before a request is
        sent and, on the sync client (the one that downloads), again when a connection is made. The
        default exempts no host: only public https hosts are reached.
    :param refusal_hint: what to check when an API call is refused (400, 401, 403, 404; not a
        download's answer): the hook's words, added to the :class:`VendorRefused` raised.
    """

    def __init__(
        self,
        vendor: str,
        *,
        auth: AuthScheme | None = None,
        timeout: float = 60.0,
        retry: RetryPolicy | None = None,
        share_key: Hashable | None = None,
        max_requests_per_second: float | None = None,
        guard: HostGuard | None = None,
        refusal_hint: RefusalHint | None = None,
    ) -> None:
        self.vendor = vendor
        self.refusal_hint = refusal_hint
        self.guard = guard or HostGuard(vendor)
        self.auth = auth
        self.retry = retry or RetryPolicy()
        self._timeout = httpx.Timeout(timeout, connect=min(10.0, timeout))
        self._client: httpx.Client | None = None
        self._connections: ConnectionTracker | None = None
        self._client_lock = threading.Lock()
        self.share_key: Hashable = share_key if share_key is not None else object()
        self.max_requests_per_second = max_requests_per_second
        self._leases: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, SharedClient] = (
            weakref.WeakKeyDictionary()
        )

    # clients are created on first use so that building a hook costs nothing
    @property
    def client(self) -> httpx.Client:
        if self._client is None:
            with self._client_lock:
                if self._client is None:
                    client, self._connections = sync_client(self._timeout, self.guard)
                    self._client = client
        return self._client

    def interrupt(self) -> None:
        """Cut every connection of the sync client: blocked requests and downloads fail at once."""
        if self._connections is not None:
            self._connections.cut_all()

    def _shared(self) -> SharedClient:
        """This core's lease on the running loop's shared client and limiter (taken on first use)."""
        loop = asyncio.get_running_loop()
        shared = self._leases.get(loop)
        if shared is None:
            shared = self._leases[loop] = ASYNC_CLIENTS.lease(self.share_key, self.max_requests_per_second)
        return shared

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    async def aclose(self) -> None:
        """Give back this core's lease on the running loop (the last user closes the shared client)."""
        shared = self._leases.pop(asyncio.get_running_loop(), None)
        if shared is not None:
            await ASYNC_CLIENTS.release(self.share_key, shared)

    # -- the calls

    def request(
        self, method: str, url: str, *, stop: threading.Event | None = None, **options: Unpack[CallOptions]
    ) -> httpx.Response:
        """Send a request with retries; return the response if its status is expected (``options``:
        see :class:`~._call.Call`). Once ``stop`` is set, nothing more is retried (a wait in progress
        ends with the last failure)."""
        return self._run(Call(self.vendor, method, url, **options), stop)

    async def arequest(self, method: str, url: str, **options: Unpack[CallOptions]) -> httpx.Response:
        """:meth:`request` on the event loop, for triggers: the same flow, the same errors; with a
        deadline, the whole call is also cancelled when it comes."""
        return await self._arun(Call(self.vendor, method, url, **options))

    @contextmanager
    def stream(
        self,
        url: str,
        *,
        offset: int = 0,
        length: int | None = None,
        if_range: str | None = None,
        headers: Mapping[str, str] | None = None,
        stop: threading.Event | None = None,
        deadline: float | None = None,
    ) -> Iterator[ByteStream]:
        """Open a streamed body from ``offset`` on (``Range``), retrying until the body starts.

        With ``length``, at most that many bytes are asked for (``Range: bytes=offset-end``, also
        from offset 0): a window of a file whose server bounds each answer's time.

        With ``if_range`` (an ETag or Last-Modified date), a server whose object changed since
        answers with the whole new object instead (a 200): :attr:`ByteStream.start` says which.
        Errors after the body has started (a cut connection) surface from
        :meth:`ByteStream.iter_bytes`; the caller resumes by opening again at its offset. Once
        ``stop`` is set (a cancelled transfer) no attempt is retried. A ``deadline`` bounds the
        opening as it bounds a :meth:`request`; the body, once it flows, is the caller's to bound.
        """
        if length is not None:
            if length < 1:
                raise ValueError("length must be at least 1 byte")
            ranged = {"Range": f"bytes={offset}-{offset + length - 1}"}
        else:
            ranged = {"Range": f"bytes={offset}-"} if offset > 0 else {}
        if ranged and if_range:
            ranged["If-Range"] = if_range
        call = Call(
            self.vendor,
            "GET",
            url,
            headers={**ranged, **(headers or {})},
            expected=(200, 206),
            idempotent=True,
            deadline=deadline,
            streamed=True,
        )
        response = self._run(call, stop)
        try:
            yield ByteStream(self.vendor, url, response)
        finally:
            response.close()

    # -- the one request path

    def _flow(self, call: Call, stop: threading.Event | None) -> Flow[httpx.Response]:
        return self.retry.attempts(call, partial(self._attempt, call), stop)

    def _attempt(self, call: Call) -> Flow[httpx.Response]:
        """One attempt: the expected answer, or the vendor's error; a 401 to credentials that it
        proves stale earns one more pass with fresh ones."""
        auth = self.auth if call.authenticate else None
        for first_pass in (True, False):
            sent = (yield from auth.headers(call)) if auth is not None else {}
            response = yield Send(call, sent)
            if response.status_code in call.expected:
                return response
            stale = response.status_code == 401 and auth is not None and bool(sent) and auth.refresh_after_401(sent)
            if not (stale and first_pass):
                error = error_for(call.vendor, call.method, response)
                # A download's 403 is an expired URL and its 404 may pass with a fresh one: the
                # transfer asks the vendor again, and a task retry gets new URLs.
                raise error if call.streamed else refused(error, self.refusal_hint)
            log.info(
                "%s: %s %s answered 401; refreshing credentials once",
                call.vendor,
                call.method,
                redact_url(str(response.request.url)),
            )
        raise AssertionError("unreachable: the second pass returns or raises")  # pragma: no cover

    # -- the sync driver

    def _run(self, call: Call, stop: threading.Event | None = None) -> httpx.Response:
        self.guard.check_url(call.url)
        return drive(self._flow(call, stop), self._perform)

    def _perform(self, effect: Effect) -> Any:
        match effect:
            case Send(call, auth_headers):
                return self._send(call, auth_headers)
            case Wait(seconds, stop):
                if stop is None:
                    time.sleep(seconds)
                else:
                    stop.wait(seconds)
            case SubCall(call):
                return self._run(call)
            case OneAtATime(key, flow):
                with KEY_LOCKS.thread_lock(key):
                    return drive(flow, self._perform)
            case MaskSecret(secret):
                _mask(secret)
        return None

    def _send(self, call: Call, auth_headers: Mapping[str, str]) -> httpx.Response:
        request = self.client.build_request(call.method, call.url, **call.arguments(auth_headers, self._timeout))
        try:
            response = self.client.send(request, stream=True)
        except httpx.TransportError as exc:
            raise call.failed(exc) from None
        if call.streamed and response.status_code in call.expected:
            return response  # a download's body: the caller streams it
        body = BodyBound(call, response)
        try:
            with deadline_cut(call.deadline, response):
                for chunk in response.iter_bytes():
                    if body.add(chunk):
                        break
        except (httpx.TransportError, httpx.DecodingError) as exc:
            body.failed(exc)
        finally:
            response.close()
        return body.response()

    # -- the async driver

    async def _arun(self, call: Call) -> httpx.Response:
        self.guard.check_own(call.url)

        async def run() -> httpx.Response:
            await warm_ssl_context()
            return await adrive(self._flow(call, None), partial(self._aperform, self._shared()))

        return await call.bounded(run)

    async def _aperform(self, shared: SharedClient, effect: Effect) -> Any:
        match effect:
            case Send(call, auth_headers):
                return await self._asend(shared, call, auth_headers)
            case Wait(seconds):  # no stop: nothing cancels a trigger's call but its task
                await asyncio.sleep(seconds)
            case SubCall(call):
                return await self._arun(call)
            case OneAtATime(key, flow):
                async with KEY_LOCKS.loop_lock(key):
                    return await adrive(flow, partial(self._aperform, shared))
            case MaskSecret(secret):
                await _amask(secret)
        return None

    async def _asend(self, shared: SharedClient, call: Call, auth_headers: Mapping[str, str]) -> httpx.Response:
        if shared.limiter is not None:
            await shared.limiter.acquire(call.deadline, call.what)
        request = shared.client.build_request(call.method, call.url, **call.arguments(auth_headers, self._timeout))
        try:
            response = await shared.client.send(request, stream=True)
        except httpx.TransportError as exc:
            raise call.failed(exc) from None
        if response.status_code == 429 and shared.limiter is not None:
            shared.limiter.hold(self.retry.connection_hold(response.headers))
        body = BodyBound(call, response)
        try:
            async for chunk in response.aiter_bytes():
                if body.add(chunk):
                    break
        except (httpx.TransportError, httpx.DecodingError) as exc:
            body.failed(exc)
        finally:
            await response.aclose()
        return body.response()


def _mask(secret: str) -> None:
    from airflow.providers.common.compat.sdk import mask_secret

    mask_secret(secret)


async def _amask(secret: str) -> None:
    """``mask_secret`` from an event loop: the synchronous one may block on the supervisor (or, in
    Airflow's triggerer, refuse to run there), so Airflow's async one where it exists (3.3+), else the
    synchronous one in a worker thread, as common-compat reads connections on those versions."""
    try:
        from airflow.sdk.log import amask_secret
    except ImportError:
        from asgiref.sync import sync_to_async

        await sync_to_async(_mask)(secret)
    else:
        await amask_secret(secret)
