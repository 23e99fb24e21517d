"""S3 destination: multipart uploads fed straight from the download stream, committed by one manifest.

No temporary file and never a whole file in memory: the stream is cut into parts of
``part_size`` bytes, and up to ``max_concurrency`` parts (across all files of the run) are
uploaded at once from a thread pool while the next part is read. Parts are read into buffers
allocated once per run and reused (:class:`_PartBuffers`), and handed to botocore as seekable
views (:class:`_PartBody`), never copied whole, so memory stays at about
``(max_concurrency + files in flight) * part_size`` whatever the file sizes. (Joining each part
from its chunks made a fresh part-sized ``bytes`` per part, on top of the chunk list, and glibc's
per-thread arenas kept what those left behind: with four files in flight the process grew well
past that bound.)

The commit protocol (README, "S3: what a reader sees"):

1. Every run writes under its own directory, ``<prefix>/run-<run id>/``, so it never overwrites
   an object that a committed manifest lists. A file that fits in one part is stored with one
   ``PutObject`` (a multipart upload would cost three calls); larger files' multipart uploads
   stay open until every file of the run is in. A failure or a cancellation aborts the uploads
   and deletes the objects already put (``DeleteObjects``, a thousand keys per call).
2. ``commit`` completes the open uploads (concurrently, bounded by ``max_concurrency``), then writes ``<prefix>/_manifest.json`` — the one pointer
   readers trust — with a conditional put (``If-Match`` the manifest read at ``begin``, or
   ``If-None-Match: *``). If another run committed in between, the put fails: a run of the same
   job then throws its copy away and reports the job as already there; a run of another job
   throws its copy away and fails, leaving the other run's commit in place.
3. Only once the new manifest is in place are the files the previous manifest listed deleted,
   and any ``run-*/`` directory under the prefix that no manifest lists and that is older than
   this run (what a killed worker left behind), a thousand keys per ``DeleteObjects`` call.

A manifest read back is input: it is read up to ``[exports] max_json_body_bytes``, and only the
locations inside its own run's directory (``<prefix>/run-<its run id>/``) are trusted or deleted.
A manifest listing anything else (a key elsewhere in the bucket, another prefix's run) is not
intact (the job is moved again), and what it lists there is left alone, with a warning.

So a reader that follows the manifest sees one whole run, never a mix; a failed or killed run
leaves the manifest and the objects it lists exactly as they were. A worker killed outright
can leave incomplete multipart uploads (a bucket lifecycle rule ``AbortIncompleteMultipartUpload``
clears them) and a ``run-*/`` directory (small files put, or uploads completed) that no manifest
lists and the next successful run removes.
"""

from __future__ import annotations

import logging
import mimetypes
import threading
from collections.abc import Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from airflow_provider_exports.exceptions import (
    ExportConfigError,
    TransferCancelled,
    TransferError,
    TransferRefused,
)
from airflow_provider_exports.transfers.engine import manifest as manifest_mod
from airflow_provider_exports.transfers.engine.sink import Sink, StoredFile, TransferContext
from airflow_provider_exports.transfers.engine.streams import gunzip
from airflow_provider_exports.utils import limits

if TYPE_CHECKING:
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    from airflow_provider_exports.transfers.engine.sources import SourceFile

log = logging.getLogger(__name__)

MIN_PART_SIZE = 5 * 1024 * 1024
# S3 checks every part against its CRC32 (as boto3's own transfer manager asks); the composite
# checksum is also cheap for S3 to build, unlike a whole-object CRC64 over every part again.
CHECKSUM_ALGORITHM = "CRC32"
MAX_PARTS = 10_000
# keys per DeleteObjects request (S3's limit)
_DELETE_BATCH = 1000
# seconds an abort waits for parts already on the wire before aborting their uploads
_PART_GRACE_SECONDS = 10.0
_CONTENT_TYPES = {
    ".gz": "application/gzip",
    ".jsonl": "application/x-ndjson",
    ".ndjson": "application/x-ndjson",
    ".json": "application/json",
    ".csv": "text/csv",
    ".parquet": "application/vnd.apache.parquet",
}


@dataclass
class _Upload:
    key: str
    source_name: str
    upload_id: str | None = None
    parts: dict[int, dict[str, Any]] = field(default_factory=dict)
    #: parts submitted so far (the next part's number is one more)
    submitted: int = 0
    #: the futures of parts not yet known to have succeeded (pruned as parts succeed)
    futures: list[Future[None]] = field(default_factory=list)
    error: BaseException | None = None
    #: the object exists (a put file, or a completed multipart upload): an abort deletes it
    completed: bool = False


class _PartBuffers:
    """Part-sized buffers, allocated on demand and reused for the whole run.

    A buffer is taken by a file being read, filled, handed to the upload of its part, and given
    back once that upload has answered. So no more buffers are ever allocated than are in use at
    once: ``max_concurrency`` parts uploading plus one being filled per file in flight.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self._free: list[bytearray] = []
        self._lock = threading.Lock()

    def take(self) -> bytearray:
        with self._lock:
            if self._free:
                return self._free.pop()
        return bytearray(self.size)

    def give(self, buffer: bytearray) -> None:
        with self._lock:
            self._free.append(buffer)

    def clear(self) -> None:
        """Let the free buffers go (the run is over)."""
        with self._lock:
            self._free.clear()


class _PartBody:
    """A part's bytes as a seekable read-only file over a view of its buffer, for ``upload_part``.

    botocore reads a file body in blocks (to compute the part's CRC32, to sign it over plain HTTP,
    to frame it as aws-chunked over HTTPS) and seeks back before a retry; urllib3 sends it in
    blocks. A ``bytes`` body would be a fresh copy of every part, and a ``bytearray`` one is copied
    whole into a ``BytesIO`` on the HTTPS path; this view is never copied whole. (botocore sends a
    file body with ``Expect: 100-continue``, as it does the parts of boto3's own ``upload_file``.)
    """

    def __init__(self, view: memoryview) -> None:
        self._view = view
        self._pos = 0

    def read(self, size: int | None = -1) -> bytes:
        end = len(self._view) if size is None or size < 0 else min(len(self._view), self._pos + size)
        start, self._pos = self._pos, max(self._pos, end)
        return self._view[start:end].tobytes()

    def seek(self, offset: int, whence: int = 0) -> int:
        base = {0: 0, 1: self._pos, 2: len(self._view)}[whence]
        if base + offset < 0:
            raise ValueError("negative seek position")
        self._pos = base + offset
        return self._pos

    def tell(self) -> int:
        return self._pos

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True


def _header_value(value: str) -> str:
    # S3 user metadata travels as HTTP headers: ASCII only.
    return quote(value, safe=" !#$&'()*+,-./:;<=>?@[]^_`{|}~") if not value.isascii() else value


def _error_code(exc: BaseException) -> str:
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


class S3Sink(Sink):
    """Write a run's files under ``s3://bucket/prefix/run-<id>/`` through the amazon provider's S3Hook.

    :param bucket: destination bucket.
    :param prefix: key prefix (the operator renders ``ds``, export ref and job ref into it); the
        manifest lands at ``prefix/_manifest.json``, a run's files at ``prefix/run-<id>/<name>``.
    :param aws_conn_id: the AWS connection, when no ``hook`` is given.
    :param hook: an ``S3Hook`` to use instead of building one.
    :param part_size: bytes per multipart part (at least 5 MiB, S3's minimum).
    :param max_concurrency: parts uploaded at once, over all files of the run.
    :param decompress: store gzip files decompressed (``x.json.gz`` lands as ``x.json``);
        by default bytes pass through unchanged.
    :param extra_args: extra ``CreateMultipartUpload``/``PutObject`` arguments
        (``ServerSideEncryption``, ``SSEKMSKeyId``, ``ACL``, ``StorageClass``...).
    :param allow_empty: commit a job without files (its manifest lists none, and the previous
        run's files are removed); by default such a job fails and the prefix keeps what it had.
    """

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        aws_conn_id: str | None = "aws_default",
        hook: S3Hook | None = None,
        part_size: int = 8 * 1024 * 1024,
        max_concurrency: int = 4,
        decompress: bool = False,
        extra_args: Mapping[str, Any] | None = None,
        allow_empty: bool = False,
    ) -> None:
        if not bucket:
            raise ExportConfigError("bucket", "a destination bucket is required")
        if part_size < MIN_PART_SIZE:
            raise ExportConfigError("part_size", f"must be at least {MIN_PART_SIZE} bytes (S3's minimum)")
        if max_concurrency < 1:
            raise ExportConfigError("max_concurrency", "must be at least 1")
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.aws_conn_id = aws_conn_id
        self._hook = hook
        self.part_size = part_size
        self.max_concurrency = max_concurrency
        self.decompress = decompress
        self.extra_args = dict(extra_args or {})
        self.allow_empty = allow_empty
        self._client: Any = None
        self._pool: ThreadPoolExecutor | None = None
        self._slots = threading.BoundedSemaphore(max_concurrency)
        self._buffers = _PartBuffers(part_size)
        self._uploads: list[_Upload] = []
        self._lock = threading.Lock()
        self._ctx: TransferContext | None = None
        self._base_etag: str | None = None
        self._replaced: Mapping[str, Any] | None = None
        self._began_at: datetime | None = None
        self._aborted = False
        self._committed = False

    # -- references --------------------------------------------------------------------------

    @property
    def hook(self) -> S3Hook:
        if self._hook is None:
            from airflow.providers.amazon.aws.hooks.s3 import S3Hook

            self._hook = S3Hook(aws_conn_id=self.aws_conn_id)
        return self._hook

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = self.hook.get_conn()
        return self._client

    def _under_prefix(self, name: str) -> str:
        return f"{self.prefix}/{name}" if self.prefix else name

    def stored_name(self, name: str) -> str:
        if self.decompress and name.lower().endswith(".gz"):
            return name[:-3]
        return name

    def run_prefix(self) -> str:
        """The key prefix of the current run's files: ``prefix/run-<run id>``."""
        assert self._ctx is not None, "begin() first"
        return manifest_mod.run_dir(self.prefix, self._ctx.run_id)

    def key_for(self, name: str) -> str:
        return f"{self.run_prefix()}/{self.stored_name(name)}"

    def manifest_location(self) -> str:
        return self._under_prefix(manifest_mod.MANIFEST_NAME)

    def describe(self) -> dict[str, Any]:
        return {"kind": "s3", "bucket": self.bucket, "prefix": self.prefix}

    def uri(self) -> str:
        """``s3://bucket/prefix`` for an Airflow Asset or an OpenLineage dataset."""
        return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"

    # -- the manifest ------------------------------------------------------------------------

    def _read_manifest(self) -> tuple[Mapping[str, Any] | None, str | None, datetime | None]:
        """The manifest under the prefix, its ETag, and S3's clock at the time of reading."""
        from botocore.exceptions import ClientError

        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self.manifest_location())
        except ClientError as exc:
            if _error_code(exc) not in ("NoSuchKey", "404"):
                raise
            return None, None, _server_time(exc.response)
        try:
            return manifest_mod.loads(self._read_bounded(response)), response["ETag"], _server_time(response)
        finally:
            response["Body"].close()

    def _read_bounded(self, response: Mapping[str, Any]) -> bytes:
        """The manifest's bytes from a ``GetObject`` answer: at most ``[exports] max_json_body_bytes``."""
        bound = limits.JSON_BODY.value
        announced = int(response.get("ContentLength") or 0)
        raw = response["Body"].read(bound + 1) if announced <= bound else b""
        if announced > bound or len(raw) > bound:
            found = f"{announced:,} bytes" if announced > bound else f"more than {bound:,} bytes"
            raise limits.JSON_BODY.exceeded(
                f"the manifest s3://{self.bucket}/{self.manifest_location()}", found, bound
            )
        return raw

    def _sizes_under(self, prefix: str) -> dict[str, int]:
        paginator = self.client.get_paginator("list_objects_v2")
        return {
            obj["Key"]: obj["Size"]
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix)
            for obj in page.get("Contents", [])
        }

    def _ours(self, location: object, run_id: object) -> bool:
        """Whether ``location`` lies in the run directory ``prefix/run-<run_id>/``."""
        return manifest_mod.in_run_dir(location, self.prefix, run_id)

    def _outside_its_run(self, manifest: Mapping[str, Any], doing: str) -> list[Any]:
        """What ``manifest`` lists outside its run's directory under this prefix (logged)."""
        where = f"s3://{self.bucket}/{self.manifest_location()}"
        return manifest_mod.outside_its_run(manifest, self._ours, where=where, doing=doing)

    def _intact(self, manifest: Mapping[str, Any]) -> bool:
        """Whether every object the manifest lists is in its run's directory, with the size it recorded."""
        if self._outside_its_run(manifest, "not trusted: moving the job again"):
            return False
        files = manifest.get("files") or []
        folders = {str(f.get("location")).rpartition("/")[0] for f in files}
        present: dict[str, int] = {}
        for folder in folders:
            present.update(self._sizes_under(f"{folder}/" if folder else ""))
        for f in files:
            size = f.get("stored_bytes") if f.get("stored_bytes") is not None else f.get("bytes")
            if present.get(str(f.get("location"))) != size:
                log.warning(
                    "The manifest at s3://%s/%s lists %s, which is missing or has another size; moving the job again",
                    self.bucket,
                    self.manifest_location(),
                    f.get("location"),
                )
                return False
        return True

    # -- the run -----------------------------------------------------------------------------

    def begin(self, ctx: TransferContext) -> Mapping[str, Any] | None:
        self._ctx = ctx
        self._uploads = []
        self._aborted = self._committed = False
        self._replaced, self._base_etag, self._began_at = self._read_manifest()
        self._slots = threading.BoundedSemaphore(self.max_concurrency)
        self._buffers = _PartBuffers(self.part_size)
        self._pool = ThreadPoolExecutor(self.max_concurrency, thread_name_prefix="s3-part")
        existing = self._replaced
        same = manifest_mod.same_job(
            existing, vendor=ctx.vendor, export_ref=ctx.export_ref, job_ref=ctx.job_ref
        )
        return existing if same and existing is not None and self._intact(existing) else None

    def _object_args(self, key: str, source_name: str) -> dict[str, Any]:
        assert self._ctx is not None
        ext = "." + key.rsplit(".", 1)[-1].lower() if "." in key.rsplit("/", 1)[-1] else ""
        content_type = _CONTENT_TYPES.get(ext) or mimetypes.guess_type(key)[0] or "application/octet-stream"
        metadata = {
            "vendor": self._ctx.vendor,
            "export-ref": self._ctx.export_ref,
            "job-ref": self._ctx.job_ref,
            "run-id": self._ctx.run_id,
            "source-name": source_name,
        }
        return {
            "ContentType": content_type,
            **self.extra_args,
            "Metadata": {
                k: _header_value(v) for k, v in {**metadata, **self.extra_args.get("Metadata", {})}.items()
            },
        }

    def write_file(self, source: SourceFile, chunks: Iterator[bytes]) -> StoredFile:
        assert self._pool is not None and self._ctx is not None, "begin() first"
        upload = _Upload(self.key_for(source.name), source.name)
        with self._lock:
            if self._aborted:
                raise TransferCancelled(self._ctx.cancellation.reason)
            self._uploads.append(upload)
        data = gunzip(chunks, name=source.name) if self.decompress and source.name.lower().endswith(".gz") else chunks
        buffers, size = self._buffers, self.part_size
        stored = 0
        buffer: bytearray | None = None  # the part being filled, ours until handed to its upload
        filled = 0
        # A full part is sent once more bytes follow: a file that fits in one part is put whole.
        full: bytearray | None = None
        try:
            for chunk in data:
                if upload.error is not None:
                    raise upload.error
                view, offset = memoryview(chunk), 0
                while offset < len(view):
                    if buffer is None:
                        if full is not None:
                            part, full = full, None
                            self._send_part(upload, part, size)
                            stored += size
                        buffer, filled = buffers.take(), 0
                    n = min(len(view) - offset, size - filled)
                    buffer[filled : filled + n] = view[offset : offset + n]
                    filled += n
                    offset += n
                    if filled == size:
                        full, buffer = buffer, None
            last, length = (full, size) if full is not None else (buffer, filled)
            full = buffer = None
            if upload.submitted:
                if last is not None:
                    self._send_part(upload, last, length)
                    stored += length
            else:
                self._send_whole(upload, last, length)  # one PutObject: no multipart upload at all
                stored += length
        finally:
            for unsent in (buffer, full):
                if unsent is not None:
                    buffers.give(unsent)
        for future in upload.futures:
            future.result()
        if upload.error is not None:
            raise upload.error
        return StoredFile(location=upload.key, stored_bytes=stored)

    def discard_file(self, source: SourceFile) -> None:
        with self._lock:
            mine = [u for u in self._uploads if u.source_name == source.name]
            self._uploads = [u for u in self._uploads if u.source_name != source.name]
        for upload in mine:
            wait_futures(upload.futures, timeout=_PART_GRACE_SECONDS)
            self._abort_upload(upload)

    def _send_part(self, upload: _Upload, buffer: bytearray, length: int) -> None:
        """Upload ``buffer[:length]`` as the upload's next part; the buffer is the part's from now on."""
        assert self._pool is not None and self._ctx is not None
        if upload.upload_id is None:
            response = self.client.create_multipart_upload(
                Bucket=self.bucket,
                Key=upload.key,
                ChecksumAlgorithm=CHECKSUM_ALGORITHM,
                **self._object_args(upload.key, upload.source_name),
            )
            with self._lock:
                upload.upload_id = response["UploadId"]
                aborted = self._aborted
            if aborted:  # abort() ran while this upload was being created: it is ours to abort
                self._abort_upload(upload)
                raise TransferCancelled(self._ctx.cancellation.reason)
        number = upload.submitted + 1
        if number > MAX_PARTS:
            raise TransferError(
                f"{upload.key}: more than {MAX_PARTS} parts; raise part_size above {self.part_size} bytes"
            )
        self._submit(upload, number, self._upload_part, upload, number, buffer, length)

    def _send_whole(self, upload: _Upload, buffer: bytearray | None, length: int) -> None:
        """Put a file that fits in one part as one object (``buffer`` is ``None`` for an empty file)."""
        self._submit(upload, 1, self._put_whole, upload, buffer, length)

    def _submit(self, upload: _Upload, number: int, fn: Any, *args: Any) -> None:
        """Run ``fn(*args)`` on the pool once one of the ``max_concurrency`` slots is free."""
        assert self._pool is not None and self._ctx is not None
        cancellation = self._ctx.cancellation
        # Backpressure: the reader waits here while max_concurrency parts are in flight.
        while not self._slots.acquire(timeout=0.5):
            cancellation.check()
            if upload.error is not None:
                raise upload.error
        try:
            cancellation.check()
            future = self._pool.submit(fn, *args)
        except BaseException:
            self._slots.release()
            raise
        upload.submitted = number
        # Only parts still running, failed or cancelled are kept: the list stays short however
        # many parts the file has (a failure is in ``upload.error`` too).
        upload.futures = [
            f for f in upload.futures if not (f.done() and not f.cancelled() and f.exception() is None)
        ]
        upload.futures.append(future)

    def _put_whole(self, upload: _Upload, buffer: bytearray | None, length: int) -> None:
        answered = False
        try:
            if upload.error is not None or self._aborted or (self._ctx and self._ctx.cancellation.is_set):
                answered = True
                return
            body = _PartBody(memoryview(buffer)[:length] if buffer is not None else memoryview(b""))
            self.client.put_object(
                Bucket=self.bucket,
                Key=upload.key,
                Body=body,
                ChecksumAlgorithm=CHECKSUM_ALGORITHM,
                **self._object_args(upload.key, upload.source_name),
            )
            answered = True
            with self._lock:
                upload.completed = True  # in the run's directory, which no manifest lists yet
        except BaseException as exc:
            if upload.error is None:
                upload.error = exc
            raise
        finally:
            if answered and buffer is not None:
                self._buffers.give(buffer)
            self._slots.release()

    def _upload_part(self, upload: _Upload, number: int, buffer: bytearray, length: int) -> None:
        answered = False
        try:
            if upload.error is not None or self._aborted or (self._ctx and self._ctx.cancellation.is_set):
                answered = True  # nothing was sent: the buffer is free
                return
            response = self.client.upload_part(
                Bucket=self.bucket,
                Key=upload.key,
                UploadId=upload.upload_id,
                PartNumber=number,
                Body=_PartBody(memoryview(buffer)[:length]),
                ChecksumAlgorithm=CHECKSUM_ALGORITHM,
            )
            answered = True
            upload.parts[number] = {
                "PartNumber": number,
                "ETag": response["ETag"],
                f"Checksum{CHECKSUM_ALGORITHM}": response[f"Checksum{CHECKSUM_ALGORITHM}"],
            }
        except BaseException as exc:
            if upload.error is None:
                upload.error = exc
            raise
        finally:
            if answered:
                # botocore is done with the body; after a failure it may still be referenced from
                # the exception, so that buffer is left to the garbage collector instead
                self._buffers.give(buffer)
            self._slots.release()

    def _complete(self, upload: _Upload) -> None:
        parts = [upload.parts[n] for n in sorted(upload.parts)]
        self.client.complete_multipart_upload(
            Bucket=self.bucket,
            Key=upload.key,
            UploadId=upload.upload_id,
            MultipartUpload={"Parts": parts},
        )
        upload.completed = True

    def _complete_open_uploads(self) -> None:
        """Complete the multipart uploads (a file put whole is complete already), concurrently.

        Completing makes the objects exist, under this run's directory that nothing lists yet."""
        assert self._pool is not None
        completing = [self._pool.submit(self._complete, u) for u in self._uploads if not u.completed]
        wait_futures(completing)
        for future in completing:
            future.result()

    def commit(self, manifest: Mapping[str, Any]) -> Mapping[str, Any] | None:
        assert self._pool is not None and self._ctx is not None, "begin() first"
        if not self._uploads and not self.allow_empty:
            raise TransferRefused(
                f"{self._ctx.vendor} job {self._ctx.job_ref} has no files; s3://{self.bucket}/{self.prefix} "
                "keeps what it had (set allow_empty=True to commit an empty job)"
            )
        self._complete_open_uploads()
        winner = self._put_manifest(manifest)
        if winner is not None:
            self.abort()
            return winner
        self._committed = True
        self._shutdown()
        self._remove_replaced(manifest)
        self._report_lineage()
        return None

    def _put_manifest(self, manifest: Mapping[str, Any]) -> Mapping[str, Any] | None:
        """Put the manifest if the one read at ``begin`` is still there; else say who won."""
        assert self._ctx is not None
        condition = {"IfMatch": self._base_etag} if self._base_etag else {"IfNoneMatch": "*"}
        try:
            self.client.put_object(
                Bucket=self.bucket,
                Key=self.manifest_location(),
                Body=manifest_mod.dumps(manifest),
                ContentType="application/json",
                **{k: v for k, v in self.extra_args.items() if k != "Metadata"},
                **condition,
            )
            return None
        except Exception as exc:
            current, _, _ = self._read_manifest()
            if current is not None and current.get("run_id") == self._ctx.run_id:
                return None  # the put went through; only its answer was lost
            if _error_code(exc) not in ("PreconditionFailed", "ConditionalRequestConflict", "412", "409"):
                raise
            if manifest_mod.same_job(
                current, vendor=self._ctx.vendor, export_ref=self._ctx.export_ref, job_ref=self._ctx.job_ref
            ):
                assert current is not None
                return current
            other = current.get("job_ref") if current else "an unreadable manifest"
            raise TransferError(
                f"another run committed {other} to s3://{self.bucket}/{self.prefix} while this run moved "
                f"job {self._ctx.job_ref}; this run's files were discarded and the other commit stays"
            ) from None

    def _remove_replaced(self, manifest: Mapping[str, Any]) -> None:
        """After the commit: delete what the replaced manifest listed, and stale run directories."""
        keep = set(manifest_mod.locations(manifest))  # this run's own: strings in its directory
        replaced = self._replaced or {}
        self._outside_its_run(replaced, "those are left alone")
        doomed = {
            loc
            for loc in manifest_mod.locations(replaced)
            if self._ours(loc, replaced.get("run_id")) and loc not in keep
        }
        runs = self._under_prefix(manifest_mod.RUN_DIR_PREFIX)
        mine = self.run_prefix() + "/"
        try:
            paginator = self.client.get_paginator("list_objects_v2")
            # the run directories first, so this run's own (possibly thousands of) files are not listed
            run_dirs = [
                common["Prefix"]
                for page in paginator.paginate(Bucket=self.bucket, Prefix=runs, Delimiter="/")
                for common in page.get("CommonPrefixes", [])
                if common["Prefix"] != mine and manifest_mod.is_run_id(common["Prefix"][len(runs) : -1])
            ]
            for run_dir in run_dirs:
                for page in paginator.paginate(Bucket=self.bucket, Prefix=run_dir):
                    for obj in page.get("Contents", []):
                        stale = self._began_at is None or obj["LastModified"] < self._began_at - timedelta(
                            seconds=1
                        )
                        if obj["Key"] not in keep and stale:
                            doomed.add(obj["Key"])
            self._delete_keys(sorted(doomed))
        except Exception:
            log.warning(
                "Committed, but could not remove the replaced files under s3://%s/%s; readers of the "
                "manifest are not affected, the next run retries",
                self.bucket,
                self.prefix,
                exc_info=True,
            )
            return
        if doomed:
            log.info(
                "Removed %d file(s) of earlier runs under s3://%s/%s", len(doomed), self.bucket, self.prefix
            )

    def _report_lineage(self) -> None:
        from airflow.providers.common.compat.sdk import get_hook_lineage_collector

        collector = get_hook_lineage_collector()
        for upload in self._uploads:
            collector.add_output_asset(
                context=self.hook, scheme="s3", asset_kwargs={"bucket": self.bucket, "key": upload.key}
            )

    def _delete_keys(self, keys: list[str]) -> None:
        """Delete ``keys``, a thousand per request (S3's ``DeleteObjects`` limit)."""
        for start in range(0, len(keys), _DELETE_BATCH):
            batch = keys[start : start + _DELETE_BATCH]
            response = self.client.delete_objects(
                Bucket=self.bucket, Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True}
            )
            failed = response.get("Errors") or []
            if failed:
                first = failed[0]
                raise TransferError(
                    f"could not delete {len(failed)} object(s) under s3://{self.bucket}/{self.prefix}, "
                    f"e.g. {first.get('Key')}: {first.get('Code')} {first.get('Message')}"
                )

    def _abort_upload(self, upload: _Upload) -> None:
        try:
            if upload.completed:
                self.client.delete_object(Bucket=self.bucket, Key=upload.key)
            elif upload.upload_id is not None:
                self.client.abort_multipart_upload(
                    Bucket=self.bucket, Key=upload.key, UploadId=upload.upload_id
                )
        except Exception:
            log.warning("Could not clean up s3://%s/%s", self.bucket, upload.key, exc_info=True)

    def abort(self) -> None:
        with self._lock:
            if self._committed or self._aborted:
                return
            self._aborted = True
            uploads = list(self._uploads)
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
        # parts already on the wire finish or fail within moments; then their uploads can go
        wait_futures([f for u in uploads for f in u.futures], timeout=_PART_GRACE_SECONDS)
        stored = [u for u in uploads if u.completed]
        try:
            self._delete_keys([u.key for u in stored])
        except Exception:
            log.warning("Could not delete this run's objects in one go; one by one", exc_info=True)
            for upload in stored:
                self._abort_upload(upload)
        for upload in uploads:
            if not upload.completed:
                self._abort_upload(upload)
        self._uploads = []
        self._buffers.clear()

    def _shutdown(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        self._buffers.clear()


def _server_time(response: Mapping[str, Any]) -> datetime | None:
    """S3's own clock from a response's ``Date`` header (the stale-run rule uses S3's time, not ours)."""
    from email.utils import parsedate_to_datetime

    date = response.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("date")
    try:
        return parsedate_to_datetime(date) if date else None
    except (TypeError, ValueError):
        return None
