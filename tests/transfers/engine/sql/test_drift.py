"""Schema drift: a field an existing table lacks (``on_schema_change``), and a value an existing
column cannot hold, on every SQL path (CSV pass-through, columnar, rows, merge, replace, fan-out)
and on PostgreSQL, SQLite and the generic dialect."""

from __future__ import annotations

import json
import logging
from concurrent.futures import ThreadPoolExecutor

import pytest

from airflow_provider_exports.exceptions import ExportConfigError, TransferError, TransferRefused
from airflow_provider_exports.transfers.engine import SqlSink
from airflow_provider_exports.transfers.engine.sql import sink as sink_mod
from airflow_provider_exports.transfers.engine.sql.drift import refusal
from airflow_provider_exports.transfers.engine.sql.generic import Dialect, ValueRefused

from .conftest import WAIT, ChunksSource, Db, jsonl, load, query, wait_until
from .test_postgres import _Psycopg2Hook
from .test_staging import commit, stage

OLD = "CREATE TABLE t (id BIGINT, name TEXT); INSERT INTO t VALUES (0, 'old');"


@pytest.fixture(params=["sqlite", "postgres", "generic"])
def anydb(request, monkeypatch) -> Db:
    """PostgreSQL, SQLite, and the generic DB-API dialect (on SQLite)."""
    if request.param == "postgres":
        return Db("postgres", "pg", request.getfixturevalue("pg"))
    if request.param == "generic":
        monkeypatch.setattr(sink_mod, "dialect_for", Dialect)
    return Db("sqlite", "warehouse", request.getfixturevalue("warehouse"))


def columns_added(db: Db) -> list[list[str] | None]:
    """What each manifest row says the load added."""
    return [json.loads(m)["destination"].get("columns_added") for (m,) in db.query("SELECT manifest FROM exports_manifest")]


def types(db: Db) -> dict[str, str]:
    return db.column_types("t")


@pytest.mark.parametrize("mode", ["append", "replace", "merge"])
def test_a_new_field_becomes_a_nullable_column_typed_from_its_values(anydb, mode):
    anydb.run(OLD)
    rows = [
        {"id": 1, "name": "a", "tier": "gold", "score": 5, "zip": "02134"},
        {"id": 2, "name": "b", "tier": None, "score": 7, "zip": "10001"},
    ]
    sink = SqlSink("t", conn_id=anydb.conn_id, mode=mode, key_columns=["id"])  # type: ignore[arg-type]

    summary = load([ChunksSource("a.jsonl", jsonl(rows))], sink)

    found = types(anydb)
    assert (found["tier"], found["score"], found["zip"]) == ("TEXT", "BIGINT", "TEXT")  # zeros kept
    want = [(1, "a", "gold", 5, "02134"), (2, "b", None, 7, "10001")]
    old = [] if mode == "replace" else [(0, "old", None, None, None)]
    assert anydb.query("SELECT id, name, tier, score, zip FROM t ORDER BY id") == old + want
    assert columns_added(anydb) == [["tier", "score", "zip"]]
    assert summary.destination["columns_added"] == ["tier", "score", "zip"]


@pytest.mark.parametrize("path", ["jsonl", "csv", "jsonl-rows", "merge", "replace"])
def test_a_field_that_first_shows_in_a_later_batch_or_file_is_added_too(anydb, monkeypatch, path):
    """The hidden column: no value in the first batches (or no such field in the first file)."""
    if path == "jsonl-rows":
        if anydb.kind != "postgres":
            pytest.skip("SQLite and the generic dialect read JSON lines by rows anyway")
        monkeypatch.setattr(sink_mod, "_has_pyarrow", lambda: False)
    anydb.run(OLD)
    if path == "csv":
        first = ChunksSource("a.csv", [b"id,name,late\n1,n,\n2,n,\n3,n,\n4,n,\n5,n,12\n"])
        second = ChunksSource("b.csv", [b"id,name,later\n6,n,7\n"])
    else:
        rows = [{"id": i, "name": "n", "late": None} for i in range(1, 5)] + [{"id": 5, "name": "n", "late": 12}]
        first = ChunksSource("a.jsonl", jsonl(rows))
        second = ChunksSource("b.jsonl", jsonl([{"id": 6, "name": "n", "later": 7}]))
    mode = path if path in ("merge", "replace") else "append"
    sink = SqlSink("t", conn_id=anydb.conn_id, mode=mode, key_columns=["id"], batch_size=2)  # type: ignore[arg-type]

    load([first, second], sink)

    assert (types(anydb)["late"], types(anydb)["later"]) == ("BIGINT", "BIGINT")  # not TEXT: typed by values
    assert anydb.query("SELECT id, late, later FROM t WHERE late IS NOT NULL OR later IS NOT NULL ORDER BY id") == [
        (5, 12, None),
        (6, None, 7),
    ]
    assert anydb.query("SELECT count(*) FROM t") == [(6 if mode == "replace" else 7,)]
    assert columns_added(anydb) == [["late", "later"]]


def test_postgres_widens_an_added_column_when_later_values_need_it(pg):
    db = Db("postgres", "pg", pg)
    db.run(OLD)
    rows = [{"id": 1, "score": 5}, {"id": 2, "score": 2.5}, {"id": 3, "score": "n/a"}]
    load([ChunksSource("a.jsonl", jsonl(rows[:2])), ChunksSource("b.jsonl", jsonl(rows[2:]))], SqlSink("t", conn_id="pg", batch_size=1))
    assert types(db)["score"] == "TEXT"
    assert db.query("SELECT id, score FROM t WHERE id > 0 ORDER BY id") == [(1, "5"), (2, "2.5"), (3, "n/a")]


def test_a_database_that_cannot_retype_refuses_a_wider_value_and_column_types_settles_it(warehouse):
    db = Db("sqlite", "warehouse", warehouse)
    db.run(OLD)
    rows = [{"id": 1, "score": 5}, {"id": 2, "score": 2.5}]

    with pytest.raises(TransferRefused, match=r"column 'score' of t was made BIGINT .* column_types=\{'score': 'DOUBLE PRECISION'\}"):
        load([ChunksSource("a.jsonl", jsonl(rows))], SqlSink("t", conn_id="warehouse", batch_size=1))
    assert "score" not in types(db) and db.query("SELECT count(*) FROM exports_manifest") == [(0,)]

    load([ChunksSource("a.jsonl", jsonl(rows))], SqlSink("t", conn_id="warehouse", batch_size=1, column_types={"score": "DOUBLE PRECISION"}))
    assert types(db)["score"] == "DOUBLE PRECISION"
    assert db.query("SELECT id, score FROM t WHERE id > 0 ORDER BY id") == [(1, 5.0), (2, 2.5)]


@pytest.mark.parametrize("header", [True, False])
def test_postgres_csv_with_a_new_field_is_read_and_the_column_added_then_passes_through_again(
    pg, header, monkeypatch
):
    from airflow_provider_exports.transfers.engine.sql.csv_passthrough import Unread

    passed: list[bool] = []  # per file: whether its bytes went straight through

    def copy_csv_file(*args, **kwargs):
        done = real(*args, **kwargs)
        passed.append(not isinstance(done, Unread))
        return done

    real = sink_mod.copy_csv_file
    monkeypatch.setattr(sink_mod, "copy_csv_file", copy_csv_file)
    db = Db("postgres", "pg", pg)
    db.run(OLD)
    csv = ChunksSource("a.csv", [b"id,name,zip\n" if header else b"", b'1,a,02134\n2,"b",\n'])
    same = ChunksSource("b.csv", [b"id,name\n" if header else b"", b"3,c\n"])
    names = None if header else ["id", "name", "zip"]
    load([csv], SqlSink("t", conn_id="pg", csv_header=header, csv_columns=names))
    load([same], SqlSink("t", conn_id="pg", csv_header=header, csv_columns=None if header else ["id", "name"]), job_ref="job-2")

    assert types(db)["zip"] == "TEXT"
    assert db.query("SELECT id, name, zip FROM t ORDER BY id") == [(0, "old", None), (1, "a", "02134"), (2, "b", None), (3, "c", None)]
    assert columns_added(db) == [["zip"], None]
    assert passed == [False, True]


def test_parquet_brings_its_own_type_for_an_added_column(pg, tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    import pyarrow as pa

    db = Db("postgres", "pg", pg)
    db.run(OLD)
    path = tmp_path / "a.parquet"
    pq.write_table(pa.table({"id": pa.array([1], pa.int64()), "amount": pa.array([1.25], pa.float64())}), path)
    load([ChunksSource("a.parquet", [path.read_bytes()])], SqlSink("t", conn_id="pg"))
    assert types(db)["amount"] == "DOUBLE PRECISION"
    assert db.query("SELECT id, amount FROM t WHERE id = 1") == [(1, 1.25)]


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
@pytest.mark.parametrize("mode", ["append", "merge"])
def test_fail_refuses_a_new_field_by_name_and_leaves_the_table(anydb, fmt, mode):
    anydb.run(OLD)
    data = [b"id,name,tier\n1,a,gold\n"] if fmt == "csv" else jsonl([{"id": 1, "name": "a", "tier": "gold"}])
    sink = SqlSink("t", conn_id=anydb.conn_id, mode=mode, key_columns=["id"], on_schema_change="fail")  # type: ignore[arg-type]
    with pytest.raises(TransferRefused, match=r"t has no column 'tier' and on_schema_change is 'fail'"):
        load([ChunksSource(f"a.{fmt}", data)], sink)
    assert anydb.query("SELECT * FROM t") == [(0, "old")]


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
@pytest.mark.parametrize("mode", ["append", "replace", "merge"])
def test_ignore_drops_the_field_and_says_so_once_per_column(anydb, fmt, mode, caplog):
    anydb.run(OLD)
    files = [
        ChunksSource(f"{n}.{fmt}", [f"id,name,tier\n{n},x,gold\n{n + 10},y,\n".encode()])
        if fmt == "csv"
        else ChunksSource(f"{n}.{fmt}", jsonl([{"id": n, "name": "x", "tier": "gold"}, {"id": n + 10, "name": "y"}]))
        for n in (1, 2)
    ]
    sink = SqlSink("t", conn_id=anydb.conn_id, mode=mode, key_columns=["id"], on_schema_change="ignore", batch_size=1)  # type: ignore[arg-type]
    with caplog.at_level(logging.WARNING):
        load(files, sink)

    assert list(types(anydb)) == ["id", "name"]
    loaded = [(1, "x"), (2, "x"), (11, "y"), (12, "y")]
    assert anydb.query("SELECT id, name FROM t WHERE id > 0 ORDER BY id") == loaded
    said = [r for r in caplog.records if "its values are dropped" in r.getMessage()]
    assert len(said) == 1 and "'tier'" in said[0].getMessage()
    assert columns_added(anydb) == [None]


def test_bad_on_schema_change_is_refused_naming_the_field():
    with pytest.raises(ExportConfigError, match=r"on_schema_change.*'add' is not one of append_new_columns, fail, ignore"):
        SqlSink("t", conn_id="c", on_schema_change="add")  # type: ignore[arg-type]


def test_a_failed_load_takes_its_added_column_back(anydb):
    """Nothing half-written: the column added for the first file goes with the load that failed."""
    anydb.run(OLD)
    good = ChunksSource("a.jsonl", jsonl([{"id": 1, "name": "a", "tier": "gold"}]))
    bad = ChunksSource("b.jsonl", [b'{"id": 2, "name": \n'])  # a line that is no JSON
    with pytest.raises(TransferError):
        load([good, bad], SqlSink("t", conn_id=anydb.conn_id))
    assert list(types(anydb)) == ["id", "name"]
    assert anydb.query("SELECT * FROM t") == [(0, "old")]


@pytest.mark.parametrize("new_field", [True, False], ids=["adds-a-column", "no-new-field"])
def test_postgres_readers_wait_while_a_load_adds_a_column_else_read_the_old_rows(pg, new_field):
    """``ALTER TABLE`` holds the table's exclusive lock to the commit: readers wait, then see the
    column and the rows together. A load that adds nothing leaves them reading the old rows."""
    Db("postgres", "pg", pg).run(OLD)
    extra = {"tier": "gold"} if new_field else {}
    first = ChunksSource("a.jsonl", jsonl([{"id": 1, "name": "a", **extra}]))
    second = ChunksSource("b.jsonl", jsonl([{"id": 2, "name": "b"}]), pause_before=0)
    held = "AccessExclusiveLock" if new_field else "RowExclusiveLock"
    with ThreadPoolExecutor(1) as pool:
        running = pool.submit(load, [first, second], SqlSink("t", conn_id="pg"))
        assert second.paused.wait(WAIT)
        wait_until(
            lambda: query(pg, "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
                              f"WHERE c.relname = 't' AND l.mode = '{held}' AND l.granted") == [(1,)],
            f"the load holds {held} on the table",
        )
        cur = pg.cursor()
        cur.execute("SET lock_timeout = '100ms'")
        if new_field:
            with pytest.raises(Exception, match="lock timeout"):
                cur.execute("SELECT * FROM t")
        else:
            cur.execute("SELECT * FROM t")
            assert cur.fetchall() == [(0, "old")]
        cur.execute("RESET lock_timeout")
        second.resume.set()
        running.result(WAIT)
    want = [(0, "old", None), (1, "a", "gold"), (2, "b", None)] if new_field else [(0, "old"), (1, "a"), (2, "b")]
    assert query(pg, "SELECT * FROM t ORDER BY id") == want


# --- a value its column cannot hold --------------------------------------------------------------


def test_a_refusal_names_the_column_and_row_when_known_and_never_the_value():
    named = refusal("a.csv", "t", "bigint", ValueRefused("id", 7, "x@example.com"))
    assert str(named).startswith("a.csv, row 7: column 'id' of t is bigint, and the value there is text")
    # psycopg2 names no parameter, and a value its batch does not show as text: neither is known
    unnamed = refusal("a.csv", "t", None, ValueRefused("", None, "x@example.com"))
    assert str(unnamed).startswith("a.csv (a row of it): a column of t is of its own type, and the value there is text")
    assert "x@example.com" not in str(named) + str(unnamed)


@pytest.mark.parametrize("driver", ["psycopg", "psycopg2"])
@pytest.mark.parametrize(
    "path", ["csv-passthrough", "jsonl-columnar", "jsonl-rows", "executemany", "merge", "replace"]
)
def test_postgres_refuses_text_into_bigint_naming_column_types_and_row(pg, postgres, monkeypatch, path, driver):
    db = Db("postgres", "pg", pg)
    db.run(OLD)
    rows = [{"id": i, "name": "n"} for i in range(1, 7)] + [{"id": "secret-ish@example.com", "name": "n"}]
    source = ChunksSource("a.jsonl", jsonl(rows))
    if path == "csv-passthrough":
        source = ChunksSource("a.csv", [b"id,name\n" + b"".join(f"{r['id']},n\n".encode() for r in rows)])
    if path == "jsonl-rows":
        monkeypatch.setattr(sink_mod, "_has_pyarrow", lambda: False)
    options = {"use_copy": False} if path == "executemany" else {}
    mode = path if path in ("merge", "replace") else "append"
    connection = {"conn_id": "pg"} if driver == "psycopg" else {"hook": _Psycopg2Hook(postgres)}
    sink = SqlSink("t", mode=mode, key_columns=["id"], batch_size=3, **connection, **options)  # type: ignore[arg-type]

    with pytest.raises(TransferRefused) as refused:
        load([source], sink)

    message = str(refused.value)
    assert message.startswith(f"{source.name}, row 7: column 'id' of t is bigint, and the value there is text"), message
    assert "secret-ish" not in message and refused.value.__cause__ is None
    assert db.query("SELECT * FROM t") == [(0, "old")]


@pytest.mark.parametrize("value", ["abc", "007", 1.5])
def test_sqlite_refuses_what_it_would_keep_as_text_or_read_as_another_number(warehouse, value):
    db = Db("sqlite", "warehouse", warehouse)
    db.run(OLD)
    rows = [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}, {"id": value, "name": "c"}]
    with pytest.raises(TransferRefused, match=r"^a\.jsonl, row 3: column 'id' of t is BIGINT, and the value there is") as refused:
        load([ChunksSource("a.jsonl", jsonl(rows))], SqlSink("t", conn_id="warehouse", batch_size=2))
    assert str(value) not in str(refused.value).partition("value there is")[2]
    assert db.query("SELECT * FROM t") == [(0, "old")]


def test_sqlite_takes_canonical_numbers_as_text_into_numeric_columns(warehouse):
    db = Db("sqlite", "warehouse", warehouse)
    db.run(OLD)
    load([ChunksSource("a.csv", [b"id,name\n1,a\n-20,b\n"])], SqlSink("t", conn_id="warehouse"))
    assert db.query("SELECT id, typeof(id) FROM t WHERE id <> 0 ORDER BY id") == [(-20, "integer"), (1, "integer")]


# --- fanned out: the groups stage, the commit adds ------------------------------------------------


@pytest.mark.parametrize("mode", ["append", "merge"])
def test_fan_out_adds_the_column_at_commit_typed_from_every_group(db, mode):
    db.run(OLD)
    groups = [  # the field is hidden from the first group's first file
        [ChunksSource("a0.jsonl", jsonl([{"id": 3, "name": "c"}])), ChunksSource("a.jsonl", jsonl([{"id": 1, "name": "a", "score": 5}]))],
        [ChunksSource("b.jsonl", jsonl([{"id": 2, "name": "b", "score": 2.5}]))],
    ]
    options = {"mode": mode, "key_columns": ["id"]}
    staged = stage(db, groups, table="t", **options)
    assert "score" not in types(db)  # the groups never alter the table

    commit(db, staged, table="t", **options)

    assert types(db)["score"] == "DOUBLE PRECISION"  # what one load of both files would give
    assert db.query("SELECT id, score FROM t WHERE id > 0 ORDER BY id") == [(1, 5.0), (2, 2.5), (3, None)]
    assert columns_added(db) == [["score"]]


@pytest.mark.parametrize("policy", ["fail", "ignore"])
def test_fan_out_follows_the_policy_in_the_groups_and_the_commit(db, policy):
    db.run(OLD)
    groups = [[ChunksSource("a.jsonl", jsonl([{"id": 1, "name": "a", "score": 5}]))]]
    if policy == "fail":
        with pytest.raises(TransferRefused, match="no column 'score'"):
            stage(db, groups, table="t", on_schema_change=policy)
        return
    staged = stage(db, groups, table="t", on_schema_change=policy)
    commit(db, staged, table="t", on_schema_change=policy)
    assert list(types(db)) == ["id", "name"]
    assert db.query("SELECT id, name FROM t ORDER BY id") == [(0, "old"), (1, "a")]


@pytest.mark.parametrize("mode", ["append", "merge"])
def test_a_column_planted_in_xcom_is_never_added_to_the_table(db, mode):
    """XCom is input: a column the group never staged must not reach ``ALTER TABLE``."""
    db.run(OLD)
    options = {"mode": mode, "key_columns": ["id"]}
    staged = stage(db, [[ChunksSource("a.jsonl", jsonl([{"id": 1, "name": "a"}]))]], table="t", **options)
    staged[0]["columns"].append("planted")
    with pytest.raises(ExportConfigError, match=r"group\.columns: group 0 names \['planted'\]"):
        commit(db, staged, table="t", **options)
    assert list(types(db)) == ["id", "name"]
    assert db.query("SELECT * FROM t") == [(0, "old")]


def test_a_file_that_starts_again_adds_its_column_once(db, monkeypatch):
    """The source changed mid-read after the column was added: the file rolls back to its savepoint
    (the column with it) and loads again."""
    monkeypatch.setattr(sink_mod, "_has_pyarrow", lambda: False)  # rows: a batch is in before the change
    db.run(OLD)
    rows = [{"id": i, "name": "n", "tier": f"t{i}"} for i in range(1, 7)]
    source = ChunksSource("a.jsonl", jsonl(rows), changed=jsonl([{**r, "tier": 1} for r in rows]))
    load([source], SqlSink("t", conn_id=db.conn_id, batch_size=2))
    assert types(db)["tier"] == "TEXT"  # not BIGINT, as the first read's values would have had it
    assert db.query("SELECT count(*), count(tier) FROM t") == [(7, 6)]
    assert columns_added(db) == [["tier"]]
