"""The sync client's connections: a download's streamed body, and cutting a connection from
another thread (a cancelled transfer, or a call's deadline while its answer trickles in).

httpcore's network backend is wrapped (:class:`ConnectionTracker`) so that every connection the
sync client opens can be shut down at once; the same wrapper is where the host guard checks the
addresses a name resolves to (:meth:`~._guard.HostGuard.addresses`) before connecting.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpcore
import httpx

from airflow_provider_exports.exceptions import TransferIntegrityError
from airflow_provider_exports.hooks._answers import connection_error, redact_url
from airflow_provider_exports.hooks._guard import HostGuard


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
            raise connection_error(self._vendor, "GET", self._url, exc) from None


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


class TrackedStream(httpcore.NetworkStream):
    """A connection of the sync client that :class:`ConnectionTracker` can cut (TLS included)."""

    def __init__(self, inner: httpcore.NetworkStream, tracker: ConnectionTracker) -> None:
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
        return TrackedStream(self._inner.start_tls(ssl_context, server_hostname, timeout), self._tracker)

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)

    def cut(self) -> None:
        sock = self._inner.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):  # already closed
                sock.shutdown(socket.SHUT_RDWR)


class ConnectionTracker(httpcore.NetworkBackend):
    """httpcore's network backend, remembering every open connection so that :meth:`cut_all`
    can make any read or write blocked in one fail at once (connecting, waiting for headers or
    streaming a body): how a cancelled transfer stops its downloads within moments. It connects
    over TCP only, through the guard (a Unix socket, never asked for, gets httpcore's NotImplementedError)."""

    def __init__(self, inner: httpcore.NetworkBackend, guard: HostGuard) -> None:
        self._inner = inner
        self._guard = guard
        self._open: set[TrackedStream] = set()
        self._lock = threading.Lock()

    def add(self, stream: TrackedStream) -> None:
        with self._lock:
            self._open.add(stream)

    def discard(self, stream: TrackedStream) -> None:
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
            return TrackedStream(self._inner.connect_tcp(host, port, **options), self)
        for address in addresses[:-1]:
            with contextlib.suppress(httpcore.ConnectError):  # the next address may answer
                return TrackedStream(self._inner.connect_tcp(address, port, **options), self)
        return TrackedStream(self._inner.connect_tcp(addresses[-1], port, **options), self)

    def cut_all(self) -> None:
        with self._lock:
            streams = list(self._open)
        for stream in streams:
            stream.cut()


@contextlib.contextmanager
def deadline_cut(deadline: float | None, response: httpx.Response) -> Iterator[None]:
    """Cut a sync answer's connection at the call's deadline: httpx's timeouts bound each read, so a
    body that trickles a byte at a time would otherwise outlive the deadline by many reads."""
    stream = response.extensions.get("network_stream")
    if deadline is None or not isinstance(stream, TrackedStream):
        yield
        return
    timer = threading.Timer(max(0.0, deadline - time.time()), stream.cut)
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()
