"""A table the load creates on PostgreSQL is filled directly, and ends exactly as the stage makes it.

Every load here runs twice into the session's PostgreSQL: into a table the load creates and fills
directly (the default), and through the session stage that ``merge`` and the fan-out use, cast at
commit (``creates_directly`` off): both tables must have the same column types, column order and
values. Files and small blocks make the types widen after rows are in: integers then floats, floats
then text (PostgreSQL writes ``1`` for ``1.0``; the table must hold Python's ``1.0``), floats then a
huge integer, and a column that first appears in a later file.
"""

from __future__ import annotations

import json

import pytest

from airflow_provider_exports.transfers.engine import SqlSink
from airflow_provider_exports.transfers.engine.sql import arrow_readers

from .conftest import ChunksSource, load, query

#: doubles whose PostgreSQL text is not Python's repr
AWKWARD_FLOATS = [1.0, 100.0, -0.0, 1e15, 1234567890123456.8, 7.046056278520026e16, 0.1, 1e-05, 2.5]


class StagedSink(SqlSink):
    creates_directly = False


@pytest.fixture(autouse=True)
def small_blocks(monkeypatch):
    monkeypatch.setattr(arrow_readers, "JSONL_BLOCK_BYTES", 200)
    monkeypatch.setattr(arrow_readers, "CSV_BLOCK_BYTES", 40)


def lines(*rows: object) -> bytes:
    return b"".join(json.dumps(r).encode() + b"\n" for r in rows)


def table_of(pg, table: str) -> tuple[list[tuple[str, str]], list[tuple]]:
    types = query(
        pg,
        "SELECT column_name, data_type FROM information_schema.columns "
        f"WHERE table_name = '{table}' ORDER BY ordinal_position",
    )
    cols = ", ".join(f'"{c}"::text' for c, _ in types)
    return types, sorted(query(pg, f"SELECT {cols} FROM {table}"), key=repr)


def both_ways(pg, files: dict[str, bytes], **sink_kwargs) -> tuple[list[tuple[str, str]], list[tuple]]:
    out = []
    for sink_class in (SqlSink, StagedSink):
        table = f"t_{sink_class.__name__.lower()}"
        sources = [ChunksSource(n, [d[i : i + 50] for i in range(0, len(d), 50)]) for n, d in files.items()]
        load(sources, sink_class(table, conn_id="pg", batch_size=2, **sink_kwargs), job_ref=table)
        out.append(table_of(pg, table))
    assert out[0] == out[1]
    return out[0]


def test_json_types_widen_after_rows_are_in_exactly_as_the_stage_casts(pg):
    first = lines(
        *(
            {"i": n, "f": f, "b": True, "late_text": f, "mixed": 5, "then_text": 5}
            for n, f in enumerate(AWKWARD_FLOATS)
        )
    )
    second = lines(
        {"i": 2**60, "f": "n/a", "b": "maybe", "late_text": "text", "mixed": 2.5, "then_text": 2.5, "huge": 2**70},
        {"i": 2**70, "f": 1.5, "b": False, "late_text": None, "mixed": None, "then_text": "x", "huge": 1.25},
    )
    types, rows = both_ways(pg, {"a.jsonl": first, "b.jsonl": second})
    assert types == [
        ("i", "numeric"),
        ("f", "text"),
        ("b", "text"),
        ("late_text", "text"),
        ("mixed", "double precision"),
        ("then_text", "text"),
        ("huge", "numeric"),
        ("_source_file", "text"),
    ]
    texts = {row[1] for row in rows}
    assert {repr(f) for f in AWKWARD_FLOATS} <= texts  # Python's text of each double, not PostgreSQL's
    assert {"5", "2.5"} <= {row[4] for row in rows}
    assert {"5", "2.5", "x"} == {row[5] for row in rows}  # an integer among floats keeps its own text


def test_floats_then_a_huge_integer_become_numeric_with_their_python_text(pg):
    files = {"a.jsonl": lines(*({"x": f} for f in AWKWARD_FLOATS)), "b.jsonl": lines({"x": 2**64})}
    types, rows = both_ways(pg, files)
    assert types[0] == ("x", "numeric")
    texts = [repr(f) for f in AWKWARD_FLOATS] + [str(2**64)]
    listed = ", ".join(f"('{t}')" for t in texts)
    as_numeric = query(pg, f"SELECT CAST(t AS NUMERIC)::text FROM (VALUES {listed}) v(t)")
    assert sorted(r[0] for r in rows) == sorted(r[0] for r in as_numeric)  # each from Python's text


def test_csv_numbers_widen_and_keep_their_text(pg):
    files = {
        "a.csv": b"n,d,z\n1,7,0\n22,8,-0\n333,9,5\n",
        "b.csv": b"n,d,z\n1.50,x,1\n-4,10,2\n",
    }
    types, rows = both_ways(pg, files)
    # -0 is no canonical number (it would lose its sign): the column stays text
    assert types == [("n", "numeric"), ("d", "text"), ("z", "text"), ("_source_file", "text")]
    assert {(r[0], r[1], r[2]) for r in rows} == {
        ("1", "7", "0"),
        ("22", "8", "-0"),
        ("333", "9", "5"),
        ("1.50", "x", "1"),
        ("-4", "10", "2"),
    }


def test_a_column_first_seen_in_a_later_file_comes_before_the_file_name(pg):
    files = {"a.jsonl": lines({"a": 1}, {"a": 2}, {"a": 3}), "b.jsonl": lines({"a": 4, "z": "new"})}
    types, rows = both_ways(pg, files)
    assert [c for c, _ in types] == ["a", "z", "_source_file"]
    assert rows == [
        ("1", None, "a.jsonl"),
        ("2", None, "a.jsonl"),
        ("3", None, "a.jsonl"),
        ("4", "new", "b.jsonl"),
    ]


def test_no_stage_and_no_cast_when_the_types_hold(pg, monkeypatch):
    """The direct path writes each row once: no stage is made, no ``INSERT ... SELECT`` runs."""
    from airflow_provider_exports.transfers.engine.sql.generic import Dialect

    statements: list[str] = []
    real = Dialect.execute
    monkeypatch.setattr(
        Dialect, "execute", lambda self, sql, params=None: statements.append(sql) or real(self, sql, params)
    )
    load([ChunksSource("a.csv", [b"id,name\n1,a\n2,b\n"])], SqlSink("direct", conn_id="pg"), job_ref="direct")
    assert query(pg, "SELECT id, name FROM direct ORDER BY id") == [(1, "a"), (2, "b")]
    assert not [s for s in statements if "_exports_stage" in s or 'INSERT INTO "direct"' in s]



def test_csv_blocks_go_as_they_came_where_copy_reads_them_alike(pg, monkeypatch):
    """Blocks without quotes, \\r, blank lines or a \\. record go to COPY as their bytes (only the
    columns not yet text are parsed); the others are parsed whole. Both ways, the same table."""
    ready = []
    real = arrow_readers._copy_ready
    monkeypatch.setattr(arrow_readers, "_copy_ready", lambda block: ready.append(r := real(block)) or r)
    data = (
        b"id,name,amount\n"
        + b"".join(b"%d,n%d,%d.5\n" % (i, i, i) for i in range(40))
        + b'41,"quoted, with comma",1\n42,,\n\n43,"",7\n44,plain,x\n'
        + b"".join(b"%d,m%d,2\n" % (i, i) for i in range(45, 80))
    )
    one_column = b"note\n" + b"x\n" * 20 + b"\\.\n" + b"y\n" * 20
    crlf = b"id,note\r\n" + b"".join(b"%d,c%d\r\n" % (i, i) for i in range(100, 140))  # RFC 4180's breaks
    types, rows = both_ways(pg, {"a.csv": data, "b.csv": one_column, "c.csv": crlf})
    assert types == [
        ("id", "bigint"),
        ("name", "text"),
        ("amount", "text"),
        ("note", "text"),
        ("_source_file", "text"),
    ]
    assert [r for r in rows if r[0] in ("41", "42", "43", "44")] == [
        ("41", "quoted, with comma", "1", None, "a.csv"),
        ("42", None, None, None, "a.csv"),
        ("43", None, "7", None, "a.csv"),
        ("44", "plain", "x", None, "a.csv"),
    ]
    assert (None, None, None, "\\.", "b.csv") in rows  # a record \. is data, not the end of the COPY
    assert ("120", None, None, "c120", "c.csv") in rows
    assert len(rows) == 79 + 41 + 40
    assert any(r is not None for r in ready) and any(r is None for r in ready)


def test_a_ragged_row_in_a_block_that_could_go_as_it_came_names_its_line(pg):
    from airflow_provider_exports.exceptions import TransferError

    data = b"a,b\n" + b"1,2\n" * 30 + b"3\n" + b"4,5\n" * 30
    with pytest.raises(TransferError, match="CSV line 32 has 1 fields, the header has 2"):
        load([ChunksSource("r.csv", [data])], SqlSink("ragged", conn_id="pg"), job_ref="ragged")
    assert query(pg, "SELECT to_regclass('ragged')") == [(None,)]  # nothing half-written


def test_random_doubles_widened_to_text_read_as_python_writes_them(pg):
    """5,000 doubles of every magnitude, then a text: each row holds ``repr`` of its double (the
    widening reads back only the texts PostgreSQL writes otherwise than ``d.ddd``)."""
    import random
    import struct

    r = random.Random(19)
    doubles = [struct.unpack("d", struct.pack("Q", r.getrandbits(64)))[0] for _ in range(2_000)]
    doubles += [r.random() * 10 ** r.randint(-8, 20) for _ in range(2_000)]
    doubles += [float(r.randint(-(10**17), 10**17)) for _ in range(1_000)]
    doubles = [d for d in doubles if d == d and abs(d) != float("inf")]
    files = {"a.jsonl": lines(*({"i": i, "x": d} for i, d in enumerate(doubles))), "b.jsonl": lines({"i": -1, "x": "n/a"})}
    load([ChunksSource(n, [d]) for n, d in files.items()], SqlSink("wide", conn_id="pg"), job_ref="wide")
    got = dict(query(pg, "SELECT i, x FROM wide WHERE i >= 0"))
    assert got == {i: repr(d) for i, d in enumerate(doubles)}
