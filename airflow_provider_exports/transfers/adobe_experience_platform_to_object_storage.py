"""Land an Adobe Experience Platform profile export job's batch files in any object store
(``gs://``, ``abfs://``, ``file://``...), streamed, all or nothing."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow_provider_exports.transfers._adobe_experience_platform import AdobeExperiencePlatformTransferBase
from airflow_provider_exports.transfers._object_storage import ToObjectStorageMixin
from airflow_provider_exports.transfers.engine.object_store_sink import ObjectStoreSink

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context


class AdobeExperiencePlatformToObjectStorageOperator(
    ToObjectStorageMixin, AdobeExperiencePlatformTransferBase
):
    """Stream the Parquet files of a finished profile export job into an object store.

    Files land as ``<destination>/run-<id>/<batchId>/<dataSetFileId>/<name>``; ``_manifest.json``
    is written last and a rerun for the same job skips. For S3,
    :class:`~airflow_provider_exports.transfers.adobe_experience_platform_to_s3.AdobeExperiencePlatformToS3Operator`
    is faster.

    :param destination: the root URI, e.g. ``abfs://lake/raw/aep/ds={{ ds }}/``. (templated)
    :param destination_conn_id: the store's Airflow connection; none for a local path. (templated)
    :param block_size: bytes the store's writer buffers per part.
    """

    template_fields: Sequence[str] = (
        *AdobeExperiencePlatformTransferBase.template_fields,
        *ToObjectStorageMixin.OBJECT_STORAGE_TEMPLATE_FIELDS,
    )

    def make_sink(self, context: Context, output: Any) -> ObjectStoreSink:
        return self.object_store_sink()
