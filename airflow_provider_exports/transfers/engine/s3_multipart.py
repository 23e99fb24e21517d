"""The S3 sink's writer: files streamed into objects of one run, in parts uploaded concurrently.

No temporary file and never a whole file in memory: the stream is cut into parts of
``part_size`` bytes, and up to ``max_concurrency`` parts (across all files of the run) are
uploaded at once from a thread pool while the next part is read. Parts are read into buffers
allocated once per run and reused (:class:`_PartBuffers`), and handed to botocore as seekable
views (:class:`_PartBody`), never copied whole, so memory stays at about
``(max_concurrency + files in flight) * part_size`` whatever the file sizes. (Joining each part
from its chunks made a fresh part-sized ``bytes`` per part, on top of the chunk list, and glibc's
per-thread arenas kept what those left behind: with four files in flight the process grew well
past that bound.)

A file that fits in one part is stored with one ``PutObject`` (a multipart upload would cost three
calls); larger files' multipart uploads stay open until :meth:`MultipartWriter.complete`. An
abort waits a moment for parts already on the wire, then aborts the open uploads and deletes the
objects already put (``DeleteObjects``, a thousand keys per call). Where the objects go and when
they count (the run directory, the manifest) is the sink's: :mod:`.s3_sink`.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow_provider_exports.exceptions import TransferCancelled, TransferError
from airflow_provider_exports.transfers.engine.s3_errors import error_code

if TYPE_CHECKING:
    from airflow_provider_exports.transfers.engine.cancellation import Cancellation

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


@dataclass
class _Upload:
    key: str
    source_name: str
    #: the ``CreateMultipartUpload``/``PutObject`` arguments of the object (type, metadata...)
    object_args: Mapping[str, Any]
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


def delete_keys(client: Any, bucket: str, keys: Sequence[str], where: str) -> None:
    """Delete ``keys``, a thousand per request (S3's ``DeleteObjects`` limit); a key S3 could not
    delete raises :class:`TransferError` naming ``where``."""
    for start in range(0, len(keys), _DELETE_BATCH):
        batch = keys[start : start + _DELETE_BATCH]
        response = client.delete_objects(
            Bucket=bucket, Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True}
        )
        failed = response.get("Errors") or []
        if failed:
            first = failed[0]
            raise TransferError(
                f"could not delete {len(failed)} object(s) under {where}, "
                f"e.g. {first.get('Key')}: {first.get('Code')} {first.get('Message')}"
            )


class MultipartWriter:
    """The files of one run into S3 objects (see the module docstring); made at the run's ``begin``.

    :param client: the boto3 S3 client.
    :param part_size: bytes per part (S3's minimum is :data:`MIN_PART_SIZE`).
    :param max_concurrency: parts uploaded at once, over all files of the run.
    :param cancellation: the run's stop signal: no part starts once it is set.
    :param where: the destination as log and error messages name it (``s3://bucket/prefix``).
    """

    def __init__(
        self,
        client: Any,
        bucket: str,
        *,
        part_size: int,
        max_concurrency: int,
        cancellation: Cancellation,
        where: str,
    ) -> None:
        self.client = client
        self.bucket = bucket
        self.part_size = part_size
        self.where = where
        self._cancellation = cancellation
        self._pool = ThreadPoolExecutor(max_concurrency, thread_name_prefix="s3-part")
        self._slots = threading.BoundedSemaphore(max_concurrency)
        self._buffers = _PartBuffers(part_size)
        self._uploads: list[_Upload] = []
        self._lock = threading.Lock()
        self._aborted = False

    @property
    def keys(self) -> list[str]:
        """The objects of the files written so far (in the order their writes began)."""
        return [u.key for u in self._uploads]

    def write(self, key: str, source_name: str, chunks: Iterable[bytes], object_args: Mapping[str, Any]) -> int:
        """Store ``chunks`` as the object ``key`` (a multipart upload left open, or one put for a
        file that fits in one part); returns the bytes stored."""
        upload = _Upload(key, source_name, object_args)
        with self._lock:
            if self._aborted:
                raise TransferCancelled(self._cancellation.reason)
            self._uploads.append(upload)
        buffers, size = self._buffers, self.part_size
        stored = 0
        buffer: bytearray | None = None  # the part being filled, ours until handed to its upload
        filled = 0
        # A full part is sent once more bytes follow: a file that fits in one part is put whole.
        full: bytearray | None = None
        try:
            for chunk in chunks:
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
                self._submit(upload, 1, last, length, whole=True)  # one PutObject: no multipart upload at all
                stored += length
        finally:
            for unsent in (buffer, full):
                if unsent is not None:
                    buffers.give(unsent)
        for future in upload.futures:
            future.result()
        if upload.error is not None:
            raise upload.error
        return stored

    def discard(self, source_name: str) -> None:
        """Throw away what was written of ``source_name`` (its source changed; it starts again)."""
        with self._lock:
            mine = [u for u in self._uploads if u.source_name == source_name]
            self._uploads = [u for u in self._uploads if u.source_name != source_name]
        for upload in mine:
            wait_futures(upload.futures, timeout=_PART_GRACE_SECONDS)
            self._abort_upload(upload)

    def complete(self) -> None:
        """Complete the multipart uploads (a file put whole is complete already), concurrently.

        Completing makes the objects exist (the sink decides when readers may see them)."""
        completing = [self._pool.submit(self._complete, u) for u in self._uploads if not u.completed]
        wait_futures(completing)
        for future in completing:
            future.result()

    def close(self) -> None:
        """The run is over: let the threads and the free buffers go."""
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._buffers.clear()

    def abort(self) -> None:
        """Stop: no part starts any more; once the parts on the wire are done (or
        :data:`_PART_GRACE_SECONDS` passed), abort the open uploads and delete the objects put.
        Does not raise; a second call does nothing."""
        with self._lock:
            if self._aborted:
                return
            self._aborted = True
            uploads = list(self._uploads)
        self._pool.shutdown(wait=False, cancel_futures=True)
        wait_futures([f for u in uploads for f in u.futures], timeout=_PART_GRACE_SECONDS)
        stored = [u for u in uploads if u.completed]
        try:
            delete_keys(self.client, self.bucket, [u.key for u in stored], self.where)
        except Exception:
            log.warning("Could not delete this run's objects in one go; one by one", exc_info=True)
            for upload in stored:
                self._abort_upload(upload)
        for upload in uploads:
            if not upload.completed:
                self._abort_upload(upload)
        self._uploads = []
        self._buffers.clear()

    def _send_part(self, upload: _Upload, buffer: bytearray, length: int) -> None:
        """Upload ``buffer[:length]`` as the upload's next part; the buffer is the part's from now on."""
        if upload.upload_id is None:
            response = self.client.create_multipart_upload(
                Bucket=self.bucket, Key=upload.key, ChecksumAlgorithm=CHECKSUM_ALGORITHM, **upload.object_args
            )
            with self._lock:
                upload.upload_id = response["UploadId"]
                aborted = self._aborted
            if aborted:  # abort() ran while this upload was being created: it is ours to abort
                self._abort_upload(upload)
                raise TransferCancelled(self._cancellation.reason)
        number = upload.submitted + 1
        if number > MAX_PARTS:
            raise TransferError(
                f"{upload.key}: more than {MAX_PARTS} parts; raise part_size above {self.part_size} bytes"
            )
        self._submit(upload, number, buffer, length)

    def _submit(
        self, upload: _Upload, number: int, buffer: bytearray | None, length: int, *, whole: bool = False
    ) -> None:
        """Send ``buffer[:length]`` (see :meth:`_send`) on the pool once one of the
        ``max_concurrency`` slots is free."""
        # Backpressure: the reader waits here while max_concurrency parts are in flight.
        while not self._slots.acquire(timeout=0.5):
            self._cancellation.check()
            if upload.error is not None:
                raise upload.error
        try:
            self._cancellation.check()
            future = self._pool.submit(self._send, upload, number, buffer, length, whole)
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

    def _send(self, upload: _Upload, number: int, buffer: bytearray | None, length: int, whole: bool) -> None:
        """Upload ``buffer[:length]`` as part ``number`` of the upload, or, ``whole``, as the whole
        object (``buffer`` is ``None`` for an empty file); the buffer is given back once S3 answered."""
        answered = False
        try:
            if upload.error is not None or self._aborted or self._cancellation.is_set:
                answered = True  # nothing was sent: the buffer is free
                return
            body = _PartBody(memoryview(buffer)[:length] if buffer is not None else memoryview(b""))
            if whole:
                self.client.put_object(
                    Bucket=self.bucket,
                    Key=upload.key,
                    Body=body,
                    ChecksumAlgorithm=CHECKSUM_ALGORITHM,
                    **upload.object_args,
                )
                answered = True
                with self._lock:
                    upload.completed = True  # in the run's directory, which no manifest lists yet
                return
            response = self.client.upload_part(
                Bucket=self.bucket,
                Key=upload.key,
                UploadId=upload.upload_id,
                PartNumber=number,
                Body=body,
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
            if answered and buffer is not None:
                # botocore is done with the body; after a failure it may still be referenced from
                # the exception, so that buffer is left to the garbage collector instead
                self._buffers.give(buffer)
            self._slots.release()

    def _complete(self, upload: _Upload) -> None:
        parts = [upload.parts[n] for n in sorted(upload.parts)]
        try:
            self.client.complete_multipart_upload(
                Bucket=self.bucket,
                Key=upload.key,
                UploadId=upload.upload_id,
                MultipartUpload={"Parts": parts},
            )
        except Exception as exc:
            # An answer lost after S3 completed the upload: botocore sends the request again, and
            # S3 does not say what it answers then (moto: 200). If it answers that the upload is
            # gone, the object in this run's own directory that these very parts make is ours.
            if error_code(exc) != "NoSuchUpload" or not self._made_of(upload.key, parts):
                raise
            log.info("s3://%s/%s: its upload was already complete (a lost answer, sent again)", self.bucket, upload.key)
        upload.completed = True

    def _made_of(self, key: str, parts: Sequence[Mapping[str, Any]]) -> bool:
        """Whether the object at ``key`` is the one ``parts`` complete: S3's ETag of a multipart
        object is the MD5 of its parts' binary ETags, then ``-`` and their number."""
        try:
            etag = str(self.client.head_object(Bucket=self.bucket, Key=key)["ETag"]).strip('"')
            digests = b"".join(bytes.fromhex(str(p["ETag"]).strip('"')) for p in parts)
        except Exception:
            return False
        return etag == f"{hashlib.md5(digests, usedforsecurity=False).hexdigest()}-{len(parts)}"

    def _abort_upload(self, upload: _Upload) -> None:
        try:
            if upload.completed:
                self.client.delete_object(Bucket=self.bucket, Key=upload.key)
            elif upload.upload_id is not None:
                self.client.abort_multipart_upload(Bucket=self.bucket, Key=upload.key, UploadId=upload.upload_id)
        except Exception:
            log.warning("Could not clean up s3://%s/%s", self.bucket, upload.key, exc_info=True)
