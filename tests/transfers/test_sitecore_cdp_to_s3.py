"""SitecoreCDPToS3Operator against the Sitecore sandbox and moto (server mode)."""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import os
import signal
import threading
import time
from datetime import datetime, timedelta, timezone

import pytest

from airflow_provider_exports.exceptions import (
    ExportConfigError,
    TransferCancelled,
    TransferError,
    URLRefused,
)
from airflow_provider_exports.transfers.sitecore_cdp_to_s3 import SitecoreCDPToS3Operator

EXPORT = "daily_loyalty_members"
LOGICAL_DATE = datetime(2026, 11, 22, tzinfo=timezone.utc)


def _operator(s3, **kwargs):
    return SitecoreCDPToS3Operator(
        task_id="land",
        audience_export_ref=EXPORT,
        s3_bucket=s3.bucket,
        s3_key_prefix="raw/sitecore/",
        **kwargs,
    )


def _assert_identical(sandbox, s3, ref, prefix="raw/sitecore/"):
    landed = s3.committed(prefix)
    expected = sandbox.sitecore.expected_files(ref)
    assert len(landed) == len(expected)
    for name, size, sha256, _rows in expected:
        kind = next((k for k in ("added", "removed") if k in name), None)
        body = s3.read(landed[f"{kind}/{name}" if kind else name])
        assert (len(body), hashlib.sha256(body).hexdigest()) == (size, sha256)


def test_latest_job_lands_byte_identical_with_manifest(sandbox, s3):
    sandbox.sitecore.add_export(EXPORT, rows_per_file=300)
    ref = sandbox.sitecore.add_job(EXPORT, rows=1000)
    summary = _operator(s3).execute({})
    assert summary["job_ref"] == ref and summary["file_count"] == 4 and not summary["skipped"]
    _assert_identical(sandbox, s3, ref)
    manifest = s3.manifest("raw/sitecore/")
    assert manifest["job_details"]["executionRef"] == ref
    assert manifest["job_details"]["definitionRef"]
    assert "url" not in json.dumps(summary).lower() and "X-Amz" not in json.dumps(manifest)


def test_url_expiring_between_listing_and_download_is_fetched_again(sandbox, s3, monkeypatch):
    sandbox.sitecore.add_export(EXPORT, rows_per_file=300)
    ref = sandbox.sitecore.add_job(EXPORT, rows=600)
    op = _operator(s3, execution_ref=ref)
    listing = op.hook.get_execution_output

    def list_then_expire(execution_ref):
        output = listing(execution_ref)
        if not getattr(list_then_expire, "done", False):
            list_then_expire.done = True
            sandbox.sitecore.faults.expire_urls()  # the URLs just listed are dead before the first byte
        return output

    monkeypatch.setattr(op.hook, "get_execution_output", list_then_expire)
    op.execute({})
    _assert_identical(sandbox, s3, ref)
    file_requests = sandbox.sitecore.requests_to("/sitecore-cdp-exports/*")
    assert 403 in [r.status for r in file_requests]
    assert len(sandbox.sitecore.requests_to(f"/v2/audienceExports/executions/{ref}/export")) >= 2


def test_a_file_gone_from_the_listing_when_its_url_is_refreshed_fails_clearly(sandbox, s3, monkeypatch):
    sandbox.sitecore.add_export(EXPORT, rows_per_file=300)
    ref = sandbox.sitecore.add_job(EXPORT, rows=600)
    op = _operator(s3, execution_ref=ref)
    listing = op.hook.get_execution_output
    calls = []

    def second_listing_lost_a_file(execution_ref):
        output = listing(execution_ref)
        calls.append(execution_ref)
        if len(calls) == 1:
            sandbox.sitecore.faults.expire_urls()  # the URLs just listed are dead before the first byte
            return output
        return dataclasses.replace(output, files=output.files[1:])

    monkeypatch.setattr(op.hook, "get_execution_output", second_listing_lost_a_file)
    with pytest.raises(TransferError, match=r"part-00000\.json\.gz is no longer in the output listing"):
        op.execute({})
    assert s3.keys() == []


def _listing_naming(sandbox, ref, rewrite):
    """Sitecore's listing of job ``ref`` with every file's URL rewritten: a vendor naming any URL."""
    from airflow_provider_exports.hooks.sitecore_cdp import SitecoreCDPHook

    hook = SitecoreCDPHook()
    path = f"/v2/audienceExports/executions/{ref}/export"
    listing = hook.call("GET", path)
    hook.close()
    for f in listing["exports"]:
        f["url"] = rewrite(f["url"])
    sandbox.sitecore.faults.answer(path, times=None, json=listing)


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://169.254.169.254/latest/meta-data/iam/security-credentials/worker", "plain http"),
        ("https://169.254.169.254/latest/meta-data/iam/security-credentials/worker", "link-local"),
        # https, port 443, a name: resolved when connecting (as a DNS rebinding would) to loopback
        ("https://localhost/latest/meta-data/iam/security-credentials/worker", "no public address"),
    ],
)
def test_a_listing_naming_an_internal_address_is_refused_before_a_byte_is_sent(sandbox, s3, url, why):
    sandbox.sitecore.add_export(EXPORT)
    ref = sandbox.sitecore.add_job(EXPORT, rows=200)
    _listing_naming(sandbox, ref, lambda _real: url)
    started = time.monotonic()
    with pytest.raises(URLRefused, match=why) as err:
        _operator(s3, execution_ref=ref).execute({})
    assert time.monotonic() - started < 30  # refused, not retried
    assert "allowed_hosts" in str(err.value)
    assert s3.keys() == []


def test_a_private_host_is_reached_when_the_connection_allows_it(sandbox, s3, monkeypatch):
    sandbox.sitecore.add_export(EXPORT, rows_per_file=300)
    ref = sandbox.sitecore.add_job(EXPORT, rows=600)
    # The same files, named by another name of the sandbox's host: not the connection's own host.
    _listing_naming(sandbox, ref, lambda real: real.replace("127.0.0.1", "localhost", 1))
    with pytest.raises(URLRefused, match="localhost"):
        _operator(s3, execution_ref=ref).execute({})
    conn = sandbox.connections()["sitecore_cdp_default"]
    conn["extra"]["allowed_hosts"] = "localhost"
    monkeypatch.setenv("AIRFLOW_CONN_SITECORE_CDP_DEFAULT", json.dumps(conn))
    _operator(s3, execution_ref=ref).execute({})
    _assert_identical(sandbox, s3, ref)


def test_rerun_of_the_same_job_skips(sandbox, s3):
    sandbox.sitecore.add_export(EXPORT)
    ref = sandbox.sitecore.add_job(EXPORT, rows=200)
    _operator(s3, execution_ref=ref).execute({})
    downloads = len(sandbox.sitecore.requests_to("/sitecore-cdp-exports/*"))
    again = _operator(s3, execution_ref=ref).execute({})
    assert again["skipped"] is True
    assert len(sandbox.sitecore.requests_to("/sitecore-cdp-exports/*")) == downloads
    forced = _operator(s3, execution_ref=ref, overwrite=True).execute({})
    assert forced["skipped"] is False


def test_delta_export_keeps_added_and_removed_apart(sandbox, s3):
    sandbox.sitecore.add_export(EXPORT, definition_type="DELTA")
    ref = sandbox.sitecore.add_job(EXPORT, rows=500)
    summary = _operator(s3, execution_ref=ref).execute({})
    run_dir = f"raw/sitecore/run-{summary['run_id']}"
    assert any(k.startswith(f"{run_dir}/added/") for k in summary["locations"])
    assert any(k.startswith(f"{run_dir}/removed/") for k in summary["locations"])
    _assert_identical(sandbox, s3, ref)


def test_delta_never_lands_every_file_as_a_snapshot(sandbox, s3):
    sandbox.sitecore.add_export(EXPORT, definition_type="DELTA")
    ref = sandbox.sitecore.add_job(EXPORT, rows=500)
    summary = _operator(s3, execution_ref=ref, delta="never").execute({})
    run_dir = f"raw/sitecore/run-{summary['run_id']}/"
    names = sorted(name for name, *_ in sandbox.sitecore.expected_files(ref))
    assert sorted(k.removeprefix(run_dir) for k in summary["locations"]) == names  # no added/, removed/


def test_delta_always_fails_on_a_file_named_otherwise_before_anything_lands(sandbox, s3):
    sandbox.sitecore.add_export(EXPORT, definition_type="DELTA", delta_prefixes=("added-", "guests-b-"))
    ref = sandbox.sitecore.add_job(EXPORT, rows=500)
    with pytest.raises(TransferError, match=r"delta='always'.*\['guests-b-part-00000.json.gz'\]"):
        _operator(s3, execution_ref=ref, delta="always").execute({})
    assert not s3.keys("raw/sitecore/")
    assert not sandbox.sitecore.requests_to("/sitecore-cdp-exports/*")


@pytest.mark.parametrize(("delta", "fails"), [("always", True), ("never", False), ("by_name", False)])
def test_the_fan_out_listing_follows_delta(sandbox, delta, fails):
    from airflow_provider_exports.transfers.sitecore_cdp_to_s3 import SitecoreCDPListFilesOperator

    sandbox.sitecore.add_export(EXPORT, definition_type="DELTA", delta_prefixes=("added-", "guests-b-"))
    ref = sandbox.sitecore.add_job(EXPORT, rows=500)
    listing = SitecoreCDPListFilesOperator(
        task_id="l", audience_export_ref=EXPORT, execution_ref=ref, delta=delta, files_per_group=10
    )
    if fails:
        with pytest.raises(TransferError, match=r"guests-b-part-00000\.json\.gz"):
            listing.execute({})
        return
    (group,) = listing.execute({})
    named = {f["name"] for f in group["files"]}
    added = "added-part-00000.json.gz"
    assert named == ({added, "guests-b-part-00000.json.gz"} if delta == "never" else {f"added/{added}", "guests-b-part-00000.json.gz"})


def test_dropped_connection_resumes(sandbox, s3):
    sandbox.sitecore.add_export(EXPORT)
    ref = sandbox.sitecore.add_job(EXPORT, rows=3000)
    sandbox.sitecore.faults.drop_connection("/sitecore-cdp-exports/*", after_bytes=10_000, times=2)
    _operator(s3, execution_ref=ref).execute({})
    _assert_identical(sandbox, s3, ref)


def test_server_error_storm_leaves_nothing_behind(sandbox, s3):
    sandbox.sitecore.add_export(EXPORT, rows_per_file=300)
    ref = sandbox.sitecore.add_job(EXPORT, rows=900)
    sandbox.sitecore.faults.server_error("/sitecore-cdp-exports/*", times=None, status=503)
    op = _operator(s3, execution_ref=ref)
    from airflow_provider_exports.hooks._retry import RetryPolicy

    op.hook.retry = RetryPolicy(max_attempts=2, backoff_initial=0.01, backoff_max=0.02)
    with pytest.raises(Exception, match="503"):
        op.execute({})
    assert s3.keys() == []
    assert s3.client().list_multipart_uploads(Bucket=s3.bucket).get("Uploads", []) == []


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"audience_export_ref": "Daily Loyalty!"}, "audience_export_ref"),
        ({"execution_ref": "not-a-uuid"}, "execution_ref"),
        ({"s3_bucket": "s3://lake/raw"}, "s3_bucket"),
    ],
)
def test_bad_input_fails_at_parse_time(kwargs, field):
    args = {"task_id": "t", "audience_export_ref": EXPORT, "s3_bucket": "lake"} | kwargs
    with pytest.raises(ExportConfigError) as err:
        SitecoreCDPToS3Operator(**args)
    assert err.value.field == field


# --- stopping a transfer: Airflow's execution_timeout, on_kill, SIGTERM ------------------------------

SLOW_FILES = 4  # files in flight at once (the operator's default max_concurrent_files)


def _slow_job(sandbox) -> str:
    """A job whose four files (about 100 KB each) trickle at 2 KB/s: each needs 50 s or more."""
    sandbox.sitecore.add_export(EXPORT, rows_per_file=1600)
    ref = sandbox.sitecore.add_job(EXPORT, rows=SLOW_FILES * 1600, end_time=LOGICAL_DATE + timedelta(hours=1))
    sandbox.sitecore.faults.throttle("/sitecore-cdp-exports/*", bytes_per_second=2000, times=None)
    return ref


def _when_all_files_are_in_flight(sandbox, then) -> threading.Thread:
    def watch():
        deadline = time.monotonic() + 60
        while len(sandbox.sitecore.requests_to("/sitecore-cdp-exports/*")) < SLOW_FILES:
            if time.monotonic() > deadline:
                return
            time.sleep(0.05)
        then()

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    return watcher


def _assert_nothing_landed(s3) -> None:
    assert s3.keys() == []
    assert s3.client().list_multipart_uploads(Bucket=s3.bucket).get("Uploads", []) == []


@pytest.fixture
def slow_flow(sandbox, s3, warehouse, load_example_dag, monkeypatch):
    """The example DAG in poke mode, without retries, its transfer facing four slow downloads."""
    monkeypatch.setenv("AIRFLOW_VAR_EXPORTS_BUCKET", s3.bucket)
    _slow_job(sandbox)
    dag = load_example_dag("sitecore_cdp_audience_export.py", "sitecore_cdp_audience_export")
    dag.get_task("wait_for_export").deferrable = False
    dag.get_task("land").retries = 0
    return dag


def _land(run):
    return next(ti for ti in run.get_task_instances() if ti.task_id == "land")


def test_execution_timeout_stops_every_file_in_flight_and_aborts(slow_flow, sandbox, s3):
    # Long enough for every file to be in flight on a busy machine (token, listing and the first
    # requests took over 8 s at a load average of 20), far shorter than the 50 s each file needs.
    slow_flow.get_task("land").execution_timeout = timedelta(seconds=15)

    run = slow_flow.test(logical_date=LOGICAL_DATE)

    land = _land(run)
    assert land.state == "failed"
    assert len(sandbox.sitecore.requests_to("/sitecore-cdp-exports/*")) == SLOW_FILES
    # the task ended at its timeout (plus the 10 s grace at most), not when the files were done
    assert (land.end_date - land.start_date).total_seconds() < 15 + 10
    _assert_nothing_landed(s3)


def test_sigterm_calls_on_kill_which_stops_the_transfer(slow_flow, sandbox, s3):
    previous = signal.getsignal(signal.SIGTERM)
    killed_at: list[float] = []

    def sigterm():
        killed_at.append(time.monotonic())
        os.kill(os.getpid(), signal.SIGTERM)  # what Airflow's supervisor sends a task it stops

    try:
        _when_all_files_are_in_flight(sandbox, sigterm)
        run = slow_flow.test(logical_date=LOGICAL_DATE)
        ended_at = time.monotonic()
    finally:
        signal.signal(signal.SIGTERM, previous)

    assert _land(run).state == "failed" and killed_at
    assert ended_at - killed_at[0] < 5  # the supervisor sends SIGKILL 5 s after SIGTERM
    _assert_nothing_landed(s3)


def test_on_kill_from_another_thread_stops_the_transfer(sandbox, s3):
    ref = _slow_job(sandbox)
    op = _operator(s3, execution_ref=ref)
    killed_at: list[float] = []

    def kill():
        killed_at.append(time.monotonic())
        op.on_kill()

    watcher = _when_all_files_are_in_flight(sandbox, kill)
    with pytest.raises(TransferCancelled, match="killed"):
        op.execute({})
    ended_at = time.monotonic()
    watcher.join(5)

    assert killed_at and ended_at - killed_at[0] < 10
    _assert_nothing_landed(s3)


def test_the_operator_can_be_copied_before_and_after_it_ran(sandbox, s3, load_example_dag):
    dag = load_example_dag("sitecore_cdp_audience_export.py", "sitecore_cdp_audience_export")
    subset = dag.partial_subset(["land"], include_upstream=False)  # deep-copies the operators
    assert subset.task_ids == ["land"]

    sandbox.sitecore.add_export(EXPORT)
    op = _operator(s3, execution_ref=sandbox.sitecore.add_job(EXPORT, rows=100))
    op.execute({})
    assert copy.deepcopy(op).audience_export_ref == EXPORT


def test_a_missing_bucket_fails_the_task_once_naming_s3_bucket(sandbox, s3, run_dag, capfd):
    from airflow.sdk import DAG

    sandbox.sitecore.add_export(EXPORT, rows_per_file=300)
    sandbox.sitecore.add_job(EXPORT, rows=600)
    with DAG("land_into_a_missing_bucket", schedule=None, start_date=LOGICAL_DATE) as dag:
        SitecoreCDPToS3Operator(
            task_id="land",
            audience_export_ref=EXPORT,
            s3_bucket="no-such-bucket-here",
            s3_key_prefix="raw/sitecore/",
            retries=2,
            retry_delay=timedelta(0),
        )

    run = run_dag(dag, logical_date=LOGICAL_DATE)

    ti = run.get_task_instance("land")
    assert (ti.state, ti.try_number) == ("failed", 1)  # not retried: the bucket will not appear by itself
    log = "".join(capfd.readouterr())
    assert "S3RequestRefused: S3 GetObject s3://no-such-bucket-here/raw/sitecore/_manifest.json failed: " in log
    assert "(bucket 'no-such-bucket-here' from s3_bucket). Not retried: The bucket does not exist: check s3_bucket" in log
