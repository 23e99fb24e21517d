"""A CSV's quotes where RFC 4180 puts them, checked chunk by chunk; the first other one found."""

from __future__ import annotations

import csv
import io
import random

import pytest

from airflow_provider_exports.transfers.engine.sql import csv_quotes
from airflow_provider_exports.transfers.engine.sql.csv_quotes import (
    AT_FIELD,
    QuotePlacement,
    _first_misplaced,
)


@pytest.fixture(params=["re2", "python"])
def engine(request, monkeypatch):
    """Both matchers: RE2 through pyarrow, and Python's ``re`` where pyarrow is not installed."""
    if request.param == "re2":
        pytest.importorskip("pyarrow")
    else:
        monkeypatch.setattr(csv_quotes, "has_module", lambda name: False)
    return request.param


def misplaced(data: bytes, sizes: list[int], delimiter: str = ",") -> int:
    """The stream offset of the first misplaced quote, feeding ``data`` in chunks of ``sizes`` (cycled)."""
    quotes, at, i = QuotePlacement(delimiter), 0, 0
    while at < len(data):
        chunk = data[at : at + sizes[i % len(sizes)]]
        if (found := quotes.misplaced(chunk)) >= 0:
            return at + found
        at, i = at + len(chunk), i + 1
    return -1


@pytest.mark.parametrize(
    ("data", "where"),
    [
        (b'id,v\r\n"1","a,b"\r\n"2",""""\r\n', -1),  # every field quoted, a quote doubled
        (b'id,v\n1,"two\nlines"\n3,"q""uote\n"\n', -1),
        (b'a,b\n"x"y,z\n', -1),  # characters after a closing quote: "xy" to COPY and to csv alike
        (b'a,b\n5" screen,z\n', 5),  # inside an unquoted field
        (b'a,b\nx, "y"\n', 7),  # after a space: a character to csv, a quote to COPY
        (b'a,b\n"x"y"z",w\n', 8),  # after what followed a closing quote
        (b'a,b\nx,y"', 7),  # the stream's last byte
        (b'"unclosed\n,x', -1),  # the stream may end inside quotes (the readers refuse that)
    ],
)
def test_misplaced_quotes_are_found_wherever_the_chunks_end(engine, data, where):
    for size in range(1, len(data) + 1):
        assert misplaced(data, [size]) == where, size
    assert misplaced(data, [3, 1, 2]) == where


def test_the_delimiter_is_the_load_s_own(engine):
    assert misplaced(b'a|b\n"x"|"y|z"\n', [4], "|") == -1
    assert misplaced(b'a|b\nx|y"\n', [4], "|") == 7
    assert misplaced(b'a|b\nx,"y"|z\n', [4], "|") == 6  # ',' is a character here


def test_a_chunk_without_a_quote_is_not_matched(monkeypatch):
    def matched(*args):
        raise AssertionError("a chunk without a quote needs no match")

    monkeypatch.setattr(QuotePlacement, "_matches", matched)
    assert misplaced(b"a,b\n1,2\n" * 100, [7]) == -1


def _random_stream(rng: random.Random) -> bytes:
    return "".join(rng.choice(['"', '"', ",", "\n", "\r", "a", " ", "é"]) for _ in range(rng.randint(0, 30))).encode()


@pytest.mark.parametrize("seed", range(3))
def test_the_grammar_and_the_walk_agree_over_random_streams_and_chunks(engine, seed):
    """The regular expressions (what runs) and the byte walk (what names the place) find the same
    first misplaced quote, whatever the chunks; and where none is found, Python's ``csv`` reads the
    stream as RFC 4180 strictly does, so ``COPY`` (which follows RFC 4180) reads what the readers read."""
    rng = random.Random(seed)
    for case in range(700):
        data = _random_stream(rng)
        where = _first_misplaced(data, AT_FIELD, ",")
        sizes = [rng.randint(1, 8) for _ in range(3)]
        assert misplaced(data, sizes) == where, (case, data, sizes)
        if where < 0 and data.count(b'"') % 2 == 0:
            text = data.decode()
            assert [r for r in csv.reader(io.StringIO(text, newline="")) if r] == _rfc4180(text), (case, data)


def _rfc4180(text: str) -> list[list[str]]:
    """Records as RFC 4180 (and ``COPY``) reads them: a quote opens a quoted section anywhere, and
    characters after a closing quote join the field."""
    records: list[list[str]] = []
    record: list[str] = []
    field, quoted, started, i = "", False, False, 0
    while i < len(text):
        c = text[i]
        if quoted:
            if c == '"' and text[i + 1 : i + 2] == '"':
                field, i = field + c, i + 1
            elif c == '"':
                quoted = False
            else:
                field += c
        elif c == '"':
            quoted = started = True
        elif c == ",":
            record.append(field)
            field, started = "", False
        elif c in "\r\n":
            i += c == "\r" and text[i + 1 : i + 2] == "\n"
            if record or field or started:
                records.append([*record, field])
            record, field, started = [], "", False
        else:
            field += c
        i += 1
    if record or field or started:
        records.append([*record, field])
    return records
