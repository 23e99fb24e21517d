"""Row readers for export files: JSON lines, CSV and Parquet, in batches of rows.

Everything here reads from an iterator of byte chunks and keeps only one batch in memory,
except Parquet, whose footer sits at the end of the file: it is spooled to a temporary file on
disk first, then read a row group at a time (memory stays flat; disk holds one file).

A :class:`Batch` is a list of column names and a list of row tuples in that order. Nested JSON
values (objects, arrays; Parquet structs, lists and maps) become JSON text; Parquet declares such a
column with the logical type ``JSON`` (maps as JSON objects, timestamps as ISO 8601 text), or, with
``flatten_structs``, spreads struct fields over columns named ``parent_child_leaf`` (lists and maps
stay JSON). CSV gives strings, with an empty field read as NULL.
"""

from __future__ import annotations

import csv
import io
import json
import operator
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from airflow_provider_exports.exceptions import (
    ExportConfigError,
    LimitExceeded,
    TransferError,
    TransferRefused,
)
from airflow_provider_exports.transfers.engine.streams import ChunkReader, maybe_gunzip
from airflow_provider_exports.utils import limits

FORMATS = ("jsonl", "csv", "parquet")
_EXTENSIONS = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    ".csv": "csv",
    ".tsv": "csv",
    ".txt": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
}


@dataclass
class Batch:
    """Rows of one file in the order of ``columns``; ``types`` are declared SQL types when the
    format carries them (Parquet), else ``None`` and the sink infers them."""

    columns: list[str]
    rows: list[tuple[Any, ...]]
    types: dict[str, str] | None = None


def detect_format(name: str, file_format: str | None = None) -> str:
    """``jsonl``, ``csv`` or ``parquet`` from an explicit choice or the file name."""
    if file_format:
        if file_format not in FORMATS:
            raise ExportConfigError("file_format", f"{file_format!r} is not one of {', '.join(FORMATS)}")
        return file_format
    stem = name.lower()
    if stem.endswith(".gz"):
        stem = stem[:-3]
    for ext, fmt in _EXTENSIONS.items():
        if stem.endswith(ext):
            return fmt
    raise ExportConfigError(
        "file_format", f"cannot tell the format of {name!r} from its name; set one of {', '.join(FORMATS)}"
    )


def _json_default(value: Any) -> Any:
    """JSON for what Parquet holds and JSON has not: times as ISO 8601, decimals as their digits,
    bytes as base64."""
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if isinstance(value, (bytes, bytearray, memoryview)):
        import base64

        return base64.b64encode(bytes(value)).decode("ascii")
    return str(value)


def _json_text(value: Any) -> Any:
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=_json_default)
    return value


class LineBound:
    """Refuses a line longer than :data:`limits.JSON_LINE` bytes as a stream's chunks pass, a
    line spread over many chunks included: the chunks are looked at, never joined for it."""

    def __init__(self) -> None:
        self.max_bytes = limits.JSON_LINE.value
        #: bytes of the line that has not ended yet
        self.open_bytes = 0

    def check(self, chunk: bytes, open_line: Callable[[], int]) -> int:
        """Check the stream's next ``chunk``; ``open_line()`` gives the number of the line still
        open when it starts (called only for an error). Returns where the chunk's first newline
        is, -1 if it has none."""
        first = chunk.find(b"\n")
        if first < 0:
            self.open_bytes += len(chunk)
            if self.open_bytes > self.max_bytes:
                raise self._too_long(open_line(), self.open_bytes)
            return first
        if self.open_bytes + first > self.max_bytes:
            raise self._too_long(open_line(), self.open_bytes + first)
        last = chunk.rfind(b"\n")
        if last - first - 1 > self.max_bytes:  # a whole line longer than the bound fits between them
            self._check_inside(chunk, first, last, open_line)
        self.open_bytes = len(chunk) - last - 1
        if self.open_bytes > self.max_bytes:
            raise self._too_long(open_line() + chunk.count(b"\n"), self.open_bytes)
        return first

    def _check_inside(self, chunk: bytes, first: int, last: int, open_line: Callable[[], int]) -> None:
        """Check the lines that start and end inside ``chunk`` (between its first and last newline)."""
        start, number = first + 1, 1
        while start <= last:
            end = chunk.find(b"\n", start)
            if end - start > self.max_bytes:
                raise self._too_long(open_line() + number, end - start)
            start, number = end + 1, number + 1

    def _too_long(self, line_no: int, found: int) -> LimitExceeded:
        return limits.JSON_LINE.exceeded(f"line {line_no}", f"{found:,} bytes or more in one line")


def read_jsonl(chunks: Iterable[bytes], *, batch_size: int = 10_000, first_line: int = 1) -> Iterator[Batch]:
    """JSON lines: one object per line; blank lines are skipped. Columns of a batch are the keys
    of its rows, in order of first appearance. ``first_line``: the number of the stream's first
    line in its file (for error messages). A line longer than :data:`limits.JSON_LINE` is
    refused (:class:`LimitExceeded`)."""
    bound = LineBound()
    pending: list[bytes] = []
    open_parts: list[bytes] = []  # the line not ended yet, joined once when it ends

    def open_line() -> int:
        return first_line + len(pending)

    for chunk in chunks:
        if bound.check(chunk, open_line) < 0:
            if chunk:
                open_parts.append(chunk)
            continue
        lines = chunk.split(b"\n")
        if open_parts:
            open_parts.append(lines[0])
            lines[0] = b"".join(open_parts)
        last = lines.pop()
        open_parts = [last] if last else []
        pending.extend(lines)
        while len(pending) >= batch_size:
            batch, pending = pending[:batch_size], pending[batch_size:]
            records, flat = _parse_lines(batch, first_line)
            first_line += len(batch)
            if records:
                yield _batch_from_records(records, flat=flat)
    if open_parts:
        pending.append(b"".join(open_parts))
    records, flat = _parse_lines(pending, first_line)
    if records:
        yield _batch_from_records(records, flat=flat)


def _parse_lines(lines: list[bytes], first_line: int) -> tuple[list[dict[str, Any]], bool]:
    """Parse many lines in one call (as one JSON array): the per-line call cost is most of the
    time otherwise. Any doubt sends the batch through the line-by-line path for a precise error.

    Also says whether the rows are surely flat (one ``{`` per line and no ``[``: no nested value).
    """
    body = [line for line in lines if line and not line.isspace()]
    if not body:
        return [], True
    text = b",".join(body)
    try:
        records = json.loads(b"[" + text + b"]")
    except ValueError:
        records = None
    if records is None or len(records) != len(body) or set(map(type, records)) != {dict}:
        return _parse_each(lines, first_line), False
    return records, text.count(b"{") == len(body) and b"[" not in text


def _parse_each(lines: list[bytes], first_line: int) -> list[dict[str, Any]]:
    records = []
    for line_no, line in enumerate(lines, first_line):
        if not line or line.isspace():
            continue
        try:
            record = json.loads(line)
        except ValueError as exc:
            raise TransferError(f"line {line_no} is not valid JSON: {exc}") from None
        if not isinstance(record, dict):
            kind = "a JSON array (JSON lines were expected)" if line.lstrip()[:1] == b"[" else "not an object"
            raise TransferError(f"line {line_no} is {kind}")
        records.append(record)
    return records


def _batch_from_records(records: list[dict[str, Any]], *, flat: bool = False) -> Batch:
    first_keys = records[0].keys()
    rows: list[tuple[Any, ...]]
    # map/zip/set/itemgetter keep the per-row work in C: Python bytecode per value is the cost
    if all(map(first_keys.__eq__, map(dict.keys, records))):
        names = list(first_keys)
        if not names:  # every object empty: rows without a value (a table's other columns NULL)
            rows = [()] * len(records)
        elif len(names) == 1:
            rows = [(record[names[0]],) for record in records]
        else:
            rows = list(map(operator.itemgetter(*names), records))
    else:
        columns = dict.fromkeys(first_keys)
        for record in records:
            if record.keys() != first_keys:
                for key in record:
                    columns.setdefault(key, None)
        names = list(columns)
        rows = [tuple(map(record.get, names)) for record in records]
    if flat:
        return Batch(names, rows)
    by_column = list(zip(*rows, strict=True))
    nested = [i for i, col in enumerate(by_column) if {dict, list} & set(map(type, col))]
    if nested:
        fixed = list(by_column)
        for i in nested:
            fixed[i] = tuple(_json_text(v) for v in fixed[i])
        rows = list(zip(*fixed, strict=True))
    return Batch(names, rows)


def read_csv(
    chunks: Iterable[bytes],
    *,
    batch_size: int = 10_000,
    delimiter: str = ",",
    header: bool = True,
    columns: Sequence[str] | None = None,
    first_line: int = 1,
) -> Iterator[Batch]:
    """CSV (RFC 4180 quoting, UTF-8 with or without BOM); an empty field is NULL.

    :param header: whether the first row names the columns; without one, ``columns`` must.
    :param first_line: the number of the stream's first line in the file (in errors).

    A field longer than the ``csv`` module's field size limit (an unclosed quote runs into it),
    text that is not UTF-8 or a ragged row raise :class:`TransferError` naming the line.
    """
    if not header and not columns:
        raise ExportConfigError("csv_columns", "a CSV file without a header row needs its column names")
    text = io.TextIOWrapper(io.BufferedReader(ChunkReader(chunks), 1 << 20), encoding="utf-8-sig", newline="")
    reader = csv.reader(text, delimiter=delimiter)
    try:
        first = next(reader, None) if header else []
        if first is None:
            return
        names = list(columns) if columns else first
        rows: list[tuple[Any, ...]] = []
        for record in reader:
            if not record:
                continue
            if len(record) != len(names):
                raise TransferError(
                    f"CSV line {reader.line_num + first_line - 1} has {len(record)} fields, the header has "
                    f"{len(names)}"
                )
            rows.append(tuple(v if v != "" else None for v in record))
            if len(rows) >= batch_size:
                yield Batch(names, rows)
                rows = []
        if rows:
            yield Batch(names, rows)
    except csv.Error as exc:
        hint = ""
        if "field limit" in str(exc):
            hint = (
                f" (a field of more than {csv.field_size_limit():,} characters, or a quote opened "
                "and never closed before it)"
            )
        raise TransferError(f"CSV line {reader.line_num + first_line - 1}: {exc}{hint}") from None
    except UnicodeDecodeError as exc:
        raise TransferError(
            f"CSV after line {reader.line_num + first_line - 1}: not UTF-8 text ({exc.reason})"
        ) from None


#: the logical type of a nested value (struct, list, map) held as JSON text; each SQL dialect maps it
JSON_TYPE = "JSON"
#: what joins a struct's name to its fields' names when structs are flattened
FLATTEN_SEPARATOR = "_"


def arrow_sql_type(arrow_type: Any) -> str:
    """The logical SQL type a Parquet/Arrow column is created with (``JSON`` for nested values)."""
    import pyarrow as pa

    t = pa.types
    if t.is_dictionary(arrow_type):
        arrow_type = arrow_type.value_type
    if t.is_nested(arrow_type):
        return JSON_TYPE
    if t.is_boolean(arrow_type):
        return "BOOLEAN"
    if t.is_integer(arrow_type):
        return "BIGINT"
    if t.is_floating(arrow_type):
        return "DOUBLE PRECISION"
    if t.is_decimal(arrow_type):
        return "NUMERIC"
    if t.is_timestamp(arrow_type):
        return "TIMESTAMP WITH TIME ZONE" if arrow_type.tz else "TIMESTAMP"
    if t.is_date(arrow_type):
        return "DATE"
    if t.is_binary(arrow_type) or t.is_large_binary(arrow_type) or t.is_fixed_size_binary(arrow_type):
        return "BINARY"
    return "TEXT"


def _flatten(record_batch: Any) -> Any:
    """A record batch whose struct columns are spread over their fields, level by level (a NULL
    struct gives NULL fields)."""
    import pyarrow as pa

    while any(pa.types.is_struct(f.type) for f in record_batch.schema):
        arrays, names = [], []
        for f, column in zip(record_batch.schema, record_batch.columns, strict=True):
            if pa.types.is_struct(f.type):
                for child, values in zip(f.type, column.flatten(), strict=True):
                    arrays.append(values)
                    names.append(f"{f.name}{FLATTEN_SEPARATOR}{child.name}")
            else:
                arrays.append(column)
                names.append(f.name)
        record_batch = pa.RecordBatch.from_arrays(arrays, names=names)
    return record_batch


def _plain(value: Any, arrow_type: Any) -> Any:
    """A nested value as JSON sees it: maps (pairs in every pyarrow, nested ones too in older
    versions) become objects, unless a map repeats a key (then it stays ``[key, value]`` pairs)."""
    import pyarrow as pa

    if value is None:
        return None
    t = pa.types
    if t.is_map(arrow_type):
        pairs = list(value.items()) if isinstance(value, dict) else list(value)
        converted = {str(k): _plain(v, arrow_type.item_type) for k, v in pairs}
        if len(converted) == len(pairs):
            return converted
        return [[k, _plain(v, arrow_type.item_type)] for k, v in pairs]
    if t.is_struct(arrow_type):
        return {f.name: _plain(value.get(f.name), f.type) for f in arrow_type}
    if t.is_list(arrow_type) or t.is_large_list(arrow_type) or t.is_fixed_size_list(arrow_type):
        return [_plain(v, arrow_type.value_type) for v in value]
    return value


def nested_json_text(column: Any) -> list[Any]:
    """A nested column's values as JSON text (NULL kept)."""
    return [None if v is None else _json_text(_plain(v, column.type)) for v in column.to_pylist()]


def read_parquet(
    chunks: Iterable[bytes], *, batch_size: int = 10_000, flatten_structs: bool = False
) -> Iterator[Batch]:
    """Parquet (see :func:`parquet_batches`), nested values as JSON text."""
    for names, types, nested, record_batch in parquet_batches(chunks, batch_size, flatten_structs):
        columns = [
            nested_json_text(col) if i in nested else col.to_pylist() for i, col in enumerate(record_batch.columns)
        ]
        yield Batch(names, list(zip(*columns, strict=True)), types)


def parquet_batches(
    chunks: Iterable[bytes], batch_size: int, flatten_structs: bool, batch_bytes: int | None = None
) -> Iterator[tuple[list[str], dict[str, str], set[int], Any]]:
    """Parquet spooled to a temporary file (its footer is at the end) and read page by page: the
    column names, their SQL types and which are nested, with each record batch (with
    ``flatten_structs``, a struct's fields are columns of their own: ``person.name.firstName``
    becomes ``person_name_firstName``, and only lists and maps stay nested). ``batch_bytes``: rows
    per batch by the file's own bytes per row (uncompressed), 1,024 to 65,536, instead of
    ``batch_size``."""
    import shutil
    import tempfile

    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise ExportConfigError(
            "file_format", "Parquet needs pyarrow: pip install 'airflow-provider-exports[parquet]'"
        ) from None

    with tempfile.NamedTemporaryFile(prefix="exports-", suffix=".parquet") as spool:
        shutil.copyfileobj(ChunkReader(chunks), spool, 1 << 20)
        spool.flush()
        try:
            # read natively (a Python file would hand pyarrow every column chunk as a bytes
            # object), page by page: memory holds a batch, not a row group
            pf = pq.ParquetFile(pa.OSFile(spool.name), pre_buffer=False, buffer_size=1 << 20)
        except (pa.ArrowInvalid, OSError) as exc:
            raise TransferError(f"not a readable Parquet file: {exc}") from None
        schema = pf.schema_arrow
        if flatten_structs:
            schema = _flatten(pa.RecordBatch.from_pylist([], schema=schema)).schema
            clashes = sorted(n for n, count in Counter(schema.names).items() if count > 1)
            if clashes:  # refused before any row is read
                raise TransferRefused(
                    f"flattening the structs gives {len(clashes)} column name(s) twice: {', '.join(clashes)}"
                )
        names = list(schema.names)
        types = {f.name: arrow_sql_type(f.type) for f in schema}
        nested = {i for i, f in enumerate(schema) if pa.types.is_nested(f.type)}
        if batch_bytes:
            meta = pf.metadata
            size = sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
            batch_size = min(65_536, max(1_024, batch_bytes * max(meta.num_rows, 1) // max(size, 1)))
        # one thread: the decoding threads' buffers would raise the high-water mark of memory
        for record_batch in pf.iter_batches(batch_size=batch_size, use_threads=False):
            yield names, types, nested, _flatten(record_batch) if flatten_structs else record_batch


def read_batches(
    chunks: Iterable[bytes],
    file_format: str,
    *,
    batch_size: int = 10_000,
    csv_delimiter: str = ",",
    csv_header: bool = True,
    csv_columns: Sequence[str] | None = None,
    flatten_structs: bool = False,
) -> Iterator[Batch]:
    """Rows of one file in batches; gzip is recognised by its magic bytes and undone first.
    ``flatten_structs`` applies to Parquet (see :func:`read_parquet`)."""
    data = maybe_gunzip(chunks)
    if file_format == "jsonl":
        return read_jsonl(data, batch_size=batch_size)
    if file_format == "csv":
        return read_csv(
            data, batch_size=batch_size, delimiter=csv_delimiter, header=csv_header, columns=csv_columns
        )
    if file_format == "parquet":
        return read_parquet(data, batch_size=batch_size, flatten_structs=flatten_structs)
    raise ExportConfigError("file_format", f"{file_format!r} is not one of {', '.join(FORMATS)}")
