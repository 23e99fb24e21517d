"""Arrow columns as PostgreSQL ``COPY`` CSV: the text each value loads as, in bulk.

The columnar readers (:func:`.arrow_readers.read_jsonl_columnar`,
:func:`.arrow_readers.read_parquet_columnar`) give pyarrow tables; here they become the same text
the row path gives, computed column-wise in C++:

- **staged** (an undeclared JSON-lines column of a table this load creates, staged as text and
  cast at commit): as :func:`.types.json_as_text` writes it — ``true``/``false``, integers,
  floats as Python's ``repr``, strings unchanged;
- **typed** (a column of an existing table, or with a declared type): as psycopg sends the Python
  value — ``t``/``f``, integers, floats as ``repr``, dates and timestamps as ``str()`` gives them
  (``2024-01-01 10:00:00+00:00``), ``bytea`` as ``\\x`` hex.

NULL is an unquoted empty field, every other value is quoted, so ``""`` stays an empty string.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

from airflow_provider_exports.transfers.engine.sql.arrow_text import (
    NeedsPython,
    float_text,
    iso_timestamp_text,
)
from airflow_provider_exports.transfers.engine.sql.types import BOOL, FLOAT, INT, TEXT


@dataclass
class CsvBatch:
    """Rows as ``COPY ... (FORMAT csv)`` data, columns in the order of ``columns``."""

    columns: list[str]
    data: bytes
    num_rows: int


def json_kinds(array: Any) -> tuple[set[str], int]:
    """What a plain JSON-lines column shows the type tracker: its kinds and its largest integer
    magnitude (the columnar reader gives only int64, double, bool, string and null columns)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    t = array.type
    if array.null_count == len(array) or pa.types.is_null(t):
        return set(), 0
    if pa.types.is_integer(t):
        low, high = pc.min_max(array).values()
        return {INT}, max(abs(low.as_py()), abs(high.as_py()))
    if pa.types.is_floating(t):
        return {FLOAT}, 0
    if pa.types.is_boolean(t):
        return {BOOL}, 0
    return {TEXT}, 0


def copy_text(array: Any, *, staged: bool) -> Any:
    """``array``'s values as the text ``COPY`` receives (see the module docstring); NULL kept."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    t = array.type
    T = pa.types
    if T.is_dictionary(t):
        return copy_text(array.dictionary_decode(), staged=staged)
    if T.is_string(t) or T.is_large_string(t):
        return array
    if T.is_null(t):
        return pa.nulls(len(array), pa.string())
    if T.is_boolean(t):
        yes, no = ("true", "false") if staged else ("t", "f")
        return pc.if_else(array, yes, no)
    if T.is_floating(t):
        return float_text(array)
    if T.is_timestamp(t):
        try:
            return iso_timestamp_text(array, sep=" ", quote="")
        except NeedsPython:
            return pa.array([None if v is None else str(v) for v in array.to_pylist()], pa.string())
    if T.is_binary(t) or T.is_large_binary(t) or T.is_fixed_size_binary(t):
        return pa.array([None if v is None else "\\x" + v.hex() for v in array.to_pylist()], pa.string())
    if T.is_decimal(t):
        return pa.array([None if v is None else str(v) for v in array.to_pylist()], pa.string())
    return pc.cast(array, pa.string())  # integers, dates, times: their text is the same


def encode_csv(columns: list[Any], num_rows: int) -> bytes:
    """String columns as CSV rows (no header): NULL unquoted and empty, every value quoted."""
    import pyarrow as pa
    import pyarrow.csv as pcsv

    if not columns:
        return b""
    names = [f"c{i}" for i in range(len(columns))]
    table = pa.Table.from_arrays(columns, names=names)
    out = io.BytesIO()
    pcsv.write_csv(table, out, pcsv.WriteOptions(include_header=False, quoting_style="needed"))
    return out.getvalue()
