"""Load a Sitecore CDP audience export job's guests into a SQL table, in one transaction."""

from __future__ import annotations

from airflow_provider_exports.transfers._base import TransferOperator
from airflow_provider_exports.transfers._destinations import SqlDestination
from airflow_provider_exports.transfers._fan_out import FanOutCommitOperator, StageFilesOperator
from airflow_provider_exports.transfers._sitecore_cdp import SitecoreCDPExport, SitecoreCDPListFilesOperator


class SitecoreCDPToSqlOperator(TransferOperator):
    """Stream a Sitecore CDP audience export job's files into a table of any SQL warehouse.

    Gzipped JSON lines (or CSV) are parsed in batches and loaded through the connection's
    ``DbApiHook`` (PostgreSQL through ``COPY``), all in one transaction: a failure leaves the table
    as it was. The job's manifest is recorded in the same transaction, so a rerun skips. Rows of a
    delta export carry a ``_delta`` column: ``added`` or ``removed``. A job without rows does not
    empty the table in mode ``replace`` unless ``allow_empty``.
    """

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
