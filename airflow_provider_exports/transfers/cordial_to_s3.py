"""Land the file a Cordial export job delivered (to S3, SFTP, FTP, GCS or Azure Blob Storage) in S3,
streamed, all or nothing."""

from __future__ import annotations

from airflow_provider_exports.transfers._base import TransferOperator
from airflow_provider_exports.transfers._cordial import CordialDeliveredFile
from airflow_provider_exports.transfers._destinations import S3Destination
from airflow_provider_exports.transfers._fan_out import StageFilesOperator


class CordialToS3Operator(TransferOperator):
    """Copy what a Cordial export job delivered into S3, as delivered (with ``_manifest.json``)."""

    source_type = CordialDeliveredFile
    destination_type = S3Destination


class CordialStageFilesToS3Operator(StageFilesOperator):
    """The stage-files task into S3, mapped over ``CordialS3ListFilesOperator``'s groups."""

    source_type = CordialDeliveredFile
    destination_type = S3Destination


__all__ = ["CordialStageFilesToS3Operator", "CordialToS3Operator"]
