"""Columnar readers for the SQL sink's bulk path (PostgreSQL ``COPY``): CSV, JSON lines and Parquet
read by pyarrow, whole blocks parsed in C++ over several threads, as :class:`ArrowBatch` tables with
the same columns and values as the row readers
(:mod:`~airflow_provider_exports.transfers.engine.formats`) give. A block pyarrow refuses is read
by the row reader, which names the bad line.
"""

from __future__ import annotations

import contextlib
import json
import queue
import re
import threading
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow_provider_exports.exceptions import ExportConfigError
from airflow_provider_exports.transfers.engine.formats import (
    Batch,
    LineBound,
    parquet_batches,
    read_csv,
    read_jsonl,
)
from airflow_provider_exports.transfers.engine.sql.arrow_text import arrow_json_text, float_text
from airflow_provider_exports.transfers.engine.streams import maybe_gunzip, re2_search

if TYPE_CHECKING:
    from airflow_provider_exports.transfers.engine.cancellation import Cancellation


@dataclass
class ArrowBatch:
    """Rows of one file as a pyarrow ``Table`` (columns in the order of ``columns``).

    Nested values are already JSON text, as in :class:`Batch`; ``types`` are declared SQL types
    (Parquet), else ``None``. From JSON lines, a float column held only JSON fractions, so its Arrow
    type is its JSON kind, unless it goes into a column of doubles, where an integer loads as its
    float would, or it is named in ``json_numbers``: integers among fractions, each value as the
    text JSON wrote it. From CSV (``from_text``), every column is text, NULL for an empty field.
    """

    columns: list[str]
    table: Any
    types: dict[str, str] | None = None
    from_text: bool = False
    #: the block's CSV bytes, as ``COPY ... (FORMAT csv)`` takes them (:func:`read_csv_columnar`'s
    #: ``needed``); ``table`` then holds only the columns whose values were needed
    raw: bytes | None = None
    #: columns of JSON numbers held as the text JSON wrote them (``2100`` beside ``0.5``), each with
    #: its largest integer magnitude (below 2**53): what the type tracker sees of them
    json_numbers: dict[str, int] = field(default_factory=dict)

    @property
    def num_rows(self) -> int:
        return int(self.table.num_rows)


#: bytes of JSON lines parsed per pyarrow block (pyarrow splits it further over its threads)
JSONL_BLOCK_BYTES = 8 << 20
#: the names of a column of doubles, which takes ``5`` as it takes ``5.0``
_DOUBLE = ("double precision", "float8")
_PLAIN_ARROW_JSON = ("int64", "double", "bool", "string", "null")


def _split_blocks(
    chunks: Iterable[bytes], block_bytes: int, first_line: int = 1
) -> Iterator[tuple[bytes, int, int]]:
    """The stream cut after newlines into blocks of about ``block_bytes`` (a longer line is a
    block), each with the number of its first line and its number of lines. A line longer than
    :data:`limits.JSON_LINE` is refused (:class:`LimitExceeded`) before it is joined."""
    bound = LineBound()
    pending: list[bytes] = []
    size = 0

    def open_line() -> int:
        return first_line + sum(part.count(b"\n") for part in pending)

    for chunk in chunks:
        first = bound.check(chunk, open_line)
        if size + len(chunk) < block_bytes or first < 0:
            pending.append(chunk)
            size += len(chunk)
            continue
        if len(chunk) < block_bytes:  # the block ends at the chunk's last line break: one copy
            end = chunk.rfind(b"\n") + 1
            block = b"".join([*pending, memoryview(chunk)[:end]])
            lines = block.count(b"\n")
            yield block, first_line, lines
            first_line += lines
            rest = chunk[end:]
            pending, size = ([rest], len(rest)) if rest else ([], 0)
            continue
        pending.append(chunk)
        data = b"".join(pending) if len(pending) > 1 else chunk
        at = 0
        while len(data) - at >= block_bytes:
            cut = data.rfind(b"\n", at, at + block_bytes) + 1
            if cut <= at:  # a line longer than a block: up to its end
                cut = data.find(b"\n", at + block_bytes) + 1
                if cut <= 0:
                    break
            block = data[at:cut]
            lines = block.count(b"\n")
            yield block, first_line, lines
            first_line += lines
            at = cut
        rest = data[at:]
        pending, size = ([rest], len(rest)) if rest else ([], 0)
    data = b"".join(pending)
    if data:
        yield data, first_line, data.count(b"\n") + (not data.endswith(b"\n"))


def read_jsonl_columnar(
    chunks: Iterable[bytes],
    *,
    batch_size: int = 10_000,
    block_bytes: int | None = None,
    doubles: Collection[str] = (),
    cancellation: Cancellation | None = None,
) -> Iterator[ArrowBatch | Batch]:
    """JSON lines as :class:`ArrowBatch` blocks parsed by pyarrow, where that is exact.

    pyarrow reads JSON in C++ over several threads, but it guesses and widens on its own terms, so
    a block is taken from it only when every column is plain: integers within int64, booleans,
    strings (a column it reads as timestamps is read again as strings), NULLs, and fractions
    whose column holds no JSON integer (or goes into a column of doubles, named in ``doubles``, where
    ``5`` and ``5.0`` load alike). Any other block — nested values, a column of mixed kinds,
    integers beyond int64, a line pyarrow refuses — is read by :func:`read_jsonl`, which gives the
    same rows and values and names a bad line; the sink types both alike. Memory: a few blocks (a
    line longer than :data:`limits.JSON_LINE` is refused). With ``cancellation``, the stream is
    read and cut into blocks on a thread of its own (:func:`read_ahead`) while this one parses.
    """
    as_strings: dict[str, Any] = {}  # columns pyarrow would read as timestamps
    cut = _split_blocks(chunks, block_bytes or JSONL_BLOCK_BYTES)
    ahead = contextlib.nullcontext(cut) if cancellation is None else read_ahead(cut, cancellation, depth=1)
    with ahead as blocks:
        for block, first_line, lines in blocks:
            read = _arrow_jsonl_block(block, lines, as_strings, doubles)
            if read is None:
                yield from read_jsonl([block], batch_size=batch_size, first_line=first_line)
            elif read[0].num_rows:
                yield ArrowBatch(list(read[0].column_names), read[0], json_numbers=read[1])


def _arrow_jsonl_block(
    block: bytes, lines: int, as_strings: dict[str, Any], doubles: Collection[str] = ()
) -> tuple[Any, dict[str, int]] | None:
    """One block of ``lines`` lines as an Arrow table of plain columns, with its
    :attr:`ArrowBatch.json_numbers`, or ``None`` when only Python can read it exactly.

    pyarrow reads a stream of values, not lines: two objects in one line, one over two lines, or
    a ``null`` would be rows where the row reader refuses the line. So a block is taken only with
    no stray value (:func:`_stray_values`, looked for before pyarrow sees the block) and one row
    per line (a blank line, which both skip, sends its block to rows)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.json as pj

    def parse() -> Any:
        schema = pa.schema(list(as_strings.values())) if as_strings else None
        options = pj.ParseOptions(explicit_schema=schema, newlines_in_values=False)
        return pj.read_json(pa.BufferReader(block), parse_options=options)

    if _stray_values(block):
        return None
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
    if table.num_rows != lines:
        return None
    numbers: dict[str, int] = {}
    for i, (name, f) in enumerate(zip(table.column_names, table.schema, strict=True)):
        if str(f.type) not in _PLAIN_ARROW_JSON:
            return None
        column = table.column(name)
        if name in as_strings and column.null_count == len(column):
            return None  # absent or NULL: pyarrow adds an explicit column to every block
        if pa.types.is_floating(f.type) and column.null_count < len(column):
            # an integer among fractions reads as a float: its text (and past 2**53 its value)
            # would change, unless a column of doubles takes it (PostgreSQL reads 2**53 + 1 as
            # pyarrow does: to the nearest double); fractions alone are the floats Python reads
            if not pc.all(pc.is_finite(column)).as_py():
                return None
            whole = name not in doubles and pc.any(pc.equal(pc.floor(column), column)).as_py()
            if whole and _has_int_token(block, name):
                written = _numbers_as_written(block, name, column)
                if written is None:
                    return None
                table = table.set_column(i, name, written[0])
                numbers[name] = written[1]
    return table, numbers


def _numbers_as_written(block: bytes, key: str, column: Any) -> tuple[Any, int] | None:
    """The float ``column`` of ``key``, whose block writes some whole numbers as JSON integers (as
    JavaScript does: ``2100`` beside ``0.5``), as the text of each value as JSON wrote it: an
    integer's digits, a fraction's ``repr``; with the largest integer magnitude. ``None`` when an
    integer reaches 2**53, where the double pyarrow read may have lost its digits.

    Row ``i`` is line ``i`` (the block has as many rows as lines), so each integer found by
    :func:`_int_tokens` is placed by the line breaks before it."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    found, line, done = [False] * len(column), 0, 0
    for at in sorted(_int_tokens(block, key)):
        line += block.count(b"\n", done, at)
        done = at
        found[line] = True
    is_int = pa.array(found, pa.bool_())
    largest = pc.max(pc.abs(pc.filter(column, is_int))).as_py()
    if largest is None or largest >= 2**53:
        return None
    digits = pc.cast(pc.cast(column, pa.int64(), safe=False), pa.string())
    return pc.if_else(is_int, digits, float_text(column)), int(largest)


#: a top-level ``null`` first in the block (a BOM and blank lines before it): pyarrow 26 crashes
#: the process on a ``null`` that comes first in what it parses
_NULL_FIRST = re.compile(rb"(?:\xef\xbb\xbf)?[ \t\r\n]*null")
#: RE2 patterns (two: as one alternation RE2 takes ten times as long) of a value after an object
#: in one line, and of a ``null`` starting a line (which a thread of pyarrow's may parse first)
_STRAY = (r"\}[ \t\r]*(?:\{|null)", r"\n[ \t\r]*null")


def _stray_values(block: bytes) -> bool:
    """Whether a line of ``block`` may hold a value that pyarrow would take for a row where the
    row reader refuses the line: an object or ``null`` after an object, or a ``null`` line. A
    string may hold the same characters; then rows decide."""
    return bool(_NULL_FIRST.match(block)) or any(re2_search(block, pattern) for pattern in _STRAY)


def _int_token_patterns(key: str) -> list[re.Pattern[bytes]]:
    """``"key": 12,`` (or ``}``): ``key`` given a JSON integer, in each way JSON spells the key.

    A key spelled with ``\\u`` escapes where plain characters would do is not recognised."""
    spellings = {json.dumps(key, ensure_ascii=False).encode(), json.dumps(key).encode()}
    return [re.compile(re.escape(s) + rb"\s*:\s*-?(?:0|[1-9][0-9]*)\s*[,}]") for s in spellings]


def _has_int_token(block: bytes, key: str) -> bool:
    """Whether some line of ``block`` gives ``key`` a JSON integer."""
    return any(pattern.search(block) for pattern in _int_token_patterns(key))


def _int_tokens(block: bytes, key: str) -> Iterator[int]:
    """Where in ``block`` a line gives ``key`` a JSON integer (a plain block: no nested value, so
    each is the line's own ``key``)."""
    for pattern in _int_token_patterns(key):
        yield from (found.start() for found in pattern.finditer(block))


#: uncompressed Parquet bytes per columnar batch (its rows by the file's own bytes per row)
PARQUET_BATCH_BYTES = 1 << 20
#: bytes of CSV parsed per pyarrow block
CSV_BLOCK_BYTES = 8 << 20
_BOM = b"\xef\xbb\xbf"


def _csv_blocks(chunks: Iterable[bytes], block_bytes: int) -> Iterator[tuple[bytes, int]]:
    """The stream cut into blocks of about ``block_bytes`` that end where a record ends (a line
    break after an even number of quotes), each with the number of its first line. A record longer
    than :data:`limits.JSON_LINE` (an unclosed quote runs into it) is refused."""
    from airflow_provider_exports.utils import limits

    pending: list[bytes] = []
    size, line = 0, 1
    for chunk in chunks:
        pending.append(chunk)
        size += len(chunk)
        if size < block_bytes:
            continue
        data = b"".join(pending)
        cut = _last_record_end(data)
        if cut <= 0:
            if len(data) > block_bytes + limits.JSON_LINE.value:
                raise limits.JSON_LINE.exceeded(
                    f"CSV line {line}",
                    f"no record ends in {len(data):,} bytes (a quote opened and never closed?)",
                )
            pending, size = [data], len(data)
            continue
        yield data[:cut], line
        line += data.count(b"\n", 0, cut)
        rest = data[cut:]
        pending, size = ([rest], len(rest)) if rest else ([], 0)
    data = b"".join(pending)
    if data:
        yield data, line


def _last_record_end(data: bytes) -> int:
    """Just after the last line break of ``data`` (which starts a record) outside quotes, or 0."""
    brk = b"\n" if b"\n" in data else b"\r"  # \r alone ends lines only in old Mac files
    if b'"' not in data:
        return data.rfind(brk) + 1
    quotes = data.count(b'"')
    end = len(data)
    for _ in range(64):  # a quoted field with line breaks in it is rare: a few tries, then more data
        end = data.rfind(brk, 0, end)
        if end < 0:
            return 0
        if (quotes - data.count(b'"', end)) % 2 == 0:
            return end + 1
    return 0


def read_csv_columnar(
    chunks: Iterable[bytes],
    *,
    delimiter: str = ",",
    header: bool = True,
    columns: list[str] | None = None,
    block_bytes: int | None = None,
    settled: Callable[[], Collection[str]] | None = None,
) -> Iterator[ArrowBatch | Batch]:
    """CSV as :class:`ArrowBatch` blocks of text (``from_text``), parsed by pyarrow as
    :func:`~airflow_provider_exports.transfers.engine.formats.read_csv` reads it: RFC 4180
    quoting, UTF-8 with or without BOM (the file's first bytes), empty lines skipped, an empty
    field NULL (quoted or not).
    A block pyarrow refuses (a ragged row, text that is not UTF-8) is read by ``read_csv``, which
    names the line.

    ``settled`` (asked before each block) names the columns whose values the caller need not see
    (their type is settled); a block that ``COPY`` reads exactly as these rules do
    (:func:`_copy_ready`) then comes with its bytes (``raw``) and only the other columns parsed."""
    import pyarrow as pa
    import pyarrow.csv as pcsv

    from airflow_provider_exports.transfers.engine.sql.csv_passthrough import first_break, header_names

    if not header and not columns:
        raise ExportConfigError("csv_columns", "a CSV file without a header row needs its column names")
    names: list[str] | None = list(columns) if columns else None
    parse = pcsv.ParseOptions(delimiter=delimiter, newlines_in_values=True, ignore_empty_lines=True)
    first = True
    for block, first_line in _csv_blocks(chunks, block_bytes or CSV_BLOCK_BYTES):
        if first:
            first = False
            block = block.removeprefix(_BOM)
            if header:
                end = first_break(block)
                head, block = (block, b"") if end < 0 else (block[: end + 1], block[end + 1 :])
                names = names or header_names("the CSV file", head, delimiter)
                first_line += head.count(b"\n")
        if not block or (block.isspace() and not block.strip(b"\r\n")):  # blank lines only
            continue
        assert names is not None
        # pyarrow and read_csv drop a BOM that starts what they read; past the file's start it is
        # the first value's, so one more goes before it (rare: the block goes parsed, not raw)
        kept_bom = block.startswith(_BOM)
        parsed = _BOM + block if kept_bom else block
        ready = _copy_ready(block) if settled is not None and delimiter == "," and not kept_bom else None
        if ready is not None:
            assert settled is not None
            known = settled()
            wanted = [n for n in names if n not in known] or names[:1]  # one at least: pyarrow counts the rows
            try:
                table = pcsv.read_csv(
                    pa.BufferReader(ready),
                    read_options=pcsv.ReadOptions(column_names=names),
                    parse_options=parse,
                    convert_options=pcsv.ConvertOptions(
                        include_columns=wanted,
                        column_types={n: pa.string() for n in wanted},
                        null_values=[""],
                        strings_can_be_null=True,
                    ),
                )
            except pa.ArrowInvalid:
                table = None  # read again in full below, which names the bad line
            if table is not None and table.num_rows == ready.count(b"\n"):
                yield ArrowBatch(list(names), table, from_text=True, raw=ready)
                continue
        convert = pcsv.ConvertOptions(
            column_types={n: pa.string() for n in names},
            null_values=[""],
            strings_can_be_null=True,
            quoted_strings_can_be_null=True,
        )
        try:
            table = pcsv.read_csv(
                pa.BufferReader(parsed),
                read_options=pcsv.ReadOptions(column_names=names),
                parse_options=parse,
                convert_options=convert,
            )
        except (pa.ArrowInvalid, UnicodeDecodeError):
            yield from read_csv(
                [parsed], delimiter=delimiter, header=False, columns=names, first_line=first_line
            )
        else:
            if table.num_rows:
                yield ArrowBatch(list(names), table, from_text=True)


def _copy_ready(block: bytes) -> bytes | None:
    """``block`` with ``\\n`` line breaks (``\\r\\n`` ones made so; the blocks of one ``COPY`` must
    agree) when ``COPY ... (FORMAT csv)`` reads it as the CSV readers do: no quote, no blank line,
    no record ``\\.`` (the end of COPY data to PostgreSQL 17 and older), UTF-8; else ``None``."""
    if b'"' in block:
        return None
    if b"\r" in block:
        block = block.replace(b"\r\n", b"\n")
        if b"\r" in block:
            return None  # a bare \r (an old Mac line break): parsed whole
    if not block.endswith(b"\n"):
        block += b"\n"
    if b"\n\n" in block or block.startswith((b"\n", b"\\.\n")):
        return None
    if b"\n\\.\n" in block:
        return None
    if not block.isascii():
        try:
            block.decode("utf-8")
        except UnicodeDecodeError:
            return None
    return block


def read_parquet_columnar(
    chunks: Iterable[bytes], *, batch_size: int | None = None, flatten_structs: bool = False
) -> Iterator[ArrowBatch]:
    """Parquet as :class:`ArrowBatch` record batches (spooled as
    :func:`~airflow_provider_exports.transfers.engine.formats.read_parquet` does): the
    same columns, types and values, nested ones as JSON text written column-wise. Batches of
    ``batch_size`` rows, by default of about :data:`PARQUET_BATCH_BYTES`."""
    import pyarrow as pa

    by_bytes = None if batch_size else PARQUET_BATCH_BYTES
    batches = parquet_batches(chunks, batch_size or 65_536, flatten_structs, batch_bytes=by_bytes)
    for names, types, nested, record_batch in batches:
        columns = [arrow_json_text(col) if i in nested else col for i, col in enumerate(record_batch.columns)]
        yield ArrowBatch(names, pa.Table.from_arrays(columns, names=names), types)
        # what a batch's JSON text took goes back to the system: memory stays flat in file size
        pa.default_memory_pool().release_unused()


def read_columnar(
    chunks: Iterable[bytes],
    file_format: str,
    *,
    batch_size: int = 10_000,
    flatten_structs: bool = False,
    csv_delimiter: str = ",",
    csv_header: bool = True,
    csv_columns: list[str] | None = None,
    csv_settled: Callable[[], Collection[str]] | None = None,
    fixed_types: Mapping[str, str] | None = None,
    cancellation: Cancellation | None = None,
) -> Iterator[ArrowBatch | Batch]:
    """Rows of one CSV, JSON-lines or Parquet file as :class:`ArrowBatch` blocks where pyarrow reads
    them exactly (gzip, recognised by its magic bytes, undone first); ``csv_settled`` as
    :func:`read_csv_columnar`'s ``settled``; ``fixed_types``: the SQL types of the columns the rows
    go into that no value retypes (the JSON lines' ``doubles`` are those of ``DOUBLE PRECISION``);
    with ``cancellation``, JSON lines are inflated and cut into blocks on a thread of their own
    (CSV is not: measured, it gained nothing); the other arguments as the row readers'."""
    data = maybe_gunzip(chunks)
    if file_format == "csv":
        return read_csv_columnar(
            data, delimiter=csv_delimiter, header=csv_header, columns=csv_columns, settled=csv_settled
        )
    if file_format == "jsonl":
        doubles = {c for c, t in (fixed_types or {}).items() if " ".join(t.lower().split()) in _DOUBLE}
        return read_jsonl_columnar(data, batch_size=batch_size, doubles=doubles, cancellation=cancellation)
    if file_format == "parquet":
        return read_parquet_columnar(data, flatten_structs=flatten_structs)
    raise ExportConfigError("file_format", f"{file_format!r} has no columnar reader (csv, jsonl, parquet)")


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
