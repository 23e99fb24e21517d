"""Column types of a table a load creates: declared types, and types read from every value.

No SQL here: a :class:`TypeTracker` watches the values of every batch of one load and says, at
commit, which logical type each column gets (a dialect names it its own way: ``BINARY`` and
``JSON`` too); the rules are docs/engine.md's ("SQL: types, modes and what readers see"). When in
doubt, ``TEXT``: it keeps every value as it came. Values of undeclared columns are staged as text
(:func:`json_as_text`) and cast once at commit.

A declared type goes into ``CREATE TABLE`` and ``CAST`` as it is written: one that came from outside
(a fanned-out load's XCom) must first pass :func:`check_type_name`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_exports.exceptions import ExportConfigError, TransferRefused

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
#: integers above this lose digits in a double
DOUBLE_EXACT_INT = 2**53

# Whole batches are matched at once (values joined by newlines): one regex call per column and batch.
# Negative zero (-0, -0.00) is not canonical: the number would lose its sign, so it stays text.
_INT_LINES = re.compile(r"(?:(?:0|-?[1-9][0-9]*)\n)*")
_NUM_LINES = re.compile(r"(?:(?!-0(?:\.0+)?\n)-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?\n)*")

#: a column type and nothing more: words, at most one list of numbers (or MAX), array brackets
_TYPE_NAME = re.compile(
    r"[A-Za-z_]\w*(?: [A-Za-z_]\w*)*(?: ?\( ?(?:\d+|MAX)(?: ?, ?\d+)* ?\))?(?: [A-Za-z_]\w*)*(?:\[\])*",
    re.IGNORECASE | re.ASCII,
)
#: words that would make a column type a column constraint, a default or a collation
_CLAUSE_WORDS = frozenset(
    {
        *("ALWAYS", "AS", "AUTOINCREMENT", "AUTO_INCREMENT", "CASCADE", "CHECK", "COLLATE", "COMMENT"),
        *("CONSTRAINT", "DEFAULT", "DELETE", "FOREIGN", "GENERATED", "IDENTITY", "KEY", "NOT", "NULL"),
        *("ON", "PRIMARY", "REFERENCES", "STORED", "UNIQUE", "UPDATE", "USING", "VIRTUAL"),
    }
)
MAX_TYPE_NAME = 64

# the kinds of values a column has shown
BOOL, INT, HUGEINT, FLOAT, DECIMAL, TEXT = "bool", "int", "hugeint", "float", "decimal", "text"
_NUMBERS = frozenset({INT, HUGEINT, FLOAT, DECIMAL})
_JSON_KINDS: dict[type, str] = {bool: BOOL, float: FLOAT}


@dataclass
class ColumnKinds:
    """What the values of one undeclared column have been so far."""

    kinds: set[str] = field(default_factory=set)
    #: the largest magnitude of an integer seen (decides DOUBLE PRECISION or NUMERIC)
    max_abs_int: int = 0
    #: an upper bound on the significant digits of exact-decimal values (decimal text, huge integers)
    digits: int = 0

    def add(self, kinds: Iterable[str], max_abs_int: int = 0, digits: int = 0) -> None:
        """What more values showed: their kinds, largest integer magnitude and digits."""
        self.kinds.update(kinds)
        self.max_abs_int = max(self.max_abs_int, max_abs_int)
        self.digits = max(self.digits, digits)


@dataclass(frozen=True)
class FinalType:
    """A column's logical type (``BIGINT``, ``DOUBLE PRECISION``, ``NUMERIC``, ``BOOLEAN``, ``TEXT``,
    or a declared type as given); ``digits`` bounds the significant digits of a ``NUMERIC``."""

    name: str
    declared: bool = False
    digits: int = 0


def check_type_name(sql_type: Any, field: str) -> str:
    """``sql_type`` when it reads as a column type and nothing more (``BIGINT``, ``DOUBLE PRECISION``,
    ``VARCHAR(20)``, ``NUMERIC(12, 2)``, ``TIMESTAMP(3) WITH TIME ZONE``, ``INTEGER[]``): no quote,
    semicolon, comment, expression or constraint can ride along into ``CREATE TABLE``. Else
    :class:`ExportConfigError` naming ``field``."""
    if (
        isinstance(sql_type, str)
        and len(sql_type) <= MAX_TYPE_NAME
        and _TYPE_NAME.fullmatch(sql_type)
        and not _CLAUSE_WORDS.intersection(sql_type.upper().replace("(", " ").split())
    ):
        return sql_type
    raise ExportConfigError(
        field,
        f"{str(sql_type)[:MAX_TYPE_NAME]!r} is not a column type: at most {MAX_TYPE_NAME} characters of "
        "words, one list of numbers in parentheses and [] (no constraint, default or collation)",
    )


class TypeTracker:
    """The types of the columns of one load, from declarations and from every value.

    :param declared: the task's ``column_types``; they win over everything.
    """

    def __init__(self, declared: dict[str, str] | None = None) -> None:
        self.task_types = dict(declared or {})
        self.file_types: dict[str, tuple[str, str]] = {}  # column -> (type, the file that declared it)
        self.valued_by: dict[str, str] = {}  # undeclared column -> the first file that brought values
        self.columns: dict[str, ColumnKinds] = {}

    def declared(self, column: str) -> str | None:
        if column in self.task_types:
            return self.task_types[column]
        found = self.file_types.get(column)
        return found[0] if found else None

    def declare(self, column: str, sql_type: str, file: str) -> None:
        """``file`` declares ``column`` as ``sql_type``; a different declaration from another file,
        or plain values from another file, refuse the load."""
        if column in self.task_types:
            return
        if column in self.valued_by:
            raise TransferRefused(
                f"column {column!r}: file {self.valued_by[column]!r} brings values without a declared "
                f"type, file {file!r} declares {sql_type}; set column_types={{{column!r}: ...}}"
            )
        before = self.file_types.get(column)
        if before is None:
            self.file_types[column] = (sql_type, file)
        elif before[0] != sql_type:
            raise TransferRefused(
                f"column {column!r} is {before[0]} in file {before[1]!r} and {sql_type} in file {file!r}; "
                f"set column_types={{{column!r}: ...}} to load both"
            )

    def _valued(self, column: str, file: str) -> ColumnKinds | None:
        """The kinds of an undeclared column ``file`` brings values for (``None``: the task
        declared it); a column another file declares refuses the load."""
        if column in self.task_types:
            return None
        if column in self.file_types:
            declared, by = self.file_types[column]
            raise TransferRefused(
                f"column {column!r}: file {by!r} declares {declared}, file {file!r} brings values "
                f"without a declared type; set column_types={{{column!r}: ...}}"
            )
        self.valued_by.setdefault(column, file)
        return self.columns.setdefault(column, ColumnKinds())

    def observe_kinds(
        self, column: str, file: str, kinds: set[str], max_abs_int: int = 0, digits: int = 0
    ) -> bool:
        """Record what a block of values of ``column`` showed, already summed up (a columnar
        reader): its kinds, largest integer magnitude and digits (:class:`ColumnKinds`). Returns
        whether the column is undeclared (loaded as the text of its values)."""
        seen = self._valued(column, file)
        if seen is None:
            return False
        if TEXT not in seen.kinds:
            seen.add(kinds, max_abs_int, digits)
        return True

    def observe(self, column: str, values: Sequence[Any], file: str, *, from_text: bool) -> Sequence[Any]:
        """Record the values of an undeclared column; return them as text for the stage.

        ``from_text``: the values are CSV fields (strings or ``None``), read as numbers only when
        canonical. Otherwise they are JSON values.
        """
        seen = self._valued(column, file)
        if seen is None:
            return values
        if from_text:
            if TEXT not in seen.kinds:
                _observe_text(seen, values)
            return values
        kinds = set(map(type, values))
        kinds.discard(type(None))
        if kinds <= {str}:
            if kinds:
                seen.kinds.add(TEXT)
            return values
        if TEXT not in seen.kinds:
            _observe_json(seen, values, kinds)
        return json_as_text(values, kinds)

    def is_text(self, column: str) -> bool:
        """Whether an undeclared column has shown a value that makes it ``TEXT`` whatever follows."""
        seen = self.columns.get(column)
        return seen is not None and TEXT in seen.kinds

    def loading(self, column: str) -> FinalType:
        """The type ``column`` has while a load fills a table it created: :meth:`final` as far as
        the values so far go, where every later value can only widen it exactly (``ALTER``), else
        ``TEXT`` with the text of each value, cast at commit: integers among floats (only their
        text tells ``5`` from ``5.0``), and no value yet."""
        final = self.final(column)
        kinds = self.columns.get(column, ColumnKinds()).kinds
        if not final.declared and FLOAT in kinds and len(kinds) > 1:
            return FinalType("TEXT")
        return final

    def final(self, column: str) -> FinalType:
        """The type ``column`` gets in the table this load creates (see the module docstring)."""
        declared = self.declared(column)
        if declared is not None:
            return FinalType(declared, declared=True)
        seen = self.columns.get(column, ColumnKinds())
        kinds = seen.kinds
        if not kinds or TEXT in kinds:
            return FinalType("TEXT")
        if kinds == {BOOL}:
            return FinalType("BOOLEAN")
        if BOOL in kinds or not kinds <= _NUMBERS:
            return FinalType("TEXT")
        if kinds == {INT}:
            return FinalType("BIGINT")
        if kinds <= {INT, FLOAT} and seen.max_abs_int <= DOUBLE_EXACT_INT:
            return FinalType("DOUBLE PRECISION")
        return FinalType("NUMERIC", digits=seen.digits)


def _observe_text(seen: ColumnKinds, values: Sequence[Any]) -> None:
    texts = [v for v in values if v is not None]
    if not texts:
        return
    joined = "\n".join(texts) + "\n"
    longest = max(map(len, texts))
    if not _INT_LINES.fullmatch(joined):
        if _NUM_LINES.fullmatch(joined):
            seen.add({DECIMAL}, digits=longest)
        else:
            seen.add({TEXT})
    elif longest < 16:  # at most 15 digits: below 2**53, within int64
        seen.add({INT})
    else:
        largest = max(abs(int(v)) for v in texts if len(v) >= 16)
        if largest <= INT64_MAX:  # -2**63 counts as huge: NUMERIC keeps it too
            seen.add({INT}, largest)
        else:
            seen.add({HUGEINT}, largest, longest)


def _observe_json(seen: ColumnKinds, values: Sequence[Any], kinds: set[type]) -> None:
    # str beside other kinds, or anything else: text
    found = {_JSON_KINDS.get(kind, TEXT) for kind in kinds if kind is not int}
    if int not in kinds:
        seen.add(found)
        return
    ints = values if kinds == {int} and None not in values else [v for v in values if type(v) is int]
    low, high = min(ints), max(ints)
    largest = max(abs(low), abs(high))
    if low >= INT64_MIN and high <= INT64_MAX:
        seen.add({*found, INT}, largest)
    else:
        seen.add({*found, HUGEINT}, largest, len(str(largest)))


def _json_text(value: Any) -> str:
    if value is True:
        return "true"
    if value is False:
        return "false"
    if type(value) is float:
        return repr(value)
    return str(value)


def json_as_text(values: Sequence[Any], kinds: set[type] | None = None) -> Sequence[Any]:
    """JSON values as the text the stage holds: ``true``/``false``, integers and floats as JSON
    writes them (``repr`` of a float round-trips), strings unchanged, NULL kept."""
    if kinds is None:
        kinds = set(map(type, values)) - {type(None)}
    if kinds <= {str}:
        return values
    has_null = None in values
    if kinds == {int} and not has_null:
        return list(map(str, values))
    if kinds == {float} and not has_null:
        return list(map(repr, values))
    return [None if v is None else v if type(v) is str else _json_text(v) for v in values]
