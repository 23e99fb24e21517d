"""Delta jobs a run would step over, found so that they are moved first.

Each job of a delta export holds only what changed since the job before it, so a table kept by
applying them must get every one, in order. A run is given one job (the sensor's newest); when two
or more jobs finished since the table's last load (a paused DAG, a failed day), the transfer
operator moves the earlier ones first, oldest first, each in a load of its own (its own transaction
and manifest row, skipped when another run applied it meanwhile). A fan-out's commit refuses
instead (it holds one job's files), naming them.

The table's manifest table says which jobs of the export it holds. The jobs missed are those after
the newest one it holds, among those the vendor lists before the run's job. When it holds none
(a first load), nothing is added: which jobs the table started from is not ours to guess. When it
holds some, but none the vendor lists before the run's job (a gap longer than the vendor's list
reaches, or a job older than the table's), the load is refused: applying it would lose changes.
"""

from __future__ import annotations

from collections.abc import Sequence

from airflow_provider_exports.exceptions import TransferRefused
from airflow_provider_exports.transfers.engine.sink import Sink
from airflow_provider_exports.transfers.engine.sql.manifest_table import held_jobs
from airflow_provider_exports.transfers.engine.sql.sink import SqlSink


def missed_jobs(
    sink: Sink, vendor: str, export_ref: str, job_ref: str, builds_on: Sequence[str] | None
) -> list[str]:
    """The jobs ``job_ref`` builds on (newest first; ``None``: it is no delta) that ``sink``'s table
    misses, oldest first; none for a destination other than a table, or one each load replaces."""
    if builds_on is None or not isinstance(sink, SqlSink) or sink.mode == "replace":
        return []
    held = held_jobs(sink.hook, sink.manifest_table, sink.table, vendor, export_ref)
    if not held or job_ref in held:
        return []  # a first load; or the job is applied already (the run skips it)
    missed: list[str] = []
    for earlier in builds_on:
        if earlier in held:
            return missed[::-1]
        missed.append(earlier)
    raise TransferRefused(
        f"{sink.table} holds {len(held)} job(s) of {vendor} export {export_ref}, but none of the "
        f"{len(builds_on)} the vendor lists before job {job_ref}: the changes in between cannot be "
        "told, so the job is not applied; reload the table from a full export"
    )
