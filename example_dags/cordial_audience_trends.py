"""Cordial, daily: export last week's audience trends and an audience's members to S3, load both.

Each day this DAG asks Cordial for two exports, both delivered by Cordial into the lake bucket
(Cordial has no download API: it pushes files to the destination a request names):

- the daily population counts of two saved audiences over the last seven full days (audience
  trends), loaded *long* into ``cordial_audience_trends`` (``audience``, ``day``, ``count``) and
  merged on (audience, day), so each day's figures are corrected by later runs;
- the members of ``loyal-customers`` (a gzipped CSV), replacing ``cordial_loyal_members``.

The waits are deferred (no worker held), and each table's Asset is marked when it is loaded. A
retried task never creates a second export: it finds the job of its run by name.

Connections: ``cordial_default`` (Cordial API key), ``cordial_delivery`` (an AWS connection whose
access key ID and secret Cordial writes into the bucket with; use
``CordialS3Destination(..., aws_conn_id=None)`` when the Cordial account has an IAM role instead),
``aws_default`` (reads the bucket), ``warehouse`` (any SQL database with a DbApiHook).
Variables (optional): ``exports_bucket``, ``cordial_account_id``.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG, Asset

from airflow_provider_exports.operators.cordial import (
    CordialCreateAudienceTrendsExportOperator,
    CordialCreateContactExportOperator,
    CordialS3Destination,
)
from airflow_provider_exports.transfers.cordial_to_sql import CordialS3ToSqlOperator
from airflow_provider_exports.utils.windows import MACROS

AUDIENCES = ["loyal-customers", "newsletter-subscribers"]
TRENDS_TABLE = Asset("warehouse://cordial_audience_trends")
MEMBERS_TABLE = Asset("warehouse://cordial_loyal_members")

with DAG(
    dag_id="cordial_audience_trends",
    schedule="@daily",
    start_date=pendulum.datetime(2026, 11, 1, tz="UTC"),
    catchup=False,
    # run_window() in templates: the run's window, also for a manual run without a data interval
    user_defined_macros=MACROS,
    default_args={"retries": 2, "retry_delay": pendulum.duration(minutes=5)},
    tags=["exports", "cordial"],
):

    def delivery() -> CordialS3Destination:
        """Cordial writes into s3://<bucket>/raw/cordial/ds=<ds>/ with the keys of `cordial_delivery`
        (one object per task: Airflow renders a task's templated objects in place)."""
        return CordialS3Destination(
            bucket="{{ var.value.get('exports_bucket', 'lake') }}",
            path="raw/cordial/ds={{ run_window().ds }}",
            aws_conn_id="cordial_delivery",
        )

    trends = CordialCreateAudienceTrendsExportOperator(
        task_id="export_trends",
        audiences=AUDIENCES,
        selected_timeframe_start="{{ macros.ds_add(run_window().ds, -7) }}",
        selected_timeframe_end="{{ macros.ds_add(run_window().ds, -1) }}",
        destination=delivery(),
        deferrable=True,
        poll_interval=30,
        timeout=6 * 3600,
    )
    members = CordialCreateContactExportOperator(
        task_id="export_members",
        fields=["email", "first_name", "last_name"],
        account_id="{{ var.value.get('cordial_account_id', '1') }}",
        audience_key="loyal-customers",
        compress=True,
        destination=delivery(),
        deferrable=True,
        poll_interval=30,
        timeout=6 * 3600,
    )
    CordialS3ToSqlOperator(
        task_id="load_trends",
        export=trends.output,
        conn_id="warehouse",
        table="cordial_audience_trends",
        mode="merge",
        key_columns=["audience", "day"],
        landed_assets=[TRENDS_TABLE],
    )
    CordialS3ToSqlOperator(
        task_id="load_members",
        export=members.output,
        conn_id="warehouse",
        table="cordial_loyal_members",
        mode="replace",
        landed_assets=[MEMBERS_TABLE],
    )
