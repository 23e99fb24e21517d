"""Land a Sitecore CDP audience export job's files in S3, streamed, all or nothing."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow_provider_exports.hooks.sitecore_cdp import ExportOutput
from airflow_provider_exports.transfers._base import ToS3Mixin
from airflow_provider_exports.transfers._sitecore_cdp import SitecoreCDPTransferBase

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

    from airflow_provider_exports.transfers.engine import S3Sink


class SitecoreCDPToS3Operator(ToS3Mixin, SitecoreCDPTransferBase):
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

    template_fields: Sequence[str] = (*SitecoreCDPTransferBase.template_fields, *ToS3Mixin.S3_TEMPLATE_FIELDS)

    def __init__(self, *, decompress: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.decompress = decompress

    def make_sink(self, context: Context, output: ExportOutput) -> S3Sink:
        return self.s3_sink(decompress=self.decompress)
