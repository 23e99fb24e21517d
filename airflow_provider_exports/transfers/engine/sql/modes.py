"""The SQL sink's load modes and schema-change policies, and their parse-time checks: light, so a
DAG file that names a SQL transfer does not import the sink behind it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from airflow_provider_exports.exceptions import ExportConfigError

Mode = Literal["append", "replace", "merge"]
MODES: tuple[str, ...] = ("append", "replace", "merge")
#: what a load does with a field its existing table has no column for (dbt's ``on_schema_change``)
OnSchemaChange = Literal["append_new_columns", "fail", "ignore"]
ON_SCHEMA_CHANGE: tuple[str, ...] = ("append_new_columns", "fail", "ignore")


def check_load_mode(mode: str, key_columns: Sequence[str]) -> None:
    """``mode`` is one of :data:`MODES`, and ``merge`` names its key columns (checkable at parse time)."""
    if mode not in MODES:
        raise ExportConfigError("mode", f"{mode!r} is not one of {', '.join(MODES)}")
    if mode == "merge" and not key_columns:
        raise ExportConfigError("key_columns", "merge needs the columns that identify a row")


def check_on_schema_change(policy: str) -> None:
    """``policy`` is one of :data:`ON_SCHEMA_CHANGE` (checkable at parse time)."""
    if policy not in ON_SCHEMA_CHANGE:
        raise ExportConfigError(
            "on_schema_change", f"{policy!r} is not one of {', '.join(ON_SCHEMA_CHANGE)}"
        )
