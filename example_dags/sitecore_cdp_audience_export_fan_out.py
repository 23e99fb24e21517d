"""Sitecore CDP, daily, fanned out: one export's files moved by many workers, committed once.

The same flow as ``sitecore_cdp_audience_export`` (wait for a new finished job of
``daily_loyalty_members``, land its files in the lake, load them into the warehouse), for exports
too large for one worker: one task lists the job's files, Airflow maps a task over groups of them
(``.expand()``) for each destination, and one final task per destination commits. Nothing is
visible before the commit: the S3 manifest is written once every group is staged; the table
changes in one transaction with every group's rows. A failed group is retried alone; a run that
fails for good leaves the lake and the table as the last good run left them.

Connections: ``sitecore_cdp_default``, ``aws_default``, ``warehouse``. Variables (optional):
``exports_bucket``.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG, Asset

from airflow_provider_exports.sensors.sitecore_cdp import SitecoreCDPExportSensor
from airflow_provider_exports.transfers.sitecore_cdp_to_s3 import (
    FanOutCommitOperator,
    SitecoreCDPListFilesOperator,
    SitecoreCDPStageFilesToS3Operator,
)
from airflow_provider_exports.transfers.sitecore_cdp_to_sql import SitecoreCDPStageFilesToSqlOperator
from airflow_provider_exports.utils.windows import MACROS

EXPORT = "daily_loyalty_members"
TABLE = Asset("warehouse://loyalty_members_fan_out")

with DAG(
    dag_id="sitecore_cdp_audience_export_fan_out",
    schedule="@daily",
    start_date=pendulum.datetime(2026, 11, 1, tz="UTC"),
    catchup=False,
    # run_window() in templates: the run's window, also for a manual run without a data interval
    user_defined_macros=MACROS,
    default_args={"retries": 2, "retry_delay": pendulum.duration(minutes=5)},
    tags=["exports", "sitecore-cdp", "fan-out"],
):
    wait = SitecoreCDPExportSensor(
        task_id="wait_for_export",
        audience_export_ref=EXPORT,
        deferrable=True,  # waits in the triggerer, holding no worker slot
        poke_interval=300,
        timeout=12 * 3600,
    )
    # file names and sizes only: every mapped task fetches its own presigned URLs from Sitecore
    files = SitecoreCDPListFilesOperator(
        task_id="list_files", audience_export_ref=EXPORT, execution_ref=wait.output, files_per_group=2
    )
    land = SitecoreCDPStageFilesToS3Operator.partial(
        task_id="land_files",
        audience_export_ref=EXPORT,
        s3_bucket="{{ var.value.get('exports_bucket', 'lake') }}",
        s3_key_prefix=f"raw/sitecore/{EXPORT}_fan_out/ds={{{{ run_window().ds }}}}/",
    ).expand(group=files.output)
    land_commit = FanOutCommitOperator(task_id="commit_land", staged=land.output)
    load = SitecoreCDPStageFilesToSqlOperator.partial(
        task_id="load_files",
        audience_export_ref=EXPORT,
        conn_id="warehouse",
        table="loyalty_members_fan_out",
        mode="replace",
    ).expand(group=files.output)
    load_commit = FanOutCommitOperator(task_id="commit_load", staged=load.output, landed_assets=[TABLE])
    land_commit >> load
