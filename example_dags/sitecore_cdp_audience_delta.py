"""Sitecore CDP, daily: keep a warehouse table equal to an audience from its delta export.

The export ``daily_loyalty_changes`` is a delta export, defined and scheduled inside Sitecore CDP:
each job holds only what changed since the job before, the guests who joined the audience (files
``added-...``) and those who left it (files ``removed-...``). Each day this DAG waits (deferred,
costing no worker) until the export has a job that finished after the run's window started (see
``airflow_provider_exports.utils.windows``), then applies it to the table
``loyalty_members_current`` in one transaction: joined guests are inserted or updated by their
``ref``, guests who left are deleted, and the job's manifest row is written. Readers of the table
see the audience as the previous job left it until the commit, then as this one leaves it; a job
already applied is skipped. The table's Asset is marked so downstream DAGs (dbt) run.

Each delta builds on the one before it, so every job must be applied, in order: the wait gives
the newest job, and when two or more finished between runs (a paused DAG, a failed day) the
transfer applies the ones the table misses first, oldest first, each in its own transaction (the
task's XCom lists them under ``caught_up``). A table that holds jobs of the export, but none that
Sitecore still lists before the newest, is refused: reload it from a full export
(``sitecore_cdp_audience_export``).

Connections: ``sitecore_cdp_default`` (Sitecore CDP), ``warehouse`` (any SQL database with a
DbApiHook: PostgreSQL, SQLite, Snowflake...).
"""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG, Asset

from airflow_provider_exports.sensors.sitecore_cdp import SitecoreCDPExportSensor
from airflow_provider_exports.transfers.sitecore_cdp_to_sql import SitecoreCDPToSqlOperator

EXPORT = "daily_loyalty_changes"
CURRENT_MEMBERS_TABLE = Asset("warehouse://loyalty_members_current")

with DAG(
    dag_id="sitecore_cdp_audience_delta",
    schedule="@daily",
    start_date=pendulum.datetime(2026, 11, 1, tz="UTC"),
    catchup=False,
    default_args={"retries": 2, "retry_delay": pendulum.duration(minutes=5)},
    tags=["exports", "sitecore-cdp", "delta"],
):
    wait = SitecoreCDPExportSensor(
        task_id="wait_for_export",
        audience_export_ref=EXPORT,
        deferrable=True,  # waits in the triggerer, holding no worker slot
        poke_interval=300,
        timeout=12 * 3600,
    )
    # delta="always": every file must be named added-... or removed-..., else the task fails before
    # anything is committed (a file taken for a snapshot would be upserted, and nobody removed).
    SitecoreCDPToSqlOperator(
        task_id="apply_changes",
        audience_export_ref=EXPORT,
        execution_ref=wait.output,
        conn_id="warehouse",
        table="loyalty_members_current",
        mode="merge",
        key_columns=["ref"],
        delta="always",
        landed_assets=[CURRENT_MEMBERS_TABLE],
    )
