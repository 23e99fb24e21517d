"""From the stage into the table, at commit: the SQL of a load whose rows were staged (a new table,
or ``merge``: see :mod:`.sink`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from airflow_provider_exports.exceptions import ExportConfigError, TransferRefused
from airflow_provider_exports.transfers.engine.sql.file_columns import SOURCE_FILE
from airflow_provider_exports.transfers.engine.sql.generic import Dialect
from airflow_provider_exports.transfers.engine.sql.load_state import LoadState
from airflow_provider_exports.transfers.engine.sql.types import FinalType, TypeTracker

#: the session-local tables a load stages rows in
STAGE = "_exports_stage"
TYPED_STAGE = "_exports_typed"
#: the stage column that numbers rows in export order (``merge``: the last row of a key wins)
ORDINAL = "_exports_ordinal"


def prepare_stage(
    d: Dialect,
    state: LoadState,
    columns: Sequence[str],
    *,
    table: str,
    target: list[str] | None,
    create_table: bool,
    merge: bool,
) -> None:
    """Make the stage take ``columns``: create it, or add columns (a table this run creates
    grows; an existing table's columns, ``target``, are fixed)."""

    def stage_type(column: str) -> str:
        declared = state.tracker.declared(column)
        return "TEXT" if declared is None else d.type_name(FinalType(declared, declared=True))

    data = [c for c in columns if c != ORDINAL]
    if not state.stage_exists:
        if target is not None:  # merge into an existing table: the stage has its types
            cols = ", ".join(d.quote(c) for c in target)
            d.create_stage_as(STAGE, f"SELECT {cols} FROM {d.qualified(table)} WHERE 1=0")
            d.add_stage_column(STAGE, ORDINAL, "BIGINT")
            state.stage_columns = list(target)
        else:
            if not create_table:
                raise ExportConfigError("table", f"{table} does not exist and create_table is False")
            extra = [(ORDINAL, "BIGINT")] if merge else []
            d.create_stage(STAGE, [*((c, stage_type(c)) for c in data), *extra])
            state.stage_columns = list(data)
        state.stage_exists = True
    for column in data:
        if column not in state.stage_columns:
            d.add_stage_column(STAGE, column, stage_type(column))
            state.stage_columns.append(column)
        if column not in state.seen:
            state.seen.append(column)
    # the file's name last in a table the load creates, however the batches bring the columns
    state.seen.sort(key=lambda c: c == SOURCE_FILE)


def create_table(d: Dialect, table: str, tracker: TypeTracker, columns: Sequence[str]) -> dict[str, str]:
    """Create ``table`` with the load's final types (at commit: every value has voted); returns them."""
    types = {c: d.type_name(tracker.final(c)) for c in columns}
    cols = ", ".join(f"{d.quote(c)} {t}" for c, t in types.items())
    d.execute(f"CREATE TABLE {d.qualified(table)} ({cols})").close()
    return types


def add_columns(d: Dialect, table: str, tracker: TypeTracker, columns: Sequence[str]) -> dict[str, str]:
    """Add ``columns`` (staged, not in the existing ``table``) with the load's final types, as
    :func:`create_table` would type them (at commit: ``on_schema_change="append_new_columns"``)."""
    types = {c: d.type_name(tracker.final(c)) for c in columns}
    d.add_columns(table, list(types.items()))
    return types


def cast_list(
    d: Dialect, tracker: TypeTracker, types: Mapping[str, str], columns: Sequence[str] | None = None
) -> str:
    """The staged ``columns`` (by default those of ``types``), those in ``types`` cast to their final
    type (declared ones are staged typed; an existing table's columns are staged as it types them)."""
    return ", ".join(
        f"{d.cast(d.quote(c), types[c])} AS {d.quote(c)}" if c in types and tracker.declared(c) is None else d.quote(c)
        for c in (types if columns is None else columns)
    )


def merge(
    d: Dialect,
    table: str,
    key_columns: Sequence[str],
    columns: Sequence[str],
    tracker: TypeTracker,
    new_types: Mapping[str, str] | None,
    removed_when: tuple[str, str] | None = None,
    added_types: Mapping[str, str] | None = None,
) -> None:
    """Delete ``table``'s rows whose key is staged, insert the last staged row of each key.
    ``new_types``: the types of the table this load just created (its keys are then compared
    typed), ``None`` for an existing table. ``removed_when`` (a staged column and a value, e.g.
    Sitecore's ``_delta`` = ``removed``): a row marked so only deletes its key's row, and is
    never inserted; a key with a row not so marked keeps the last of those (added wins).
    ``added_types``: the columns this load added to an existing table (staged as text), cast so."""
    absent = [k for k in key_columns if k not in columns]
    if absent:
        raise TransferRefused(f"the export has no key column {', '.join(repr(k) for k in absent)}")
    stage = STAGE
    marker = [d.quote(removed_when[0])] if removed_when and removed_when[0] not in columns else []
    if new_types is not None:  # keys compare as the table will hold them: stage them typed
        d.create_stage_as(
            TYPED_STAGE,
            f"SELECT {', '.join([cast_list(d, tracker, new_types), *marker, d.quote(ORDINAL)])} "
            f"FROM {d.quote(STAGE)}",
        )
        stage = TYPED_STAGE
    keys = [d.quote(k) for k in key_columns]
    (null_keys,) = d.query(
        f"SELECT count(*) FROM {d.quote(stage)} WHERE " + " OR ".join(f"{k} IS NULL" for k in keys)
    )[0]
    if null_keys:
        raise TransferRefused(
            f"{null_keys} row(s) of the export have no value in key column(s) "
            f"{', '.join(key_columns)}; merge needs a key for every row, nothing was loaded"
        )
    d.index_stage(stage, [*key_columns, ORDINAL])
    target = d.qualified(table)
    if new_types is None:
        match = " AND ".join(f"s.{k} = {target}.{k}" for k in keys)
        d.execute(f"DELETE FROM {target} WHERE EXISTS (SELECT 1 FROM {d.quote(stage)} s WHERE {match})").close()
    same_key = " AND ".join(f"later.{k} = s.{k}" for k in keys)
    cols = ", ".join(d.quote(c) for c in columns)
    added = {c: t for c, t in (added_types or {}).items() if tracker.declared(c) is None}
    values = ", ".join(d.cast(f"s.{d.quote(c)}", added[c]) if c in added else f"s.{d.quote(c)}" for c in columns)
    ordinal = d.quote(ORDINAL)
    kept, later_kept = "", ""
    if removed_when is not None:
        column, value = d.quote(removed_when[0]), "'" + removed_when[1].replace("'", "''") + "'"
        kept = f"(s.{column} IS NULL OR s.{column} <> {value}) AND "
        later_kept = f" AND (later.{column} IS NULL OR later.{column} <> {value})"
    d.execute(
        f"INSERT INTO {target} ({cols}) SELECT {values} "
        f"FROM {d.quote(stage)} s WHERE {kept}NOT EXISTS (SELECT 1 FROM {d.quote(stage)} later "
        f"WHERE {same_key} AND later.{ordinal} > s.{ordinal}{later_kept})"
    ).close()
