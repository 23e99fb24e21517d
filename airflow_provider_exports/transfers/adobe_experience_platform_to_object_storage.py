"""Land an Adobe Experience Platform profile export job's batch files in any object store
(``gs://``, ``abfs://``, ``file://``...), streamed, all or nothing."""

from __future__ import annotations

from airflow_provider_exports.transfers._adobe_experience_platform import AdobeExperiencePlatformExportJob
from airflow_provider_exports.transfers._base import TransferOperator
from airflow_provider_exports.transfers._destinations import ObjectStorageDestination


class AdobeExperiencePlatformToObjectStorageOperator(TransferOperator):
    """Stream the Parquet files of a finished profile export job into an object store.

    Files land as ``<destination>/run-<id>/<batchId>/<dataSetFileId>/<name>``; ``_manifest.json``
    is written last and a rerun for the same job skips. For S3,
    :class:`~airflow_provider_exports.transfers.adobe_experience_platform_to_s3.AdobeExperiencePlatformToS3Operator`
    is faster.
    """

    source_type = AdobeExperiencePlatformExportJob
    destination_type = ObjectStorageDestination


__all__ = ["AdobeExperiencePlatformToObjectStorageOperator"]
