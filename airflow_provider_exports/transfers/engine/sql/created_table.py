"""A table the load creates on PostgreSQL, filled directly (no stage, no copy at commit).

The table is created at the load's first rows; each batch first gets the table it needs (every
column so far, typed as far as the values go: :meth:`.types.TypeTracker.loading`), so a new column
is added, and a column whose values need a wider type is widened in place
(:meth:`.postgres.PostgresDialect.retype_column`), never narrowed. At commit, columns loaded as
text because only their text tells their values apart are cast to their final types. PostgreSQL's
DDL is transactional: until the commit no other session sees the table, and a rollback (of the
load, or to a file's savepoint) takes it back.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from airflow_provider_exports.exceptions import ExportConfigError
from airflow_provider_exports.transfers.engine.sql.file_columns import SOURCE_FILE
from airflow_provider_exports.transfers.engine.sql.generic import Dialect, Written

if TYPE_CHECKING:
    from airflow_provider_exports.transfers.engine.cancellation import Cancellation
    from airflow_provider_exports.transfers.engine.sql.types import TypeTracker

#: a table as a load needs it: its columns in order, each with its SQL type
Shape = tuple[tuple[str, str], ...]


def with_shapes(
    batches: Iterable[Any], seen: list[str], tracker: TypeTracker, d: Dialect
) -> Iterator[tuple[Shape, Any]]:
    """Each batch with the table it needs (``seen``: every column so far, the file's name last),
    noted as soon as the batch's values have been seen by ``tracker``."""
    for batch in batches:
        seen.extend(c for c in batch.columns if c not in seen)
        seen.sort(key=lambda c: c == SOURCE_FILE)
        yield tuple((c, d.type_name(tracker.loading(c))) for c in seen), batch


def write_created(
    d: Dialect,
    table: str,
    shaped: Iterable[tuple[Shape, Any]],
    made: dict[str, str],
    *,
    create_table: bool,
    cancellation: Cancellation,
    bulk: bool,
) -> Written:
    """Batches into ``table``: the table shaped for each run of batches (``made``: its columns and
    types so far, updated), then the run written (one ``COPY``)."""
    sent = 0
    taken: int | None = 0
    for shape, run in itertools.groupby(shaped, key=lambda pair: pair[0]):
        shape_table(d, table, made, shape, create_table=create_table)
        written = d.write_batches(
            d.qualified(table), (batch for _, batch in run), lambda columns: None, cancellation, bulk=bulk
        )
        sent += written.sent
        taken = None if taken is None or written.taken is None else taken + written.taken
    return Written(sent, taken)


def shape_table(d: Dialect, table: str, made: dict[str, str], shape: Shape, *, create_table: bool) -> None:
    """Create ``table`` with ``shape``, or add its new columns and widen the others to it."""
    from airflow_provider_exports.transfers.engine.sql.postgres import PostgresDialect

    qualified = d.qualified(table)
    if not made:
        if not create_table:
            raise ExportConfigError("table", f"{table} does not exist and create_table is False")
        d.execute(f"CREATE TABLE {qualified} ({', '.join(f'{d.quote(c)} {t}' for c, t in shape)})").close()
    added = [f"ADD COLUMN {d.quote(c)} {t}" for c, t in shape if c not in made]
    if made and added:
        if SOURCE_FILE in made:  # the file's name stays the last column: moved after the new ones
            _add_before_source_file(d, qualified, added)
        else:
            d.execute(f"ALTER TABLE {qualified} {', '.join(added)}").close()
    for column, sql_type in shape:
        if column in made and made[column] != sql_type:
            assert isinstance(d, PostgresDialect)
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
