"""Land a Sitecore CDP audience export job's files in S3, streamed, all or nothing."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow_provider_exports.exceptions import ExportConfigError
from airflow_provider_exports.hooks.sitecore_cdp import ExportOutput
from airflow_provider_exports.transfers._sitecore_cdp import SitecoreCDPTransferBase
from airflow_provider_exports.transfers.engine import S3Sink
from airflow_provider_exports.utils.templating import is_template

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context


class SitecoreCDPToS3Operator(SitecoreCDPTransferBase):
    """Stream the output files of a Sitecore CDP audience export job into S3.

    Files land under ``s3://<s3_bucket>/<s3_key_prefix>/`` (delta exports under ``added/`` and
    ``removed/``) through multipart uploads that complete only when a file is whole;
    ``_manifest.json`` is written last. A rerun for the same job finds the manifest and skips.
    Returns a summary for XCom: keys, bytes, manifest key (never URLs).

    :param s3_bucket: destination bucket. (templated)
    :param s3_key_prefix: destination key prefix, e.g. ``raw/sitecore/{{ ds }}/``. (templated)
    :param aws_conn_id: the AWS connection. (templated)
    :param decompress: store the files gunzipped (``x.json.gz`` lands as ``x.json``).
    :param part_size: multipart part size in bytes (at least 5 MiB).
    :param max_part_concurrency: parts uploaded at once.
    :param s3_extra_args: extra upload arguments (``ServerSideEncryption``, ``SSEKMSKeyId``...).
    """

    template_fields: Sequence[str] = (
        *SitecoreCDPTransferBase.template_fields,
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
        decompress: bool = False,
        part_size: int = 8 * 1024 * 1024,
        max_part_concurrency: int = 4,
        s3_extra_args: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.s3_bucket = s3_bucket
        self.s3_key_prefix = s3_key_prefix
        self.aws_conn_id = aws_conn_id
        self.decompress = decompress
        self.part_size = part_size
        self.max_part_concurrency = max_part_concurrency
        self.s3_extra_args = s3_extra_args
        if not s3_bucket or (not is_template(s3_bucket) and "/" in s3_bucket):
            raise ExportConfigError("s3_bucket", f"{s3_bucket!r}: give a bucket name, without s3:// or a key")

    def make_sink(self, context: Context, output: ExportOutput) -> S3Sink:
        return S3Sink(
            self.s3_bucket,
            self.s3_key_prefix,
            aws_conn_id=self.aws_conn_id,
            part_size=self.part_size,
            max_concurrency=self.max_part_concurrency,
            decompress=self.decompress,
            extra_args=self.s3_extra_args,
            allow_empty=self.allow_empty,
        )
