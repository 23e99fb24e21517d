"""PostgreSQL: ``COPY`` for every row, an advisory lock per table, transactional DDL and savepoints.

Rows go in through ``COPY ... FROM STDIN``: CSV bytes straight in (:mod:`.csv_passthrough`);
JSON lines and Parquet read by pyarrow as CSV written column-wise (:mod:`.arrow_text`); row
batches (JSON lines pyarrow cannot read exactly, or without pyarrow) through psycopg 3's
``copy.write_row`` (formatted in C), or, with psycopg2, encoded to COPY's text format here
(:func:`encode_copy_text`). A load holds ``pg_advisory_xact_lock`` on a 64-bit hash of (database,
schema-qualified table) from ``begin`` to its commit or rollback, so loads of one table run one
after another.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import math
import re
from collections.abc import Iterable, Iterator, Sequence
from datetime import date, datetime, time
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from airflow_provider_exports.transfers.engine.sql import pg_binary
from airflow_provider_exports.transfers.engine.sql.generic import Dialect, ValueRefused
from airflow_provider_exports.transfers.engine.streams import ChunkReader

if TYPE_CHECKING:
    from airflow_provider_exports.transfers.engine.cancellation import Cancellation

#: the session-local table of a double column's texts as PostgreSQL and as Python write them
_FLOAT_TEXT = "_exports_float_text"
_NEEDS_ESCAPE = re.compile(r"[\\\t\n\r]")
#: where a COPY failed, as PostgreSQL's error context says: ``COPY t, line 3, column age: "abc"``
_COPY_CONTEXT = re.compile(r'^COPY .*?, line (?P<line>\d+), column (?P<column>.+?)(?:: "(?P<value>.*)")?$', re.M)
_COPY_LINE = re.compile(r"^COPY .*?, line (\d+)", re.M)
_PARAMETER_CONTEXT = re.compile(r"portal parameter \$(\d+)")
_QUOTED_VALUE = re.compile(r': "(.*)"$', re.S)
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


class PostgresDialect(Dialect):
    """PostgreSQL through psycopg 3 (the postgres provider's default) or psycopg2."""

    name = "postgres"
    savepoints = True
    columnar = True
    manifest_key_type = "TEXT"
    binary_type = "BYTEA"
    json_type = "JSONB"
    numeric_digits = math.inf  # NUMERIC without precision is exact here
    stage_options = " ON COMMIT DROP"
    trusts_rowcount = True  # both drivers count a COPY, an INSERT ... SELECT, an executemany (summed)
    retypes = True
    transactional_ddl = True

    def prepare(self, lock_timeout: float) -> None:
        self.conn.autocommit = False
        self._lock_timeout_ms = max(1, int(lock_timeout * 1000))

    def lock(self, table: str, cancellation: Cancellation | None) -> None:
        schema, _, name = table.rpartition(".")
        database, current_schema = self.query("SELECT current_database(), current_schema()")[0]
        key = f"{database}\x00{schema or current_schema}\x00{name}".encode()
        lock_id = int.from_bytes(hashlib.sha256(key).digest()[:8], "big", signed=True)
        self.execute(f"SET LOCAL lock_timeout = {self._lock_timeout_ms}").close()
        self._wait("SELECT pg_advisory_xact_lock(%s)", (lock_id,), cancellation, self.conn.cancel)

    def table_columns(self, table: str) -> list[str] | None:
        rows = self.query(
            "SELECT attname FROM pg_attribute WHERE attrelid = to_regclass(%s) AND attnum > 0 "
            "AND NOT attisdropped ORDER BY attnum",
            (self.qualified(table),),
        )
        return [r[0] for r in rows] or None

    def column_types(self, table: str) -> dict[str, str]:
        """``table``'s columns and their types (as ``format_type`` names them: ``bigint``,
        ``numeric(12,2)``, ``timestamp with time zone``)."""
        rows = self.query(
            "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = "
            "to_regclass(%s) AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
            (self.qualified(table),),
        )
        return dict(rows)

    def add_columns(self, table: str, columns: Sequence[tuple[str, str]]) -> None:
        if columns:
            added = ", ".join(f"ADD COLUMN {self.quote(c)} {t}" for c, t in columns)
            self.execute(f"ALTER TABLE {self.qualified(table)} {added}").close()

    def refused_value(self, exc: BaseException, columns: Sequence[str]) -> ValueRefused | None:
        """A data exception (SQLSTATE class 22): in a ``COPY``, its context names the line (the row
        of that ``COPY``), the column and the value; in an ``INSERT`` (``use_copy=False``) the
        message names the value, and psycopg 3's context the parameter (its column), but no row
        (:meth:`.generic.ValueRefused.found_in` finds it)."""
        state = getattr(exc, "sqlstate", None) or getattr(exc, "pgcode", None)
        diag = getattr(exc, "diag", None)
        context = getattr(diag, "context", None) or ""
        if not str(state).startswith("22"):
            return None
        if state == "22021" and str(getattr(diag, "message_primary", "")).endswith("0x00"):
            # a NUL, which no PostgreSQL text holds: COPY names its line, and its column when it knows
            line, named = _COPY_LINE.search(context), _COPY_CONTEXT.search(context)
            return ValueRefused(named["column"] if named else "", int(line[1]) if line else None, "\x00")
        if found := _COPY_CONTEXT.search(context):
            return ValueRefused(found["column"], int(found["line"]), found["value"])
        value = _QUOTED_VALUE.search(getattr(diag, "message_primary", None) or "")
        if value is None:
            return None
        parameter = _PARAMETER_CONTEXT.search(context)
        column = columns[int(parameter[1]) - 1] if parameter and 0 < int(parameter[1]) <= len(columns) else ""
        return ValueRefused(column, None, value[1])

    def unique_index_sql(self, table: str, columns: Sequence[str]) -> str | None:
        name = self.quote(table.rpartition(".")[2] + "_job_key")
        return f"CREATE UNIQUE INDEX IF NOT EXISTS {name} ON {self.qualified(table)} ({', '.join(columns)})"

    def index_stage(self, stage: str, columns: Sequence[str]) -> None:
        super().index_stage(stage, columns)
        self.execute(f"ANALYZE {self.quote(stage)}").close()  # autovacuum never sees temporary tables

    def retype_column(self, table: str, column: str, old: str, new: str) -> None:
        """Widen ``column`` of ``table`` (created by this load) from ``old`` to ``new``, each value
        as the text it was loaded from would cast: integers, decimals and booleans have one text;
        a double's is Python's ``repr``, as the load wrote it (PostgreSQL writes ``1`` for ``1.0``)."""
        qualified, col = self.qualified(table), self.quote(column)
        if old == "DOUBLE PRECISION":
            self.execute("SET LOCAL extra_float_digits = 1").close()  # the shortest text that reads back
            self.execute(
                f"ALTER TABLE {qualified} ALTER COLUMN {col} TYPE TEXT USING CAST({col} AS TEXT)"
            ).close()
            # a plain d.ddd text has the same digits as repr (both shortest): only the others are read
            plain = "'^-?[0-9]+\\.[0-9]+$'"
            texts = [text for (text,) in self.query(f"SELECT DISTINCT {col} FROM {qualified} WHERE {col} !~ {plain}")]
            fixes = [(text, repr(float(text))) for text in texts if repr(float(text)) != text]
            if fixes:
                self.create_stage(_FLOAT_TEXT, [("pg", "TEXT"), ("py", "TEXT")])
                cur = self.conn.cursor()
                try:
                    cur.executemany(f"INSERT INTO {self.quote(_FLOAT_TEXT)} VALUES (%s, %s)", fixes)
                finally:
                    cur.close()
                self.execute(
                    f"UPDATE {qualified} SET {col} = f.py FROM {self.quote(_FLOAT_TEXT)} f WHERE {qualified}.{col} = f.pg"
                ).close()
                self.execute(f"DROP TABLE {self.quote(_FLOAT_TEXT)}").close()
            old = "TEXT"
        if new != old:
            using = f"CAST({col} AS TEXT)" if new == "TEXT" else self.cast(col, new)
            self.execute(f"ALTER TABLE {qualified} ALTER COLUMN {col} TYPE {new} USING {using}").close()

    def _write_bulk(
        self, cur: Any, table: str, columns: list[str], copy_format: str | None, batches: Iterable[Any]
    ) -> int | None:
        """One run of batches through one ``COPY``; the rows it took."""
        cols = ", ".join(self.quote(c) for c in columns)
        sql = f"COPY {table} ({cols}) FROM STDIN"
        if copy_format == "binary":  # pyarrow columns encoded by pgpq (see .pg_binary)
            data = itertools.chain([pg_binary.HEADER], (b.data for b in batches), [pg_binary.TRAILER])
            self.copy_in(cur, f"{sql} WITH (FORMAT binary)", data)
        elif copy_format == "csv":  # pyarrow columns already written as CSV (see .arrow_text)
            self.copy_in(cur, f"{sql} WITH (FORMAT csv, ENCODING 'UTF8')", (b.data for b in batches))
        elif hasattr(cur, "copy"):
            # psycopg 3 formats rows in C: several times faster than any Python encoding
            with cur.copy(sql) as copy:
                for batch in batches:
                    for row in batch.rows:
                        copy.write_row(row)
        else:
            self.copy_in(cur, sql, (encode_copy_text(b.rows) for b in batches))
        return self.rows_written(cur)

    @staticmethod
    def copy_in(cur: Any, sql: str, data: Iterable[bytes]) -> None:
        """``data`` into ``COPY ... FROM STDIN`` (``sql``), through either driver."""
        if hasattr(cur, "copy"):  # psycopg 3
            with cur.copy(sql) as copy:
                for block in data:
                    copy.write(block)
        else:  # psycopg2 pulls from a file, and reports what the file raised as QueryCanceled
            raised: list[BaseException] = []

            def kept() -> Iterator[bytes]:
                try:
                    yield from data
                except BaseException as exc:
                    raised.append(exc)
                    raise

            try:
                cur.copy_expert(sql, io.BufferedReader(ChunkReader(kept()), 1 << 20))
            except Exception:
                if raised:
                    raise raised[0] from None
                raise


# --- COPY text format (psycopg2) ---------------------------------------------------------------------


def _copy_column(values: Sequence[Any]) -> list[str]:
    kinds = set(map(type, values)) - {type(None)}
    if kinds <= {str}:
        if not _NEEDS_ESCAPE.search("\x00".join(filter(None, values))):
            return ["\\N" if v is None else v for v in values]
        return ["\\N" if v is None else v.translate(_COPY_ESCAPES) for v in values]
    if kinds <= {int, float}:
        return ["\\N" if v is None else repr(v) for v in values]
    return ["\\N" if v is None else _copy_value(v) for v in values]


def _copy_value(v: Any) -> str:
    if isinstance(v, bool):
        return "t" if v else "f"
    if isinstance(v, (int, float, Decimal)):
        return str(v) if not isinstance(v, float) else repr(v)
    if isinstance(v, (datetime, date, time)):
        return v.isoformat()
    if isinstance(v, (bytes, bytearray, memoryview)):
        return "\\\\x" + bytes(v).hex()
    if isinstance(v, (dict, list)):
        v = json.dumps(v, separators=(",", ":"), ensure_ascii=False, default=str)
    return str(v).translate(_COPY_ESCAPES)


def encode_copy_text(rows: Sequence[tuple[Any, ...]]) -> bytes:
    """Rows in PostgreSQL ``COPY`` text format (tab-separated, ``\\N`` for NULL, escaped)."""
    if not rows:
        return b""
    columns = [_copy_column(col) for col in zip(*rows, strict=True)]
    return ("\n".join(map("\t".join, zip(*columns, strict=True))) + "\n").encode()
