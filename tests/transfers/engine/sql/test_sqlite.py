"""SQLite: replace that keeps the table, one writer at a time with a busy timeout, binding rules."""

from __future__ import annotations

import sqlite3
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime
from decimal import Decimal

import pytest
from airflow.providers.sqlite.hooks.sqlite import SqliteHook

from airflow_provider_exports.exceptions import TransferIntegrityError
from airflow_provider_exports.transfers.engine import SqlSink
from airflow_provider_exports.transfers.engine.formats import Batch
from airflow_provider_exports.transfers.engine.sql.sqlite import SqliteDialect

from .conftest import WAIT, ChunksSource, jsonl, load, query


def test_replace_keeps_the_index_and_the_primary_key(warehouse):
    with sqlite3.connect(warehouse) as conn:
        conn.executescript(
            "CREATE TABLE members (id INTEGER PRIMARY KEY, tier TEXT NOT NULL);"
            "CREATE INDEX members_tier ON members (tier);"
            "INSERT INTO members VALUES (1, 'gold'), (2, 'silver');"
        )
    rows = [{"id": 3, "tier": "gold"}, {"id": 4, "tier": "bronze"}]

    load([ChunksSource("m.jsonl", jsonl(rows))], SqlSink("members", conn_id="warehouse", mode="replace"))

    assert query(warehouse, "SELECT id, tier FROM members ORDER BY id") == [(3, "gold"), (4, "bronze")]
    assert query(warehouse, "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'members'") == [
        ("members_tier",)
    ]
    assert [(name, pk) for _, name, _, _, _, pk in query(warehouse, "PRAGMA table_info(members)")] == [
        ("id", 1), ("tier", 0)
    ]
    with pytest.raises(sqlite3.IntegrityError), sqlite3.connect(warehouse) as conn:
        conn.execute("INSERT INTO members VALUES (3, 'dup')")


def test_replace_is_invisible_to_other_connections_until_it_commits(warehouse):
    with sqlite3.connect(warehouse) as conn:
        conn.executescript("CREATE TABLE t (id BIGINT, v TEXT); INSERT INTO t VALUES (1, 'old'), (2, 'old');")
    source = ChunksSource("x.jsonl", jsonl([{"id": i, "v": "new"} for i in range(10, 20)]), pause_before=5)

    with ThreadPoolExecutor(1) as pool:
        running = pool.submit(load, [source], SqlSink("t", conn_id="warehouse", mode="replace", batch_size=1))
        assert source.paused.wait(WAIT)
        seen_meanwhile = query(warehouse, "SELECT id, v FROM t ORDER BY id")
        source.resume.set()
        running.result(WAIT)

    assert seen_meanwhile == [(1, "old"), (2, "old")]
    assert query(warehouse, "SELECT min(id), max(id), count(*) FROM t") == [(10, 19, 10)]


class _TracedHook(SqliteHook):
    """Says when its connection starts to wait for the database's write lock."""

    def __init__(self, waiting, **kwargs) -> None:
        super().__init__(**kwargs)
        self.waiting = waiting

    def get_conn(self):
        conn = super().get_conn()
        conn.set_trace_callback(lambda sql: self.waiting.set() if sql.startswith("BEGIN IMMEDIATE") else None)
        return conn


def test_two_threads_of_the_same_job_one_loads_the_other_skips(warehouse):
    import threading

    with sqlite3.connect(warehouse) as conn:
        conn.execute("CREATE TABLE t (id BIGINT, v TEXT)")
    first = ChunksSource("x.jsonl", jsonl([{"id": i, "v": "first"} for i in range(6)]), pause_before=3)
    second = ChunksSource("x.jsonl", jsonl([{"id": i, "v": "second"} for i in range(6)]))
    waiting = threading.Event()

    with ThreadPoolExecutor(2) as pool:
        a = pool.submit(load, [first], SqlSink("t", conn_id="warehouse", mode="append", batch_size=1))
        assert first.paused.wait(WAIT)
        hook = _TracedHook(waiting, sqlite_conn_id="warehouse")
        b = pool.submit(load, [second], SqlSink("t", hook=hook, mode="append", batch_size=1))
        assert waiting.wait(WAIT)  # the second run asks for the write lock while the first holds it
        first.resume.set()
        a_summary, b_summary = a.result(WAIT), b.result(WAIT)

    assert not a_summary.skipped and b_summary.skipped
    assert query(warehouse, "SELECT count(*), min(v), max(v) FROM t") == [(6, "first", "first")]
    assert query(warehouse, "SELECT count(*) FROM exports_manifest") == [(1,)]


def test_a_second_load_waits_for_the_lock_timeout_then_fails(warehouse):
    with sqlite3.connect(warehouse) as conn:
        conn.execute("CREATE TABLE t (id BIGINT)")
    first = ChunksSource("x.jsonl", jsonl([{"id": 1}, {"id": 2}]), pause_before=1)

    with ThreadPoolExecutor(1) as pool:
        a = pool.submit(load, [first], SqlSink("t", conn_id="warehouse"))
        assert first.paused.wait(WAIT)
        try:
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                load([ChunksSource("y.jsonl", jsonl([{"id": 3}]))], SqlSink("t", conn_id="warehouse", lock_timeout=0.2),
                     job_ref="job-2")
        finally:
            first.resume.set()
        a.result(WAIT)

    assert query(warehouse, "SELECT id FROM t ORDER BY id") == [(1,), (2,)]


def test_sqlite_binds_dates_decimals_and_huge_integers_as_text():
    dialect = SqliteDialect(SqliteHook(), sqlite3.connect(":memory:"))
    batch = Batch(
        ["d", "ts", "n", "big", "ok"],
        [
            (date(2026, 1, 2), datetime(2026, 1, 2, 3, 4), Decimal("1.50"), 2**64, 1),
            (None, None, None, 5, None),
        ],
    )

    assert dialect.bindable(batch) == [
        ("2026-01-02", "2026-01-02T03:04:00", "1.50", str(2**64), 1),
        (None, None, None, 5, None),
    ]
    plain = Batch(["a", "b"], [("x", 1), (None, 2.5)])
    assert dialect.bindable(plain) is plain.rows


def test_long_decimals_stay_text_in_sqlite(warehouse, tmp_path):
    (tmp_path / "a.csv").write_text("short,long\n1.25,12345678901234567.89\n")

    load([ChunksSource("a.csv", [(tmp_path / "a.csv").read_bytes()])], SqlSink("d", conn_id="warehouse"))

    # a REAL keeps 15 significant digits: NUMERIC would round the long one
    assert query(warehouse, "SELECT short, long FROM d") == [(1.25, "12345678901234567.89")]


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_rows_sqlite_did_not_take_fail_the_load_before_its_commit(warehouse, fmt):
    """A trigger that ignores a row stands in for any way a database takes fewer rows than were sent."""
    with sqlite3.connect(warehouse) as conn:
        conn.executescript(
            "CREATE TABLE t (id INTEGER, v TEXT); INSERT INTO t VALUES (0, 'old');"
            "CREATE TRIGGER drop_marked BEFORE INSERT ON t WHEN NEW.v = 'drop' BEGIN SELECT RAISE(IGNORE); END;"
        )
    rows = [{"id": 1, "v": "a"}, {"id": 2, "v": "drop"}, {"id": 3, "v": "c"}]
    if fmt == "csv":
        source = ChunksSource("t.csv", [b"id,v\n1,a\n2,drop\n3,c\n"])
    else:
        source = ChunksSource("t.jsonl", jsonl(rows))

    with pytest.raises(TransferIntegrityError, match=rf"{source.name}: 3 row\(s\) read, but the database took 2"):
        load([source], SqlSink("t", conn_id="warehouse", mode="replace"))

    assert query(warehouse, "SELECT id, v FROM t") == [(0, "old")]
    assert query(warehouse, "SELECT count(*) FROM exports_manifest") == [(0,)]
