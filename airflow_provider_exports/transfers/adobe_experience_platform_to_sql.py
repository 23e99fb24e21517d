"""Load an Adobe Experience Platform profile export job's profiles into a SQL table, in one transaction."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow_provider_exports.transfers._adobe_experience_platform import (
    AdobeExperiencePlatformListFilesOperator,
    AdobeExperiencePlatformTransferBase,
)
from airflow_provider_exports.transfers._base import ToSqlMixin
from airflow_provider_exports.transfers._fan_out import FanOutCommitOperator, StageFilesMixin, StageToSqlMixin
from airflow_provider_exports.transfers.engine import SourceFile

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

    from airflow_provider_exports.transfers.engine.sql import SqlSink


class AdobeExperiencePlatformToSqlOperator(ToSqlMixin, AdobeExperiencePlatformTransferBase):
    """Stream a finished profile export job's Parquet files into a table of any SQL warehouse.

    Columns a new table gets take their types from the Parquet schema. Nested XDM fields
    (``identityMap``, ``segmentMembership``, ``person``...) land as JSON: ``jsonb`` on PostgreSQL,
    JSON text elsewhere (SQLite's ``json_extract`` reads it); maps are JSON objects and times ISO
    8601. With ``flatten_structs`` a struct's fields become columns of their own
    (``person.name.firstName`` → ``person_name_firstName``); lists and maps stay JSON. One
    transaction, the manifest row included: a failure leaves the table as it was, a rerun skips.

    :param conn_id: the warehouse connection (any DbApiHook: postgres, sqlite...). (templated)
    :param table: destination table, optionally ``schema.table``. (templated)
    :param mode: ``replace``, ``append`` or ``merge`` (by ``key_columns``, last row wins).
    :param key_columns: the columns identifying a profile, for ``merge``.
    :param create_table: create a missing table from the Parquet schema.
    :param column_types: SQL types overriding the Parquet ones for a table the load creates.
    :param flatten_structs: spread struct fields over ``parent_child_leaf`` columns.
    :param batch_size: rows per insert batch.
    """

    template_fields: Sequence[str] = (
        *AdobeExperiencePlatformTransferBase.template_fields,
        *ToSqlMixin.SQL_TEMPLATE_FIELDS,
    )

    def __init__(self, *, flatten_structs: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.flatten_structs = flatten_structs

    def make_sink(self, context: Context, output: Any) -> SqlSink:
        return self.sql_sink(file_format="parquet", flatten_structs=self.flatten_structs)


class AdobeExperiencePlatformStageFilesToSqlOperator(StageToSqlMixin, AdobeExperiencePlatformToSqlOperator):
    """The stage-files task of a fan-out (README, "Scaling out"), mapped over
    :class:`AdobeExperiencePlatformListFilesOperator`'s groups: the group's files into a staging table, for
    :class:`FanOutCommitOperator`. Takes :class:`AdobeExperiencePlatformToSqlOperator`'s arguments (the same ``export_job_id``)
    and ``group``.
    """

    template_fields: Sequence[str] = (
        *AdobeExperiencePlatformToSqlOperator.template_fields,
        *StageFilesMixin.FAN_OUT_TEMPLATE_FIELDS,
    )

    def open_files(self, context: Context, group: Mapping[str, Any]) -> tuple[list[SourceFile], Any]:
        return self.group_sources(group)


__all__ = [
    "AdobeExperiencePlatformListFilesOperator",
    "AdobeExperiencePlatformStageFilesToSqlOperator",
    "AdobeExperiencePlatformToSqlOperator",
    "FanOutCommitOperator",
]
