"""One logical request, and what its flow asks of the driver that runs it.

The request path is written once, without I/O: a *flow* is a generator that yields *effects* (send
this attempt, wait this long, run this other call, do this one credential at a time, mask this
secret) and gets back what each one produced. :func:`drive` and :func:`adrive` run a flow with the
sync and the async driver's handlers (:mod:`._http`): the two loops below and those handlers are
all that differs between the paths.
"""

from __future__ import annotations

import asyncio
import threading
import time
import weakref
from collections.abc import Awaitable, Callable, Collection, Generator, Hashable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeAlias, TypedDict, TypeVar, Unpack

import httpx

from airflow_provider_exports.exceptions import DeadlineExceeded, VendorAPIError, VendorConnectionError
from airflow_provider_exports.hooks._answers import connection_error, redact_url
from airflow_provider_exports.utils import limits

T = TypeVar("T")
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})


class CallOptions(TypedDict, total=False):
    """What a call may say besides its method and URL, as :class:`Call` takes it."""

    params: Mapping[str, Any] | None
    json: Any
    data: Mapping[str, Any] | None
    headers: Mapping[str, str] | None
    expected: Collection[int]
    idempotent: bool | None
    deadline: float | None
    authenticate: bool


class Call:
    """One logical request, whatever its attempts: what to send, which answers are the expected
    ones, whether it may be repeated, and the deadline that bounds all of it.

    :param expected: the statuses of a successful answer; any other raises the vendor's error.
    :param idempotent: whether the request may run twice (default: by its method); one that may
        not is retried only when it provably did not run.
    :param deadline: epoch seconds (``time.time()``) by which the call ends, whatever its retries:
        each attempt's timeouts are capped to the time left, no wait ends after it, and reaching it
        raises :class:`DeadlineExceeded`.
    :param authenticate: whether the core's auth scheme adds its headers (a token request does not).
    :param streamed: whether an expected answer's body is left open for the caller to stream (a
        download); otherwise every body is read here, bounded.
    """

    def __init__(
        self, vendor: str, method: str, url: str, *, streamed: bool = False, **options: Unpack[CallOptions]
    ) -> None:
        self.vendor = vendor
        self.method = method.upper()
        self.url = url
        self._arguments = {
            k: v for k, v in options.items() if k in ("params", "json", "data") and v is not None
        }
        # The vendors' documented requests ask for JSON (issue 18 §10): every API call says so; a
        # download (streamed) keeps httpx's */*, its body being a file of any type.
        self._headers = {**({} if streamed else {"Accept": "application/json"}), **(options.get("headers") or {})}
        self.expected = options.get("expected", (200,))
        idempotent = options.get("idempotent")
        self.idempotent = self.method in IDEMPOTENT_METHODS if idempotent is None else idempotent
        self.deadline = options.get("deadline")
        self.authenticate = options.get("authenticate", True)
        self.streamed = streamed
        self.what = f"{vendor} {self.method} {redact_url(url)}"

    def time_left(self, deadline: float) -> float:
        """Seconds until ``deadline``; ``DeadlineExceeded`` when none is left for an attempt."""
        left = deadline - time.time()
        if left <= 0:
            raise DeadlineExceeded(self.what, deadline, "no time was left for another attempt")
        return left

    def arguments(self, auth_headers: Mapping[str, str], timeout: httpx.Timeout) -> dict[str, Any]:
        """The keyword arguments of one attempt, with ``timeout`` capped to the time left."""
        if self.deadline is not None:
            left = self.time_left(self.deadline)
            timeout = httpx.Timeout(
                connect=min(timeout.connect or left, left),
                read=min(timeout.read or left, left),
                write=min(timeout.write or left, left),
                pool=min(timeout.pool or left, left),
            )
        return {"headers": {**auth_headers, **self._headers}, "timeout": timeout, **self._arguments}

    def failed(self, exc: httpx.TransportError) -> VendorConnectionError | DeadlineExceeded:
        """The error for a transport failure: a timeout cut short by the deadline is the deadline's."""
        if (
            self.deadline is not None
            and isinstance(exc, httpx.TimeoutException)
            and time.time() >= self.deadline
        ):
            return DeadlineExceeded(self.what, self.deadline, "no answer came before it")
        return connection_error(self.vendor, self.method, self.url, exc)

    async def bounded(self, work: Callable[[], Awaitable[T]]) -> T:
        """``work()`` (every attempt and wait of the call), cancelled at the deadline: httpx's timeouts
        bound each read, not a whole answer, and a token lock may be held by another coroutine."""
        if self.deadline is None:
            return await work()
        left = self.time_left(self.deadline)
        # Not asyncio.wait_for: on Python 3.11 it swallows a cancel that lands in the loop turn
        # where the answer arrives, and a trigger the user killed would poll on to its deadline.
        try:
            async with asyncio.timeout(left):
                return await work()
        except TimeoutError:
            raise DeadlineExceeded(self.what, self.deadline, "no answer came before it") from None


class BodyBound:
    """What is read of one answer's body: at most ``max_json_body_bytes`` decoded bytes of an
    expected answer (more fails the call: ``LimitExceeded``, never retried), the first
    ``max_error_body_bytes`` of any other (the rest is not read: its start says what went wrong).

    A driver feeds it the chunks (:meth:`add`) and reports a failed read (:meth:`failed`).
    """

    def __init__(self, call: Call, response: httpx.Response) -> None:
        self._call = call
        self._response = response
        self._expected = response.status_code in call.expected
        self._cap = (limits.JSON_BODY if self._expected else limits.ERROR_BODY).value
        self._parts: list[bytes] = []
        self._size = 0

    def add(self, chunk: bytes) -> bool:
        """Keep ``chunk``; ``True`` once the rest of the body is not to be read."""
        self._size += len(chunk)
        if self._size <= self._cap:
            self._parts.append(chunk)
            return False
        if self._expected:
            raise limits.JSON_BODY.exceeded(
                self._call.what, f"an answer of more than {self._cap:,} bytes (after decompression)"
            )
        self._parts.append(chunk[: len(chunk) - (self._size - self._cap)])
        return True

    def failed(self, exc: httpx.TransportError | httpx.DecodingError) -> None:
        """A read that failed: the call fails with it if the answer was the expected one; an error
        answer keeps what arrived (its status says what went wrong)."""
        if not self._expected:
            return
        if isinstance(exc, httpx.TransportError):
            raise self._call.failed(exc) from None
        raise VendorAPIError(
            self._call.vendor,
            status_code=self._response.status_code,
            error_key=None,
            message=f"the body could not be decoded ({self._response.headers.get('Content-Encoding')}): {exc}",
            method=self._call.method,
            url=redact_url(self._call.url),
        ) from None

    def response(self) -> httpx.Response:
        """A finished response holding what was read (decoded already: the encoding headers are dropped)."""
        response = self._response
        # A HEAD answer has no body: its Content-Length is the size of what a GET would send.
        head = response.request.method == "HEAD"
        dropped = set() if head else {b"content-encoding", b"content-length", b"transfer-encoding"}
        return httpx.Response(
            response.status_code,
            headers=[(k, v) for k, v in response.headers.raw if k.lower() not in dropped],
            content=None if head else b"".join(self._parts),
            request=response.request,
            extensions={k: v for k, v in response.extensions.items() if k != "network_stream"},
        )


# --- what a flow asks of its driver -----------------------------------------------------------------


@dataclass(frozen=True)
class Send:
    """Send one attempt of ``call`` with these auth headers; the reply is the answer, its body read
    within :class:`BodyBound` (or, for an expected answer of a streamed call, left open)."""

    call: Call
    auth_headers: Mapping[str, str] = field(repr=False)


@dataclass(frozen=True)
class Wait:
    """Wait ``seconds`` before the next attempt; a set ``stop`` ends the wait early."""

    seconds: float
    stop: threading.Event | None = None


@dataclass(frozen=True)
class SubCall:
    """Run ``call`` as a call of its own (its own attempts, the same deadline); the reply is its answer."""

    call: Call


@dataclass(frozen=True)
class OneAtATime:
    """Run ``flow`` while no other flow of the same ``key`` runs (one token fetch per credential),
    holding the key's lock from :data:`KEY_LOCKS`."""

    key: Hashable
    flow: Flow[Any]


class KeyLocks:
    """The locks behind :class:`OneAtATime`, one per key: a thread lock for the sync driver, and for
    the async one an asyncio lock per event loop (an asyncio lock belongs to one loop)."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._thread_locks: dict[Hashable, threading.Lock] = {}
        # per event loop, weakly: a lock of a loop that is gone must not serve a new loop at its address
        self._loop_locks: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, dict[Hashable, asyncio.Lock]
        ] = weakref.WeakKeyDictionary()

    def thread_lock(self, key: Hashable) -> threading.Lock:
        with self._guard:
            return self._thread_locks.setdefault(key, threading.Lock())

    def loop_lock(self, key: Hashable) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        with self._guard:
            return self._loop_locks.setdefault(loop, {}).setdefault(key, asyncio.Lock())


KEY_LOCKS = KeyLocks()


@dataclass(frozen=True)
class MaskSecret:
    """Hand ``secret`` (a token just obtained) to Airflow's secrets masker before anything can log it."""

    secret: str = field(repr=False)


Effect: TypeAlias = Send | Wait | SubCall | OneAtATime | MaskSecret
Flow: TypeAlias = Generator[Effect, Any, T]


def drive(flow: Flow[T], handle: Callable[[Effect], Any]) -> T:
    """Run ``flow`` to its end, doing each effect with ``handle`` (the sync driver); a failed effect
    is raised inside the flow, where the retry policy decides about it."""
    reply: Any = None
    failure: Exception | None = None
    try:
        while True:
            try:
                effect = flow.throw(failure) if failure is not None else flow.send(reply)
            except StopIteration as done:
                return done.value
            reply, failure = None, None
            try:
                reply = handle(effect)
            except Exception as exc:
                failure = exc
    finally:
        flow.close()


async def adrive(flow: Flow[T], handle: Callable[[Effect], Awaitable[Any]]) -> T:
    """:func:`drive` for the async driver (a cancelled task leaves the flow closed, its locks released)."""
    reply: Any = None
    failure: Exception | None = None
    try:
        while True:
            try:
                effect = flow.throw(failure) if failure is not None else flow.send(reply)
            except StopIteration as done:
                return done.value
            reply, failure = None, None
            try:
                reply = await handle(effect)
            except Exception as exc:
                failure = exc
    finally:
        flow.close()
