"""S3 sink: Sitecore sandbox files over real HTTP into moto (server mode) through the S3Hook.

The commit protocol is tested as a reader sees it: the manifest and the objects it lists, before
and after runs that succeed, fail while moving, fail while committing, or race each other.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time

import pytest
from airflow.providers.common.compat.sdk import AirflowFailException

from airflow_provider_exports.exceptions import (
    ExportConfigError,
    S3RequestRefused,
    TransferError,
    TransferRefused,
    VendorConnectionError,
    VendorServerError,
)
from airflow_provider_exports.transfers.engine import S3Sink, run_transfer

from .conftest import LocalFileSource

MIB = 1024 * 1024
VENDOR = "Sitecore CDP"


def _run(job, sink, **kwargs):
    return run_transfer(job.sources, sink, vendor=VENDOR, export_ref=job.export_ref, job_ref=job.job_ref, **kwargs)


def _no_uploads_left(s3) -> None:
    assert s3.client().list_multipart_uploads(Bucket=s3.bucket).get("Uploads", []) == []


def _snapshot(s3, prefix: str = "") -> dict[str, str]:
    """Every object under ``prefix`` with its ETag: what a reader could see."""
    paginator = s3.client().get_paginator("list_objects_v2")
    return {
        obj["Key"]: obj["ETag"]
        for page in paginator.paginate(Bucket=s3.bucket, Prefix=prefix)
        for obj in page.get("Contents", [])
    }


def _assert_committed(s3, prefix: str, job) -> dict:
    """The manifest under ``prefix`` lists exactly ``job``'s files, each byte-identical, and nothing
    else of any run is left under the prefix."""
    manifest = s3.manifest(prefix)
    assert manifest["job_ref"] == job.job_ref
    landed = s3.committed(prefix)
    assert sorted(landed) == sorted(name for name, *_ in job.expected)
    for name, size, sha, _rows in job.expected:
        body = s3.read(landed[name])
        assert len(body) == size and hashlib.sha256(body).hexdigest() == sha
    assert sorted(s3.keys(prefix)) == sorted([*landed.values(), f"{prefix}/_manifest.json"])
    _no_uploads_left(s3)
    return manifest


def test_multi_file_export_lands_byte_identical_with_manifest_last(sitecore_job, s3):
    job = sitecore_job(rows=3000, rows_per_file=1000)
    sink = S3Sink(s3.bucket, "raw/sitecore/loyalty_members/ds=2026-11-23", part_size=5 * MIB)

    summary = _run(job, sink)

    prefix = "raw/sitecore/loyalty_members/ds=2026-11-23"
    assert len(job.expected) == 3
    manifest = _assert_committed(s3, prefix, job)
    run_dir = f"{prefix}/run-{manifest['run_id']}"
    assert s3.committed(prefix) == {name: f"{run_dir}/{name}" for name, *_ in job.expected}
    for key in s3.committed(prefix).values():
        head = s3.client().head_object(Bucket=s3.bucket, Key=key, ChecksumMode="ENABLED")
        assert head["ChecksumCRC32"]  # every part was sent with its CRC32 for S3 to check
        assert head["Metadata"]["job-ref"] == job.job_ref
        assert head["Metadata"]["export-ref"] == job.export_ref
        assert head["Metadata"]["run-id"] == manifest["run_id"]
        assert head["ContentType"] == "application/gzip"
    assert manifest["vendor"] == VENDOR and manifest["checksum_algorithm"] == "sha256"
    assert [(f["name"], f["bytes"], f["sha256"]) for f in manifest["files"]] == [
        (n, size, sha) for n, size, sha, _ in job.expected
    ]
    # the manifest is the last object written
    modified = {o["Key"]: o["LastModified"] for o in s3.client().list_objects_v2(Bucket=s3.bucket)["Contents"]}
    assert modified[f"{prefix}/_manifest.json"] == max(modified.values())
    assert summary.skipped is False and summary.file_count == 3 and summary.run_id == manifest["run_id"]
    assert summary.bytes == sum(size for _, size, _, _ in job.expected)
    assert summary.manifest == f"{prefix}/_manifest.json"
    assert summary.locations == [f"{run_dir}/{n}" for n, *_ in job.expected]
    assert "X-Amz" not in json.dumps(summary.to_dict()) and "X-Amz" not in json.dumps(manifest)


def test_a_new_job_replaces_the_old_one_only_after_its_manifest(sitecore_job, s3):
    first = sitecore_job("daily", rows=3000, rows_per_file=1000)
    _run(first, S3Sink(s3.bucket, "ds", part_size=5 * MIB))
    old_keys = set(s3.committed("ds").values())

    second = sitecore_job("daily_next", rows=1000, rows_per_file=1000)  # fewer files than the first
    _run(second, S3Sink(s3.bucket, "ds", part_size=5 * MIB))

    _assert_committed(s3, "ds", second)
    assert not old_keys & set(s3.keys("ds"))  # the first job's three files are gone, none left behind


def test_small_files_cost_one_put_each_and_replaced_files_one_delete_call(sitecore_job, s3):
    first = sitecore_job("daily", rows=3000, rows_per_file=1000)
    _run(first, S3Sink(s3.bucket, "ds", part_size=5 * MIB))
    second = sitecore_job("daily_next", rows=2000, rows_per_file=1000)
    sink = S3Sink(s3.bucket, "ds", part_size=5 * MIB)
    calls: list[str] = []
    sink.client.meta.events.register("before-call.s3", lambda model, **_: calls.append(model.name))

    _run(second, sink)

    _assert_committed(s3, "ds", second)
    # the manifest read, two files put whole, the manifest put, the run directories listed (this
    # run's own files are not), the first run's directory listed, and the first job's three files
    # deleted in one request: no multipart upload, no per-file delete
    assert sorted(calls) == sorted(
        ["GetObject", "PutObject", "PutObject", "PutObject", "ListObjectsV2", "ListObjectsV2", "DeleteObjects"]
    )


def test_a_failed_run_leaves_the_previous_run_exactly_as_it_was(sitecore_job, sandbox, s3):
    good = sitecore_job("daily", rows=2000, rows_per_file=1000)
    _run(good, S3Sink(s3.bucket, "ds", part_size=5 * MIB))
    before = _snapshot(s3)

    bad = sitecore_job("daily_next", rows=3000, rows_per_file=1000)
    # two files of the new job go through, the third never answers
    sandbox.sitecore.faults.server_error("*/daily_next/*/part-00002.json.gz", times=None, status=503)
    with pytest.raises(VendorServerError):
        _run(bad, S3Sink(s3.bucket, "ds", part_size=5 * MIB), max_concurrent_files=1)

    assert _snapshot(s3) == before
    _assert_committed(s3, "ds", good)


@pytest.mark.parametrize(
    ("failing_call", "fail_at", "big"),
    [
        ("complete_multipart_upload", 2, True),  # three multipart files: one is complete
        ("put_object", 4, False),  # three small files put whole: the manifest's put fails
    ],
)
def test_a_run_that_fails_while_committing_changes_nothing(sitecore_job, s3, monkeypatch, failing_call, fail_at, big):
    good = sitecore_job("daily", rows=2000, rows_per_file=1000)
    _run(good, S3Sink(s3.bucket, "ds", part_size=5 * MIB))
    before = _snapshot(s3)

    if big:  # three files of about 5.7 MiB: two parts of 5 MiB each
        bad = sitecore_job("daily_next", target_bytes=17 * MIB, target_files=3)
    else:
        bad = sitecore_job("daily_next", rows=3000, rows_per_file=1000)
    assert len(bad.expected) == 3
    sink = S3Sink(s3.bucket, "ds", part_size=5 * MIB)
    real = getattr(sink.client, failing_call)
    calls = []

    def failing(**kwargs):
        calls.append(kwargs["Key"])
        if len(calls) == fail_at:
            raise ConnectionResetError("S3 went away")
        return real(**kwargs)

    monkeypatch.setattr(sink.client, failing_call, failing)
    with pytest.raises(ConnectionResetError):
        _run(bad, sink)

    assert _snapshot(s3) == before
    _assert_committed(s3, "ds", good)


def test_two_runs_of_the_same_job_at_once_commit_once(sitecore_job, s3):
    job = sitecore_job(rows=2000, rows_per_file=1000)
    both_moved = threading.Barrier(2, timeout=60)
    # moto checks If-None-Match / If-Match and then stores, without a lock (moto/s3/responses.py
    # put_object): two puts arriving together could both pass. S3 decides atomically; so do we
    # here by letting the two conditional puts reach moto one after the other.
    one_put_at_a_time = threading.Lock()

    class MeetBeforeCommit(S3Sink):
        def commit(self, manifest):
            both_moved.wait()  # both runs read "no manifest yet" and moved every file
            return super().commit(manifest)

        def _put_manifest(self, manifest):
            with one_put_at_a_time:
                return super()._put_manifest(manifest)

    results: list = []
    errors: list = []

    def one_run():
        try:
            results.append(_run(job, MeetBeforeCommit(s3.bucket, "same", part_size=5 * MIB)))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=one_run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)

    assert errors == []
    assert sorted(r.skipped for r in results) == [False, True]
    assert results[0].run_id == results[1].run_id  # the loser reports the winner's run
    _assert_committed(s3, "same", job)


def test_a_run_of_another_job_that_loses_the_race_fails_and_keeps_the_winner(sitecore_job, s3):
    winner_job = sitecore_job("daily", rows=1000, rows_per_file=1000)
    loser_job = sitecore_job("daily_next", rows=1000, rows_per_file=1000)

    class CommitsLate(S3Sink):
        def commit(self, manifest):
            _run(winner_job, S3Sink(s3.bucket, "race", part_size=5 * MIB))  # commits meanwhile
            return super().commit(manifest)

    with pytest.raises(TransferError, match="another run committed"):
        _run(loser_job, CommitsLate(s3.bucket, "race", part_size=5 * MIB))

    _assert_committed(s3, "race", winner_job)


def test_files_a_killed_run_left_are_removed_by_the_next_good_run(sitecore_job, s3, monkeypatch):
    killed = sitecore_job("daily", rows=2000, rows_per_file=1000)
    sink = S3Sink(s3.bucket, "ds", part_size=5 * MIB)
    # a worker killed outright between completing its objects and writing its manifest: no abort runs
    monkeypatch.setattr(sink, "abort", lambda: None)
    monkeypatch.setattr(sink, "_put_manifest", lambda manifest: (_ for _ in ()).throw(SystemExit("killed")))
    with pytest.raises(SystemExit):
        _run(killed, sink)
    leftovers = set(s3.keys("ds"))
    assert len(leftovers) == 2 and "ds/_manifest.json" not in leftovers
    time.sleep(2.1)  # S3's clock (1 s resolution) must tell the leftovers from the next run's files

    good = sitecore_job("daily_next", rows=1000, rows_per_file=1000)
    _run(good, S3Sink(s3.bucket, "ds", part_size=5 * MIB))

    _assert_committed(s3, "ds", good)


def test_a_committed_job_with_a_missing_object_is_moved_again(sitecore_job, s3):
    job = sitecore_job(rows=2000, rows_per_file=1000)
    _run(job, S3Sink(s3.bucket, "ds", part_size=5 * MIB))
    lost = next(iter(s3.committed("ds").values()))
    s3.client().delete_object(Bucket=s3.bucket, Key=lost)

    again = _run(job, S3Sink(s3.bucket, "ds", part_size=5 * MIB))

    assert again.skipped is False
    _assert_committed(s3, "ds", job)


def test_an_empty_job_keeps_the_previous_run_unless_allowed(sitecore_job, s3):
    good = sitecore_job(rows=1000, rows_per_file=1000)
    _run(good, S3Sink(s3.bucket, "ds", part_size=5 * MIB))
    before = _snapshot(s3)

    with pytest.raises(TransferRefused, match="allow_empty"):
        run_transfer([], S3Sink(s3.bucket, "ds"), vendor=VENDOR, export_ref="e", job_ref="empty")
    assert _snapshot(s3) == before

    summary = run_transfer([], S3Sink(s3.bucket, "ds", allow_empty=True), vendor=VENDOR, export_ref="e", job_ref="empty")
    assert summary.file_count == 0 and s3.keys("ds") == ["ds/_manifest.json"]


def test_names_that_collide_at_the_destination_are_refused_before_any_download(tmp_path, s3):
    for name in ("a.json", "a.json.gz", "_manifest.json"):
        (tmp_path / name).write_bytes(b"{}\n")
    collide = [LocalFileSource(tmp_path / "a.json"), LocalFileSource(tmp_path / "a.json.gz")]

    with pytest.raises(TransferRefused, match=r"'a\.json' and 'a\.json\.gz' would both be stored as 'a\.json'"):
        run_transfer(collide, S3Sink(s3.bucket, "x", decompress=True), vendor=VENDOR, export_ref="e", job_ref="j")
    with pytest.raises(TransferRefused, match="reserved"):
        run_transfer(
            [LocalFileSource(tmp_path / "_manifest.json")], S3Sink(s3.bucket, "x"), vendor=VENDOR, export_ref="e", job_ref="j"
        )
    assert s3.keys() == []


def test_dropped_connection_resumes_and_object_is_identical(sitecore_job, sandbox, s3):
    job = sitecore_job("big_export", target_bytes=12 * MIB)
    sandbox.sitecore.faults.drop_connection("/sitecore-cdp-exports/*", after_bytes=3 * MIB, times=2)
    sink = S3Sink(s3.bucket, "big", part_size=5 * MIB)

    _run(job, sink)

    _assert_committed(s3, "big", job)
    downloads = sandbox.sitecore.requests_to("/sitecore-cdp-exports/*")
    assert len(downloads) == 3 and {"range", "if-range"} <= downloads[-1].headers_present
    # 12 MiB in 5 MiB parts: a three-part multipart upload
    (key,) = s3.committed("big").values()
    assert s3.client().head_object(Bucket=s3.bucket, Key=key)["ETag"].endswith('-3"')


def test_expired_urls_are_fetched_again_from_the_vendor(sitecore_job, sandbox, s3):
    job = sitecore_job(rows=2000, rows_per_file=1000)
    sandbox.sitecore.faults.expire_urls()

    _run(job, S3Sink(s3.bucket, "x", part_size=5 * MIB))

    assert sorted(job.resolver_calls) == sorted(n for n, *_ in job.expected)
    _assert_committed(s3, "x", job)


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
    downloads = lambda: len(sandbox.sitecore.requests_to("/sitecore-cdp-exports/*"))  # noqa: E731
    before = downloads()

    with caplog.at_level(logging.INFO):
        second = _run(job, sink)
    assert second.skipped and second.locations == first.locations and downloads() == before
    assert "skipping" in caplog.text

    third = _run(job, sink, overwrite=True)
    assert not third.skipped and downloads() == before + 1
    assert third.run_id != first.run_id
    _assert_committed(s3, "again", job)  # the first run's copy is gone


def test_decompress_stores_plain_json_lines(sitecore_job, s3):
    job = sitecore_job(rows=1500, rows_per_file=1000)
    summary = _run(job, S3Sink(s3.bucket, "plain", part_size=5 * MIB, decompress=True))

    run_dir = f"plain/run-{summary.run_id}"
    assert summary.locations == [f"{run_dir}/part-00000.json", f"{run_dir}/part-00001.json"]
    lines = s3.read(f"{run_dir}/part-00000.json").splitlines()
    assert len(lines) == 1000 and json.loads(lines[0])["ref"]
    first = s3.manifest("plain")["files"][0]
    assert first["stored_bytes"] > first["bytes"]  # sizes and checksums are of what the vendor served


def test_empty_and_small_files(tmp_path, s3):
    (tmp_path / "empty.csv").write_bytes(b"")
    (tmp_path / "small.csv").write_bytes(b"a,b\n1,2\n")
    sources = [LocalFileSource(tmp_path / "empty.csv"), LocalFileSource(tmp_path / "small.csv")]

    run_transfer(sources, S3Sink(s3.bucket, "", part_size=5 * MIB), vendor="Cordial", export_ref="e", job_ref="j")

    landed = s3.committed("")
    assert s3.read(landed["empty.csv"]) == b"" and s3.read(landed["small.csv"]) == b"a,b\n1,2\n"
    assert s3.client().head_object(Bucket=s3.bucket, Key=landed["small.csv"])["ContentType"] == "text/csv"
    assert sorted(s3.keys()) == sorted(["_manifest.json", *landed.values()])


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


def test_part_buffers_are_reused_and_parts_go_to_botocore_uncopied(tmp_path, s3, monkeypatch):
    from airflow_provider_exports.transfers.engine import s3_multipart

    # 3 and 2 parts of 5 MiB; then files that fit in one part, put whole
    sizes = {"a.bin": 12 * MIB + 1, "b.bin": 10 * MIB, "c.bin": 3 * MIB, "d.bin": 5 * MIB}
    for name, size in sizes.items():
        (tmp_path / name).write_bytes(hashlib.sha256(name.encode()).digest() * (size // 32) + b"z" * (size % 32))
    buffers: set[int] = set()

    class CountingBuffers(s3_multipart._PartBuffers):
        def take(self) -> bytearray:
            buffer = super().take()
            buffers.add(id(buffer))
            return buffer

    monkeypatch.setattr(s3_multipart, "_PartBuffers", CountingBuffers)
    sink = S3Sink(s3.bucket, "pool", part_size=5 * MIB, max_concurrency=2)
    bodies: list[tuple[str, str, type]] = []

    def spying(call):
        real = getattr(sink.client, call)

        def spy(**kwargs):
            bodies.append((call, kwargs["Key"].rsplit("/", 1)[-1], type(kwargs["Body"])))
            return real(**kwargs)

        monkeypatch.setattr(sink.client, call, spy)

    spying("upload_part")
    spying("put_object")
    sources = [LocalFileSource(tmp_path / name) for name in sizes]
    # chunks that do not divide the part size: parts are cut inside chunks
    run_transfer(sources, sink, vendor="Cordial", export_ref="e", job_ref="j", max_concurrent_files=2,
                 chunk_size=700_000)

    landed = s3.committed("pool")
    for name in sizes:
        assert s3.read(landed[name]) == (tmp_path / name).read_bytes()
    assert s3.client().head_object(Bucket=s3.bucket, Key=landed["a.bin"])["ETag"].endswith('-3"')
    assert s3.client().head_object(Bucket=s3.bucket, Key=landed["b.bin"])["ETag"].endswith('-2"')
    assert sorted(bodies) == sorted(
        [("upload_part", "a.bin", s3_multipart._PartBody)] * 3
        + [("upload_part", "b.bin", s3_multipart._PartBody)] * 2
        + [("put_object", "c.bin", s3_multipart._PartBody), ("put_object", "d.bin", s3_multipart._PartBody)]
        + [("put_object", "_manifest.json", bytes)]
    )
    # at most max_concurrency parts uploading plus one being filled per file in flight, for 7 parts
    assert len(buffers) <= 2 + 2


def test_part_body_is_a_seekable_view():
    from botocore.utils import determine_content_length

    from airflow_provider_exports.transfers.engine.s3_multipart import _PartBody

    data = bytearray(hashlib.sha256(b"x").digest() * (MIB // 8))  # 4 MiB
    body = _PartBody(memoryview(data)[: 2 * MIB + 5])
    assert determine_content_length(body) == 2 * MIB + 5 and body.tell() == 0
    blocks = b"".join(iter(lambda: body.read(16384), b""))
    assert blocks == bytes(data[: 2 * MIB + 5]) and body.read() == b""
    assert body.seek(0) == 0 and body.read() == blocks  # what a retry does
    body.seek(-5, 2)
    assert body.read(10) == bytes(data[2 * MIB : 2 * MIB + 5])
    with pytest.raises(ValueError):
        body.seek(-1)


def test_a_part_botocore_retries_is_sent_again_from_its_first_byte(tmp_path, s3):
    from botocore.awsrequest import AWSResponse

    data = hashlib.sha256(b"retry").digest() * (7 * MIB // 32)  # 7 MiB: two parts of 5 MiB
    (tmp_path / "r.bin").write_bytes(data)
    sink = S3Sink(s3.bucket, "retry", part_size=5 * MIB, max_concurrency=1)
    failed: list[int] = []

    class Raw:
        def stream(self, **kwargs):
            yield b"<Error><Code>InternalError</Code><Message>try again</Message></Error>"

    def fail_first_send(request, **kwargs):
        if not failed:
            failed.append(len(request.body.read()))  # as if the body went out and the answer was a 500
            return AWSResponse(request.url, 500, {}, Raw())
        return None

    sink.client.meta.events.register("before-send.s3.UploadPart", fail_first_send)
    run_transfer([LocalFileSource(tmp_path / "r.bin")], sink, vendor="Cordial", export_ref="e", job_ref="j")

    assert failed == [5 * MIB]
    assert s3.read(s3.committed("retry")["r.bin"]) == data  # moto checked each part's CRC32 too


def _lose_the_first_complete_answer(sink, repeat_answer: bytes | None) -> list[int]:
    """S3 completes the first ``CompleteMultipartUpload`` but its answer is a 500; the request sent
    again gets ``repeat_answer`` (a 404 with that body) instead of S3's own answer, if given."""
    from botocore.awsrequest import AWSResponse

    statuses: list[int] = []

    class Raw:
        def __init__(self, body: bytes) -> None:
            self.body = body

        def stream(self, **kwargs):
            yield self.body

    def send(request, **kwargs):
        if not statuses:
            statuses.append(sink.client._endpoint.http_session.send(request).status_code)
            return AWSResponse(request.url, 500, {}, Raw(b"<Error><Code>InternalError</Code></Error>"))
        if repeat_answer is not None:
            statuses.append(404)
            return AWSResponse(request.url, 404, {}, Raw(repeat_answer))
        return None

    sink.client.meta.events.register("before-send.s3.CompleteMultipartUpload", send)
    return statuses


NO_SUCH_UPLOAD = b"<Error><Code>NoSuchUpload</Code><Message>The specified upload does not exist.</Message></Error>"


@pytest.mark.parametrize("repeat_answer", [None, NO_SUCH_UPLOAD], ids=["repeat-answered-200", "repeat-no-such-upload"])
def test_a_complete_whose_answer_was_lost_lands_the_file_once(tmp_path, s3, repeat_answer):
    data = hashlib.sha256(b"complete").digest() * (7 * MIB // 32)
    (tmp_path / "c.bin").write_bytes(data)
    sink = S3Sink(s3.bucket, "complete", part_size=5 * MIB)
    statuses = _lose_the_first_complete_answer(sink, repeat_answer)

    run_transfer([LocalFileSource(tmp_path / "c.bin")], sink, vendor="Cordial", export_ref="e", job_ref="j")

    assert statuses[0] == 200 and len(statuses) == (2 if repeat_answer else 1)
    assert s3.read(s3.committed("complete")["c.bin"]) == data
    _no_uploads_left(s3)


def test_no_such_upload_at_complete_with_no_object_of_those_parts_fails_and_leaves_nothing(tmp_path, s3):
    from botocore.awsrequest import AWSResponse

    (tmp_path / "n.bin").write_bytes(b"n" * (7 * MIB))
    sink = S3Sink(s3.bucket, "nosuch", part_size=5 * MIB)

    class Raw:
        def stream(self, **kwargs):
            yield NO_SUCH_UPLOAD

    sink.client.meta.events.register(
        "before-send.s3.CompleteMultipartUpload", lambda request, **kw: AWSResponse(request.url, 404, {}, Raw())
    )
    with pytest.raises(TransferError, match="NoSuchUpload"):
        run_transfer([LocalFileSource(tmp_path / "n.bin")], sink, vendor="Cordial", export_ref="e", job_ref="j")
    assert s3.keys("nosuch") == []
    _no_uploads_left(s3)


# -- a manifest read back is input: only what lies in its own run directory is trusted or deleted --

PLANTED_RUN = "20261122T031500Z-9f3a1c2b"


def _plant_manifest(s3, prefix: str, locations: dict[str, int], *, job_ref: str = "planted") -> None:
    """A manifest of ``job_ref`` under ``prefix`` listing ``locations`` (key: size), as anyone who
    may write under the prefix could put it there."""
    from airflow_provider_exports.transfers.engine import manifest as manifest_mod

    planted = manifest_mod.build_manifest(
        vendor=VENDOR,
        export_ref="e",
        job_ref=job_ref,
        run_id=PLANTED_RUN,
        destination={"kind": "s3", "bucket": s3.bucket, "prefix": prefix},
        files=[manifest_mod.FileRecord(k.rsplit("/", 1)[-1], k, size, "0" * 64, size) for k, size in locations.items()],
        started_at=0.0,
        finished_at=0.0,
    )
    s3.client().put_object(Bucket=s3.bucket, Key=f"{prefix}/_manifest.json", Body=manifest_mod.dumps(planted))


@pytest.mark.parametrize(
    "outside",
    ["finance/ledger.csv", f"other/run-{PLANTED_RUN}/part-0.csv", f"ds/run-{PLANTED_RUN}/../../finance/ledger.csv"],
    # S3 itself keeps a '..' key literally; a store or a proxy that resolves dot segments would not
    ids=["elsewhere-in-the-bucket", "another-prefix-run-directory", "dot-dot-segments"],
)
def test_a_planted_manifest_cannot_make_the_next_run_delete_outside_its_run_directory(
    tmp_path, s3, caplog, outside
):
    s3.client().put_object(Bucket=s3.bucket, Key=outside, Body=b"account,amount\n1,100\n")
    _plant_manifest(s3, "ds", {outside: 21})
    (tmp_path / "a.csv").write_bytes(b"a,b\n1,2\n")

    with caplog.at_level(logging.WARNING):
        summary = run_transfer(
            [LocalFileSource(tmp_path / "a.csv")], S3Sink(s3.bucket, "ds"), vendor=VENDOR, export_ref="e", job_ref="j"
        )

    assert s3.manifest("ds")["run_id"] == summary.run_id  # the run committed
    assert s3.read(outside) == b"account,amount\n1,100\n"  # and left what is not its own alone
    assert "outside its run directory" in caplog.text and repr(outside) in caplog.text


def test_a_planted_manifest_of_the_same_job_is_not_trusted_and_the_job_moves_again(tmp_path, s3, caplog):
    s3.client().put_object(Bucket=s3.bucket, Key="finance/ledger.csv", Body=b"a,b\n1,2\n")
    _plant_manifest(s3, "ds", {"finance/ledger.csv": 8}, job_ref="j")  # the ledger has the listed size
    (tmp_path / "a.csv").write_bytes(b"a,b\n1,2\n")

    with caplog.at_level(logging.WARNING):
        summary = run_transfer(
            [LocalFileSource(tmp_path / "a.csv")], S3Sink(s3.bucket, "ds"), vendor=VENDOR, export_ref="e", job_ref="j"
        )

    assert summary.skipped is False and summary.locations == [f"ds/run-{summary.run_id}/a.csv"]
    assert s3.manifest("ds")["run_id"] == summary.run_id
    assert s3.read("finance/ledger.csv") == b"a,b\n1,2\n"
    assert "not trusted" in caplog.text and "'finance/ledger.csv'" in caplog.text


def test_an_oversized_manifest_is_refused_naming_the_setting(tmp_path, s3, monkeypatch):
    from airflow_provider_exports.exceptions import LimitExceeded

    _plant_manifest(s3, "ds", {f"ds/run-{PLANTED_RUN}/part-{i:05}.csv": 1 for i in range(40)})
    assert len(s3.read("ds/_manifest.json")) > 4096
    monkeypatch.setenv("AIRFLOW__EXPORTS__MAX_JSON_BODY_BYTES", "4096")
    (tmp_path / "a.csv").write_bytes(b"a,b\n1,2\n")
    before = _snapshot(s3)

    with pytest.raises(LimitExceeded, match="max_json_body_bytes") as refused:
        run_transfer(
            [LocalFileSource(tmp_path / "a.csv")], S3Sink(s3.bucket, "ds"), vendor=VENDOR, export_ref="e", job_ref="j"
        )

    assert "ds/_manifest.json" in str(refused.value) and "4,096" in str(refused.value)
    assert _snapshot(s3) == before
    _no_uploads_left(s3)



# -- S3's errors name the object and the argument ------------------------------------------------------


def test_a_missing_bucket_names_the_object_and_the_argument_and_is_not_retried(sitecore_job, s3):
    job = sitecore_job(rows=10)
    with pytest.raises(S3RequestRefused) as err:
        _run(job, S3Sink("no-such-bucket-here", "raw/ds", bucket_argument="s3_bucket"))
    assert isinstance(err.value, AirflowFailException)
    assert str(err.value) == (
        "S3 GetObject s3://no-such-bucket-here/raw/ds/_manifest.json failed: NoSuchBucket: The specified "
        "bucket does not exist (bucket 'no-such-bucket-here' from s3_bucket). Not retried: The bucket does "
        "not exist: check s3_bucket (and the AWS connection's account)"
    )
    assert (err.value.bucket, err.value.argument) == ("no-such-bucket-here", "s3_bucket")


def test_a_bucket_removed_while_parts_go_up_is_named_by_the_writer_too(sitecore_job, s3):
    job = sitecore_job(target_bytes=11 * MIB, target_files=1)
    sink = S3Sink(s3.bucket, "ds", part_size=5 * MIB, bucket_argument="s3_bucket")
    real = sink.client.client.create_multipart_upload

    def bucket_gone(**kwargs):
        _delete_bucket(s3)
        return real(**kwargs)

    sink.client.client.create_multipart_upload = bucket_gone
    with pytest.raises(S3RequestRefused, match=r"S3 CreateMultipartUpload s3://.+/ds/run-.+ failed: NoSuchBucket"):
        _run(job, sink)


def _delete_bucket(s3) -> None:
    client = s3.client()
    for obj in client.list_objects_v2(Bucket=s3.bucket).get("Contents", []):
        client.delete_object(Bucket=s3.bucket, Key=obj["Key"])
    client.delete_bucket(Bucket=s3.bucket)
