"""The columns a load makes, filled directly (no stage, no copy at commit): a table it creates on
PostgreSQL, or the columns it adds to an existing table (``on_schema_change="append_new_columns"``,
:mod:`.drift`).

The table is created at the load's first rows; each batch first gets the columns it needs (every
column so far, typed as far as the values go: :meth:`.types.TypeTracker.loading`), so a new column
is added, and a column whose values need a wider type is widened in place
(:meth:`.postgres.PostgresDialect.retype_column`), never narrowed. At commit, columns loaded as
text because only their text tells their values apart are cast to their final types. PostgreSQL's
DDL is transactional: until the commit no other session sees the table, and a rollback (of the
load, or to a file's savepoint) takes it back. A database that cannot retype a column
(:attr:`.generic.Dialect.retypes`) adds it with its final type as far as the values go, and a later
value that needs a wider one refuses the load.
"""

from __future__ import annotations

import itertools
from collections.abc import Collection, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from airflow_provider_exports.exceptions import ExportConfigError
from airflow_provider_exports.transfers.engine.sql.file_columns import SOURCE_FILE
from airflow_provider_exports.transfers.engine.sql.generic import Dialect, ValueRefused, Written

if TYPE_CHECKING:
    from airflow_provider_exports.transfers.engine.cancellation import Cancellation
    from airflow_provider_exports.transfers.engine.sql.types import TypeTracker

#: a table as a load needs it: its columns in order, each with its SQL type
Shape = tuple[tuple[str, str], ...]


def with_shapes(
    batches: Iterable[Any], seen: list[str], tracker: TypeTracker, d: Dialect, existing: Collection[str] = ()
) -> Iterator[tuple[Shape, Any]]:
    """Each batch with the columns it needs the load to make (``seen``: every column so far but the
    ``existing`` table's, the file's name last), noted as soon as ``tracker`` has seen its values."""
    type_of = tracker.loading if d.retypes else tracker.final
    for batch in batches:
        seen.extend(c for c in batch.columns if c not in seen and c not in existing)
        seen.sort(key=lambda c: c == SOURCE_FILE)
        yield tuple((c, d.type_name(type_of(c))) for c in seen), batch


def write_created(
    d: Dialect,
    table: str,
    shaped: Iterable[tuple[Shape, Any]],
    made: dict[str, str],
    *,
    create_table: bool,
    exists: bool = False,
    cancellation: Cancellation,
    bulk: bool,
) -> Written:
    """Batches into ``table`` (``exists``: made before this load): the columns shaped for each run
    of batches (``made``: the columns the load made and their types so far, updated), then the run
    written (one ``COPY``)."""
    sent = 0
    taken: int | None = 0
    for shape, run in itertools.groupby(shaped, key=lambda pair: pair[0]):
        shape_table(d, table, made, shape, create_table=create_table, exists=exists)
        try:
            written = d.write_batches(
                d.qualified(table), (batch for _, batch in run), lambda columns: None, cancellation, bulk=bulk
            )
        except ValueRefused as refused:
            raise refused.after(sent) from None
        sent += written.sent
        taken = None if taken is None or written.taken is None else taken + written.taken
    return Written(sent, taken)


def shape_table(
    d: Dialect, table: str, made: dict[str, str], shape: Shape, *, create_table: bool, exists: bool = False
) -> None:
    """Create ``table`` with ``shape`` (unless it ``exists``), or add its new columns and widen the
    others to it."""
    if not made and not exists:
        if not create_table:
            raise ExportConfigError("table", f"{table} does not exist and create_table is False")
        qualified = d.qualified(table)
        d.execute(f"CREATE TABLE {qualified} ({', '.join(f'{d.quote(c)} {t}' for c, t in shape)})").close()
    added = [(c, t) for c, t in shape if c not in made]
    if added and (made or exists):
        if SOURCE_FILE in made:  # the file's name stays the last column of a table the load created
            _add_before_source_file(d, d.qualified(table), [f"ADD COLUMN {d.quote(c)} {t}" for c, t in added])
        else:
            d.add_columns(table, added)
    for column, sql_type in shape:
        if column in made and made[column] != sql_type:
            d.retype_column(table, column, made[column], sql_type)
    made.update(shape)


def _add_before_source_file(d: Dialect, qualified: str, added: list[str]) -> None:
    """Add columns (``ADD COLUMN`` clauses) before :data:`SOURCE_FILE`, which is re-made last
    (a rewrite of the rows so far: only when a column first appears after the first rows)."""
    name, was = d.quote(SOURCE_FILE), d.quote(f"{SOURCE_FILE}_was")
    d.execute(f"ALTER TABLE {qualified} RENAME COLUMN {name} TO {was}").close()
    d.execute(f"ALTER TABLE {qualified} {', '.join(added)}, ADD COLUMN {name} TEXT").close()
    d.execute(f"UPDATE {qualified} SET {name} = {was}").close()
    d.execute(f"ALTER TABLE {qualified} DROP COLUMN {was}").close()


def settle_types(d: Dialect, table: str, made: dict[str, str], tracker: TypeTracker) -> None:
    """At commit, the columns that loaded as text, cast to their final types (one rewrite)."""
    alters = [
        f"ALTER COLUMN {d.quote(c)} TYPE {final} USING {d.cast(d.quote(c), final)}"
        for c, loaded in made.items()
        if (final := d.type_name(tracker.final(c))) != loaded
    ]
    if alters:
        d.execute(f"ALTER TABLE {d.qualified(table)} {', '.join(alters)}").close()
