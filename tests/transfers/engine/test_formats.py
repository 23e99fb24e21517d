"""Streaming readers: gzip, JSON lines, CSV, Parquet; the bounds on what they inflate and join."""

from __future__ import annotations

import gzip
import io
import json
import zlib
from collections.abc import Iterator
from datetime import datetime, timezone

import pytest

from airflow_provider_exports.exceptions import (
    ExportConfigError,
    LimitExceeded,
    TransferError,
    TransferRefused,
)
from airflow_provider_exports.transfers.engine import formats
from airflow_provider_exports.transfers.engine.formats import (
    ArrowBatch,
    arrow_sql_type,
    detect_format,
    gunzip,
    maybe_gunzip,
    read_batches,
    read_csv,
    read_jsonl,
    read_parquet,
)
from airflow_provider_exports.utils import limits


def _chunks(data: bytes, size: int = 7) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


@pytest.mark.parametrize(
    ("name", "expected"),
    [("a.json.gz", "jsonl"), ("a.JSONL", "jsonl"), ("b.csv.gz", "csv"), ("p.snappy.parquet", "parquet")],
)
def test_detect_format(name, expected):
    assert detect_format(name) == expected


def test_detect_format_refuses_what_it_cannot_tell():
    with pytest.raises(ExportConfigError, match="file_format"):
        detect_format("export.bin")
    assert detect_format("export.bin", "csv") == "csv"


def test_gunzip_handles_several_members_and_small_chunks():
    data = gzip.compress(b"hello ") + gzip.compress(b"world\n")
    assert b"".join(gunzip(_chunks(data, 3))) == b"hello world\n"


def test_gunzip_bounds_each_output_piece():
    bomb = gzip.compress(b"\0" * (8 << 20))
    assert max(len(piece) for piece in gunzip([bomb], out_size=1 << 20)) <= 1 << 20


def test_gunzip_notices_a_truncated_file():
    data = gzip.compress(b"x" * 10_000)
    with pytest.raises(TransferError, match="truncated"):
        b"".join(gunzip([data[:-12]]))
    with pytest.raises(TransferError, match="not valid gzip"):
        b"".join(gunzip([b"\x1f\x8b\x08garbage-garbage"]))


MIB = 1 << 20


def _gzip_of_zeros(inflated: int) -> Iterator[bytes]:
    """A gzip stream of ``inflated`` zero bytes (1 GiB is about 1 MiB of it), compressed as it is
    read: the test never holds the inflated bytes, nor all of the compressed ones."""
    packer = zlib.compressobj(6, zlib.DEFLATED, 31)
    zeros = bytes(MIB)
    for _ in range(inflated // MIB):
        if out := packer.compress(zeros):
            yield out
    yield packer.flush()


def test_a_gzip_bomb_stops_past_the_floor_at_the_ratio():
    inflated = 0
    with pytest.raises(LimitExceeded) as refused:
        for piece in gunzip(_gzip_of_zeros(1 << 30)):
            inflated += len(piece)

    assert refused.value.limit == "max_decompression_ratio" and refused.value.value == 250
    assert "AIRFLOW__EXPORTS__MAX_DECOMPRESSION_RATIO" in str(refused.value)
    # it stopped within a piece of the floor, not at 1 GiB
    assert inflated <= limits.DECOMPRESSION_FLOOR + MIB


def test_a_gzip_bomb_stops_behind_maybe_gunzip_too_and_is_named():
    with pytest.raises(LimitExceeded, match=r"^part-00000\.json\.gz: .* compressed bytes inflated to"):
        for _ in maybe_gunzip(_gzip_of_zeros(1 << 30), name="part-00000.json.gz"):
            pass


def test_a_raised_decompression_ratio_lets_a_very_compressible_file_through(monkeypatch):
    monkeypatch.setenv("AIRFLOW__EXPORTS__MAX_DECOMPRESSION_RATIO", "5000")  # zeros inflate ~1030 times
    assert sum(map(len, gunzip(_gzip_of_zeros(limits.DECOMPRESSION_FLOOR + 8 * MIB)))) == (
        limits.DECOMPRESSION_FLOOR + 8 * MIB
    )


def test_maybe_gunzip_passes_plain_bytes_through():
    assert b"".join(maybe_gunzip([b"a", b"bc"])) == b"abc"
    assert b"".join(maybe_gunzip(_chunks(gzip.compress(b"abc"), 1))) == b"abc"
    assert list(maybe_gunzip([])) == []


def test_jsonl_batches_union_of_keys_and_nested_values_as_json_text():
    lines = b'{"a": 1, "b": {"x": [1, 2]}}\n{"a": 2, "c": "z"}\n\n{"a": 3}\n'
    batches = list(read_jsonl(_chunks(lines), batch_size=2))

    assert [b.columns for b in batches] == [["a", "b", "c"], ["a"]]
    assert batches[0].rows == [(1, '{"x":[1,2]}', None), (2, None, "z")]
    assert batches[1].rows == [(3,)]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"a": 1}\n{"a": \n', "line 2 is not valid JSON"),
        (b'[{"a": 1}]\n', "JSON array"),
        (b"3\n", "not an object"),
    ],
)
def test_jsonl_errors_name_the_line(body, message):
    with pytest.raises(TransferError, match=message):
        list(read_jsonl([body]))


def test_a_jsonl_line_longer_than_the_bound_is_refused_by_number(monkeypatch):
    monkeypatch.setenv("AIRFLOW__EXPORTS__MAX_JSON_LINE_BYTES", "1000")
    long_line = b'{"a": "' + b"x" * 5000 + b'"}\n'  # valid JSON: only its length is wrong
    body = b'{"a": 1}\n{"a": 2}\n' + long_line + b'{"a": 4}\n'

    with pytest.raises(LimitExceeded, match=r"^line 3: [0-9,]+ bytes or more in one line, past the bound of 1,000") as refused:
        list(read_jsonl(_chunks(body, 7), batch_size=1))
    assert refused.value.limit == "max_json_line_bytes"
    # the same within one chunk, and as the last line without its newline
    with pytest.raises(LimitExceeded, match="line 3: "):
        list(read_jsonl([body]))
    with pytest.raises(LimitExceeded, match="line 2: "):
        list(read_jsonl(_chunks(b'{"a": 1}\n' + long_line[:-1], 100)))


def test_a_jsonl_line_at_the_bound_is_read(monkeypatch):
    monkeypatch.setenv("AIRFLOW__EXPORTS__MAX_JSON_LINE_BYTES", "1000")
    line = b'{"a": "' + b"x" * 991 + b'"}'
    assert len(line) == 1000
    for body in (line + b"\n" + line + b"\n", line):
        for size in (7, 999, 1000, 1001, 5000):
            rows = [r for b in read_jsonl(_chunks(body, size)) for r in b.rows]
            assert rows == [("x" * 991,)] * body.count(line)


def test_a_line_without_end_is_refused_before_it_is_joined(monkeypatch):
    monkeypatch.setenv("AIRFLOW__EXPORTS__MAX_JSON_LINE_BYTES", str(4 * MIB))
    fed = 0

    def no_line_end() -> Iterator[bytes]:  # 16 MiB without a newline
        nonlocal fed
        piece = b"x" * (64 * 1024)
        for _ in range(256):
            fed += len(piece)
            yield piece

    with pytest.raises(LimitExceeded, match="line 1: "):
        list(read_jsonl(no_line_end()))
    assert fed <= 4 * MIB + 64 * 1024  # nothing read past the bound


def test_columnar_jsonl_refuses_a_line_longer_than_the_bound(monkeypatch):
    monkeypatch.setenv("AIRFLOW__EXPORTS__MAX_JSON_LINE_BYTES", "1000")
    short = b'{"a": 1}\n' * 100  # blocks of ~400 bytes go by first
    body = short + b'{"a": "' + b"y" * 3000 + b'"}\n'

    with pytest.raises(LimitExceeded, match="line 101: ") as refused:
        list(formats.read_jsonl_columnar(_chunks(body, 64), block_bytes=400))
    assert refused.value.limit == "max_json_line_bytes"


def test_columnar_jsonl_errors_name_the_line_across_blocks():
    body = b'{"a": 1}\n' * 100 + b'{"a": \n'
    with pytest.raises(TransferError, match="line 101 is not valid JSON"):
        list(formats.read_jsonl_columnar(_chunks(body, 64), block_bytes=400))
    batches = list(formats.read_jsonl_columnar(_chunks(b'{"a": 1}\n' * 100, 64), block_bytes=400))
    assert sum(b.num_rows for b in batches if isinstance(b, ArrowBatch)) == 100


def test_csv_a_field_past_the_csv_modules_limit_is_a_transfer_error_naming_the_line():
    body = b"id,note\n1,a\n2," + b"x" * 200_000 + b"\n"
    with pytest.raises(TransferError, match=r"CSV line 3: field larger than field limit \(131072\) \(a field of more"):
        list(read_csv(_chunks(body, 4096)))


def test_csv_an_unclosed_quote_is_a_transfer_error_naming_the_line():
    body = b"id,note\n1,a\n2,\"never closed\n" + b"3,b\n" * 40_000
    with pytest.raises(TransferError, match=r"CSV line \d+: field larger than field limit .*never closed"):
        list(read_csv(_chunks(body, 4096)))


def test_csv_that_is_not_utf8_is_a_transfer_error():
    with pytest.raises(TransferError, match="not UTF-8"):
        list(read_csv([b"id,note\n1,caf\xe9\n"]))


def test_csv_quoting_bom_empty_fields_and_pipes():
    body = '\ufeffid|name|note\n1|"a|b"|\n2|"multi\nline"|x\n'.encode()
    (batch,) = read_csv(_chunks(body, 5), delimiter="|")
    assert batch.columns == ["id", "name", "note"]
    assert batch.rows == [("1", "a|b", None), ("2", "multi\nline", "x")]


def test_csv_without_header_needs_names():
    with pytest.raises(ExportConfigError, match="csv_columns"):
        list(read_csv([b"1,2\n"], header=False))
    (batch,) = read_csv([b"1,2\n"], header=False, columns=["x", "y"])
    assert batch.columns == ["x", "y"] and batch.rows == [("1", "2")]


def test_csv_ragged_rows_fail():
    with pytest.raises(TransferError, match="has 1 fields, the header has 2"):
        list(read_csv([b"a,b\n1,2\n3\n"]))


def test_parquet_types_and_row_groups(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table(
        {
            "i": pa.array(range(10), pa.int32()),
            "f": pa.array([0.5] * 10),
            "s": pa.array(["x"] * 10).dictionary_encode(),
            "m": pa.array([{"k": i} for i in range(10)]),
        }
    )
    buf = io.BytesIO()
    pq.write_table(table, buf, row_group_size=4)
    batches = list(read_parquet(_chunks(buf.getvalue(), 1000), batch_size=3))

    assert sum(len(b.rows) for b in batches) == 10
    assert batches[0].types == {"i": "BIGINT", "f": "DOUBLE PRECISION", "s": "TEXT", "m": "JSON"}
    assert batches[0].rows[1] == (1, 0.5, "x", '{"k":1}')
    assert arrow_sql_type(pa.timestamp("us", "UTC")) == "TIMESTAMP WITH TIME ZONE"
    assert arrow_sql_type(pa.binary()) == "BINARY"


def test_parquet_garbage_is_a_clear_error():
    with pytest.raises(TransferError, match="Parquet"):
        list(read_parquet([b"not parquet at all"]))


def test_read_batches_undoes_gzip_by_magic_bytes():
    body = zlib.compress(b"")  # not gzip: passes through as-is
    assert list(read_batches([body[:0]], "jsonl")) == []
    (batch,) = read_batches([gzip.compress(b"a,b\n1,2\n")], "csv")
    assert batch.rows == [("1", "2")]


def _parquet_bytes(table) -> bytes:
    import pyarrow.parquet as pq

    buf = io.BytesIO()
    pq.write_table(table, buf)
    return buf.getvalue()


def _nested_table():
    import pyarrow as pa

    person = pa.struct(
        [("name", pa.struct([("firstName", pa.string()), ("lastName", pa.string())])), ("age", pa.int32())]
    )
    seen = pa.struct([("status", pa.string()), ("at", pa.timestamp("ms", tz="UTC"))])
    return pa.table(
        {
            "id": pa.array([1, 2], pa.int64()),
            "person": pa.array([{"name": {"firstName": "Ada", "lastName": "L"}, "age": 36}, None], person),
            "identityMap": pa.array([[("ECID", ["e1"])], []], pa.map_(pa.string(), pa.list_(pa.string()))),
            "segmentMembership": pa.array(
                [
                    [
                        (
                            "ups",
                            [("s1", {"status": "realized", "at": datetime(2026, 1, 2, tzinfo=timezone.utc)})],
                        )
                    ],
                    None,
                ],
                pa.map_(pa.string(), pa.map_(pa.string(), seen)),
            ),
        }
    )


def test_parquet_nested_values_are_json_objects_with_iso_times():
    (batch,) = read_parquet([_parquet_bytes(_nested_table())])
    assert batch.types == {
        "id": "BIGINT",
        "person": "JSON",
        "identityMap": "JSON",
        "segmentMembership": "JSON",
    }
    first = dict(zip(batch.columns, batch.rows[0], strict=True))
    assert json.loads(first["person"]) == {"name": {"firstName": "Ada", "lastName": "L"}, "age": 36}
    assert json.loads(first["identityMap"]) == {"ECID": ["e1"]}  # a map is an object, not pairs
    assert json.loads(first["segmentMembership"]) == {
        "ups": {"s1": {"status": "realized", "at": "2026-01-02T00:00:00+00:00"}}
    }
    assert batch.rows[1][1] is None and batch.rows[1][3] is None


def test_parquet_structs_flatten_to_named_columns_lists_and_maps_stay_json():
    (batch,) = read_parquet([_parquet_bytes(_nested_table())], flatten_structs=True)
    assert batch.columns == [
        "id",
        "person_name_firstName",
        "person_name_lastName",
        "person_age",
        "identityMap",
        "segmentMembership",
    ]
    assert batch.types == {
        "id": "BIGINT",
        "person_name_firstName": "TEXT",
        "person_name_lastName": "TEXT",
        "person_age": "BIGINT",
        "identityMap": "JSON",
        "segmentMembership": "JSON",
    }
    assert batch.rows[0][:4] == (1, "Ada", "L", 36)
    assert batch.rows[1][:4] == (2, None, None, None)  # a NULL struct gives NULL fields


def test_flattening_refuses_names_that_would_clash():
    import pyarrow as pa

    table = pa.table({"a_b": [1], "a": pa.array([{"b": 2}], pa.struct([("b", pa.int64())]))})
    with pytest.raises(TransferRefused, match="a_b"):
        list(read_parquet([_parquet_bytes(table)], flatten_structs=True))


def test_a_map_that_repeats_a_key_stays_pairs():
    import pyarrow as pa

    table = pa.table({"m": pa.array([[("k", 1), ("k", 2)], [("a", 1)]], pa.map_(pa.string(), pa.int64()))})
    (batch,) = read_parquet([_parquet_bytes(table)])
    assert [json.loads(r[0]) for r in batch.rows] == [[["k", 1], ["k", 2]], {"a": 1}]


def test_unpivot_turns_wide_rows_long_batch_by_batch():
    from airflow_provider_exports.transfers.engine.formats import Batch, Unpivot

    def read_day(header: str) -> str:
        if header == "bad":
            raise TransferError("not a day")
        return header.upper()

    unpivot = Unpivot("id", "name", "value", read_name=read_day, max_rows=3)
    batches = [
        Batch(["key", "a", "b"], [("x", 1, 2), ("y", 3, None)]),
        Batch(["key", "a", "b"], [("z", 5, 6)]),
    ]
    out = list(unpivot(batches))
    assert [b.columns for b in out] == [["id", "name", "value"]] * 2
    assert [len(b.rows) for b in out] == [4, 2]  # a batch ends once it holds max_rows or more
    assert [r for b in out for r in b.rows] == [
        ("x", "A", 1),
        ("x", "B", 2),
        ("y", "A", 3),
        ("y", "B", None),
        ("z", "A", 5),
        ("z", "B", 6),
    ]
    with pytest.raises(TransferError, match="not a day"):
        list(unpivot([Batch(["key", "bad"], [("x", 1)])]))
    with pytest.raises(TransferError, match="at least one more"):
        list(unpivot([Batch(["key"], [("x",)])]))


# --- the columnar readers --------------------------------------------------------------------------


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
    expected = formats._json_column(array)
    assert formats.arrow_json_text(array).to_pylist() == expected
    if len(array) > 1:  # a slice (offsets not at zero) too
        tail = array.slice(1)
        assert formats.arrow_json_text(tail).to_pylist() == formats._json_column(tail)


def test_float_text_is_python_repr():
    import random

    import pyarrow as pa

    rng = random.Random(7)
    values = [0.1, 2.5, 1.0, -0.0, 1e-4, 1e-5, 123456789012345.6, 1e16, 1e22, 5e-324, 2.0**53, None]
    values += [rng.uniform(-1e6, 1e6) for _ in range(200)] + [
        round(rng.random() * 5000, 2) for _ in range(200)
    ]
    values += [rng.random() * 10.0 ** rng.randint(-30, 30) for _ in range(200)]
    text = formats.float_text(pa.array(values, pa.float64())).to_pylist()
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
    batches = list(formats.read_jsonl_columnar([data], block_bytes=400, batch_size=10))
    kinds = {type(b).__name__ for b in batches}
    assert kinds == {"ArrowBatch", "Batch"}
    arrow = [b for b in batches if isinstance(b, formats.ArrowBatch)]
    assert {str(b.table.schema.field("d").type) for b in arrow if "d" in b.columns} == {"string"}
    assert arrow[0].columns == ["a", "d", "f"]  # the order of the lines, not of pyarrow's explicit schema
    values = [v for b in batches if isinstance(b, formats.Batch) for r in b.rows for v in r]
    assert '{"nested":true}' in values and any(v == 2 and type(v) is int for v in values)
    assert sum(b.num_rows if isinstance(b, formats.ArrowBatch) else len(b.rows) for b in batches) == 103


def test_columnar_parquet_gives_the_row_readers_values(tmp_path):
    import io

    import pyarrow as pa

    from airflow_provider_exports_sandbox.synthetic_parquet import ProfileFileSpec, write_profiles

    out = io.BytesIO()
    write_profiles(ProfileFileSpec(rows=500, segments=("a", "b"), row_group_rows=200), out)
    for flatten in (False, True):
        rows = [r for b in formats.read_parquet([out.getvalue()], flatten_structs=flatten) for r in b.rows]
        batches = list(
            formats.read_parquet_columnar([out.getvalue()], batch_size=128, flatten_structs=flatten)
        )
        table = pa.concat_tables(b.table for b in batches)
        assert batches[0].types == next(formats.read_parquet([out.getvalue()], flatten_structs=flatten)).types
        assert [tuple(r.values()) for r in table.to_pylist()] == rows
