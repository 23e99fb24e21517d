"""Cordial, daily, in the fan-out shape: list the delivered file, stage it, commit the merge.

Cordial delivers one file per export job, so its fan-out has a single group; this DAG shows the
same three tasks the other vendors use for large exports (list files, stage them in mapped tasks,
commit once), merging last week's audience trends into ``cordial_audience_trends_fan_out`` on
(audience, day) in the commit's one transaction.

Connections: ``cordial_default``, ``cordial_delivery`` (the AWS keys Cordial writes into the
bucket with), ``aws_default`` (reads the bucket), ``warehouse``. Variables (optional):
``exports_bucket``.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG, Asset

from airflow_provider_exports.operators.cordial import (
    CordialCreateAudienceTrendsExportOperator,
    CordialS3Destination,
)
from airflow_provider_exports.transfers.cordial_to_sql import (
    CordialS3ListFilesOperator,
    CordialS3StageFilesToSqlOperator,
    FanOutCommitOperator,
)
from airflow_provider_exports.utils.windows import MACROS

TABLE = Asset("warehouse://cordial_audience_trends_fan_out")

with DAG(
    dag_id="cordial_audience_trends_fan_out",
    schedule="@daily",
    start_date=pendulum.datetime(2026, 11, 1, tz="UTC"),
    catchup=False,
    # run_window() in templates: the run's window, also for a manual run without a data interval
    user_defined_macros=MACROS,
    default_args={"retries": 2, "retry_delay": pendulum.duration(minutes=5)},
    tags=["exports", "cordial", "fan-out"],
):
    trends = CordialCreateAudienceTrendsExportOperator(
        task_id="export_trends",
        audiences=["loyal-customers", "newsletter-subscribers"],
        selected_timeframe_start="{{ macros.ds_add(run_window().ds, -7) }}",
        selected_timeframe_end="{{ macros.ds_add(run_window().ds, -1) }}",
        destination=CordialS3Destination(
            bucket="{{ var.value.get('exports_bucket', 'lake') }}",
            path="raw/cordial_fan_out/ds={{ run_window().ds }}",
            aws_conn_id="cordial_delivery",
        ),
        deferrable=True,
        poll_interval=30,
        timeout=6 * 3600,
    )
    files = CordialS3ListFilesOperator(task_id="list_files", export=trends.output)
    load = CordialS3StageFilesToSqlOperator.partial(
        task_id="load_files",
        export=trends.output,
        conn_id="warehouse",
        table="cordial_audience_trends_fan_out",
        mode="merge",
        key_columns=["audience", "day"],
    ).expand(group=files.output)
    FanOutCommitOperator(task_id="commit_load", staged=load.output, landed_assets=[TABLE])
