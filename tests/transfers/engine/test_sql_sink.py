"""SQL sink: SQLite (the embedded warehouse) and a real PostgreSQL started by the test run."""

from __future__ import annotations

import gzip
import json
import sqlite3
from datetime import datetime, timezone
from pathlib import Path

import pytest

from airflow_provider_exports.exceptions import ExportConfigError, TransferError
from airflow_provider_exports.transfers.engine import SqlSink, run_transfer
from airflow_provider_exports.transfers.engine.sql_sink import encode_copy_text, infer_sql_type

from .conftest import LocalFileSource

VENDOR = "Sitecore CDP"


@pytest.fixture
def warehouse(tmp_path, monkeypatch) -> Path:
    """An SQLite database behind the Airflow connection ``warehouse``."""
    path = tmp_path / "warehouse.db"
    monkeypatch.setenv("AIRFLOW_CONN_WAREHOUSE", json.dumps({"conn_type": "sqlite", "host": str(path)}))
    return path


@pytest.fixture
def pg(postgres, monkeypatch):
    """The session's PostgreSQL behind the Airflow connection ``pg``; a clean schema per test."""
    monkeypatch.setenv("AIRFLOW_CONN_PG", postgres.airflow_conn_json())
    conn = postgres.connect()
    conn.autocommit = True
    cur = conn.cursor()
    cur.execute("DROP SCHEMA IF EXISTS public CASCADE; CREATE SCHEMA public")
    yield conn
    conn.close()


def _query(db, sql: str) -> list[tuple]:
    if isinstance(db, Path):
        with sqlite3.connect(db) as conn:
            return conn.execute(sql).fetchall()
    cur = db.cursor()
    cur.execute(sql)
    return cur.fetchall()


def _jsonl_gz(path: Path, rows: list[dict]) -> Path:
    with gzip.open(path, "wt") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")
    return path


def _load(sources, sink, job_ref="job-1", **kwargs):
    return run_transfer(sources, sink, vendor=VENDOR, export_ref="loyalty_members", job_ref=job_ref, **kwargs)


# --- SQLite ---------------------------------------------------------------------------------------


def test_sitecore_jsonl_gz_loads_into_sqlite_with_types(sitecore_job, warehouse):
    job = sitecore_job(rows=2500, rows_per_file=1000)

    summary = run_transfer(
        job.sources,
        SqlSink("guests", conn_id="warehouse"),
        vendor=VENDOR,
        export_ref=job.export_ref,
        job_ref=job.job_ref,
    )

    assert summary.rows == 2500 == sum(r for *_, r in job.expected)
    assert summary.locations == ["guests"] * 3 and summary.manifest == "exports_manifest"
    assert _query(warehouse, "SELECT count(*), count(DISTINCT ref) FROM guests") == [(2500, 2500)]
    types = {name: t for _, name, t, *_ in _query(warehouse, "PRAGMA table_info(guests)")}
    assert types["lifetimeValue"] == "DOUBLE PRECISION" and types["email"] == "TEXT"
    (manifest,) = _query(warehouse, "SELECT manifest FROM exports_manifest")[0]
    assert json.loads(manifest)["total_rows"] == 2500


def test_csv_and_parquet_load_with_types(tmp_path, warehouse):
    import pyarrow as pa
    import pyarrow.parquet as pq

    (tmp_path / "a.csv").write_text('id,name,score,zip\n1,"Ada, Countess",9.5,02134\n2,,7,10115\n')
    table = pa.table(
        {
            "id": pa.array([3, 4], pa.int64()),
            "name": ["Grace", None],
            "score": [1.25, 2.5],
            "active": [True, False],
            "seen": pa.array([datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)] * 2, pa.timestamp("ms", "UTC")),
            "tags": pa.array([["a", "b"], []], pa.list_(pa.string())),
        }
    )
    pq.write_table(table, tmp_path / "b.parquet")

    csv_summary = _load([LocalFileSource(tmp_path / "a.csv")], SqlSink("scores", conn_id="warehouse"))
    pq_summary = _load([LocalFileSource(tmp_path / "b.parquet")], SqlSink("people", conn_id="warehouse"))

    assert csv_summary.rows == 2 and pq_summary.rows == 2
    assert _query(warehouse, "SELECT id, name, score, zip FROM scores ORDER BY id") == [
        (1, "Ada, Countess", 9.5, "02134"),
        (2, None, 7.0, "10115"),
    ]
    assert _query(warehouse, "SELECT id, name, active, seen, tags FROM people ORDER BY id") == [
        (3, "Grace", 1, "2026-01-02T03:04:05+00:00", '["a","b"]'),
        (4, None, 0, "2026-01-02T03:04:05+00:00", "[]"),
    ]


def test_nested_aep_profile_parquet_is_stored_as_json_text(tmp_path, warehouse):
    from airflow_provider_exports.sandbox.synthetic_parquet import ProfileFileSpec, write_profiles

    path = tmp_path / "part-00000.snappy.parquet"
    with path.open("wb") as f:
        write_profiles(ProfileFileSpec(rows=3000, row_group_rows=1000), f)

    summary = _load([LocalFileSource(path)], SqlSink("profiles", conn_id="warehouse", batch_size=700))

    assert summary.rows == 3000
    (person,) = _query(warehouse, "SELECT person FROM profiles LIMIT 1")[0]
    assert isinstance(json.loads(person), dict)


def test_replace_append_and_merge(tmp_path, warehouse):
    day1 = _jsonl_gz(tmp_path / "d1.jsonl.gz", [{"id": i, "v": "one"} for i in range(5)])
    day2 = _jsonl_gz(tmp_path / "d2.jsonl.gz", [{"id": i, "v": "two"} for i in range(3, 8)])

    _load([LocalFileSource(day1)], SqlSink("t_append", conn_id="warehouse"), "j1")
    _load([LocalFileSource(day2)], SqlSink("t_append", conn_id="warehouse"), "j2")
    assert _query(warehouse, "SELECT count(*) FROM t_append") == [(10,)]

    _load([LocalFileSource(day1)], SqlSink("t_merge", conn_id="warehouse", mode="merge", key_columns=["id"]), "j1")
    _load([LocalFileSource(day2)], SqlSink("t_merge", conn_id="warehouse", mode="merge", key_columns=["id"]), "j2")
    assert _query(warehouse, "SELECT id, v FROM t_merge ORDER BY id") == [
        (0, "one"), (1, "one"), (2, "one"), (3, "two"), (4, "two"), (5, "two"), (6, "two"), (7, "two")
    ]

    _load([LocalFileSource(day1)], SqlSink("t_replace", conn_id="warehouse", mode="replace"), "j1")
    _load([LocalFileSource(day2)], SqlSink("t_replace", conn_id="warehouse", mode="replace"), "j2")
    assert _query(warehouse, "SELECT min(id), max(id), count(*) FROM t_replace") == [(3, 7, 5)]
    tables = {n for (n,) in _query(warehouse, "SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert tables == {"t_append", "t_merge", "t_replace", "exports_manifest"}  # no staging left


def test_sparse_json_lines_grow_a_table_this_run_creates(tmp_path, warehouse):
    rows = [{"id": i} for i in range(5)] + [{"id": 99, "extra": {"nested": True}}]
    path = _jsonl_gz(tmp_path / "sparse.jsonl.gz", rows)

    _load([LocalFileSource(path)], SqlSink("sparse", conn_id="warehouse", batch_size=5))

    assert _query(warehouse, "SELECT id, extra FROM sparse WHERE extra IS NOT NULL") == [(99, '{"nested":true}')]


@pytest.mark.parametrize("mode", ["append", "replace", "merge"])
def test_a_load_that_fails_halfway_leaves_the_table_unchanged(tmp_path, warehouse, mode):
    good = _jsonl_gz(tmp_path / "good.jsonl.gz", [{"id": i, "v": "new"} for i in range(100)])
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": 1000, "v": "new"}\n{"id": 1001, "v": \n')
    with sqlite3.connect(warehouse) as conn:
        conn.execute("CREATE TABLE t (id BIGINT, v TEXT)")
        conn.executemany("INSERT INTO t VALUES (?, ?)", [(i, "old") for i in range(3)])

    sink = SqlSink("t", conn_id="warehouse", mode=mode, key_columns=["id"] if mode == "merge" else ())
    with pytest.raises(TransferError, match="line 2 is not valid JSON"):
        _load([LocalFileSource(good), LocalFileSource(bad)], sink)

    assert _query(warehouse, "SELECT id, v FROM t ORDER BY id") == [(0, "old"), (1, "old"), (2, "old")]
    tables = {n for (n,) in _query(warehouse, "SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert tables == {"t"}


def test_rerun_of_the_same_job_skips(tmp_path, warehouse):
    path = _jsonl_gz(tmp_path / "x.jsonl.gz", [{"id": 1}])
    sink = SqlSink("once", conn_id="warehouse")
    _load([LocalFileSource(path)], sink)

    again = _load([LocalFileSource(path)], sink)
    forced = _load([LocalFileSource(path)], sink, overwrite=True)

    assert again.skipped and again.rows == 1 and not forced.skipped
    assert _query(warehouse, "SELECT count(*) FROM once") == [(2,)]


def test_existing_table_without_a_column_fails_clearly(tmp_path, warehouse):
    path = _jsonl_gz(tmp_path / "x.jsonl.gz", [{"id": 1, "surprise": 2}])
    with sqlite3.connect(warehouse) as conn:
        conn.execute("CREATE TABLE fixed (id BIGINT)")

    with pytest.raises(TransferError, match="no column 'surprise'"):
        _load([LocalFileSource(path)], SqlSink("fixed", conn_id="warehouse"))


def test_bad_settings_are_refused_early():
    with pytest.raises(ExportConfigError, match="key_columns"):
        SqlSink("t", conn_id="c", mode="merge")
    with pytest.raises(ExportConfigError, match="mode"):
        SqlSink("t", conn_id="c", mode="upsert")  # type: ignore[arg-type]
    with pytest.raises(ExportConfigError, match="file_format"):
        SqlSink("t", conn_id="c", file_format="xml")


# --- PostgreSQL ------------------------------------------------------------------------------------


def test_postgres_copy_of_sitecore_jsonl_gz(sitecore_job, pg):
    job = sitecore_job(rows=2500, rows_per_file=1000)

    summary = run_transfer(
        job.sources,
        SqlSink("guests", conn_id="pg", mode="replace"),
        vendor=VENDOR,
        export_ref=job.export_ref,
        job_ref=job.job_ref,
    )

    assert summary.rows == 2500
    assert _query(pg, "SELECT count(*), count(DISTINCT ref) FROM guests") == [(2500, 2500)]
    types = dict(_query(pg, "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'guests'"))
    assert types["lifetimeValue"] == "double precision" and types["ref"] == "text"


def test_postgres_csv_passes_straight_to_copy_and_parquet_loads(tmp_path, pg):
    import pyarrow as pa
    import pyarrow.parquet as pq

    lines = ["id|name|score|note"] + [f'{i}|"n|{i}"|{i / 2}|{"" if i % 2 else chr(34) * 2}' for i in range(5000)]
    csv_path = tmp_path / "trends.csv.gz"
    with gzip.open(csv_path, "wt") as f:
        f.write("\n".join(lines) + "\n")
    pq.write_table(
        pa.table({"id": [1, 2], "seen": pa.array([datetime(2026, 1, 2, tzinfo=timezone.utc)] * 2, pa.timestamp("us", "UTC")),
                  "tags": [["x"], None], "blob": [b"\x00\x01", b"\\"]}),
        tmp_path / "p.parquet",
    )

    csv_summary = _load([LocalFileSource(csv_path)], SqlSink("trends", conn_id="pg", csv_delimiter="|"))
    pq_summary = _load([LocalFileSource(tmp_path / "p.parquet")], SqlSink("p", conn_id="pg"))

    assert csv_summary.rows == 5000 and pq_summary.rows == 2
    assert _query(pg, "SELECT id, name, score, note FROM trends WHERE id IN (0, 1) ORDER BY id") == [
        (0, "n|0", 0.0, None), (1, "n|1", 0.5, None)
    ]
    types = dict(_query(pg, "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'trends'"))
    assert types == {"id": "bigint", "name": "text", "score": "double precision", "note": "text"}
    rows = _query(pg, "SELECT id, seen, tags, blob FROM p ORDER BY id")
    assert rows[0][1] == datetime(2026, 1, 2, tzinfo=timezone.utc) and rows[0][2] == '["x"]'
    assert bytes(rows[0][3]) == b"\x00\x01" and bytes(rows[1][3]) == b"\\" and rows[1][2] is None


@pytest.mark.parametrize("mode", ["append", "replace", "merge"])
def test_postgres_load_that_fails_halfway_leaves_the_table_unchanged(tmp_path, pg, mode):
    good = _jsonl_gz(tmp_path / "good.jsonl.gz", [{"id": i, "v": "new"} for i in range(2000)])
    bad = _jsonl_gz(tmp_path / "bad.jsonl.gz", [{"id": 5000, "v": "new"}, {"id": "not a number", "v": "x"}])
    cur = pg.cursor()
    cur.execute("CREATE TABLE t (id BIGINT, v TEXT); INSERT INTO t VALUES (0, 'old'), (1, 'old')")

    sink = SqlSink("t", conn_id="pg", mode=mode, key_columns=["id"] if mode == "merge" else ())
    with pytest.raises(Exception, match=r"(?i)invalid input syntax|bigint"):
        _load([LocalFileSource(good), LocalFileSource(bad)], sink)

    assert _query(pg, "SELECT id, v FROM t ORDER BY id") == [(0, "old"), (1, "old")]
    assert _query(pg, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'") == [("t",)]


def test_postgres_merge_and_rerun_skip(tmp_path, pg):
    day1 = _jsonl_gz(tmp_path / "d1.jsonl.gz", [{"id": i, "v": "one"} for i in range(5)])
    day2 = _jsonl_gz(tmp_path / "d2.jsonl.gz", [{"id": i, "v": "two"} for i in range(3, 8)])
    sink = SqlSink("public.m", conn_id="pg", mode="merge", key_columns=["id"])

    _load([LocalFileSource(day1)], sink, "j1")
    _load([LocalFileSource(day2)], sink, "j2")
    skipped = _load([LocalFileSource(day2)], sink, "j2")

    assert skipped.skipped
    assert _query(pg, "SELECT v, count(*) FROM m GROUP BY v ORDER BY v") == [("one", 3), ("two", 5)]
    assert _query(pg, "SELECT job_ref FROM exports_manifest ORDER BY committed_at") == [("j1",), ("j2",)]


# --- pieces ---------------------------------------------------------------------------------------


def test_copy_text_encoding_escapes_and_nulls():
    rows = [("a\tb\\c\nd", None, 1, 1.5, True), ("", "x", None, None, False)]
    assert encode_copy_text(rows) == b"a\\tb\\\\c\\nd\t\\N\t1\t1.5\tt\n\tx\t\\N\t\\N\tf\n"


@pytest.mark.parametrize(
    ("values", "from_text", "expected"),
    [
        ([1, 2, None], False, "BIGINT"),
        ([1, 2.5], False, "DOUBLE PRECISION"),
        ([True, None], False, "BOOLEAN"),
        (["1", "22"], True, "BIGINT"),
        (["1", "2.5"], True, "DOUBLE PRECISION"),
        (["007", "12"], True, "TEXT"),
        (["1", "x"], True, "TEXT"),
        ([None], False, "TEXT"),
        (["1"], False, "TEXT"),
    ],
)
def test_type_inference(values, from_text, expected):
    assert infer_sql_type(values, from_text=from_text) == expected
