"""Load a Sitecore CDP audience export job's guests into a SQL table, in one transaction."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow_provider_exports.hooks.sitecore_cdp import ExportOutput
from airflow_provider_exports.transfers._sitecore_cdp import SitecoreCDPTransferBase, delta_kind
from airflow_provider_exports.transfers.engine import SqlSink, check_load_mode

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

DELTA_COLUMN = "_delta"


class SitecoreCDPToSqlOperator(SitecoreCDPTransferBase):
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

    template_fields: Sequence[str] = (*SitecoreCDPTransferBase.template_fields, "conn_id", "table")

    def __init__(
        self,
        *,
        conn_id: str,
        table: str,
        mode: str = "append",
        key_columns: Sequence[str] = (),
        create_table: bool = True,
        column_types: Mapping[str, str] | None = None,
        batch_size: int = 10_000,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.conn_id = conn_id
        self.table = table
        self.mode = mode
        self.key_columns = key_columns
        self.create_table = create_table
        self.column_types = column_types
        self.batch_size = batch_size
        check_load_mode(mode, key_columns)

    def make_sink(self, context: Context, output: ExportOutput) -> SqlSink:
        return SqlSink(
            self.table,
            conn_id=self.conn_id,
            mode=self.mode,  # type: ignore[arg-type]
            key_columns=self.key_columns,
            create_table=self.create_table,
            column_types=self.column_types,
            batch_size=self.batch_size,
            allow_empty=self.allow_empty,
            # Delta exports: each row says whether the guest was added or removed.
            attribute_columns={DELTA_COLUMN: "delta"}
            if any(delta_kind(f.name) for f in output.files)
            else None,
        )
