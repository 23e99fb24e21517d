"""Land a Sitecore CDP audience export job's files in any object store (``gs://``, ``abfs://``,
``file://``...), streamed, all or nothing."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow_provider_exports.hooks.sitecore_cdp import ExportOutput
from airflow_provider_exports.transfers._object_storage import ToObjectStorageMixin
from airflow_provider_exports.transfers._sitecore_cdp import SitecoreCDPTransferBase
from airflow_provider_exports.transfers.engine.object_store_sink import ObjectStoreSink

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context


class SitecoreCDPToObjectStorageOperator(ToObjectStorageMixin, SitecoreCDPTransferBase):
    """Stream the output files of a Sitecore CDP audience export job into an object store.

    Files land under ``<destination>/run-<id>/`` (delta exports under ``added/`` and ``removed/``);
    ``_manifest.json`` is written last and a rerun for the same job skips. For S3,
    :class:`~airflow_provider_exports.transfers.sitecore_cdp_to_s3.SitecoreCDPToS3Operator` is faster.

    :param destination: the root URI, e.g. ``gs://lake/raw/sitecore/ds={{ ds }}/``. (templated)
    :param destination_conn_id: the store's Airflow connection (``google_cloud_default``,
        ``wasb_default``, ``aws_default``...); none for a local path. (templated)
    :param decompress: store the files gunzipped (``x.json.gz`` lands as ``x.json``).
    :param block_size: bytes the store's writer buffers per part.
    """

    template_fields: Sequence[str] = (
        *SitecoreCDPTransferBase.template_fields,
        *ToObjectStorageMixin.OBJECT_STORAGE_TEMPLATE_FIELDS,
    )

    def __init__(self, *, decompress: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.decompress = decompress

    def make_sink(self, context: Context, output: ExportOutput) -> ObjectStoreSink:
        return self.object_store_sink(decompress=self.decompress)
