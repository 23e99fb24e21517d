"""The manifest table: one row per job committed into a table (destination, vendor, export, job,
when, and the run's manifest), written in the load's transaction; a later run of the job finds it
and skips (see :mod:`.sink`)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from airflow_provider_exports.transfers.engine import manifest as manifest_mod
from airflow_provider_exports.transfers.engine.sql.dialects import dialect_for
from airflow_provider_exports.transfers.engine.sql.generic import Dialect

log = logging.getLogger(__name__)

#: the columns that name a job at a destination: one row each (the unique key)
JOB_KEY = ("destination", "vendor", "export_ref", "job_ref")
#: a job's key values, in the order of :data:`JOB_KEY`
Job = tuple[str, str, str, str]


def set_up_manifest_table(d: Dialect, table: str) -> None:
    """Create ``table`` if it is missing, or give an older one its unique key where that is safe;
    either in a transaction of its own, before the load's."""
    key = d.manifest_key_type
    if d.table_columns(table) is None:
        d.setup(
            [
                f"CREATE TABLE IF NOT EXISTS {d.qualified(table)} (destination {key} NOT NULL, vendor "
                f"{key} NOT NULL, export_ref {key} NOT NULL, job_ref {key} NOT NULL, committed_at {key}, "
                f"manifest TEXT, UNIQUE ({', '.join(JOB_KEY)}))"
            ],
            lock_name=table,
        )
        return
    d.rollback()  # end the catalog look-up's transaction before the load's own
    upgrade = d.unique_index_sql(table, JOB_KEY)
    if upgrade is not None:
        try:
            d.setup([upgrade], lock_name=table)
        except Exception as exc:
            log.warning("%s has no unique key on %s (%s failed: %s)", table, ", ".join(JOB_KEY), upgrade, exc)


def find_manifest(d: Dialect, table: str, job: Job) -> Mapping[str, Any] | None:
    """The manifest ``table`` holds for ``job``, if any."""
    ph = d.placeholder
    rows = d.query(
        f"SELECT manifest FROM {d.qualified(table)} WHERE " + " AND ".join(f"{c} = {ph}" for c in JOB_KEY), job
    )
    return manifest_mod.loads(rows[-1][0]) if rows else None


def record_manifest(
    d: Dialect, table: str, job: Job, manifest: Mapping[str, Any], *, replace: bool
) -> Mapping[str, Any] | None:
    """Add the run's manifest row for ``job`` (``replace``: the job's row goes first, on overwrite);
    a concurrent run of the same job that committed first (generic dialect: the unique key says
    so) is returned, and this load's transaction is rolled back."""
    mt, ph = d.qualified(table), d.placeholder
    if replace:
        d.execute(f"DELETE FROM {mt} WHERE " + " AND ".join(f"{c} = {ph}" for c in JOB_KEY), job).close()
    try:
        d.execute(
            f"INSERT INTO {mt} ({', '.join(JOB_KEY)}, committed_at, manifest) VALUES ({', '.join([ph] * 6)})",
            (*job, manifest["finished_at"], manifest_mod.dumps(manifest).decode()),
        ).close()
    except Exception:
        d.rollback()
        winner = find_manifest(d, table, job)
        if winner is None:
            raise
        return winner
    return None


def held_jobs(hook: Any, table: str, destination: str, vendor: str, export_ref: str) -> set[str]:
    """The jobs of ``export_ref`` whose loads into ``destination`` committed, by the manifest
    ``table`` (none when it does not exist yet); read on a connection of its own, before a load."""
    d = dialect_for(hook, hook.get_conn())
    try:
        if d.table_columns(table) is None:
            return set()
        ph = d.placeholder
        rows = d.query(
            f"SELECT job_ref FROM {d.qualified(table)} WHERE destination = {ph} AND vendor = {ph} AND export_ref = {ph}",
            (destination, vendor, export_ref),
        )
        return {str(job_ref) for (job_ref,) in rows}
    finally:
        d.rollback()
        d.close()
