"""The SQL sink: load a run's files into a table through a common-sql ``DbApiHook``, in one transaction.

What a load does (types, modes, locks, what readers see, every row counted) is docs/engine.md's ("SQL:
types, modes and what readers see"); the database's own ways (COPY, locks, binding rules) are its
dialect's (:func:`dialect_for`). Rows go straight into an existing table (``append``, ``replace``);
for a new table, or ``merge``, they go into a session-local stage, moved at commit
(:mod:`.from_stage`). A file that starts again (its source changed) is rolled back to a savepoint
taken before it, Python-side state included. Everything, the manifest row included, commits at
once; a failure rolls back and the table is as it was.

A table the load creates (PostgreSQL, not ``merge``) is created at the first rows and filled
directly, each column typed as far as the values so far go (:meth:`.types.TypeTracker.loading`):
a later value that needs a wider type widens the column exactly (``ALTER``), and columns whose
values only their text can tell apart are cast once at commit.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow_provider_exports.exceptions import (
    ExportConfigError,
    TransferError,
    TransferRefused,
)
from airflow_provider_exports.transfers.engine.formats import Batch, detect_format, read_batches
from airflow_provider_exports.transfers.engine.sink import Sink, StoredFile, TransferContext
from airflow_provider_exports.transfers.engine.sql import created_table
from airflow_provider_exports.transfers.engine.sql.arrow_batches import copy_batch
from airflow_provider_exports.transfers.engine.sql.arrow_readers import ArrowBatch, read_ahead, read_columnar
from airflow_provider_exports.transfers.engine.sql.arrow_text import CopyBatch
from airflow_provider_exports.transfers.engine.sql.counting import check_taken, insert_counted
from airflow_provider_exports.transfers.engine.sql.csv_passthrough import Unread, copy_csv_file
from airflow_provider_exports.transfers.engine.sql.dialects import dialect_for, resolve_db_hook
from airflow_provider_exports.transfers.engine.sql.drift import SchemaDrift, refusal
from airflow_provider_exports.transfers.engine.sql.file_columns import SOURCE_FILE, with_constants
from airflow_provider_exports.transfers.engine.sql.from_stage import (
    ORDINAL,
    STAGE,
    add_columns,
    cast_list,
    create_table,
    merge,
    prepare_stage,
)
from airflow_provider_exports.transfers.engine.sql.generic import Dialect, ValueRefused, Written
from airflow_provider_exports.transfers.engine.sql.load_state import FileSavepoint, LoadState
from airflow_provider_exports.transfers.engine.sql.manifest_table import (
    find_manifest,
    record_manifest,
    set_up_manifest_table,
)
from airflow_provider_exports.transfers.engine.sql.modes import Mode, OnSchemaChange, check_load_mode
from airflow_provider_exports.transfers.engine.sql.postgres import PostgresDialect
from airflow_provider_exports.transfers.engine.sql.types import TypeTracker
from airflow_provider_exports.transfers.engine.streams import has_module as _has_module

if TYPE_CHECKING:
    from airflow.providers.common.sql.hooks.sql import DbApiHook

    from airflow_provider_exports.transfers.engine.cancellation import Cancellation
    from airflow_provider_exports.transfers.engine.sources import SourceFile

log = logging.getLogger(__name__)


class SqlSink(Sink):
    """Load a run's files into ``table`` through a DbApiHook, all in one transaction.

    :param table: destination table, optionally ``schema.table``.
    :param conn_id: the Airflow connection of the database, when no ``hook`` is given.
    :param hook: a ``DbApiHook`` to use instead of resolving ``conn_id``.
    :param mode: ``append``, ``replace`` or ``merge`` (see docs/engine.md, "Modes").
    :param key_columns: the columns that identify a row, for ``merge``.
    :param create_table: create a missing table from the data's columns.
    :param on_schema_change: what a field an existing table has no column for does:
        ``append_new_columns`` (a nullable column typed from its values, added in the load's
        transaction), ``fail`` or ``ignore`` (its values dropped); see :mod:`.drift`.
    :param column_types: SQL types for a table this run creates, or columns it adds, by column;
        they win over the types read from the data (an existing column keeps its own type).
    :param file_format: ``jsonl``, ``csv`` or ``parquet``; by default from each file's name.
    :param csv_delimiter: the CSV field separator (Sitecore allows ``,`` and ``|``).
    :param csv_header: whether CSV files start with a header row.
    :param csv_columns: column names for CSV files without a header (or to rename them).
    :param batch_size: rows per batch.
    :param manifest_table: the table that records each committed run's manifest.
    :param use_copy: let the dialect use its bulk path (PostgreSQL ``COPY``); ``False`` inserts
        with ``executemany``.
    :param attribute_columns: file attributes stored in every row of that file, as
        ``{column: attribute}`` (``{"_delta": "delta"}`` marks Sitecore delta rows added or removed).
        Every row also gets the name of its file in :data:`SOURCE_FILE`: always in a table the
        load creates; in an existing table when it has that column (else the load goes on
        without it, and says so once).
    :param removed_when: ``(column, value)``: in mode ``merge``, a row whose ``column`` (an
        attribute column) holds ``value`` deletes its key's row instead of being loaded (Sitecore's
        delta rows marked ``removed``); ``column`` is loaded only into an existing table having it.
    :param batch_transform: reshapes every file's batches before they are loaded (e.g.
        :class:`~airflow_provider_exports.transfers.engine.transforms.Unpivot`); the manifest still
        records the file's bytes as the vendor served them.
    :param allow_empty: let ``replace`` commit a load without any row (the table is emptied).
    :param flatten_structs: spread Parquet struct fields over columns named ``parent_child_leaf``
        instead of one JSON column per struct (lists and maps stay JSON).
    :param lock_timeout: seconds a load waits for another load of the same table (or, in SQLite,
        of the same database file) before it fails.
    """

    max_file_concurrency = 1  # one transaction, one connection: files load one after another
    #: a table the load creates is filled directly (else through the stage, as ``merge`` is)
    creates_directly = True

    def __init__(
        self,
        table: str,
        *,
        conn_id: str | None = None,
        hook: DbApiHook | None = None,
        mode: Mode = "append",
        key_columns: Sequence[str] = (),
        create_table: bool = True,
        on_schema_change: OnSchemaChange = "append_new_columns",
        column_types: Mapping[str, str] | None = None,
        file_format: str | None = None,
        csv_delimiter: str = ",",
        csv_header: bool = True,
        csv_columns: Sequence[str] | None = None,
        batch_size: int = 10_000,
        manifest_table: str = "exports_manifest",
        use_copy: bool | None = None,
        attribute_columns: Mapping[str, str] | None = None,
        removed_when: Sequence[str] | None = None,
        batch_transform: Callable[[Iterable[Batch]], Iterable[Batch]] | None = None,
        allow_empty: bool = False,
        lock_timeout: float = 600.0,
        flatten_structs: bool = False,
    ) -> None:
        if not table:
            raise ExportConfigError("table", "a destination table is required")
        check_load_mode(mode, key_columns)
        if hook is None and not conn_id:
            raise ExportConfigError("conn_id", "a database connection id (or a hook) is required")
        if batch_size < 1:
            raise ExportConfigError("batch_size", "must be at least 1")
        if lock_timeout <= 0:
            raise ExportConfigError("lock_timeout", "must be more than 0 seconds")
        if file_format is not None:
            detect_format("", file_format)
        self.table = table
        self.conn_id = conn_id
        self._hook = hook
        self.mode = mode
        self.key_columns = list(key_columns)
        self.create_table = create_table
        self.on_schema_change = on_schema_change
        self._drift = SchemaDrift(table, on_schema_change)
        self.column_types = dict(column_types or {})
        self.file_format = file_format
        self.csv_delimiter = csv_delimiter
        self.csv_header = csv_header
        self.csv_columns = list(csv_columns) if csv_columns else None
        self.batch_size = batch_size
        self.manifest_table = manifest_table
        self.use_copy = use_copy
        self.attribute_columns = dict(attribute_columns or {})
        if removed_when is not None and len(removed_when) != 2:
            raise ExportConfigError("removed_when", f"{removed_when!r} is not a (column, value) pair")
        self.removed_when = (str(removed_when[0]), str(removed_when[1])) if removed_when and mode == "merge" else None
        self.batch_transform = batch_transform
        self.allow_empty = allow_empty
        self.lock_timeout = lock_timeout
        self.flatten_structs = flatten_structs
        self._db: Dialect | None = None
        self._ctx: TransferContext | None = None
        self._target: list[str] | None = None  # the table's columns when it existed at begin
        self._target_types: dict[str, str] = {}  # and their types, where the catalog says
        self._columns_added: list[str] = []  # by this load (on_schema_change), once committed
        self._not_binary: set[Any] = set()  # (SQL types, Arrow types, staged) of batches sent as text
        self._read_not_copied: set[str] = set()  # CSV files whose quotes COPY would read otherwise
        self._without_source_file_said = False
        self._had_manifest = False
        self._emptied = False
        self._state = LoadState(TypeTracker(self.column_types))
        self._savepoint = FileSavepoint()

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
        added = {"columns_added": list(self._columns_added)} if self._columns_added else {}
        return {"kind": "sql", "conn_id": conn_id, "table": self.table, "mode": self.mode, **added}

    def manifest_location(self) -> str:
        return self.manifest_table

    @property
    def _dialect(self) -> Dialect:
        """The load's database, through its dialect (between ``begin`` and the end of the run)."""
        assert self._db is not None, "begin() first"
        return self._db

    @property
    def _direct(self) -> bool:
        """Rows go straight into the table: it exists, the mode is not merge, and a column the load
        adds is added in its transaction (else the rows are staged, and columns added at commit)."""
        return (
            self._target is not None
            and self.mode != "merge"
            and (self._dialect.transactional_ddl or not self._drift.appends)
        )

    @property
    def _creating(self) -> bool:
        """Rows go straight into a table the load creates (PostgreSQL: its DDL is transactional)."""
        return (
            self.creates_directly
            and self._target is None
            and self.mode != "merge"
            and isinstance(self._dialect, PostgresDialect)
        )

    # -- the run -----------------------------------------------------------------------------

    def begin(self, ctx: TransferContext) -> Mapping[str, Any] | None:
        self._ctx = ctx
        self._db = dialect_for(self.hook, self.hook.get_conn())
        self._emptied, self._savepoint, self._without_source_file_said = False, FileSavepoint(), False
        self._columns_added = []
        self._state = LoadState(TypeTracker(self.column_types))
        try:
            self._dialect.prepare(self.lock_timeout)
            existing = self._lock_and_find(ctx)
            self._target = self._dialect.table_columns(self.table)
            self._target_types = {} if self._target is None else self._dialect.column_types(self.table)
            marker = self.removed_when[0] if self.removed_when else None
            self._drift.start(self._target, marker if marker not in (self._target or ()) else None)
            self._check_target()
        except BaseException:
            self.abort()
            raise
        self._had_manifest = existing is not None
        return existing

    def _lock_and_find(self, ctx: TransferContext) -> Mapping[str, Any] | None:
        """Take the load's lock, then look for the job's manifest row (a second run waits, then skips)."""
        d = self._dialect
        set_up_manifest_table(d, self.manifest_table)
        d.lock(self.table, ctx.cancellation)
        return find_manifest(d, self.manifest_table, (self.table, ctx.vendor, ctx.export_ref, ctx.job_ref))

    def _check_target(self) -> None:
        if self._target is None or self.mode != "merge":
            return
        absent = [k for k in self.key_columns if k not in self._target]
        if absent:
            raise ExportConfigError("key_columns", f"{self.table} has no column {', '.join(absent)}")
        if ORDINAL in self._target:
            raise TransferRefused(f"{self.table} has a column {ORDINAL!r}, a name the merge needs")

    def write_file(self, source: SourceFile, chunks: Iterator[bytes]) -> StoredFile:
        d, cancellation = self._dialect, self._cancellation
        cancellation.check()
        if self._direct and self.mode == "replace" and not self._emptied:
            d.execute(f"DELETE FROM {d.qualified(self.table)}").close()
            self._emptied = True
        if self._dialect.savepoints:
            self._savepoint.open(self._dialect, source.name, self._state)
        fmt = detect_format(source.name, self.file_format)
        constants = self._constants(source)
        bulk = self.use_copy is not False and self.batch_transform is None
        try:
            written = self._write_file(source, chunks, fmt, constants, bulk)
        except ValueRefused as refused:
            column = refused.column
            sql_type = self._target_types.get(column) or self._state.made.get(column)
            raise refusal(source.name, self.table, sql_type, refused) from None
        check_taken(self._dialect, self.table, source.name, written.sent, written.taken)
        self._state.confirmed = self._state.confirmed and written.taken is not None
        self._state.rows += written.sent
        log.debug("%s: %d rows for %s", source.name, written.sent, self.table)
        return StoredFile(location=self.table, rows=written.sent)

    def _write_file(
        self, source: SourceFile, chunks: Iterator[bytes], fmt: str, constants: Mapping[str, Any], bulk: bool
    ) -> Written:
        """The file's rows: CSV into an existing PostgreSQL table as its bytes came, else read."""
        d, cancellation = self._dialect, self._cancellation
        passes = self._direct and fmt == "csv" and bulk and source.name not in self._read_not_copied
        if passes and isinstance(d, PostgresDialect):
            passed = copy_csv_file(
                d,
                self.table,
                source.name,
                chunks,
                delimiter=self.csv_delimiter,
                header=self.csv_header,
                columns=self.csv_columns,
                constants=constants,
                check_columns=lambda names: self._drift.passes(source.name, names, list(constants)),
                cancellation=cancellation,
                read_not_copied=self._read_not_copied,
            )
            if not isinstance(passed, Unread):
                return passed
            chunks = passed.chunks  # a field the table lacks: its values are read (and typed)
        columnar = bulk and d.columnar and _has_pyarrow()
        return self._write_batches(source, chunks, fmt, constants, columnar=columnar)

    def _constants(self, source: SourceFile) -> dict[str, Any]:
        """The columns every row of ``source`` gets: its attributes, then its name (when the table
        takes it: an existing table without the column is loaded as before, said once)."""
        constants = {col: source.attributes.get(attr) for col, attr in self.attribute_columns.items()}
        if self._target is None or SOURCE_FILE in self._target:
            constants[SOURCE_FILE] = source.name
        elif not self._without_source_file_said:
            self._without_source_file_said = True
            log.warning(
                "%s has no column %r: its rows are loaded without the name of their file (add the "
                "column, TEXT, to the table to record it)",
                self.table,
                SOURCE_FILE,
            )
        return constants

    def _write_batches(
        self,
        source: SourceFile,
        chunks: Iterator[bytes],
        fmt: str,
        constants: Mapping[str, Any],
        *,
        columnar: bool,
    ) -> Written:
        """The file's rows, read in batches (``columnar``: as pyarrow blocks), into the table or the stage."""
        d, cancellation = self._dialect, self._cancellation
        batches: Iterator[Any] = (
            read_columnar(
                chunks,
                fmt,
                batch_size=self.batch_size,
                flatten_structs=self.flatten_structs,
                csv_delimiter=self.csv_delimiter,
                csv_header=self.csv_header,
                csv_columns=self.csv_columns,
                # a new table's CSV block may go as it came: only unsettled columns need reading
                csv_settled=self._settled if self._creating else None,
                fixed_types=self._target_types if self._direct else self.column_types if self._creating else {},
                cancellation=cancellation,
            )
            if columnar
            else read_batches(
                chunks,
                fmt,
                batch_size=self.batch_size,
                csv_delimiter=self.csv_delimiter,
                csv_header=self.csv_header,
                csv_columns=self.csv_columns,
                flatten_structs=self.flatten_structs,
            )
        )
        if self.batch_transform is not None:
            batches = iter(self.batch_transform(batches))
        if constants:
            batches = with_constants(batches, constants, source.name)
        if self._direct:
            target, prepare = d.qualified(self.table), self._drift.check
        else:
            target, prepare = d.quote(STAGE), self._prepare_stage
        shaped = self._shaped(batches, source, from_text=fmt == "csv")
        state = self._state
        # the columns the load makes (a new table's, or those it adds) are shaped batch by batch
        makes = self._creating or (self._direct and self._drift.appends)
        items: Iterator[Any] = (
            created_table.with_shapes(
                shaped, state.seen if self._creating else state.added, state.tracker, d, self._target or ()
            )
            if makes
            else shaped
        )
        # pyarrow blocks: the next one is parsed while this one loads
        with read_ahead(items, cancellation) if columnar else contextlib.nullcontext(items) as ahead:
            if makes:
                return created_table.write_created(
                    d,
                    self.table,
                    ahead,
                    state.made,
                    create_table=self.create_table,
                    exists=self._target is not None,
                    cancellation=cancellation,
                    bulk=self.use_copy is not False,
                )
            return d.write_batches(target, ahead, prepare, cancellation, bulk=self.use_copy is not False)

    def discard_file(self, source: SourceFile) -> None:
        if not self._dialect.savepoints:
            raise TransferError(
                f"{source.name} changed at the source; the {self._dialect.name} dialect has no savepoints "
                "to restart one file, so the load stops and rolls back"
            )
        self._state = self._savepoint.restore(self._dialect, source.name)

    def commit(self, manifest: Mapping[str, Any]) -> Mapping[str, Any] | None:
        d, state = self._dialect, self._state
        self._cancellation.check()
        self._savepoint.release(self._dialect)
        if self.mode == "replace" and state.rows == 0 and not self.allow_empty:
            raise TransferRefused(
                f"the export has no rows: mode 'replace' would empty {self.table}, which keeps what it "
                "had (set allow_empty=True to commit an empty load)"
            )
        if self._direct:
            if self.mode == "replace" and not self._emptied:
                d.execute(f"DELETE FROM {d.qualified(self.table)}").close()
            if state.made and d.retypes:
                created_table.settle_types(d, self.table, state.made, state.tracker)
            self._columns_added = self._columns_added or list(state.made)  # (or added by gather)
        elif self._creating:
            created_table.settle_types(d, self.table, state.made, state.tracker)
        elif state.stage_exists:
            loaded = [c for c in state.seen if c != self._drift.marker]  # not a column: marks removals
            types = create_table(d, self.table, state.tracker, loaded) if self._target is None else None
            added = self._add_columns(loaded)  # before a DELETE: DDL may commit (generic)
            if self.mode == "merge":
                if not state.confirmed:
                    check_taken(d, self.table, f"the stage of {self.table}", state.rows, None, d.quote(STAGE))
                merge(d, self.table, self.key_columns, loaded, state.tracker, types, self.removed_when, added)
            else:
                if self.mode == "replace" and types is None:
                    d.execute(f"DELETE FROM {d.qualified(self.table)}").close()
                cols = ", ".join(d.quote(c) for c in loaded)
                insert_counted(
                    d,
                    self.table,
                    f"the stage of {self.table}",
                    state.rows,
                    f"INSERT INTO {d.qualified(self.table)} ({cols}) "
                    f"SELECT {cast_list(d, state.tracker, types or added, loaded)} FROM {d.quote(STAGE)}",
                    d.qualified(self.table) if types is not None else d.quote(STAGE),
                )
        elif self.mode == "replace" and self._target is not None:  # staged, and no row came
            d.execute(f"DELETE FROM {d.qualified(self.table)}").close()
        if self._columns_added:  # the manifest row says which columns this load added
            manifest = {**manifest, "destination": {**manifest["destination"], "columns_added": self._columns_added}}
        job = (self.table, manifest["vendor"], manifest["export_ref"], manifest["job_ref"])
        # or the manifest of a concurrent run of the same job that committed first
        winner = record_manifest(d, self.manifest_table, job, manifest, replace=self._had_manifest)
        if winner is None:
            d.commit()
        self._close()
        return winner

    def abort(self) -> None:
        if self._db is None:
            return
        try:
            self._db.rollback()
        except Exception:
            log.warning("Rollback of the load into %s failed", self.table, exc_info=True)
        self._close()

    def _close(self) -> None:
        if self._db is not None:
            self._db.close()
        self._db = None

    @property
    def _cancellation(self) -> Cancellation:
        assert self._ctx is not None
        return self._ctx.cancellation

    # -- shaping the stage and the table -----------------------------------------------------------

    def _add_columns(self, loaded: Sequence[str]) -> dict[str, str]:
        """At commit, the ``loaded`` columns the existing table lacks, added (staged: typed now)."""
        new = self._drift.new(loaded) if self._drift.appends else []
        self._columns_added = list(new)
        return add_columns(self._dialect, self.table, self._state.tracker, new) if new else {}

    def _prepare_stage(self, columns: Sequence[str]) -> None:
        if self._target is not None:
            self._drift.check(columns)
        prepare_stage(
            self._dialect,
            self._state,
            columns,
            table=self.table,
            target=self._target,
            create_table=self.create_table,
            merge=self.mode == "merge",
        )

    def _shaped(
        self, batches: Iterable[Any], source: SourceFile, *, from_text: bool
    ) -> Iterator[Batch | CopyBatch]:
        """The batches as the table or the stage takes them, after noting the types they declare (a
        conflict between files refuses): the fields ``on_schema_change="ignore"`` drops dropped;
        undeclared values of the columns the load makes typed (and as text, unless they go straight
        into a table that cannot retype: their own types bind); values an existing column would
        not hold as they are refused (:meth:`.generic.Dialect.misfit`); for merge each row numbered
        in export order; pyarrow blocks as ``COPY`` CSV."""
        d, rows_before = self._dialect, 0
        as_text = not (self._direct and not d.retypes)
        for batch in map(self._drift.kept, batches):
            state = self._state  # read per batch: a discarded file restores an earlier state
            if ORDINAL in batch.columns:
                raise TransferRefused(f"{source.name} has a column {ORDINAL!r}, a name the loader needs")
            for column in batch.columns:
                if column in self.attribute_columns or column == SOURCE_FILE:
                    state.tracker.declare(column, "TEXT", source.name)
                elif batch.types and column in batch.types:
                    state.tracker.declare(column, batch.types[column], source.name)
            if isinstance(batch, ArrowBatch):
                yield self._shaped_arrow(batch, source)
                continue
            columns, rows = list(batch.columns), batch.rows
            checked = [c for c in columns if c in self._target_types] if d.checks_values else []
            observed = [c for c in columns if self._observes(c) and state.tracker.declared(c) is None]
            if rows and (checked or observed):
                by_column: list[Sequence[Any]] = list(zip(*rows, strict=True))
                changed = False
                for i, name in enumerate(columns):
                    if name in checked and (at := d.misfit(by_column[i], self._target_types[name])) is not None:
                        found = ValueRefused(name, rows_before + at + 1, by_column[i][at])
                        raise refusal(source.name, self.table, self._target_types[name], found)
                    if name in observed:
                        text = state.tracker.observe(name, by_column[i], source.name, from_text=from_text)
                        changed = changed or (as_text and text is not by_column[i])
                        by_column[i] = text if as_text else by_column[i]
                if changed:
                    rows = list(zip(*by_column, strict=True))
            rows_before += len(rows)
            if self.mode == "merge":
                start = state.ordinal
                rows = [(*row, n) for n, row in enumerate(rows, start)]
                state.ordinal += len(rows)
                columns.append(ORDINAL)
            yield Batch(columns, rows, batch.types)

    def _shaped_arrow(self, batch: ArrowBatch, source: SourceFile) -> CopyBatch:
        """A columnar batch as :meth:`_shaped` gives a row batch (the same text and types), as
        ``COPY`` data (:func:`.arrow_batches.copy_batch`)."""
        state = self._state
        merge = self.mode == "merge"
        shaped = copy_batch(
            batch,
            state.tracker,
            source.name,
            observe=self._observes,
            binary_types=self._binary_types,
            not_binary=self._not_binary,
            ordinal=state.ordinal if merge else None,
        )
        if merge:
            state.ordinal += shaped.num_rows
        return shaped

    def _observes(self, column: str) -> bool:
        """Whether ``column``'s values vote on its type: the load makes it (a new table's, or one
        it adds to an existing table)."""
        return self._target is None or (self._drift.appends and column not in self._target)

    def _settled(self) -> set[str]:
        """The columns whose type no value can change any more: declared, or ``TEXT``."""
        tracker = self._state.tracker
        return {c for c in self._state.seen if tracker.declared(c) is not None or tracker.is_text(c)}

    def _binary_types(self, columns: Sequence[str]) -> list[str] | None:
        """The SQL types ``columns`` are written into, where a binary ``COPY`` may take them: the
        existing table's, or those a table the load creates has once the batch is seen; ``None``
        for the stage (text) or without pgpq."""
        if not (self._direct or self._creating) or not _has_module("pgpq"):
            return None
        if self._direct:
            if not all(c in self._target_types for c in columns):
                return None  # a column the load adds: its values go as text
            return [self._target_types[c] for c in columns]
        type_of = self._dialect.type_name
        return [type_of(self._state.tracker.loading(c)) for c in columns]


def _has_pyarrow() -> bool:
    return _has_module("pyarrow")
