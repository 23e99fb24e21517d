"""Row readers: JSON lines, CSV, Parquet; the bounds on the lines they join."""

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
from airflow_provider_exports.transfers.engine.formats import (
    arrow_sql_type,
    detect_format,
    read_batches,
    read_csv,
    read_jsonl,
    read_parquet,
)


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


MIB = 1 << 20


def test_jsonl_batches_union_of_keys_and_nested_values_as_json_text():
    lines = b'{"a": 1, "b": {"x": [1, 2]}}\n{"a": 2, "c": "z"}\n\n{"a": 3}\n'
    batches = list(read_jsonl(_chunks(lines), batch_size=2))

    assert [b.columns for b in batches] == [["a", "b", "c"], ["a"]]
    assert batches[0].rows == [(1, '{"x":[1,2]}', None), (2, None, "z")]
    assert batches[1].rows == [(3,)]


def test_jsonl_a_batch_of_empty_objects_is_rows_without_values():
    assert [(b.columns, b.rows) for b in read_jsonl([b"{}\n{}\n{}\n"], batch_size=2)] == [
        ([], [(), ()]),
        ([], [()]),
    ]


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
