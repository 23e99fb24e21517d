"""S3 destination: a run's files streamed into S3 under its own directory, committed by one manifest.

The files go up through :class:`.s3_multipart.MultipartWriter` (parts uploaded concurrently from
the download stream, in flat memory); this module is where they go and when readers see them,
by the protocol docs/engine.md's "S3: what a reader sees" describes: every run writes under
``<prefix>/run-<run id>/``; ``commit`` completes the open uploads, then puts
``<prefix>/_manifest.json`` conditionally (``If-Match`` the manifest read at ``begin``, or
``If-None-Match: *``), so of two runs that commit at once one wins; only then are the replaced
run's files and older unlisted ``run-*/`` directories deleted. A failed or killed run leaves the
manifest and the objects it lists as they were.

A manifest read back is input: it is read up to ``[exports] max_json_body_bytes``, and only the
locations inside its own run's directory are trusted or deleted (:class:`.sink.RunDirectorySink`).
"""

from __future__ import annotations

import logging
import mimetypes
from collections.abc import Iterator, Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from airflow_provider_exports.exceptions import ExportConfigError, S3RequestFailed
from airflow_provider_exports.transfers.engine import manifest as manifest_mod
from airflow_provider_exports.transfers.engine.s3_errors import S3Client, error_code
from airflow_provider_exports.transfers.engine.s3_multipart import MIN_PART_SIZE, MultipartWriter, delete_keys
from airflow_provider_exports.transfers.engine.sink import RunDirectorySink, StoredFile, TransferContext
from airflow_provider_exports.utils import limits

if TYPE_CHECKING:
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    from airflow_provider_exports.transfers.engine.sources import SourceFile

log = logging.getLogger(__name__)

_CONTENT_TYPES = {
    ".gz": "application/gzip",
    ".jsonl": "application/x-ndjson",
    ".ndjson": "application/x-ndjson",
    ".json": "application/json",
    ".csv": "text/csv",
    ".parquet": "application/vnd.apache.parquet",
}


def _header_value(value: str) -> str:
    # S3 user metadata travels as HTTP headers: ASCII only.
    return quote(value, safe=" !#$&'()*+,-./:;<=>?@[]^_`{|}~") if not value.isascii() else value


class S3Sink(RunDirectorySink):
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
    :param bucket_argument: the argument that gave ``bucket``, as S3's errors name it (an
        operator's ``s3_bucket``).
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
        bucket_argument: str = "bucket",
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
        self.bucket_argument = bucket_argument
        self._client: Any = None
        self._writer: MultipartWriter | None = None
        self._base_etag: str | None = None
        self._began_at: datetime | None = None
        self._committed = False

    @property
    def hook(self) -> S3Hook:
        if self._hook is None:
            from airflow.providers.amazon.aws.hooks.s3 import S3Hook

            self._hook = S3Hook(aws_conn_id=self.aws_conn_id)
        return self._hook

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = S3Client(self.hook.get_conn(), self.bucket_argument)
        return self._client

    def _under_prefix(self, name: str) -> str:
        return f"{self.prefix}/{name}" if self.prefix else name

    def run_prefix(self) -> str:
        """The key prefix of the current run's files: ``prefix/run-<run id>``."""
        assert self._ctx is not None, "begin() first"
        return manifest_mod.run_dir(self.prefix, self._ctx.run_id)

    def manifest_location(self) -> str:
        return self._under_prefix(manifest_mod.MANIFEST_NAME)

    def describe(self) -> dict[str, Any]:
        return {"kind": "s3", "bucket": self.bucket, "prefix": self.prefix}

    def uri(self) -> str:
        """``s3://bucket/prefix`` for an Airflow Asset or an OpenLineage dataset."""
        return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"

    def _read_manifest(self) -> tuple[Mapping[str, Any] | None, str | None, datetime | None]:
        """The manifest under the prefix, its ETag, and S3's clock at the time of reading."""
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self.manifest_location())
        except S3RequestFailed as exc:
            if error_code(exc) not in ("NoSuchKey", "404"):
                raise
            return None, None, _server_time(exc.response)
        bound = limits.JSON_BODY.value  # a manifest read back is input: read at most this much of it
        try:
            announced = int(response.get("ContentLength") or 0)
            raw = response["Body"].read(bound + 1) if announced <= bound else b""
            if announced > bound or len(raw) > bound:
                found = f"{announced:,} bytes" if announced > bound else f"more than {bound:,} bytes"
                raise limits.JSON_BODY.exceeded(
                    f"the manifest s3://{self.bucket}/{self.manifest_location()}", found, bound
                )
            return manifest_mod.loads(raw), response["ETag"], _server_time(response)
        finally:
            response["Body"].close()

    def _sizes_in(self, folder: str) -> dict[str, int]:
        paginator = self.client.get_paginator("list_objects_v2")
        return {
            obj["Key"]: obj["Size"]
            for page in paginator.paginate(Bucket=self.bucket, Prefix=f"{folder}/" if folder else "")
            for obj in page.get("Contents", [])
        }

    def _ours(self, location: object, run_id: object) -> bool:
        return manifest_mod.in_run_dir(location, self.prefix, run_id)

    def begin(self, ctx: TransferContext) -> Mapping[str, Any] | None:
        self._ctx = ctx
        self._committed = False
        self._replaced, self._base_etag, self._began_at = self._read_manifest()
        self._writer = MultipartWriter(
            self.client,
            self.bucket,
            part_size=self.part_size,
            max_concurrency=self.max_concurrency,
            cancellation=ctx.cancellation,
            where=f"s3://{self.bucket}/{self.prefix}",
        )
        return self._trusted()

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
        assert self._writer is not None, "begin() first"
        key = f"{self.run_prefix()}/{self.stored_name(source.name)}"
        data = self._stored_bytes(source, chunks)
        stored = self._writer.write(key, source.name, data, self._object_args(key, source.name))
        return StoredFile(location=key, stored_bytes=stored)

    def discard_file(self, source: SourceFile) -> None:
        assert self._writer is not None, "begin() first"
        self._writer.discard(source.name)

    def commit(self, manifest: Mapping[str, Any]) -> Mapping[str, Any] | None:
        assert self._writer is not None, "begin() first"
        self._refuse_empty(len(self._writer.keys))
        self._writer.complete()  # the objects exist, in a directory no manifest lists yet
        winner = self._put_manifest(manifest)
        if winner is not None:
            self.abort()
            return winner
        self._committed = True
        self._writer.close()
        self._remove_replaced(manifest)
        self._report_lineage(self._writer.keys)
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
            if error_code(exc) not in ("PreconditionFailed", "ConditionalRequestConflict", "412", "409"):
                raise
        return self._winner(current)

    def _remove_earlier(self, replaced: list[str], keep: set[Any]) -> str:
        """Delete the replaced keys, and the keys in other run directories older than this run
        (by S3's clock), a thousand per request."""
        doomed = set(replaced)
        runs = self._under_prefix(manifest_mod.RUN_DIR_PREFIX)
        mine = self.run_prefix() + "/"
        paginator = self.client.get_paginator("list_objects_v2")
        # the run directories first, so this run's own (possibly thousands of) files are not listed
        run_dirs = [
            common["Prefix"]
            for page in paginator.paginate(Bucket=self.bucket, Prefix=runs, Delimiter="/")
            for common in page.get("CommonPrefixes", [])
            if common["Prefix"] != mine and manifest_mod.is_run_id(common["Prefix"][len(runs) : -1])
        ]
        for run_dir in run_dirs:
            run_id = run_dir[len(runs) : -1]
            for page in paginator.paginate(Bucket=self.bucket, Prefix=run_dir):
                for obj in page.get("Contents", []):
                    stale = self._began_at is None or obj["LastModified"] < self._began_at - timedelta(seconds=1)
                    # a key with a '.' or '..' segment is not the run's by plain segments: a store
                    # that folds dot segments would delete another object for it
                    if obj["Key"] not in keep and stale and self._ours(obj["Key"], run_id):
                        doomed.add(obj["Key"])
        delete_keys(self.client, self.bucket, sorted(doomed), self.uri())
        return f"{len(doomed)} file(s)" if doomed else ""

    def _report_lineage(self, keys: list[str]) -> None:
        from airflow.providers.common.compat.sdk import get_hook_lineage_collector

        collector = get_hook_lineage_collector()
        for key in keys:
            collector.add_output_asset(context=self.hook, scheme="s3", asset_kwargs={"bucket": self.bucket, "key": key})

    def abort(self) -> None:
        if not self._committed and self._writer is not None:
            self._writer.abort()


def _server_time(response: Mapping[str, Any]) -> datetime | None:
    """S3's own clock from a response's ``Date`` header (the stale-run rule uses S3's time, not ours)."""
    from email.utils import parsedate_to_datetime

    date = response.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("date")
    try:
        return parsedate_to_datetime(date) if date else None
    except (TypeError, ValueError):
        return None
