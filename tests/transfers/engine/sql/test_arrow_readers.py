"""The columnar readers (pyarrow) and the column-wise text they write: the row readers' values, the
same bounds and errors."""

from __future__ import annotations

import io
import random
from typing import Any

import pytest

from airflow_provider_exports.exceptions import LimitExceeded, TransferError
from airflow_provider_exports.transfers.engine import formats
from airflow_provider_exports.transfers.engine.sql import arrow_readers, arrow_text
from airflow_provider_exports.transfers.engine.sql.arrow_readers import ArrowBatch


def _chunks(data: bytes, size: int = 7) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def test_columnar_jsonl_refuses_a_line_longer_than_the_bound(monkeypatch):
    monkeypatch.setenv("AIRFLOW__EXPORTS__MAX_JSON_LINE_BYTES", "1000")
    short = b'{"a": 1}\n' * 100  # blocks of ~400 bytes go by first
    body = short + b'{"a": "' + b"y" * 3000 + b'"}\n'

    with pytest.raises(LimitExceeded, match="line 101: ") as refused:
        list(arrow_readers.read_jsonl_columnar(_chunks(body, 64), block_bytes=400))
    assert refused.value.limit == "max_json_line_bytes"


def test_columnar_jsonl_errors_name_the_line_across_blocks():
    body = b'{"a": 1}\n' * 100 + b'{"a": \n'
    with pytest.raises(TransferError, match="line 101 is not valid JSON"):
        list(arrow_readers.read_jsonl_columnar(_chunks(body, 64), block_bytes=400))
    batches = list(arrow_readers.read_jsonl_columnar(_chunks(b'{"a": 1}\n' * 100, 64), block_bytes=400))
    assert sum(b.num_rows for b in batches if isinstance(b, ArrowBatch)) == 100


@pytest.mark.parametrize(
    ("bad", "line"),
    [
        (b'{"a": 7}{"a": 8}\n', 51),  # two objects in one line: pyarrow reads both
        (b'{"a": 7} \t{"a": 8}\n', 51),
        (b'{"a":\n7}\n', 51),  # one object over two lines: pyarrow reads it
        (b'\n{"a": 7}{"a": 8}\n', 52),  # ... with a blank line, as many rows as lines
        (b'{"a":\n7}\n{"a": 7}{"a": 8}\n', 51),
        (b'{"a": 7} null\n', 51),  # pyarrow reads a row of NULLs
        (b"null\n", 51),
        (b" \r\n\tnull\n", 52),
    ],
    ids=[
        *("two-objects", "two-objects-spaced", "two-lines", "blank-and-two-objects", "both"),
        *("null-after", "null", "blank-null"),
    ],
)
def test_columnar_jsonl_refuses_what_the_row_reader_refuses(bad, line):
    """Every block pyarrow reads is one object per line, as the row reader takes JSON lines: a
    line it would refuse fails the load, naming the line, in a block of either reader."""
    body = b'{"a": 1}\n' * 50 + bad + b'{"a": 2}\n' * 50
    for read in (arrow_readers.read_jsonl_columnar, formats.read_jsonl):
        with pytest.raises(TransferError, match=f"line {line} is (?:not valid JSON|not an object)"):
            list(read([body]))


@pytest.mark.parametrize("start", [b"null\n", b"\xef\xbb\xbf null\n", b"\n\nnull\n", b"null{}\n"])
def test_columnar_jsonl_never_gives_pyarrow_a_null_first(start):
    """pyarrow 26 crashes the process (SIGSEGV) on a ``null`` first in what it parses: the block
    goes by rows, which name the line (without the guard this test's process dies)."""
    with pytest.raises(TransferError, match=r"line [0-9]+ "):
        list(arrow_readers.read_jsonl_columnar([start + b'{"a": 1}\n' * 3]))


def test_columnar_jsonl_skips_blank_lines_as_the_row_reader_does():
    body = b'{"a": 1}\n\n{"a": 2}\r\n  \n' + b'{"a": 3}\n' * 100 + b"\n\n"
    columnar = list(arrow_readers.read_jsonl_columnar(_chunks(body, 64), block_bytes=400))
    values = [
        v
        for b in columnar
        for v in (b.table.column("a").to_pylist() if isinstance(b, ArrowBatch) else [r[0] for r in b.rows])
    ]
    assert values == [r[0] for b in formats.read_jsonl([body]) for r in b.rows] == [1, 2] + [3] * 100
    assert any(isinstance(b, ArrowBatch) for b in columnar)  # the blocks without blank lines


def test_columnar_jsonl_reads_integers_among_fractions_of_a_column_of_doubles():
    """Into a column of doubles, ``5`` and ``5.0`` load alike: such a block stays with pyarrow (past
    2**53 too: PostgreSQL rounds the integer's text to the same double); elsewhere each number is
    the text JSON wrote, and past 2**53 the block goes by rows."""
    data = b'{"f": 0.5, "g": 0.5}\n{"f": 5, "g": 5}\n{"f": 9007199254740993, "g": 1.5}\n'

    kept = list(arrow_readers.read_jsonl_columnar([data], doubles={"f", "g"}))
    assert [type(b) for b in kept] == [ArrowBatch]
    assert kept[0].table.column("f").to_pylist() == [0.5, 5.0, float(2**53)]
    # one column of doubles is not enough: the other's integer would lose its text
    as_written = list(arrow_readers.read_jsonl_columnar([data], doubles={"f"}))
    assert [type(b) for b in as_written] == [ArrowBatch] and as_written[0].json_numbers == {"g": 5}
    assert as_written[0].table.column("g").to_pylist() == ["0.5", "5", "1.5"]
    by_rows = list(arrow_readers.read_jsonl_columnar([data]))  # f's 2**53 + 1 would have lost a digit
    assert [type(b) for b in by_rows] == [formats.Batch]
    assert [r[0] for r in by_rows[0].rows] == [0.5, 5, 2**53 + 1]


def test_columnar_jsonl_cut_on_a_thread_of_its_own_raises_its_errors_and_stops(monkeypatch):
    import gzip
    import threading

    from airflow_provider_exports.transfers.engine.cancellation import Cancellation
    from airflow_provider_exports.transfers.engine.streams import maybe_gunzip

    def cutters() -> list[threading.Thread]:
        return [t for t in threading.enumerate() if t.name == "exports-sql-read-ahead"]

    body = b'{"a": 1}\n' * 1000
    truncated = gzip.compress(body)[:-20]
    with pytest.raises(TransferError, match="ended before its gzip end marker"):
        list(arrow_readers.read_jsonl_columnar(maybe_gunzip(_chunks(truncated, 64)), cancellation=Cancellation()))
    monkeypatch.setenv("AIRFLOW__EXPORTS__MAX_JSON_LINE_BYTES", "1000")
    with pytest.raises(LimitExceeded, match="line 1001: "):
        list(
            arrow_readers.read_jsonl_columnar(
                _chunks(body + b'{"a": "' + b"y" * 3000 + b'"}\n', 64), block_bytes=400, cancellation=Cancellation()
            )
        )
    assert not cutters()
    # leaving after the first block stops the thread cutting the next ones
    reader = arrow_readers.read_jsonl_columnar(_chunks(body, 64), block_bytes=400, cancellation=Cancellation())
    assert next(reader).num_rows > 0
    assert cutters()
    reader.close()
    assert not cutters()


def _nested_arrays():
    import datetime as dt

    import pyarrow as pa

    utc = dt.timezone.utc
    item = pa.struct(
        [("id", pa.string()), ("ns", pa.struct([("code", pa.string())])), ("primary", pa.bool_())]
    )
    return [
        pa.array(
            [
                {"id": 'a"b\\c', "ns": {"code": "é😀"}, "primary": True},
                None,
                {"id": None, "ns": None, "primary": None},
            ],
            item,
        ),
        pa.array(
            [[1.5, None, 2.0, 1e-7, 1e16, float("nan"), float("inf")], None, []], pa.list_(pa.float64())
        ),
        pa.array([[("k", 1), ("j", None)], None, [], [("k", 1), ("k", 2)]], pa.map_(pa.string(), pa.int64())),
        pa.array(
            [[("seg", [("ups", {"status": "realized"})])], []],
            pa.map_(pa.string(), pa.map_(pa.string(), pa.struct([("status", pa.string())]))),
        ),
        pa.array(
            [
                [dt.datetime(2024, 1, 1, tzinfo=utc), dt.datetime(1960, 5, 1, 3, 4, 5, 123000, tzinfo=utc)],
                None,
            ],
            pa.list_(pa.timestamp("ms", tz="UTC")),
        ),
        pa.array([[dt.datetime(1969, 12, 31, 23, 59, 59, 999999)]], pa.list_(pa.timestamp("us"))),
        pa.array([["a\nb", "tab\t", ""]], pa.list_(pa.string())),  # control characters: Python writes them
        pa.array([[True, None, False]], pa.list_(pa.bool_())),
        pa.array([[{"x": [1, 2]}, None]], pa.list_(pa.struct([("x", pa.list_(pa.int32()))]))),
        pa.array([[dt.date(2020, 1, 2)]], pa.list_(pa.date32())),
        pa.array([{}, None], pa.struct([])),
        pa.array([[b"\x00\xff"]], pa.list_(pa.binary())),
        pa.array([["x", "y"], ["x"]], pa.list_(pa.string())).cast(
            pa.list_(pa.dictionary(pa.int32(), pa.string()))
        ),
        pa.array([[1, 2], [3, 4]], pa.list_(pa.int8(), 2)),
    ]


@pytest.mark.parametrize("array", _nested_arrays(), ids=lambda a: str(a.type)[:40])
def test_nested_arrow_values_as_json_text_match_the_row_reader(array):
    expected = formats.nested_json_text(array)
    assert arrow_text.arrow_json_text(array).to_pylist() == expected
    if len(array) > 1:  # a slice (offsets not at zero) too
        tail = array.slice(1)
        assert arrow_text.arrow_json_text(tail).to_pylist() == formats.nested_json_text(tail)


def test_float_text_is_python_repr():
    import random

    import pyarrow as pa

    rng = random.Random(7)
    values = [0.1, 2.5, 1.0, -0.0, 1e-4, 1e-5, 123456789012345.6, 1e16, 1e22, 5e-324, 2.0**53, None]
    values += [rng.uniform(-1e6, 1e6) for _ in range(200)] + [
        round(rng.random() * 5000, 2) for _ in range(200)
    ]
    values += [rng.random() * 10.0 ** rng.randint(-30, 30) for _ in range(200)]
    text = arrow_text.float_text(pa.array(values, pa.float64())).to_pylist()
    assert text == [None if v is None else repr(v) for v in values]


def test_columnar_jsonl_blocks_and_what_goes_by_rows():
    data = b"".join(
        [
            b'{"a": 1, "d": "2024-01-01", "f": 0.5}\n' * 50,  # dates pyarrow would make timestamps
            b'{"a": 1, "f": 2}\n{"a": 2, "f": 2.5}\n',  # an integer among fractions: rows
            b'{"a": {"nested": true}}\n',  # nested: rows
            b'{"a": 3, "d": "x", "f": 1.25}\n' * 50,
        ]
    )
    batches = list(arrow_readers.read_jsonl_columnar([data], block_bytes=400, batch_size=10))
    kinds = {type(b).__name__ for b in batches}
    assert kinds == {"ArrowBatch", "Batch"}
    arrow = [b for b in batches if isinstance(b, ArrowBatch)]
    assert {str(b.table.schema.field("d").type) for b in arrow if "d" in b.columns} == {"string"}
    assert arrow[0].columns == ["a", "d", "f"]  # the order of the lines, not of pyarrow's explicit schema
    values = [v for b in batches if isinstance(b, formats.Batch) for r in b.rows for v in r]
    assert '{"nested":true}' in values and any(v == 2 and type(v) is int for v in values)
    assert sum(b.num_rows if isinstance(b, ArrowBatch) else len(b.rows) for b in batches) == 103


def test_columnar_parquet_gives_the_row_readers_values(tmp_path):
    import io

    import pyarrow as pa

    from airflow_provider_exports_sandbox.synthetic_parquet import ProfileFileSpec, write_profiles

    out = io.BytesIO()
    write_profiles(ProfileFileSpec(rows=500, segments=("a", "b"), row_group_rows=200), out)
    for flatten in (False, True):
        rows = [r for b in formats.read_parquet([out.getvalue()], flatten_structs=flatten) for r in b.rows]
        batches = list(
            arrow_readers.read_parquet_columnar([out.getvalue()], batch_size=128, flatten_structs=flatten)
        )
        table = pa.concat_tables(b.table for b in batches)
        assert batches[0].types == next(formats.read_parquet([out.getvalue()], flatten_structs=flatten)).types
        assert [tuple(r.values()) for r in table.to_pylist()] == rows


def _csv_rows(batches) -> tuple[list[str], list[tuple]]:
    columns: list[str] = []
    rows: list[tuple] = []
    for batch in batches:
        columns = list(batch.columns)
        if isinstance(batch, ArrowBatch):
            assert batch.from_text and all(str(t) == "string" for t in batch.table.schema.types)
            rows.extend(zip(*(c.to_pylist() for c in batch.table.columns), strict=True))
        else:
            rows.extend(batch.rows)
    return columns, rows


TRICKY_CSV = (
    b'\xef\xbb\xbfid|name|note\r\n1|"Ada | Lovelace"|""\r\n\r\n2||"two\nlines"\r\n3|"say ""hi"""|'
    + b"x" * 60
    + b"\r\n007|\xc3\xa9t\xc3\xa9|-0\r\n"
)


@pytest.mark.parametrize("block_bytes", [16, 50, 1 << 20])
def test_columnar_csv_reads_what_the_row_reader_reads(block_bytes):
    """Quotes, delimiters and line breaks inside fields, CRLF, BOM, blank lines, empty fields
    (quoted or not: NULL), UTF-8, leading zeros: the same rows, whatever the blocks."""
    chunks = [TRICKY_CSV[i : i + 7] for i in range(0, len(TRICKY_CSV), 7)]
    expected = _csv_rows(formats.read_csv(iter(chunks), delimiter="|"))
    got = _csv_rows(arrow_readers.read_csv_columnar(iter(chunks), delimiter="|", block_bytes=block_bytes))
    assert got == expected
    assert got[1][0] == ("1", "Ada | Lovelace", None) and got[1][-1] == ("007", "été", "-0")


def test_columnar_csv_without_header_and_renamed_columns():
    data = b"1,a\n2,b\n"
    assert _csv_rows(arrow_readers.read_csv_columnar([data], header=False, columns=["n", "s"])) == (
        ["n", "s"],
        [("1", "a"), ("2", "b")],
    )
    assert _csv_rows(arrow_readers.read_csv_columnar([b"x,y\n" + data], columns=["n", "s"]))[1] == [("1", "a"), ("2", "b")]


def test_columnar_csv_errors_name_the_line_across_blocks():
    data = b"a,b\n" + b"1,2\n" * 20 + b"3\n" + b"4,5\n"
    with pytest.raises(TransferError, match="CSV line 22 has 1 fields, the header has 2"):
        list(arrow_readers.read_csv_columnar([data], block_bytes=16))
    with pytest.raises(TransferError, match="not UTF-8"):
        list(arrow_readers.read_csv_columnar([b"a\n" + b"ok\n" * 10 + b"\xff\xfe\n"], block_bytes=8))


@pytest.mark.parametrize("block_bytes", [8, 1 << 20])
@pytest.mark.parametrize("settled", [None, ()], ids=["parsed", "raw"])
def test_columnar_csv_keeps_a_bom_that_starts_a_value_past_the_files_start(block_bytes, settled):
    """pyarrow (and a reader of one block) drop a BOM that starts what they read: only the file's
    first is the file's; one after the header, or at a later block's start, is the value's."""
    bom = "\ufeff".encode()
    data = bom + b"a,b\n" + bom + b"1,2\n" + b"3,4\n" + bom + b"5,6\n"
    want = [("\ufeff1", "2"), ("3", "4"), ("\ufeff5", "6")]
    assert _csv_rows(formats.read_csv([data]))[1] == want
    known = None if settled is None else (lambda: settled)  # raw: nothing settled, every column parsed too
    read = arrow_readers.read_csv_columnar([data], block_bytes=block_bytes, settled=known)
    assert _csv_rows(read)[1] == want


@pytest.mark.parametrize("blank", [b" ", b"\t", b" \r"])
def test_columnar_csv_a_line_of_spaces_is_a_ragged_row_as_in_the_row_reader(blank):
    """Only an empty line is blank; a line of spaces is a record of one field, even alone in a block."""
    data = b"a,b\n1,2\n" + blank + b"\n"
    for read in (arrow_readers.read_csv_columnar, formats.read_csv):
        with pytest.raises(TransferError, match="CSV line 3 has 1 fields, the header has 2"):
            list(read([data]))
    with pytest.raises(TransferError, match="CSV line 2 has 1 fields"):
        list(arrow_readers.read_csv_columnar([b"a,b\n" + blank + b"\n"]))
    assert _csv_rows(arrow_readers.read_csv_columnar([b"a,b\n1,2\n\r\n\n"], block_bytes=8))[1] == [("1", "2")]


def test_columnar_csv_refuses_a_record_that_never_ends(monkeypatch):
    monkeypatch.setenv("AIRFLOW__EXPORTS__MAX_JSON_LINE_BYTES", "1000")
    unclosed = b'a,b\n1,"never closed\n' + b"x,y\n" * 1000
    with pytest.raises(LimitExceeded, match="CSV line 2: ") as refused:
        list(arrow_readers.read_csv_columnar(_chunks(unclosed, 100), block_bytes=64))
    assert refused.value.limit == "max_json_line_bytes"


def test_columnar_parquet_batches_are_sized_by_bytes_not_row_groups(monkeypatch):
    """A row group of 40,000 rows is read in batches of about PARQUET_BATCH_BYTES (here ~1,024
    rows, the least): memory holds a batch, whatever the row groups or the file's size."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    monkeypatch.setattr(arrow_readers, "PARQUET_BATCH_BYTES", 1)
    out = io.BytesIO()
    pq.write_table(pa.table({"n": list(range(40_000)), "s": ["x" * 20] * 40_000}), out, row_group_size=40_000)
    sizes = [b.num_rows for b in arrow_readers.read_parquet_columnar([out.getvalue()])]
    assert sum(sizes) == 40_000 and max(sizes) == 1_024


# --- the columnar readers against the row readers, on random input ------------------------------------

_JSONL_PIECES = (
    *('{"a":1}', '{"a":"x"}', '{"b":2.5}', '{"a":1.0}', '{"a":true}', '{"a":null}', '{"a":[1]}', "{}"),
    *('{"a":{"b":null}}', '{"a":"2024-01-01"}', '{"a":', '"s"', '"\\u00e9"', '"\\ud800"', "null", "true"),
    *("[1]", "{", "}", "[", "]", ":", ",", "1", "-", "e5", "\n", "\r\n", " ", "\t", "\ufeff"),
)
_CSV_PIECES = ("a", "b", "1", "é", ",", '"', '""', " ", "\t", "\n", "\r\n", "\r", "\ufeff")


def _outcome(read: Any, data: bytes, **kwargs: Any) -> tuple[str, Any]:
    """The rows a reader gives ``data`` (each as its non-NULL values by column), or the kind of its error."""
    rows: list[tuple] = []
    try:
        for b in read([data], **kwargs):
            if not isinstance(b, ArrowBatch):
                values: Any = b.rows
            elif b.columns:
                as_written = [  # numbers as JSON wrote them: what Python's json reads of each
                    [None if t is None else int(t) if t.lstrip("-").isdigit() else float(t) for t in c.to_pylist()]
                    if name in b.json_numbers
                    else c.to_pylist()
                    for name, c in zip(b.columns, b.table.columns, strict=True)
                ]
                values = zip(*as_written, strict=True)
            else:
                values = [()] * b.num_rows
            for row in values:
                by_column = sorted(zip(b.columns, row, strict=True))
                rows.append(tuple((k, repr(v)) for k, v in by_column if v is not None))
    except (TransferError, LimitExceeded) as exc:
        return "refused", type(exc).__name__
    return "read", rows


@pytest.mark.parametrize("seed", range(4))
def test_columnar_jsonl_reads_random_lines_as_the_row_reader_does(seed):
    """Any mix of objects, fragments, nulls and blank lines, cut into blocks of any size: the same
    rows, or the same refusal, as the row reader (no input may crash the process either)."""
    rng = random.Random(seed)
    for _ in range(400):
        data = "".join(rng.choice(_JSONL_PIECES) for _ in range(rng.randint(1, 25))).encode()
        block_bytes = rng.choice([8, 16, 64, 1 << 20])
        columnar = _outcome(arrow_readers.read_jsonl_columnar, data, block_bytes=block_bytes)
        assert columnar == _outcome(formats.read_jsonl, data), (data, block_bytes)


@pytest.mark.parametrize("seed", range(4))
def test_columnar_csv_never_reads_random_text_otherwise_than_the_row_reader(seed):
    """The same rows, or a refusal: a quote inside an unquoted field (not RFC 4180; Python's csv
    takes it as a character) may make a columnar load refuse a file the row reader reads, but
    never read it otherwise, nor read what the row reader refuses."""
    rng = random.Random(seed)
    for _ in range(400):
        data = ("h1,h2\n" + "".join(rng.choice(_CSV_PIECES) for _ in range(rng.randint(0, 40)))).encode()
        block_bytes = rng.choice([8, 16, 64, 1 << 20])
        columnar = _outcome(arrow_readers.read_csv_columnar, data, block_bytes=block_bytes)
        rows = _outcome(formats.read_csv, data)
        assert columnar == rows or columnar[0] == "refused", (data, block_bytes)
