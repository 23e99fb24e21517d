"""What the SQL sink needs from a database, and the generic DB-API dialect every other one refines.

A :class:`Dialect` wraps one connection for one load: SQL text (quoting, placeholders, type names,
casts), the transaction (the load lock, savepoints, commit, rollback), the catalog (a table's
columns, temporary staging tables) and the fast way to write rows. :class:`Dialect` itself is the
generic one, for any ``DbApiHook``: ANSI SQL, the hook's placeholder, ``executemany`` in batches,
``CREATE TEMPORARY TABLE``; it claims neither transactional DDL nor savepoints nor a lock between
loads (the manifest table's unique key stops a second load of the same job), nor a row count it can
trust (:meth:`Dialect.rows_written`). PostgreSQL (:mod:`.postgres`) and SQLite (:mod:`.sqlite`)
refine it; :func:`.sink.dialect_for` picks one.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from airflow_provider_exports.exceptions import TransferRefused
from airflow_provider_exports.transfers.engine.formats import Batch
from airflow_provider_exports.transfers.engine.sql.arrow_text import CopyBatch
from airflow_provider_exports.transfers.engine.sql.types import FinalType

if TYPE_CHECKING:
    from airflow.providers.common.sql.hooks.sql import DbApiHook

    from airflow_provider_exports.transfers.engine.cancellation import Cancellation


class Written(NamedTuple):
    """What one write into a table did: the rows it sent, and the rows the database says it took
    (``None`` where the driver's count is not trusted: :meth:`Dialect.rows_written`)."""

    sent: int
    taken: int | None


class ValueRefused(Exception):
    """The database would not take ``value`` into ``column``: at ``row`` (from 1) of the rows one
    write sent (the sink adds the rows of the file before that write; ``None``: not known)."""

    def __init__(self, column: str, row: int | None, value: Any) -> None:
        super().__init__(f"column {column!r}, row {row}")  # never the value: it is the export's data
        self.column, self.row, self.value = column, row, value

    def after(self, rows_before: int) -> ValueRefused:
        """The same refusal, counted from ``rows_before`` rows earlier."""
        return ValueRefused(self.column, None if self.row is None else self.row + rows_before, self.value)

    def found_in(self, rows: Sequence[tuple[Any, ...]], columns: Sequence[str], rows_before: int) -> ValueRefused:
        """Where among ``rows`` (of ``columns``, after ``rows_before`` rows) the value is, when the
        database named it but not its row (an ``INSERT``): its first cell of that text."""
        wanted = [i for i, c in enumerate(columns) if not self.column or c == self.column]
        for n, row in enumerate(rows, rows_before + 1):
            for i in wanted:
                if row[i] is not None and str(row[i]) == self.value:
                    return ValueRefused(columns[i], n, self.value)
        return self


class Dialect:
    """The generic DB-API dialect (see the module docstring); subclasses refine it per database."""

    name = "generic"
    #: whether ``SAVEPOINT`` / ``ROLLBACK TO SAVEPOINT`` are available (restarting one file needs them)
    savepoints = False
    #: whether :meth:`write_batches` takes ``CopyBatch`` blocks made from pyarrow columns
    columnar = False
    #: the type of the manifest table's key columns (VARCHAR(190): four of them fit a MySQL index)
    manifest_key_type = "VARCHAR(190)"
    #: the type of undeclared binary columns (Parquet binary)
    binary_type = "BINARY"
    #: the column type of the logical type ``JSON`` (nested Parquet values as JSON text)
    json_type = "TEXT"
    #: the most significant digits an undeclared ``NUMERIC`` keeps exactly (more: ``TEXT``).
    #: Generic: none; ``NUMERIC`` without precision is ``DECIMAL(10,0)`` on MySQL and
    #: ``NUMERIC(18,0)`` on SQL Server (fractions cut).
    numeric_digits: float = -1
    #: what follows a temporary table's name in ``CREATE TEMPORARY TABLE``
    stage_options = ""
    #: whether the driver's ``rowcount`` after a write is the rows it wrote (:meth:`rows_written`)
    trusts_rowcount = False
    #: whether a column's type can change within a load (:meth:`retype_column`); else the columns a
    #: load makes get their final type from the values so far, and a value that needs a wider one refuses
    retypes = False
    #: whether :meth:`misfit` checks values before they go into an existing table's columns
    checks_values = False
    #: whether DDL (``ALTER TABLE``) is part of the transaction (not in MySQL, where it commits):
    #: else a load that may add columns stages its rows, and adds them at commit, before any write
    transactional_ddl = False

    def __init__(self, hook: DbApiHook, conn: Any) -> None:
        self.hook = hook
        self.conn = conn

    # -- SQL text ------------------------------------------------------------------------------

    def quote(self, name: str) -> str:
        fmt = getattr(self.hook, "escape_word_format", None) or '"{}"'
        close = fmt[-1]
        return fmt.format(name.replace(close, close * 2))

    def qualified(self, table: str) -> str:
        return ".".join(self.quote(part) for part in table.split("."))

    @property
    def placeholder(self) -> str:
        return getattr(self.hook, "placeholder", None) or "%s"

    def type_name(self, final: FinalType) -> str:
        """The column type for ``final`` in a table the load creates."""
        if final.name == "BINARY":
            return self.binary_type
        if final.name == "JSON":
            return self.json_type
        if final.name == "NUMERIC" and not final.declared and final.digits > self.numeric_digits:
            return "TEXT"
        return final.name

    def cast(self, expr: str, sql_type: str) -> str:
        """``expr`` (staged text) as ``sql_type``."""
        if sql_type == "TEXT":
            return expr
        if sql_type == "BOOLEAN":  # CAST('true' AS BOOLEAN) is 0 in SQLite and an error in MySQL
            return f"CASE {expr} WHEN 'true' THEN TRUE WHEN 'false' THEN FALSE END"
        return f"CAST({expr} AS {sql_type})"

    # -- connection and transaction ---------------------------------------------------------------

    def prepare(self, lock_timeout: float) -> None:
        """Set the connection up for one explicit transaction."""
        if getattr(self.hook, "supports_autocommit", False):
            self.hook.set_autocommit(self.conn, False)

    def execute(self, sql: str, params: Sequence[Any] | None = None) -> Any:
        cur = self.conn.cursor()
        if params is None:
            cur.execute(sql)
        else:
            cur.execute(sql, params)
        return cur

    def query(self, sql: str, params: Sequence[Any] | None = None) -> list[tuple[Any, ...]]:
        cur = self.execute(sql, params)
        try:
            return list(cur.fetchall())
        finally:
            cur.close()

    def setup(self, statements: Sequence[str], *, lock_name: str) -> None:
        """Run ``statements`` (idempotent DDL: the manifest table) in a short transaction of their
        own, under the lock of ``lock_name`` (concurrent set-ups can collide in the catalog)."""
        self.lock(lock_name, None)
        try:
            for sql in statements:
                self.execute(sql).close()
            self.commit()
        except BaseException:
            self.rollback()
            raise

    def lock(self, table: str, cancellation: Cancellation | None) -> None:
        """Start the load's transaction and wait for other loads of ``table`` to finish.
        Generic: no lock (the manifest table's unique key still stops a second load of a job)."""

    def _wait(
        self, sql: str, params: Sequence[Any] | None, cancellation: Cancellation | None, interrupt: Any
    ) -> None:
        """Run ``sql`` (a wait for a lock); a cancelled task stops waiting at once (``interrupt``)."""
        with contextlib.nullcontext() if cancellation is None else cancellation.interrupting(interrupt):
            try:
                self.execute(sql, params).close()
            except Exception:
                if cancellation is not None:
                    cancellation.check()  # the cancel, not the database, stopped the wait
                raise

    def commit(self) -> None:
        self.conn.commit()

    def rollback(self) -> None:
        self.conn.rollback()

    def close(self) -> None:
        with contextlib.suppress(Exception):  # closing is best effort
            self.conn.close()

    def savepoint(self, name: str) -> None:
        self.execute(f"SAVEPOINT {self.quote(name)}").close()

    def rollback_to(self, name: str) -> None:
        self.execute(f"ROLLBACK TO SAVEPOINT {self.quote(name)}").close()
        self.release(name)

    def release(self, name: str) -> None:
        self.execute(f"RELEASE SAVEPOINT {self.quote(name)}").close()

    # -- catalog ------------------------------------------------------------------------------

    def table_columns(self, table: str) -> list[str] | None:
        """``table``'s columns in order, or ``None`` when it does not exist."""
        try:
            cur = self.execute(f"SELECT * FROM {self.qualified(table)} WHERE 1=0")
        except Exception:
            self.rollback()  # nothing is written yet: only the failed probe is rolled back
            return None
        try:
            return [d[0] for d in cur.description]
        finally:
            cur.close()

    def column_types(self, table: str) -> dict[str, str]:
        """``table``'s columns and their types, where the catalog says (generic: not asked)."""
        return {}

    def add_columns(self, table: str, columns: Sequence[tuple[str, str]]) -> None:
        """Add nullable ``columns`` (name, type) to ``table``: one ``ALTER TABLE`` each (SQLite's
        takes one at a time)."""
        for column, sql_type in columns:
            self.execute(f"ALTER TABLE {self.qualified(table)} ADD COLUMN {self.quote(column)} {sql_type}").close()

    def retype_column(self, table: str, column: str, old: str, new: str) -> None:
        """Widen ``column``, made by this load as ``old``, to ``new``: only while it holds no value
        (made again; its first values were all NULL), else refused: no ``ALTER COLUMN ... TYPE`` here."""
        qualified, col = self.qualified(table), self.quote(column)
        ((values,),) = self.query(f"SELECT count({col}) FROM {qualified}")
        if not values:
            self.execute(f"ALTER TABLE {qualified} DROP COLUMN {col}").close()
            self.add_columns(table, [(column, new)])
            return
        raise TransferRefused(
            f"column {column!r} of {table} was made {old} from its first values, and later values need "
            f"{new}; {self.name} cannot change a column's type within a load: set column_types="
            f"{{{column!r}: {new!r}}}"
        )

    def refused_value(self, exc: BaseException, columns: Sequence[str]) -> ValueRefused | None:
        """The value a write of ``columns`` failed on, when ``exc`` says which (generic: it cannot tell)."""
        return None

    def misfit(self, values: Sequence[Any], sql_type: str) -> int | None:
        """The index of the first of ``values`` that a column of ``sql_type`` would take as another
        type without an error (generic: not checked; the database refuses, or not)."""
        return None

    def unique_index_sql(self, table: str, columns: Sequence[str]) -> str | None:
        """``CREATE UNIQUE INDEX IF NOT EXISTS`` on ``table``, where the database has it (generic: no)."""
        return None

    def create_stage(self, stage: str, columns: Sequence[tuple[str, str]]) -> None:
        """A session-local table: no name clash between runs, nothing left after a crash."""
        cols = ", ".join(f"{self.quote(c)} {t}" for c, t in columns)
        self.execute(f"CREATE TEMPORARY TABLE {self.quote(stage)} ({cols}){self.stage_options}").close()

    def create_stage_as(self, stage: str, select: str) -> None:
        """A session-local table shaped (and filled) by ``select``."""
        self.execute(f"CREATE TEMPORARY TABLE {self.quote(stage)}{self.stage_options} AS {select}").close()

    def add_stage_column(self, stage: str, column: str, sql_type: str) -> None:
        self.execute(f"ALTER TABLE {self.quote(stage)} ADD COLUMN {self.quote(column)} {sql_type}").close()

    def index_stage(self, stage: str, columns: Sequence[str]) -> None:
        """An index on the stage's key columns, so merging is not quadratic."""
        cols = ", ".join(self.quote(c) for c in columns)
        self.execute(f"CREATE INDEX {self.quote(stage + '_keys')} ON {self.quote(stage)} ({cols})").close()

    # -- loading ------------------------------------------------------------------------------

    def rows_written(self, cur: Any) -> int | None:
        """The rows the statement just run on ``cur`` wrote, as the driver reports them; ``None``
        where its report is not to be trusted (:attr:`trusts_rowcount`).

        Generic: ``None``. DB-API leaves ``rowcount`` after ``executemany`` to the driver, and
        drivers differ (the sum, the last statement's count, ``-1``, even ``0``), so a count from an
        unknown driver could refuse a good load. What is checked instead: rows staged in a table
        only this load writes (a session stage, a new table, a group's staging table) are counted
        with ``count(*)`` before they move on; rows ``executemany`` inserts straight into an existing
        table are not counted again (each one is bound as its own ``INSERT``: no byte of the data
        can end it early, as ``\\.`` ends a COPY).
        """
        count = cur.rowcount if self.trusts_rowcount else None
        return None if count is None or count < 0 else int(count)

    def bindable(self, batch: Batch) -> Sequence[tuple[Any, ...]]:
        """The batch's rows as the driver can bind them."""
        return batch.rows

    def write_batches(
        self,
        table: str,
        batches: Iterable[Batch | CopyBatch],
        prepare: Callable[[list[str]], None],
        cancellation: Cancellation,
        *,
        bulk: bool,
    ) -> Written:
        """Write every batch into ``table`` (quoted, possibly qualified): one statement per run of
        batches with the same columns (JSON lines may vary between batches), through the database's
        bulk path (``bulk``: PostgreSQL ``COPY``) or ``executemany``; ``prepare`` takes each run's
        columns first. Returns the rows sent, and taken as far as the driver says."""
        write = self._write_bulk if bulk else self._write_inserts
        sent = 0
        taken: int | None = 0
        cur = self.conn.cursor()
        try:
            for (columns, copy_format), run in itertools.groupby(batches, key=lambda b: (list(b.columns), _format(b))):
                prepare(columns)
                counted: list[int] = []
                try:
                    written = write(cur, table, columns, copy_format, _counted(run, counted, cancellation))
                except ValueRefused as found:  # found by the write, within this run
                    raise found.after(sent) from None
                except Exception as exc:
                    refused = self.refused_value(exc, columns)
                    if refused is None:
                        raise
                    raise refused.after(sent) from None  # PostgreSQL's message would show the value
                sent += sum(counted)
                taken = None if taken is None or written is None else taken + written
        finally:
            cur.close()
        return Written(sent, taken)

    def _write_inserts(
        self, cur: Any, table: str, columns: list[str], copy_format: str | None, batches: Iterable[Batch]
    ) -> int | None:
        """One run of row batches (``copy_format`` ``None``) through ``executemany``; the rows it took."""
        cols = ", ".join(self.quote(c) for c in columns)
        sql = f"INSERT INTO {table} ({cols}) VALUES ({', '.join([self.placeholder] * len(columns))})"
        taken: int | None = 0
        done = 0
        for batch in batches:
            try:
                cur.executemany(sql, self.bindable(batch))
            except Exception as exc:
                refused = self.refused_value(exc, columns)
                if refused is None or refused.row is not None:
                    raise
                raise refused.found_in(batch.rows, columns, done) from None
            done += len(batch.rows)
            written = self.rows_written(cur) if batch.rows else 0
            taken = None if taken is None or written is None else taken + written
        return taken

    _write_bulk = _write_inserts  # generic: no bulk path


def _format(batch: Batch | CopyBatch) -> str | None:
    """The ``COPY`` format of a batch of ``COPY`` data (``csv``, ``binary``); ``None`` for rows."""
    if isinstance(batch, CopyBatch):
        return "binary" if batch.binary else "csv"
    return None


def _counted(batches: Iterable[Any], counted: list[int], cancellation: Cancellation) -> Iterator[Any]:
    """The batches, each counted into ``counted`` as it goes (the task's cancellation checked)."""
    for batch in batches:
        cancellation.check()
        counted.append(batch.num_rows if isinstance(batch, CopyBatch) else len(batch.rows))
        yield batch
