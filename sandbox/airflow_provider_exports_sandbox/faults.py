"""Fault injection for the vendor sandbox servers.

A :class:`FaultPlan` holds the faults a test switched on (429, 5xx, dropped connections, slow
responses, expired tokens/URLs); :class:`FaultMiddleware` applies them to every request of one
vendor app. The middleware is vendor-neutral: the bodies of 429/5xx answers come from the
server's ``rate_limited_response`` / ``server_error_response``.
"""

from __future__ import annotations

import asyncio
import fnmatch
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from starlette.responses import Response
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

FAULT_KINDS = (
    "rate_limit",
    "server_error",
    "drop_connection",
    "slow",
    "throttle",
    "shift_range",
    "expire_tokens",
    "expire_urls",
    "answer",
)


@dataclass
class Fault:
    """One switched-on fault; ``times`` counts down, ``None`` means forever; the first ``skip``
    matching requests pass untouched (the storm starts at the downloads, after a listing)."""

    kind: str
    path_glob: str
    times: int | None = 1
    method: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    skip: int = 0

    def matches(self, method: str, path: str) -> bool:
        if self.method is not None and self.method.upper() != method.upper():
            return False
        return fnmatch.fnmatchcase(path, self.path_glob)


class FaultPlan:
    """The faults switched on for one server, consumed request by request (first match wins)."""

    def __init__(
        self,
        on_expire_tokens: Callable[[], None] | None = None,
        on_expire_urls: Callable[[], None] | None = None,
    ) -> None:
        self._faults: list[Fault] = []
        self._lock = threading.Lock()
        self._on_expire_tokens = on_expire_tokens
        self._on_expire_urls = on_expire_urls

    def _add(self, fault: Fault) -> Fault:
        if fault.times is not None and fault.times < 1:
            raise ValueError("times must be >= 1 or None (forever)")
        with self._lock:
            self._faults.append(fault)
        return fault

    def rate_limit(
        self,
        path_glob: str,
        times: int | None = 1,
        retry_after: str = "1",
        *,
        method: str | None = None,
        skip: int = 0,
    ) -> Fault:
        """Answer matching requests with the vendor's 429 and ``Retry-After``."""
        return self._add(
            Fault("rate_limit", path_glob, times, method, {"retry_after": str(retry_after)}, skip=skip)
        )

    def server_error(
        self, path_glob: str, times: int | None = 1, status: int = 503, *, method: str | None = None
    ) -> Fault:
        """Answer matching requests with the vendor's 5xx body."""
        return self._add(Fault("server_error", path_glob, times, method, {"status": int(status)}))

    def drop_connection(
        self, path_glob: str, after_bytes: int, times: int | None = 1, *, method: str | None = None
    ) -> Fault:
        """Send the headers (full Content-Length) and ``after_bytes`` body bytes, then close."""
        return self._add(
            Fault("drop_connection", path_glob, times, method, {"after_bytes": int(after_bytes)})
        )

    def slow(
        self, path_glob: str, seconds: float, times: int | None = 1, *, method: str | None = None
    ) -> Fault:
        """Delay matching requests by ``seconds`` before handling them."""
        return self._add(Fault("slow", path_glob, times, method, {"seconds": float(seconds)}))

    def throttle(
        self, path_glob: str, bytes_per_second: int, times: int | None = 1, *, method: str | None = None
    ) -> Fault:
        """Send matching responses' bodies at about ``bytes_per_second`` (a slow link, a download in flight)."""
        if bytes_per_second < 1:
            raise ValueError("bytes_per_second must be >= 1")
        return self._add(
            Fault("throttle", path_glob, times, method, {"bytes_per_second": int(bytes_per_second)})
        )

    def shift_range(
        self, path_glob: str, by_bytes: int, times: int | None = 1, *, method: str | None = None
    ) -> Fault:
        """Answer a ``Range: bytes=N-`` request as if it asked for ``N + by_bytes``: a faulty server
        whose 206 (with an honest ``Content-Range``) does not start where the client asked."""
        return self._add(Fault("shift_range", path_glob, times, method, {"by_bytes": int(by_bytes)}))

    def answer(
        self,
        path_glob: str,
        times: int | None = 1,
        *,
        status: int = 200,
        json: Any = None,
        body: bytes | str = b"",
        headers: dict[str, str] | None = None,
        method: str | None = None,
        skip: int = 0,
        bytes_per_second: int | None = None,
    ) -> Fault:
        """Answer matching requests with exactly this: a misbehaving vendor (a listing naming any
        URL, pages that never end, a body far larger than it should be). ``json`` wins over ``body``;
        ``bytes_per_second`` sends the body at about that rate (a body that trickles)."""
        import json as json_module

        if json is not None:
            raw = json_module.dumps(json).encode()
            headers = {"content-type": "application/json", **(headers or {})}
        else:
            raw = body.encode() if isinstance(body, str) else bytes(body)
        return self._add(
            Fault(
                "answer",
                path_glob,
                times,
                method,
                {
                    "status": int(status),
                    "body": raw,
                    "headers": dict(headers or {}),
                    "bytes_per_second": bytes_per_second,
                },
                skip=skip,
            )
        )

    def expire_tokens(self) -> None:
        """Every token issued so far is rejected from now on with the vendor's 401."""
        if self._on_expire_tokens is not None:
            self._on_expire_tokens()

    def expire_urls(self) -> None:
        """Every presigned URL issued so far gets 403 "Request has expired" from now on."""
        if self._on_expire_urls is not None:
            self._on_expire_urls()

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    @property
    def active(self) -> list[Fault]:
        with self._lock:
            return list(self._faults)

    def take(self, method: str, path: str, headers: dict[str, str] | None = None) -> Fault | None:
        """Return and consume the first fault matching this request, if any (``shift_range``
        matches only requests that carry a ``Range`` header)."""
        with self._lock:
            for fault in self._faults:
                if fault.kind == "shift_range" and "range" not in (headers or {}):
                    continue
                if fault.matches(method, path):
                    if fault.skip > 0:
                        fault.skip -= 1
                        continue
                    if fault.times is not None:
                        fault.times -= 1
                        if fault.times <= 0:
                            self._faults.remove(fault)
                    return fault
        return None

    def apply_spec(self, spec: dict[str, Any]) -> Fault | None:
        """Switch on a fault from its JSON form (``POST /_sandbox/faults``)."""
        spec = dict(spec)
        kind = spec.pop("kind", None)
        if kind not in FAULT_KINDS:
            raise ValueError(f"kind must be one of {', '.join(FAULT_KINDS)}")
        if kind == "expire_tokens":
            self.expire_tokens()
            return None
        if kind == "expire_urls":
            self.expire_urls()
            return None
        method: Callable[..., Fault] = getattr(self, kind)
        return method(**spec)


class _DropConnection(Exception):
    """Raised inside the wrapped ``send`` to abandon a response mid-body."""


class FaultMiddleware:
    """ASGI middleware applying a server's :class:`FaultPlan` to its HTTP requests; ``respond``
    (``kind, path, **params``) is the vendor's answer to an injected ``rate_limit``/``server_error``."""

    def __init__(self, app: ASGIApp, plan: FaultPlan, respond: Callable[..., Response]) -> None:
        self.app = app
        self.plan = plan
        self.respond = respond

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith("/_sandbox/"):
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        fault = self.plan.take(scope["method"], scope["path"], headers)
        if fault is None:
            await self.app(scope, receive, send)
            return
        if fault.kind == "slow":
            await asyncio.sleep(fault.params["seconds"])
            await self.app(scope, receive, send)
        elif fault.kind == "rate_limit":
            response = self.respond("rate_limit", scope["path"], **fault.params)
            await response(scope, receive, send)
        elif fault.kind == "server_error":
            response = self.respond("server_error", scope["path"], **fault.params)
            await response(scope, receive, send)
        elif fault.kind == "drop_connection":
            await self._drop(scope, receive, send, fault.params["after_bytes"])
        elif fault.kind == "throttle":
            await self._throttle(scope, receive, send, fault.params["bytes_per_second"])
        elif fault.kind == "shift_range":
            await self.app(_shifted(scope, headers, fault.params["by_bytes"]), receive, send)
        elif fault.kind == "answer":
            params = fault.params
            await _answer(send, params["status"], params["headers"], params["body"], params["bytes_per_second"])
        else:  # pragma: no cover - kinds are validated when added
            await self.app(scope, receive, send)

    async def _throttle(self, scope: Scope, receive: Receive, send: Send, bytes_per_second: int) -> None:
        async def slow_send(message: Message) -> None:
            if message["type"] != "http.response.body":
                await send(message)
                return
            body: bytes = message.get("body", b"")
            step = max(1, bytes_per_second // 10)
            for i in range(0, len(body), step):
                await send({"type": "http.response.body", "body": body[i : i + step], "more_body": True})
                await asyncio.sleep(0.1)
            if not message.get("more_body", False):
                await send({"type": "http.response.body", "body": b"", "more_body": False})

        await self.app(scope, receive, slow_send)

    async def _drop(self, scope: Scope, receive: Receive, send: Send, after_bytes: int) -> None:
        remaining = after_bytes

        async def truncating_send(message: Message) -> None:
            nonlocal remaining
            if message["type"] != "http.response.body":
                await send(message)
                return
            body: bytes = message.get("body", b"")
            if len(body) < remaining or (len(body) == remaining and message.get("more_body", False)):
                remaining -= len(body)
                await send(message)
                return
            if remaining:
                await send({"type": "http.response.body", "body": body[:remaining], "more_body": True})
            raise _DropConnection

        try:
            await self.app(scope, receive, truncating_send)
        except _DropConnection:
            # Returning with the response unfinished makes uvicorn close the transport, so the
            # client sees fewer bytes than Content-Length promised.
            return


async def _answer(
    send: Send, status: int, headers: dict[str, str], body: bytes, bytes_per_second: int | None
) -> None:
    """Send ``body`` as given (a ``Content-Length`` unless ``headers`` names one), in 1 MiB messages,
    or at about ``bytes_per_second`` (a tenth of it every 0.1 s)."""
    names = {k.lower() for k in headers}
    raw = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
    if "content-length" not in names and "transfer-encoding" not in names:
        raw.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": raw})
    step = max(1, bytes_per_second // 10) if bytes_per_second else 1 << 20
    for i in range(0, len(body), step):
        await send({"type": "http.response.body", "body": body[i : i + step], "more_body": True})
        if bytes_per_second:
            await asyncio.sleep(0.1)
    await send({"type": "http.response.body", "body": b"", "more_body": False})


def _shifted(scope: Scope, headers: dict[str, str], by_bytes: int) -> Scope:
    """``scope`` with its ``Range: bytes=N-`` moved to ``N + by_bytes`` (and no ``If-Range``)."""
    unit, _, spec = headers.get("range", "").partition("=")
    first, _, last = spec.partition("-")
    if unit.strip() != "bytes" or not first.strip().isdigit():
        return scope
    moved = f"bytes={max(0, int(first) + by_bytes)}-{last}"
    kept = [(k, v) for k, v in scope.get("headers", []) if k.lower() not in (b"range", b"if-range")]
    return {**scope, "headers": [*kept, (b"range", moved.encode("latin-1"))]}
