"""Any object store as a destination: a sink over Airflow's ``ObjectStoragePath`` (fsspec).

``file://``, ``gs://``, ``abfs://``, ``s3://`` — whatever store Airflow's object storage knows,
with an Airflow connection for its credentials; each file streams through the store's own
``open("wb")``. The layout and commit protocol are the S3 sink's (docs/engine.md, "Other object
stores"); the manifest is written in one request on an object store (an object appears whole),
through a temporary file renamed over it on a local filesystem, and on a local filesystem a
location a manifest lists must not lead out of the root through a link.

fsspec has no conditional write, so the S3 sink's guarantee against a concurrent run is weaker
here: the manifest is read again right before and right after the write, and a run that finds
another run's manifest there gives way (the same job: skipped; another job: it fails). Two
commits landing within moments of each other can still both report success; the later manifest
wins, and it and its files stay whole.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from airflow_provider_exports.exceptions import ExportConfigError, TransferCancelled, TransferRefused
from airflow_provider_exports.transfers.engine import manifest as manifest_mod
from airflow_provider_exports.transfers.engine.sink import RunDirectorySink, StoredFile, TransferContext
from airflow_provider_exports.utils import limits

if TYPE_CHECKING:
    from airflow_provider_exports.transfers.engine.sources import SourceFile

log = logging.getLogger(__name__)

_LOCAL = ("file", "local")
#: bytes an object store's writer buffers before it sends a part (s3fs's default is 50 MiB)
DEFAULT_BLOCK_SIZE = 8 * 1024 * 1024


def check_destination(destination: str) -> str:
    """A destination URI with a scheme (``file:///data/x``, ``gs://bucket/prefix``...)."""
    scheme, sep, rest = str(destination).partition("://")
    if not sep or not scheme or not rest.strip("/"):
        raise ExportConfigError(
            "destination",
            f"{destination!r}: give an object storage URI with a scheme and a path, e.g. "
            "file:///data/exports, gs://bucket/prefix, abfs://container/prefix, s3://bucket/prefix",
        )
    return str(destination)


class ObjectStoreSink(RunDirectorySink):
    """Write a run's files under ``<destination>/run-<id>/`` through Airflow's object storage.

    :param destination: the root URI; the manifest lands at ``<destination>/_manifest.json``.
    :param conn_id: the Airflow connection of the store (``aws_default``, ``google_cloud_default``...);
        ``None`` for a local path or the store's default credentials.
    :param decompress: store gzip files decompressed (``x.json.gz`` lands as ``x.json``).
    :param allow_empty: commit a job without files; by default such a job fails and the
        destination keeps what it had.
    :param block_size: bytes an object store's writer buffers per part.
    """

    def __init__(
        self,
        destination: str,
        *,
        conn_id: str | None = None,
        decompress: bool = False,
        allow_empty: bool = False,
        block_size: int = DEFAULT_BLOCK_SIZE,
    ) -> None:
        self.destination = check_destination(destination)
        self.conn_id = conn_id
        self.decompress = decompress
        self.allow_empty = allow_empty
        self.block_size = block_size
        self.protocol = self.destination.partition("://")[0].lower()
        self._root: Any = None
        self._lock = threading.Lock()
        self._written: set[str] = set()
        self._base_raw: bytes | None = None
        self._aborted = False
        self._committed = False

    @property
    def local(self) -> bool:
        return self.protocol in _LOCAL

    @property
    def root(self) -> Any:
        """The ``ObjectStoragePath``; made at run time (Airflow 3.3 resolves its connection at once)."""
        if self._root is None:
            from airflow.providers.common.compat.sdk import ObjectStoragePath

            self._root = ObjectStoragePath(self.destination, conn_id=self.conn_id)
        return self._root

    @property
    def fs(self) -> Any:
        return self.root.fs

    @property
    def base(self) -> str:
        """The root as the filesystem's own path: ``bucket/prefix``, or ``/abs/path`` when local."""
        path = str(self.root.path).rstrip("/")
        return path if not self.local or path.startswith("/") else "/" + path

    @property
    def bucket(self) -> str:
        return "" if self.local else self.base.split("/", 1)[0]

    def _path(self, *parts: str) -> str:
        return "/".join([self.base, *parts])

    def location(self, path: str) -> str:
        """A path as the manifest records it: the key within the bucket, or the local path."""
        return path[len(self.bucket) + 1 :] if self.bucket else path

    def path_of(self, location: str) -> str:
        return f"{self.bucket}/{location}" if self.bucket else location

    def uri(self) -> str:
        return f"{self.protocol}://{self.base}"

    def describe(self) -> dict[str, Any]:
        return {"kind": "object_storage", "url": self.uri()}

    def manifest_location(self) -> str:
        return self.location(self._path(manifest_mod.MANIFEST_NAME))

    def stored_name(self, name: str) -> str:
        parts = name.split("/")
        if name.startswith("/") or any(p in ("", ".", "..") for p in parts):
            raise TransferRefused(
                f"the export has a file named {name!r}: a filesystem would fold its empty or '.' path "
                "segment into another name"
            )
        return super().stored_name(name)

    def run_dir(self) -> str:
        assert self._ctx is not None, "begin() first"
        return manifest_mod.run_dir(self.base, self._ctx.run_id)

    def _read_raw(self) -> bytes | None:
        """The manifest's bytes, at most ``[exports] max_json_body_bytes`` of them."""
        bound = limits.JSON_BODY.value
        try:
            raw = bytes(self.fs.cat_file(self._path(manifest_mod.MANIFEST_NAME), start=0, end=bound + 1))
        except FileNotFoundError:
            return None
        if len(raw) > bound:
            raise limits.JSON_BODY.exceeded(
                f"the manifest {self.uri()}/{manifest_mod.MANIFEST_NAME}", f"more than {bound:,} bytes", bound
            )
        return raw

    def _ours(self, location: object, run_id: object) -> bool:
        """Whether ``location`` lies in the run directory ``<root>/run-<run_id>/``, and on a local
        filesystem stays there once links are followed (a planted link must not lead out)."""
        if not isinstance(location, str):
            return False
        path = self.path_of(location)
        if not manifest_mod.in_run_dir(path, self.base, run_id):
            return False
        if not self.local:
            return True
        folder = os.path.dirname(path)
        return os.path.realpath(folder) == os.path.realpath(self.base) + folder[len(self.base) :]

    def _sizes_in(self, folder: str) -> dict[str, int]:
        try:
            found = self.fs.find(self.path_of(folder), detail=True)
        except FileNotFoundError:
            return {}
        return {self.location(self.fs._strip_protocol(p)): int(i.get("size") or 0) for p, i in found.items()}

    def begin(self, ctx: TransferContext) -> Mapping[str, Any] | None:
        self._ctx = ctx
        self._written = set()
        self._aborted = self._committed = False
        self.fs.invalidate_cache()  # the filesystem object is shared in the process: no stale listing
        self._base_raw = self._read_raw()
        self._replaced = manifest_mod.loads(self._base_raw) if self._base_raw is not None else None
        return self._trusted()

    def write_file(self, source: SourceFile, chunks: Iterator[bytes]) -> StoredFile:
        assert self._ctx is not None, "begin() first"
        path = f"{self.run_dir()}/{self.stored_name(source.name)}"
        with self._lock:
            if self._aborted:
                raise TransferCancelled(self._ctx.cancellation.reason)
            self._written.add(path)
        if self.local:
            self.fs.makedirs(path.rpartition("/")[0], exist_ok=True)
        data = self._stored_bytes(source, chunks)
        stored = 0
        handle = self.fs.open(path, "wb", block_size=self.block_size)
        try:
            for chunk in data:
                handle.write(chunk)
                stored += len(chunk)
            handle.close()  # an object store's writer sends its last part and completes the object
        except BaseException:
            _discard(handle)
            self._remove(path)
            raise
        if self._aborted:  # abort() ran while this file was written: it is ours to remove
            self._remove(path)
            raise TransferCancelled(self._ctx.cancellation.reason)
        return StoredFile(location=self.location(path), stored_bytes=stored)

    def discard_file(self, source: SourceFile) -> None:
        path = f"{self.run_dir()}/{self.stored_name(source.name)}"
        self._remove(path)

    def commit(self, manifest: Mapping[str, Any]) -> Mapping[str, Any] | None:
        assert self._ctx is not None, "begin() first"
        self._refuse_empty(len(self._written))
        before = self._read_raw()
        if before != self._base_raw:
            return self._lost_to(before)
        self._write_manifest(manifest_mod.dumps(manifest))
        after = self._read_raw()
        if after is None or (manifest_mod.loads(after) or {}).get("run_id") != self._ctx.run_id:
            # another run's manifest replaced ours within moments: it wins (no conditional writes)
            return self._lost_to(after)
        self._committed = True
        self._remove_replaced(manifest)
        return None

    def _lost_to(self, raw: bytes | None) -> Mapping[str, Any]:
        """Another run committed ``raw``: this run's files go, and its manifest is returned when it
        moved the same job (else :class:`TransferError`)."""
        self.abort()
        return self._winner(manifest_mod.loads(raw) if raw is not None else None)

    def _write_manifest(self, body: bytes) -> None:
        final = self._path(manifest_mod.MANIFEST_NAME)
        if not self.local:
            self.fs.pipe_file(final, body)  # one request: the object appears whole
            return
        assert self._ctx is not None
        temporary = f"{self.run_dir()}/.{manifest_mod.MANIFEST_NAME}.tmp"
        self.fs.makedirs(self.run_dir(), exist_ok=True)
        self.fs.pipe_file(temporary, body)
        self.fs.mv(temporary, final)  # a rename: readers see the old manifest or the new one

    def _remove_earlier(self, replaced: list[str], keep: set[Any]) -> str:
        """Remove the replaced files, and the ``run-*`` directories whose run began before this one
        (by the run ids' UTC time: what killed runs left, or runs that will find this manifest at
        their commit and give way). A run that began later may still commit: its directory stays."""
        kept = {self.path_of(loc) for loc in keep}
        assert self._ctx is not None
        # The UTC second only: the random part says nothing of order, and a run that began in
        # this same second may be a concurrent one still to commit.
        older_than = self._ctx.run_id.partition("-")[0]
        stale: list[str] = []
        for entry in self.fs.ls(self.base, detail=False):
            path = self.fs._strip_protocol(entry).rstrip("/")
            name = path.rpartition("/")[2]
            run_id = name[len(manifest_mod.RUN_DIR_PREFIX) :]
            if (
                name.startswith(manifest_mod.RUN_DIR_PREFIX)
                and manifest_mod.is_run_id(run_id)
                and run_id.partition("-")[0] < older_than
                and not any(k.startswith(path + "/") for k in kept)
            ):
                stale.append(path)
        for location in replaced:
            self._remove(self.path_of(location), quiet=False)
        for path in stale:
            self.fs.rm(path, recursive=True)
        return f"{len(replaced)} file(s) and {len(stale)} directories" if replaced or stale else ""

    def _remove(self, path: str, *, quiet: bool = True) -> None:
        try:
            self.fs.rm(path)
        except FileNotFoundError:
            pass
        except Exception:
            if not quiet:
                raise
            log.warning("Could not remove %s://%s", self.protocol, path, exc_info=True)

    def abort(self) -> None:
        with self._lock:
            if self._committed or self._aborted or self._ctx is None:
                return
            self._aborted = True
        try:
            if self.fs.exists(self.run_dir()):
                self.fs.rm(self.run_dir(), recursive=True)
        except Exception:
            log.warning("Could not remove %s://%s", self.protocol, self.run_dir(), exc_info=True)


def _discard(handle: Any) -> None:
    """Drop a file being written without publishing it."""
    from fsspec.spec import AbstractBufferedFile

    try:
        if isinstance(handle, AbstractBufferedFile):
            # an object store's writer: abort its upload; close() would complete it with what it has
            handle.discard()
            handle.closed = True
        else:
            handle.close()  # a local file: the caller removes it
    except Exception:
        log.debug("Discarding a partial file failed", exc_info=True)
