"""The SQL sink's load modes and their parse-time check: light, so a DAG file that names a SQL
transfer does not import the sink behind it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from airflow_provider_exports.exceptions import ExportConfigError

Mode = Literal["append", "replace", "merge"]
MODES: tuple[str, ...] = ("append", "replace", "merge")


def check_load_mode(mode: str, key_columns: Sequence[str]) -> None:
    """``mode`` is one of :data:`MODES`, and ``merge`` names its key columns (checkable at parse time)."""
    if mode not in MODES:
        raise ExportConfigError("mode", f"{mode!r} is not one of {', '.join(MODES)}")
    if mode == "merge" and not key_columns:
        raise ExportConfigError("key_columns", "merge needs the columns that identify a row")
