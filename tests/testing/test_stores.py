"""The warehouse fixtures: an Airflow connection ``warehouse`` that reaches the database handed over."""

from __future__ import annotations

import pytest


def test_sqlite_warehouse_behind_the_warehouse_connection(exports_warehouse) -> None:
    from airflow.providers.sqlite.hooks.sqlite import SqliteHook

    hook = SqliteHook(sqlite_conn_id="warehouse")
    hook.run("CREATE TABLE t (n INTEGER)")
    hook.insert_rows("t", [(1,), (2,)])
    assert exports_warehouse.kind == "sqlite" and exports_warehouse.path.exists()
    assert exports_warehouse.count("t") == 2
    assert exports_warehouse.rows("SELECT n FROM t ORDER BY n") == [(1,), (2,)]


def test_postgres_warehouse_is_a_fresh_database(exports_postgres_warehouse) -> None:
    from airflow.providers.postgres.hooks.postgres import PostgresHook

    hook = PostgresHook(postgres_conn_id="warehouse")
    database = exports_postgres_warehouse.uri.rsplit("/", 1)[1]
    assert hook.get_first("SELECT current_database()")[0] == database
    hook.run("CREATE TABLE t (n INTEGER)")
    hook.insert_rows("t", [(1,), (2,), (3,)])
    assert exports_postgres_warehouse.count("public.t") == 3


def test_count_takes_a_table_name_only(exports_warehouse) -> None:
    with pytest.raises(ValueError, match="table: 't; DROP TABLE x' is not a plain table name"):
        exports_warehouse.count("t; DROP TABLE x")
