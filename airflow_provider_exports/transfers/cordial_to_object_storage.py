"""Land the file a Cordial export job delivered (to S3, SFTP, FTP, GCS or Azure Blob Storage) in any
object store (``gs://``, ``abfs://``, ``file://``...), streamed, all or nothing."""

from __future__ import annotations

from airflow_provider_exports.transfers._base import TransferOperator
from airflow_provider_exports.transfers._cordial import CordialDeliveredFile
from airflow_provider_exports.transfers._destinations import ObjectStorageDestination


class CordialToObjectStorageOperator(TransferOperator):
    """Copy what a Cordial export job delivered into an object store, as delivered (with
    ``_manifest.json``)."""

    source_type = CordialDeliveredFile
    destination_type = ObjectStorageDestination


__all__ = ["CordialToObjectStorageOperator"]
