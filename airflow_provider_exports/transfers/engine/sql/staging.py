"""Fan-out into SQL: many tasks load staging tables, one final task commits them in one transaction
(docs/scaling-out.md).

- :class:`SqlStagingSink` (one mapped task per group of files) stages its group's files as a
  one-task load does, then keeps the stage as a real table (:func:`stage_table_name`), recorded in
  the registry table ``<manifest_table>_staging``; a retry of the group drops it and loads its own
  files again. What the commit needs to type the columns (:class:`~.types.TypeTracker`'s
  observations, the declarations and which file made them) goes to XCom as JSON, never the values.
- :class:`SqlStagedCommit` (the final task) does what a one-task load does at commit, over every
  group, in group order (so ``merge``'s "last row of a key wins" follows file order across
  groups). Its staging tables are dropped after the commit (or the skip); those of other runs
  older than ``stale_after`` are dropped too (what failed runs left).

XCom and the registry are input (a planted value must not make the commit read or drop another
table): the commit reads only the exact staging table of each group of this run
(:func:`stage_table_name`) and checks that it holds the rows the group reported; it drops only
tables named as this destination's staging tables (of any run), and leaves any other name the
registry holds, with a warning. A run that fails for good leaves the table and the manifest table
as they were.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

from airflow_provider_exports.exceptions import ExportConfigError, TransferError
from airflow_provider_exports.transfers.engine.manifest import check_run_id
from airflow_provider_exports.transfers.engine.sink import TransferContext
from airflow_provider_exports.transfers.engine.sql.counting import insert_counted
from airflow_provider_exports.transfers.engine.sql.dialects import dialect_for
from airflow_provider_exports.transfers.engine.sql.from_stage import ORDINAL, STAGE
from airflow_provider_exports.transfers.engine.sql.generic import Dialect
from airflow_provider_exports.transfers.engine.sql.load_state import LoadState
from airflow_provider_exports.transfers.engine.sql.manifest_table import find_manifest
from airflow_provider_exports.transfers.engine.sql.sink import SqlSink
from airflow_provider_exports.transfers.engine.sql.types import ColumnKinds, TypeTracker, check_type_name

log = logging.getLogger(__name__)

_GROUP = re.compile(r"0|[1-9][0-9]*")


def run_started(run_id: str) -> datetime:
    """When a run (``20261122T031500Z-9f3a1c2b``) was listed; a malformed id is refused."""
    check_run_id(run_id, "group.run_id")
    return datetime.strptime(run_id.partition("-")[0], "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)


def stage_table_name(table: str, run_id: str, group: int) -> str:
    """The staging table of one group, in the target's schema: at most 55 characters."""
    run_started(run_id)
    schema, _, _name = table.rpartition(".")
    digest = hashlib.sha256(table.encode()).hexdigest()[:6]
    stem = f"_exports_stage_{digest}_{run_id.lower().replace('-', '_')}_{int(group)}"
    return f"{schema}.{stem}" if schema else stem


def registry_table(manifest_table: str) -> str:
    return f"{manifest_table}_staging"


# -- the type observations of one group, as JSON ---------------------------------------------------


def tracker_to_json(tracker: TypeTracker) -> dict[str, Any]:
    return {
        "task_types": dict(tracker.task_types),
        "file_types": {c: list(v) for c, v in tracker.file_types.items()},
        "valued_by": dict(tracker.valued_by),
        # integers as text: a JSON reader elsewhere may hold at most 2**53 exactly
        "columns": {
            c: {"kinds": sorted(k.kinds), "max_abs_int": str(k.max_abs_int), "digits": k.digits}
            for c, k in tracker.columns.items()
        },
    }


def merge_trackers(parts: Sequence[Mapping[str, Any]]) -> TypeTracker:
    """One tracker for the whole run: as if one load had seen every group's files in order.

    A column declared differently by two files, or declared by one file and brought as plain values
    by another, is refused (:class:`~airflow_provider_exports.exceptions.TransferRefused`), naming
    both files, as in one load. The declared types come from XCom and go into SQL as written: each
    must read as a column type (:func:`~.types.check_type_name`).
    """
    task_types = dict(parts[0]["task_types"]) if parts else {}
    tracker = TypeTracker({c: check_type_name(t, "group.types") for c, t in task_types.items()})
    for part in parts:
        for column, (sql_type, file) in part["file_types"].items():
            tracker.declare(column, check_type_name(sql_type, "group.types"), file)
    for part in parts:
        for column, file in part["valued_by"].items():
            if column in tracker.task_types:
                continue
            if column in tracker.file_types:
                tracker.observe(column, [], file, from_text=True)  # raises, naming both files
            tracker.valued_by.setdefault(column, file)
        for column, seen in part["columns"].items():
            merged = tracker.columns.setdefault(column, ColumnKinds())
            merged.add(seen["kinds"], int(seen["max_abs_int"]), int(seen["digits"]))
    return tracker


class SqlStagingSink(SqlSink):
    """One group of a fanned-out load: its files into its own staging table, committed at once.

    Takes :class:`SqlSink`'s arguments, the listing task's ``run_id`` and the ``group``'s number;
    see the module docstring.
    """

    creates_directly = False  # its rows are staged for the commit task

    def __init__(self, table: str, *, run_id: str, group: int, **kwargs: Any) -> None:
        super().__init__(table, **kwargs)
        self.run_id, self.group = run_id, int(group)
        self.stage_table = stage_table_name(table, run_id, group)
        self.staged_files: list[dict[str, Any]] = []

    @property
    def _direct(self) -> bool:
        return False  # never into the table itself: the commit is another task's

    def _lock_and_find(self, ctx: TransferContext) -> Mapping[str, Any] | None:
        d = self._dialect
        registry = registry_table(self.manifest_table)
        existing = None
        if d.table_columns(self.manifest_table) is not None:  # a committed job is not moved again
            existing = find_manifest(d, self.manifest_table, (self.table, ctx.vendor, ctx.export_ref, ctx.job_ref))
        d.rollback()
        d.setup(
            [
                f"CREATE TABLE IF NOT EXISTS {d.qualified(registry)} (destination "
                f"{d.manifest_key_type} NOT NULL, run_id {d.manifest_key_type} NOT NULL, "
                f"stage_table {d.manifest_key_type} NOT NULL)"
            ],
            lock_name=registry,
        )
        d.lock(self.stage_table, ctx.cancellation)
        # a retry of this group starts again from nothing: only its own files are loaded again
        _drop_stage(d, registry, self.stage_table)
        return existing

    def commit(self, manifest: Mapping[str, Any]) -> Mapping[str, Any] | None:
        """Keep the session stage as this group's staging table, and record it in the registry."""
        d, state = self._dialect, self._state
        self._cancellation.check()
        self._savepoint.release(self._dialect)
        if state.stage_exists:
            insert_counted(
                d,
                self.table,
                f"group {self.group}'s staging table {self.stage_table}",
                state.rows,
                f"CREATE TABLE {d.qualified(self.stage_table)} AS SELECT * FROM {d.quote(STAGE)}",
                d.qualified(self.stage_table),
            )
            ph = d.placeholder
            d.execute(
                f"INSERT INTO {d.qualified(registry_table(self.manifest_table))} "
                f"(destination, run_id, stage_table) VALUES ({ph}, {ph}, {ph})",
                (self.table, self.run_id, self.stage_table),
            ).close()
        d.commit()
        self._close()
        self.staged_files = [dict(f) for f in manifest.get("files") or []]
        return None

    def staged_state(self) -> dict[str, Any]:
        """What the commit needs from this group: names, counts and type observations (JSON)."""
        state = self._state
        return {
            "stage_table": self.stage_table if state.stage_exists else None,
            "columns": list(state.seen),
            "rows": state.rows,
            "ordinals": state.ordinal,
            "target_existed": self._target is not None,
            "types": tracker_to_json(state.tracker),
        }

    def fan_out_destination(self) -> dict[str, Any]:
        """The destination as the commit rebuilds it (JSON-able; no secret)."""
        return {
            **self.describe(),
            "key_columns": list(self.key_columns),
            "removed_when": list(self.removed_when) if self.removed_when else None,
            "create_table": self.create_table,
            "on_schema_change": self.on_schema_change,
            "allow_empty": self.allow_empty,
            "manifest_table": self.manifest_table,
            "lock_timeout": self.lock_timeout,
        }


class SqlStagedCommit(SqlSink):
    """The final task of a fanned-out load: the groups' staging tables into the table, in one
    transaction with the manifest row. Call :meth:`begin`, then :meth:`gather`, then :meth:`commit`
    (or :meth:`abort`), then :meth:`drop_stages`.

    :param stale_after: seconds; staging tables of other runs listed longer than this before this
        run are dropped after the commit (what failed runs left).
    """

    creates_directly = False  # the groups' rows come through the stage

    def __init__(self, table: str, *, stale_after: float = 86400.0, **kwargs: Any) -> None:
        super().__init__(table, **kwargs)
        if stale_after < 0:
            raise ExportConfigError("stale_after", "must be 0 seconds or more")
        self.stale_after = stale_after

    def gather(self, groups: Sequence[Mapping[str, Any]]) -> None:
        """Bring every group's staging table into this load, as one load would have staged it.

        Each group's staging table must be the one :func:`stage_table_name` gives for this table,
        this run and that group (XCom says which, and XCom is input), and must give the rows the
        group reported; otherwise the commit fails before it writes anything of its own.
        """
        d = self._dialect
        staged = [g for g in groups if self._stage_of(g) is not None]
        for g in staged:
            held = d.table_columns(str(g["stage_table"]))
            if held is None:
                raise TransferError(
                    f"staging table {g['stage_table']} of group {g['group']} is gone (a later run's "
                    "clean-up drops those older than stale_after); nothing was committed: run the "
                    "whole DAG run again"
                )
            # XCom's column list is input: it must not make the commit add a column to the table
            strange = [str(c) for c in g["columns"] if c not in held]
            if strange:
                raise ExportConfigError(
                    "group.columns",
                    f"group {g['group']} names {ascii(strange)[:120]}, which its staging table "
                    f"{g['stage_table']} does not hold; nothing was committed",
                )
        existed = {bool(g["target_existed"]) for g in groups}
        if existed != {self._target is not None}:
            raise TransferError(
                f"{self.table} was created or dropped while this run staged its files; nothing was "
                "committed: run the whole DAG run again"
            )
        tracker = merge_trackers([g["types"] for g in groups])
        self._state = state = LoadState(tracker)
        state.rows = sum(int(g["rows"]) for g in groups)
        if self._direct and self.mode == "replace":
            d.execute(f"DELETE FROM {d.qualified(self.table)}").close()
            self._emptied = True
        if not staged:
            return
        every = self._drift.loadable(list(dict.fromkeys(c for g in groups for c in g["columns"])))
        added: dict[str, str] = {}
        if self._direct:
            self._drift.check(every)
            added = self._add_columns(every)
        else:
            self._prepare_stage(every)
        # the table exists, append or replace: straight from the staging tables; else into the stage
        target = d.qualified(self.table) if self._direct else d.quote(STAGE)
        offset = 0
        for g in staged:
            columns = [c for c in g["columns"] if c in every]
            into = [d.quote(c) for c in columns]
            select = [d.cast(d.quote(c), added[c]) if c in added and not tracker.declared(c) else d.quote(c) for c in columns]
            if self.mode == "merge":  # export order across groups: group, then row
                into.append(d.quote(ORDINAL))
                select.append(f"{d.quote(ORDINAL)} + {offset}")
                offset += int(g["ordinals"])
            self._gather_group(g, f"INSERT INTO {target} ({', '.join(into)}) SELECT {', '.join(select)}")

    def _stage_of(self, group: Mapping[str, Any]) -> str | None:
        """The staging table a group's XCom names, once it is that group's own in this run; a group
        without one must have reported no rows."""
        number, named = int(group["group"]), group["stage_table"]
        assert self._ctx is not None
        if named is None:
            if int(group["rows"]) != 0:
                raise ExportConfigError(
                    "group.stage_table",
                    f"group {number} reported {group['rows']} row(s) and no staging table; nothing was committed",
                )
            return None
        own = stage_table_name(self.table, self._ctx.run_id, number)
        if named != own:
            raise ExportConfigError(
                "group.stage_table",
                f"{named!r} is not group {number}'s staging table of {self.table} in run "
                f"{self._ctx.run_id} (that is {own!r}); it is not read, nothing was committed",
            )
        return own

    def _gather_group(self, group: Mapping[str, Any], insert: str) -> None:
        """``insert`` ... ``FROM`` the group's staging table, which must give the rows it reported."""
        stage = self._dialect.qualified(str(group["stage_table"]))
        insert_counted(
            self._dialect,
            self.table,
            f"staging table {group['stage_table']} of group {group['group']}",
            int(group["rows"]),
            f"{insert} FROM {stage}",
            stage,
        )

    def drop_stages(self, run_id: str) -> None:
        """Drop this run's staging tables, and other runs' listed more than ``stale_after`` before
        it; best effort (a failure is logged: the next run's commit tries again)."""
        cutoff = run_started(run_id) - timedelta(seconds=self.stale_after)
        registry = registry_table(self.manifest_table)
        d = dialect_for(self.hook, self.hook.get_conn())
        try:
            d.prepare(self.lock_timeout)
            if d.table_columns(registry) is None:
                return
            rows = d.query(
                f"SELECT run_id, stage_table FROM {d.qualified(registry)} WHERE destination = {d.placeholder}",
                (self.table,),
            )
            d.rollback()
            doomed = [
                str(t)
                for r, t in rows
                if (r == run_id or _listed_before(str(r), cutoff)) and self._is_own_stage(str(t), str(r))
            ]
            for stage in doomed:
                d.lock(registry, self._cancellation)
                _drop_stage(d, registry, stage)
                d.commit()
            if doomed:
                log.info("Dropped %d staging table(s) of %s", len(doomed), self.table)
        except Exception:
            log.warning(
                "Could not drop the staging tables of %s; the next run tries again", self.table, exc_info=True
            )
            d.rollback()
        finally:
            d.close()

    def _is_own_stage(self, stage: str, run_id: str) -> bool:
        """Whether a registry row's ``stage`` is named as a staging table of this destination in the
        row's run (of any group; a malformed run id makes none): the only tables a clean-up drops.
        Any other name is left alone, with a warning (the registry is input)."""
        try:
            stem = stage_table_name(self.table, run_id, 0)[:-1]
        except ExportConfigError:
            stem = None
        if stem is not None and stage.startswith(stem) and _GROUP.fullmatch(stage[len(stem) :]):
            return True
        log.warning(
            "The registry %s names %r for %s, which is not one of its staging tables: not dropped",
            registry_table(self.manifest_table),
            stage,
            self.table,
        )
        return False


def _listed_before(run_id: str, cutoff: datetime) -> bool:
    try:
        return run_started(run_id) < cutoff
    except ExportConfigError:
        return False


def _drop_stage(d: Dialect, registry: str, stage: str) -> None:
    d.execute(f"DROP TABLE IF EXISTS {d.qualified(stage)}").close()
    d.execute(f"DELETE FROM {d.qualified(registry)} WHERE stage_table = {d.placeholder}", (stage,)).close()

