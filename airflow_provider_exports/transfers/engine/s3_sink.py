"""S3 destination: multipart uploads fed straight from the download stream.

No temporary file and never a whole file in memory: the stream is cut into parts of
``part_size`` bytes, and up to ``max_concurrency`` parts (across all files of the run) are
uploaded at once from a thread pool while the next part is read, so memory stays at about
``(max_concurrency + files in flight) * part_size`` whatever the file sizes.

All or nothing: every file's multipart upload stays open until every file of the run is in;
``commit`` then removes an older manifest, completes the uploads and writes ``_manifest.json``
last. A failure anywhere aborts every upload of the run (no parts are left behind) and removes
objects the failed commit had already completed. A worker killed outright can still leave
incomplete uploads: a bucket lifecycle rule ``AbortIncompleteMultipartUpload`` clears those.
"""

from __future__ import annotations

import logging
import mimetypes
import threading
from collections.abc import Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from airflow_provider_exports.exceptions import ExportConfigError, TransferError
from airflow_provider_exports.transfers.engine import manifest as manifest_mod
from airflow_provider_exports.transfers.engine.formats import gunzip
from airflow_provider_exports.transfers.engine.sink import Sink, StoredFile, TransferContext

if TYPE_CHECKING:
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    from airflow_provider_exports.transfers.engine.sources import SourceFile

log = logging.getLogger(__name__)

MIN_PART_SIZE = 5 * 1024 * 1024
# S3 checks every part against its CRC32 (as boto3's own transfer manager asks); the composite
# checksum is also cheap for S3 to build, unlike a whole-object CRC64 over every part again.
CHECKSUM_ALGORITHM = "CRC32"
MAX_PARTS = 10_000
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
    futures: list[Future[None]] = field(default_factory=list)
    error: BaseException | None = None
    empty: bool = False
    completed: bool = False


def _header_value(value: str) -> str:
    # S3 user metadata travels as HTTP headers: ASCII only.
    return quote(value, safe=" !#$&'()*+,-./:;<=>?@[]^_`{|}~") if not value.isascii() else value


class S3Sink(Sink):
    """Write a run's files under ``s3://bucket/prefix/`` through the amazon provider's S3Hook.

    :param bucket: destination bucket.
    :param prefix: key prefix (the operator renders ``ds``, export ref and job ref into it);
        a file lands at ``prefix/<file name>``, the manifest at ``prefix/_manifest.json``.
    :param aws_conn_id: the AWS connection, when no ``hook`` is given.
    :param hook: an ``S3Hook`` to use instead of building one.
    :param part_size: bytes per multipart part (at least 5 MiB, S3's minimum).
    :param max_concurrency: parts uploaded at once, over all files of the run.
    :param decompress: store gzip files decompressed (``x.json.gz`` lands as ``x.json``);
        by default bytes pass through unchanged.
    :param extra_args: extra ``CreateMultipartUpload``/``PutObject`` arguments
        (``ServerSideEncryption``, ``SSEKMSKeyId``, ``ACL``, ``StorageClass``...).
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
        self._client: Any = None
        self._pool: ThreadPoolExecutor | None = None
        self._slots = threading.BoundedSemaphore(max_concurrency)
        self._uploads: list[_Upload] = []
        self._lock = threading.Lock()
        self._ctx: TransferContext | None = None

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

    def key_for(self, name: str) -> str:
        if self.decompress and name.lower().endswith(".gz"):
            name = name[:-3]
        return f"{self.prefix}/{name}" if self.prefix else name

    def manifest_location(self) -> str:
        return self.key_for(manifest_mod.MANIFEST_NAME)

    def describe(self) -> dict[str, Any]:
        return {"kind": "s3", "bucket": self.bucket, "prefix": self.prefix}

    def uri(self) -> str:
        """``s3://bucket/prefix`` for an Airflow Asset or an OpenLineage dataset."""
        return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"

    # -- the run -----------------------------------------------------------------------------

    def find_manifest(self, ctx: TransferContext) -> Mapping[str, Any] | None:
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=self.manifest_location())["Body"]
        except self.client.exceptions.NoSuchKey:
            return None
        try:
            return manifest_mod.loads(body.read())
        finally:
            body.close()

    def begin(self, ctx: TransferContext) -> None:
        self._ctx = ctx
        self._uploads = []
        _ = self.client  # resolve the connection before threads start
        self._slots = threading.BoundedSemaphore(self.max_concurrency)
        self._pool = ThreadPoolExecutor(self.max_concurrency, thread_name_prefix="s3-part")

    def _object_args(self, key: str, source_name: str) -> dict[str, Any]:
        assert self._ctx is not None
        ext = "." + key.rsplit(".", 1)[-1].lower() if "." in key.rsplit("/", 1)[-1] else ""
        content_type = _CONTENT_TYPES.get(ext) or mimetypes.guess_type(key)[0] or "application/octet-stream"
        metadata = {
            "vendor": self._ctx.vendor,
            "export-ref": self._ctx.export_ref,
            "job-ref": self._ctx.job_ref,
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
        key = self.key_for(source.name)
        upload = _Upload(key, source.name)
        with self._lock:
            self._uploads.append(upload)
        data = gunzip(chunks) if self.decompress and source.name.lower().endswith(".gz") else chunks
        stored = 0
        buf: list[bytes] = []
        buffered = 0
        for chunk in data:
            if upload.error is not None:
                raise upload.error
            buf.append(chunk)
            buffered += len(chunk)
            if buffered >= self.part_size:
                self._send_part(upload, b"".join(buf))
                stored += buffered
                buf, buffered = [], 0
        if buffered:
            self._send_part(upload, b"".join(buf))
            stored += buffered
        elif not upload.futures:
            upload.empty = True  # S3 has no empty multipart upload: put at commit
        for future in upload.futures:
            future.result()
        if upload.error is not None:
            raise upload.error
        return StoredFile(location=key, stored_bytes=stored)

    def _send_part(self, upload: _Upload, body: bytes) -> None:
        assert self._pool is not None and self._ctx is not None
        if upload.upload_id is None:
            response = self.client.create_multipart_upload(
                Bucket=self.bucket,
                Key=upload.key,
                ChecksumAlgorithm=CHECKSUM_ALGORITHM,
                **self._object_args(upload.key, upload.source_name),
            )
            upload.upload_id = response["UploadId"]
        number = len(upload.futures) + 1
        if number > MAX_PARTS:
            raise TransferError(
                f"{upload.key}: more than {MAX_PARTS} parts; raise part_size above {self.part_size} bytes"
            )
        # Backpressure: the reader waits here while max_concurrency parts are in flight.
        while not self._slots.acquire(timeout=0.5):
            if self._ctx.cancel_event.is_set():
                raise TransferError("transfer cancelled")
            if upload.error is not None:
                raise upload.error
        try:
            future = self._pool.submit(self._upload_part, upload, number, body)
        except BaseException:
            self._slots.release()
            raise
        upload.futures.append(future)

    def _upload_part(self, upload: _Upload, number: int, body: bytes) -> None:
        try:
            if upload.error is not None or (self._ctx is not None and self._ctx.cancel_event.is_set()):
                return
            response = self.client.upload_part(
                Bucket=self.bucket,
                Key=upload.key,
                UploadId=upload.upload_id,
                PartNumber=number,
                Body=body,
                ChecksumAlgorithm=CHECKSUM_ALGORITHM,
            )
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
            self._slots.release()

    def commit(self, manifest: Mapping[str, Any]) -> None:
        from airflow.providers.common.compat.sdk import get_hook_lineage_collector

        manifest_key = self.manifest_location()
        # Readers must never trust an older manifest over objects this commit replaces.
        self.client.delete_object(Bucket=self.bucket, Key=manifest_key)
        for upload in self._uploads:
            if upload.empty:
                self.client.put_object(
                    Bucket=self.bucket,
                    Key=upload.key,
                    Body=b"",
                    **self._object_args(upload.key, upload.source_name),
                )
            else:
                parts = [upload.parts[n] for n in sorted(upload.parts)]
                self.client.complete_multipart_upload(
                    Bucket=self.bucket,
                    Key=upload.key,
                    UploadId=upload.upload_id,
                    MultipartUpload={"Parts": parts},
                )
            upload.completed = True
        self.client.put_object(
            Bucket=self.bucket,
            Key=manifest_key,
            Body=manifest_mod.dumps(manifest),
            ContentType="application/json",
            **{k: v for k, v in self.extra_args.items() if k != "Metadata"},
        )
        collector = get_hook_lineage_collector()
        for upload in self._uploads:
            collector.add_output_asset(
                context=self.hook, scheme="s3", asset_kwargs={"bucket": self.bucket, "key": upload.key}
            )
        self._shutdown()

    def abort(self) -> None:
        if self._ctx is not None:
            self._ctx.cancel_event.set()
        self._shutdown()
        for upload in self._uploads:
            try:
                if upload.completed:
                    self.client.delete_object(Bucket=self.bucket, Key=upload.key)
                elif upload.upload_id is not None:
                    self.client.abort_multipart_upload(
                        Bucket=self.bucket, Key=upload.key, UploadId=upload.upload_id
                    )
            except Exception:
                log.warning("Could not clean up s3://%s/%s", self.bucket, upload.key, exc_info=True)
        self._uploads = []

    def _shutdown(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
