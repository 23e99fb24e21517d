"""An S3 object as an engine source: ranged ``GetObject`` through the amazon provider's ``S3Hook``.

For files a vendor *delivers* into a bucket (Cordial writes its exports into the customer's S3):
the object is streamed (never whole in memory), a read cut short resumes at its offset with
``Range``, and every resume sends ``If-Match`` with the ETag of the first answer, so an object
replaced in between raises :class:`SourceChanged` (the runner starts the file again) instead of
splicing two versions. :meth:`S3SourceFile.interrupt` shuts the socket of a read in flight, so a
cancelled transfer stops at once even while S3 sends nothing.

The key is input too (built from a vendor's file name, or carried through XCom): it is refused
when it holds a ``.`` or ``..`` segment, or a character that could spoof a log (see
:func:`check_key`), so the object read is the one the key names, whatever store serves it.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from airflow_provider_exports.exceptions import (
    SourceChanged,
    TransferRefused,
)
from airflow_provider_exports.hooks._streams import parse_content_range
from airflow_provider_exports.transfers.engine.cancellation import OpenReads
from airflow_provider_exports.transfers.engine.s3_errors import S3Client, error_code
from airflow_provider_exports.transfers.engine.sources import (
    DEFAULT_CHUNK_SIZE,
    OpenedStream,
    SourceFile,
    check_characters,
    escaped,
)

if TYPE_CHECKING:
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook


def check_key(key: object) -> str:
    """``key`` if it names one object plainly: :func:`check_characters` accepts it and it has no
    ``.`` or ``..`` segment; else :class:`TransferRefused`.

    S3 itself keeps ``a/../b`` as a key of its own, but an S3-compatible store, a proxy or a
    gateway onto a filesystem may fold it into ``b``: another object than the one named.
    """
    key = check_characters(key, "S3 key")
    if any(part in (".", "..") for part in key.split("/")):
        raise TransferRefused(
            f"the S3 key {escaped(key)} has a '.' or '..' part, which a store may fold into another key"
        )
    return key


def _socket_of(body: Any) -> socket.socket | None:
    """The socket under a botocore ``StreamingBody`` (urllib3 1.x and 2.x)."""
    raw = getattr(body, "_raw_stream", None)
    for conn in (getattr(raw, "connection", None), getattr(raw, "_connection", None)):
        sock = getattr(conn, "sock", None)
        if isinstance(sock, socket.socket):
            return sock
    fp = getattr(getattr(raw, "_fp", None), "fp", None)
    sock = getattr(getattr(fp, "raw", None), "_sock", None)
    return sock if isinstance(sock, socket.socket) else None


class S3SourceFile(SourceFile):
    """One S3 object, read through ``hook``'s boto3 client.

    :param hook: the amazon provider's ``S3Hook`` for the bucket's AWS connection.
    :param bucket: the bucket.
    :param key: the object's key (checked by :func:`check_key`).
    :param name: the file's name at the destination (its format is told from it); default: the
        key's last part.
    :param size: the object's size when known beforehand (checked against what arrives).
    :param bucket_argument: what gave ``bucket``, as S3's errors name it.
    """

    def __init__(
        self,
        hook: S3Hook,
        bucket: str,
        key: str,
        name: str | None = None,
        *,
        size: int | None = None,
        bucket_argument: str = "bucket",
    ) -> None:
        check_key(key)
        super().__init__(name or key.rsplit("/", 1)[-1], size)
        self._hook = hook
        self.bucket = bucket
        self.key = key
        self.bucket_argument = bucket_argument
        self._reads = OpenReads(self.name)

    @property
    def location(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    @contextmanager
    def open(
        self, offset: int, chunk_size: int = DEFAULT_CHUNK_SIZE, *, if_range: str | None = None
    ) -> Iterator[OpenedStream]:
        self._reads.check()
        request: dict[str, Any] = {"Bucket": self.bucket, "Key": self.key}
        if offset:
            request["Range"] = f"bytes={offset}-"
            if if_range:
                request["IfMatch"] = if_range  # S3 answers 412 once the object is another one
        try:
            answer = S3Client(self._hook.get_conn(), self.bucket_argument).get_object(**request)
        except Exception as exc:
            if error_code(exc) in ("PreconditionFailed", "412"):
                raise SourceChanged(
                    f"{self.name} changed at the source while it was read ({self.location} no longer "
                    f"has ETag {if_range})"
                ) from None
            raise
        body = answer["Body"]
        with self._reads.holding(body):
            start, total = 0, answer.get("ContentLength")
            if answer.get("ContentRange"):  # a 206: where this answer starts, and the whole size
                start, _end, total = parse_content_range("S3", self.location, answer["ContentRange"])
            yield OpenedStream(
                body.iter_chunks(chunk_size), total, start=start, validator=answer.get("ETag")
            )

    def resumable(self, exc: BaseException) -> bool:
        """Reads cut short by the network (a short body, a reset, a read timeout) resume."""
        import botocore.exceptions as bex
        import urllib3.exceptions as uex

        transient = (
            bex.IncompleteReadError,
            bex.ReadTimeoutError,
            bex.ConnectionError,
            bex.ResponseStreamingError,
            uex.ProtocolError,
            uex.ReadTimeoutError,
            ConnectionError,
            TimeoutError,
        )
        return isinstance(exc, transient)

    def interrupt(self) -> None:
        for body in self._reads.interrupt():
            sock = _socket_of(body)
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
