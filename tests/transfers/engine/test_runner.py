"""The runner: concurrency, cancellation, integrity, the summary, progress lines, and a file past a
bound (its size, a gzip bomb) leaving nothing at the destination."""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
import zlib

import pytest

from airflow_provider_exports.exceptions import (
    ExportConfigError,
    LimitExceeded,
    TransferCancelled,
    TransferIntegrityError,
    TransferRefused,
)
from airflow_provider_exports.hooks._guard import HostGuard
from airflow_provider_exports.hooks._http import HttpClient
from airflow_provider_exports.transfers.engine import (
    Cancellation,
    HttpSourceFile,
    S3Sink,
    SqlSink,
    run_transfer,
)

from .conftest import FAST_RETRY, LocalFileSource

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


def test_a_file_that_changed_at_the_source_is_moved_again_from_its_first_byte(sitecore_job, sandbox, s3, caplog):
    job = sitecore_job("changing", target_bytes=12 * MIB)
    # cut after 6 MiB: one 5 MiB part of the file is already uploaded when the vendor rewrites it
    sandbox.sitecore.faults.drop_connection("/sitecore-cdp-exports/*", after_bytes=6 * MIB, times=1)
    (source,) = job.sources
    resume = source.before_retry

    def vendor_rewrites_the_file_then_resume(exc):
        sandbox.sitecore.rewrite_file(job.job_ref, job.expected[0][0])
        resume(exc)

    source.before_retry = vendor_rewrites_the_file_then_resume

    with caplog.at_level(logging.WARNING):
        summary = run_transfer(job.sources, S3Sink(s3.bucket, "c", part_size=5 * MIB), vendor="V",
                               export_ref="e", job_ref="j")

    assert "starting the file again from its first byte" in caplog.text
    (name, size, sha, _rows), = job.expected
    body = s3.read(s3.committed("c")[name])
    assert len(body) == size and hashlib.sha256(body).hexdigest() == sha
    assert summary.bytes == size and s3.manifest("c")["files"][0]["sha256"] == sha
    assert s3.client().list_multipart_uploads(Bucket=s3.bucket).get("Uploads", []) == []


def test_a_cancellation_cuts_downloads_still_waiting_for_their_headers(sitecore_job, sandbox, s3):
    job = sitecore_job(rows=4000, rows_per_file=1000)
    # every file's server takes 60 s to answer (the client's read timeout is 60 s too)
    sandbox.sitecore.faults.slow("/sitecore-cdp-exports/*", seconds=60, times=4)
    cancellation = Cancellation()
    cancelled_at: list[float] = []

    def cancel_once_all_four_wait():
        deadline = time.monotonic() + 60
        while sandbox.sitecore.faults.active and time.monotonic() < deadline:
            time.sleep(0.05)  # each request consumes one of the four slow answers when it arrives
        cancelled_at.append(time.monotonic())
        cancellation.cancel("the task was killed")

    threading.Thread(target=cancel_once_all_four_wait, daemon=True).start()
    with pytest.raises(TransferCancelled, match="killed"):
        run_transfer(job.sources, S3Sink(s3.bucket, "w", part_size=5 * MIB), vendor="V", export_ref="e",
                     job_ref="j", max_concurrent_files=4, cancellation=cancellation)

    # cut at once: well under the runner's grace period, let alone the server's 60 s
    assert time.monotonic() - cancelled_at[0] < 5
    assert s3.keys() == []


def test_the_sha256_hashed_beside_the_reader_is_the_files_own():
    from airflow_provider_exports.transfers.engine.runner import _Sha256

    chunks = [b"a" * 100, b"b" * (300 * 1024), b"c" * 7, *(bytes([i]) * MIB for i in range(9)), b""]
    digest = _Sha256()
    for chunk in chunks:  # a small first chunk hashed inline, then the rest on the hashing thread
        digest.update(chunk)
    assert digest.hexdigest() == hashlib.sha256(b"".join(chunks)).hexdigest()
    digest.close()  # closing again (as the runner's ``finally`` does) is harmless

    stopped = _Sha256()
    stopped.update(b"x" * MIB)
    stopped.close()  # a file that failed midway: the thread ends
    assert not any(t.name == "transfer-sha256" and t.is_alive() for t in threading.enumerate())


@pytest.fixture
def served(sandbox):
    """An HttpSourceFile of ``name`` on the Sitecore sandbox, whose body a test's ``answer`` fault serves."""
    clients: list[HttpClient] = []

    def make(name: str, body: bytes, *, size: int | None = None, headers: dict | None = None) -> HttpSourceFile:
        path = f"/sitecore-cdp-exports/served/{name}"
        sandbox.sitecore.faults.answer(path, body=body, headers=headers or {})
        url = sandbox.sitecore.url + path
        # the sandbox is the connection's own host, as a Sitecore hook's guard says (tests/conftest)
        client = HttpClient("Sitecore CDP", retry=FAST_RETRY, guard=HostGuard.for_connection("Sitecore CDP", [url]))
        clients.append(client)
        return HttpSourceFile(client, name, size, lambda: url, url=url)

    yield make
    for client in clients:
        client.close()


def _nothing_at(s3) -> bool:
    return s3.keys() == [] and s3.client().list_multipart_uploads(Bucket=s3.bucket).get("Uploads", []) == []


def test_a_file_past_max_file_bytes_fails_the_run_and_leaves_nothing(served, s3, monkeypatch):
    monkeypatch.setenv("AIRFLOW__EXPORTS__MAX_FILE_BYTES", str(6 * MIB))
    # no listing and no Content-Length: only the bound stops it
    source = served("part-00000.csv", b"a,b\n" * (4 * MIB), headers={"transfer-encoding": "chunked"})

    with pytest.raises(LimitExceeded, match="max_file_bytes"):
        run_transfer([source], S3Sink(s3.bucket, "u", part_size=5 * MIB), vendor="V", export_ref="e", job_ref="j")
    assert _nothing_at(s3)


def test_a_gzip_bomb_fails_the_run_and_leaves_nothing(served, s3):
    # 256 MiB of zeros in 4 gzip members of 64 MiB (one file, as `cat a.gz b.gz` makes): about 260 kB
    member = zlib.compressobj(6, zlib.DEFLATED, 31)
    one = member.compress(bytes(64 * MIB)) + member.flush()
    bomb = one * 4
    source = served("part-00000.json.gz", bomb, size=len(bomb))  # the vendor lists its size honestly

    with pytest.raises(LimitExceeded, match="max_decompression_ratio"):
        run_transfer([source], S3Sink(s3.bucket, "b", part_size=5 * MIB, decompress=True), vendor="V",
                     export_ref="e", job_ref="j")
    assert _nothing_at(s3)
