"""The runner: concurrency, cancellation, integrity, the summary, progress lines."""

from __future__ import annotations

import json
import logging

import pytest

from airflow_provider_exports.exceptions import (
    ExportConfigError,
    TransferCancelled,
    TransferIntegrityError,
    TransferRefused,
)
from airflow_provider_exports.transfers.engine import Cancellation, S3Sink, SqlSink, run_transfer

from .conftest import LocalFileSource

MIB = 1024 * 1024


def test_files_move_concurrently_and_the_summary_is_json(sitecore_job, s3, caplog):
    job = sitecore_job(rows=4000, rows_per_file=1000)
    with caplog.at_level(logging.INFO, logger="mine"):
        summary = run_transfer(
            job.sources,
            S3Sink(s3.bucket, "c", part_size=5 * MIB),
            vendor="Sitecore CDP",
            export_ref=job.export_ref,
            job_ref=job.job_ref,
            max_concurrent_files=3,
            log=logging.getLogger("mine"),
            progress_interval=0,
        )

    data = json.loads(json.dumps(summary.to_dict()))
    assert set(data) == {
        "vendor", "export_ref", "job_ref", "destination", "manifest", "skipped",
        "file_count", "bytes", "rows", "seconds", "run_id", "locations",
    }
    assert data["destination"] == {"kind": "s3", "bucket": s3.bucket, "prefix": "c"}
    assert data["file_count"] == 4 and data["rows"] is None
    assert "Transfer progress: file" in caplog.text and " of 4" in caplog.text
    assert "Transferred 4 of 4 files" in caplog.text


def test_a_listed_size_that_is_wrong_fails_the_whole_run(tmp_path, s3):
    (tmp_path / "a.csv").write_bytes(b"x" * 100)
    source = LocalFileSource(tmp_path / "a.csv")
    source.size = 99  # the vendor listed another size than what arrives

    with pytest.raises(TransferIntegrityError):
        run_transfer([source], S3Sink(s3.bucket, "i"), vendor="V", export_ref="e", job_ref="j")
    assert s3.keys() == []


def test_one_failing_file_stops_the_others_and_aborts(sitecore_job, sandbox, s3):
    job = sitecore_job(rows=4000, rows_per_file=1000)
    sandbox.sitecore.faults.server_error("*/part-00001.json.gz", times=None, status=500)

    with pytest.raises(Exception, match="500"):
        run_transfer(job.sources, S3Sink(s3.bucket, "f", part_size=5 * MIB), vendor="V",
                     export_ref="e", job_ref="j", max_concurrent_files=4)
    assert s3.keys() == []
    assert s3.client().list_multipart_uploads(Bucket=s3.bucket).get("Uploads", []) == []


def test_a_cancelled_run_does_not_start(sitecore_job, sandbox, s3):
    job = sitecore_job(rows=2000, rows_per_file=1000)
    cancellation = Cancellation()
    cancellation.cancel("the task was killed")  # as on_kill would

    with pytest.raises(TransferCancelled, match="killed"):
        run_transfer(job.sources, S3Sink(s3.bucket, "k"), vendor="V", export_ref="e", job_ref="j",
                     cancellation=cancellation)
    assert s3.keys() == [] and sandbox.sitecore.requests_to("/sitecore-cdp-exports/*") == []


def test_duplicate_names_and_bad_concurrency_are_refused(tmp_path):
    (tmp_path / "a.csv").write_bytes(b"a\n")
    sink = SqlSink("t", conn_id="unused")
    with pytest.raises(TransferRefused, match=r"would both be stored as 'a\.csv'"):
        run_transfer([LocalFileSource(tmp_path / "a.csv")] * 2, sink, vendor="V", export_ref="e", job_ref="j")
    with pytest.raises(ExportConfigError, match="max_concurrent_files"):
        run_transfer([], sink, vendor="V", export_ref="e", job_ref="j", max_concurrent_files=0)
