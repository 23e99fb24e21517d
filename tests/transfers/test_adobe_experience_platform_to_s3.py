"""AdobeExperiencePlatformToS3Operator against the AEP sandbox and moto (server mode)."""

from __future__ import annotations

import hashlib
import json

import pytest

from airflow_provider_exports.exceptions import ExportConfigError, ExportJobFailed, TransferError
from airflow_provider_exports.hooks._retry import RetryPolicy
from airflow_provider_exports.hooks.adobe_experience_platform import AdobeExperiencePlatformHook
from airflow_provider_exports.transfers.adobe_experience_platform_to_s3 import (
    AdobeExperiencePlatformToS3Operator,
)

FAST = RetryPolicy(max_attempts=3, backoff_initial=0.01, backoff_max=0.05)
MIB = 1024 * 1024
FILES = "/data/foundation/export/files/*"


def finished_job(sandbox, segments=("seg-a",), per_batch=False) -> tuple[str, list[str]]:
    """A SUCCEEDED job whose batches are in success: (job id, batch ids)."""
    hook = AdobeExperiencePlatformHook(retry=FAST)
    body = {
        "filter": {"segments": [{"segmentId": s} for s in segments]},
        "destination": {"datasetId": hook.create_profile_dataset("t"), "segmentPerBatch": per_batch},
        "schema": {"name": "_xdm.context.profile"},
    }
    sandbox.adobe.job_seconds = 0.0
    job_id = hook.create_export_job(body)["id"]
    assert hook.get_export_job(job_id)["status"] == "SUCCEEDED"
    return str(job_id), sandbox.adobe.batch_ids(job_id)


def _operator(s3, job_id, **kwargs):
    return AdobeExperiencePlatformToS3Operator(
        task_id="land", export_job_id=job_id, s3_bucket=s3.bucket, s3_key_prefix="raw/aep/", **kwargs
    )


def _assert_identical(sandbox, s3, batch_ids, prefix="raw/aep/", level=""):
    """Every file of the batches landed as the sandbox serves it; ``level`` is the directory
    entry's suffix (``~d1``) in front of the parts."""
    manifest = s3.manifest(prefix)
    landed = {f["name"]: f["location"] for f in manifest["files"]}
    expected = [(b, *e) for b in batch_ids for e in sandbox.adobe.expected_files(b)]
    assert len(landed) == len(expected)
    for batch_id, file_id, name, size, sha256, _rows in expected:
        body = s3.read(landed[f"{batch_id}/{file_id}{level}/{name}"])
        assert (len(body), hashlib.sha256(body).hexdigest()) == (size, sha256)
    return manifest


def test_a_job_lands_byte_identical_with_its_manifest(sandbox, s3):
    sandbox.adobe.default_rows = 400
    sandbox.adobe.files_per_batch = 2
    sandbox.adobe.parts_per_file = 2
    job_id, batches = finished_job(sandbox, segments=("seg-a", "seg-b"), per_batch=True)
    summary = _operator(s3, job_id).execute({})
    assert summary["job_ref"] == job_id and summary["file_count"] == 8 and not summary["skipped"]
    manifest = _assert_identical(sandbox, s3, batches)
    details = manifest["job_details"]
    assert details["jobId"] == job_id and details["batchIds"] == batches and details["segmentPerBatch"] is True
    assert details["schemaName"] == "_xdm.context.profile" and details["totalExportedProfileCounter"] == 800
    assert manifest["export_ref"] == details["datasetId"] == sandbox.adobe._jobs[int(job_id)].dataset_id
    segments = {f["attributes"]["batchId"]: f["attributes"]["segmentId"] for f in manifest["files"]}
    assert segments == dict(zip(batches, ["seg-a", "seg-b"], strict=True))
    # a rerun of the same job finds the manifest and moves nothing
    again = _operator(s3, job_id).execute({})
    assert again["skipped"] is True
    assert "Bearer" not in json.dumps(manifest) and "token" not in json.dumps(summary).lower()


def test_a_batch_with_more_than_100_files_behind_directory_entries(sandbox, s3):
    sandbox.adobe.default_rows = 130
    sandbox.adobe.rows_per_file = 1
    sandbox.adobe.directory_depth = 1
    job_id, (batch_id,) = finished_job(sandbox)
    summary = _operator(s3, job_id, max_concurrent_files=8).execute({})
    assert summary["file_count"] == 130
    _assert_identical(sandbox, s3, [batch_id], level="~d1")
    pages = sandbox.adobe.requests_to(f"/data/foundation/export/batches/{batch_id}/files")
    assert [r.query["start"] for r in pages] == ["0", "100"]


def test_a_download_dropped_mid_file_resumes_in_windows(sandbox, s3):
    sandbox.adobe.default_rows = 32_000  # one Parquet file of about 3.7 MB
    sandbox.adobe.files_per_batch = 1
    job_id, (batch_id,) = finished_job(sandbox)
    ((file_id, _name, size, _sha, _rows),) = sandbox.adobe.expected_files(batch_id)
    assert size > 3 * MIB
    # the first matching request is the file's directory listing (far below 1.5 MB: whole), the
    # second the first 2 MiB window, cut after 1.5 MB: the reader has had its first 1 MiB chunk
    sandbox.adobe.faults.drop_connection(FILES, after_bytes=1_500_000, times=2)
    _operator(s3, job_id, range_window=2 * MIB).execute({})
    _assert_identical(sandbox, s3, [batch_id])
    downloads = [r for r in sandbox.adobe.requests_to(f"/data/foundation/export/files/{file_id}") if "path" in r.query]
    spans = [tuple(map(int, r.range.removeprefix("bytes=").split("-"))) for r in downloads]
    # no call asks for more than a window; the cut one resumes at the byte it reached, not at 0
    assert spans == [(0, 2 * MIB - 1), (MIB, 3 * MIB - 1), (3 * MIB, size - 1)]
    assert [r.status for r in downloads] == [206, 206, 206]


def test_a_429_storm_on_listing_and_downloads_is_ridden_out(sandbox, s3, caplog):
    sandbox.adobe.default_rows = 300
    sandbox.adobe.files_per_batch = 1
    job_id, (batch_id,) = finished_job(sandbox)
    ((file_id, *_),) = sandbox.adobe.expected_files(batch_id)
    sandbox.adobe.faults.rate_limit("/data/foundation/export/batches/*", times=2, retry_after="1")
    # past the file's directory listing: the download itself gets three 429s
    sandbox.adobe.faults.rate_limit(FILES, times=3, retry_after="1", skip=1)
    _operator(s3, job_id).execute({})
    _assert_identical(sandbox, s3, [batch_id])
    listing = [r.status for r in sandbox.adobe.requests_to(f"/data/foundation/export/batches/{batch_id}/files")]
    downloads = [r.status for r in sandbox.adobe.requests_to(f"/data/foundation/export/files/{file_id}") if "path" in r.query]
    assert listing == [429, 429, 200] and downloads == [429, 429, 429, 206]
    assert "HTTP 429 (429050): Too many requests" in caplog.text  # Adobe's own code, in the retry's log line


def test_a_job_not_finished_or_failed_moves_nothing(sandbox, s3):
    hook = AdobeExperiencePlatformHook(retry=FAST)
    sandbox.adobe.job_seconds = 60
    body = {"destination": {"datasetId": hook.create_profile_dataset("t")}, "schema": {"name": "_xdm.context.profile"}}
    pending = hook.create_export_job(body)["id"]
    with pytest.raises(TransferError, match="not finished yet"):
        _operator(s3, pending).execute({})
    hook.cancel_export_job(pending)
    with pytest.raises(ExportJobFailed):
        _operator(s3, pending).execute({})
    assert s3.keys() == []


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [({"export_job_id": "x1"}, "export_job_id"), ({"range_window": 1000}, "range_window"), ({"s3_bucket": "s3://b/k"}, "s3_bucket")],
)
def test_bad_arguments_fail_when_the_dag_is_parsed(kwargs, field):
    args = {"task_id": "land", "export_job_id": "1", "s3_bucket": "b", **kwargs}
    with pytest.raises(ExportConfigError) as err:
        AdobeExperiencePlatformToS3Operator(**args)
    assert err.value.field == field
