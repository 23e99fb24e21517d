"""Where a CSV's quotes stand, checked as the CSV pass-through's chunks go by.

RFC 4180 puts a ``"`` only at the start of a field (opening it), at its end (closing it), or doubled
inside a quoted field. A quote anywhere else (``5" screen``, `` "a"`` after a space, ``"a"b"c"``) is
read two ways: Python's ``csv`` and pyarrow keep it as a character of the field, while PostgreSQL's
``COPY`` opens a quoted section there, which can swallow delimiters and line breaks. So a file
holding one must not go to ``COPY`` as its bytes came: :class:`QuotePlacement` finds the first, and
the sink reads that file instead, as it reads it into a new table.

A chunk without a quote is always fine (one ``memchr``). A chunk with quotes is matched whole by a
regular expression of RFC 4180's fields, started in the state the stream was left in: at a field's
start (or just after a closing quote: the two accept the same bytes), inside an unquoted field, or
inside a quoted one. RE2 (through pyarrow, without the GIL) matches 176 MB of every-field-quoted
CSV in about 0.36 CPU s; without pyarrow, Python's ``re`` in about 0.8 s.

Lenient where the readers and ``COPY`` agree: characters after a closing quote (``"a"b`` is ``ab``
to all three) pass.
"""

from __future__ import annotations

import re
from functools import cache

from airflow_provider_exports.transfers.engine.streams import has_module, re2_search

_QUOTE = b'"'
#: the states a chunk may start in: a field's start, inside an unquoted field, inside quotes
AT_FIELD, IN_FIELD, IN_QUOTES = "at field", "in field", "in quotes"


def _grammar(delimiter: str, possessive: str) -> dict[str, str]:
    """RFC 4180's fields from each state, to the end of a chunk (which may end inside any field).

    ``possessive``: ``"+"`` for Python's ``re`` (its runs never give back what they took, so a
    refusal costs no backtracking), ``""`` for RE2, which has no such quantifier and needs none."""
    d = re.escape(delimiter)
    sep = rf"[{d}\r\n]"
    plain = rf'[^"{d}\r\n]*{possessive}'
    quoted = rf'(?:[^"]+{possessive}|"")*{possessive}'  # a quoted field's bytes, its quotes doubled
    field = rf'(?:"{quoted}"{plain}|{plain})'
    fields = rf'(?:{field}{sep})*(?:{field}|"{quoted})'  # the last one may be cut by the chunk's end
    in_field = rf"{plain}(?:{sep}{fields})?"
    return {AT_FIELD: fields, IN_FIELD: in_field, IN_QUOTES: rf'{quoted}(?:"{in_field})?'}


@cache
def _python_patterns(delimiter: str) -> dict[str, re.Pattern[bytes]]:
    return {state: re.compile(p.encode()) for state, p in _grammar(delimiter, "+").items()}


@cache
def _re2_patterns(delimiter: str) -> dict[str, str]:
    return {state: f"(?s)^(?:{p})$" for state, p in _grammar(delimiter, "").items()}


class QuotePlacement:
    """Check a CSV stream's quotes, chunk by chunk: :meth:`misplaced` says where the first quote
    that RFC 4180 would not put there is."""

    def __init__(self, delimiter: str = ",") -> None:
        self.delimiter = delimiter
        self._ends = (delimiter.encode(), b"\r", b"\n")
        self._state = AT_FIELD
        self._in_quotes = 0

    def misplaced(self, chunk: bytes) -> int:
        """The offset in ``chunk`` (the stream's next bytes) of its first misplaced quote, or -1."""
        state = self._state
        if _QUOTE in chunk:
            if not self._matches(chunk, state):
                return _first_misplaced(chunk, state, self.delimiter)
            self._in_quotes ^= chunk.count(_QUOTE) & 1
        if chunk:
            last = chunk[-1:]
            if self._in_quotes:
                self._state = IN_QUOTES
            else:  # after a closing quote is as at a field's start
                self._state = AT_FIELD if last == _QUOTE or last in self._ends else IN_FIELD
        return -1

    def _matches(self, chunk: bytes, state: str) -> bool:
        if not has_module("pyarrow"):
            return _python_patterns(self.delimiter)[state].fullmatch(chunk) is not None
        return re2_search(chunk, _re2_patterns(self.delimiter)[state])


def _first_misplaced(chunk: bytes, state: str, delimiter: str) -> int:
    """The offset of the first misplaced quote of a chunk the grammar refused, walked byte by
    byte over its quotes and separators (only on the way to an error)."""
    done = 0
    for found in re.finditer(b'["\r\n' + re.escape(delimiter.encode()) + b"]", chunk):
        at = found.start()
        if at > done and state == AT_FIELD:
            state = IN_FIELD  # a character before the quote: the field did not start with it
        done = at + 1
        if found.group() != _QUOTE:
            state = IN_QUOTES if state == IN_QUOTES else AT_FIELD
        elif state == IN_FIELD:
            return at
        else:  # opening, closing, or the first of a pair: a pair comes back inside quotes
            state = AT_FIELD if state == IN_QUOTES else IN_QUOTES
    return -1
