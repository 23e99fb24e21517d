"""Base class of the vendor sandbox servers.

A :class:`VendorServer` runs one vendor's FastAPI app with uvicorn in a background thread on a
loopback port, records every request (never header values), applies the fault plan, issues and
checks tokens, and exposes ``/_sandbox/faults`` so a sandbox started from the CLI can be driven
from outside. Subclasses add the vendor's routes and its error bodies.
"""

from __future__ import annotations

import secrets
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, ClassVar
from urllib.parse import parse_qsl

from airflow_provider_exports_sandbox.faults import FaultMiddleware, FaultPlan
from airflow_provider_exports_sandbox.synthetic import materialize

if TYPE_CHECKING:
    import uvicorn
    from fastapi import FastAPI
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.types import ASGIApp, Message, Receive, Scope, Send


@dataclass
class RecordedRequest:
    """One request as the server saw it; header names only, never their values (but ``Range``'s
    and ``Accept``'s, which are no secrets: tests check how downloads are windowed and what media
    type a client asks for)."""

    method: str
    path: str
    query: dict[str, str]
    status: int
    headers_present: set[str] = field(default_factory=set)
    range: str | None = None
    accept: str | None = None


class TokenRegistry:
    """Opaque bearer tokens with a lifetime; ``expire_all`` revokes every token issued so far."""

    def __init__(self) -> None:
        self._tokens: dict[str, float] = {}
        self._lock = threading.Lock()

    def issue(self, ttl_s: float) -> str:
        token = secrets.token_urlsafe(32)
        with self._lock:
            self._tokens[token] = time.monotonic() + ttl_s
        return token

    def is_valid(self, token: str | None) -> bool:
        if not token:
            return False
        with self._lock:
            deadline = self._tokens.get(token)
        return deadline is not None and time.monotonic() < deadline

    def expire_all(self) -> None:
        with self._lock:
            self._tokens = dict.fromkeys(self._tokens, 0.0)

    def __len__(self) -> int:
        with self._lock:
            return len(self._tokens)


class _RecordingMiddleware:
    """Outermost middleware: appends a :class:`RecordedRequest` once the status is known."""

    def __init__(self, app: ASGIApp, server: VendorServer) -> None:
        self.app = app
        self.server = server

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith("/_sandbox/"):
            await self.app(scope, receive, send)
            return
        recorded = False
        generation = self.server.generation  # a request that outlives a reset is not the next test's

        def record(status: int) -> None:
            nonlocal recorded
            if not recorded:
                recorded = True
                query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True))
                raw = scope.get("headers", [])
                headers = {k.decode("latin-1").lower() for k, _ in raw}
                ranges = [v.decode("latin-1") for k, v in raw if k.lower() == b"range"]
                accepts = [v.decode("latin-1") for k, v in raw if k.lower() == b"accept"]
                self.server._record(
                    RecordedRequest(
                        scope["method"],
                        scope["path"],
                        query,
                        status,
                        headers,
                        ranges[0] if ranges else None,
                        ", ".join(accepts) if accepts else None,
                    ),
                    generation,
                )

        async def recording_send(message: Message) -> None:
            # Recorded before the status line leaves, so a client that has its answer finds it logged.
            if message["type"] == "http.response.start":
                record(int(message["status"]))
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        finally:
            record(500)


class VendorServer:
    """One vendor's API on ``http://127.0.0.1:<port>``; see the sandbox contract for the API."""

    vendor: ClassVar[str] = "vendor"
    #: Settings restored by :meth:`reset`, so one test's tuning never leaks into the next.
    default_settings: ClassVar[dict[str, Any]] = {
        "job_seconds": 1.0,
        "url_ttl_seconds": 3600.0,
        "token_ttl_seconds": 86400.0,
    }

    def __init__(self, cache_dir: Path) -> None:
        self.cache_dir = Path(cache_dir)
        self.host = "127.0.0.1"
        self.port: int | None = None
        self.requests: list[RecordedRequest] = []
        #: bumped by reset(): requests that arrived before it stay out of the new log
        self.generation = 0
        self.tokens = TokenRegistry()
        self.signing_key = secrets.token_bytes(32)
        self.issued_signatures: set[str] = set()
        self.revoked_signatures: set[str] = set()
        self.faults = FaultPlan(on_expire_tokens=self.tokens.expire_all, on_expire_urls=self._revoke_urls)
        self.job_seconds: float = 1.0
        self.url_ttl_seconds: float = 3600.0
        self.token_ttl_seconds: float = 86400.0
        self._apply_default_settings()
        self._lock = threading.RLock()
        self._uvicorn: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None

    # -- subclass hooks -------------------------------------------------------------------------
    def build_app(self) -> FastAPI:
        raise NotImplementedError

    def rate_limited_response(self, retry_after: str) -> Response:
        raise NotImplementedError

    def server_error_response(self, status: int) -> Response:
        raise NotImplementedError

    def unauthorized_response(self) -> Response:
        raise NotImplementedError

    def fault_response(self, kind: str, path: str, **params: Any) -> Response:
        """The answer to an injected ``rate_limit``/``server_error``; override for per-path bodies."""
        if kind == "rate_limit":
            return self.rate_limited_response(str(params["retry_after"]))
        return self.server_error_response(int(params["status"]))

    def reset_state(self) -> None:
        """Clear seeded exports/jobs; subclasses extend."""

    def connection(self) -> dict[str, Any]:
        """The Airflow Connection (JSON form) that points a hook at this server."""
        raise NotImplementedError

    # -- lifecycle ------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        if self.port is None:
            raise RuntimeError(f"{self.vendor} sandbox is not started")
        return f"http://{self.host}:{self.port}"

    @property
    def started(self) -> bool:
        return self._uvicorn is not None

    def start(self, port: int = 0, timeout: float = 10.0) -> str:
        """Start serving on ``port`` (0 = a free one); return the base URL."""
        import uvicorn

        if self._uvicorn is not None:
            return self.url
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        app = self.build_app()
        self._add_control_routes(app)
        asgi: ASGIApp = _RecordingMiddleware(FaultMiddleware(app, self.faults, self.fault_response), self)

        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, port))
        sock.set_inheritable(True)
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            asgi,
            log_config=None,
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_keep_alive=30,
            timeout_graceful_shutdown=1,  # a test that left a slow answer pending need not wait for it
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(
            target=server.run,
            kwargs={"sockets": [sock]},
            name=f"sandbox-{self.vendor}",
            daemon=True,
        )
        thread.start()
        deadline = time.monotonic() + timeout
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                sock.close()
                self.port = None
                raise RuntimeError(f"{self.vendor} sandbox did not start")
            time.sleep(0.01)
        self._uvicorn, self._thread, self._socket = server, thread, sock
        return self.url

    def stop(self, timeout: float = 10.0) -> None:
        server, thread = self._uvicorn, self._thread
        if server is None or thread is None:
            return
        server.should_exit = True
        thread.join(timeout)
        if thread.is_alive():
            server.force_exit = True
            thread.join(timeout)
        if self._socket is not None:
            self._socket.close()
        self._uvicorn = None
        self._thread = None
        self._socket = None
        self.port = None

    def reset(self) -> None:
        """Clear faults, the request log and seeded state; restore default settings."""
        with self._lock:
            self.generation += 1
            self.requests.clear()
        self.faults.clear()
        self._apply_default_settings()
        self.reset_state()

    def _apply_default_settings(self) -> None:
        for name, value in self.default_settings.items():
            setattr(self, name, value)

    # -- helpers for subclasses -----------------------------------------------------------------
    def _record(self, request: RecordedRequest, generation: int) -> None:
        with self._lock:
            if generation == self.generation:  # else it arrived before the last reset()
                self.requests.append(request)

    def requests_to(self, path_glob: str, method: str | None = None) -> list[RecordedRequest]:
        """Recorded requests whose path matches an fnmatch pattern (and method, if given)."""
        import fnmatch

        return [
            r
            for r in list(self.requests)
            if fnmatch.fnmatchcase(r.path, path_glob) and (method is None or r.method == method.upper())
        ]

    def _revoke_urls(self) -> None:
        with self._lock:
            self.revoked_signatures |= self.issued_signatures

    def bearer_token(self, request: Request) -> str | None:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        return token.strip() if scheme.lower() == "bearer" else None

    def materialize(self, key: str, writer_fn: Callable[[BinaryIO], Any]) -> Path:
        """Build a cached file once (see :func:`synthetic.materialize`)."""
        return materialize(self.cache_dir, key, writer_fn)

    def _add_control_routes(self, app: FastAPI) -> None:
        from starlette.responses import JSONResponse, Response

        async def add_fault(request: Request) -> Response:
            try:
                spec = await request.json()
                fault = self.faults.apply_spec(spec)
            except (ValueError, TypeError) as exc:
                return JSONResponse({"error": str(exc)}, status_code=400)
            body: dict[str, Any] = {"ok": True}
            if fault is not None:
                body["fault"] = {"kind": fault.kind, "path_glob": fault.path_glob, "times": fault.times}
            return JSONResponse(body, status_code=201)

        async def clear_faults(request: Request) -> Response:
            self.faults.clear()
            return Response(status_code=204)

        async def list_requests(request: Request) -> Response:
            return JSONResponse(
                [
                    {"method": r.method, "path": r.path, "query": r.query, "status": r.status}
                    for r in list(self.requests)
                ]
            )

        # Plain Starlette routes: no signature analysis, so the local imports above suffice.
        app.add_route("/_sandbox/faults", add_fault, methods=["POST"], include_in_schema=False)
        app.add_route("/_sandbox/faults", clear_faults, methods=["DELETE"], include_in_schema=False)
        app.add_route("/_sandbox/requests", list_requests, methods=["GET"], include_in_schema=False)
