"""The columnar path into PostgreSQL (pyarrow columns as COPY CSV) gives what the row path gives.

Every load here runs twice into the session's PostgreSQL: through the columnar path (the default
with pyarrow) and through the row path (``PostgresDialect.columnar`` off), and the two tables must
have the same column types and the same values. Small pyarrow blocks make a file span many.
"""

from __future__ import annotations

import csv
import datetime as dt
import decimal
import gzip
import io
import json
import random

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from airflow_provider_exports.exceptions import TransferError
from airflow_provider_exports.transfers.engine import SqlSink
from airflow_provider_exports.transfers.engine.sql import arrow_batches, arrow_readers, pg_binary
from airflow_provider_exports.transfers.engine.sql.postgres import PostgresDialect
from airflow_provider_exports_sandbox.synthetic_parquet import ProfileFileSpec, write_profiles

from .conftest import ChunksSource, load, query

BLOCK = 256  # bytes per pyarrow block in these tests: a few lines each


@pytest.fixture(autouse=True)
def small_blocks(monkeypatch):
    monkeypatch.setattr(arrow_readers, "JSONL_BLOCK_BYTES", BLOCK)


def lines(*rows: object) -> bytes:
    return b"".join((r if isinstance(r, bytes) else json.dumps(r).encode()) + b"\n" for r in rows)


def table_of(pg, table: str) -> tuple[dict[str, str], list[tuple]]:
    types = dict(
        query(
            pg,
            f"SELECT column_name, data_type FROM information_schema.columns WHERE table_name = '{table}' ORDER BY ordinal_position",
        )
    )
    cols = ", ".join(f'"{c}"::text' for c in types)
    return types, sorted(query(pg, f"SELECT {cols} FROM {table}"), key=repr)


def both_ways(
    pg,
    monkeypatch,
    files: dict[str, bytes],
    *,
    existing: str | None = None,
    columnar_blocks: bool | None = True,
    table_suffix: str = "",
    **sink_kwargs,
):
    """Load ``files`` through the columnar path and through the row path; both tables' types and
    text values (the columnar one's returned). ``columnar_blocks``: some blocks did go columnar
    (as CSV or binary ``COPY``); ``None``: either."""
    out = []
    written = []
    real = arrow_batches.encode_csv
    monkeypatch.setattr(arrow_batches, "encode_csv", lambda texts, n: written.append(n) or real(texts, n))
    real_binary = pg_binary.encode  # a columnar block goes as binary COPY where every column allows
    monkeypatch.setattr(pg_binary, "encode", lambda *args: written.append(1) or real_binary(*args))
    for columnar in (True, False):
        monkeypatch.setattr(PostgresDialect, "columnar", columnar)
        table = f"t_{'col' if columnar else 'row'}{table_suffix}"
        if existing:
            pg.cursor().execute(f"CREATE TABLE {table} ({existing})")
        sources = [
            ChunksSource(name, [data[i : i + 100] for i in range(0, len(data), 100)])
            for name, data in files.items()
        ]
        load(sources, SqlSink(table, conn_id="pg", **sink_kwargs), job_ref=table)
        out.append(table_of(pg, table))
    if columnar_blocks is not None:
        assert bool(written) is columnar_blocks
    assert list(out[0][0].items()) == list(out[1][0].items())
    assert out[0][1] == out[1][1]
    return out[0]


def test_jsonl_types_and_values_match_the_row_path_across_blocks(pg, monkeypatch):
    rows = [
        {
            "zip": "02134",
            "n": i,
            "x": 1.5 + i,
            "ok": i % 2 == 0,
            "d": "2024-01-0" + str(1 + i % 9),
            "none": None,
        }
        for i in range(40)
    ]
    rows += [
        {"zip": "10115", "n": 2**62, "x": 2.25, "ok": None, "d": None, "s": 'q"uote\\ tab\t nl\n é 😀 ""'},
        {"zip": "", "n": -(2**63), "x": 1e-7, "ok": True, "d": "2024-02-30", "s": ""},
        {"x": 123456789012345.6, "late": 1},
    ]
    types, values = both_ways(pg, monkeypatch, {"a.jsonl": lines(*rows)})
    assert types == {
        "zip": "text",
        "n": "bigint",
        "x": "double precision",
        "ok": "boolean",
        "d": "text",
        "none": "text",
        "s": "text",
        "late": "bigint",
        "_source_file": "text",  # last, however the blocks brought the columns
    }
    flat = {v for row in values for v in row}
    assert {"02134", "", "2024-02-30", 'q"uote\\ tab\t nl\n é 😀 ""', str(-(2**63)), "1e-07"} <= flat


@pytest.mark.parametrize(
    ("column", "expected_type", "expected"),
    [
        # a type that changes in the last block: the integers' text is what JSON wrote
        ([*range(30), "x"], "text", {"0", "29", "x"}),
        # integers among fractions in one block, then text: '1' stays '1', '2.0' stays '2.0'
        ([0.5] * 20 + [1, 2.0, 2.5] + [0.5] * 20 + ["y"], "text", {"0.5", "1", "2.0", "2.5", "y"}),
        ([1e16, 1e-5, 0.1, 3.0, 100.0, "z"], "text", {"1e+16", "1e-05", "0.1", "3.0", "100.0", "z"}),
        # fractions pyarrow writes otherwise than Python (exponents, long ones) in blocks of their own
        (
            [1e-5, 0.1, 3.5, 100.25, 123456789012345.6, 2.5e-7] * 6 + ["z"],
            "text",
            {"1e-05", "0.1", "3.5", "100.25", "123456789012345.6", "2.5e-07", "z"},
        ),
        # beyond int64 (pyarrow would read a float): NUMERIC with every digit
        ([1] * 30 + [2**64 + 1], "numeric", {"1", str(2**64 + 1)}),
        # an integer past 2**53 among fractions: NUMERIC, not a rounded double
        ([0.5] * 30 + [2**53 + 1], "numeric", {"0.5", str(2**53 + 1)}),
        ([1] * 30 + [0.25], "double precision", {"1", "0.25"}),
        ([True] * 30 + [1], "text", {"true", "1"}),
        ([None] * 40, "text", {None}),
        # nested values: the row reader, JSON text
        (
            [{"b": 1, "a": [1, "x"]}] * 3 + [[1, {"z": None}]],
            "text",
            {'{"b":1,"a":[1,"x"]}', '[1,{"z":null}]'},
        ),
    ],
)
def test_jsonl_mixed_kinds_across_blocks_type_as_the_row_path(
    pg, monkeypatch, column, expected_type, expected
):
    data = lines(*({"id": i, "v": v} for i, v in enumerate(column)))
    # a few rows are one block, which a nested value or a mix sends to the row reader whole
    types, values = both_ways(pg, monkeypatch, {"a.jsonl": data}, columnar_blocks=len(column) > 10)
    assert types["v"] == expected_type
    assert {row[1] for row in values} >= expected


@pytest.mark.parametrize(
    "sink_kwargs",
    [
        {"existing": "id bigint, v double precision, t double precision, _source_file text"},
        {"column_types": {"v": "DOUBLE PRECISION", "t": "float8"}},  # a new table's, declared
    ],
)
def test_jsonl_integers_among_fractions_into_a_column_of_doubles_stay_columnar(pg, monkeypatch, sink_kwargs):
    """A column of doubles that no value retypes takes ``5`` as it takes ``5.0``: those blocks stay
    with pyarrow (the values are the row path's, past 2**53 too)."""
    by_rows: list[int] = []
    real = arrow_readers.read_jsonl
    monkeypatch.setattr(arrow_readers, "read_jsonl", lambda *a, **k: by_rows.append(1) or real(*a, **k))
    column = ([0.5] * 20 + [1, 2.0, 2**53 + 1, 2.5]) * 3
    data = lines(*({"id": i, "v": v, "t": v} for i, v in enumerate(column)))

    types, values = both_ways(pg, monkeypatch, {"a.jsonl": data}, **sink_kwargs)
    assert types["v"] == "double precision"
    assert {row[1] for row in values} >= {"0.5", "1", "2.5"}
    assert not by_rows


@pytest.mark.parametrize(
    ("tail", "expected_type", "expected"),
    [
        ([], "double precision", {"0.5", "2100", "2.25"}),
        (["later text"], "text", {"0.5", "2100", "2100.0", "-7", "later text"}),  # each as JSON wrote it
    ],
)
def test_jsonl_whole_numbers_written_as_integers_among_fractions_stay_columnar(
    pg, monkeypatch, tail, expected_type, expected
):
    """JavaScript writes a whole double as an integer (``2100``): in every block such a column
    stays with pyarrow, its numbers as the text JSON wrote (cast at commit), as the row path loads
    them; past 2**53 the block goes by rows (a double cannot hold the integer's digits)."""
    by_rows: list[int] = []
    real = arrow_readers.read_jsonl
    monkeypatch.setattr(arrow_readers, "read_jsonl", lambda *a, **k: by_rows.append(1) or real(*a, **k))
    column = ([0.5] * 8 + [2100, 2.25, 2100.0, -7]) * 6
    files = {"a.jsonl": lines(*({"id": i, "v": v} for i, v in enumerate(column)))}
    if tail:  # a file of text after: the column is text, each number as JSON wrote it
        files["b.jsonl"] = lines(*({"id": i, "v": v} for i, v in enumerate(tail)))

    types, values = both_ways(pg, monkeypatch, files)
    assert types["v"] == expected_type
    assert {row[1] for row in values} >= expected
    assert not by_rows
    huge = lines(*({"id": i, "v": v} for i, v in enumerate([0.5] * 8 + [2**53 + 1])))
    types, values = both_ways(pg, monkeypatch, {"b.jsonl": huge}, columnar_blocks=None, table_suffix="_huge")
    assert types["v"] == "numeric" and str(2**53 + 1) in {row[1] for row in values}
    assert by_rows


def test_jsonl_edge_files(pg, monkeypatch):
    long_text = "é" * 5000  # a line far longer than a block
    files = {
        "empty.jsonl": b"",
        "blank.jsonl": b"\n\n  \n",
        "long.jsonl": lines({"k": 1, "s": long_text}, {"k": 2, "s": "short"}),
        "crlf.jsonl": b'{"k": 3, "s": "cr"}\r\n{"k": 4}\r\n',
        "sparse.jsonl": lines(*({"k": 10 + i} for i in range(20)), {"k": 99, "d": "2024-01-01", "s": None}),
    }
    types, values = both_ways(pg, monkeypatch, files)
    assert types == {"k": "bigint", "s": "text", "d": "text", "_source_file": "text"}
    assert ("1", long_text, None, "long.jsonl") in values
    assert {f for *_, f in values} == {"long.jsonl", "crlf.jsonl", "sparse.jsonl"}


def test_jsonl_into_an_existing_table_sends_what_psycopg_sends(pg, monkeypatch):
    rows = [{"flag": i % 2 == 0, "amount": 0.1 * i, "n": i, "s": "x"} for i in range(30)]
    _types, values = both_ways(
        pg,
        monkeypatch,
        {"a.jsonl": lines(*rows)},
        existing="flag text, amount text, n numeric, s text, extra text default 'd'",
        mode="append",
    )
    assert {row[0] for row in values} == {"t", "f"}
    assert {row[1] for row in values} >= {repr(0.1 * 3), "0.0"}
    assert {row[4] for row in values} == {"d"}  # columns a file does not bring keep their default


def test_jsonl_merge_and_attribute_columns(pg, monkeypatch):
    first = lines(*({"id": i % 7, "v": i} for i in range(30)))
    _types, values = both_ways(
        pg,
        monkeypatch,
        {"added-1.jsonl": first, "removed-2.jsonl": lines({"id": 3, "v": -1})},
        mode="merge",
        key_columns=["id"],
        attribute_columns={"_file": "name"},
    )
    assert len(values) == 7
    assert ("3", "-1") in [row[:2] for row in values]


def test_a_bad_line_in_a_later_block_is_named_by_its_line_in_the_file(pg):
    data = lines(*({"k": i} for i in range(40))) + b'{"k": oops}\n'
    with pytest.raises(TransferError, match="line 41 is not valid JSON"):
        load([ChunksSource("a.jsonl", [data])], SqlSink("t", conn_id="pg"))


def parquet_bytes(table: pa.Table, **kwargs) -> bytes:
    out = io.BytesIO()
    pq.write_table(table, out, **kwargs)
    return out.getvalue()


@pytest.mark.parametrize("flatten", [True, False])
def test_aep_parquet_matches_the_row_path(pg, monkeypatch, flatten):
    out = io.BytesIO()
    write_profiles(ProfileFileSpec(rows=300, segments=("a", "b"), row_group_rows=128), out)
    types, values = both_ways(pg, monkeypatch, {"part-1.parquet": out.getvalue()}, flatten_structs=flatten)
    assert types["identityMap"] == "jsonb" and types["segmentMembership"] == "jsonb"
    assert ("person_name_firstName" in types) is flatten
    assert len(values) == 300


def test_parquet_types_python_writes_match_the_row_path(pg, monkeypatch):
    utc = dt.timezone.utc
    table = pa.table(
        {
            "ts": pa.array(
                [
                    dt.datetime(1969, 12, 31, 23, 59, 59, 500, tzinfo=utc),
                    None,
                    dt.datetime(2024, 1, 1, tzinfo=utc),
                ],
                pa.timestamp("us", tz="UTC"),
            ),
            "naive": pa.array(
                [dt.datetime(2024, 5, 6, 7, 8, 9, 123000), None, dt.datetime(2000, 1, 1)], pa.timestamp("ms")
            ),
            "day": pa.array([dt.date(2024, 2, 29), None, dt.date(1900, 1, 1)]),
            "money": pa.array(
                [decimal.Decimal("1.50"), None, decimal.Decimal("-0.01")], pa.decimal128(10, 2)
            ),
            "blob": pa.array([b"\x00\x01", None, b""]),
            "f": pa.array([1.0, float("nan"), 1e-300]),
            "flag": pa.array([True, None, False]),
            "tags": pa.array([["a\u0001b", 'q"\\'], None, []]),
            "m": pa.array([[("k", 1), ("k", 2)], None, [("x", None)]], pa.map_(pa.string(), pa.int64())),
            "nested_ts": pa.array(
                [[dt.datetime(2024, 1, 1, 0, 0, 0, 1, tzinfo=utc)], [], None],
                pa.list_(pa.timestamp("us", tz="UTC")),
            ),
        }
    )
    types, values = both_ways(pg, monkeypatch, {"x.parquet": parquet_bytes(table)})
    assert types["ts"] == "timestamp with time zone" and types["blob"] == "bytea" and types["tags"] == "jsonb"
    assert len(values) == 3


def test_the_columnar_reader_streams_block_by_block():
    produced = []

    def chunks():
        for i in range(100):
            produced.append(i)
            yield lines(*({"k": i * 10 + j} for j in range(10)))

    batches = arrow_readers.read_jsonl_columnar(chunks(), block_bytes=1000)
    first = next(batches)
    assert isinstance(first, arrow_readers.ArrowBatch)
    assert len(produced) < 20  # the first block came long before the file was read
    assert sum(b.num_rows for b in [first, *batches]) == 1000


def test_gzipped_jsonl_through_read_columnar_is_columnar():
    data = gzip.compress(lines({"a": 1}, {"a": 2}))
    (batch,) = arrow_readers.read_columnar([data], "jsonl")
    assert isinstance(batch, arrow_readers.ArrowBatch) and batch.table.column("a").to_pylist() == [1, 2]


def test_a_source_that_changes_after_blocks_were_copied_is_rolled_back(pg):
    old = lines(*({"id": i, "v": f"old-{i}", "gone": 1.5} for i in range(60)))
    new = lines(*({"id": i, "v": f"new-{i}"} for i in range(30)))
    changing = ChunksSource(
        "b.jsonl",
        [new[i : i + 50] for i in range(0, len(new), 50)],
        changed=[old[i : i + 50] for i in range(0, len(old), 50)],
    )

    summary = load([changing], SqlSink("t", conn_id="pg"))

    assert summary.rows == 30
    assert query(pg, "SELECT count(*), min(v) FROM t") == [(30, "new-0")]
    assert [
        r[0] for r in query(pg, "SELECT column_name FROM information_schema.columns WHERE table_name = 't'")
    ] in (["id", "v", "_source_file"], ["v", "id", "_source_file"])


# --- random files: both paths type and load them alike ---------------------------------------------

_JSON_KINDS = {
    "ints": [0, 1, -1, 5, 2100, 2**53, 2**53 + 1, 2**63 - 1, -(2**63), 2**64, 10**30],
    "floats": [0.5, -0.0, 0.0, 1e5, 1.5e300, 5.0, 2100.0, 1e-7, 123456789012345.6, 4679.27, 1e16, 2.0**60],
    "texts": ["007", "5", "5.5", "1e5", "-0", "", " ", "true", "2024-01-01", "2024-01-01T00:00:00Z", "x", "+5", "NaN"],
    "bools": [True, False],
}
_JSON_ODD = [*(v for vs in _JSON_KINDS.values() for v in vs), [1], {"a": 1}, [], {}]
_CSV_KINDS = [
    ["0", "1", "-1", "5", "007", "9007199254740993", "9223372036854775807", "99999999999999999999"],
    ["0.5", "-0.0", "1e5", "5.0", "2100", "1.50", "-0", ".5", "5.", "1E5"],
    ["true", "false", "t", "f", "TRUE"],
    ["a", "b c", "é", '"q"', "x,y", "l\nm"],
]


@pytest.mark.parametrize("seed", range(20))
@pytest.mark.parametrize(
    "sink_kwargs",
    [
        {},
        {"mode": "merge", "key_columns": ["id"]},
        {"existing": "id bigint, _source_file text", "on_schema_change": "append_new_columns"},
    ],
    ids=["new", "merge", "added"],
)
def test_random_jsonl_types_and_values_match_the_row_path(pg, monkeypatch, seed, sink_kwargs):
    """Columns of one kind (integers small and huge, floats, numeric-looking strings, booleans) or
    mixed (whole numbers written as integers among fractions too), with NULLs, absent keys and an
    odd value now and then, in blocks of any size; into a new table, merged, or added to a table."""
    rng = random.Random(seed)
    mixed = [*_JSON_KINDS["ints"][:5], 0.5, 2.25, 2100.0, -0.0]
    kinds = {key: rng.choice([*_JSON_KINDS.values(), _JSON_KINDS["ints"] + _JSON_KINDS["floats"], mixed]) for key in "abc"}
    rows = []
    for i in range(rng.randint(1, 40)):
        row: dict[str, object] = {"id": i}
        for key, values in kinds.items():
            r = rng.random()
            if r >= 0.1:
                row[key] = None if r < 0.15 else rng.choice(_JSON_ODD if r < 0.18 else values)
        rows.append(row)
    monkeypatch.setattr(arrow_readers, "JSONL_BLOCK_BYTES", rng.choice([64, 256, 4096]))
    both_ways(pg, monkeypatch, {"a.jsonl": lines(*rows)}, columnar_blocks=None, **sink_kwargs)


@pytest.mark.parametrize("seed", range(40))
def test_random_csv_types_and_values_match_the_row_path(pg, monkeypatch, seed):
    rng = random.Random(seed)
    kinds = {key: rng.choice(_CSV_KINDS) for key in "abc"}
    every = [v for values in _CSV_KINDS for v in values]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator=rng.choice(["\n", "\r\n"]))
    writer.writerow(list(kinds))
    for _ in range(rng.randint(1, 40)):
        writer.writerow(["" if (r := rng.random()) < 0.1 else rng.choice(every if r < 0.13 else v) for v in kinds.values()])
    monkeypatch.setattr(arrow_readers, "CSV_BLOCK_BYTES", rng.choice([64, 256, 4096]))
    both_ways(pg, monkeypatch, {"a.csv": out.getvalue().encode()}, columnar_blocks=None)
