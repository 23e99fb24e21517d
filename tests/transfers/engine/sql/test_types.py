"""Column types of a table a load creates: decided from every value of the load, never from a sample."""

from __future__ import annotations

from decimal import Decimal

import pytest

from airflow_provider_exports.exceptions import ExportConfigError, TransferRefused
from airflow_provider_exports.transfers.engine import SqlSink
from airflow_provider_exports.transfers.engine.sql.types import TypeTracker, check_type_name, json_as_text

from .conftest import ChunksSource, file_source, jsonl, load

# --- the rules ----------------------------------------------------------------------------------------


def _json_type(*batches: list) -> str:
    tracker = TypeTracker()
    for values in batches:
        tracker.observe("c", values, "f.jsonl", from_text=False)
    return tracker.final("c").name


def _text_type(*batches: list) -> str:
    tracker = TypeTracker()
    for values in batches:
        tracker.observe("c", values, "f.csv", from_text=True)
    return tracker.final("c").name


@pytest.mark.parametrize(
    ("batches", "expected"),
    [
        ([[1, 2, None]], "BIGINT"),
        ([[1, 2], [2.75]], "DOUBLE PRECISION"),
        ([[2.75], [1]], "DOUBLE PRECISION"),
        ([[1], [2**53 + 1], [0.5]], "NUMERIC"),  # a double would round 2**53 + 1
        ([[1], [2**63]], "NUMERIC"),  # beyond int64
        ([[True, None], [False]], "BOOLEAN"),
        ([[True], [1]], "TEXT"),
        ([[1], ["x"]], "TEXT"),
        ([["1"]], "TEXT"),  # a JSON string is text, whatever it spells
        (['{"a":1}'], "TEXT"),
        ([[None], [None]], "TEXT"),
        ([[1], ["x"], [2]], "TEXT"),  # once text, always text
    ],
)
def test_json_values_widen_across_batches(batches, expected):
    assert _json_type(*batches) == expected


@pytest.mark.parametrize(
    ("batches", "expected"),
    [
        ([["12345", "23456"], ["02134"]], "TEXT"),
        ([["1", "22", None], ["-3", "0"]], "BIGINT"),
        ([["+4930123"]], "TEXT"),
        ([["007"]], "TEXT"),
        ([["1e3"]], "TEXT"),
        ([["1", "2.5"], ["-0.25"]], "NUMERIC"),
        ([["1."]], "TEXT"),
        ([[".5"]], "TEXT"),
        ([[" 1"]], "TEXT"),
        ([["9223372036854775807", "-9223372036854775807"]], "BIGINT"),
        ([["9223372036854775808"]], "NUMERIC"),
        ([["1", "x"]], "TEXT"),
        ([[None]], "TEXT"),
    ],
)
def test_csv_text_is_a_number_only_when_every_value_is_canonical(batches, expected):
    assert _text_type(*batches) == expected


def test_declared_types_win_and_disagreeing_files_are_refused():
    tracker = TypeTracker({"zip": "TEXT"})
    tracker.declare("zip", "BIGINT", "a.parquet")
    tracker.observe("zip", ["1"], "b.csv", from_text=True)
    assert tracker.final("zip").name == "TEXT"

    tracker.declare("n", "BIGINT", "a.parquet")
    tracker.declare("n", "BIGINT", "b.parquet")
    with pytest.raises(TransferRefused, match=r"'n' is BIGINT in file 'a.parquet' and DOUBLE PRECISION in file 'c.parquet'"):
        tracker.declare("n", "DOUBLE PRECISION", "c.parquet")
    with pytest.raises(TransferRefused, match=r"'n': file 'a.parquet' declares BIGINT, file 'd.jsonl' brings values"):
        tracker.observe("n", [1], "d.jsonl", from_text=False)
    tracker.observe("v", [1], "d.jsonl", from_text=False)
    with pytest.raises(TransferRefused, match=r"'v': file 'd.jsonl' brings values without a declared type"):
        tracker.declare("v", "BIGINT", "e.parquet")


def test_json_values_are_staged_as_the_text_json_writes():
    assert json_as_text([True, False, None]) == ["true", "false", None]
    assert json_as_text([1, 2]) == ["1", "2"]
    assert json_as_text([2.75, 1e100]) == ["2.75", "1e+100"]
    assert json_as_text([1, "x", 0.1 + 0.2, None]) == ["1", "x", "0.30000000000000004", None]
    values = ["a", None]
    assert json_as_text(values) is values


# --- on both databases: what a user saw, and what lands now -----------------------------------------------


def test_csv_zip_codes_across_batches_stay_text(db, tmp_path):
    (tmp_path / "zips.csv").write_text("id,zip\n1,12345\n2,23456\n3,02134\n")

    load([file_source(tmp_path / "zips.csv")], SqlSink("zips", conn_id=db.conn_id, batch_size=2))

    assert db.column_types("zips") == {"id": "BIGINT", "zip": "TEXT", "_source_file": "TEXT"}
    assert db.query("SELECT zip FROM zips ORDER BY id") == [("12345",), ("23456",), ("02134",)]


def test_csv_phone_numbers_and_ids_with_leading_zeros_stay_text(db, tmp_path):
    (tmp_path / "people.csv").write_text("id,phone,n\n0042,+4930123,1\n0043,030123,2\n")

    load([file_source(tmp_path / "people.csv")], SqlSink("people", conn_id=db.conn_id, batch_size=1))

    assert db.column_types("people") == {"id": "TEXT", "phone": "TEXT", "n": "BIGINT", "_source_file": "TEXT"}
    assert db.query("SELECT id, phone FROM people ORDER BY n") == [("0042", "+4930123"), ("0043", "030123")]


def test_json_ints_then_a_float_become_double_precision(db):
    rows = [{"x": 1}, {"x": 2}, {"x": 2.75}]

    load([ChunksSource("x.jsonl", jsonl(rows))], SqlSink("nums", conn_id=db.conn_id, batch_size=1))

    assert db.column_types("nums") == {"x": "DOUBLE PRECISION", "_source_file": "TEXT"}
    assert db.query("SELECT x FROM nums ORDER BY x") == [(1.0,), (2.0,), (2.75,)]


def test_json_number_then_string_becomes_text(db):
    rows = [{"x": 1}, {"x": 2.5}, {"x": "n/a"}, {"x": True}]

    load([ChunksSource("x.jsonl", jsonl(rows))], SqlSink("mixed", conn_id=db.conn_id, batch_size=1))

    assert db.column_types("mixed") == {"x": "TEXT", "_source_file": "TEXT"}
    assert sorted(db.query("SELECT x FROM mixed")) == [("1",), ("2.5",), ("n/a",), ("true",)]


def test_json_booleans_and_big_numbers_keep_their_values(db):
    rows = [{"b": True, "n": 2**60, "f": 0.5}, {"b": False, "n": 1.5, "f": 2**53 + 1}]

    load([ChunksSource("x.jsonl", jsonl(rows))], SqlSink("vals", conn_id=db.conn_id, batch_size=1))

    types = db.column_types("vals")
    assert types["b"] == "BOOLEAN" and types["n"] == types["f"] == "NUMERIC"
    got = db.query("SELECT b, n, f FROM vals ORDER BY f")
    assert [bool(r[0]) for r in got] == [True, False]
    assert [Decimal(str(r[1])) for r in got] == [Decimal(2**60), Decimal("1.5")]
    assert [Decimal(str(r[2])) for r in got] == [Decimal("0.5"), Decimal(2**53 + 1)]


def test_declared_column_types_win(db, tmp_path):
    (tmp_path / "a.csv").write_text("zip,score\n12345,1\n")

    load([file_source(tmp_path / "a.csv")],
         SqlSink("declared", conn_id=db.conn_id, column_types={"zip": "TEXT", "score": "DOUBLE PRECISION"}))

    assert db.column_types("declared") == {"zip": "TEXT", "score": "DOUBLE PRECISION", "_source_file": "TEXT"}
    assert db.query("SELECT zip, score FROM declared") == [("12345", 1.0)]


def test_parquet_files_whose_schemas_disagree_are_refused(db, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"id": pa.array([1], pa.int64())}), tmp_path / "a.parquet")
    pq.write_table(pa.table({"id": pa.array([1.5], pa.float64())}), tmp_path / "b.parquet")

    with pytest.raises(TransferRefused, match=r"'id' is BIGINT in file 'a.parquet' and DOUBLE PRECISION in file 'b.parquet'"):
        load([file_source(tmp_path / "a.parquet"), file_source(tmp_path / "b.parquet")],
             SqlSink("pq", conn_id=db.conn_id))

    assert "pq" not in {n for (n,) in db.query(
        "SELECT name FROM sqlite_master" if db.kind == "sqlite" else "SELECT tablename FROM pg_tables"
    )}


def test_an_existing_table_keeps_its_own_types(db, tmp_path):
    db.run("CREATE TABLE zips (zip TEXT, n DOUBLE PRECISION)")
    (tmp_path / "a.csv").write_text("zip,n\n02134,1\n")

    load([file_source(tmp_path / "a.csv")], SqlSink("zips", conn_id=db.conn_id))

    assert db.column_types("zips") == {"zip": "TEXT", "n": "DOUBLE PRECISION"}
    assert db.query("SELECT zip, n FROM zips") == [("02134", 1.0)]


# --- a declared type from outside ---------------------------------------------------------------------------

TYPES = ["BIGINT", "DOUBLE PRECISION", "TIMESTAMP WITH TIME ZONE", "VARCHAR(20)", "NUMERIC(12, 2)",
         "NVARCHAR(MAX)", "TIMESTAMP(3) WITH TIME ZONE", "INTEGER[]", "jsonb", "CHARACTER VARYING (255)"]
NOT_TYPES = ["BIGINT); DROP TABLE finance_ledger; --", "TEXT DEFAULT current_user", "BIGINT REFERENCES ledger",
             'TEXT COLLATE "C"', "NUMERIC(1) CHECK (x > 0)", "BIGINT NOT NULL", "TEXT /* */", "", "T" * 65, 7]


def test_a_type_that_came_from_outside_is_a_column_type_and_nothing_more():
    assert [check_type_name(t, "group.types") for t in TYPES] == TYPES
    for planted in NOT_TYPES:
        with pytest.raises(ExportConfigError, match=r"^group\.types: .* is not a column type"):
            check_type_name(planted, "group.types")
