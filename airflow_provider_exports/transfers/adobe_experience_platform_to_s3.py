"""Land an Adobe Experience Platform profile export job's batch files in S3, streamed, all or nothing."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow_provider_exports.exceptions import ExportConfigError
from airflow_provider_exports.transfers._adobe_experience_platform import AdobeExperiencePlatformTransferBase
from airflow_provider_exports.transfers.engine import S3Sink
from airflow_provider_exports.utils.templating import is_template

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context


class AdobeExperiencePlatformToS3Operator(AdobeExperiencePlatformTransferBase):
    """Stream the Parquet files of a finished profile export job into S3.

    Files land as ``<s3_key_prefix>/run-<id>/<batchId>/<dataSetFileId>/<name>`` through multipart
    uploads that complete only when every file is whole; ``_manifest.json`` (job id, dataset id,
    batch ids, every file with its SHA-256) is written last and a rerun for the same job skips.
    Returns a summary for XCom: keys, bytes, manifest key.

    :param s3_bucket: destination bucket. (templated)
    :param s3_key_prefix: destination key prefix, e.g. ``raw/aep/ds={{ ds }}/``. (templated)
    :param aws_conn_id: the AWS connection. (templated)
    :param part_size: multipart part size in bytes (at least 5 MiB).
    :param max_part_concurrency: parts uploaded at once.
    :param s3_extra_args: extra upload arguments (``ServerSideEncryption``, ``SSEKMSKeyId``...).
    """

    template_fields: Sequence[str] = (
        *AdobeExperiencePlatformTransferBase.template_fields,
        "s3_bucket",
        "s3_key_prefix",
        "aws_conn_id",
    )

    def __init__(
        self,
        *,
        s3_bucket: str,
        s3_key_prefix: str = "",
        aws_conn_id: str | None = "aws_default",
        part_size: int = 8 * 1024 * 1024,
        max_part_concurrency: int = 4,
        s3_extra_args: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.s3_bucket = s3_bucket
        self.s3_key_prefix = s3_key_prefix
        self.aws_conn_id = aws_conn_id
        self.part_size = part_size
        self.max_part_concurrency = max_part_concurrency
        self.s3_extra_args = s3_extra_args
        if not s3_bucket or (not is_template(s3_bucket) and "/" in s3_bucket):
            raise ExportConfigError("s3_bucket", f"{s3_bucket!r}: give a bucket name, without s3:// or a key")

    def make_sink(self, context: Context, job: dict[str, Any]) -> S3Sink:
        return S3Sink(
            self.s3_bucket,
            self.s3_key_prefix,
            aws_conn_id=self.aws_conn_id,
            part_size=self.part_size,
            max_concurrency=self.max_part_concurrency,
            extra_args=self.s3_extra_args,
            allow_empty=self.allow_empty,
        )
