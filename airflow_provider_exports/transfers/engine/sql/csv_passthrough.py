"""The CSV pass-through: a CSV file's bytes straight into a table's bulk path (PostgreSQL ``COPY ...
(FORMAT csv)``), unparsed, its records counted on the way (:class:`.csv_records.CsvRecords`, which
also quotes a ``\\.`` line COPY would stop at). Only the header row is parsed here, to name the
columns; a UTF-8 byte order mark is dropped (COPY would take it for data).
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING

from airflow_provider_exports.exceptions import ExportConfigError, TransferError
from airflow_provider_exports.transfers.engine.formats import Batch
from airflow_provider_exports.transfers.engine.sql.csv_records import CsvRecords, first_break
from airflow_provider_exports.transfers.engine.sql.generic import Written
from airflow_provider_exports.transfers.engine.streams import maybe_gunzip
from airflow_provider_exports.utils import limits

if TYPE_CHECKING:
    from airflow_provider_exports.transfers.engine.cancellation import Cancellation
    from airflow_provider_exports.transfers.engine.sql.postgres import PostgresDialect

_BOM = b"\xef\xbb\xbf"


def copy_csv_file(
    dialect: PostgresDialect,
    table: str,
    name: str,
    chunks: Iterable[bytes],
    *,
    delimiter: str,
    header: bool,
    columns: Sequence[str] | None,
    check_columns: Callable[[Batch], None],
    cancellation: Cancellation,
) -> Written:
    """The CSV file ``name`` (gzip undone) into ``table`` through ``COPY``: the rows it read, and
    those the database says it took. ``columns`` name the fields (else the header row does);
    ``check_columns`` refuses names the table does not have, before any row goes."""
    records = CsvRecords()
    data = _without_bom(iter(maybe_gunzip(chunks, name=name)))
    head, ended = _read_head(name, records, data, header)
    if ended and not head.strip():
        return Written(0, 0)
    names = columns or (_header(name, head, delimiter) if header else None)
    if names is None:
        raise ExportConfigError("csv_columns", "a CSV file without a header row needs its column names")
    check_columns(Batch(list(names), []))

    def stream() -> Iterator[bytes]:
        cancellation.check()
        yield head
        if ended:
            return
        for chunk in data:
            cancellation.check()
            if counted := records.feed(chunk):
                yield counted
        yield records.close()

    cols = ", ".join(dialect.quote(c) for c in names)
    options = [
        "FORMAT csv",
        f"HEADER {'true' if header else 'false'}",
        "DELIMITER '" + delimiter.replace("'", "''") + "'",
        f"FORCE_NULL ({cols})",  # a quoted empty field is NULL too, as in the other paths
        "ENCODING 'UTF8'",
    ]
    cur = dialect.conn.cursor()
    try:
        sql = f"COPY {dialect.qualified(table)} ({cols}) FROM STDIN WITH ({', '.join(options)})"
        dialect.copy_in(cur, sql, stream())
        taken = dialect.rows_written(cur)
    finally:
        cur.close()
    return Written(records.records - (1 if header and records.records else 0), taken)


def _read_head(name: str, records: CsvRecords, data: Iterator[bytes], header: bool) -> tuple[bytes, bool]:
    """The stream's first bytes, counted: past its first byte that is not white space and, with a
    header, to the end of the header row; at most ``max_csv_header_bytes`` of them, joined once.
    And whether the stream ended there (then ``records`` is closed and the head is all of it)."""
    parts: list[bytes] = []
    size, bound, blank = 0, limits.CSV_HEADER.value, True
    for chunk in data:
        parts.append(records.feed(chunk))
        size += len(parts[-1])
        blank = blank and not parts[-1].strip()
        if not blank and (records.records or not header):
            return b"".join(parts), False
        if size > bound:
            raise limits.CSV_HEADER.exceeded(
                f"{name}: its CSV header row", f"no end of the row in its first {size:,} bytes"
            )
    parts.append(records.close())
    return b"".join(parts), True


def _header(name: str, head: bytes, delimiter: str) -> list[str]:
    """The column names of the header row at the start of ``head``."""
    end = first_break(head)
    row = head if end < 0 else head[:end]
    if len(row) > limits.CSV_HEADER.value:
        raise limits.CSV_HEADER.exceeded(f"{name}: its CSV header row", f"{len(row):,} bytes")
    try:
        fields = next(csv.reader([row.decode("utf-8")], delimiter=delimiter, strict=True), None)
    except (csv.Error, UnicodeDecodeError) as exc:
        raise TransferError(f"{name}: the CSV header row could not be read ({exc})") from None
    if not fields:
        raise TransferError(f"{name}: the CSV header row is empty")
    return fields


def _without_bom(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """The stream without a UTF-8 byte order mark at its start (COPY would take it for data)."""
    first = b""
    for chunk in chunks:
        first += chunk
        if len(first) >= len(_BOM) or not _BOM.startswith(first):
            break
    yield first.removeprefix(_BOM)
    yield from chunks
