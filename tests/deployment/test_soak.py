"""What the soak reads from the warehouse, on a real PostgreSQL: the rows it compares and the
staging tables and registry rows it counts as leftovers (a planted leftover must be found)."""

from __future__ import annotations

from collections import Counter
from typing import Any

import psycopg2
import pytest

from dev.deployment.soak import staging_leftovers, table_rows


class _Warehouse:
    """The one thing the readers need of a Deployment: a connection to its warehouse."""

    def __init__(self, uri: str) -> None:
        self.uri = uri

    def warehouse_connect(self) -> Any:
        return psycopg2.connect(self.uri)


@pytest.fixture
def wh(exports_postgres_warehouse: Any) -> _Warehouse:
    return _Warehouse(exports_postgres_warehouse.uri)


def _run(wh: _Warehouse, sql: str) -> None:
    conn = wh.warehouse_connect()
    conn.autocommit = True
    try:
        conn.cursor().execute(sql)
    finally:
        conn.close()


def test_finds_a_planted_staging_table_and_registry_row(wh: _Warehouse) -> None:
    _run(wh, 'CREATE TABLE loyalty_members ("ref" text)')
    _run(wh, "CREATE TABLE stage_notes (n int)")  # not a staging table of the provider
    assert staging_leftovers(wh) == ([], 0)
    _run(wh, "CREATE TABLE _exports_stage_e14367_20261206t143055z_14ce9bda_0 (n int)")
    _run(wh, "CREATE TABLE exports_manifest_staging (destination text, run_id text, stage_table text)")
    _run(wh, "INSERT INTO exports_manifest_staging VALUES ('d', 'r', '_exports_stage_e14367_20261206t143055z_14ce9bda_0')")
    assert staging_leftovers(wh) == (["_exports_stage_e14367_20261206t143055z_14ce9bda_0"], 1)


def test_reads_rows_as_a_multiset(wh: _Warehouse) -> None:
    assert table_rows(wh, "loyalty_members") == Counter()  # no table yet
    _run(
        wh,
        'CREATE TABLE loyalty_members ("ref" text, "email" text, "loyaltyTier" text, "lifetimeValue" double precision,'
        ' "_source_file" text, "country" text)',
    )
    _run(wh, "INSERT INTO loyalty_members VALUES ('r1', 'a@x', 'gold', 369.79, 'p0.gz', 'NL'), ('r1', 'a@x', 'gold', 369.79, 'p0.gz', 'NL')")
    assert table_rows(wh, "loyalty_members") == Counter({("r1", "a@x", "gold", 369.79, "p0.gz"): 2})
    _run(wh, """CREATE TABLE aep_profiles_fan_out ("personalEmail" jsonb, "identities" jsonb, "person" jsonb, "_source_file" text)""")
    _run(
        wh,
        """INSERT INTO aep_profiles_fan_out VALUES ('{"address": "a@x", "status": "active"}',"""
        """ '[{"id": "123", "primary": true}, {"id": "a@x"}]', '{"name": {"lastName": "Berg"}}', 'b/f-1/part-00000.parquet')""",
    )
    assert table_rows(wh, "aep_profiles_fan_out") == Counter({("a@x", "123", "Berg", "part-00000.parquet"): 1})
