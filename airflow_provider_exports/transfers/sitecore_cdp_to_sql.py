"""Load a Sitecore CDP audience export job's guests into a SQL table, in one transaction."""

from __future__ import annotations

from airflow_provider_exports.transfers._base import TransferOperator
from airflow_provider_exports.transfers._destinations import SqlDestination
from airflow_provider_exports.transfers._fan_out import FanOutCommitOperator, StageFilesOperator
from airflow_provider_exports.transfers._sitecore_cdp import SitecoreCDPExport, SitecoreCDPListFilesOperator


class SitecoreCDPToSqlOperator(TransferOperator):
    """Stream a Sitecore CDP audience export job's files (gzipped JSON lines or CSV) into a table of
    any SQL warehouse. Rows of a delta export carry a ``_delta`` column: ``added`` or ``removed``
    (told apart as ``delta`` says); every row names its file in ``_source_file``."""

    source_type = SitecoreCDPExport
    destination_type = SqlDestination


class SitecoreCDPStageFilesToSqlOperator(StageFilesOperator):
    """The stage-files task into SQL, mapped over :class:`SitecoreCDPListFilesOperator`'s groups."""

    source_type = SitecoreCDPExport
    destination_type = SqlDestination


__all__ = [
    "FanOutCommitOperator",
    "SitecoreCDPListFilesOperator",
    "SitecoreCDPStageFilesToSqlOperator",
    "SitecoreCDPToSqlOperator",
]
