"""Land an Adobe Experience Platform profile export job's batch files in any object store
(``gs://``, ``abfs://``, ``file://``...), streamed, all or nothing."""

from __future__ import annotations

from airflow_provider_exports.transfers._adobe_experience_platform import AdobeExperiencePlatformExportJob
from airflow_provider_exports.transfers._base import TransferOperator
from airflow_provider_exports.transfers._destinations import ObjectStorageDestination


class AdobeExperiencePlatformToObjectStorageOperator(TransferOperator):
    """Stream the Parquet files of a finished profile export job into an object store, each as
    ``<batchId>/<dataSetFileId>/<name>`` in the run's directory."""

    source_type = AdobeExperiencePlatformExportJob
    destination_type = ObjectStorageDestination


__all__ = ["AdobeExperiencePlatformToObjectStorageOperator"]
