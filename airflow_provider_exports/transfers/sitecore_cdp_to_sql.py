"""Load a Sitecore CDP audience export job's guests into a SQL table, in one transaction."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow_provider_exports.hooks.sitecore_cdp import ExportOutput
from airflow_provider_exports.transfers._base import ToSqlMixin
from airflow_provider_exports.transfers._fan_out import FanOutCommitOperator, StageFilesMixin, StageToSqlMixin
from airflow_provider_exports.transfers._sitecore_cdp import (
    SitecoreCDPListFilesOperator,
    SitecoreCDPTransferBase,
    delta_kind,
)
from airflow_provider_exports.transfers.engine import SourceFile

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

    from airflow_provider_exports.transfers.engine.sql import SqlSink

DELTA_COLUMN = "_delta"


class SitecoreCDPToSqlOperator(ToSqlMixin, SitecoreCDPTransferBase):
    """Stream a Sitecore CDP audience export job's files into a table of any SQL warehouse.

    Gzipped JSON lines (or CSV) are parsed in batches and loaded through the connection's
    ``DbApiHook`` (PostgreSQL through ``COPY``), all in one transaction: a failure leaves the table
    as it was. The job's manifest is recorded in the same transaction, so a rerun skips. Rows of a
    delta export carry a ``_delta`` column: ``added`` or ``removed``. A job without rows does not
    empty the table in mode ``replace`` unless ``allow_empty``.

    :param conn_id: the warehouse connection (any DbApiHook: postgres, sqlite...). (templated)
    :param table: destination table, optionally ``schema.table``. (templated)
    :param mode: ``replace`` (the table's rows give way to the job's, in one transaction; the
        table itself, its indexes and grants stay), ``append`` or ``merge`` (by key, last row wins).
    :param key_columns: the columns identifying a guest, for ``merge`` (e.g. ``["ref"]``).
    :param create_table: create a missing table from the data's columns.
    :param column_types: SQL types for a table the load creates, overriding the ones read from the
        data, by column (e.g. ``{"zip": "TEXT"}``).
    :param batch_size: rows per insert batch.
    """

    template_fields: Sequence[str] = (
        *SitecoreCDPTransferBase.template_fields,
        *ToSqlMixin.SQL_TEMPLATE_FIELDS,
    )

    def make_sink(self, context: Context, output: ExportOutput) -> SqlSink:
        # Delta exports: each row says whether the guest was added or removed.
        delta = any(delta_kind(f.name) for f in output.files)
        return self.sql_sink(attribute_columns={DELTA_COLUMN: "delta"} if delta else None)


class SitecoreCDPStageFilesToSqlOperator(StageToSqlMixin, SitecoreCDPToSqlOperator):
    """The stage-files task of a fan-out (README, "Scaling out"), mapped over
    :class:`SitecoreCDPListFilesOperator`'s groups: the group's files into a staging table, for
    :class:`FanOutCommitOperator`. Takes :class:`SitecoreCDPToSqlOperator`'s arguments (the job comes from the group)
    and ``group``; each file's presigned URL is fetched from Sitecore here, never from XCom.
    """

    template_fields: Sequence[str] = (
        *SitecoreCDPToSqlOperator.template_fields,
        *StageFilesMixin.FAN_OUT_TEMPLATE_FIELDS,
    )

    def open_files(self, context: Context, group: Mapping[str, Any]) -> tuple[list[SourceFile], Any]:
        return self.group_sources(group)


__all__ = [
    "FanOutCommitOperator",
    "SitecoreCDPListFilesOperator",
    "SitecoreCDPStageFilesToSqlOperator",
    "SitecoreCDPToSqlOperator",
]
