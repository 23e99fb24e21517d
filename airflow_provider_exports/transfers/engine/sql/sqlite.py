"""SQLite, the embedded warehouse: one writer at a time, transactional DDL, savepoints.

The driver's own transaction handling is switched off (``isolation_level = None``) and a load
opens its transaction with ``BEGIN IMMEDIATE`` (the database's write lock, at once; readers keep
seeing the last committed state). SQLite binds text, numbers and bytes only: dates, times and
decimals go in as ISO/decimal text, integers beyond int64 as text.
"""

from __future__ import annotations

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


class SqliteDialect(Dialect):
    """SQLite through the standard library's ``sqlite3``."""

    name = "sqlite"
    savepoints = True
    manifest_key_type = "TEXT"
    binary_type = "BLOB"
    numeric_digits = 15  # what a REAL (SQLite's NUMERIC for a fraction) always keeps
    trusts_rowcount = True  # the rows of an INSERT, summed over an executemany; -1 for CREATE ... AS

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


def _bindable_value(v: Any) -> Any:
    if type(v) is int:
        return v if INT64_MIN <= v <= INT64_MAX else str(v)
    if isinstance(v, (datetime, date, time)):
        return v.isoformat()
    if isinstance(v, Decimal):
        return str(v)
    return v
