"""Every row counted: a load fails before its commit unless the database took every row it read
(of a file, a stage, a group's staging table)."""

from __future__ import annotations

from airflow_provider_exports.exceptions import TransferIntegrityError
from airflow_provider_exports.transfers.engine.sql.generic import Dialect


def check_taken(d: Dialect, table: str, what: str, read: int, taken: int | None, counted_in: str | None = None) -> None:
    """Fail the load into ``table`` unless the database took the ``read`` rows of ``what``.
    ``taken`` is the driver's count; where it gives none, ``counted_in`` (SQL naming a table that
    holds only these rows) is counted instead."""
    if taken is None and counted_in is not None:
        ((taken,),) = d.query(f"SELECT count(*) FROM {counted_in}")
    if taken is not None and int(taken) != read:
        raise TransferIntegrityError(
            f"{what}: {read:,} row(s) read, but the database took {int(taken):,}; the load into "
            f"{table} is rolled back, nothing of it is committed"
        )


def insert_counted(d: Dialect, table: str, what: str, read: int, insert: str, counted_in: str) -> None:
    """Run ``insert`` (an ``INSERT ... SELECT``), then :func:`check_taken`."""
    cur = d.execute(insert)
    try:
        taken = d.rows_written(cur)
    finally:
        cur.close()
    check_taken(d, table, what, read, taken, counted_in)
