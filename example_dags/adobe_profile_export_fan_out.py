"""Adobe Experience Platform, daily, fanned out: a profile export's batch files moved by many workers.

The same flow as ``adobe_profile_export`` (a dataset, a profile export job for two segments, its
Parquet batch files into the lake and a table) for exports too large for one worker: one task
lists the batch files through Data Access, Airflow maps a task over groups of them
(``.expand()``) for each destination, and one final task per destination commits — the S3
manifest once every group is staged; one transaction that merges every group's rows into the
table (types agreed over every file). A failed group is retried alone; a run that fails for good
leaves the lake and the table as the last good run left them.

Connections: ``adobe_aep_default``, ``aws_default``, ``warehouse``. Variables (optional):
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
    AdobeExperiencePlatformListFilesOperator,
    AdobeExperiencePlatformStageFilesToS3Operator,
    FanOutCommitOperator,
)
from airflow_provider_exports.transfers.adobe_experience_platform_to_sql import (
    AdobeExperiencePlatformStageFilesToSqlOperator,
)
from airflow_provider_exports.utils.windows import MACROS

JOB_ID = "{{ ti.xcom_pull(task_ids='export_profiles', key='job_id') }}"
TABLE = Asset("warehouse://aep_profiles_fan_out")

with DAG(
    dag_id="adobe_profile_export_fan_out",
    schedule="@daily",
    start_date=pendulum.datetime(2026, 11, 1, tz="UTC"),
    catchup=False,
    # run_window() in templates: the run's window, also for a manual run without a data interval
    user_defined_macros=MACROS,
    default_args={"retries": 2, "retry_delay": pendulum.duration(minutes=5)},
    tags=["exports", "adobe-experience-platform", "fan-out"],
):
    dataset = AdobeCreateProfileDatasetOperator(
        task_id="profile_dataset", dataset_name="airflow-profile-exports"
    )
    export = AdobeCreateProfileExportJobOperator(
        task_id="export_profiles",
        dataset_id=dataset.output,
        segments=["vip-customers", "newsletter-subscribers"],
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
    files = AdobeExperiencePlatformListFilesOperator(
        task_id="list_files", export_job_id=JOB_ID, files_per_group=1
    )
    export >> files
    land = AdobeExperiencePlatformStageFilesToS3Operator.partial(
        task_id="land_files",
        export_job_id=JOB_ID,
        s3_bucket="{{ var.value.get('exports_bucket', 'lake') }}",
        s3_key_prefix="raw/aep/profiles_fan_out/ds={{ run_window().ds }}/",
    ).expand(group=files.output)
    land_commit = FanOutCommitOperator(task_id="commit_land", staged=land.output)
    load = AdobeExperiencePlatformStageFilesToSqlOperator.partial(
        task_id="load_files",
        export_job_id=JOB_ID,
        conn_id="warehouse",
        table="aep_profiles_fan_out",
        mode="append",
    ).expand(group=files.output)
    load_commit = FanOutCommitOperator(task_id="commit_load", staged=load.output, landed_assets=[TABLE])
    land_commit >> load
