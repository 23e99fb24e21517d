"""Land an Adobe Experience Platform profile export job's batch files in S3, streamed, all or nothing."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow_provider_exports.transfers._adobe_experience_platform import (
    AdobeExperiencePlatformListFilesOperator,
    AdobeExperiencePlatformTransferBase,
)
from airflow_provider_exports.transfers._base import ToS3Mixin
from airflow_provider_exports.transfers._fan_out import FanOutCommitOperator, StageFilesMixin, StageToS3Mixin

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

    from airflow_provider_exports.transfers.engine import S3Sink, SourceFile


class AdobeExperiencePlatformToS3Operator(ToS3Mixin, AdobeExperiencePlatformTransferBase):
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
        *ToS3Mixin.S3_TEMPLATE_FIELDS,
    )

    def make_sink(self, context: Context, output: Any) -> S3Sink:
        return self.s3_sink()


class AdobeExperiencePlatformStageFilesToS3Operator(StageToS3Mixin, AdobeExperiencePlatformToS3Operator):
    """The stage-files task of a fan-out (README, "Scaling out"), mapped over
    :class:`AdobeExperiencePlatformListFilesOperator`'s groups: the group's files into S3 objects under the run directory, for
    :class:`FanOutCommitOperator`. Takes :class:`AdobeExperiencePlatformToS3Operator`'s arguments (the same ``export_job_id``)
    and ``group``.
    """

    template_fields: Sequence[str] = (
        *AdobeExperiencePlatformToS3Operator.template_fields,
        *StageFilesMixin.FAN_OUT_TEMPLATE_FIELDS,
    )

    def open_files(self, context: Context, group: Mapping[str, Any]) -> tuple[list[SourceFile], Any]:
        return self.group_sources(group)


__all__ = [
    "AdobeExperiencePlatformListFilesOperator",
    "AdobeExperiencePlatformStageFilesToS3Operator",
    "AdobeExperiencePlatformToS3Operator",
    "FanOutCommitOperator",
]
