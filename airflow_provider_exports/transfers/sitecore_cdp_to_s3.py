"""Land a Sitecore CDP audience export job's files in S3, streamed, all or nothing."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow_provider_exports.hooks.sitecore_cdp import ExportOutput
from airflow_provider_exports.transfers._base import ToS3Mixin
from airflow_provider_exports.transfers._fan_out import FanOutCommitOperator, StageFilesMixin, StageToS3Mixin
from airflow_provider_exports.transfers._sitecore_cdp import (
    SitecoreCDPListFilesOperator,
    SitecoreCDPTransferBase,
)

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

    from airflow_provider_exports.transfers.engine import S3Sink, SourceFile


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


class SitecoreCDPStageFilesToS3Operator(StageToS3Mixin, SitecoreCDPToS3Operator):
    """The stage-files task of a fan-out (README, "Scaling out"), mapped over
    :class:`SitecoreCDPListFilesOperator`'s groups: the group's files into S3 objects under the run directory, for
    :class:`FanOutCommitOperator`. Takes :class:`SitecoreCDPToS3Operator`'s arguments (the job comes from the group)
    and ``group``; each file's presigned URL is fetched from Sitecore here, never from XCom.
    """

    template_fields: Sequence[str] = (
        *SitecoreCDPToS3Operator.template_fields,
        *StageFilesMixin.FAN_OUT_TEMPLATE_FIELDS,
    )

    def open_files(self, context: Context, group: Mapping[str, Any]) -> tuple[list[SourceFile], Any]:
        return self.group_sources(group)


__all__ = [
    "FanOutCommitOperator",
    "SitecoreCDPListFilesOperator",
    "SitecoreCDPStageFilesToS3Operator",
    "SitecoreCDPToS3Operator",
]
