"""Sitecore CDP, daily, into any object store: the docs' "Other object stores" example (docs/engine.md).

A complete DAG so the page's code runs as shown: tests/test_docs.py runs it with ``dag.test()``
against the sandbox, into a local S3 through ``s3://`` (the Variables below name the store).
"""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG

from airflow_provider_exports.sensors.sitecore_cdp import SitecoreCDPExportSensor
from airflow_provider_exports.transfers.sitecore_cdp_to_object_storage import (
    SitecoreCDPToObjectStorageOperator,
)
from airflow_provider_exports.utils.windows import MACROS

with DAG(
    dag_id="sitecore_cdp_to_object_storage",
    schedule="@daily",
    start_date=pendulum.datetime(2026, 11, 1, tz="UTC"),
    catchup=False,
    user_defined_macros=MACROS,  # run_window(): the run's window, also for a manual run without one
):
    wait = SitecoreCDPExportSensor(task_id="wait_for_export", audience_export_ref="daily_loyalty_members")
    SitecoreCDPToObjectStorageOperator(
        task_id="land",
        audience_export_ref="daily_loyalty_members",
        execution_ref=wait.output,
        # the store's root: gs://lake, abfs://lake, file:///data/lake, s3://lake...
        destination="{{ var.value.get('exports_lake', 'gs://lake') }}/raw/sitecore/ds={{ run_window().ds }}/",
        # its connection: google_cloud_default (gs://), wasb_default (abfs://), aws_default (s3://)
        destination_conn_id="{{ var.value.get('exports_lake_conn_id', 'google_cloud_default') }}",
    )
