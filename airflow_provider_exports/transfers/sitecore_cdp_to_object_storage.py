"""Land a Sitecore CDP audience export job's files in any object store (``gs://``, ``abfs://``,
``file://``...), streamed, all or nothing."""

from __future__ import annotations

from airflow_provider_exports.transfers._base import TransferOperator
from airflow_provider_exports.transfers._destinations import ObjectStorageDestination
from airflow_provider_exports.transfers._sitecore_cdp import SitecoreCDPExport


class SitecoreCDPToObjectStorageOperator(TransferOperator):
    """Stream the output files of a Sitecore CDP audience export job into an object store (delta
    exports under ``added/`` and ``removed/``, told apart as ``delta`` says)."""

    source_type = SitecoreCDPExport
    destination_type = ObjectStorageDestination


__all__ = ["SitecoreCDPToObjectStorageOperator"]
