"""Helpers shared by the transfer tests: a proxy that makes the network cut or stall an S3 answer."""

from __future__ import annotations

import logging

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


# -- the servers Cordial delivers to: SFTP (asyncssh's server) and FTP (pyftpdlib) ------------------

DELIVERY_USER, DELIVERY_PASSWORD = "cordial-upload", "delivery-Passw0rd-for-tests-only"


class SftpServer:
    """An SFTP server on a loopback port (asyncssh, password auth), serving ``root`` as ``/``."""

    def __init__(self, root) -> None:
        import asyncio
        import threading

        import asyncssh

        asyncssh.set_log_level(logging.WARNING)  # its connection chatter, at every open and close
        self.root = root
        self._loop = asyncio.new_event_loop()
        started = threading.Event()
        found: list = []

        class Server(asyncssh.SSHServer):
            def begin_auth(self, username: str) -> bool:
                return True

            def password_auth_supported(self) -> bool:
                return True

            def validate_password(self, username: str, password: str) -> bool:
                return (username, password) == (DELIVERY_USER, DELIVERY_PASSWORD)

        async def listen() -> None:
            found.append(
                await asyncssh.listen(
                    "127.0.0.1",
                    0,
                    server_host_keys=[asyncssh.generate_private_key("ssh-ed25519")],
                    server_factory=Server,
                    sftp_factory=lambda chan: asyncssh.SFTPServer(chan, chroot=str(root).encode()),
                )
            )
            started.set()

        def run() -> None:
            asyncio.set_event_loop(self._loop)
            self._loop.run_until_complete(listen())
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        assert started.wait(30), "the SFTP server did not start"
        self._server = found[0]
        self.port = self._server.sockets[0].getsockname()[1]

    def connection(self, port: int | None = None) -> dict:
        return {
            "conn_type": "sftp",
            "host": "127.0.0.1",
            "port": port or self.port,
            "login": DELIVERY_USER,
            "password": DELIVERY_PASSWORD,
            # the test server's host key is made anew each run
            "extra": {"no_host_key_check": "true"},
        }

    def close(self) -> None:
        import asyncio

        async def shut() -> None:
            # the sessions clients left open too, or their tasks are destroyed pending at exit
            self._server.close()
            await self._server.wait_closed()
            sessions = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in sessions:
                task.cancel()
            await asyncio.gather(*sessions, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(shut(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


class FtpServer:
    """An FTP server on a loopback port (pyftpdlib), serving ``root`` as ``/``. The next ``cuts``
    ranged downloads (``REST`` past byte 0: the ones a reader makes after its first block) end with
    the data connection dropped ``cut_after`` bytes in (426)."""

    def __init__(self, root) -> None:
        import threading

        from pyftpdlib.authorizers import DummyAuthorizer
        from pyftpdlib.filesystems import AbstractedFS
        from pyftpdlib.handlers import FTPHandler
        from pyftpdlib.servers import FTPServer

        self.root = root
        self.cut_after = 0
        self.cuts = 0
        server = self

        class CuttingFile:
            def __init__(self, file) -> None:
                self.file, self.name, self.closed = file, file.name, False
                self.limit: int | None = None

            def read(self, size: int = -1) -> bytes:
                if self.limit is None:  # the first read: from where the download starts (REST)
                    start = self.file.tell()
                    self.limit = start + server.cut_after if start and server.cuts > 0 else -1
                if self.limit < 0:
                    return self.file.read(size)
                if self.file.tell() >= self.limit:
                    server.cuts -= 1
                    raise ConnectionResetError("the test cut the download")
                return self.file.read(min(size, self.limit - self.file.tell()) if size >= 0 else self.limit)

            def seek(self, *args):
                return self.file.seek(*args)

            def tell(self) -> int:
                return self.file.tell()

            def close(self) -> None:
                self.closed = True
                self.file.close()

        class Files(AbstractedFS):
            def open(self, filename, mode):
                handle = super().open(filename, mode)
                return CuttingFile(handle) if "r" in mode else handle
                return handle

        authorizer = DummyAuthorizer()
        authorizer.add_user(DELIVERY_USER, DELIVERY_PASSWORD, str(root), perm="elradfmwMT")
        handler = type(
            "Handler",
            (FTPHandler,),
            {"authorizer": authorizer, "abstracted_fs": Files, "use_sendfile": False},
        )
        self._server = FTPServer(("127.0.0.1", 0), handler)
        self.port = self._server.address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"timeout": 0.2, "handle_exit": False}, daemon=True
        )
        self._thread.start()

    def connection(self) -> dict:
        return {
            "conn_type": "ftp",
            "host": "127.0.0.1",
            "port": self.port,
            "login": DELIVERY_USER,
            "password": DELIVERY_PASSWORD,
        }

    def close(self) -> None:
        self._server.close_all()
        self._thread.join(10)


@pytest.fixture(scope="session")
def sftp_server(tmp_path_factory):
    server = SftpServer(tmp_path_factory.mktemp("sftp-root"))
    yield server
    server.close()


@pytest.fixture(scope="session")
def ftp_server(tmp_path_factory):
    server = FtpServer(tmp_path_factory.mktemp("ftp-root"))
    yield server
    server.close()


#: Azurite's well-known development account (public, in Azure's documentation)
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def azurite_binary() -> str | None:
    """Azurite's blob server: ``$AZURITE_BLOB``, the copy .ci/_setup.sh installs into ``.azurite/``,
    or one on the PATH."""
    import os
    import shutil
    from pathlib import Path

    local = Path(__file__).resolve().parents[2] / ".azurite" / "node_modules" / ".bin" / "azurite-blob"
    for candidate in (os.environ.get("AZURITE_BLOB"), str(local), shutil.which("azurite-blob")):
        if candidate and Path(candidate).is_file() and shutil.which("node"):
            return candidate
    return None


class AzuriteServer:
    """Azurite's blob service on a loopback port, in memory, with one container ``deliveries``."""

    container = "deliveries"

    def __init__(self, binary: str) -> None:
        import socket
        import subprocess
        import time

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self._process = subprocess.Popen(
            [
                binary,
                "--blobHost",
                "127.0.0.1",
                "--blobPort",
                str(self.port),
                "--inMemoryPersistence",
                "--skipApiVersionCheck",
                "--loose",
                "--silent",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.5).close()
                break
            except OSError:
                if self._process.poll() is not None or time.monotonic() > deadline:
                    self.close()
                    raise RuntimeError("Azurite did not start") from None
                time.sleep(0.1)
        self.service().create_container(self.container)

    def connection_string(self, port: int | None = None) -> str:
        return (
            f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
            f"BlobEndpoint=http://127.0.0.1:{port or self.port}/{AZURITE_ACCOUNT};"
        )

    def connection(self, port: int | None = None) -> dict:
        return {"conn_type": "wasb", "extra": {"connection_string": self.connection_string(port)}}

    def service(self):
        from azure.storage.blob import BlobServiceClient

        return BlobServiceClient.from_connection_string(self.connection_string())

    def close(self) -> None:
        self._process.kill()  # in memory: nothing to keep
        self._process.wait(10)


@pytest.fixture(scope="session")
def azurite():
    binary = azurite_binary()
    if binary is None:
        pytest.skip(
            "Azurite is not installed (.ci/_setup.sh installs it into .azurite/ with npm; needs node)"
        )
    server = AzuriteServer(binary)
    yield server
    server.close()
