"""CSV records counted as COPY splits them, whatever the chunks; a ``\\.`` record quoted on the way."""

from __future__ import annotations

import csv
import io

import pytest

from airflow_provider_exports.exceptions import ReadFileAgain
from airflow_provider_exports.transfers.engine.sql.csv_passthrough import (
    CsvRecords,
    _without_blank_lines,
    first_break,
)

SAMPLES = {
    "plain": b"id,v\n1,a\n2,b\n",
    "crlf": b"id,v\r\n1,a\r\n2,b\r\n",
    "no final break": b"id,v\n1,a\n2,b",
    "quoted breaks": b'id,v\n1,"two\nlines"\n2,"cr\r\nlf"\n3,"q""uote\n"\n',
    "every field quoted": b'"id","v"\r\n"1","a,b"\r\n"2",""""\r\n',
    "empty fields": b"id,v\n,\n\n1,\n",
    "quoted header": b'"i\nd",v\n1,a\n',
    "backslashes": b'p\n\\\\server\\share\n"\n\\."\n\\.x\n',
    "cr only": b"id,v\r1,a\r2,b\r",
}


def counted(data: bytes, sizes: list[int]) -> tuple[int, bytes]:
    """The record count and the bytes sent on, feeding ``data`` in chunks of ``sizes`` (cycled)."""
    records, out, at, i = CsvRecords(), [], 0, 0
    while at < len(data):
        size = sizes[i % len(sizes)]
        out.append(records.feed(data[at : at + size]))
        at, i = at + size, i + 1
    out.append(records.close())
    return records.records, b"".join(out)


def python_csv(data: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode(), newline=""), strict=True))


@pytest.mark.parametrize("name", SAMPLES)
def test_records_are_counted_whatever_the_chunks(name):
    data = SAMPLES[name]
    expected = len(python_csv(data))

    # whole, byte by byte, and cut at every offset
    assert counted(data, [len(data)]) == (expected, data)
    assert counted(data, [1]) == (expected, data)
    for cut in range(1, len(data)):
        assert counted(data, [cut, len(data)]) == (expected, data), cut


@pytest.mark.parametrize("eol", [b"\n", b"\r\n", b"\r"], ids=["lf", "crlf", "cr"])
def test_a_record_that_is_only_backslash_dot_is_quoted_to_the_same_value(eol):
    data = eol.join([b"note", b"first", b"\\.", b"third", b'"in\n\\.\nquotes"', b"\\.x", b"\\."])
    quoted = eol.join([b"note", b"first", b'"\\."', b"third", b'"in\n\\.\nquotes"', b"\\.x", b'"\\."'])

    for cut in range(1, len(data)):
        assert counted(data, [cut, len(data)]) == (7, quoted), cut
    assert counted(data, [1]) == (7, quoted)
    assert python_csv(quoted) == python_csv(data)


def test_an_empty_stream_has_no_record():
    assert counted(b"", [1]) == (0, b"")
    assert counted(b"\n", [1]) == (1, b"\n")


def test_first_break_is_outside_quotes():
    assert first_break(b'"a\nb",c\r\nd') == 7
    assert first_break(b'a"\n') == -1
    assert first_break(b'b"\nc', in_quote=1) == 2


def suffixed(data: bytes, sizes: list[int], head_chunks: int, suffix: bytes) -> tuple[int, bytes]:
    """As :func:`counted`, with ``suffix`` added to every record the way the pass-through adds it:
    the first ``head_chunks`` chunks are fed without it (the header is read from them), then
    suffixed at once, then the rest fed with it."""
    records, out, at, i = CsvRecords(), [], 0, 0
    ended = False
    while at < len(data) or i == 0:
        if i == head_chunks:
            break
        size = sizes[i % len(sizes)]
        out.append(records.feed(data[at : at + size]))
        at, i = at + size, i + 1
    if at >= len(data):
        out.append(records.close())
        ended = True
    records.suffix = suffix
    out = [records.suffixed(b"".join(out), 0, ended=ended)]
    if not ended:
        while at < len(data):
            size = sizes[i % len(sizes)]
            out.append(records.feed(data[at : at + size]))
            at, i = at + size, i + 1
        out.append(records.close())
    return records.records, b"".join(out)


@pytest.mark.parametrize("name", SAMPLES)
def test_constant_fields_end_every_record_whatever_the_chunks(name):
    """``_source_file`` through COPY: each record gets the constant as its last field, inside the
    record, however the stream is cut and wherever the header ends."""
    data = SAMPLES[name]
    # COPY reads an empty line as one empty field
    expected = [(row or [""]) + ["a/b.csv", ""] for row in python_csv(data)]
    suffix = b',"a/b.csv",'  # a value, then NULL

    for head_chunks in (1, 2, 3):
        for cut in range(1, len(data) + 1):
            records, out = suffixed(data, [cut, len(data)], head_chunks, suffix)
            assert records == len(expected), (head_chunks, cut)
            assert python_csv(out) == expected, (head_chunks, cut, out)
        records, out = suffixed(data, [1], head_chunks, suffix)
        assert python_csv(out) == expected, (head_chunks, out)


@pytest.mark.parametrize(
    ("chunks", "sent"),
    [
        ([b"a,b\n1,2\n\n"], b"a,b\n1,2\n"),
        ([b"a,b\r\n1,2\r\n\r\n"], b"a,b\r\n1,2\r\n"),
        ([b"a,b\r\n1,2\r", b"\n\r\n3,4\r\n"], b"a,b\r\n1,2\r\n3,4\r\n"),  # a run over two chunks
        ([b"a\n1\n", b"\n", b"\n", b"2\n"], b"a\n1\n2\n"),
        ([b"a\r1\r\r2\r"], b"a\r1\r2\r"),
        ([b"a\r\n1\r\n"], b"a\r\n1\r\n"),  # \r\n is one break
        ([b'a\n"x\n\ny"\n\n2'], b'a\n"x\n\ny"\n2'),  # quoted breaks stay
        ([b'a\n"x', b'\n\ny"\n', b"\n2"], b'a\n"x\n\ny"\n2'),
        ([b'a\n"q""\n\n"\n\n'], b'a\n"q""\n\n"\n'),
    ],
)
def test_empty_lines_outside_quotes_are_dropped_as_the_csv_readers_skip_them(chunks, sent):
    assert b"".join(_without_blank_lines(iter(chunks))) == sent


@pytest.mark.parametrize("eol", [b"\n", b"\r\n", b"\r"], ids=["lf", "crlf", "cr"])
def test_a_run_of_line_breaks_is_held_in_a_few_bytes_however_long(eol):
    """A chunk that ends in line breaks keeps back only what the next may join: a million empty
    lines pass as one break, not held whole and joined again with every chunk."""
    from airflow_provider_exports.transfers.engine.sql.csv_passthrough import _run_kept

    assert all(len(_run_kept(run)) <= 3 for run in (eol * 5000, b"\r\n\r", b"\r\r", b"\n\r"))
    chunks = [b"a" + eol + b"1" + eol] + [eol * 5000] * 200 + [b"2" + eol]
    assert b"".join(_without_blank_lines(iter(chunks))) == b"a" + eol + b"1" + eol + b"2" + eol


@pytest.mark.parametrize("size", [1, 4, 100])
def test_a_quote_inside_an_unquoted_field_stops_the_stream_naming_its_record(size):
    """COPY would open a quoted section there; the readers keep the character: the file is read."""
    data = b'id,v\r\n1,"a\r\nb"\r\n2,5" screen\r\n3,c\r\n'
    with pytest.raises(ReadFileAgain, match=r"its record 3 \(a header row is record 1\) has a '\"' inside a field"):
        counted(data, [size])
    assert counted(data.replace(b'5" screen', b'"5"" screen"'), [size])[0] == 4


@pytest.mark.parametrize(
    ("data", "record"),
    [
        (b"id,v\n1,a\r\n2,b\n", 2),  # LF, then a CRLF
        (b"id,v\r\n1,a\r\n2,b\n3,c\r\n", 3),  # CRLF, then an LF
        (b"id,v\r\n1,a\r2,b\r\n", 2),  # CRLF, then a CR alone
        (b"id,v\r1,a\n", 2),  # CR, then an LF
        (b"id,v\r\n1,a\r", 2),  # CRLF, and a CR alone at the very end
    ],
)
def test_a_line_break_of_another_kind_stops_the_stream_naming_its_record(data, record):
    """COPY takes only the first kind of line break and refuses another; the readers take every kind."""
    for size in range(1, len(data) + 1):
        with pytest.raises(ReadFileAgain, match=rf"its record {record} .* has a line break of another kind"):
            counted(data, [size])


@pytest.mark.parametrize("name", SAMPLES)
def test_line_breaks_of_one_kind_or_inside_quotes_pass_whatever_the_chunks(name):
    sample = SAMPLES[name]
    at = first_break(sample)
    eol = b"\r\n" if sample[at : at + 2] == b"\r\n" else sample[at : at + 1]
    data = sample + (b"" if sample.endswith((b"\r", b"\n")) else eol) + b'9,"\r\nin\rquotes\n"' + eol
    for size in range(1, len(data) + 1):
        counted(data, [size])
