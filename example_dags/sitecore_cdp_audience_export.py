"""Sitecore CDP, daily: wait for a new finished audience export, land it in S3, load it into the warehouse.

The export ``daily_loyalty_members`` is defined and scheduled inside Sitecore CDP. Each day this DAG
waits (deferred, costing no worker) until the export has a job that finished after the data
interval started (a manual run without one: after the last successful run's; see
``airflow_provider_exports.utils.windows``), streams that job's gzipped files into the lake, loads
the guests into a warehouse table in one transaction, and marks the table's Asset so downstream
DAGs (dbt) run.

Connections: ``sitecore_cdp_default`` (Sitecore CDP), ``aws_default`` (S3), ``warehouse`` (any SQL
database with a DbApiHook: PostgreSQL, SQLite, Snowflake...). Variables (optional): ``exports_bucket``.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG, Asset

from airflow_provider_exports.sensors.sitecore_cdp import SitecoreCDPExportSensor
from airflow_provider_exports.transfers.sitecore_cdp_to_s3 import SitecoreCDPToS3Operator
from airflow_provider_exports.transfers.sitecore_cdp_to_sql import SitecoreCDPToSqlOperator
from airflow_provider_exports.utils.windows import MACROS

EXPORT = "daily_loyalty_members"
LOYALTY_MEMBERS_TABLE = Asset("warehouse://loyalty_members")

with DAG(
    dag_id="sitecore_cdp_audience_export",
    schedule="@daily",
    start_date=pendulum.datetime(2026, 11, 1, tz="UTC"),
    catchup=False,
    # run_window() in templates: the run's window, also for a manual run without a data interval
    user_defined_macros=MACROS,
    default_args={"retries": 2, "retry_delay": pendulum.duration(minutes=5)},
    tags=["exports", "sitecore-cdp"],
):
    wait = SitecoreCDPExportSensor(
        task_id="wait_for_export",
        audience_export_ref=EXPORT,
        deferrable=True,  # waits in the triggerer, holding no worker slot
        poke_interval=300,
        timeout=12 * 3600,
    )
    # A full export: every file is a snapshot of the audience, whatever its name says (for a delta
    # export, delta="always" fails a job whose files are not named added/removed, where the
    # default, "by_name", would take them as snapshots). Every row in the table names its file in
    # _source_file.
    land = SitecoreCDPToS3Operator(
        task_id="land",
        audience_export_ref=EXPORT,
        execution_ref=wait.output,
        s3_bucket="{{ var.value.get('exports_bucket', 'lake') }}",
        s3_key_prefix=f"raw/sitecore/{EXPORT}/ds={{{{ run_window().ds }}}}/",
        delta="never",
    )
    load = SitecoreCDPToSqlOperator(
        task_id="load",
        audience_export_ref=EXPORT,
        execution_ref=wait.output,
        conn_id="warehouse",
        table="loyalty_members",
        mode="replace",
        delta="never",
        landed_assets=[LOYALTY_MEMBERS_TABLE],
    )
    land >> load
