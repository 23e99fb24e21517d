"""OpenLineage: what the transfers report, as the OpenLineage provider's own listener emits it after a
real ``dag.test()`` run (vendor sandbox, moto, PostgreSQL, SQLite); and that nothing needs the
provider when it is not installed.

The listener is the provider's, registered for the test with a file transport; extraction and
emission are the provider's code. Only where they run is chosen: in a thread (the provider's
``execute_in_thread``), or inline on OpenLineage providers without that option (Airflow 3.1's
floor), rather than in a process forked from a pytest process that runs the sandbox's servers.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from datetime import datetime, timezone
from pathlib import Path

import pytest

pytest.importorskip("airflow.providers.openlineage")

from airflow.sdk import DAG

from airflow_provider_exports_sandbox.adobe import IMS_ORG_ID, SANDBOX_NAME

LOGICAL_DATE = datetime(2026, 11, 22, tzinfo=timezone.utc)
EXPORT = "daily_loyalty_members"


def _listener_manager():
    try:  # Airflow 3.2+: the task runner's own
        from airflow.sdk.listener import get_listener_manager
    except ImportError:
        from airflow.listeners.listener import get_listener_manager
    return get_listener_manager()


@pytest.fixture
def lineage_events(tmp_path, monkeypatch):
    """Registers the OpenLineage provider's listener with a file transport; returns a function that
    reads the events it emitted."""
    from airflow.providers.openlineage import conf

    manager = _listener_manager()  # plugins load first, while OpenLineage is still disabled
    events_file = tmp_path / "openlineage.jsonl"
    transport = {"type": "file", "log_file_path": str(events_file), "append": True}
    monkeypatch.setenv("AIRFLOW__OPENLINEAGE__TRANSPORT", json.dumps(transport))
    monkeypatch.setenv("AIRFLOW__OPENLINEAGE__NAMESPACE", "exports-tests")
    monkeypatch.setenv("AIRFLOW__OPENLINEAGE__EXECUTE_IN_THREAD", "True")
    monkeypatch.setenv("AIRFLOW__OPENLINEAGE__EXECUTION_TIMEOUT", "60")

    def clear_conf() -> None:
        for value in vars(conf).values():
            if callable(getattr(value, "cache_clear", None)):
                value.cache_clear()

    clear_conf()
    from airflow.providers.openlineage.plugins.listener import OpenLineageListener

    listener = OpenLineageListener()
    if not hasattr(conf, "execute_in_thread"):
        monkeypatch.setattr(listener, "_execute", lambda callable, name, use_fork=False: callable())
    manager.add_listener(listener)

    def read() -> list[dict]:
        if not events_file.exists():
            return []
        return [json.loads(line) for line in events_file.read_text().splitlines() if line.strip()]

    yield read
    manager.pm.unregister(listener)
    if listener._executor is not None:  # the pool the listener emits DAG-run events from
        listener._executor.shutdown(wait=True)
    monkeypatch.undo()
    clear_conf()


def _completed(events: list[dict], task_id: str) -> dict:
    done = [e for e in events if e["eventType"] == "COMPLETE" and e["job"]["name"].endswith(f".{task_id}")]
    assert len(done) == 1, [(e["eventType"], e["job"]["name"]) for e in events]
    return done[0]


def _names(datasets: list[dict]) -> list[tuple[str, str]]:
    return [(d["namespace"], d["name"]) for d in datasets]


def _run_one(run_dag, operator_class, **kwargs):
    with DAG("lineage_test", schedule="@daily", start_date=LOGICAL_DATE, catchup=False) as dag:
        operator_class(task_id="move", **kwargs)
    run = run_dag(dag, logical_date=LOGICAL_DATE)
    assert {ti.task_id: ti.state for ti in run.get_task_instances()} == {"move": "success"}
    return run


def _sitecore_authority(sandbox) -> str:
    from urllib.parse import urlsplit

    conn = json.loads(os.environ["AIRFLOW_CONN_SITECORE_CDP_DEFAULT"])
    return urlsplit(conn["extra"]["api_host"]).netloc


def test_sitecore_to_s3_reports_the_export_job_and_the_s3_prefix(sandbox, s3, run_dag, lineage_events):
    from airflow_provider_exports.transfers.sitecore_cdp_to_s3 import SitecoreCDPToS3Operator

    sandbox.sitecore.add_export(EXPORT)
    ref = sandbox.sitecore.add_job(EXPORT, rows=100)
    _run_one(
        run_dag,
        SitecoreCDPToS3Operator,
        audience_export_ref=EXPORT,
        execution_ref=ref,
        s3_bucket=s3.bucket,
        s3_key_prefix="raw/sitecore/ds={{ ds }}/",
    )

    event = _completed(lineage_events(), "move")
    assert _names(event["inputs"]) == [(f"sitecore-cdp://{_sitecore_authority(sandbox)}", f"{EXPORT}/{ref}")]
    # as the amazon provider names S3: the bucket is the namespace, the key prefix the name
    assert _names(event["outputs"]) == [(f"s3://{s3.bucket}", "raw/sitecore/ds=2026-11-22")]


def test_sitecore_to_postgres_reports_the_table_as_common_sql_names_it(
    sandbox, postgres, monkeypatch, run_dag, lineage_events
):
    from airflow_provider_exports.transfers.sitecore_cdp_to_sql import SitecoreCDPToSqlOperator

    monkeypatch.setenv("AIRFLOW_CONN_WAREHOUSE", postgres.airflow_conn("warehouse")["AIRFLOW_CONN_WAREHOUSE"])
    sandbox.sitecore.add_export(EXPORT)
    ref = sandbox.sitecore.add_job(EXPORT, rows=100)
    _run_one(
        run_dag,
        SitecoreCDPToSqlOperator,
        audience_export_ref=EXPORT,
        execution_ref=ref,
        conn_id="warehouse",
        table="lineage_members",
        mode="replace",
    )

    event = _completed(lineage_events(), "move")
    assert _names(event["inputs"]) == [(f"sitecore-cdp://{_sitecore_authority(sandbox)}", f"{EXPORT}/{ref}")]
    assert _names(event["outputs"]) == [
        (f"postgres://{postgres.host}:{postgres.port}", f"{postgres.database}.public.lineage_members")
    ]


def test_aep_to_sqlite_reports_every_batch_and_the_table(sandbox, warehouse, run_dag, lineage_events):
    from airflow_provider_exports.hooks.adobe_experience_platform import AdobeExperiencePlatformHook
    from airflow_provider_exports.transfers.adobe_experience_platform_to_sql import (
        AdobeExperiencePlatformToSqlOperator,
    )

    sandbox.adobe.default_rows = 50
    sandbox.adobe.job_seconds = 0.0
    hook = AdobeExperiencePlatformHook()
    dataset_id = hook.create_profile_dataset("lineage")
    job_id = hook.create_export_job(
        {
            "filter": {"segments": [{"segmentId": "seg-a"}, {"segmentId": "seg-b"}]},
            "destination": {"datasetId": dataset_id, "segmentPerBatch": True},
            "schema": {"name": "_xdm.context.profile"},
        }
    )["id"]
    batches = sandbox.adobe.batch_ids(job_id)
    _run_one(
        run_dag,
        AdobeExperiencePlatformToSqlOperator,
        export_job_id=str(job_id),
        conn_id="warehouse",
        table="aep_profiles",
        mode="replace",
    )

    event = _completed(lineage_events(), "move")
    assert len(batches) == 2
    assert _names(event["inputs"]) == [
        (f"aep://{IMS_ORG_ID}/{SANDBOX_NAME}", f"{dataset_id}/{b}") for b in batches
    ]
    assert _names(event["outputs"]) == [(f"sqlite://{warehouse}", "main.aep_profiles")]


def test_object_storage_output_is_named_by_its_store(sandbox, tmp_path, run_dag, lineage_events):
    from airflow_provider_exports.transfers.sitecore_cdp_to_object_storage import (
        SitecoreCDPToObjectStorageOperator,
    )

    sandbox.sitecore.add_export(EXPORT)
    ref = sandbox.sitecore.add_job(EXPORT, rows=100)
    _run_one(
        run_dag,
        SitecoreCDPToObjectStorageOperator,
        audience_export_ref=EXPORT,
        execution_ref=ref,
        destination=f"file://{tmp_path}/lake/ds={{{{ ds }}}}/",
    )

    event = _completed(lineage_events(), "move")
    assert _names(event["outputs"]) == [("file", f"{tmp_path}/lake/ds=2026-11-22")]


def test_cordial_reports_the_job_and_the_object_it_delivered(sandbox, s3, warehouse):
    """The facets the operator hands the OpenLineage provider, after a real run (the listener path
    is the one tested above)."""
    import time

    from airflow_provider_exports.hooks.cordial import CordialHook
    from airflow_provider_exports.transfers.cordial_to_sql import CordialS3ToSqlOperator

    sandbox.cordial.s3_endpoint_url = s3.endpoint_url
    sandbox.cordial.job_seconds = 0.05
    sandbox.cordial.add_audience("vip")
    hook = CordialHook()
    job_id = hook.create_audience_trends_export(
        name="weekly-trends",
        audiences=["vip"],
        selected_timeframe_start="2026-11-16",
        selected_timeframe_end="2026-11-22",
        destination={
            "type": "S3",
            "aws_bucket": s3.bucket,
            "aws_region": "us-east-1",
            "path": "cordial/2026-11-22",
            "aws_access_key_id": "testing",
            "aws_secret_access_key": "testing",
        },
    )
    deadline = time.monotonic() + 20
    while hook.get_job(job_id)["status"] != "Done":
        assert time.monotonic() < deadline, "the sandbox job did not finish"
        time.sleep(0.05)
    export = {
        "job_id": job_id,
        "name": "weekly-trends",
        "export": "audience_trends",
        "destination": {"type": "S3", "bucket": s3.bucket, "path": "cordial/2026-11-22"},
    }
    operator = CordialS3ToSqlOperator(task_id="load", export=export, conn_id="warehouse", table="trends")
    operator.execute({})
    lineage = operator.get_openlineage_facets_on_complete(None)

    api = json.loads(os.environ["AIRFLOW_CONN_CORDIAL_DEFAULT"])["extra"]["api_host"]
    (key,) = s3.keys("cordial/2026-11-22/")
    assert [(d.namespace, d.name) for d in lineage.inputs] == [
        (f"cordial://{api.split('://')[-1].rstrip('/')}", f"weekly-trends/{job_id}"),
        (f"s3://{s3.bucket}", key),
    ]
    assert [(d.namespace, d.name) for d in lineage.outputs] == [(f"sqlite://{warehouse}", "main.trends")]


# -- without the OpenLineage provider ---------------------------------------------------------------

WITHOUT_OPENLINEAGE = textwrap.dedent(
    """
    import sys

    class Blocked:
        def find_spec(self, name, path=None, target=None):
            if name == "openlineage" or name.startswith(("openlineage.", "airflow.providers.openlineage")):
                raise ImportError(f"{name} is blocked for this test")

    sys.meta_path.insert(0, Blocked())
    for name in [m for m in sys.modules if "openlineage" in m]:
        del sys.modules[name]

    # ...and its distributions are not there either, so Airflow discovers no such provider or plugin
    import importlib.metadata
    import importlib_metadata

    for metadata in (importlib.metadata, importlib_metadata):
        def distributions(*args, _all=metadata.distributions, **kwargs):
            return (d for d in _all(*args, **kwargs) if "openlineage" not in (d.metadata["Name"] or "").lower())

        metadata.distributions = distributions

    import importlib, json, pkgutil
    import airflow_provider_exports
    for module in pkgutil.walk_packages(airflow_provider_exports.__path__, "airflow_provider_exports."):
        if ".sandbox" not in module.name:
            importlib.import_module(module.name)
    assert not [m for m in sys.modules if "openlineage" in m and m != "airflow_provider_exports.utils.openlineage"]

    from airflow_provider_exports.transfers.sitecore_cdp_to_object_storage import SitecoreCDPToObjectStorageOperator
    summary = SitecoreCDPToObjectStorageOperator(
        task_id="land", audience_export_ref=sys.argv[1], execution_ref=sys.argv[2], destination=sys.argv[3]
    ).execute({})
    print(json.dumps(summary))
    """
)


def test_everything_imports_and_a_transfer_runs_without_the_openlineage_provider(sandbox, tmp_path):
    sandbox.sitecore.add_export(EXPORT)
    ref = sandbox.sitecore.add_job(EXPORT, rows=100)
    destination = f"file://{tmp_path}/lake"
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    done = subprocess.run(
        [sys.executable, "-c", WITHOUT_OPENLINEAGE, EXPORT, ref, destination],
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["job_ref"] == ref and summary["skipped"] is False
    manifest = json.loads(Path(tmp_path, "lake", "_manifest.json").read_text())
    assert manifest["job_ref"] == ref
