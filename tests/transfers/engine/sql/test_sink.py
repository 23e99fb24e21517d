"""The SQL sink's rules, on SQLite and on PostgreSQL: modes, empty exports, merge, file restarts."""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime, timezone

import pytest

from airflow_provider_exports.exceptions import ExportConfigError, TransferError, TransferRefused
from airflow_provider_exports.transfers.engine import SqlSink, TransferContext, run_transfer
from airflow_provider_exports.transfers.engine.sql import sink as sink_mod
from airflow_provider_exports.transfers.engine.sql.generic import Dialect

from .conftest import VENDOR, ChunksSource, file_source, jsonl, jsonl_gz, load, query

# --- loads, types, modes (SQLite) -------------------------------------------------------------------


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
    assert query(warehouse, "SELECT count(*), count(DISTINCT ref) FROM guests") == [(2500, 2500)]
    types = {name: t for _, name, t, *_ in query(warehouse, "PRAGMA table_info(guests)")}
    assert types["lifetimeValue"] == "DOUBLE PRECISION" and types["email"] == "TEXT"
    (manifest,) = query(warehouse, "SELECT manifest FROM exports_manifest")[0]
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

    csv_summary = load([file_source(tmp_path / "a.csv")], SqlSink("scores", conn_id="warehouse"))
    pq_summary = load([file_source(tmp_path / "b.parquet")], SqlSink("people", conn_id="warehouse"))

    assert csv_summary.rows == 2 and pq_summary.rows == 2
    assert query(warehouse, "SELECT id, name, score, zip FROM scores ORDER BY id") == [
        (1, "Ada, Countess", 9.5, "02134"),
        (2, None, 7, "10115"),
    ]
    types = {name: t for _, name, t, *_ in query(warehouse, "PRAGMA table_info(scores)")}
    assert types == {"id": "BIGINT", "name": "TEXT", "score": "NUMERIC", "zip": "TEXT", "_source_file": "TEXT"}
    assert query(warehouse, "SELECT id, name, active, seen, tags FROM people ORDER BY id") == [
        (3, "Grace", 1, "2026-01-02T03:04:05+00:00", '["a","b"]'),
        (4, None, 0, "2026-01-02T03:04:05+00:00", "[]"),
    ]


def test_nested_aep_profile_parquet_is_stored_as_json_text(tmp_path, warehouse):
    from airflow_provider_exports_sandbox.synthetic_parquet import ProfileFileSpec, write_profiles

    path = tmp_path / "part-00000.snappy.parquet"
    with path.open("wb") as f:
        write_profiles(ProfileFileSpec(rows=3000, row_group_rows=1000), f)

    summary = load([file_source(path)], SqlSink("profiles", conn_id="warehouse", batch_size=700))

    assert summary.rows == 3000
    (person,) = query(warehouse, "SELECT person FROM profiles LIMIT 1")[0]
    assert isinstance(json.loads(person), dict)


def test_replace_append_and_merge(tmp_path, warehouse):
    day1 = jsonl_gz(tmp_path / "d1.jsonl.gz", [{"id": i, "v": "one"} for i in range(5)])
    day2 = jsonl_gz(tmp_path / "d2.jsonl.gz", [{"id": i, "v": "two"} for i in range(3, 8)])

    load([file_source(day1)], SqlSink("t_append", conn_id="warehouse"), "j1")
    load([file_source(day2)], SqlSink("t_append", conn_id="warehouse"), "j2")
    assert query(warehouse, "SELECT count(*) FROM t_append") == [(10,)]

    load([file_source(day1)], SqlSink("t_merge", conn_id="warehouse", mode="merge", key_columns=["id"]), "j1")
    load([file_source(day2)], SqlSink("t_merge", conn_id="warehouse", mode="merge", key_columns=["id"]), "j2")
    assert query(warehouse, "SELECT id, v FROM t_merge ORDER BY id") == [
        (0, "one"), (1, "one"), (2, "one"), (3, "two"), (4, "two"), (5, "two"), (6, "two"), (7, "two")
    ]

    load([file_source(day1)], SqlSink("t_replace", conn_id="warehouse", mode="replace"), "j1")
    load([file_source(day2)], SqlSink("t_replace", conn_id="warehouse", mode="replace"), "j2")
    assert query(warehouse, "SELECT min(id), max(id), count(*) FROM t_replace") == [(3, 7, 5)]
    tables = {n for (n,) in query(warehouse, "SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert tables == {"t_append", "t_merge", "t_replace", "exports_manifest"}  # no staging left


def test_sparse_json_lines_grow_a_table_this_run_creates(tmp_path, warehouse):
    rows = [{"id": i} for i in range(5)] + [{"id": 99, "extra": {"nested": True}}]
    path = jsonl_gz(tmp_path / "sparse.jsonl.gz", rows)

    load([file_source(path)], SqlSink("sparse", conn_id="warehouse", batch_size=5))

    assert query(warehouse, "SELECT id, extra FROM sparse WHERE extra IS NOT NULL") == [(99, '{"nested":true}')]


@pytest.mark.parametrize("mode", ["append", "replace", "merge"])
def test_a_load_that_fails_halfway_leaves_the_table_unchanged(tmp_path, warehouse, mode):
    good = jsonl_gz(tmp_path / "good.jsonl.gz", [{"id": i, "v": "new"} for i in range(100)])
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": 1000, "v": "new"}\n{"id": 1001, "v": \n')
    with sqlite3.connect(warehouse) as conn:
        conn.execute("CREATE TABLE t (id BIGINT, v TEXT)")
        conn.executemany("INSERT INTO t VALUES (?, ?)", [(i, "old") for i in range(3)])

    sink = SqlSink("t", conn_id="warehouse", mode=mode, key_columns=["id"] if mode == "merge" else ())
    with pytest.raises(TransferError, match="line 2 is not valid JSON"):
        load([file_source(good), file_source(bad)], sink)

    assert query(warehouse, "SELECT id, v FROM t ORDER BY id") == [(0, "old"), (1, "old"), (2, "old")]
    tables = {n for (n,) in query(warehouse, "SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert tables == {"t", "exports_manifest"}
    assert query(warehouse, "SELECT count(*) FROM exports_manifest") == [(0,)]


def test_rerun_of_the_same_job_skips_and_overwrite_replaces_its_manifest_row(tmp_path, warehouse):
    path = jsonl_gz(tmp_path / "x.jsonl.gz", [{"id": 1}])
    sink = SqlSink("once", conn_id="warehouse")
    load([file_source(path)], sink)

    again = load([file_source(path)], sink)
    forced = load([file_source(path)], sink, overwrite=True)

    assert again.skipped and again.rows == 1 and not forced.skipped
    assert query(warehouse, "SELECT count(*) FROM once") == [(2,)]
    assert query(warehouse, "SELECT count(*) FROM exports_manifest") == [(1,)]
    (manifest,) = query(warehouse, "SELECT manifest FROM exports_manifest")[0]
    assert json.loads(manifest)["run_id"] == forced.run_id


def test_existing_table_without_a_column_fails_clearly_when_told_to(tmp_path, warehouse):
    path = jsonl_gz(tmp_path / "x.jsonl.gz", [{"id": 1, "surprise": 2}])
    with sqlite3.connect(warehouse) as conn:
        conn.execute("CREATE TABLE fixed (id BIGINT)")

    for mode in ("append", "replace", "merge"):
        sink = SqlSink("fixed", conn_id="warehouse", mode=mode, key_columns=["id"], on_schema_change="fail")  # type: ignore[arg-type]
        with pytest.raises(TransferRefused, match="no column 'surprise' and on_schema_change is 'fail'"):
            load([file_source(path)], sink)


def test_bad_settings_are_refused_early():
    with pytest.raises(ExportConfigError, match="key_columns"):
        SqlSink("t", conn_id="c", mode="merge")
    with pytest.raises(ExportConfigError, match="mode"):
        SqlSink("t", conn_id="c", mode="upsert")  # type: ignore[arg-type]
    with pytest.raises(ExportConfigError, match="file_format"):
        SqlSink("t", conn_id="c", file_format="xml")
    with pytest.raises(ExportConfigError, match="lock_timeout"):
        SqlSink("t", conn_id="c", lock_timeout=0)


# --- empty exports (both databases) --------------------------------------------------------------


def test_an_empty_replace_keeps_the_table_unless_allow_empty(db, tmp_path):
    db.run("CREATE TABLE t (id BIGINT); INSERT INTO t VALUES (1), (2)")
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")

    for files in ([], [file_source(empty)]):
        with pytest.raises(TransferRefused, match="no rows"):
            load(files, SqlSink("t", conn_id=db.conn_id, mode="replace"))
        assert db.query("SELECT count(*) FROM t") == [(2,)]

    load([], SqlSink("t", conn_id=db.conn_id, mode="replace", allow_empty=True))
    assert db.query("SELECT count(*) FROM t") == [(0,)]
    assert db.query("SELECT count(*) FROM exports_manifest") == [(1,)]


@pytest.mark.parametrize("mode", ["append", "merge"])
def test_an_empty_append_or_merge_commits_only_its_manifest(db, mode):
    db.run("CREATE TABLE t (id BIGINT); INSERT INTO t VALUES (1)")

    summary = load([], SqlSink("t", conn_id=db.conn_id, mode=mode, key_columns=["id"]))

    assert summary.rows == 0 and not summary.skipped
    assert db.query("SELECT id FROM t") == [(1,)]
    assert db.query("SELECT job_ref FROM exports_manifest") == [("job-1",)]


def test_lines_of_empty_objects_are_rows_with_every_column_null(db):
    """``{}`` is a row without a value: its columns NULL, the file's name kept, counted like any
    row (the row reader once failed on a batch of empty objects only)."""
    files = [ChunksSource("a.jsonl", [b'{}\n{}\n{"a": 1}\n']), ChunksSource("b.jsonl", [b"{}\n{}\n"])]
    summary = load(files, SqlSink("t", conn_id=db.conn_id))

    assert summary.rows == 5
    assert sorted(db.query("SELECT a, _source_file FROM t"), key=str) == sorted(
        [(None, "a.jsonl"), (None, "a.jsonl"), (1, "a.jsonl"), (None, "b.jsonl"), (None, "b.jsonl")], key=str
    )


# --- merge (both databases) ------------------------------------------------------------------------


def test_merge_refuses_rows_without_a_key(db):
    db.run("CREATE TABLE m (id BIGINT, v TEXT); INSERT INTO m VALUES (1, 'old')")
    rows = [{"id": 1, "v": "new"}, {"id": None, "v": "a"}, {"v": "b"}]

    with pytest.raises(TransferRefused, match=r"2 row\(s\) of the export have no value in key column\(s\) id"):
        load([ChunksSource("x.jsonl", jsonl(rows))], SqlSink("m", conn_id=db.conn_id, mode="merge", key_columns=["id"]))

    assert db.query("SELECT id, v FROM m") == [(1, "old")]


@pytest.mark.parametrize("existing", [True, False], ids=["existing-table", "new-table"])
def test_merge_keeps_the_last_row_of_a_repeated_key(db, existing):
    if existing:
        db.run("CREATE TABLE m (id BIGINT, k2 TEXT, v TEXT); INSERT INTO m VALUES (1, 'a', 'old'), (9, 'a', 'kept')")
    first = [{"id": 1, "k2": "a", "v": "first"}, {"id": 2, "k2": "a", "v": "x"}, {"id": 1, "k2": "a", "v": "second"}]
    second = [{"id": 2, "k2": "b", "v": "other key"}, {"id": 1, "k2": "a", "v": "last"}]
    sink = SqlSink("m", conn_id=db.conn_id, mode="merge", key_columns=["id", "k2"], batch_size=2)

    load([ChunksSource("1.jsonl", jsonl(first)), ChunksSource("2.jsonl", jsonl(second))], sink)

    expected = [(1, "a", "last"), (2, "a", "x"), (2, "b", "other key")] + ([(9, "a", "kept")] if existing else [])
    assert db.query("SELECT id, k2, v FROM m ORDER BY id, k2") == expected


def test_merge_of_the_same_rows_twice_gives_them_once(db):
    rows = [{"id": i, "v": f"v{i}"} for i in range(3)]
    for job in ("job-1", "job-2"):
        sink = SqlSink("m", conn_id=db.conn_id, mode="merge", key_columns=["id"])
        load([ChunksSource("x.jsonl", jsonl(rows))], sink, job_ref=job)

    assert db.query("SELECT id, v FROM m ORDER BY id") == [(0, "v0"), (1, "v1"), (2, "v2")]


def _delta_file(name: str, kind: str, rows: list[dict]) -> ChunksSource:
    source = ChunksSource(name, jsonl(rows))
    source.attributes = {"delta": kind}
    return source


def _delta_sink(db) -> SqlSink:
    return SqlSink(
        "m",
        conn_id=db.conn_id,
        mode="merge",
        key_columns=["id"],
        attribute_columns={"_delta": "delta"},
        removed_when=("_delta", "removed"),
    )


@pytest.mark.parametrize("existing", [True, False], ids=["existing-table", "new-table"])
def test_merge_of_a_delta_upserts_added_rows_and_deletes_removed_keys(db, existing):
    if existing:
        db.run("CREATE TABLE m (id BIGINT, v TEXT); INSERT INTO m VALUES (1, 'old'), (2, 'gone'), (3, 'kept')")
    files = [
        _delta_file("added-1.jsonl", "added", [{"id": 1, "v": "new"}, {"id": 4, "v": "joined"}, {"id": 5, "v": "back"}]),
        # 9 is in no table: not an error; 5 is added and removed in one job: added wins
        _delta_file("removed-1.jsonl", "removed", [{"id": 2, "v": "gone"}, {"id": 9, "v": "x"}, {"id": 5, "v": "b"}]),
    ]

    summary = load(files, _delta_sink(db), job_ref="job-1")

    assert summary.rows == 6
    expected = [(1, "new"), (4, "joined"), (5, "back")] + ([(3, "kept")] if existing else [])
    assert db.query("SELECT id, v FROM m ORDER BY id") == sorted(expected)
    assert "_delta" not in db.column_types("m")
    # the same rows again (a replayed job) change nothing
    load(files, _delta_sink(db), job_ref="job-1-again")
    assert db.query("SELECT id, v FROM m ORDER BY id") == sorted(expected)


def test_merge_of_a_delta_keeps_the_mark_in_an_existing_table_that_has_the_column(db):
    db.run("CREATE TABLE m (id BIGINT, v TEXT, _delta TEXT); INSERT INTO m VALUES (1, 'old', 'added')")
    files = [
        _delta_file("added-1.jsonl", "added", [{"id": 2, "v": "joined"}]),
        _delta_file("removed-1.jsonl", "removed", [{"id": 1, "v": "old"}]),
    ]
    load(files, _delta_sink(db))
    assert db.query("SELECT id, v, _delta FROM m ORDER BY id") == [(2, "joined", "added")]


# --- a file that starts again (both databases) ----------------------------------------------------


@pytest.mark.parametrize("existing", [True, False], ids=["existing-table", "new-table"])
@pytest.mark.parametrize("mode", ["append", "replace", "merge"])
def test_a_file_whose_source_changed_is_rolled_back_to_its_savepoint(db, mode, existing):
    if existing:
        db.run("CREATE TABLE t (id BIGINT, v TEXT); INSERT INTO t VALUES (100, 'old')")
    before = ChunksSource("a.jsonl", jsonl([{"id": 1, "v": "a"}]))
    # the first version's half has a column and a type the second version does not: neither may stay
    old = jsonl([{"id": i, "v": str(i)} for i in range(10, 14)]) if existing else jsonl(
        [{"id": 10, "v": "text", "gone": 1.5}] * 4
    )
    changing = ChunksSource("b.jsonl", jsonl([{"id": 2, "v": "b"}, {"id": 3, "v": "c"}]), changed=old)
    sink = SqlSink("t", conn_id=db.conn_id, mode=mode, key_columns=["id"] if mode == "merge" else (), batch_size=1)

    summary = load([before, changing], sink)

    assert summary.rows == 3
    kept = [(100, "old")] if existing and mode != "replace" else []
    assert db.query("SELECT id, v FROM t ORDER BY id") == [(1, "a"), (2, "b"), (3, "c"), *kept]
    if not existing:
        assert set(db.column_types("t")) == {"id", "v", "_source_file"} and db.column_types("t")["id"] == "BIGINT"
        # the discarded first version of b.jsonl left no row: each row names the file it came from
        got = db.query("SELECT id, _source_file FROM t ORDER BY id")
        assert got == [(1, "a.jsonl"), (2, "b.jsonl"), (3, "b.jsonl")]


def test_without_savepoints_a_changed_source_fails_the_load(warehouse, monkeypatch):
    monkeypatch.setattr(sink_mod, "dialect_for", Dialect)  # the generic dialect, on SQLite
    changing = ChunksSource("b.jsonl", jsonl([{"id": 2}]), changed=jsonl([{"id": 1}, {"id": 1}]))

    with pytest.raises(TransferError, match="no savepoints"):
        load([changing], SqlSink("t", conn_id="warehouse"))

    assert query(warehouse, "SELECT name FROM sqlite_master WHERE name = 't'") == []


# --- the generic dialect ----------------------------------------------------------------------------


def test_generic_dialect_creates_the_table_at_commit_with_portable_types(warehouse, monkeypatch):
    monkeypatch.setattr(sink_mod, "dialect_for", Dialect)
    rows = [{"id": 1, "price": "x", "ok": True}, {"id": 2, "price": "y", "ok": False}]
    (warehouse.parent / "p.csv").write_text("id,amount\n1,2.50\n2,3\n")

    load([ChunksSource("x.jsonl", jsonl(rows))], SqlSink("t", conn_id="warehouse", batch_size=1))
    load([file_source(warehouse.parent / "p.csv")], SqlSink("amounts", conn_id="warehouse"))

    assert query(warehouse, "SELECT id, price, ok FROM t ORDER BY id") == [(1, "x", 1), (2, "y", 0)]
    # NUMERIC without a precision cuts fractions on some databases: undeclared decimals stay text
    assert query(warehouse, "SELECT id, amount FROM amounts ORDER BY id") == [(1, "2.50"), (2, "3")]


def test_generic_dialect_a_concurrent_run_of_the_job_that_committed_first_wins(warehouse, monkeypatch):
    monkeypatch.setattr(sink_mod, "dialect_for", Dialect)
    with sqlite3.connect(warehouse) as conn:
        conn.execute("CREATE TABLE t (id BIGINT)")
    late = SqlSink("t", conn_id="warehouse")
    ctx = TransferContext(VENDOR, "loyalty_members", "job-1")
    assert late.begin(ctx) is None  # no lock in the generic dialect: the other run goes ahead

    first = load([ChunksSource("x.jsonl", jsonl([{"id": 1}]))], SqlSink("t", conn_id="warehouse"))
    late.write_file(ChunksSource("x.jsonl", []), iter(jsonl([{"id": 1}])))
    winner = late.commit({"vendor": VENDOR, "export_ref": "loyalty_members", "job_ref": "job-1",
                          "finished_at": "now", "run_id": ctx.run_id, "manifest_version": 1})

    assert winner is not None and winner["run_id"] == first.run_id
    assert query(warehouse, "SELECT count(*) FROM t") == [(1,)]
    assert query(warehouse, "SELECT count(*) FROM exports_manifest") == [(1,)]


def _profiles_parquet(tmp_path, rows=500):
    from airflow_provider_exports_sandbox.synthetic_parquet import ProfileFileSpec, write_profiles

    path = tmp_path / "part-00000.snappy.parquet"
    with path.open("wb") as f:
        write_profiles(ProfileFileSpec(rows=rows, segments=("seg-a",), row_group_rows=200), f)
    return path


@pytest.mark.parametrize("mode", ["replace", "merge"])
def test_nested_xdm_fields_land_as_json(db, tmp_path, mode):
    """identityMap, segmentMembership, person...: jsonb on PostgreSQL, JSON text on SQLite, whole
    objects (maps as objects, times as ISO 8601), also through a merge's staging."""
    keys = ["personalEmail"] if mode == "merge" else []
    summary = load([file_source(_profiles_parquet(tmp_path))], SqlSink("profiles", conn_id=db.conn_id, mode=mode, key_columns=keys))
    assert summary.rows == 500
    nested = ["identities", "identityMap", "personalEmail", "person", "homeAddress", "segmentMembership"]
    expected_type = "JSONB" if db.kind == "postgres" else "TEXT"
    assert db.column_types("profiles") == {**dict.fromkeys(nested, expected_type), "_source_file": "TEXT"}
    if db.kind == "postgres":
        (first, email, ns) = db.query(
            """SELECT person->'name'->>'firstName', "identityMap"->'Email'->0->>'id', """
            """jsonb_typeof("segmentMembership"->'ups'->'seg-a'->'lastQualificationTime') FROM profiles LIMIT 1"""
        )[0]
    else:
        (first, email, ns) = db.query(
            "SELECT json_extract(person, '$.name.firstName'), json_extract(identityMap, '$.Email[0].id'), "
            "json_type(segmentMembership, '$.ups.\"seg-a\".lastQualificationTime') FROM profiles LIMIT 1"
        )[0]
    assert first and email.endswith("@example.com") and ns in ("string", "text")


def test_nested_xdm_structs_flatten_to_named_columns(db, tmp_path):
    load([file_source(_profiles_parquet(tmp_path))], SqlSink("flat", conn_id=db.conn_id, flatten_structs=True))
    types = db.column_types("flat")
    json_type = "JSONB" if db.kind == "postgres" else "TEXT"
    assert types == {
        "identities": json_type,  # a list: stays JSON
        "identityMap": json_type,  # a map: stays JSON
        "personalEmail_address": "TEXT",
        "personalEmail_status": "TEXT",
        "person_name_firstName": "TEXT",
        "person_name_lastName": "TEXT",
        "homeAddress_city": "TEXT",
        "homeAddress_countryCode": "TEXT",
        "homeAddress_postalCode": "TEXT",
        "segmentMembership": json_type,
        "_source_file": "TEXT",
    }
    rows = db.query('SELECT "person_name_firstName", "personalEmail_address" FROM flat ORDER BY 2 LIMIT 1')
    (first, email) = rows[0]
    assert first and email.lower().startswith(first.lower() + ".")


# --- a batch transform (wide to long) -----------------------------------------------------------------


@pytest.mark.parametrize("existing", [True, False], ids=["existing-table", "new-table"])
def test_a_batch_transform_reshapes_rows_before_they_load(db, existing):
    from airflow_provider_exports.transfers.engine.transforms import Unpivot

    if existing:
        db.run("CREATE TABLE t (audience TEXT, day DATE, count BIGINT)")
    wide = [b"audience,2026-11-01,2026-11-02\r\n", b"vip,10,11\r\nnew,5,\r\n"]
    sink = SqlSink(
        "t",
        conn_id=db.conn_id,
        mode="merge",
        key_columns=["audience", "day"],
        column_types={"audience": "TEXT", "day": "DATE", "count": "BIGINT"},
        batch_transform=Unpivot("audience", "day", "count", max_rows=3),
        batch_size=1,
    )

    summary = load([ChunksSource("trends.csv", wide)], sink)

    assert summary.rows == 4
    assert db.query("SELECT audience, CAST(day AS TEXT), count FROM t ORDER BY 1, 2") == [
        ("new", "2026-11-01", 5),
        ("new", "2026-11-02", None),
        ("vip", "2026-11-01", 10),
        ("vip", "2026-11-02", 11),
    ]
    added = {} if existing else {"_source_file": "TEXT"}  # an existing table without it loads as before
    assert db.column_types("t") == {"audience": "TEXT", "day": "DATE", "count": "BIGINT", **added}
