"""Load the file a Cordial export job delivered (to S3, SFTP, FTP, GCS or Azure Blob Storage) into a SQL
table, streamed, in one transaction."""

from __future__ import annotations

from airflow_provider_exports.transfers._base import TransferOperator
from airflow_provider_exports.transfers._cordial import CordialDeliveredFile
from airflow_provider_exports.transfers._destinations import SqlDestination
from airflow_provider_exports.transfers._fan_out import (
    FanOutCommitOperator,
    ListFilesOperator,
    StageFilesOperator,
)


class CordialS3ToSqlOperator(TransferOperator):
    """Load what a Cordial export job delivered into a table of any SQL warehouse: from S3 with
    ``aws_conn_id``, from SFTP, FTP, GCS or Azure Blob Storage with ``delivery_conn_id`` (the
    job's reference says which; the name keeps the S3 of the first delivery it read).

    ``mode="merge", key_columns=["audience", "day"]`` keeps one row per audience and day of the
    trends across runs; for trends, ``column_types`` add to (and may replace) ``audience TEXT,
    day DATE, count BIGINT``.
    """

    source_type = CordialDeliveredFile
    destination_type = SqlDestination


class CordialS3ListFilesOperator(ListFilesOperator):
    """The list-files task of a fan-out: the one file a Cordial job delivered, as one group
    (the same three tasks as the other vendors' flows)."""

    source_type = CordialDeliveredFile


class CordialS3StageFilesToSqlOperator(StageFilesOperator):
    """The stage-files task into SQL, mapped over :class:`CordialS3ListFilesOperator`'s groups."""

    source_type = CordialDeliveredFile
    destination_type = SqlDestination


__all__ = [
    "CordialS3ListFilesOperator",
    "CordialS3StageFilesToSqlOperator",
    "CordialS3ToSqlOperator",
    "FanOutCommitOperator",
]
