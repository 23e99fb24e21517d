"""SQL destination: load export files into a table through a common-sql ``DbApiHook``, in one transaction.

Files are parsed as they stream (:mod:`.formats`) and loaded in batches: PostgreSQL through
``COPY ... FROM STDIN`` (CSV bytes pass straight through to ``COPY ... (FORMAT csv)``; JSON lines
and Parquet are encoded to COPY's text format batch by batch), every other database through
``executemany``. Modes:

- ``append``: insert into the table (created from the data's columns when missing and
  ``create_table``).
- ``replace``: load a staging table built from the data's columns, then drop the table and rename
  the staging table in its place.
- ``merge``: load a staging table shaped like the table, delete the table's rows whose
  ``key_columns`` match, insert the staged rows.

Everything, the manifest row in ``manifest_table`` included, happens in one transaction: a
failure rolls back and the table is as it was. That needs transactional DDL for ``replace`` and
``merge`` (PostgreSQL and SQLite have it; MySQL, for one, does not). A table this run creates
grows a column when a later batch brings a new field; an existing table does not, and a field
it lacks fails the load. Nested JSON values are stored as JSON text.
"""

from __future__ import annotations

import contextlib
import csv
import io
import itertools
import json
import logging
import re
import secrets
import sqlite3
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import date, datetime, time
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal

from airflow_provider_exports.exceptions import ExportConfigError, TransferError
from airflow_provider_exports.transfers.engine import manifest as manifest_mod
from airflow_provider_exports.transfers.engine.formats import (
    Batch,
    ChunkReader,
    detect_format,
    maybe_gunzip,
    read_batches,
)
from airflow_provider_exports.transfers.engine.sink import Sink, StoredFile, TransferContext

if TYPE_CHECKING:
    from airflow.providers.common.sql.hooks.sql import DbApiHook

    from airflow_provider_exports.transfers.engine.sources import SourceFile

log = logging.getLogger(__name__)

Mode = Literal["append", "replace", "merge"]
MODES: tuple[str, ...] = ("append", "replace", "merge")
_NEEDS_ESCAPE = re.compile(r"[\\\t\n\r]")
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
_CSV_SAMPLE_LINES = 2000
_CSV_SAMPLE_BYTES = 4 << 20
_BOM = b"\xef\xbb\xbf"


def check_load_mode(mode: str, key_columns: Sequence[str]) -> None:
    """``mode`` is one of :data:`MODES`, and ``merge`` names its key columns (checkable at parse time)."""
    if mode not in MODES:
        raise ExportConfigError("mode", f"{mode!r} is not one of {', '.join(MODES)}")
    if mode == "merge" and not key_columns:
        raise ExportConfigError("key_columns", "merge needs the columns that identify a row")


def resolve_db_hook(conn_id: str) -> DbApiHook:
    """The ``DbApiHook`` for an Airflow connection, whatever its database (as S3ToSqlOperator does)."""
    from airflow.providers.common.compat.sdk import BaseHook
    from airflow.providers.common.sql.hooks.sql import DbApiHook

    hook = BaseHook.get_connection(conn_id).get_hook()
    if not isinstance(hook, DbApiHook):
        raise ExportConfigError(
            "conn_id", f"connection {conn_id!r} gives a {type(hook).__name__}, not a SQL (DbApiHook) hook"
        )
    return hook


# --- types ----------------------------------------------------------------------------------------


def _looks_int(v: str) -> bool:
    digits = v[1:] if v[:1] in "+-" else v
    # leading zeros are identifiers (zip codes, ids), not numbers
    return digits.isdigit() and (len(digits) == 1 or digits[0] != "0") and len(digits) <= 18


def _looks_float(v: str) -> bool:
    digits = v[1:] if v[:1] in "+-" else v
    if len(digits) > 1 and digits[0] == "0" and digits[1].isdigit():
        return False  # 02134 is a zip code
    try:
        float(v)
    except ValueError:
        return False
    return v.strip().lower().lstrip("+-") not in ("nan", "inf", "infinity") and not v[:1].isspace()


def infer_sql_type(values: Iterable[Any], *, from_text: bool = False) -> str:
    """A portable SQL type for a column sample; ``from_text`` also reads numbers out of strings."""
    kinds = set(map(type, values)) - {type(None)}
    if not kinds:
        return "TEXT"
    if kinds == {bool}:
        return "BOOLEAN"
    if kinds == {int}:
        return "BIGINT"
    if kinds <= {int, float}:
        return "DOUBLE PRECISION"
    if kinds == {Decimal}:
        return "NUMERIC"
    if kinds == {datetime}:
        return "TIMESTAMP"
    if kinds == {date}:
        return "DATE"
    if kinds == {bytes}:
        return "BINARY"
    if kinds == {str} and from_text:
        texts = [v for v in values if v is not None]
        if all(_looks_int(v) for v in texts):
            return "BIGINT"
        if all(_looks_float(v) for v in texts):
            return "DOUBLE PRECISION"
    return "TEXT"


# --- PostgreSQL COPY text format -----------------------------------------------------------------


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


# --- the sink -------------------------------------------------------------------------------------


class SqlSink(Sink):
    """Load a run's files into ``table`` through a DbApiHook, all in one transaction.

    :param table: destination table, optionally ``schema.table``.
    :param conn_id: the Airflow connection of the database, when no ``hook`` is given.
    :param hook: a ``DbApiHook`` to use instead of resolving ``conn_id``.
    :param mode: ``append``, ``replace`` or ``merge`` (see the module docstring).
    :param key_columns: the columns that identify a row, for ``merge``.
    :param create_table: create a missing table from the data's columns (``replace`` always
        builds a new table from the data).
    :param column_types: SQL types that override the inferred ones, by column name.
    :param file_format: ``jsonl``, ``csv`` or ``parquet``; by default from each file's name.
    :param csv_delimiter: the CSV field separator (Sitecore allows ``,`` and ``|``).
    :param csv_header: whether CSV files start with a header row.
    :param csv_columns: column names for CSV files without a header (or to rename them).
    :param batch_size: rows per batch.
    :param manifest_table: the table that records each committed run's manifest.
    :param use_copy: use PostgreSQL ``COPY``; by default when the database is PostgreSQL.
    :param attribute_columns: file attributes stored in every row of that file, as
        ``{column: attribute}`` (``{"_delta": "delta"}`` marks Sitecore delta rows added or removed).
    """

    max_file_concurrency = 1  # one transaction, one connection: files load one after another

    def __init__(
        self,
        table: str,
        *,
        conn_id: str | None = None,
        hook: DbApiHook | None = None,
        mode: Mode = "append",
        key_columns: Sequence[str] = (),
        create_table: bool = True,
        column_types: Mapping[str, str] | None = None,
        file_format: str | None = None,
        csv_delimiter: str = ",",
        csv_header: bool = True,
        csv_columns: Sequence[str] | None = None,
        batch_size: int = 10_000,
        manifest_table: str = "exports_manifest",
        use_copy: bool | None = None,
        attribute_columns: Mapping[str, str] | None = None,
    ) -> None:
        if not table:
            raise ExportConfigError("table", "a destination table is required")
        check_load_mode(mode, key_columns)
        if hook is None and not conn_id:
            raise ExportConfigError("conn_id", "a database connection id (or a hook) is required")
        if batch_size < 1:
            raise ExportConfigError("batch_size", "must be at least 1")
        self.attribute_columns = dict(attribute_columns or {})
        if file_format is not None:
            detect_format("", file_format)
        self.table = table
        self.conn_id = conn_id
        self._hook = hook
        self.mode = mode
        self.key_columns = list(key_columns)
        self.create_table = create_table
        self.column_types = dict(column_types or {})
        self.file_format = file_format
        self.csv_delimiter = csv_delimiter
        self.csv_header = csv_header
        self.csv_columns = list(csv_columns) if csv_columns else None
        self.batch_size = batch_size
        self.manifest_table = manifest_table
        self.use_copy = use_copy
        self._conn: Any = None
        self._kind = "generic"
        self._ctx: TransferContext | None = None
        self._target_columns: list[str] | None = None
        self._load_table: str | None = None
        self._load_columns: list[str] = []
        self._owned = False
        self._also_alter: str | None = None
        self._stage: str | None = None
        self._from_text = False

    # -- references --------------------------------------------------------------------------

    @property
    def hook(self) -> DbApiHook:
        if self._hook is None:
            assert self.conn_id is not None
            self._hook = resolve_db_hook(self.conn_id)
        return self._hook

    def describe(self) -> dict[str, Any]:
        conn_id = self.conn_id
        if conn_id is None and self._hook is not None:
            conn_id = getattr(self._hook, self._hook.conn_name_attr, None)
        return {"kind": "sql", "conn_id": conn_id, "table": self.table, "mode": self.mode}

    def manifest_location(self) -> str:
        return self.manifest_table

    # -- SQL text ----------------------------------------------------------------------------

    def _quote(self, name: str) -> str:
        fmt = getattr(self._hook, "escape_word_format", None) or '"{}"'
        close = fmt[-1]
        return fmt.format(name.replace(close, close * 2))

    def _qualified(self, table: str) -> str:
        return ".".join(self._quote(part) for part in table.split("."))

    def _sibling(self, suffix: str) -> str:
        schema, _, name = self.table.rpartition(".")
        return f"{schema}.{name}{suffix}" if schema else f"{name}{suffix}"

    def _type_name(self, sql_type: str) -> str:
        if sql_type == "BINARY":
            return {"postgres": "BYTEA", "sqlite": "BLOB"}.get(self._kind, "BINARY")
        return sql_type

    def _placeholder(self) -> str:
        return "?" if self._kind == "sqlite" else getattr(self._hook, "placeholder", "%s")

    # -- connection and transaction ----------------------------------------------------------

    def _connect(self) -> Any:
        conn = self.hook.get_conn()
        module = type(conn).__module__
        if isinstance(conn, sqlite3.Connection):
            self._kind = "sqlite"
            conn.isolation_level = None  # we issue BEGIN ourselves, so DDL is inside the transaction
        elif module.startswith(("psycopg", "psycopg2")):
            self._kind = "postgres"
        return conn

    def _execute(self, sql: str, params: Sequence[Any] | None = None) -> Any:
        cur = self._conn.cursor()
        if params is None:
            cur.execute(sql)
        else:
            cur.execute(sql, params)
        return cur

    def _columns_of(self, conn: Any, table: str) -> list[str] | None:
        cur = conn.cursor()
        try:
            cur.execute(f"SELECT * FROM {self._qualified(table)} WHERE 1=0")
            return [d[0] for d in cur.description]
        except Exception:
            if self._kind != "sqlite":
                conn.rollback()
            return None
        finally:
            cur.close()

    def find_manifest(self, ctx: TransferContext) -> Mapping[str, Any] | None:
        conn = self._connect()
        try:
            if self._columns_of(conn, self.manifest_table) is None:
                return None
            ph = self._placeholder()
            cur = conn.cursor()
            cur.execute(
                f"SELECT manifest FROM {self._qualified(self.manifest_table)} "
                f"WHERE destination = {ph} AND vendor = {ph} AND export_ref = {ph} AND job_ref = {ph}",
                (self.table, ctx.vendor, ctx.export_ref, ctx.job_ref),
            )
            rows = cur.fetchall()
            return manifest_mod.loads(rows[-1][0]) if rows else None
        finally:
            conn.close()

    def begin(self, ctx: TransferContext) -> None:
        self._ctx = ctx
        self._conn = self._connect()
        self._target_columns = self._columns_of(self._conn, self.table)
        self._load_table, self._load_columns, self._stage = None, [], None
        self._owned, self._also_alter = False, None
        if self.use_copy is None:
            self.use_copy = self._kind == "postgres"
        if self._kind == "sqlite":
            self._execute("BEGIN")
        elif self._kind == "generic" and hasattr(self._conn, "autocommit"):
            self.hook.set_autocommit(self._conn, False)

    def commit(self, manifest: Mapping[str, Any]) -> None:
        if self.mode == "replace":
            if self._stage is not None:
                if self._target_columns is not None:
                    self._execute(f"DROP TABLE {self._qualified(self.table)}")
                name = self.table.rpartition(".")[2]
                self._execute(f"ALTER TABLE {self._qualified(self._stage)} RENAME TO {self._quote(name)}")
            elif self._target_columns is not None:
                self._execute(f"DELETE FROM {self._qualified(self.table)}")  # the export was empty
        elif self.mode == "merge" and self._stage is not None:
            target, stage = self._qualified(self.table), self._qualified(self._stage)
            match = " AND ".join(f"s.{self._quote(k)} = {target}.{self._quote(k)}" for k in self.key_columns)
            cols = ", ".join(self._quote(c) for c in self._load_columns)
            self._execute(f"DELETE FROM {target} WHERE EXISTS (SELECT 1 FROM {stage} s WHERE {match})")
            self._execute(f"INSERT INTO {target} ({cols}) SELECT {cols} FROM {stage}")
            self._execute(f"DROP TABLE {stage}")
        self._record_manifest(manifest)
        if self._kind == "sqlite":
            self._execute("COMMIT")
        else:
            self._conn.commit()
        self._close()

    def _record_manifest(self, manifest: Mapping[str, Any]) -> None:
        mt = self._qualified(self.manifest_table)
        self._execute(
            f"CREATE TABLE IF NOT EXISTS {mt} (destination TEXT, vendor TEXT, export_ref TEXT, "
            "job_ref TEXT, committed_at TEXT, manifest TEXT)"
        )
        ph = self._placeholder()
        self._execute(
            f"INSERT INTO {mt} (destination, vendor, export_ref, job_ref, committed_at, manifest) "
            f"VALUES ({ph}, {ph}, {ph}, {ph}, {ph}, {ph})",
            (
                self.table,
                manifest["vendor"],
                manifest["export_ref"],
                manifest["job_ref"],
                manifest["finished_at"],
                manifest_mod.dumps(manifest).decode(),
            ),
        )

    def abort(self) -> None:
        if self._conn is None:
            return
        try:
            if self._kind == "sqlite":
                if self._conn.in_transaction:
                    self._execute("ROLLBACK")
            else:
                self._conn.rollback()
        except Exception:
            log.warning("Rollback of the load into %s failed", self.table, exc_info=True)
        self._close()

    def _close(self) -> None:
        with contextlib.suppress(Exception):  # closing is best effort
            self._conn.close()
        self._conn = None

    # -- shaping the destination -------------------------------------------------------------

    def _create(self, table: str, columns: Sequence[str], types: Mapping[str, str]) -> None:
        cols = ", ".join(f"{self._quote(c)} {self._type_name(types[c])}" for c in columns)
        self._execute(f"CREATE TABLE {self._qualified(table)} ({cols})")

    def _types_for(self, batch: Batch, columns: Sequence[str]) -> dict[str, str]:
        types: dict[str, str] = {}
        by_name = dict(zip(batch.columns, zip(*batch.rows, strict=True), strict=True)) if batch.rows else {}
        for c in columns:
            if c in self.column_types:
                types[c] = self.column_types[c]
            elif batch.types and c in batch.types:
                types[c] = batch.types[c]
            else:
                types[c] = infer_sql_type(by_name.get(c, ()), from_text=self._from_text)
        return types

    def _prepare(self, batch: Batch) -> None:
        """Make sure a table exists that takes ``batch``'s columns; the first batch decides where."""
        if self._load_table is None:
            self._first_batch(batch)
        missing = [c for c in batch.columns if c not in self._load_columns]
        if not missing:
            return
        if not self._owned:
            raise TransferError(
                f"{self.table} has no column {', '.join(repr(c) for c in missing)}; "
                "add it, or load in mode 'replace'"
            )
        assert self._load_table is not None
        tables = [self._load_table, *([self._also_alter] if self._also_alter else [])]
        for column, sql_type in self._types_for(batch, missing).items():
            for table in tables:
                self._execute(
                    f"ALTER TABLE {self._qualified(table)} "
                    f"ADD COLUMN {self._quote(column)} {self._type_name(sql_type)}"
                )
            self._load_columns.append(column)

    def _first_batch(self, batch: Batch) -> None:
        columns = list(batch.columns)
        if self.mode == "replace":
            self._stage = self._sibling(f"__stage_{secrets.token_hex(4)}")
            self._create(self._stage, columns, self._types_for(batch, columns))
            self._load_table, self._load_columns, self._owned = self._stage, columns, True
            return
        if self._target_columns is None:
            if not self.create_table:
                raise ExportConfigError("table", f"{self.table} does not exist and create_table is False")
            self._create(self.table, columns, self._types_for(batch, columns))
            self._target_columns, self._owned = list(columns), True
        if self.mode == "append":
            self._load_table, self._load_columns = self.table, list(self._target_columns)
            return
        absent = [k for k in self.key_columns if k not in self._target_columns]
        if absent:
            raise ExportConfigError("key_columns", f"{self.table} has no column {', '.join(absent)}")
        self._stage = self._sibling(f"__stage_{secrets.token_hex(4)}")
        self._execute(
            f"CREATE TABLE {self._qualified(self._stage)} AS SELECT * FROM {self._qualified(self.table)} WHERE 1=0"
        )
        # a new column goes into the staging table, and into the target too if this run made it
        self._load_table, self._load_columns = self._stage, list(self._target_columns)
        self._also_alter = self.table if self._owned else None
        self._owned = True

    # -- loading -----------------------------------------------------------------------------

    def write_file(self, source: SourceFile, chunks: Iterator[bytes]) -> StoredFile:
        assert self._conn is not None, "begin() first"
        fmt = detect_format(source.name, self.file_format)
        self._from_text = fmt == "csv"
        constants = {col: source.attributes.get(attr) for col, attr in self.attribute_columns.items()}
        if fmt == "csv" and self._kind == "postgres" and self.use_copy and not constants:
            rows = self._copy_csv(chunks)
        else:
            batches = read_batches(
                chunks,
                fmt,
                batch_size=self.batch_size,
                csv_delimiter=self.csv_delimiter,
                csv_header=self.csv_header,
                csv_columns=self.csv_columns,
            )
            if constants:
                batches = _with_constants(batches, constants)
            rows = (
                self._copy_batches(batches)
                if self._kind == "postgres" and self.use_copy
                else self._insert_batches(batches)
            )
        log.debug("%s: %d rows into %s", source.name, rows, self._load_table)
        return StoredFile(location=self.table, rows=rows)

    def _check_cancel(self) -> None:
        if self._ctx is not None and self._ctx.cancel_event.is_set():
            raise TransferError("transfer cancelled")

    def _insert_batches(self, batches: Iterable[Batch]) -> int:
        rows = 0
        ph = self._placeholder()
        cur = self._conn.cursor()
        for batch in batches:
            self._check_cancel()
            self._prepare(batch)
            assert self._load_table is not None
            cols = ", ".join(self._quote(c) for c in batch.columns)
            sql = (
                f"INSERT INTO {self._qualified(self._load_table)} ({cols}) "
                f"VALUES ({', '.join([ph] * len(batch.columns))})"
            )
            data = self._portable(batch) if self._kind == "sqlite" else batch.rows
            cur.executemany(sql, data)
            rows += len(batch.rows)
        cur.close()
        return rows

    @staticmethod
    def _portable(batch: Batch) -> list[tuple[Any, ...]]:
        """SQLite binds text, numbers and bytes only: dates and decimals go in as text."""
        if not batch.types or not {"TIMESTAMP", "TIMESTAMP WITH TIME ZONE", "DATE", "NUMERIC"} & set(
            batch.types.values()
        ):
            return batch.rows
        cols = list(zip(*batch.rows, strict=True))
        for i, name in enumerate(batch.columns):
            if batch.types.get(name) in ("TIMESTAMP", "TIMESTAMP WITH TIME ZONE", "DATE", "NUMERIC"):
                cols[i] = tuple(
                    v.isoformat()
                    if isinstance(v, (datetime, date))
                    else str(v)
                    if isinstance(v, Decimal)
                    else v
                    for v in cols[i]
                )
        return list(zip(*cols, strict=True))

    def _copy_batches(self, batches: Iterable[Batch]) -> int:
        rows = 0
        cur = self._conn.cursor()
        # one COPY per run of batches with the same columns (JSON lines may vary between batches)
        for columns, group in itertools.groupby(batches, key=lambda b: tuple(b.columns)):
            same_columns = list(itertools.islice(group, 1))
            self._prepare(same_columns[0])
            counted: list[int] = []
            table = self._qualified(self._load_table or "")
            sql = f"COPY {table} ({self._cols(columns)}) FROM STDIN"
            batches_here = itertools.chain(same_columns, group)  # noqa: B031 - the rest of the group
            if hasattr(cur, "copy"):
                # psycopg 3 formats rows in C: several times faster than any Python encoding
                with cur.copy(sql) as copy:
                    for batch in batches_here:
                        self._check_cancel()
                        counted.append(len(batch.rows))
                        for row in batch.rows:
                            copy.write_row(row)
            else:
                self._copy(cur, sql, self._encoded(batches_here, counted))
            rows += sum(counted)
        cur.close()
        return rows

    def _encoded(self, batches: Iterable[Batch], counted: list[int]) -> Iterator[bytes]:
        for batch in batches:
            self._check_cancel()
            counted.append(len(batch.rows))
            yield encode_copy_text(batch.rows)

    def _cols(self, columns: Iterable[str]) -> str:
        return ", ".join(self._quote(c) for c in columns)

    def _copy(self, cur: Any, sql: str, data: Iterable[bytes]) -> None:
        if hasattr(cur, "copy"):  # psycopg 3
            with cur.copy(sql) as copy:
                for block in data:
                    copy.write(block)
        else:  # psycopg2 pulls from a file
            cur.copy_expert(sql, io.BufferedReader(ChunkReader(data), 1 << 20))

    def _copy_csv(self, chunks: Iterable[bytes]) -> int:
        """CSV bytes straight into ``COPY ... (FORMAT csv)``; a sample of the head only shapes the table."""
        data = iter(maybe_gunzip(chunks))
        head = b""
        for chunk in data:
            head += chunk
            if head.count(b"\n") > _CSV_SAMPLE_LINES or len(head) > _CSV_SAMPLE_BYTES:
                break
        if head.startswith(_BOM):
            head = head[len(_BOM) :]
        if not head.strip():
            return 0
        complete = head[: head.rfind(b"\n") + 1] or head
        sample: list[list[str]] = []
        with contextlib.suppress(csv.Error):  # the sample only shapes a new table
            text = io.StringIO(complete.decode("utf-8", "replace"))
            sample = list(csv.reader(text, delimiter=self.csv_delimiter))
        sample = [r for r in sample if r]
        if self.csv_header:
            if not sample:
                raise TransferError("the CSV header row could not be read")
            header, sample = sample[0], sample[1:]
        elif not self.csv_columns:
            raise ExportConfigError("csv_columns", "a CSV file without a header row needs its column names")
        columns = self.csv_columns or header
        width = len(columns)
        batch = Batch(
            list(columns), [tuple(v if v != "" else None for v in r) for r in sample if len(r) == width]
        )
        self._prepare(batch)
        cols = self._cols(columns)
        options = [
            "FORMAT csv",
            f"HEADER {'true' if self.csv_header else 'false'}",
            "DELIMITER " + _sql_string(self.csv_delimiter),
            f"FORCE_NULL ({cols})",  # a quoted empty field is NULL too, as in the other paths
            "ENCODING 'UTF8'",
        ]
        cur = self._conn.cursor()

        def stream() -> Iterator[bytes]:
            yield head
            for chunk in data:
                self._check_cancel()
                yield chunk

        self._copy(
            cur,
            f"COPY {self._qualified(self._load_table or '')} ({cols}) FROM STDIN WITH ({', '.join(options)})",
            stream(),
        )
        rows = int(cur.rowcount)
        cur.close()
        return rows


def _sql_string(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _with_constants(batches: Iterable[Batch], constants: Mapping[str, Any]) -> Iterator[Batch]:
    """The same batches with a column per constant appended to every row."""
    names, values = list(constants), tuple(constants.values())
    for batch in batches:
        types = None if batch.types is None else {**batch.types, **dict.fromkeys(names, "TEXT")}
        yield Batch([*batch.columns, *names], [(*row, *values) for row in batch.rows], types)
