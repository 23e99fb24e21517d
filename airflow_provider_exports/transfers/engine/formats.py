"""Streaming readers for export files: gzip, JSON lines, CSV and Parquet, in batches of rows.

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
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from airflow_provider_exports.exceptions import ExportConfigError, LimitExceeded, TransferError
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
_GZIP_MAGIC = b"\x1f\x8b"


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


def gunzip(chunks: Iterable[bytes], out_size: int = 1 << 20, *, name: str = "the file") -> Iterator[bytes]:
    """Decompress a gzip stream (several members allowed) without inflating more than
    ``out_size`` bytes at a time, so a small chunk of a very compressible file stays small.

    A gzip bomb stops: past :data:`limits.DECOMPRESSION_FLOOR` inflated bytes, the stream may
    inflate to at most :data:`limits.DECOMPRESSION_RATIO` times the compressed bytes consumed so
    far (:class:`LimitExceeded`, naming ``name``).
    """
    ratio = limits.DECOMPRESSION_RATIO.value
    d = zlib.decompressobj(wbits=31)
    fed = False
    consumed = inflated = 0
    try:
        for chunk in chunks:
            data = chunk
            while data:
                fed = True
                out = d.decompress(data, out_size)
                rest = d.unused_data if d.eof else d.unconsumed_tail
                consumed += len(data) - len(rest)
                if out:
                    inflated += len(out)
                    if inflated > limits.DECOMPRESSION_FLOOR and inflated > ratio * consumed:
                        raise _bomb(name, inflated, consumed, ratio)
                    yield out
                if d.eof:
                    d, fed = zlib.decompressobj(wbits=31), False
                data = rest
    except zlib.error as exc:
        raise TransferError(f"{name} is not valid gzip: {exc}") from None
    if fed and not d.eof:
        raise TransferError(f"{name} ended before its gzip end marker (truncated file)")


def _bomb(name: str, inflated: int, consumed: int, ratio: int) -> LimitExceeded:
    return limits.DECOMPRESSION_RATIO.exceeded(
        name,
        f"{consumed:,} compressed bytes inflated to {inflated:,} ({inflated // max(consumed, 1):,} times as "
        f"many; a gzip bomb?)",
        ratio,
    )


def maybe_gunzip(chunks: Iterable[bytes], *, name: str = "the file") -> Iterator[bytes]:
    """The stream, decompressed (:func:`gunzip`) if it starts with the gzip magic bytes, else unchanged."""
    it = iter(chunks)
    head = b""
    for chunk in it:
        head += chunk
        if len(head) >= 2:
            break
    if not head:
        return iter(())

    def rest() -> Iterator[bytes]:
        yield head
        yield from it

    return gunzip(rest(), name=name) if head[:2] == _GZIP_MAGIC else rest()


class ChunkReader(io.RawIOBase):
    """A read-only, non-seekable file over an iterator of byte chunks."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._it = iter(chunks)
        self._buf = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        while not self._buf:
            chunk = next(self._it, None)
            if chunk is None:
                return 0
            self._buf = memoryview(chunk)
        n = min(len(b), len(self._buf))
        b[:n] = self._buf[:n]
        self._buf = self._buf[n:]
        return n


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


class _LineBound:
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
    bound = _LineBound()
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
        if len(names) == 1:
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
) -> Iterator[Batch]:
    """CSV (RFC 4180 quoting, UTF-8 with or without BOM); an empty field is NULL.

    :param header: whether the first row names the columns; without one, ``columns`` must.

    A field longer than the ``csv`` module's field size limit (an unclosed quote runs into it),
    text that is not UTF-8 or a ragged row raise :class:`TransferError` naming the line.
    """
    text = io.TextIOWrapper(io.BufferedReader(ChunkReader(chunks), 1 << 20), encoding="utf-8-sig", newline="")
    reader = csv.reader(text, delimiter=delimiter)
    try:
        yield from _csv_batches(reader, batch_size, header, columns)
    except csv.Error as exc:
        hint = ""
        if "field limit" in str(exc):
            hint = (
                f" (a field of more than {csv.field_size_limit():,} characters, or a quote opened "
                "and never closed before it)"
            )
        raise TransferError(f"CSV line {reader.line_num}: {exc}{hint}") from None
    except UnicodeDecodeError as exc:
        raise TransferError(f"CSV after line {reader.line_num}: not UTF-8 text ({exc.reason})") from None


def _csv_batches(
    reader: Any, batch_size: int, header: bool, columns: Sequence[str] | None
) -> Iterator[Batch]:
    """The rows of ``reader`` (a ``csv.reader``) in batches, under the header or ``columns``."""
    if header:
        first = next(reader, None)
        if first is None:
            return
        names = list(columns) if columns else first
    else:
        if not columns:
            raise ExportConfigError("csv_columns", "a CSV file without a header row needs its column names")
        names = list(columns)
    width = len(names)
    rows: list[tuple[Any, ...]] = []
    for record in reader:
        if not record:
            continue
        if len(record) != width:
            raise TransferError(
                f"CSV line {reader.line_num} has {len(record)} fields, the header has {width}"
            )
        rows.append(tuple(v if v != "" else None for v in record))
        if len(rows) >= batch_size:
            yield Batch(names, rows)
            rows = []
    if rows:
        yield Batch(names, rows)


@dataclass(frozen=True)
class Unpivot:
    """A batch transform from wide rows to long ones, as the rows stream (one batch at a time).

    A wide row ``(id, v1, v2, ...)`` under the header ``(first, h1, h2, ...)`` becomes the rows
    ``(id, h1, v1), (id, h2, v2), ...`` with the columns ``(id_column, name_column, value_column)``:
    a table keeps one shape however many wide columns a file has.

    :param id_column: the name the first column gets.
    :param name_column: the column that holds the other columns' headers.
    :param value_column: the column that holds their values.
    :param read_name: checks (and may rewrite) a header before it becomes a value; raises
        ``TransferError`` for one it refuses.
    :param max_rows: long rows per batch at most (a wide batch of many columns is split).
    """

    id_column: str
    name_column: str
    value_column: str
    read_name: Callable[[str], str] | None = None
    max_rows: int = 10_000

    def __call__(self, batches: Iterable[Batch]) -> Iterator[Batch]:
        columns = [self.id_column, self.name_column, self.value_column]
        header: list[str] | None = None
        names: list[str] = []
        rows: list[tuple[Any, ...]] = []
        for batch in batches:
            if batch.columns != header:
                if len(batch.columns) < 2:
                    raise TransferError(
                        f"a wide file needs an id column and at least one more, got {batch.columns!r}"
                    )
                header = list(batch.columns)
                names = [self.read_name(h) if self.read_name else h for h in header[1:]]
            for row in batch.rows:
                key = row[0]
                rows.extend((key, name, value) for name, value in zip(names, row[1:], strict=True))
                if len(rows) >= self.max_rows:
                    yield Batch(columns, rows)
                    rows = []
        if rows:
            yield Batch(columns, rows)


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


def _flat_names(schema: Any) -> list[str]:
    """The column names after flattening every struct, refused when two would be the same."""
    import pyarrow as pa

    names: list[str] = []

    def walk(prefix: str, arrow_type: Any) -> None:
        if pa.types.is_struct(arrow_type):
            for i in range(arrow_type.num_fields):
                child = arrow_type.field(i)
                walk(f"{prefix}{FLATTEN_SEPARATOR}{child.name}", child.type)
        else:
            names.append(prefix)

    for f in schema:
        walk(f.name, f.type)
    seen: dict[str, int] = {}
    for name in names:
        seen[name] = seen.get(name, 0) + 1
    clashes = sorted(n for n, count in seen.items() if count > 1)
    if clashes:
        from airflow_provider_exports.exceptions import TransferRefused

        raise TransferRefused(
            f"flattening the structs gives {len(clashes)} column name(s) twice: {', '.join(clashes)}"
        )
    return names


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


def _json_column(column: Any) -> list[Any]:
    """A nested column's values as JSON text (NULL kept)."""
    return [None if v is None else _json_text(_plain(v, column.type)) for v in column.to_pylist()]


def read_parquet(
    chunks: Iterable[bytes], *, batch_size: int = 10_000, flatten_structs: bool = False
) -> Iterator[Batch]:
    """Parquet, spooled to a temporary file (its footer is at the end) and read by row groups.

    Nested columns are JSON text of logical type ``JSON``; with ``flatten_structs`` a struct's fields
    become their own columns (``person.name.firstName`` → ``person_name_firstName``), typed by
    their own Parquet types, and only lists and maps stay JSON.
    """
    for names, types, nested, record_batch in _parquet_batches(chunks, batch_size, flatten_structs):
        columns = [
            _json_column(col) if i in nested else col.to_pylist() for i, col in enumerate(record_batch.columns)
        ]
        yield Batch(names, list(zip(*columns, strict=True)), types)


def _parquet_batches(
    chunks: Iterable[bytes], batch_size: int, flatten_structs: bool
) -> Iterator[tuple[list[str], dict[str, str], set[int], Any]]:
    """Parquet spooled to a temporary file (its footer is at the end) and read by row groups: the
    column names, their SQL types and which are nested, with each record batch (structs flattened
    into columns with ``flatten_structs``)."""
    import shutil
    import tempfile

    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise ExportConfigError(
            "file_format", "Parquet needs pyarrow: pip install 'airflow-provider-exports[parquet]'"
        ) from None

    with tempfile.TemporaryFile(prefix="exports-", suffix=".parquet") as spool:
        shutil.copyfileobj(ChunkReader(chunks), spool, 1 << 20)
        spool.seek(0)
        try:
            pf = pq.ParquetFile(spool)
        except (pa.ArrowInvalid, OSError) as exc:
            raise TransferError(f"not a readable Parquet file: {exc}") from None
        schema = pf.schema_arrow
        if flatten_structs:
            _flat_names(schema)  # refuse clashing names before any row is read
            schema = _flatten(pa.RecordBatch.from_pylist([], schema=schema)).schema
        names = list(schema.names)
        types = {f.name: arrow_sql_type(f.type) for f in schema}
        nested = {i for i, f in enumerate(schema) if pa.types.is_nested(f.type)}
        for record_batch in pf.iter_batches(batch_size=batch_size):
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
    columnar: bool = False,
) -> Iterator[Batch | ArrowBatch]:
    """Rows of one file in batches; gzip is recognised by its magic bytes and undone first.
    ``flatten_structs`` applies to Parquet (see :func:`read_parquet`). ``columnar``: JSON lines
    and Parquet come as :class:`ArrowBatch` where pyarrow reads them exactly (bulk sinks)."""
    data = maybe_gunzip(chunks)
    if columnar and file_format == "jsonl":
        return read_jsonl_columnar(data, batch_size=batch_size)
    if columnar and file_format == "parquet":
        return read_parquet_columnar(data, batch_size=max(batch_size, 8192), flatten_structs=flatten_structs)
    if file_format == "jsonl":
        return read_jsonl(data, batch_size=batch_size)
    if file_format == "csv":
        return read_csv(
            data, batch_size=batch_size, delimiter=csv_delimiter, header=csv_header, columns=csv_columns
        )
    if file_format == "parquet":
        return read_parquet(data, batch_size=batch_size, flatten_structs=flatten_structs)
    raise ExportConfigError("file_format", f"{file_format!r} is not one of {', '.join(FORMATS)}")


# --- columnar readers (pyarrow): whole blocks parsed in C++, for bulk paths such as COPY -------------


@dataclass
class ArrowBatch:
    """Rows of one file as a pyarrow ``Table`` (columns in the order of ``columns``).

    Produced by the columnar readers for sinks that take columns in bulk (PostgreSQL ``COPY``).
    Nested values are already JSON text, as in :class:`Batch`; ``types`` are declared SQL types
    (Parquet), else ``None``. From JSON lines, a float column held only JSON fractions (an integer
    among fractions sends the block to the row reader), so its Arrow type is its JSON kind.
    """

    columns: list[str]
    table: Any
    types: dict[str, str] | None = None

    @property
    def num_rows(self) -> int:
        return int(self.table.num_rows)


#: bytes of JSON lines parsed per pyarrow block (pyarrow splits it further over its threads)
JSONL_BLOCK_BYTES = 8 << 20
_PLAIN_ARROW_JSON = ("int64", "double", "bool", "string", "null")


def _split_blocks(chunks: Iterable[bytes], block_bytes: int, first_line: int = 1) -> Iterator[tuple[bytes, int]]:
    """The stream cut after newlines into blocks of about ``block_bytes`` (a longer line is a
    block), each with the number of its first line. A line longer than :data:`limits.JSON_LINE`
    is refused (:class:`LimitExceeded`) before it is joined."""
    bound = _LineBound()
    pending: list[bytes] = []
    size = 0

    def open_line() -> int:
        return first_line + sum(part.count(b"\n") for part in pending)

    for chunk in chunks:
        first = bound.check(chunk, open_line)
        pending.append(chunk)
        size += len(chunk)
        if size < block_bytes or first < 0:
            continue
        data = b"".join(pending) if len(pending) > 1 else chunk
        at = 0
        while len(data) - at >= block_bytes:
            cut = data.rfind(b"\n", at, at + block_bytes) + 1
            if cut <= at:  # a line longer than a block: up to its end
                cut = data.find(b"\n", at + block_bytes) + 1
                if cut <= 0:
                    break
            block = data[at:cut]
            yield block, first_line
            first_line += block.count(b"\n")
            at = cut
        rest = data[at:]
        pending, size = ([rest], len(rest)) if rest else ([], 0)
    data = b"".join(pending)
    if data:
        yield data, first_line


def read_jsonl_columnar(
    chunks: Iterable[bytes], *, batch_size: int = 10_000, block_bytes: int | None = None
) -> Iterator[ArrowBatch | Batch]:
    """JSON lines as :class:`ArrowBatch` blocks parsed by pyarrow, where that is exact.

    pyarrow reads JSON in C++ over several threads, but it guesses and widens on its own terms, so
    a block is taken from it only when every column is plain: integers within int64, booleans,
    strings (a column it reads as timestamps is read again as strings), NULLs, and fractions
    whose column holds no JSON integer. Any other block — nested values, a column of mixed kinds,
    integers beyond int64, a line pyarrow refuses — is read by :func:`read_jsonl`, which gives the
    same rows and values and names a bad line; the sink types both alike. Memory: one block (a
    line longer than :data:`limits.JSON_LINE` is refused).
    """
    import pyarrow as pa
    import pyarrow.json as pj

    as_strings: dict[str, Any] = {}  # columns pyarrow would read as timestamps
    for block, first_line in _split_blocks(chunks, block_bytes or JSONL_BLOCK_BYTES):
        table = _arrow_jsonl_block(block, as_strings, pa, pj)
        if table is None:
            yield from read_jsonl([block], batch_size=batch_size, first_line=first_line)
        elif table.num_rows:
            yield ArrowBatch(list(table.column_names), table)


def _arrow_jsonl_block(block: bytes, as_strings: dict[str, Any], pa: Any, pj: Any) -> Any:
    """One block as an Arrow table of plain columns, or ``None`` when only Python can read it exactly."""
    import pyarrow.compute as pc

    def parse() -> Any:
        schema = pa.schema(list(as_strings.values())) if as_strings else None
        options = pj.ParseOptions(explicit_schema=schema, newlines_in_values=False)
        return pj.read_json(pa.BufferReader(block), parse_options=options)

    try:
        table = parse()
        timestamps = [f for f in table.schema if pa.types.is_timestamp(f.type)]
        if timestamps:  # pyarrow read ISO dates as timestamps: they are strings in the file
            for f in timestamps:
                as_strings[f.name] = pa.field(f.name, pa.string())
            order = table.column_names  # as the lines have them (explicit columns come first)
            table = parse().select(order)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError):
        return None
    for name, f in zip(table.column_names, table.schema, strict=True):
        if str(f.type) not in _PLAIN_ARROW_JSON:
            return None
        column = table.column(name)
        if name in as_strings and column.null_count == len(column):
            return None  # absent or NULL: pyarrow adds an explicit column to every block
        if pa.types.is_floating(f.type) and column.null_count < len(column):
            # an integer among fractions reads as a float: its text (and past 2**53 its value)
            # would change; fractions alone are the floats Python reads
            finite = pc.is_finite(column)
            whole = pc.and_(finite, pc.equal(pc.floor(column), column))
            if not pc.all(finite).as_py() or (pc.any(whole).as_py() and _has_int_token(block, name)):
                return None
    return table


def _has_int_token(block: bytes, key: str) -> bool:
    """Whether some line of ``block`` gives ``key`` a JSON integer (``"key": 12,``).

    A key spelled with ``\\u`` escapes where plain characters would do is not recognised."""
    import re

    spellings = {json.dumps(key, ensure_ascii=False).encode(), json.dumps(key).encode()}
    for spelled in spellings:
        if re.search(re.escape(spelled) + rb"\s*:\s*-?(?:0|[1-9][0-9]*)\s*[,}]", block):
            return True
    return False


def arrow_json_text(array: Any) -> Any:
    """A nested Arrow array's values as JSON text (a string array, NULL kept), exactly as
    :func:`_json_column` writes them, computed column-wise in C++ (pyarrow compute); the few
    values that need Python (control characters, non-finite floats, binary, decimals, repeated map
    keys, a time zone other than UTC) are written by it."""
    import pyarrow as pa

    if isinstance(array, pa.ChunkedArray):
        return pa.chunked_array([arrow_json_text(c) for c in array.chunks], type=pa.string())
    try:
        text = _json_values(array)
    except NeedsPython:
        text = pa.array(_json_column(array), type=pa.string())
    import pyarrow.compute as pc

    return pc.if_else(array.is_valid(), text, pa.scalar(None, pa.string()))


class NeedsPython(Exception):
    """A value the column-wise JSON writer leaves to Python."""


def float_text(array: Any, *, json_style: bool = False) -> Any:
    """Floats as Python's ``repr`` writes them (JSON's ``json.dumps`` with ``json_style``: ``NaN``,
    ``Infinity``); NULL kept. pyarrow's own text is kept where it is the same, the rest is
    written by Python."""
    import pyarrow as pa
    import pyarrow.compute as pc

    array = pc.cast(array, pa.float64())
    text = pc.cast(array, pa.string())
    # pyarrow writes shortest round-trip digits like repr, but switches to exponents sooner and
    # drops ".0"; its fixed-notation text with a point and at most 4 leading zeros is repr's
    odd = pc.or_(
        pc.invert(pc.match_substring(text, ".")),
        pc.or_(pc.match_substring(text, "e"), pc.match_substring_regex(text, r"^-?0\.0000")),
    )
    odd = pc.fill_null(odd, False)
    if not pc.any(odd).as_py():
        return text
    where = pc.indices_nonzero(odd)
    values = pc.take(array, where).to_pylist()
    fixed = [json.dumps(v) for v in values] if json_style else [repr(v) for v in values]
    return _scatter(text, where, fixed)


def _scatter(text: Any, where: Any, values: list[str]) -> Any:
    """``text`` with the positions ``where`` replaced by ``values``."""
    import pyarrow as pa
    import pyarrow.compute as pc

    out = text.to_pylist() if len(values) * 8 > len(text) else None
    if out is not None:
        for i, v in zip(where.to_pylist(), values, strict=True):
            out[i] = v
        return pa.array(out, type=pa.string())
    mask = pc.fill_null(pc.is_in(pa.array(range(len(text)), pa.int64()), value_set=where), False)
    full: list[str | None] = [None] * len(text)
    for i, v in zip(where.to_pylist(), values, strict=True):
        full[i] = v
    return pc.if_else(mask, pa.array(full, type=pa.string()), text)


def _json_string(array: Any) -> Any:
    """Strings as JSON string literals (``json.dumps(ensure_ascii=False)``)."""
    import re

    import pyarrow as pa
    import pyarrow.compute as pc

    array = pc.cast(array, pa.string())
    data = array.buffers()[2]
    raw = memoryview(data) if data is not None else b""
    # one scan of the bytes in C (a control character anywhere in the buffer sends it to Python)
    if re.search(rb"[\x00-\x1f]", raw):
        raise NeedsPython
    if re.search(rb'[\\"]', raw):
        array = pc.replace_substring(pc.replace_substring(array, "\\", "\\\\"), '"', '\\"')
    return pc.binary_join_element_wise('"', array, '"', "")


def _json_values(array: Any) -> Any:
    """JSON text of every slot of ``array`` (a NULL slot's text is ``null``)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    t = array.type
    T = pa.types
    null = pa.scalar("null", pa.string())
    if T.is_dictionary(t):
        return _json_values(array.dictionary_decode())
    if T.is_null(t):
        return pa.array(["null"] * len(array), type=pa.string())
    if T.is_boolean(t):
        text = pc.if_else(array, "true", "false")
    elif T.is_integer(t):
        text = pc.cast(array, pa.string())
    elif T.is_floating(t):
        text = float_text(array, json_style=True)
    elif T.is_string(t) or T.is_large_string(t):
        text = _json_string(array)
    elif T.is_date(t):
        text = pc.binary_join_element_wise('"', pc.cast(pc.cast(array, pa.date32()), pa.string()), '"', "")
    elif T.is_timestamp(t):
        text = iso_timestamp_text(array)
    elif T.is_struct(t):
        parts: list[Any] = ["{"]
        for i, (f, child) in enumerate(zip(t, array.flatten(), strict=True)):
            parts.append(("," if i else "") + json.dumps(f.name, ensure_ascii=False) + ":")
            parts.append(_json_values(child))
        parts.append("}")
        text = pc.binary_join_element_wise(*parts, "") if len(parts) > 2 else pa.array(["{}"] * len(array))
    elif T.is_map(t):
        text = _json_map(array)
    elif T.is_list(t) or T.is_large_list(t) or T.is_fixed_size_list(t):
        if T.is_fixed_size_list(t):
            array = pc.cast(array, pa.list_(t.value_type))
        offsets = pc.subtract(array.offsets, array.offsets[0])
        items = pa.ListArray.from_arrays(offsets, _json_values(_list_values(array)), mask=array.is_null())
        text = pc.binary_join_element_wise("[", pc.binary_join(items, ","), "]", "")
    else:
        raise NeedsPython  # binary, decimals, times, unions: rare; Python writes them
    if array.null_count:
        text = pc.if_else(array.is_valid(), text, null)
    return text


def _list_values(array: Any) -> Any:
    """The values a list array's offsets span (``flatten`` skips the values under NULL lists)."""
    offsets = array.offsets
    start, end = offsets[0].as_py(), offsets[-1].as_py()
    return array.values.slice(start, end - start)


def _json_map(array: Any) -> Any:
    """Maps as JSON objects (string keys, none repeated within a map; else Python writes them)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    t = array.type
    if not (pa.types.is_string(t.key_type) or pa.types.is_large_string(t.key_type)):
        raise NeedsPython
    offsets = array.offsets
    start, end = offsets[0].as_py(), offsets[-1].as_py()
    keys = array.keys.slice(start, end - start)
    items = array.items.slice(start, end - start)
    rebased = pc.subtract(offsets, offsets[0])
    if _repeats_a_key(rebased, keys):
        raise NeedsPython  # a repeated key: the pairs stay a list of [key, value]
    entries = pc.binary_join_element_wise(_json_string(keys), ":", _json_values(items), "")
    joined = pc.binary_join(pa.ListArray.from_arrays(rebased, entries, mask=array.is_null()), ",")
    return pc.binary_join_element_wise("{", joined, "}", "")


def iso_timestamp_text(array: Any, sep: str = "T", quote: str = '"') -> Any:
    """Timestamps as ``datetime.isoformat(sep)`` writes them, quoted (UTC or naive; else Python)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    tz = array.type.tz
    if array.type.unit == "ns" or tz not in (None, "UTC", "utc", "+00:00", "Etc/UTC"):
        raise NeedsPython
    micros = pc.cast(pc.cast(array, pa.timestamp("us", tz=tz)), pa.timestamp("us"))  # UTC wall time
    seconds = pc.floor_temporal(micros, unit="second")
    base = pc.utf8_replace_slice(pc.cast(pc.cast(seconds, pa.timestamp("s")), pa.string()), 10, 11, sep)
    frac = pc.subtract(pc.cast(micros, pa.int64()), pc.cast(seconds, pa.int64()))
    frac_text = pc.if_else(
        pc.equal(frac, 0),
        "",
        pc.binary_join_element_wise(".", pc.utf8_lpad(pc.cast(frac, pa.string()), 6, "0"), ""),
    )
    suffix = "" if tz is None else "+00:00"
    return pc.binary_join_element_wise(quote, base, frac_text, suffix + quote, "")


def _repeats_a_key(rebased: Any, keys: Any) -> bool:
    """Whether some map repeats a key: each entry is compared with the entries before it in its
    map (maps are short), or, for long maps, (map, key) pairs are counted."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if not len(keys):
        return False
    parents = pc.list_parent_indices(pa.ListArray.from_arrays(rebased, keys))
    longest = pc.max(pc.subtract(rebased.slice(1), rebased.slice(0, len(rebased) - 1))).as_py() or 0
    if longest > 32:
        return pa.table({"p": parents, "k": keys}).group_by(["p", "k"]).aggregate([]).num_rows != len(keys)
    for lag in range(1, longest):
        same = pc.and_(
            pc.equal(parents.slice(lag), parents.slice(0, len(parents) - lag)),
            pc.equal(keys.slice(lag), keys.slice(0, len(keys) - lag)),
        )
        if pc.any(same).as_py():
            return True
    return False


def read_parquet_columnar(
    chunks: Iterable[bytes], *, batch_size: int = 65_536, flatten_structs: bool = False
) -> Iterator[ArrowBatch]:
    """Parquet as :class:`ArrowBatch` record batches (spooled as :func:`read_parquet` does): the
    same columns, types and values, nested ones as JSON text written column-wise."""
    import pyarrow as pa

    for names, types, nested, record_batch in _parquet_batches(chunks, batch_size, flatten_structs):
        columns = [arrow_json_text(col) if i in nested else col for i, col in enumerate(record_batch.columns)]
        yield ArrowBatch(names, pa.Table.from_arrays(columns, names=names), types)
