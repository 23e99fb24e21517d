"""S3 answering 5xx: a loopback proxy in front of moto that forwards every request, but answers
the ones a fault matches with S3's 5xx error, either instead of moto (the write did not happen)
or after moto handled it (the write happened; only its answer was lost).

moto's server mode has no way to fail a request on purpose, so the soak points ``aws_default``
(what the provider writes through) at this proxy; everything else (the checks, Cordial's own
deliveries) talks to moto directly. The proxy forwards bytes as they are, headers included, so
signatures and conditional writes (``If-None-Match``) reach moto unchanged.
"""

from __future__ import annotations

import fnmatch
import http.client
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

_HOP_BY_HOP = {
    "connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-connection", "expect",
}


def operation(method: str, path: str) -> str:
    """The S3 operation of a path-style request, as far as the faults need it."""
    query = parse_qs(urlsplit(path).query, keep_blank_values=True)
    if "x-id" in query:  # botocore names the operation in the query
        return query["x-id"][0]
    if method == "PUT" and "partNumber" in query and "uploadId" in query:
        return "UploadPart"
    if method == "POST" and "uploadId" in query:
        return "CompleteMultipartUpload"
    if method == "PUT" and not query:
        return "PutObject"
    return f"{method} other"


@dataclass
class S3Fault:
    """Answer the next ``times`` requests of ``operation`` whose key matches ``key_glob`` with
    ``status``; ``after_forwarding``: moto handles the request first (its answer is dropped)."""

    operation: str
    key_glob: str
    status: int = 500
    times: int = 1
    after_forwarding: bool = False
    hits: int = 0


class S3FaultProxy:
    """The proxy: :meth:`start` it, point a client's ``endpoint_url`` at :attr:`endpoint_url`,
    :meth:`add` faults, :meth:`clear` them."""

    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self.upstream_host, self.upstream_port = parts.hostname or "127.0.0.1", parts.port or 80
        self._faults: list[S3Fault] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    @property
    def endpoint_url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def add(self, fault: S3Fault) -> S3Fault:
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def take(self, method: str, path: str) -> S3Fault | None:
        op = operation(method, path)
        key = unquote(urlsplit(path).path).lstrip("/").split("/", 1)[-1]
        with self._lock:
            for fault in self._faults:
                if fault.operation == op and fault.hits < fault.times and fnmatch.fnmatchcase(key, fault.key_glob):
                    fault.hits += 1
                    return fault
        return None

    def start(self) -> S3FaultProxy:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:  # quiet
                return

            def _handle(self) -> None:
                body = self._body()
                fault = proxy.take(self.command, self.path)
                if fault is not None and not fault.after_forwarding:
                    self._error(fault.status)
                    return
                status, headers, data = proxy.forward(self.command, self.path, dict(self.headers), body)
                if fault is not None:
                    self._error(fault.status)
                    return
                # moto's own Date and Server, not the proxy's beside them (the provider reads S3's clock)
                self.log_request(status)
                self.send_response_only(status)
                for name, value in headers:
                    # a HEAD's Content-Length is the object's size, not this (empty) body's
                    if name.lower() not in _HOP_BY_HOP and (name.lower() != "content-length" or self.command == "HEAD"):
                        self.send_header(name, value)
                if self.command != "HEAD":
                    self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            def _body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    chunks = []
                    while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                        chunks.append(self.rfile.read(size))
                        self.rfile.readline()
                    while self.rfile.readline().strip():  # trailers
                        pass
                    return b"".join(chunks)
                length = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(length) if length else b""

            def _error(self, status: int) -> None:
                code = "SlowDown" if status == 503 else "InternalError"
                body = (
                    f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code>'
                    f"<Message>injected by the soak</Message></Error>"
                ).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/xml")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle

        class Server(ThreadingHTTPServer):
            def handle_error(self, request: object, client_address: object) -> None:
                return  # a client closing its kept-alive connection is no news

        self._server = Server(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, name="s3-fault-proxy", daemon=True).start()
        return self

    def forward(self, method: str, path: str, headers: dict[str, str], body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
        conn = http.client.HTTPConnection(self.upstream_host, self.upstream_port, timeout=120)
        try:
            conn.request(method, path, body=body, headers={k: v for k, v in headers.items() if k.lower() not in _HOP_BY_HOP})
            resp = conn.getresponse()
            return resp.status, resp.getheaders(), resp.read()
        finally:
            conn.close()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
