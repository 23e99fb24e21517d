"""Helpers shared by the transfer tests: a proxy that makes the network cut or stall an S3 answer."""

from __future__ import annotations

import pytest


class FlakyProxy:
    """A TCP proxy in front of a server (moto) that can cut or stall a connection's answer.

    moto cannot drop a connection or go silent mid-body; this proxy makes the network do it, so
    the S3 source meets real short reads and real stalls. Each new connection takes the next
    action from :attr:`actions` (``("cut", n)``: pass ``n`` bytes of the answer then close;
    ``("stall", n)``: pass ``n`` bytes then send nothing more); later connections pass through.
    """

    def __init__(self, target_port: int) -> None:
        import socket
        import threading

        self.target_port = target_port
        self.actions: list[tuple[str, int]] = []
        self.connections = 0
        #: everything clients sent (request lines and headers, lower-cased), to check what a resume asked for
        self.sent = bytearray()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._closed = threading.Event()
        #: set once a connection has gone silent (a "stall" action reached its byte count)
        self.stalled = threading.Event()
        self._sockets: list = []
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        import socket
        import threading

        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            self._sockets += [client, upstream]
            self.connections += 1
            action = self.actions.pop(0) if self.actions else ("pass", -1)
            threading.Thread(target=self._pump, args=(client, upstream, ("record", -1)), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, action), daemon=True).start()

    def _pump(self, source, target, action: tuple[str, int]) -> None:
        import contextlib
        import socket

        kind, limit = action
        passed = 0
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                if kind == "record":
                    self.sent += data.lower()
                elif kind != "pass" and passed + len(data) >= limit:
                    target.sendall(data[: limit - passed])
                    if kind == "stall":
                        self.stalled.set()
                        self._closed.wait()
                    break
                target.sendall(data)
                passed += len(data)
        except OSError:
            pass
        finally:
            for sock in (source, target):  # shutdown first: a close alone waits for the other pump's recv
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                with contextlib.suppress(OSError):
                    sock.close()

    def close(self) -> None:
        import contextlib

        self._closed.set()
        for sock in [self._listener, *self._sockets]:
            with contextlib.suppress(OSError):
                sock.close()


@pytest.fixture
def flaky_s3(moto_s3, monkeypatch):
    """A :class:`FlakyProxy` in front of the session's moto server, reached through the AWS
    connection ``flaky_s3``."""
    import json

    proxy = FlakyProxy(moto_s3.port)
    conn = {
        "conn_type": "aws",
        "login": "testing",
        "password": "testing",
        "extra": {"endpoint_url": proxy.endpoint_url, "region_name": "us-east-1"},
    }
    monkeypatch.setenv("AIRFLOW_CONN_FLAKY_S3", json.dumps(conn))
    yield proxy
    proxy.close()
