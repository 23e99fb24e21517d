"""S3 sink: Sitecore sandbox files over real HTTP into moto (server mode) through the S3Hook."""

from __future__ import annotations

import hashlib
import json
import logging

import pytest

from airflow_provider_exports.exceptions import ExportConfigError, VendorConnectionError, VendorServerError
from airflow_provider_exports.transfers.engine import S3Sink, run_transfer

from .conftest import LocalFileSource

MIB = 1024 * 1024
VENDOR = "Sitecore CDP"


def _run(job, sink, **kwargs):
    return run_transfer(job.sources, sink, vendor=VENDOR, export_ref=job.export_ref, job_ref=job.job_ref, **kwargs)


def _no_uploads_left(s3) -> None:
    assert s3.client().list_multipart_uploads(Bucket=s3.bucket).get("Uploads", []) == []


def test_multi_file_export_lands_byte_identical_with_manifest_last(sitecore_job, s3):
    job = sitecore_job(rows=3000, rows_per_file=1000)
    sink = S3Sink(s3.bucket, "raw/sitecore/loyalty_members/ds=2026-11-23", part_size=5 * MIB)

    summary = _run(job, sink)

    prefix = "raw/sitecore/loyalty_members/ds=2026-11-23"
    assert len(job.expected) == 3
    for name, size, sha, _rows in job.expected:
        body = s3.read(f"{prefix}/{name}")
        assert len(body) == size and hashlib.sha256(body).hexdigest() == sha
        head = s3.client().head_object(Bucket=s3.bucket, Key=f"{prefix}/{name}")
        assert head["Metadata"]["job-ref"] == job.job_ref
        assert head["Metadata"]["export-ref"] == job.export_ref
        assert head["ContentType"] == "application/gzip"
    manifest = json.loads(s3.read(f"{prefix}/_manifest.json"))
    assert manifest["job_ref"] == job.job_ref and manifest["vendor"] == VENDOR
    assert manifest["checksum_algorithm"] == "sha256"
    assert [(f["name"], f["bytes"], f["sha256"]) for f in manifest["files"]] == [
        (n, size, sha) for n, size, sha, _ in job.expected
    ]
    # the manifest is the last object written
    modified = {
        o["Key"]: o["LastModified"] for o in s3.client().list_objects_v2(Bucket=s3.bucket)["Contents"]
    }
    assert modified[f"{prefix}/_manifest.json"] == max(modified.values())
    assert summary.skipped is False and summary.file_count == 3
    assert summary.bytes == sum(size for _, size, _, _ in job.expected)
    assert summary.manifest == f"{prefix}/_manifest.json"
    assert summary.locations == [f"{prefix}/{n}" for n, *_ in job.expected]
    assert "X-Amz" not in json.dumps(summary.to_dict()) and "X-Amz" not in json.dumps(manifest)
    _no_uploads_left(s3)


def test_dropped_connection_resumes_and_object_is_identical(sitecore_job, sandbox, s3):
    job = sitecore_job("big_export", target_bytes=12 * MIB)
    sandbox.sitecore.faults.drop_connection("/sitecore-cdp-exports/*", after_bytes=3 * MIB, times=2)
    sink = S3Sink(s3.bucket, "big", part_size=5 * MIB)

    _run(job, sink)

    (name, size, sha, _), = job.expected
    body = s3.read(f"big/{name}")
    assert len(body) == size and hashlib.sha256(body).hexdigest() == sha
    downloads = [r for r in sandbox.sitecore.requests if r.path.startswith("/sitecore-cdp-exports/")]
    assert len(downloads) == 3 and "range" in {h.lower() for h in downloads[-1].headers_present}
    # 12 MiB in 5 MiB parts: a three-part multipart upload
    assert s3.client().head_object(Bucket=s3.bucket, Key=f"big/{name}")["ETag"].endswith('-3"')
    _no_uploads_left(s3)


def test_expired_urls_are_fetched_again_from_the_vendor(sitecore_job, sandbox, s3):
    job = sitecore_job(rows=2000, rows_per_file=1000)
    sandbox.sitecore.faults.expire_urls()

    _run(job, S3Sink(s3.bucket, "x", part_size=5 * MIB))

    assert sorted(job.resolver_calls) == sorted(n for n, *_ in job.expected)
    for name, _size, sha, _ in job.expected:
        assert hashlib.sha256(s3.read(f"x/{name}")).hexdigest() == sha


def test_server_error_storm_fails_clearly_and_leaves_nothing(sitecore_job, sandbox, s3):
    job = sitecore_job("storm", rows=3000, rows_per_file=1000)
    # the first two files go fine (their uploads are open), the third never answers
    sandbox.sitecore.faults.server_error("*/part-00002.json.gz", times=None, status=503)

    with pytest.raises(VendorServerError, match="503"):
        _run(job, S3Sink(s3.bucket, "storm", part_size=5 * MIB), max_concurrent_files=1)

    assert s3.keys() == []
    _no_uploads_left(s3)


def test_a_body_cut_every_time_fails_and_leaves_no_parts(sitecore_job, sandbox, s3):
    job = sitecore_job("cut", rows=2000, rows_per_file=1000)
    # the first file's upload is open when the second one's body never gets through
    sandbox.sitecore.faults.drop_connection("*/part-00001.json.gz", after_bytes=0, times=None)
    job.sources[1].max_attempts = 3

    with pytest.raises(VendorConnectionError):
        _run(job, S3Sink(s3.bucket, "cut", part_size=5 * MIB), max_concurrent_files=1)

    assert sum(r.path.endswith("part-00001.json.gz") for r in sandbox.sitecore.requests) == 3

    assert s3.keys() == []
    _no_uploads_left(s3)


def test_rerun_skips_and_overwrite_moves_again(sitecore_job, sandbox, s3, caplog):
    job = sitecore_job(rows=1000, rows_per_file=1000)
    sink = S3Sink(s3.bucket, "again", part_size=5 * MIB)
    first = _run(job, sink)
    downloads = lambda: sum(r.path.startswith("/sitecore-cdp-exports/") for r in sandbox.sitecore.requests)  # noqa: E731
    before = downloads()

    with caplog.at_level(logging.INFO):
        second = _run(job, sink)
    assert second.skipped and second.locations == first.locations and downloads() == before
    assert "skipping" in caplog.text

    third = _run(job, sink, overwrite=True)
    assert not third.skipped and downloads() == before + 1


def test_decompress_stores_plain_json_lines(sitecore_job, s3):
    job = sitecore_job(rows=1500, rows_per_file=1000)
    summary = _run(job, S3Sink(s3.bucket, "plain", part_size=5 * MIB, decompress=True))

    assert summary.locations == ["plain/part-00000.json", "plain/part-00001.json"]
    lines = s3.read("plain/part-00000.json").splitlines()
    assert len(lines) == 1000 and json.loads(lines[0])["ref"]
    manifest = json.loads(s3.read("plain/_manifest.json"))
    first = manifest["files"][0]
    assert first["stored_bytes"] > first["bytes"]  # sizes and checksums are of what the vendor served


def test_empty_and_small_files(tmp_path, s3):
    (tmp_path / "empty.csv").write_bytes(b"")
    (tmp_path / "small.csv").write_bytes(b"a,b\n1,2\n")
    sources = [LocalFileSource(tmp_path / "empty.csv"), LocalFileSource(tmp_path / "small.csv")]

    run_transfer(sources, S3Sink(s3.bucket, "", part_size=5 * MIB), vendor="Cordial", export_ref="e", job_ref="j")

    assert s3.read("empty.csv") == b"" and s3.read("small.csv") == b"a,b\n1,2\n"
    assert s3.client().head_object(Bucket=s3.bucket, Key="small.csv")["ContentType"] == "text/csv"
    assert sorted(s3.keys()) == ["_manifest.json", "empty.csv", "small.csv"]


def test_nothing_secret_reaches_the_log(sitecore_job, sandbox, s3, caplog):
    job = sitecore_job(rows=2000, rows_per_file=1000)
    sandbox.sitecore.faults.drop_connection("/sitecore-cdp-exports/*", after_bytes=1000, times=1)
    sandbox.sitecore.faults.expire_urls()

    with caplog.at_level(logging.DEBUG):
        _run(job, S3Sink(s3.bucket, "quiet", part_size=5 * MIB), progress_interval=0)

    assert "Transfer progress" in caplog.text
    for secret in ("X-Amz-Signature", "X-Amz-Credential", "sandbox-sitecore-secret", "Bearer "):
        assert secret not in caplog.text


def test_bad_settings_are_refused_early():
    with pytest.raises(ExportConfigError, match="part_size"):
        S3Sink("b", part_size=1024)
    with pytest.raises(ExportConfigError, match="bucket"):
        S3Sink("")
