"""SQLite, the embedded warehouse: one writer at a time, transactional DDL, savepoints.

The driver's own transaction handling is switched off (``isolation_level = None``) and a load
opens its transaction with ``BEGIN IMMEDIATE`` (the database's write lock, at once; readers keep
seeing the last committed state). SQLite binds text, numbers and bytes only: dates, times and
decimals go in as ISO/decimal text, integers beyond int64 as text.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import date, datetime, time
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from airflow_provider_exports.transfers.engine.formats import Batch
from airflow_provider_exports.transfers.engine.sql.generic import Dialect
from airflow_provider_exports.transfers.engine.sql.types import INT64_MAX, INT64_MIN

if TYPE_CHECKING:
    from airflow_provider_exports.transfers.engine.cancellation import Cancellation

_NATIVE = frozenset({str, float, bytes, bool})
#: text SQLite stores in a numeric column as the very number it reads (no zeros, signs or spaces lost)
_INTEGER_TEXT = re.compile(r"0|-?[1-9][0-9]*")
_NUMBER_TEXT = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?")


class SqliteDialect(Dialect):
    """SQLite through the standard library's ``sqlite3``."""

    name = "sqlite"
    savepoints = True
    manifest_key_type = "TEXT"
    binary_type = "BLOB"
    numeric_digits = 15  # what a REAL (SQLite's NUMERIC for a fraction) always keeps
    trusts_rowcount = True  # the rows of an INSERT, summed over an executemany; -1 for CREATE ... AS
    transactional_ddl = True
    checks_values = True

    @property
    def placeholder(self) -> str:
        return "?"

    def prepare(self, lock_timeout: float) -> None:
        self.conn.isolation_level = None  # BEGIN and COMMIT are ours, so DDL is inside the transaction
        self.execute(f"PRAGMA busy_timeout = {max(1, int(lock_timeout * 1000))}").close()

    def lock(self, table: str, cancellation: Cancellation | None) -> None:
        self._wait("BEGIN IMMEDIATE", None, cancellation, self.conn.interrupt)

    def commit(self) -> None:
        self.execute("COMMIT").close()

    def rollback(self) -> None:
        if self.conn.in_transaction:
            self.execute("ROLLBACK").close()

    def table_columns(self, table: str) -> list[str] | None:
        schema, _, name = table.rpartition(".")
        pragma = f"{self.quote(schema)}.table_info" if schema else "table_info"
        rows = self.query(f"PRAGMA {pragma}({self.quote(name)})")
        return [r[1] for r in rows] or None

    def column_types(self, table: str) -> dict[str, str]:
        schema, _, name = table.rpartition(".")
        pragma = f"{self.quote(schema)}.table_info" if schema else "table_info"
        return {r[1]: r[2] for r in self.query(f"PRAGMA {pragma}({self.quote(name)})")}

    def misfit(self, values: Sequence[Any], sql_type: str) -> int | None:
        """SQLite keeps a value its numeric column cannot read as text beside the numbers, and reads
        ``007`` as 7, without an error: for a column whose type names a number (SQLite's INTEGER and
        REAL affinities, and NUMERIC or DECIMAL), the first value that is not a number or the exact
        text of one. Dates, booleans and text columns take what they are given."""
        upper = sql_type.upper()
        if "INT" in upper:
            fits = _fits_integer
        elif any(word in upper for word in ("REAL", "FLOA", "DOUB", "NUMERIC", "DECIMAL")):
            fits = _fits_number
        else:
            return None
        kinds = set(map(type, values))
        if kinds <= {int, bool, type(None)} or (fits is _fits_number and kinds <= {int, float, bool, type(None)}):
            return None
        return next((i for i, v in enumerate(values) if not fits(v)), None)

    def unique_index_sql(self, table: str, columns: Sequence[str]) -> str | None:
        schema, _, name = table.rpartition(".")  # SQLite names the schema on the index, not the table
        index = (f"{self.quote(schema)}." if schema else "") + self.quote(name + "_job_key")
        return f"CREATE UNIQUE INDEX IF NOT EXISTS {index} ON {self.quote(name)} ({', '.join(columns)})"

    def bindable(self, batch: Batch) -> Sequence[tuple[Any, ...]]:
        rows = batch.rows
        if not rows:
            return rows
        columns: list[Sequence[Any]] = list(zip(*rows, strict=True))
        changed = False
        for i, col in enumerate(columns):
            kinds = set(map(type, col))
            kinds.discard(type(None))
            if kinds <= _NATIVE:
                continue
            if kinds <= _NATIVE | {int}:
                ints = col if kinds == {int} and None not in col else [v for v in col if type(v) is int]
                if min(ints) >= INT64_MIN and max(ints) <= INT64_MAX:
                    continue
            columns[i] = tuple(map(_bindable_value, col))
            changed = True
        return list(zip(*columns, strict=True)) if changed else rows


def _fits_integer(v: Any) -> bool:
    if v is None or type(v) in (int, bool):
        return True
    return type(v) is str and _INTEGER_TEXT.fullmatch(v) is not None


def _fits_number(v: Any) -> bool:
    if v is None or type(v) in (int, float, bool):
        return True
    return type(v) is str and _NUMBER_TEXT.fullmatch(v) is not None


def _bindable_value(v: Any) -> Any:
    if type(v) is int:
        return v if INT64_MIN <= v <= INT64_MAX else str(v)
    if isinstance(v, (datetime, date, time)):
        return v.isoformat()
    if isinstance(v, Decimal):
        return str(v)
    return v
