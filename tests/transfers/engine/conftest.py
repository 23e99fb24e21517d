"""Helpers for the engine tests: Sitecore jobs in the sandbox as engine sources, local files as sources."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from airflow_provider_exports.hooks._http import HttpCore, RetryPolicy
from airflow_provider_exports.transfers.engine import HttpSourceFile, OpenedStream, SourceFile

FAST_RETRY = RetryPolicy(max_attempts=3, backoff_initial=0.01, backoff_max=0.05)


@dataclass
class SitecoreJob:
    """One seeded Sitecore CDP export job and what the sandbox says its files are."""

    export_ref: str
    job_ref: str
    expected: list[tuple[str, int, str, int]]  # name, size, sha256, rows
    resolver_calls: list[str]
    sources: list[HttpSourceFile]


@pytest.fixture
def sitecore_job(sandbox) -> Callable[..., SitecoreJob]:
    """Seed a Sitecore export job and build the engine's sources for its presigned files."""
    from airflow_provider_exports.hooks.sitecore_cdp import SitecoreCDPHook

    made: list[tuple[SitecoreCDPHook, HttpCore]] = []

    def make(
        export: str = "loyalty_members",
        *,
        rows: int = 3000,
        rows_per_file: int = 1000,
        target_bytes: int | None = None,
        retry: RetryPolicy = FAST_RETRY,
    ) -> SitecoreJob:
        sandbox.sitecore.add_export(export, rows_per_file=rows_per_file)
        job_ref = sandbox.sitecore.add_job(export, rows=rows, target_bytes=target_bytes)
        hook = SitecoreCDPHook(retry=FAST_RETRY)
        core = HttpCore("Sitecore CDP", retry=retry)
        made.append((hook, core))
        calls: list[str] = []

        def resolver_for(name: str) -> Callable[[], str]:
            def resolve() -> str:
                calls.append(name)
                return next(f.url for f in hook.get_execution_output(job_ref).files if f.name == name)

            return resolve

        listing = hook.get_execution_output(job_ref)
        sources = [
            HttpSourceFile(
                core, f.name, None, resolver_for(f.name), url=f.url, attributes={"sizeKB": f.size_kb}
            )
            for f in listing.files
        ]
        return SitecoreJob(export, job_ref, sandbox.sitecore.expected_files(job_ref), calls, sources)

    yield make
    for hook, core in made:
        core.close()
        hook.close()


class LocalFileSource(SourceFile):
    """A file on disk as a source (for formats the vendor sandboxes do not serve over HTTP)."""

    def __init__(self, path: Path, name: str | None = None) -> None:
        super().__init__(name or path.name, path.stat().st_size)
        self.path = path

    def open(self, offset: int, chunk_size: int = 1 << 20, *, if_range: str | None = None):
        @contextmanager
        def opened() -> Iterator[OpenedStream]:
            with self.path.open("rb") as f:
                f.seek(offset)
                yield OpenedStream(
                    iter(lambda: f.read(chunk_size), b""), self.path.stat().st_size, start=offset
                )

        return opened()


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
def flaky_s3(moto_s3):
    """A :class:`FlakyProxy` in front of the session's moto server."""
    proxy = FlakyProxy(moto_s3.port)
    yield proxy
    proxy.close()
