"""Adobe Experience Platform, daily: export two segments' profiles, land the Parquet files in S3, load a table.

Each day this DAG finds (or creates, once) the dataset on the profile union schema, creates a
profile export job for two segments with the profiles ingested since the data interval started
(a manual run without one: since the last successful run's, or all; ``run_window()`` in templates),
waits for the job and its Catalog batch (deferred, costing no worker; the job is cancelled if the
task is killed or the wait times out), streams the batch's Parquet files into the lake through
Data Access, loads the profiles into a warehouse table in one transaction (nested XDM fields as
JSON), and marks the table's Asset so downstream DAGs run.

Connections: ``adobe_aep_default`` (Adobe Experience Platform), ``aws_default`` (S3), ``warehouse``
(any SQL database with a DbApiHook: PostgreSQL, SQLite, Snowflake...). Variables (optional):
``exports_bucket``.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG, Asset

from airflow_provider_exports.operators.adobe_experience_platform import (
    AdobeCreateProfileDatasetOperator,
    AdobeCreateProfileExportJobOperator,
)
from airflow_provider_exports.transfers.adobe_experience_platform_to_s3 import (
    AdobeExperiencePlatformToS3Operator,
)
from airflow_provider_exports.transfers.adobe_experience_platform_to_sql import (
    AdobeExperiencePlatformToSqlOperator,
)
from airflow_provider_exports.utils.windows import MACROS

SEGMENTS = ["vip-customers", "newsletter-subscribers"]
JOB_ID = "{{ ti.xcom_pull(task_ids='export_profiles', key='job_id') }}"
AEP_PROFILES_TABLE = Asset("warehouse://aep_profiles")

with DAG(
    dag_id="adobe_profile_export",
    schedule="@daily",
    start_date=pendulum.datetime(2026, 11, 1, tz="UTC"),
    catchup=False,
    # run_window() in templates: the run's window, also for a manual run without a data interval
    user_defined_macros=MACROS,
    default_args={"retries": 2, "retry_delay": pendulum.duration(minutes=5)},
    tags=["exports", "adobe-experience-platform"],
):
    dataset = AdobeCreateProfileDatasetOperator(
        task_id="profile_dataset",
        dataset_name="airflow-profile-exports",
        description="Profiles exported by Airflow",
    )
    export = AdobeCreateProfileExportJobOperator(
        task_id="export_profiles",
        dataset_id=dataset.output,
        segments=SEGMENTS,
        segment_statuses=["realized", "existing"],
        # Several segments need a merge policy (Adobe: "Include this parameter when there are
        # multiple segment definitions being exported"): your organization's, by its id.
        merge_policy_id="{{ var.value.get('aep_merge_policy_id', 'timestampOrdered-none-mp') }}",
        from_ingest_timestamp="{{ run_window().start }}",
        fields="identities,identityMap,personalEmail,person,homeAddress,segmentMembership",
        deferrable=True,
        poll_interval=60,
        timeout=6 * 3600,
    )
    land = AdobeExperiencePlatformToS3Operator(
        task_id="land",
        export_job_id=JOB_ID,
        s3_bucket="{{ var.value.get('exports_bucket', 'lake') }}",
        s3_key_prefix="raw/aep/profiles/ds={{ run_window().ds }}/",
    )
    load = AdobeExperiencePlatformToSqlOperator(
        task_id="load",
        export_job_id=JOB_ID,
        conn_id="warehouse",
        table="aep_profiles",
        mode="replace",
        landed_assets=[AEP_PROFILES_TABLE],
    )
    export >> land >> load
