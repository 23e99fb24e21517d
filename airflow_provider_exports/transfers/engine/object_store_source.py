"""A file on any fsspec filesystem as an engine source: SFTP, FTP, GCS, Azure Blob...

For files a vendor *delivers* somewhere other than S3 (Cordial pushes exports to SFTP, FTP, GCS or
Azure Blob Storage): the file is read through the filesystem that Airflow's ``ObjectStoragePath``
(or fsspec) makes from an Airflow connection, in chunks, never whole in memory. A read cut short
(a dropped connection, or a stream that ends before the file's size) resumes at its offset on a
*fresh* filesystem object (the old one's connection is gone), after checking that the file is the
same version (its size and its ETag, generation or modification time, whichever the store gives);
a file replaced in between raises :class:`SourceChanged` and the runner starts it again.

Only the store's location (``sftp://host/path``) is ever logged or put in an error: credentials
stay in the filesystem object, which is made from the connection and never printed.
"""

from __future__ import annotations

import contextlib
import ftplib
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from airflow_provider_exports.exceptions import TransferError
from airflow_provider_exports.transfers.engine.cancellation import OpenReads
from airflow_provider_exports.transfers.engine.sources import DEFAULT_CHUNK_SIZE, OpenedStream, SourceFile

if TYPE_CHECKING:
    from fsspec import AbstractFileSystem

#: the keys of ``fs.info()`` that name a file's version, most precise first: object stores give an
#: ETag or a generation, SFTP and FTP a modification time
VERSION_KEYS = (
    "ETag",
    "etag",
    "generation",
    "version_id",
    "mtime",
    "modify",
    "last_modified",
    "LastModified",
)


class ShortRead(ConnectionError):
    """The store's stream ended before the file's size: a cut the source resumes after."""


def version_of(info: Mapping[str, Any]) -> str | None:
    """The file's version as ``fs.info()`` gives it (see :data:`VERSION_KEYS`), as text."""
    for key in VERSION_KEYS:
        value = info.get(key)
        if value not in (None, ""):
            return f"{key}={value}"
    return None


def renewed(fs: AbstractFileSystem) -> AbstractFileSystem:
    """A new filesystem object like ``fs``, with its own connection: fsspec caches one object per
    set of arguments, and a cut connection stays dead in it."""
    return type(fs)(*fs.storage_args, **{**fs.storage_options, "skip_instance_cache": True})


def _cuts() -> tuple[type[BaseException], ...]:
    """What the stores' own clients raise for a dropped connection (those installed): SSH (asyncssh,
    under sshfs), aiohttp (under adlfs and gcsfs) and the Azure SDK."""
    found: list[type[BaseException]] = []
    with contextlib.suppress(ImportError):
        import asyncssh

        found.append(asyncssh.Error)
    with contextlib.suppress(ImportError):
        import aiohttp

        found.append(aiohttp.ClientError)
    with contextlib.suppress(ImportError):
        from azure.core.exceptions import ServiceRequestError, ServiceResponseError

        found += [ServiceRequestError, ServiceResponseError]
    return tuple(found)


def _not_resumable(exc: BaseException) -> bool:
    # what another try cannot change: the file or the folder is not there, or not ours to read
    return isinstance(exc, (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError))


class ObjectStoreSourceFile(SourceFile):
    """One file on an fsspec filesystem, read by ranges.

    :param connect: makes the filesystem, when the file is first opened.
    :param path: the file's path as the filesystem names it (``bucket/key``, ``/folder/file``).
    :param location: the file's address for logs and the manifest, without credentials
        (``sftp://host/folder/file``).
    :param name: the file's name at the destination (its format is told from it).
    :param size: the file's size when listed (checked against what arrives).
    """

    def __init__(
        self,
        connect: Callable[[], AbstractFileSystem],
        path: str,
        *,
        location: str,
        name: str | None = None,
        size: int | None = None,
    ) -> None:
        super().__init__(name or path.rsplit("/", 1)[-1], size)
        self.path = path
        self.location = location
        self._connect = connect
        self._fs: AbstractFileSystem | None = None
        self._renew = False  # the next open needs a new connection (after a cut)
        self._reads = OpenReads(self.name)

    def _filesystem(self) -> AbstractFileSystem:
        if self._fs is None:
            self._fs = self._connect()
        elif self._renew:
            self._fs = renewed(self._fs)
        self._renew = False
        return self._fs

    @contextmanager
    def open(
        self, offset: int, chunk_size: int = DEFAULT_CHUNK_SIZE, *, if_range: str | None = None
    ) -> Iterator[OpenedStream]:
        self._reads.check()
        fs = self._filesystem()
        fs.invalidate_cache()  # the filesystem object is shared in the process: no stale listing
        try:
            info = fs.info(self.path)
        except FileNotFoundError:
            raise TransferError(f"{self.location} does not exist") from None
        total = int(info["size"]) if info.get("size") is not None else None
        handle = fs.open(self.path, "rb", block_size=chunk_size)
        with self._reads.holding(handle):
            if offset:
                handle.seek(offset)
            yield OpenedStream(
                self._chunks(handle, offset, total, chunk_size),
                total,
                start=offset,
                validator=version_of(info),
            )

    def _chunks(self, handle: Any, offset: int, total: int | None, chunk_size: int) -> Iterator[bytes]:
        position = offset
        while total is None or position < total:
            chunk = handle.read(chunk_size if total is None else min(chunk_size, total - position))
            if not chunk:
                if total is not None:
                    raise ShortRead(f"{self.location}: the stream ended at byte {position} of {total}")
                return
            position += len(chunk)
            yield bytes(chunk)

    def resumable(self, exc: BaseException) -> bool:
        """Cut connections, timeouts and short streams resume; a missing or forbidden file does not."""
        if _not_resumable(exc):
            return False
        return isinstance(
            exc, (OSError, EOFError, TimeoutError, ftplib.error_temp, ftplib.error_reply, *_cuts())
        )

    def before_retry(self, exc: BaseException) -> None:
        # the cut took the filesystem's connection with it: the next open makes a new one
        self._renew = True

    def interrupt(self) -> None:
        for handle in self._reads.interrupt():
            with contextlib.suppress(Exception):
                handle.close()
