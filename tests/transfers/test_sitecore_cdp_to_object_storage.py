"""SitecoreCDPToObjectStorageOperator against the Sitecore sandbox, into a local directory (file://)
through a real ``dag.test()``."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from airflow.sdk import DAG

from airflow_provider_exports.exceptions import ExportConfigError
from airflow_provider_exports.transfers.sitecore_cdp_to_object_storage import (
    SitecoreCDPToObjectStorageOperator,
)

EXPORT = "daily_loyalty_members"
LOGICAL_DATE = datetime(2026, 11, 22, tzinfo=timezone.utc)


def _dag(**kwargs) -> DAG:
    with DAG("sitecore_to_object_storage", schedule="@daily", start_date=LOGICAL_DATE, catchup=False) as dag:
        SitecoreCDPToObjectStorageOperator(task_id="land", audience_export_ref=EXPORT, **kwargs)
    return dag


def _summary(run) -> dict:
    ti = run.get_task_instance("land")
    assert ti.state == "success"
    return ti.xcom_pull(task_ids="land")


def test_a_dag_lands_the_job_in_a_local_directory_with_its_manifest_and_a_rerun_skips(
    sandbox, tmp_path, run_dag
):
    sandbox.sitecore.add_export(EXPORT, rows_per_file=300)
    ref = sandbox.sitecore.add_job(EXPORT, rows=1000)
    dag = _dag(execution_ref=ref, destination=f"file://{tmp_path}/lake/{{{{ dag.dag_id }}}}/")
    root = tmp_path / "lake" / "sitecore_to_object_storage"

    summary = _summary(run_dag(dag, logical_date=LOGICAL_DATE))

    manifest = json.loads((root / "_manifest.json").read_text())
    assert summary["skipped"] is False and summary["file_count"] == 4 == manifest["file_count"]
    assert manifest["job_ref"] == ref and manifest["job_details"]["executionRef"] == ref
    assert manifest["destination"] == {"kind": "object_storage", "url": f"file://{root}"}
    expected = sandbox.sitecore.expected_files(ref)
    landed = {f["name"]: Path(f["location"]) for f in manifest["files"]}
    for name, size, sha256, _rows in expected:
        body = landed[name].read_bytes()
        assert (len(body), hashlib.sha256(body).hexdigest()) == (size, sha256)
    assert all(p.parent == root / f"run-{manifest['run_id']}" for p in landed.values())

    again = _summary(run_dag(dag, logical_date=LOGICAL_DATE + timedelta(days=1)))
    assert again["skipped"] is True and again["run_id"] == manifest["run_id"]


@pytest.mark.parametrize("destination", ["lake/raw", "s3:/lake", "gs://"])
def test_a_destination_that_is_no_uri_fails_when_the_dag_is_parsed(destination):
    with pytest.raises(ExportConfigError, match="destination"):
        SitecoreCDPToObjectStorageOperator(
            task_id="land", audience_export_ref=EXPORT, destination=destination
        )


def test_template_fields():
    assert SitecoreCDPToObjectStorageOperator.template_fields == (
        "audience_export_ref",
        "execution_ref",
        "sitecore_cdp_conn_id",
        "destination",
        "destination_conn_id",
    )
