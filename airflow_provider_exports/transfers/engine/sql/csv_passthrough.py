"""The CSV pass-through: a CSV file's bytes straight into PostgreSQL ``COPY ... (FORMAT csv)``,
unparsed (only the header row is parsed, to name the columns; a UTF-8 byte order mark is dropped,
and empty lines outside quotes, which the CSV readers skip: COPY would take them for data).

:class:`CsvRecords` counts the records as the chunks go by, as ``COPY`` splits them, without
parsing a field, so the sink can check that the table took every one of them. COPY's quote is
``"`` and its escape is the quote doubled, so a line break ends a record exactly when an even number
of ``"`` came before it in the stream: the quote parity is all that is carried from one chunk to
the next. The line break is COPY's too: the first one outside quotes decides it (``\\n``,
``\\r\\n``, or ``\\r`` alone), and only that one ends records afterwards. A break of another kind
outside quotes (COPY refuses it, the readers take it for one), or a quote where RFC 4180 puts none
(COPY would read it otherwise: :mod:`.csv_quotes`), raises :class:`ReadFileAgain`, and the sink
reads that file instead. A last record without a line break counts; the header is a record.

Constant columns (the name of the file each row came from, its attributes) go through the same
``COPY``: their values are added as the last fields of every record, just before its line break
(``value,"constant"\n``), by a ``replace`` in C wherever no line break of the chunk is inside
quotes (else by a split on quotes); the header row gets them too, and COPY skips it.

One record is rewritten on the way: ``\\.`` alone, which PostgreSQL 17 and older take for the end of
the data (the rows after it were silently not loaded). It goes out as ``"\\."``, the same CSV value,
which no COPY stops at. A ``\\`` or ``\\.`` that ends a chunk at the start of a record is held back
until the next byte says which it is.

Speed matters (this is the fastest load path): a chunk costs a ``translate`` (keeping only quotes
and line breaks) and a few ``count``/``replace`` calls in C, and a look for ``\\`` (``memchr``); the
byte-by-byte work is only for the first record and around a ``\\.``.
"""

from __future__ import annotations

import contextlib
import csv
import itertools
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow_provider_exports.exceptions import ExportConfigError, ReadFileAgain, TransferError
from airflow_provider_exports.transfers.engine.sql.csv_quotes import QuotePlacement
from airflow_provider_exports.transfers.engine.sql.generic import Written
from airflow_provider_exports.transfers.engine.streams import maybe_gunzip
from airflow_provider_exports.utils import limits

if TYPE_CHECKING:
    from airflow_provider_exports.transfers.engine.cancellation import Cancellation
    from airflow_provider_exports.transfers.engine.sql.postgres import PostgresDialect

_BOM = b"\xef\xbb\xbf"
_QUOTE = b'"'
_BREAKS = re.compile(rb"[\r\n]")
_ALL_BYTES = bytes(range(256))
#: what ``translate`` deletes to keep only quotes and line breaks (of one kind, or both)
_DELETE_BUT = {eol: _ALL_BYTES.translate(None, _QUOTE + eol) for eol in (b"\n", b"\r", b"\r\n")}
_MARKER = b"\\."
_OTHER_BREAK = (
    "a line break of another kind than its first (COPY refuses it: the CSV reader takes each \\n, \\r\\n "
    "and \\r for one)"
)
#: a line break of another kind, in a stream of \n, of \r, of \r\n
_LONE_CR, _LONE_LF, _NOT_CRLF = re.compile(rb"\r"), re.compile(rb"\n"), re.compile(rb"\r(?!\n)|(?<!\r)\n")
_QUOTED_MARKER = b'"\\."'


class Unread:
    """A file the pass-through did not load (its columns need their values read): its bytes, gzip
    undone, for the sink's reader."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self.chunks = chunks


def copy_csv_file(
    dialect: PostgresDialect,
    table: str,
    name: str,
    chunks: Iterable[bytes],
    *,
    delimiter: str,
    header: bool,
    columns: Sequence[str] | None,
    constants: Mapping[str, Any],
    check_columns: Callable[[Sequence[str]], bool],
    cancellation: Cancellation,
    read_not_copied: set[str],
) -> Written | Unread:
    """The CSV file ``name`` (gzip undone) into ``table`` through ``COPY``: the rows it read, and
    those the database says it took. ``columns`` name the fields (else the header row does);
    ``constants`` are columns with one value for every row (``None``: NULL); ``check_columns``
    refuses the file's names before any row goes, or says (``False``) that the file must be read
    instead: it is then returned :class:`Unread`. A quote that ``COPY`` would read otherwise than
    the readers (:mod:`.csv_quotes`) adds ``name`` to ``read_not_copied`` and raises
    :class:`ReadFileAgain`: the caller rolls the file back, and reads it when it comes again."""
    records = CsvRecords(delimiter)
    data = _without_blank_lines(_without_bom(iter(maybe_gunzip(chunks, name=name))))
    with _read_if_quotes_misplaced(name, read_not_copied):
        head, ended = _read_head(name, records, data, header)
    if ended and not head.strip():
        return Written(0, 0)
    names = columns or (header_names(name, head, delimiter) if header else None)
    if names is None:
        raise ExportConfigError("csv_columns", "a CSV file without a header row needs its column names")
    if not check_columns(names):
        return Unread(itertools.chain([head], data))
    if constants:
        records.suffix = b"".join(
            delimiter.encode() + (b"" if v is None else _QUOTE + str(v).encode().replace(_QUOTE, b'""') + _QUOTE)
            for v in constants.values()
        )
        head = records.suffixed(head, 0, ended=ended)

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
    every = ", ".join(dialect.quote(c) for c in [*names, *constants])
    options = [
        "FORMAT csv",
        f"HEADER {'true' if header else 'false'}",
        "DELIMITER '" + delimiter.replace("'", "''") + "'",
        f"FORCE_NULL ({cols})",  # a quoted empty field is NULL too, as in the other paths
        "ENCODING 'UTF8'",
    ]
    cur = dialect.conn.cursor()
    try:
        sql = f"COPY {dialect.qualified(table)} ({every}) FROM STDIN WITH ({', '.join(options)})"
        try:
            with _read_if_quotes_misplaced(name, read_not_copied):
                dialect.copy_in(cur, sql, stream())
        except Exception as exc:
            refused = dialect.refused_value(exc, names)
            if refused is None:
                raise
            raise refused.after(-1 if header else 0) from None  # COPY's line 1 is the header
        taken = dialect.rows_written(cur)
    finally:
        cur.close()
    return Written(records.records - (1 if header and records.records else 0), taken)


@contextlib.contextmanager
def _read_if_quotes_misplaced(name: str, read_not_copied: set[str]) -> Iterator[None]:
    """Where :class:`CsvRecords` found a quote that ``COPY`` would read otherwise: ``name`` goes
    into ``read_not_copied`` (the sink reads it when it comes again), and the error names it."""
    try:
        yield
    except ReadFileAgain as exc:
        read_not_copied.add(name)
        raise ReadFileAgain(f"{name}: {exc}; the file is read by the CSV reader instead") from None


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


def header_names(name: str, head: bytes, delimiter: str) -> list[str]:
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


#: line breaks, two or more: ``\r\n`` is one break, never a ``\r`` and a ``\n``
_BREAK_RUN = re.compile(rb"(\r\n|\r(?!\n)|\n)(?:\r\n|\r(?!\n)|\n)+")
#: what starts an empty line, by the stream's line break (COPY refuses a bare break of another kind)
_EMPTY_LINE = {b"\n": re.compile(rb"\n\n"), b"\r\n": re.compile(rb"\n\r"), b"\r": re.compile(rb"\r\r")}
_ANY_EMPTY_LINE = re.compile(rb"\n[\r\n]|\r\r")


def _without_blank_lines(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """The stream without its empty lines outside quotes, which the CSV readers skip and COPY
    would not (a record of one empty field: refused, or a row of NULL in a table of one column).

    Outside quotes, a run of line breaks becomes its first one; a run that ends a chunk waits for
    the next, which may go on with it. Quoted fields go as they are, line breaks and all. Once the
    first line break says which it is, a chunk costs a look for two of them in a row and a count."""
    in_quote, held, empty_line = 0, b"", _ANY_EMPTY_LINE
    for chunk in chunks:
        chunk = held + chunk
        ends_in_quote = in_quote ^ (chunk.count(_QUOTE) & 1) if _QUOTE in chunk else in_quote
        kept = chunk if ends_in_quote else chunk.rstrip(b"\r\n")  # a \r may be half a \r\n
        chunk, held = kept, _run_kept(chunk[len(kept) :])
        if empty_line is _ANY_EMPTY_LINE and (at := first_break(chunk, in_quote)) >= 0 and at + 1 < len(chunk):
            eol = b"\r\n" if chunk[at : at + 2] == b"\r\n" else chunk[at : at + 1]
            empty_line = _EMPTY_LINE[eol]
        if empty_line.search(chunk):
            parts = chunk.split(_QUOTE)
            for i in range(in_quote, len(parts), 2):  # the parts outside quotes
                parts[i] = _BREAK_RUN.sub(rb"\1", parts[i])
            chunk = _QUOTE.join(parts)
        in_quote = ends_in_quote
        if chunk:
            yield chunk
    if held:
        yield _BREAK_RUN.sub(rb"\1", held)


def _run_kept(run: bytes) -> bytes:
    """What a run of line breaks that ends a chunk needs to keep (at most 3 bytes, however long the
    run: a file of nothing but line breaks is not held whole): its first break, which it becomes,
    and a last ``\\r``, which a ``\\n`` in the next chunk may join."""
    first = _BREAK_RUN.match(run)
    if first is None:
        return run
    return first.group(1) + (b"\r" if run.endswith(b"\r") else b"")


def first_break(data: bytes, in_quote: int = 0, breaks: re.Pattern[bytes] = _BREAKS, start: int = 0) -> int:
    """The offset of the first ``\\r`` or ``\\n`` (or match of ``breaks``) of ``data`` outside
    quotes, from ``start``, or -1.

    ``in_quote``: 1 when ``data`` starts inside a quoted field. A loop over the line breaks inside
    quotes before that one: call it where there is one (:func:`_outside_quotes`), or on bounded data.
    """
    parity, done = in_quote, 0
    for found in breaks.finditer(data, start):
        at = found.start()
        parity ^= data.count(_QUOTE, done, at) & 1
        done = at
        if not parity:
            return at
    return -1


def _outside_quotes(kept: bytes, in_quote: int) -> list[bytes]:
    """The line breaks of ``kept`` (a chunk's quotes and line breaks only) outside quotes, in runs.

    A pair of adjacent quotes changes no line break's parity: without them, what is left of the
    quotes encloses quoted fields holding a line break, rare enough to split on.
    """
    if _QUOTE in kept:
        kept = kept.replace(b'""', b"")
        if _QUOTE in kept:
            return kept.split(_QUOTE)[in_quote::2]
    return [] if in_quote else [kept]


class CsvRecords:
    """Count the records of one CSV stream (see the module docstring): :meth:`feed` every chunk,
    send on what it returns, then :meth:`close` and send that too; :attr:`records` is the count.

    A quote that RFC 4180 would not put where it is (:mod:`.csv_quotes`) raises
    :class:`ReadFileAgain`: ``COPY`` would read that file otherwise than the readers do."""

    def __init__(self, delimiter: str = ",") -> None:
        self._quotes = QuotePlacement(delimiter)
        #: the records that ended so far (all of them once closed)
        self.records = 0
        #: fields added at the end of every record fed from now on (:meth:`suffixed`)
        self.suffix = b""
        self._in_quote = 0  # 1 while the stream is inside a quoted field
        self._at_start = True  # the next byte starts a record
        self._eol: bytes | None = None  # the line break, once the first one outside quotes said it
        self._crlf = False  # records end with \r\n (then ``_eol`` is \n)
        self._held = b""
        self._cr_at_end = False  # a \r\n stream's chunk ended with a \r outside quotes

    def feed(self, chunk: bytes) -> bytes:
        """Count ``chunk``; what to send on in its place (a held byte or two may come later)."""
        if (misplaced := self._quotes.misplaced(chunk)) >= 0:
            self._refuse(
                chunk[:misplaced],
                "a '\"' inside a field that does not start with one (not RFC 4180): COPY would take it for a "
                "quote, the CSV reader keeps it in the value",
            )
        if self._held:
            chunk, self._held = self._held + chunk, b""
        if self._eol is None:
            chunk = self._learn_eol(chunk)
        if b"\\" in chunk:
            chunk = self._quote_markers(chunk)
        kept = chunk.translate(None, _DELETE_BUT[b"\r\n"])  # its quotes and line breaks: small
        if self._eol is not None and (other := self._other_break(chunk, kept)) >= 0:
            self._refuse(chunk[:other], _OTHER_BREAK)
        in_quote = self._in_quote
        ended, breaks = self._count(chunk, kept)
        if self.suffix and self._eol is not None:
            return self._suffixed(chunk, in_quote, breaks if ended == breaks else None)
        return chunk

    def _refuse(self, before: bytes, what: str) -> None:
        """Raise :class:`ReadFileAgain` for ``what`` COPY would read otherwise than the readers, after
        ``before`` (the stream's next bytes), naming its record."""
        before = self._held + before
        if self._eol is None:
            before = self._learn_eol(before)
        self._count(before)
        raise ReadFileAgain(f"its record {self.records + 1} (a header row is record 1) has {what}")

    def _other_break(self, chunk: bytes, kept: bytes) -> int:
        """The offset in ``chunk`` of its first line break outside quotes that is not the stream's
        own (0 for a ``\\r`` that ended the chunk before and turns out bare), or -1. ``kept``: the
        chunk's quotes and line breaks, where a clean chunk is told in a look or three counts."""
        cr_before, self._cr_at_end, start = self._cr_at_end, False, 0
        if not self._crlf:
            if (b"\r" if self._eol == b"\n" else b"\n") not in kept:
                return -1
            other = _LONE_CR if self._eol == b"\n" else _LONE_LF
        else:
            if cr_before and not chunk.startswith(b"\n") and not self._in_quote:
                return 0
            start = 1 if cr_before and chunk.startswith(b"\n") else 0  # the rest of a \r\n
            end = len(chunk) - 1 if chunk.endswith(b"\r") else len(chunk)
            self._cr_at_end = end < len(chunk)  # the next byte says whether that \r is bare
            kept = kept[start : len(kept) - (len(chunk) - end)]
            pairs = kept.count(b"\r\n")
            if kept.count(b"\r") == pairs and kept.count(b"\n") == pairs:
                return -1
            chunk = chunk[:end]
            other = _NOT_CRLF
        return first_break(chunk, self._in_quote, other, start)

    def suffixed(self, data: bytes, in_quote: int, *, ended: bool = False) -> bytes:
        """``data``, already fed (and, when the stream ``ended`` with it, closed), with
        :attr:`suffix` at the end of each of its records; ``in_quote``: 1 when it starts inside quotes."""
        if self._eol is not None:
            data = self._suffixed(data, in_quote, None)
        if ended and data and not data.endswith((b"\n", b"\r")):
            data += self.suffix  # a last record without a line break
        return data

    def _suffixed(self, data: bytes, in_quote: int, breaks: int | None) -> bytes:
        """``data`` with :attr:`suffix` before each line break outside quotes (``breaks``: the
        number of them, when they are all its line breaks)."""
        eol, suffix = self._eol, self.suffix
        assert eol is not None
        at = b"\r\n" if self._crlf else eol
        if self._crlf and breaks is not None and data.count(b"\r") == breaks:
            at = b"\r"  # each \r starts a \r\n outside quotes: one byte is found faster than two
        if breaks is not None or (not in_quote and _QUOTE not in data):
            out = data.replace(at, suffix + at)
        else:
            parts = data.split(_QUOTE)
            for i in range(in_quote, len(parts), 2):  # the parts outside quotes
                parts[i] = parts[i].replace(at, suffix + at)
            out = _QUOTE.join(parts)
        if at == b"\r\n" and out.endswith(b"\r") and not self._in_quote:
            out = out[:-1] + suffix + b"\r"  # its \n comes next (a bare \r is refused by COPY anyway)
        return out

    def close(self) -> bytes:
        """The end of the stream: what is still held, to send last; the last record is counted."""
        if self._cr_at_end and not self._in_quote:  # a \r\n stream ends with a bare \r: COPY refuses it
            self._refuse(b"", _OTHER_BREAK)
        tail, self._held = self._held, b""
        if tail == b"\r" and self._eol is None:  # the first line break, at the very end
            self._eol, self.records, self._at_start = b"\r", self.records + 1, True
            return self.suffix + tail
        if tail == _MARKER:
            tail = _QUOTED_MARKER
        if tail or not self._at_start:
            self.records += 1
            tail += self.suffix  # the last record, without a line break
        self._at_start = True
        return tail

    def _learn_eol(self, chunk: bytes) -> bytes:
        """Take the line break from the first one outside quotes, as COPY does; a ``\\r`` that ends
        the chunk is held back (the next byte says whether it is ``\\r\\n``)."""
        if not any(_outside_quotes(chunk.translate(None, _DELETE_BUT[b"\r\n"]), self._in_quote)):
            return chunk  # still inside the first record
        at = first_break(chunk, self._in_quote)
        if chunk[at : at + 1] == b"\n" or chunk[at + 1 : at + 2] == b"\n":
            self._eol, self._crlf = b"\n", chunk[at : at + 1] == b"\r"
        elif at + 1 < len(chunk):
            self._eol = b"\r"
        else:
            self._held = b"\r"
            return chunk[:-1]
        return chunk

    def _quote_markers(self, chunk: bytes) -> bytes:
        """``chunk`` with every record that is ``\\.`` alone written ``"\\."``; a ``\\`` or ``\\.``
        that ends it at the start of a record is held back."""
        starts = [0] if self._at_start else []
        eol = self._eol
        if eol is not None:  # before the first line break, only the stream's start is a record's
            at = chunk.find(eol + _MARKER)
            while at >= 0:
                starts.append(at + 1)
                at = chunk.find(eol + _MARKER, at + 2)
            if chunk.endswith(eol + b"\\"):
                starts.append(len(chunk) - 1)
        out: list[bytes] = []
        parity, done, sent = self._in_quote, 0, 0
        for start in starts:
            parity ^= chunk.count(_QUOTE, done, start) & 1
            done = start
            head = chunk[start : start + 2]
            if parity or head not in (b"\\", _MARKER):
                continue
            # the byte after it: in this chunk, or a held \r (the first line break), or yet to come
            follows = chunk[start + len(head) : start + len(head) + 1] or self._held
            if not follows:
                self._held = chunk[start:]
                out.append(chunk[sent:start])
                return b"".join(out)
            if head == _MARKER and follows in (b"\r", b"\n"):
                out += (chunk[sent:start], _QUOTED_MARKER)
                sent = start + 2
        if not out:
            return chunk
        out.append(chunk[sent:])
        return b"".join(out)

    def _count(self, chunk: bytes, kept: bytes | None = None) -> tuple[int, int]:
        """Count the records that end in ``chunk``; how many, and how many ``eol`` bytes it has.
        ``kept``: its quotes and line breaks, when already found."""
        if not chunk:
            return 0, 0
        eol = self._eol
        if eol is None:  # no record has ended yet
            self._in_quote ^= chunk.count(_QUOTE) & 1
            self._at_start = False
            return 0, 0
        if kept is None:
            kept = chunk.translate(None, _DELETE_BUT[eol])
        else:  # only quotes and ``eol`` (another break is refused where it is outside quotes)
            kept = kept.replace(b"\n" if eol == b"\r" else b"\r", b"")
        ended = sum(map(len, _outside_quotes(kept, self._in_quote)))  # each byte is an ``eol``
        self.records += ended
        self._in_quote ^= kept.count(_QUOTE) & 1
        # held bytes start a record: until they come, the stream is at that record's start
        self._at_start = bool(self._held) or (not self._in_quote and chunk.endswith(eol))
        return ended, kept.count(eol)
