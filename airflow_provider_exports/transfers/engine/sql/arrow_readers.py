"""Columnar readers for the SQL sink's bulk path (PostgreSQL ``COPY``): JSON lines and Parquet read by
pyarrow, whole blocks parsed in C++, as :class:`ArrowBatch` tables with the same columns, types and
values as the row readers (:mod:`~airflow_provider_exports.transfers.engine.formats`) give.
"""

from __future__ import annotations

import contextlib
import json
import queue
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_provider_exports.exceptions import ExportConfigError
from airflow_provider_exports.transfers.engine.formats import (
    Batch,
    LineBound,
    parquet_batches,
    read_jsonl,
)
from airflow_provider_exports.transfers.engine.sql.arrow_text import arrow_json_text
from airflow_provider_exports.transfers.engine.streams import maybe_gunzip

if TYPE_CHECKING:
    from airflow_provider_exports.transfers.engine.cancellation import Cancellation


@dataclass
class ArrowBatch:
    """Rows of one file as a pyarrow ``Table`` (columns in the order of ``columns``).

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
    bound = LineBound()
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
    as_strings: dict[str, Any] = {}  # columns pyarrow would read as timestamps
    for block, first_line in _split_blocks(chunks, block_bytes or JSONL_BLOCK_BYTES):
        table = _arrow_jsonl_block(block, as_strings)
        if table is None:
            yield from read_jsonl([block], batch_size=batch_size, first_line=first_line)
        elif table.num_rows:
            yield ArrowBatch(list(table.column_names), table)


def _arrow_jsonl_block(block: bytes, as_strings: dict[str, Any]) -> Any:
    """One block as an Arrow table of plain columns, or ``None`` when only Python can read it exactly."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.json as pj

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
    return any(re.search(re.escape(s) + rb"\s*:\s*-?(?:0|[1-9][0-9]*)\s*[,}]", block) for s in spellings)


def read_parquet_columnar(
    chunks: Iterable[bytes], *, batch_size: int = 65_536, flatten_structs: bool = False
) -> Iterator[ArrowBatch]:
    """Parquet as :class:`ArrowBatch` record batches (spooled as
    :func:`~airflow_provider_exports.transfers.engine.formats.read_parquet` does): the
    same columns, types and values, nested ones as JSON text written column-wise."""
    import pyarrow as pa

    for names, types, nested, record_batch in parquet_batches(chunks, batch_size, flatten_structs):
        columns = [arrow_json_text(col) if i in nested else col for i, col in enumerate(record_batch.columns)]
        yield ArrowBatch(names, pa.Table.from_arrays(columns, names=names), types)


def read_columnar(
    chunks: Iterable[bytes], file_format: str, *, batch_size: int = 10_000, flatten_structs: bool = False
) -> Iterator[ArrowBatch | Batch]:
    """Rows of one JSON-lines or Parquet file as :class:`ArrowBatch` blocks where pyarrow reads them
    exactly (gzip, recognised by its magic bytes, undone first); ``flatten_structs`` as the row
    reader's."""
    data = maybe_gunzip(chunks)
    if file_format == "jsonl":
        return read_jsonl_columnar(data, batch_size=batch_size)
    if file_format == "parquet":
        return read_parquet_columnar(data, batch_size=max(batch_size, 8192), flatten_structs=flatten_structs)
    raise ExportConfigError("file_format", f"{file_format!r} has no columnar reader (jsonl, parquet)")


_DONE = object()


@contextlib.contextmanager
def read_ahead(items: Iterator[Any], cancellation: Cancellation, depth: int = 2) -> Iterator[Iterator[Any]]:
    """``items`` produced by a thread of their own, at most ``depth`` ahead of the consumer.

    The columnar readers spend their time in pyarrow and zlib, which release the GIL, so a block
    is parsed and encoded while the database takes the previous one. An exception of the producer
    (``SourceChanged`` included) is raised to the consumer as it was; leaving the block stops
    the producer and waits for it, so the file's stream is never read by two threads.
    """
    handoff: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(entry: tuple[Any, BaseException | None]) -> bool:
        """Hand ``entry`` over, unless the consumer left first."""
        while not stop.is_set():
            try:
                handoff.put(entry, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put((item, None)):
                    return
            outcome: tuple[Any, BaseException | None] = (_DONE, None)
        except BaseException as exc:  # handed to the consumer, which raises it
            outcome = (_DONE, exc)
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                with contextlib.suppress(Exception):
                    close()
        put(outcome)

    def consume() -> Iterator[Any]:
        while True:
            try:
                item, error = handoff.get(timeout=0.1)
            except queue.Empty:
                cancellation.check()
                continue
            if item is _DONE:
                if error is not None:
                    raise error
                return
            yield item

    worker = threading.Thread(target=produce, name="exports-sql-read-ahead", daemon=True)
    worker.start()
    try:
        yield consume()
    finally:
        stop.set()
        worker.join()
