"""Which dialect a load uses: :func:`dialect_for` a connection, by its driver (PostgreSQL, SQLite, or
the generic DB-API one for any other database)."""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING, Any

from airflow_provider_exports.transfers.engine.sql.generic import Dialect
from airflow_provider_exports.transfers.engine.sql.postgres import PostgresDialect
from airflow_provider_exports.transfers.engine.sql.sqlite import SqliteDialect

if TYPE_CHECKING:
    from airflow.providers.common.sql.hooks.sql import DbApiHook


def dialect_for(hook: DbApiHook, conn: Any) -> Dialect:
    """The dialect for a connection: by its driver, not by the hook's name."""
    if isinstance(conn, sqlite3.Connection):
        return SqliteDialect(hook, conn)
    if type(conn).__module__.startswith(("psycopg", "psycopg2")):
        return PostgresDialect(hook, conn)
    return Dialect(hook, conn)
