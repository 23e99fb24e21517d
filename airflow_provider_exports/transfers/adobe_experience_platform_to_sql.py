"""Load an Adobe Experience Platform profile export job's profiles into a SQL table, in one transaction."""

from __future__ import annotations

from airflow_provider_exports.transfers._adobe_experience_platform import (
    AdobeExperiencePlatformExportJob,
    AdobeExperiencePlatformListFilesOperator,
)
from airflow_provider_exports.transfers._base import TransferOperator
from airflow_provider_exports.transfers._destinations import SqlDestination
from airflow_provider_exports.transfers._fan_out import FanOutCommitOperator, StageFilesOperator


class AdobeExperiencePlatformToSqlOperator(TransferOperator):
    """Stream a finished profile export job's Parquet files into a table of any SQL warehouse.

    Columns a new table gets take their types from the Parquet schema. Nested XDM fields
    (``identityMap``, ``segmentMembership``, ``person``...) land as JSON: ``jsonb`` on PostgreSQL,
    JSON text elsewhere (SQLite's ``json_extract`` reads it); maps are JSON objects and times ISO
    8601. With ``flatten_structs`` a struct's fields become columns of their own
    (``person.name.firstName`` → ``person_name_firstName``); lists and maps stay JSON.
    """

    source_type = AdobeExperiencePlatformExportJob
    destination_type = SqlDestination


class AdobeExperiencePlatformStageFilesToSqlOperator(StageFilesOperator):
    """The stage-files task into SQL, mapped over :class:`AdobeExperiencePlatformListFilesOperator`'s groups."""

    source_type = AdobeExperiencePlatformExportJob
    destination_type = SqlDestination


__all__ = [
    "AdobeExperiencePlatformListFilesOperator",
    "AdobeExperiencePlatformStageFilesToSqlOperator",
    "AdobeExperiencePlatformToSqlOperator",
    "FanOutCommitOperator",
]
