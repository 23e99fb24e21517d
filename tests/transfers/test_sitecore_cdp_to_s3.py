"""SitecoreCDPToS3Operator against the Sitecore sandbox and moto (server mode)."""

from __future__ import annotations

import hashlib
import json

import pytest

from airflow_provider_exports.exceptions import ExportConfigError
from airflow_provider_exports.transfers.sitecore_cdp_to_s3 import SitecoreCDPToS3Operator

EXPORT = "daily_loyalty_members"


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
    from airflow_provider_exports.hooks._http import RetryPolicy

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
