"""Which dialect a database connection gets (:func:`dialect_for`), and the SQL hook of an Airflow
connection id (:func:`resolve_db_hook`)."""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING, Any

from airflow_provider_exports.exceptions import ExportConfigError
from airflow_provider_exports.transfers.engine.sql.generic import Dialect
from airflow_provider_exports.transfers.engine.sql.postgres import PostgresDialect
from airflow_provider_exports.transfers.engine.sql.sqlite import SqliteDialect

if TYPE_CHECKING:
    from airflow.providers.common.sql.hooks.sql import DbApiHook


def resolve_db_hook(conn_id: str) -> DbApiHook:
    """The ``DbApiHook`` for an Airflow connection, whatever its database (as S3ToSqlOperator does)."""
    from airflow.providers.common.compat.sdk import BaseHook
    from airflow.providers.common.sql.hooks.sql import DbApiHook

    hook = BaseHook.get_connection(conn_id).get_hook()
    if not isinstance(hook, DbApiHook):
        raise ExportConfigError(
            "conn_id", f"connection {conn_id!r} gives a {type(hook).__name__}, not a SQL (DbApiHook) hook"
        )
    return hook


def dialect_for(hook: DbApiHook, conn: Any) -> Dialect:
    """The dialect for a connection: by its driver, not by the hook's name."""
    if isinstance(conn, sqlite3.Connection):
        return SqliteDialect(hook, conn)
    if type(conn).__module__.startswith(("psycopg", "psycopg2")):
        return PostgresDialect(hook, conn)
    return Dialect(hook, conn)
