"""The one HTTP core under every vendor hook and every download.

It owns the httpx clients (sync for hooks and transfers, async for triggers), timeouts, the
``User-Agent``, the retry policy, the per-connection token cache and redaction. It is the only
module of the provider that imports httpx, so a later move to another client is one file.

Async clients are shared: every core of one connection (same share key) on one event loop uses one
``httpx.AsyncClient`` (one connection pool) and one :class:`AsyncRateLimiter`, so a triggerer running a
thousand waits on ten connections holds ten clients, not a thousand. The registry holds them per event
loop, weakly (a loop that is gone takes its entries with it); the last core of a key to close on a loop
closes the client. The sync client stays one per core, as before.

Redaction rules kept here: headers are never logged; URLs are logged and put into errors only as
``scheme://host/path`` (a presigned URL's query string is a bearer credential); every token this
core obtains goes through ``mask_secret`` before anything else can see it.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import email.utils
import hashlib
import logging
import random
import socket
import ssl
import threading
import time
import weakref
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Collection, Hashable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import httpcore
import httpx
import tenacity

from airflow_provider_exports import __version__
from airflow_provider_exports.exceptions import (
    DeadlineExceeded,
    TransferIntegrityError,
    VendorAPIError,
    VendorAuthError,
    VendorConnectionError,
    VendorNotFoundError,
    VendorRateLimitError,
    VendorServerError,
)
from airflow_provider_exports.hooks._guard import HostGuard
from airflow_provider_exports.utils import limits

log = logging.getLogger(__name__)
T = TypeVar("T")


def quiet_httpx() -> None:
    """httpx logs ``HTTP Request: GET <full URL>`` at INFO, and a presigned URL's query string is a
    credential: every client this core makes first sets httpx's logger to WARNING (Airflow's own
    logging does; a process whose logging is set up otherwise may not)."""
    httpx_log = logging.getLogger("httpx")
    if httpx_log.getEffectiveLevel() < logging.WARNING:
        httpx_log.setLevel(logging.WARNING)

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
# 501 and 505 say the server will never do this; every other 5xx may pass.
_PERMANENT_5XX = frozenset({501, 505})
#: the most seconds of jitter added to an async ``Retry-After`` wait
RETRY_AFTER_JITTER_MAX = 5.0
#: requests per second each connection may send from one event loop (a triggerer), bursts included.
#: The vendors publish no numbers (Cordial: "a cap ... within any given second", set per account;
#: Sitecore and Adobe: none): our choice, low enough for any account we know of, and enough for
#: 20 x poll_interval waits per connection (1,200 at a 60 s interval) without slowing them.
ASYNC_REQUESTS_PER_SECOND = 20.0


def redact_url(url: str) -> str:
    """Return ``url`` as ``scheme://host[:port]/path``: no query string, fragment or user info."""
    parts = urlsplit(str(url))
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def user_agent() -> str:
    """``airflow-provider-exports/<version> apache-airflow/<version>``, sent on every request."""
    try:
        from airflow import __version__ as airflow_version
    except ImportError:  # pragma: no cover - the provider always runs inside Airflow
        airflow_version = "unknown"
    return f"airflow-provider-exports/{__version__} apache-airflow/{airflow_version}"


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header given in seconds or as an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    current = datetime.fromtimestamp(now if now is not None else time.time(), tz=timezone.utc)
    return max(0.0, (when - current).total_seconds())


def parse_error_body(response: httpx.Response) -> tuple[str | None, str]:
    """The vendor's own error key and message from an error response, whatever the vendor.

    Cordial: ``{"error": true, "errorKey", "message"}`` or ``{"error": "<message>"}`` on 401;
    Adobe gateway: ``{"error_code", "message"}``; Adobe IMS and OAuth servers: ``{"error",
    "error_description"}``; problem+json: ``{"title", "detail"}``; S3-style presigned URLs: XML
    ``<Code>``/``<Message>``.
    """
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, Mapping):
        key = next(
            (
                str(body[k])
                for k in ("errorKey", "error_code", "code", "error", "title")
                if isinstance(body.get(k), (str, int)) and not isinstance(body.get(k), bool)
            ),
            None,
        )
        message = next(
            (
                str(body[k])
                for k in ("message", "error_description", "msg", "detail", "title")
                if isinstance(body.get(k), str)
            ),
            None,
        )
        if message is None and isinstance(body.get("error"), str):
            key, message = None, body["error"]
        return key, message or response.reason_phrase
    text = response.text[:2000] if response.content else ""
    if "<Code>" in text:
        code = text.split("<Code>", 1)[1].split("</Code>", 1)[0]
        message = text.split("<Message>", 1)[1].split("</Message>", 1)[0] if "<Message>" in text else code
        return code, message
    return None, response.reason_phrase or "error"


@dataclass(frozen=True)
class RetryPolicy:
    """When and how long to wait before trying a request again.

    Retried: connection failures and timeouts, 408, 429 and 5xx (but 501/505). A request that
    is not idempotent (a POST that creates a job) is retried only when it provably did not run:
    429, or a failure to connect. Waits honour ``Retry-After`` (capped at ``retry_after_max``),
    otherwise they are exponential with full jitter, capped at ``backoff_max``.

    With a deadline (the end of the wait a call serves), no wait is started that would end after
    it: the call raises :class:`DeadlineExceeded` at once instead.
    """

    max_attempts: int = 5
    backoff_initial: float = 1.0
    backoff_max: float = 30.0
    retry_after_max: float = 300.0
    #: with jitter (the async path), a ``Retry-After`` wait is lengthened by up to this share of it
    #: (at most :data:`RETRY_AFTER_JITTER_MAX` seconds), so callers refused together do not return together
    retry_after_jitter: float = 0.25

    def should_retry(self, exc: BaseException, *, idempotent: bool) -> bool:
        if provably_not_sent(exc):
            return True
        if not idempotent:
            return False
        if isinstance(exc, VendorServerError):
            return exc.http_status not in _PERMANENT_5XX
        return isinstance(exc, VendorConnectionError) or (
            isinstance(exc, VendorAPIError) and exc.http_status == 408
        )

    def wait_seconds(self, attempt: int, exc: BaseException | None) -> float:
        retry_after = getattr(exc, "retry_after", None)
        if retry_after is not None:
            return min(float(retry_after), self.retry_after_max)
        ceiling = min(self.backoff_max, self.backoff_initial * (2 ** (attempt - 1)))
        return random.uniform(0, ceiling)

    def jitter_for(self, exc: BaseException | None, seconds: float) -> float:
        """Extra seconds added to a ``Retry-After`` wait of ``seconds`` (backoff is jittered already)."""
        if getattr(exc, "retry_after", None) is None:
            return 0.0
        return random.uniform(0, min(RETRY_AFTER_JITTER_MAX, self.retry_after_jitter * seconds))

    def wait_within(
        self,
        attempt: int,
        exc: BaseException | None,
        deadline: float | None,
        what: str,
        *,
        jitter: bool = False,
    ) -> float:
        """The wait after failed attempt ``attempt``; raises ``DeadlineExceeded`` if it would end
        after ``deadline``. After the last attempt nothing waits, so the failure itself is raised.

        With ``jitter``, a ``Retry-After`` wait is lengthened a little (:meth:`jitter_for`); the
        deadline is judged on the wait the server asked for, and the jitter never takes more than
        half of the time that would be left after it, so a wait that fits still leaves room for its attempt.
        """
        seconds = self.wait_seconds(attempt, exc)
        extra = self.jitter_for(exc, seconds) if jitter else 0.0
        if deadline is None or attempt >= self.max_attempts:
            return seconds + extra
        left = deadline - time.time()
        if seconds > left:
            answer = getattr(exc, "summary", None) or type(exc).__name__
            raise DeadlineExceeded(
                what,
                deadline,
                f"the next attempt would start in {seconds:.1f} s, after it ({max(left, 0.0):.1f} s left); "
                f"last answer: {answer}",
            ) from exc
        return seconds + min(extra, (left - seconds) / 2)

    def _tenacity_kwargs(
        self,
        idempotent: bool,
        what: str,
        deadline: float | None,
        stop: threading.Event | None = None,
        jitter: bool = False,
    ) -> dict[str, Any]:
        def retry(state: tenacity.RetryCallState) -> bool:
            exc = state.outcome.exception() if state.outcome else None
            if stop is not None and stop.is_set():
                return False
            return exc is not None and self.should_retry(exc, idempotent=idempotent)

        # Raising here ends the retry loop with DeadlineExceeded; tenacity versions differ in
        # whether they ask for the wait before or after checking `stop`, so the rule does not rely on it.
        def wait(state: tenacity.RetryCallState) -> float:
            exc = state.outcome.exception() if state.outcome else None
            return self.wait_within(state.attempt_number, exc, deadline, what, jitter=jitter)

        def before_sleep(state: tenacity.RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            sleep = state.next_action.sleep if state.next_action else 0.0
            log.warning(
                "%s: attempt %d of %d failed (%s); retrying in %.1f s",
                what,
                state.attempt_number,
                self.max_attempts,
                exc,
                sleep,
            )

        return {
            "stop": tenacity.stop_after_attempt(self.max_attempts),
            "wait": wait,
            "retry": retry,
            "before_sleep": before_sleep,
            "reraise": True,
            **({"sleep": stop.wait} if stop is not None else {}),
        }

    def retrying(
        self,
        *,
        idempotent: bool,
        what: str,
        deadline: float | None = None,
        stop: threading.Event | None = None,
    ) -> tenacity.Retrying:
        """Sync retries; setting ``stop`` ends them (a wait in progress, too) with the last failure."""
        return tenacity.Retrying(**self._tenacity_kwargs(idempotent, what, deadline, stop))

    def async_retrying(
        self, *, idempotent: bool, what: str, deadline: float | None = None
    ) -> tenacity.AsyncRetrying:
        """Async retries (triggers): a ``Retry-After`` is honoured with jitter, so the many waits
        of one triggerer that a 429 refused together do not all come back in the same instant."""
        return tenacity.AsyncRetrying(**self._tenacity_kwargs(idempotent, what, deadline, jitter=True))


class _NotSentError(VendorConnectionError):
    """The request never reached the server (connect failed): safe to send again, whatever the method."""


# --- authentication -------------------------------------------------------------------------------


class AuthScheme(ABC):
    """How a vendor authenticates: the headers to add, and what to do about a 401.

    ``deadline`` is the deadline of the call the headers are for: fetching a token counts against it.
    """

    @abstractmethod
    def headers(self, core: HttpCore, *, deadline: float | None = None) -> dict[str, str]: ...

    @abstractmethod
    async def aheaders(self, core: HttpCore, *, deadline: float | None = None) -> dict[str, str]: ...

    def refresh_after_401(self, sent_headers: Mapping[str, str]) -> bool:
        """Forget credentials that a 401 proved stale; ``True`` if one retry with new ones makes sense."""
        return False


@dataclass(frozen=True)
class BasicAuth(AuthScheme):
    """HTTP Basic with a static key (Cordial: the API key as user name, a blank password)."""

    username: str = field(repr=False)
    password: str = field(default="", repr=False)

    def _header(self) -> dict[str, str]:
        raw = f"{self.username}:{self.password}".encode()
        return {"Authorization": "Basic " + base64.b64encode(raw).decode("ascii")}

    def headers(self, core: HttpCore, *, deadline: float | None = None) -> dict[str, str]:
        return self._header()

    async def aheaders(self, core: HttpCore, *, deadline: float | None = None) -> dict[str, str]:
        return self._header()


@dataclass
class _Token:
    value: str = field(repr=False)
    refresh_at: float


class TokenCache:
    """Access tokens per credential, shared by every hook in the process, one fetch at a time.

    Keyed by token URL, client id, scope and a digest of the secret, so two connections with the
    same credentials share a token and a rotated secret gets a new one. A token is refreshed ahead
    of its expiry by a tenth of its lifetime (at most five minutes), and dropped when a 401 shows it
    stale. Threads wait on a lock per key; coroutines on an asyncio lock per key and event loop.
    """

    def __init__(self) -> None:
        self._tokens: dict[tuple[str, ...], _Token] = {}
        self._guard = threading.Lock()
        self._thread_locks: dict[tuple[str, ...], threading.Lock] = {}
        # per event loop, weakly: a lock of a loop that is gone must not serve a new loop at its address
        self._loop_locks: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, dict[tuple[str, ...], asyncio.Lock]
        ] = weakref.WeakKeyDictionary()

    def current(self, key: tuple[str, ...]) -> str | None:
        token = self._tokens.get(key)
        if token is None or time.monotonic() >= token.refresh_at:
            return None
        return token.value

    def store(self, key: tuple[str, ...], value: str, expires_in: float) -> None:
        margin = min(300.0, expires_in * 0.1)
        self._tokens[key] = _Token(value, time.monotonic() + max(0.0, expires_in - margin))

    def discard(self, key: tuple[str, ...], value: str) -> bool:
        """Drop ``value`` if it is still the cached token; ``True`` if a refresh can help."""
        with self._guard:
            token = self._tokens.get(key)
            if token is not None and token.value == value:
                del self._tokens[key]
            return True

    def thread_lock(self, key: tuple[str, ...]) -> threading.Lock:
        with self._guard:
            return self._thread_locks.setdefault(key, threading.Lock())

    def loop_lock(self, key: tuple[str, ...]) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        with self._guard:
            return self._loop_locks.setdefault(loop, {}).setdefault(key, asyncio.Lock())

    def clear(self) -> None:
        with self._guard:
            self._tokens.clear()


TOKENS = TokenCache()


@dataclass(frozen=True)
class ClientCredentialsAuth(AuthScheme):
    """OAuth 2.0 client credentials (Sitecore CDP, Adobe IMS) with a cached bearer token.

    :param token_url: the token endpoint.
    :param form: the form fields of the token request (``grant_type``, ``client_id``, secret, ...);
        left out of ``repr``, since it holds the secret.
    :param extra_headers: headers sent on every API call besides ``Authorization`` (Adobe's
        ``x-api-key``, ``x-gw-ims-org-id``, ``x-sandbox-name``).
    """

    token_url: str
    form: Mapping[str, str] = field(repr=False)
    extra_headers: Mapping[str, str] = field(default_factory=dict)

    @property
    def cache_key(self) -> tuple[str, ...]:
        secret_digest = hashlib.sha256(repr(sorted(self.form.items())).encode()).hexdigest()[:16]
        return (self.token_url, self.form.get("client_id", ""), self.form.get("scope", ""), secret_digest)

    def _with_token(self, token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}", **self.extra_headers}

    def _accept(self, core: HttpCore, response: httpx.Response) -> str:
        token, expires_in = self._read_token(core, response)
        _mask(token)
        return self._keep(core, token, expires_in)

    async def _aaccept(self, core: HttpCore, response: httpx.Response) -> str:
        token, expires_in = self._read_token(core, response)
        await _amask(token)
        return self._keep(core, token, expires_in)

    def _keep(self, core: HttpCore, token: str, expires_in: Any) -> str:
        TOKENS.store(self.cache_key, token, float(expires_in or 3600))
        log.info("%s: obtained an access token (expires in %s s)", core.vendor, expires_in)
        return token

    def _read_token(self, core: HttpCore, response: httpx.Response) -> tuple[str, Any]:
        body = response.json()
        token = body.get("access_token") if isinstance(body, Mapping) else None
        if not token:
            raise VendorAuthError(
                core.vendor,
                status_code=response.status_code,
                error_key=None,
                message="the token response carries no access_token",
                method="POST",
                url=redact_url(self.token_url),
            )
        return str(token), body.get("expires_in")

    def headers(self, core: HttpCore, *, deadline: float | None = None) -> dict[str, str]:
        key = self.cache_key
        token = TOKENS.current(key)
        if token is None:
            with TOKENS.thread_lock(key):
                token = TOKENS.current(key)
                if token is None:
                    response = core.request(
                        "POST",
                        self.token_url,
                        data=dict(self.form),
                        authenticate=False,
                        idempotent=True,
                        deadline=deadline,
                    )
                    token = self._accept(core, response)
        return self._with_token(token)

    async def aheaders(self, core: HttpCore, *, deadline: float | None = None) -> dict[str, str]:
        key = self.cache_key
        token = TOKENS.current(key)
        if token is None:
            async with TOKENS.loop_lock(key):
                token = TOKENS.current(key)
                if token is None:
                    response = await core.arequest(
                        "POST",
                        self.token_url,
                        data=dict(self.form),
                        authenticate=False,
                        idempotent=True,
                        deadline=deadline,
                    )
                    token = await self._aaccept(core, response)
        return self._with_token(token)

    def refresh_after_401(self, sent_headers: Mapping[str, str]) -> bool:
        sent = sent_headers.get("Authorization", "").removeprefix("Bearer ")
        return TOKENS.discard(self.cache_key, sent)


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


# --- streamed bodies ------------------------------------------------------------------------------


class ByteStream:
    """A response body being streamed, as the server sent it (nothing skipped, nothing decoded).

    :ivar start: the offset of the body's first byte in the whole object: the ``Content-Range``
        start of a 206, 0 for a 200 (a server that ignored ``Range`` or ``If-Range`` sends it all).
    :ivar total_size: the whole object's size, when the server said (``Content-Range`` total, or
        ``Content-Length`` of a 200).
    :ivar content_length: how many bytes this response delivers, when the server said.
    :ivar validator: what identifies this version of the object for ``If-Range``: its strong
        ``ETag``, else its ``Last-Modified`` date, else ``None``.
    """

    def __init__(self, vendor: str, url: str, response: httpx.Response) -> None:
        self._vendor = vendor
        self._url = url
        self._response = response
        self.status_code = response.status_code
        self.headers: Mapping[str, str] = response.headers
        length = response.headers.get("Content-Length")
        self.content_length = int(length) if length is not None and length.isdigit() else None
        self.start = 0
        self.total_size: int | None = self.content_length
        if response.status_code == 206:
            self.start, end, self.total_size = parse_content_range(
                vendor, url, response.headers.get("Content-Range")
            )
            if self.content_length is not None and self.content_length != end - self.start + 1:
                raise _integrity_error(
                    vendor,
                    url,
                    f"Content-Length {self.content_length} disagrees with Content-Range {self.start}-{end}",
                )
        etag = response.headers.get("ETag")
        # A weak ETag may not be used with If-Range (RFC 9110 §13.1.5).
        self.validator = etag if etag and not etag.startswith("W/") else response.headers.get("Last-Modified")

    def iter_bytes(self, chunk_size: int = 1 << 20) -> Iterator[bytes]:
        """The raw body in chunks, never decoded; a cut connection raises ``VendorConnectionError``."""
        try:
            yield from self._response.iter_raw(chunk_size)
        except httpx.TransportError as exc:
            raise _connection_error(self._vendor, "GET", self._url, exc) from None


def parse_content_range(vendor: str, url: str, value: str | None) -> tuple[int, int, int | None]:
    """``bytes START-END/TOTAL`` (TOTAL may be ``*``) → ``(start, end, total)``."""
    unit, _, spec = (value or "").strip().partition(" ")
    span, _, total = spec.partition("/")
    first, _, last = span.partition("-")
    if (
        unit.lower() != "bytes"
        or not first.isdigit()
        or not last.isdigit()
        or not (total.isdigit() or total == "*")
    ):
        raise _integrity_error(vendor, url, f"a 206 answer with an unreadable Content-Range {value!r}")
    start, end = int(first), int(last)
    size = int(total) if total.isdigit() else None
    if end < start or (size is not None and end >= size):
        raise _integrity_error(vendor, url, f"a 206 answer with an impossible Content-Range {value!r}")
    return start, end, size


def _integrity_error(vendor: str, url: str, problem: str) -> TransferIntegrityError:
    return TransferIntegrityError(f"{vendor} GET {redact_url(url)}: {problem}")


# --- cutting connections from another thread ------------------------------------------------------


class _TrackedStream(httpcore.NetworkStream):
    """A connection of the sync client that :class:`_ConnectionTracker` can cut (TLS included)."""

    def __init__(self, inner: httpcore.NetworkStream, tracker: _ConnectionTracker) -> None:
        self._inner = inner
        self._tracker = tracker
        tracker.add(self)

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, timeout)

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, timeout)

    def close(self) -> None:
        self._tracker.discard(self)
        self._inner.close()

    def start_tls(
        self, ssl_context: Any, server_hostname: str | None = None, timeout: float | None = None
    ) -> Any:
        self._tracker.discard(self)  # the TLS stream owns the socket from now on
        return _TrackedStream(self._inner.start_tls(ssl_context, server_hostname, timeout), self._tracker)

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)

    def cut(self) -> None:
        sock = self._inner.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):  # already closed
                sock.shutdown(socket.SHUT_RDWR)


class _ConnectionTracker(httpcore.NetworkBackend):
    """httpcore's network backend, remembering every open connection so that :meth:`cut_all`
    can make any read or write blocked in one fail at once (connecting, waiting for headers or
    streaming a body): how a cancelled transfer stops its downloads within moments."""

    def __init__(self, inner: httpcore.NetworkBackend, guard: HostGuard) -> None:
        self._inner = inner
        self._guard = guard
        self._open: set[_TrackedStream] = set()
        self._lock = threading.Lock()

    def add(self, stream: _TrackedStream) -> None:
        with self._lock:
            self._open.add(stream)

    def discard(self, stream: _TrackedStream) -> None:
        with self._lock:
            self._open.discard(stream)

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> httpcore.NetworkStream:
        """Connect to ``host``, through :meth:`HostGuard.addresses`: a host the guard does not exempt
        is resolved here and only its permitted addresses are connected to (TLS still verifies the
        host name: httpcore gives it to ``start_tls`` apart from the address)."""
        try:
            addresses = self._guard.addresses(host, port)
        except OSError as exc:  # the name does not resolve: as httpcore reports its own failures
            raise httpcore.ConnectError(f"{type(exc).__name__}: {exc}") from None
        options = {"timeout": timeout, "local_address": local_address, "socket_options": socket_options}
        if addresses is None:
            return _TrackedStream(self._inner.connect_tcp(host, port, **options), self)
        for address in addresses:
            try:
                return _TrackedStream(self._inner.connect_tcp(address, port, **options), self)
            except httpcore.ConnectError:
                if address == addresses[-1]:
                    raise
        raise AssertionError("unreachable: addresses is never empty")  # pragma: no cover

    def connect_unix_socket(self, *args: Any, **kwargs: Any) -> httpcore.NetworkStream:
        return _TrackedStream(self._inner.connect_unix_socket(*args, **kwargs), self)

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)

    def cut_all(self) -> None:
        with self._lock:
            streams = list(self._open)
        for stream in streams:
            stream.cut()


# --- what one event loop shares per connection ----------------------------------------------------


class AsyncRateLimiter:
    """At most ``rate`` requests a second for one connection on one loop: one every ``1 / rate``
    seconds (``burst`` lets that many go at once after a quiet spell; by default none do).

    A token bucket whose waiters are served in turn (FIFO), so a thousand polls due at once leave at
    the rate and none starves. A 429 holds the whole connection for its ``Retry-After``
    (:meth:`hold`): the other waits on it do not spend requests the vendor would refuse, and after the
    hold they start again one by one at the rate, not all in the same instant. One request passes a
    hold: one whose deadline comes before the hold ends (a wait's last look at its deadline is still
    made, as the deadline rule promises; it costs one request per wait).
    """

    def __init__(self, rate: float, burst: float | None = None) -> None:
        if rate <= 0:
            raise ValueError("rate must be a positive number of requests per second")
        self.rate = float(rate)
        self.burst = max(1.0, float(burst if burst is not None else 1.0))
        self._tokens = self.burst
        self._stamp = time.monotonic()
        self._held_until = 0.0
        self._turn = asyncio.Lock()

    def _refill(self, now: float) -> None:
        self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now

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
                    self._refill(now)
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
        """Send nothing more for ``seconds`` (a 429's ``Retry-After``), then restart without a burst."""
        now = time.monotonic()
        self._held_until = max(self._held_until, now + max(0.0, seconds))
        self._tokens = 0.0
        self._stamp = max(now, self._held_until)


@dataclass
class _Shared:
    """The client and the limiter of one share key on one event loop, and how many cores use them."""

    client: httpx.AsyncClient
    limiter: AsyncRateLimiter | None
    users: int = 0


class AsyncClientRegistry:
    """Shared async clients, per event loop and share key, held weakly both ways: only the cores
    using an entry hold it (a client's connections hold its loop, so a registry holding clients
    would keep every loop alive), and a loop that is gone takes its entries with it.

    A share key names a connection and its credentials without holding a secret (the hooks use
    ``conn_type/conn_id/<keyed digest>``); it may appear in logs.
    """

    def __init__(self) -> None:
        self._loops: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, weakref.WeakValueDictionary[Hashable, _Shared]
        ] = weakref.WeakKeyDictionary()
        self._guard = threading.Lock()

    def lease(self, key: Hashable, rate: float | None) -> _Shared:
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
                    limits=httpx.Limits(max_connections=32, max_keepalive_connections=16),
                )
                shared = entries[key] = _Shared(client, AsyncRateLimiter(rate) if rate else None)
            shared.users += 1
            return shared

    async def release(self, key: Hashable, shared: _Shared) -> None:
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

    def entries(self, loop: asyncio.AbstractEventLoop | None = None) -> dict[Hashable, _Shared]:
        """The live entries of ``loop`` (default: the running one): for tests and benchmarks."""
        with self._guard:
            return dict(self._loops.get(loop or asyncio.get_running_loop(), {}).items())


ASYNC_CLIENTS = AsyncClientRegistry()
_SSL_CONTEXT: list[ssl.SSLContext] = []
_SSL_GUARD = threading.Lock()


def shared_ssl_context() -> ssl.SSLContext:
    """httpx's default TLS context (certifi's CAs), built once per process for every async client:
    building one reads the CA bundle (about 0.15 s of CPU here), too long for an event loop."""
    with _SSL_GUARD:
        if not _SSL_CONTEXT:
            _SSL_CONTEXT.append(httpx.create_ssl_context())
        return _SSL_CONTEXT[0]


# --- the core -------------------------------------------------------------------------------------


def _connection_error(vendor: str, method: str, url: str, exc: httpx.TransportError) -> VendorConnectionError:
    cls = _NotSentError if isinstance(exc, httpx.ConnectError) else VendorConnectionError
    return cls(
        vendor,
        status_code=None,
        error_key=None,
        message=f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__,
        method=method,
        url=redact_url(url),
    )


def rate_limit_wait(headers: Mapping[str, str]) -> tuple[float | None, str]:
    """The seconds a 429 asks to wait, and what its rate-limit headers said (for the message).

    ``Retry-After`` (the minimum wait) wins; without it, ``X-Rate-Limit-Reset`` (seconds until the
    limit is whole again: Cordial's C-RL headers, also used by other APIs) is the wait.
    """
    told = {
        name: headers[header]
        for name, header in (
            ("limit", "X-Rate-Limit-Limit"),
            ("remaining", "X-Rate-Limit-Remaining"),
            ("reset in", "X-Rate-Limit-Reset"),
        )
        if headers.get(header)
    }
    said = ", ".join(f"{name} {value}" for name, value in told.items())
    wait = parse_retry_after(headers.get("Retry-After"))
    if wait is None:
        wait = parse_retry_after(headers.get("X-Rate-Limit-Reset"))
    return wait, f" (rate limit: {said})" if said else ""


def provably_not_sent(exc: BaseException) -> bool:
    """Whether a failed request surely did not run at the server: it never connected, or a 429
    refused it. Any other failure of a request that creates something leaves its outcome unknown."""
    return isinstance(exc, (_NotSentError, VendorRateLimitError))


def error_for(vendor: str, method: str, response: httpx.Response) -> VendorAPIError:
    """The provider's exception for an HTTP error response, with the vendor's key and message."""
    key, message = parse_error_body(response)
    status = response.status_code
    retry_after = parse_retry_after(response.headers.get("Retry-After"))
    if status == 429:
        retry_after, said = rate_limit_wait(response.headers)
        message += said
    cls: type[VendorAPIError]
    if status in (401, 403):
        cls = VendorAuthError
    elif status == 404:
        cls = VendorNotFoundError
    elif status == 429:
        cls = VendorRateLimitError
    elif status >= 500:
        cls = VendorServerError
    else:
        cls = VendorAPIError
    return cls(
        vendor,
        status_code=status,
        error_key=key,
        message=message,
        method=method,
        url=redact_url(str(response.request.url)),
        retry_after=retry_after,
    )


class _Call:
    """One logical request, whatever its attempts: method, arguments, whether it may be repeated,
    and the deadline (epoch seconds) that bounds all of it."""

    def __init__(
        self,
        vendor: str,
        method: str,
        url: str,
        arguments: Mapping[str, Any],
        headers: Mapping[str, str] | None,
        idempotent: bool | None,
        deadline: float | None,
    ) -> None:
        self.vendor = vendor
        self.method = method.upper()
        self.url = url
        self._arguments = {k: v for k, v in arguments.items() if v is not None}
        self._headers = dict(headers or {})
        self.idempotent = self.method in IDEMPOTENT_METHODS if idempotent is None else idempotent
        self.deadline = deadline
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
        return _connection_error(self.vendor, self.method, self.url, exc)

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


class HttpCore:
    """Sync and async HTTP for one vendor credential: auth, retries, errors and redaction.

    :param vendor: display name used in logs and errors.
    :param auth: how requests authenticate; ``None`` for presigned URLs.
    :param timeout: seconds for connect, read and write (connect is capped at 10 s).
    :param retry: the retry policy; the default retries 5 times with jittered backoff.
    :param share_key: names the connection and credentials (no secret): cores with the same key
        share one async client and one rate limiter per event loop. ``None``: this core's own.
    :param max_requests_per_second: the async rate cap of the share key on one event loop
        (``None``: no cap). The sync path has none: a worker runs one task.
    :param guard: where requests may go (:class:`~._guard.HostGuard`): checked before a request is
        sent and, on the sync client (the one that downloads), again when a connection is made. The
        default exempts no host: only public https hosts are reached.
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
    ) -> None:
        self.vendor = vendor
        self.guard = guard or HostGuard(vendor)
        self.auth = auth
        self.retry = retry or RetryPolicy()
        self._timeout = httpx.Timeout(timeout, connect=min(10.0, timeout))
        self._client: httpx.Client | None = None
        self._connections: _ConnectionTracker | None = None
        self._client_lock = threading.Lock()
        self.share_key: Hashable = share_key if share_key is not None else object()
        self.max_requests_per_second = max_requests_per_second
        self._leases: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Shared] = (
            weakref.WeakKeyDictionary()
        )

    # clients are created on first use so that building a hook costs nothing
    @property
    def client(self) -> httpx.Client:
        if self._client is None:
            with self._client_lock:
                if self._client is None:
                    quiet_httpx()
                    transport = httpx.HTTPTransport(
                        limits=httpx.Limits(max_connections=32, max_keepalive_connections=16)
                    )
                    # httpx does not expose httpcore's network_backend; its pool keeps it here
                    pool = transport._pool
                    pool._network_backend = self._connections = _ConnectionTracker(
                        pool._network_backend, self.guard
                    )
                    self._client = httpx.Client(
                        timeout=self._timeout, headers={"User-Agent": user_agent()}, transport=transport
                    )
        return self._client

    def interrupt(self) -> None:
        """Cut every connection of the sync client: blocked requests and downloads fail at once."""
        if self._connections is not None:
            self._connections.cut_all()

    def _shared(self) -> _Shared:
        """This core's lease on the running loop's shared client and limiter (taken on first use)."""
        loop = asyncio.get_running_loop()
        shared = self._leases.get(loop)
        if shared is None:
            shared = self._leases[loop] = ASYNC_CLIENTS.lease(self.share_key, self.max_requests_per_second)
        return shared

    async def _ashared(self) -> _Shared:
        """:meth:`_shared`, with the process's TLS context built in a thread the first time."""
        if not _SSL_CONTEXT:
            await asyncio.to_thread(shared_ssl_context)
        return self._shared()

    def _async_client(self) -> httpx.AsyncClient:
        return self._shared().client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    async def aclose(self) -> None:
        """Give back this core's lease on the running loop (the last user closes the shared client)."""
        shared = self._leases.pop(asyncio.get_running_loop(), None)
        if shared is not None:
            await ASYNC_CLIENTS.release(self.share_key, shared)

    # -- one attempt, sync and async; the retry loop and the 401 refresh wrap these

    def _check(
        self, method: str, response: httpx.Response, expected: Collection[int], sent: Mapping[str, str]
    ) -> httpx.Response | None:
        """``response`` if expected; ``None`` if a 401 earned one retry with fresh credentials."""
        if response.status_code in expected:
            return response
        if (
            response.status_code == 401
            and sent
            and self.auth is not None
            and self.auth.refresh_after_401(sent)
        ):
            log.info(
                "%s: %s %s answered 401; refreshing credentials once",
                self.vendor,
                method,
                redact_url(str(response.request.url)),
            )
            return None
        raise error_for(self.vendor, method, response)

    def request(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        data: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        expected: Collection[int] = (200,),
        authenticate: bool = True,
        idempotent: bool | None = None,
        deadline: float | None = None,
    ) -> httpx.Response:
        """Send a request with retries; return the response if its status is ``expected``.

        :param deadline: epoch seconds (``time.time()``) by which the call ends, whatever its retries:
            each attempt's timeouts are capped to the time left, no wait ends after it, and reaching
            it raises :class:`DeadlineExceeded`.
        """
        self.guard.check_url(url)
        call = _Call(
            self.vendor,
            method,
            url,
            {"params": params, "json": json, "data": data},
            headers,
            idempotent,
            deadline,
        )

        def attempt() -> httpx.Response:
            for _ in range(2):  # the second pass only after a 401 with stale credentials
                sent = self.auth.headers(self, deadline=deadline) if authenticate and self.auth else {}
                try:
                    request = self.client.build_request(
                        call.method, url, **call.arguments(sent, self._timeout)
                    )
                    response = self.client.send(request, stream=True)
                    response = _read_body(response, expected, call, _DeadlineCut(deadline, response))
                except httpx.TransportError as exc:
                    raise call.failed(exc) from None
                if self._check(call.method, response, expected, sent) is not None:
                    return response
            raise error_for(self.vendor, call.method, response)

        for try_ in self.retry.retrying(idempotent=call.idempotent, what=call.what, deadline=deadline):
            with try_:
                return attempt()
        raise AssertionError("unreachable: tenacity reraises")  # pragma: no cover

    async def arequest(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        data: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        expected: Collection[int] = (200,),
        authenticate: bool = True,
        idempotent: bool | None = None,
        deadline: float | None = None,
    ) -> httpx.Response:
        """The async twin of :meth:`request`, for triggers: same retries, same errors, same deadline;
        with one, the whole call is also cancelled when it comes."""
        self.guard.check_own(url)
        call = _Call(
            self.vendor,
            method,
            url,
            {"params": params, "json": json, "data": data},
            headers,
            idempotent,
            deadline,
        )

        async def attempt() -> httpx.Response:
            shared = await self._ashared()
            for _ in range(2):
                sent = await self.auth.aheaders(self, deadline=deadline) if authenticate and self.auth else {}
                if shared.limiter is not None:
                    await shared.limiter.acquire(deadline, call.what)
                try:
                    request = shared.client.build_request(
                        call.method, url, **call.arguments(sent, self._timeout)
                    )
                    response = await shared.client.send(request, stream=True)
                    response = await _aread_body(response, expected, call)
                except httpx.TransportError as exc:
                    raise call.failed(exc) from None
                try:
                    if self._check(call.method, response, expected, sent) is not None:
                        return response
                except VendorRateLimitError as exc:
                    if shared.limiter is not None:
                        shared.limiter.hold(
                            min(self.retry.retry_after_max, exc.retry_after)
                            if exc.retry_after is not None
                            else self.retry.backoff_initial
                        )
                    raise
            raise error_for(self.vendor, call.method, response)

        async def attempts() -> httpx.Response:
            async for try_ in self.retry.async_retrying(
                idempotent=call.idempotent, what=call.what, deadline=deadline
            ):
                with try_:
                    return await attempt()
            raise AssertionError("unreachable: tenacity reraises")  # pragma: no cover

        return await call.bounded(attempts)

    @contextmanager
    def stream(
        self,
        url: str,
        *,
        offset: int = 0,
        length: int | None = None,
        if_range: str | None = None,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, Any] | None = None,
        method: str = "GET",
        stop: threading.Event | None = None,
    ) -> Iterator[ByteStream]:
        """Open a streamed body from ``offset`` on (``Range``), retrying until the body starts.

        With ``length``, at most that many bytes are asked for (``Range: bytes=offset-end``, also
        from offset 0): a window of a file whose server bounds each answer's time.

        With ``if_range`` (an ETag or Last-Modified date), a server whose object changed since
        answers with the whole new object instead (a 200): :attr:`ByteStream.start` says which.
        Errors after the body has started (a cut connection) surface from
        :meth:`ByteStream.iter_bytes`; the caller resumes by opening again at its offset. Once
        ``stop`` is set (a cancelled transfer) no attempt is retried.
        """
        method = method.upper()
        if length is not None:
            if length < 1:
                raise ValueError("length must be at least 1 byte")
            range_headers = {"Range": f"bytes={offset}-{offset + length - 1}"}
        else:
            range_headers = {"Range": f"bytes={offset}-"} if offset > 0 else {}
        if range_headers and if_range:
            range_headers["If-Range"] = if_range
        what = f"{self.vendor} {method} {redact_url(url)}"
        self.guard.check_url(url)

        def open_once() -> httpx.Response:
            for _ in range(2):
                sent = self.auth.headers(self) if self.auth else {}
                request = self.client.build_request(
                    method, url, params=params, headers={**sent, **range_headers, **(headers or {})}
                )
                try:
                    response = self.client.send(request, stream=True)
                except httpx.TransportError as exc:
                    raise _connection_error(self.vendor, method, url, exc) from None
                if response.status_code in (200, 206):
                    return response
                try:
                    response = _read_body(response, (), _Call(self.vendor, method, url, {}, None, True, None), _NO_CUT)
                except (httpx.TransportError, VendorAPIError):
                    response.close()  # the error's status says enough without its body
                self._check(method, response, (200, 206), sent)  # raises unless a 401 earns a refresh
            raise error_for(self.vendor, method, response)

        response = None
        for try_ in self.retry.retrying(idempotent=True, what=what, stop=stop):
            with try_:
                response = open_once()
        assert response is not None
        try:
            yield ByteStream(self.vendor, url, response)
        finally:
            response.close()


# --- reading an answer's body, bounded ---------------------------------------------------------------


class _DeadlineCut:
    """Cuts a sync answer's connection at the call's deadline: httpx's timeouts bound each read, so a
    body that trickles a byte at a time would otherwise outlive the deadline by many reads."""

    def __init__(self, deadline: float | None, response: httpx.Response) -> None:
        stream = response.extensions.get("network_stream")
        self._timer: threading.Timer | None = None
        if deadline is not None and isinstance(stream, _TrackedStream):
            self._timer = threading.Timer(max(0.0, deadline - time.time()), stream.cut)
            self._timer.daemon = True

    def __enter__(self) -> _DeadlineCut:
        if self._timer is not None:
            self._timer.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._timer is not None:
            self._timer.cancel()


class _NoCut(_DeadlineCut):
    """No deadline to cut at (a download's body: each read is bounded by the read timeout)."""

    def __init__(self) -> None:
        self._timer = None


_NO_CUT = _NoCut()


def _body_bound(response: httpx.Response, expected: Collection[int]) -> tuple[limits.Limit, bool]:
    """The bound on a body, and whether going past it cuts the body (an error's) or fails the call."""
    if response.status_code in expected:
        return limits.JSON_BODY, False
    return limits.ERROR_BODY, True


def _collect(parts: list[bytes], size: int, chunk: bytes, cap: int, cut: bool, what: str) -> tuple[int, bool]:
    """Add ``chunk`` to ``parts`` within ``cap`` bytes; ``(size, done)``. Past the cap an error's body
    is cut there, any other raises ``LimitExceeded``."""
    size += len(chunk)
    if size <= cap:
        parts.append(chunk)
        return size, False
    if not cut:
        raise limits.JSON_BODY.exceeded(what, f"an answer of more than {cap:,} bytes (after decompression)")
    parts.append(chunk[: len(chunk) - (size - cap)])
    return cap, True


def _read_body(
    response: httpx.Response, expected: Collection[int], call: _Call, cut_at_deadline: _DeadlineCut
) -> httpx.Response:
    """``response`` (sent with ``stream=True``) with its body read: at most ``max_json_body_bytes``
    decoded bytes of an expected answer, the first ``max_error_body_bytes`` of any other, and not
    past the call's deadline."""
    bound, cut = _body_bound(response, expected)
    cap = bound.value
    parts: list[bytes] = []
    size = 0
    try:
        with cut_at_deadline:
            for chunk in response.iter_bytes():
                size, done = _collect(parts, size, chunk, cap, cut, call.what)
                if done:
                    break
    except httpx.DecodingError as exc:
        raise _undecodable(call, response, exc) from None
    finally:
        response.close()
    return _with_body(response, b"".join(parts))


async def _aread_body(response: httpx.Response, expected: Collection[int], call: _Call) -> httpx.Response:
    """:func:`_read_body` for the async client (the call's deadline bounds all of it already)."""
    bound, cut = _body_bound(response, expected)
    cap = bound.value
    parts: list[bytes] = []
    size = 0
    try:
        async for chunk in response.aiter_bytes():
            size, done = _collect(parts, size, chunk, cap, cut, call.what)
            if done:
                break
    except httpx.DecodingError as exc:
        raise _undecodable(call, response, exc) from None
    finally:
        await response.aclose()
    return _with_body(response, b"".join(parts))


def _undecodable(call: _Call, response: httpx.Response, exc: Exception) -> VendorAPIError:
    return VendorAPIError(
        call.vendor,
        status_code=response.status_code,
        error_key=None,
        message=f"the body could not be decoded ({response.headers.get('Content-Encoding')}): {exc}",
        method=call.method,
        url=redact_url(call.url),
    )


def _with_body(response: httpx.Response, content: bytes) -> httpx.Response:
    """A finished response holding ``content`` (decoded already: the encoding headers are dropped)."""
    # A HEAD answer has no body: its Content-Length is the size of what a GET would send.
    head = response.request.method == "HEAD"
    dropped = set() if head else {b"content-encoding", b"content-length", b"transfer-encoding"}
    return httpx.Response(
        response.status_code,
        headers=[(k, v) for k, v in response.headers.raw if k.lower() not in dropped],
        content=None if head else content,
        request=response.request,
        extensions={k: v for k, v in response.extensions.items() if k != "network_stream"},
    )


def json_body(response: httpx.Response, vendor: str) -> Any:
    """The JSON body of a successful response, or a clear error naming the URL (never its query)."""
    if not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        raise VendorAPIError(
            vendor,
            status_code=response.status_code,
            error_key=None,
            message="the response is not JSON",
            method=response.request.method,
            url=redact_url(str(response.request.url)),
        ) from None
