"""Land an Adobe Experience Platform profile export job's batch files in S3, streamed, all or nothing."""

from __future__ import annotations

from airflow_provider_exports.transfers._adobe_experience_platform import (
    AdobeExperiencePlatformExportJob,
    AdobeExperiencePlatformListFilesOperator,
)
from airflow_provider_exports.transfers._base import TransferOperator
from airflow_provider_exports.transfers._destinations import S3Destination
from airflow_provider_exports.transfers._fan_out import FanOutCommitOperator, StageFilesOperator


class AdobeExperiencePlatformToS3Operator(TransferOperator):
    """Stream the Parquet files of a finished profile export job into S3, each as
    ``<batchId>/<dataSetFileId>/<name>`` in the run's directory."""

    source_type = AdobeExperiencePlatformExportJob
    destination_type = S3Destination


class AdobeExperiencePlatformStageFilesToS3Operator(StageFilesOperator):
    """The stage-files task into S3, mapped over :class:`AdobeExperiencePlatformListFilesOperator`'s groups."""

    source_type = AdobeExperiencePlatformExportJob
    destination_type = S3Destination


__all__ = [
    "AdobeExperiencePlatformListFilesOperator",
    "AdobeExperiencePlatformStageFilesToS3Operator",
    "AdobeExperiencePlatformToS3Operator",
    "FanOutCommitOperator",
]
