"""``_source_file``: every row names the file it came from, on every SQL path and dialect; an
existing table without the column loads as before (said once)."""

from __future__ import annotations

import logging
import sqlite3

import pytest

from airflow_provider_exports.exceptions import TransferRefused
from airflow_provider_exports.transfers.engine import SqlSink
from airflow_provider_exports.transfers.engine.sql import sink as sink_mod
from airflow_provider_exports.transfers.engine.sql.generic import Dialect
from airflow_provider_exports.transfers.engine.sql.sink import SOURCE_FILE

from .conftest import ChunksSource, jsonl, load, query
from .test_postgres import _hook
from .test_staging import commit, stage

A = [{"id": 1, "v": "a"}, {"id": 2, "v": "b"}]
B = [{"id": 2, "v": "b2"}, {"id": 3, "v": "c"}]


def sources():
    # names as the engine gives them: a folder (Sitecore's added/), never a URL
    return [ChunksSource("added/a.jsonl", jsonl(A)), ChunksSource("removed/b.jsonl", jsonl(B))]


def rows(db, table="t"):
    return sorted(db.query(f"SELECT id, v, {SOURCE_FILE} FROM {table}"))


APPENDED = [(1, "a", "added/a.jsonl"), (2, "b", "added/a.jsonl"), (2, "b2", "removed/b.jsonl"), (3, "c", "removed/b.jsonl")]
MERGED = [(1, "a", "added/a.jsonl"), (2, "b2", "removed/b.jsonl"), (3, "c", "removed/b.jsonl")]


@pytest.mark.parametrize("existing", [False, True], ids=["new-table", "existing-table-with-the-column"])
@pytest.mark.parametrize("mode", ["append", "replace", "merge"])
@pytest.mark.parametrize("path", ["bulk", "rows", "executemany"])
def test_every_row_names_its_file(db, monkeypatch, mode, existing, path):
    """PostgreSQL: columnar COPY (bulk), COPY of row batches (rows), executemany; SQLite: executemany."""
    if existing:
        db.run(f"CREATE TABLE t (id BIGINT, v TEXT, {SOURCE_FILE} TEXT); INSERT INTO t VALUES (0, 'old', NULL)")
    if path == "rows":
        monkeypatch.setattr(sink_mod, "_has_pyarrow", lambda: False)
    sink = SqlSink("t", conn_id=db.conn_id, mode=mode, key_columns=["id"] if mode == "merge" else (),
                   use_copy=path != "executemany", batch_size=1)

    assert load(sources(), sink).rows == 4

    kept = [(0, "old", None)] if existing and mode != "replace" else []
    assert rows(db) == sorted([*(MERGED if mode == "merge" else APPENDED), *kept])
    if not existing:
        assert list(db.column_types("t"))[-1] == SOURCE_FILE


def test_the_generic_dialect_names_the_file_too(warehouse, monkeypatch):
    monkeypatch.setattr(sink_mod, "dialect_for", Dialect)  # any DbApiHook, on SQLite
    load(sources(), SqlSink("t", conn_id="warehouse", mode="merge", key_columns=["id"]))
    with sqlite3.connect(warehouse) as conn:
        assert sorted(conn.execute(f"SELECT id, v, {SOURCE_FILE} FROM t")) == MERGED


@pytest.mark.parametrize("mode", ["append", "merge"])
def test_the_fan_out_staging_tables_carry_the_file_names(db, mode):
    keys = {"key_columns": ["id"]} if mode == "merge" else {}
    staged = stage(db, [[ChunksSource("added/a.jsonl", jsonl(A))], [ChunksSource("removed/b.jsonl", jsonl(B))]],
                   table="t", mode=mode, **keys)
    commit(db, staged, table="t", mode=mode, **keys)
    assert rows(db) == (MERGED if mode == "merge" else APPENDED)


@pytest.mark.parametrize("mode", ["append", "replace", "merge"])
@pytest.mark.parametrize("how", ["one-task", "fan-out"])
def test_an_existing_table_without_the_column_loads_as_before_and_says_so_once(db, caplog, mode, how):
    db.run("CREATE TABLE t (id BIGINT, v TEXT)")
    keys = {"key_columns": ["id"]} if mode == "merge" else {}
    with caplog.at_level(logging.WARNING, logger=sink_mod.__name__):
        if how == "one-task":
            load(sources(), SqlSink("t", conn_id=db.conn_id, mode=mode, batch_size=1, **keys))
        else:
            commit(db, stage(db, [sources()], table="t", mode=mode, **keys), table="t", mode=mode, **keys)

    expected = MERGED if mode == "merge" else APPENDED
    assert sorted(db.query("SELECT id, v FROM t")) == [(i, v) for i, v, _ in expected]
    assert list(db.column_types("t")) == ["id", "v"]  # a load never alters an existing table
    said = [r.getMessage() for r in caplog.records if SOURCE_FILE in r.getMessage()]
    assert len(said) == 1 and said[0].startswith("t has no column '_source_file'")


def test_a_file_that_brings_a_source_file_column_of_its_own_is_refused(db):
    clash = ChunksSource("x.jsonl", jsonl([{"id": 1, SOURCE_FILE: "mine"}]))
    with pytest.raises(TransferRefused, match=r"x\.jsonl has a column '_source_file'"):
        load([clash], SqlSink("t", conn_id=db.conn_id))


# --- the CSV pass-through: still straight into COPY ----------------------------------------------------------

CSV = b'id,v\n1,"two\nlines"\n2,\\.\n3,"q""uote, \\."\n4,last'  # quoted breaks, a \. line, no final break


@pytest.mark.parametrize("driver", ["psycopg", "psycopg2"])
@pytest.mark.parametrize("eol", [b"\n", b"\r\n", b"\r"], ids=["lf", "crlf", "cr"])
@pytest.mark.parametrize("cut", [1, 7, 1 << 20], ids=["byte-chunks", "small-chunks", "whole"])
def test_csv_into_an_existing_table_with_the_column_still_passes_straight_to_copy(pg, postgres, monkeypatch, driver, eol, cut):
    pg.cursor().execute(f"CREATE TABLE t (id BIGINT, v TEXT, _delta TEXT, {SOURCE_FILE} TEXT)")

    def parsed(*args, **kwargs):
        raise AssertionError("CSV into an existing table must not be parsed in Python")

    monkeypatch.setattr(sink_mod, "read_batches", parsed)
    data = CSV.replace(b"\n", eol).replace(b"two" + eol, b"two\n")  # a line break in quotes stays \n
    files = [ChunksSource(f"added/{n}.csv", [data[i : i + cut] for i in range(0, len(data), cut)]) for n in ("a", "b")]
    sink = SqlSink("t", mode="replace", attribute_columns={"_delta": "delta"}, **_hook(driver, postgres))
    for f in files:
        f.attributes["delta"] = "added"

    assert load(files, sink).rows == 8

    got = query(pg, f"SELECT id, v, _delta, {SOURCE_FILE} FROM t ORDER BY {SOURCE_FILE}, id")
    values = [(1, "two\nlines"), (2, "\\."), (3, 'q"uote, \\.'), (4, "last")]
    assert got == [(i, v, "added", f"added/{n}.csv") for n in ("a", "b") for i, v in values]


def test_csv_into_an_existing_table_without_the_column_passes_straight_to_copy(pg, monkeypatch):
    pg.cursor().execute("CREATE TABLE t (id BIGINT, v TEXT)")
    monkeypatch.setattr(sink_mod, "read_batches", lambda *a, **k: pytest.fail("parsed in Python"))
    assert load([ChunksSource("t.csv", [b"id,v\n1,a\n"])], SqlSink("t", conn_id="pg")).rows == 1
    assert query(pg, "SELECT id, v FROM t") == [(1, "a")]


def test_a_csv_file_with_a_source_file_column_of_its_own_is_refused_before_copy(pg):
    pg.cursor().execute(f"CREATE TABLE t (id BIGINT, {SOURCE_FILE} TEXT)")
    with pytest.raises(TransferRefused, match=r"t\.csv has a column '_source_file'"):
        load([ChunksSource("t.csv", [f"id,{SOURCE_FILE}\n1,x\n".encode()])], SqlSink("t", conn_id="pg"))
    assert query(pg, "SELECT count(*) FROM t") == [(0,)]
