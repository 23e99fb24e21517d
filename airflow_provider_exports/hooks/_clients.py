"""The httpx clients of the core: how each is made, and what one event loop shares per connection.

Every client sends the ``User-Agent`` and first quiets httpx's logger (:func:`quiet_httpx`). The
sync client (one per HttpClient) connects through a :class:`~._streams.ConnectionTracker`. Async
clients are shared: every HttpClient of one connection on one event loop uses one
``httpx.AsyncClient`` and one :class:`AsyncRateLimiter`, so a triggerer running a thousand waits on
ten connections holds ten clients, not a thousand. The rate limit is the async clients' alone: it
spreads the many waits one triggerer runs on a connection, while a worker runs one task, which
sends one request at a time.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import ssl
import threading
import time
import weakref
from collections.abc import Hashable
from dataclasses import dataclass

import httpx

from airflow_provider_exports import __version__
from airflow_provider_exports.exceptions import DeadlineExceeded
from airflow_provider_exports.hooks._guard import HostGuard
from airflow_provider_exports.hooks._streams import ConnectionTracker

#: requests per second each connection may send from one event loop (a triggerer), bursts included.
#: The vendors publish no numbers (Cordial: "a cap ... within any given second", set per account;
#: Sitecore and Adobe: none): our choice, low enough for any account we know of, and enough for
#: 20 x poll_interval waits per connection (1,200 at a 60 s interval) without slowing them.
ASYNC_REQUESTS_PER_SECOND = 20.0
_LIMITS = httpx.Limits(max_connections=32, max_keepalive_connections=16)


def quiet_httpx() -> None:
    """httpx logs ``HTTP Request: GET <full URL>`` at INFO, and a presigned URL's query string is a
    credential: every client an HttpClient makes first sets httpx's logger to WARNING (Airflow's own
    logging does; a process whose logging is set up otherwise may not)."""
    httpx_log = logging.getLogger("httpx")
    if httpx_log.getEffectiveLevel() < logging.WARNING:
        httpx_log.setLevel(logging.WARNING)


def user_agent() -> str:
    """``airflow-provider-exports/<version> apache-airflow/<version>``, sent on every request."""
    try:
        from airflow import __version__ as airflow_version
    except ImportError:  # pragma: no cover - the provider always runs inside Airflow
        airflow_version = "unknown"
    return f"airflow-provider-exports/{__version__} apache-airflow/{airflow_version}"


def sync_client(timeout: httpx.Timeout, guard: HostGuard) -> tuple[httpx.Client, ConnectionTracker]:
    """A worker's client, and the tracker of its connections (which checks each address with ``guard``)."""
    quiet_httpx()
    transport = httpx.HTTPTransport(limits=_LIMITS)
    # httpx does not expose httpcore's network_backend; its pool keeps it here
    pool = transport._pool
    pool._network_backend = tracker = ConnectionTracker(pool._network_backend, guard)
    client = httpx.Client(timeout=timeout, headers={"User-Agent": user_agent()}, transport=transport)
    return client, tracker


class AsyncRateLimiter:
    """At most ``rate`` requests a second for one connection on one loop: one every ``1 / rate``
    seconds, never a burst.

    A token bucket whose waiters are served in turn (FIFO), so a thousand polls due at once leave at
    the rate and none starves. A 429 holds the whole connection for its ``Retry-After``
    (:meth:`hold`): the other waits on it do not spend requests the vendor would refuse, and after the
    hold they start again one by one at the rate, not all in the same instant. One request passes a
    hold: one whose deadline comes before the hold ends (a wait's last look at its deadline is still
    made, as the deadline rule promises; it costs one request per wait).
    """

    def __init__(self, rate: float) -> None:
        if rate <= 0:
            raise ValueError("rate must be a positive number of requests per second")
        self.rate = float(rate)
        self._tokens = 1.0
        self._stamp = time.monotonic()
        self._held_until = 0.0
        self._turn = asyncio.Lock()

    async def acquire(self, deadline: float | None = None, what: str = "request") -> None:
        """Wait for this request's turn; ``DeadlineExceeded`` at once when the turn comes after ``deadline``."""
        while True:
            held = self._held_until - time.monotonic()
            if held > 0:  # waited out of turn, so a last look behind it is not stuck in the queue
                if deadline is not None and time.time() + held > deadline:
                    return  # the last look of a wait, which the hold would make impossible
                await asyncio.sleep(held)
                continue
            async with self._turn:
                while self._held_until <= time.monotonic():
                    now = time.monotonic()
                    self._tokens = min(1.0, self._tokens + (now - self._stamp) * self.rate)
                    self._stamp = now
                    if self._tokens >= 1:
                        self._tokens -= 1
                        return
                    wait = (1 - self._tokens) / self.rate
                    if deadline is not None and time.time() + wait > deadline:
                        raise DeadlineExceeded(
                            what, deadline, f"the connection's next free turn is in {wait:.1f} s, after it"
                        )
                    await asyncio.sleep(wait)
            # a hold began while this request waited for its turn: wait it out first

    def hold(self, seconds: float) -> None:
        """Send nothing more for ``seconds`` (a 429's ``Retry-After``), then restart at the rate."""
        now = time.monotonic()
        self._held_until = max(self._held_until, now + max(0.0, seconds))
        self._tokens = 0.0
        self._stamp = max(now, self._held_until)


@dataclass
class SharedClient:
    """The client and the limiter of one share key on one event loop, and how many cores use them."""

    client: httpx.AsyncClient
    limiter: AsyncRateLimiter | None
    users: int = 0


class AsyncClientRegistry:
    """Shared async clients, per event loop and share key, held weakly both ways: only the cores
    using an entry hold it (a client's connections hold its loop, so a registry holding clients
    would keep every loop alive), and a loop that is gone takes its entries with it. A share key
    names a connection without a secret (:attr:`~._base.ExportsVendorHook.share_key`).
    """

    def __init__(self) -> None:
        self._loops: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, weakref.WeakValueDictionary[Hashable, SharedClient]
        ] = weakref.WeakKeyDictionary()
        self._guard = threading.Lock()

    def lease(self, key: Hashable, rate: float | None) -> SharedClient:
        """The running loop's entry for ``key``, created on first use; the caller must :meth:`release` it."""
        loop = asyncio.get_running_loop()
        with self._guard:
            entries = self._loops.setdefault(loop, weakref.WeakValueDictionary())
            shared = entries.get(key)
            if shared is None:
                quiet_httpx()
                client = httpx.AsyncClient(
                    verify=shared_ssl_context(),
                    headers={"User-Agent": user_agent()},
                    limits=_LIMITS,
                )
                shared = entries[key] = SharedClient(client, AsyncRateLimiter(rate) if rate else None)
            shared.users += 1
            return shared

    async def release(self, key: Hashable, shared: SharedClient) -> None:
        """Give a lease back; the last one closes the client (a later lease builds a new one)."""
        loop = asyncio.get_running_loop()
        with self._guard:
            shared.users -= 1
            if shared.users > 0:
                return
            entries = self._loops.get(loop)
            if entries is not None and entries.get(key) is shared:
                del entries[key]
        await shared.client.aclose()

    def entries(self, loop: asyncio.AbstractEventLoop | None = None) -> dict[Hashable, SharedClient]:
        """The live entries of ``loop`` (default: the running one): for tests and benchmarks."""
        with self._guard:
            return dict(self._loops.get(loop or asyncio.get_running_loop(), {}).items())


ASYNC_CLIENTS = AsyncClientRegistry()


@functools.cache
def shared_ssl_context() -> ssl.SSLContext:
    """httpx's default TLS context (certifi's CAs), built once per process for every async client:
    building one reads the CA bundle (about 0.15 s of CPU here), too long for an event loop."""
    return httpx.create_ssl_context()


async def warm_ssl_context() -> None:
    """Build the process's TLS context in a worker thread the first time, off the event loop."""
    if not shared_ssl_context.cache_info().currsize:
        await asyncio.to_thread(shared_ssl_context)
