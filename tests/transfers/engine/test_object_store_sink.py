"""Object-store sink: Sitecore sandbox files over real HTTP into ``file://`` (a temp dir) and into
moto (server mode) through ``s3://`` on Airflow's ObjectStoragePath (s3fs), the S3 fast path aside.

The commit protocol is tested as a reader sees it: the manifest and the files it lists, before and
after runs that succeed, fail while moving, fail while committing, race, or are cancelled.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import pytest

from airflow_provider_exports.exceptions import (
    ExportConfigError,
    TransferCancelled,
    TransferError,
    TransferRefused,
    VendorServerError,
)
from airflow_provider_exports.transfers.engine import Cancellation, run_transfer
from airflow_provider_exports.transfers.engine.object_store_sink import ObjectStoreSink

from .conftest import LocalFileSource

VENDOR = "Sitecore CDP"


def _run(job, sink, **kwargs):
    return run_transfer(
        job.sources, sink, vendor=VENDOR, export_ref=job.export_ref, job_ref=job.job_ref, **kwargs
    )


def _tree(root: Path) -> dict[str, str]:
    """Every file under ``root`` with the SHA-256 of its bytes: what a reader could see."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _assert_committed(root: Path, job) -> dict:
    """The manifest under ``root`` lists exactly ``job``'s files, byte-identical, and nothing else
    of any run is left under it."""
    manifest = json.loads((root / "_manifest.json").read_text())
    assert manifest["job_ref"] == job.job_ref and manifest["manifest_version"] == 1
    landed = {f["name"]: f["location"] for f in manifest["files"]}
    assert sorted(landed) == sorted(name for name, *_ in job.expected)
    for name, size, sha, _rows in job.expected:
        body = Path(landed[name]).read_bytes()
        assert len(body) == size and hashlib.sha256(body).hexdigest() == sha
    files = {str(p) for p in root.rglob("*") if p.is_file()}
    assert files == {*landed.values(), str(root / "_manifest.json")}
    return manifest


def test_a_job_lands_in_a_local_directory_with_its_manifest_last(sitecore_job, tmp_path):
    job = sitecore_job(rows=3000, rows_per_file=1000)
    root = tmp_path / "lake" / "ds=2026-11-23"

    summary = _run(job, ObjectStoreSink(f"file://{root}/"))

    manifest = _assert_committed(root, job)
    run_dir = root / f"run-{manifest['run_id']}"
    assert {f["name"]: f["location"] for f in manifest["files"]} == {
        name: str(run_dir / name) for name, *_ in job.expected
    }
    assert manifest["destination"] == {"kind": "object_storage", "url": f"file://{root}"}
    assert [(f["name"], f["bytes"], f["sha256"], f["stored_bytes"]) for f in manifest["files"]] == [
        (n, size, sha, size) for n, size, sha, _ in job.expected
    ]
    mtimes = {p: p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}
    assert mtimes[root / "_manifest.json"] == max(mtimes.values())
    assert summary.skipped is False and summary.file_count == 3 and summary.run_id == manifest["run_id"]
    assert summary.manifest == str(root / "_manifest.json")


def test_a_rerun_skips_and_a_missing_file_is_moved_again(sitecore_job, sandbox, tmp_path):
    job = sitecore_job(rows=2000, rows_per_file=1000)
    root = tmp_path / "ds"
    first = _run(job, ObjectStoreSink(f"file://{root}"))
    downloads = len(sandbox.sitecore.requests_to("/sitecore-cdp-exports/*"))

    again = _run(job, ObjectStoreSink(f"file://{root}"))
    assert again.skipped is True and again.run_id == first.run_id
    assert len(sandbox.sitecore.requests_to("/sitecore-cdp-exports/*")) == downloads

    Path(again.locations[0]).unlink()
    moved = _run(job, ObjectStoreSink(f"file://{root}"))
    assert moved.skipped is False and moved.run_id != first.run_id
    _assert_committed(root, job)


def test_a_failed_run_leaves_the_previous_run_exactly_as_it_was(sitecore_job, sandbox, tmp_path):
    good = sitecore_job("daily", rows=2000, rows_per_file=1000)
    root = tmp_path / "ds"
    _run(good, ObjectStoreSink(f"file://{root}"))
    before = _tree(root)

    bad = sitecore_job("daily_next", rows=3000, rows_per_file=1000)
    # two files of the new job go through, the third never answers
    sandbox.sitecore.faults.server_error("*/daily_next/*/part-00002.json.gz", times=None, status=503)
    with pytest.raises(VendorServerError):
        _run(bad, ObjectStoreSink(f"file://{root}"), max_concurrent_files=1)

    assert _tree(root) == before
    _assert_committed(root, good)


def test_a_run_that_fails_writing_its_manifest_changes_nothing(sitecore_job, tmp_path, monkeypatch):
    good = sitecore_job("daily", rows=1000, rows_per_file=1000)
    root = tmp_path / "ds"
    _run(good, ObjectStoreSink(f"file://{root}"))
    before = _tree(root)

    sink = ObjectStoreSink(f"file://{root}")
    monkeypatch.setattr(sink.fs, "mv", lambda *a, **k: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError, match="disk full"):
        _run(sitecore_job("daily_next", rows=2000, rows_per_file=1000), sink)

    assert _tree(root) == before


def test_a_new_job_replaces_the_old_one_and_what_a_killed_run_left_goes(sitecore_job, tmp_path, monkeypatch):
    root = tmp_path / "ds"
    first = sitecore_job("daily", rows=3000, rows_per_file=1000)
    _run(first, ObjectStoreSink(f"file://{root}"))
    old_files = {str(p) for p in root.rglob("part-*")}

    killed = ObjectStoreSink(f"file://{root}")
    # a worker killed outright before its manifest: no abort runs, its files stay behind
    monkeypatch.setattr(killed, "abort", lambda: None)
    monkeypatch.setattr(killed, "_write_manifest", lambda body: (_ for _ in ()).throw(SystemExit("killed")))
    with pytest.raises(SystemExit):
        _run(sitecore_job("daily_killed", rows=1000, rows_per_file=1000), killed)
    assert len(list(root.glob("run-*"))) == 2
    time.sleep(1.01)  # the next run begins in a later second: runs of one second are left alone

    second = sitecore_job("daily_next", rows=1000, rows_per_file=1000)
    _run(second, ObjectStoreSink(f"file://{root}"))

    _assert_committed(root, second)  # nothing of the first job or of the killed run is left
    assert not old_files & {str(p) for p in root.rglob("*")}


def test_a_run_of_another_job_that_loses_the_race_fails_and_keeps_the_winner(sitecore_job, tmp_path):
    root = tmp_path / "race"
    winner_job = sitecore_job("daily", rows=1000, rows_per_file=1000)
    loser_job = sitecore_job("daily_next", rows=1000, rows_per_file=1000)

    class CommitsLate(ObjectStoreSink):
        def commit(self, manifest):
            _run(winner_job, ObjectStoreSink(f"file://{root}"))  # commits meanwhile
            return super().commit(manifest)

    with pytest.raises(TransferError, match="another run committed"):
        _run(loser_job, CommitsLate(f"file://{root}"))

    _assert_committed(root, winner_job)


def test_a_run_of_the_same_job_that_loses_the_race_is_skipped(sitecore_job, tmp_path):
    root = tmp_path / "race"
    job = sitecore_job(rows=1000, rows_per_file=1000)
    first: list = []

    class CommitsLate(ObjectStoreSink):
        def commit(self, manifest):
            first.append(_run(job, ObjectStoreSink(f"file://{root}")))
            return super().commit(manifest)

    late = _run(job, CommitsLate(f"file://{root}"))

    assert late.skipped is True and late.run_id == first[0].run_id
    _assert_committed(root, job)


def test_a_cancelled_run_leaves_nothing(sitecore_job, tmp_path):
    root = tmp_path / "ds"
    job = sitecore_job(rows=2000, rows_per_file=1000)
    cancellation = Cancellation()
    real_write = ObjectStoreSink.write_file

    class CancelledMidFile(ObjectStoreSink):
        def write_file(self, source, chunks):
            def first_chunk_then_cancel():
                for i, chunk in enumerate(chunks):
                    if i == 0:
                        cancellation.cancel("the task was killed")
                    yield chunk

            return real_write(self, source, first_chunk_then_cancel())

    with pytest.raises(TransferCancelled, match="killed"):
        _run(job, CancelledMidFile(f"file://{root}"), cancellation=cancellation, max_concurrent_files=1)
    assert _tree(root) == {}


def test_an_empty_job_keeps_the_previous_run_unless_allowed(sitecore_job, tmp_path):
    root = tmp_path / "ds"
    good = sitecore_job(rows=1000, rows_per_file=1000)
    _run(good, ObjectStoreSink(f"file://{root}"))
    before = _tree(root)

    with pytest.raises(TransferRefused, match="allow_empty"):
        run_transfer([], ObjectStoreSink(f"file://{root}"), vendor=VENDOR, export_ref="e", job_ref="empty")
    assert _tree(root) == before

    summary = run_transfer(
        [],
        ObjectStoreSink(f"file://{root}", allow_empty=True),
        vendor=VENDOR,
        export_ref="e",
        job_ref="empty",
    )
    assert summary.file_count == 0 and list(_tree(root)) == ["_manifest.json"]


def test_reserved_and_ambiguous_names_are_refused_before_any_download(tmp_path):
    for name in ("a.json", "_manifest.json"):
        (tmp_path / name).write_bytes(b"{}\n")
    sink = ObjectStoreSink(f"file://{tmp_path}/out")
    with pytest.raises(TransferRefused, match="reserved"):
        run_transfer(
            [LocalFileSource(tmp_path / "_manifest.json")], sink, vendor=VENDOR, export_ref="e", job_ref="j"
        )
    with pytest.raises(TransferRefused, match=r"'\./a\.json'"):  # by the source or the sink
        run_transfer(
            [LocalFileSource(tmp_path / "a.json", "./a.json")],
            sink,
            vendor=VENDOR,
            export_ref="e",
            job_ref="j",
        )
    assert not (tmp_path / "out").exists()


def test_decompress_stores_plain_json_lines(sitecore_job, tmp_path):
    import gzip

    job = sitecore_job(rows=1000, rows_per_file=1000)
    root = tmp_path / "plain"
    summary = _run(job, ObjectStoreSink(f"file://{root}", decompress=True))
    (location,) = summary.locations
    assert location.endswith("part-00000.json")
    name = job.expected[0][0]
    original = b"".join(job.sources[0].iter_bytes(1 << 20))
    assert Path(location).read_bytes() == gzip.decompress(original) and name.endswith(".gz")


@pytest.mark.parametrize("destination", ["", "lake/raw", "gs://", "file:///"])
def test_a_destination_without_a_scheme_and_a_path_is_refused(destination):
    with pytest.raises(ExportConfigError, match="destination"):
        ObjectStoreSink(destination)


# -- S3 through the generic path: s3fs on the amazon provider's connection, moto as the store -----


def test_s3_through_object_storage_lands_commits_and_skips_a_rerun(sitecore_job, sandbox, s3):
    job = sitecore_job(rows=2000, rows_per_file=1000)
    destination = f"s3://{s3.bucket}/raw/sitecore/ds=2026-11-23/"

    summary = _run(job, ObjectStoreSink(destination, conn_id="aws_default"))

    prefix = "raw/sitecore/ds=2026-11-23"
    manifest = s3.manifest(prefix)
    assert manifest["job_ref"] == job.job_ref
    assert manifest["destination"] == {"kind": "object_storage", "url": f"s3://{s3.bucket}/{prefix}"}
    landed = s3.committed(prefix)  # keys within the bucket, as the S3 sink records them
    assert landed == {name: f"{prefix}/run-{summary.run_id}/{name}" for name, *_ in job.expected}
    for name, size, sha, _rows in job.expected:
        body = s3.read(landed[name])
        assert len(body) == size and hashlib.sha256(body).hexdigest() == sha
    assert sorted(s3.keys(prefix)) == sorted([*landed.values(), f"{prefix}/_manifest.json"])

    downloads = len(sandbox.sitecore.requests_to("/sitecore-cdp-exports/*"))
    again = _run(job, ObjectStoreSink(destination, conn_id="aws_default"))
    assert again.skipped is True
    assert len(sandbox.sitecore.requests_to("/sitecore-cdp-exports/*")) == downloads


def test_s3_through_object_storage_a_failed_run_leaves_the_previous_one(sitecore_job, sandbox, s3):
    destination = f"s3://{s3.bucket}/ds"
    good = sitecore_job("daily", rows=1000, rows_per_file=1000)
    _run(good, ObjectStoreSink(destination, conn_id="aws_default"))
    before = {k: s3.read(k) for k in s3.keys("")}

    bad = sitecore_job("daily_next", rows=3000, rows_per_file=1000)
    sandbox.sitecore.faults.server_error("*/daily_next/*/part-00002.json.gz", times=None, status=503)
    with pytest.raises(VendorServerError):
        _run(bad, ObjectStoreSink(destination, conn_id="aws_default", block_size=5 * 1024 * 1024))

    assert {k: s3.read(k) for k in s3.keys("")} == before
    assert s3.client().list_multipart_uploads(Bucket=s3.bucket).get("Uploads", []) == []


# -- a manifest read back is input: only what lies in its own run directory is trusted or removed --

PLANTED_RUN = "20261122T031500Z-9f3a1c2b"


def _plant_manifest(manifest_path: Path, locations: dict[str, int], *, job_ref: str = "planted") -> None:
    """A manifest of ``job_ref`` listing ``locations`` (location: size), as anyone who may write
    under the destination could put it there."""
    from airflow_provider_exports.transfers.engine import manifest as manifest_mod

    planted = manifest_mod.build_manifest(
        vendor=VENDOR,
        export_ref="e",
        job_ref=job_ref,
        run_id=PLANTED_RUN,
        destination={"kind": "object_storage", "url": f"file://{manifest_path.parent}"},
        files=[manifest_mod.FileRecord(loc.rsplit("/", 1)[-1], loc, n, "0" * 64, n) for loc, n in locations.items()],
        started_at=0.0,
        finished_at=0.0,
    )
    manifest_path.parent.mkdir(parents=True, exist_ok=True)
    manifest_path.write_bytes(manifest_mod.dumps(planted))


def _one_file(tmp_path: Path) -> list[LocalFileSource]:
    (tmp_path / "a.csv").write_bytes(b"a,b\n1,2\n")
    return [LocalFileSource(tmp_path / "a.csv")]


@pytest.mark.parametrize(
    "planted",
    ["../../outside.txt", "{root}/run-" + PLANTED_RUN + "/../../../outside.txt", "{outside}"],
    ids=["relative-to-the-worker", "dot-dot-below-a-run-directory", "absolute-path-elsewhere"],
)
def test_a_planted_manifest_cannot_make_the_next_run_remove_a_file_outside_its_run_directory(
    tmp_path, monkeypatch, caplog, planted
):
    root = tmp_path / "lake" / "ds"
    outside = tmp_path / "outside.txt"
    outside.write_bytes(b"keep me\n")
    worker = tmp_path / "worker" / "cwd"
    worker.mkdir(parents=True)
    monkeypatch.chdir(worker)  # a relative location is resolved against the worker's directory
    location = planted.format(root=root, outside=outside)
    _plant_manifest(root / "_manifest.json", {location: 8})
    (root / f"run-{PLANTED_RUN}").mkdir()  # for the '..' below it to resolve

    with caplog.at_level("WARNING"):
        summary = run_transfer(
            _one_file(tmp_path), ObjectStoreSink(f"file://{root}"), vendor=VENDOR, export_ref="e", job_ref="j"
        )

    assert json.loads((root / "_manifest.json").read_text())["run_id"] == summary.run_id
    assert outside.read_bytes() == b"keep me\n"
    assert "outside its run directory" in caplog.text and ascii(location) in caplog.text


def test_a_run_directory_that_is_a_link_out_of_the_root_is_not_followed(tmp_path, caplog):
    root = tmp_path / "lake" / "ds"
    elsewhere = tmp_path / "finance"
    elsewhere.mkdir()
    (elsewhere / "ledger.csv").write_bytes(b"keep me\n")
    root.mkdir(parents=True)
    (root / f"run-{PLANTED_RUN}").symlink_to(elsewhere, target_is_directory=True)
    _plant_manifest(root / "_manifest.json", {f"{root}/run-{PLANTED_RUN}/ledger.csv": 8})

    with caplog.at_level("WARNING"):
        run_transfer(_one_file(tmp_path), ObjectStoreSink(f"file://{root}"), vendor=VENDOR, export_ref="e", job_ref="j")

    assert (elsewhere / "ledger.csv").read_bytes() == b"keep me\n"
    assert "outside its run directory" in caplog.text


def test_a_planted_manifest_of_the_same_job_is_not_trusted_and_the_job_moves_again(tmp_path, caplog):
    root = tmp_path / "lake" / "ds"
    outside = tmp_path / "ledger.csv"
    outside.write_bytes(b"a,b\n1,2\n")
    _plant_manifest(root / "_manifest.json", {str(outside): 8}, job_ref="j")  # the size it lists is right

    with caplog.at_level("WARNING"):
        summary = run_transfer(
            _one_file(tmp_path), ObjectStoreSink(f"file://{root}"), vendor=VENDOR, export_ref="e", job_ref="j"
        )

    assert summary.skipped is False and summary.locations == [f"{root}/run-{summary.run_id}/a.csv"]
    assert outside.read_bytes() == b"a,b\n1,2\n"
    assert "not trusted" in caplog.text


def test_an_oversized_manifest_is_refused_naming_the_setting(tmp_path, monkeypatch):
    from airflow_provider_exports.exceptions import LimitExceeded

    root = tmp_path / "lake" / "ds"
    _plant_manifest(root / "_manifest.json", {f"{root}/run-{PLANTED_RUN}/part-{i:05}.csv": 1 for i in range(40)})
    assert (root / "_manifest.json").stat().st_size > 4096
    monkeypatch.setenv("AIRFLOW__EXPORTS__MAX_JSON_BODY_BYTES", "4096")
    before = _tree(root)

    with pytest.raises(LimitExceeded, match="max_json_body_bytes"):
        run_transfer(_one_file(tmp_path), ObjectStoreSink(f"file://{root}"), vendor=VENDOR, export_ref="e", job_ref="j")

    assert _tree(root) == before


def test_s3_through_object_storage_a_planted_manifest_cannot_delete_elsewhere_in_the_bucket(tmp_path, s3, caplog):
    from airflow_provider_exports.transfers.engine import manifest as manifest_mod

    s3.client().put_object(Bucket=s3.bucket, Key="finance/ledger.csv", Body=b"keep me\n")
    planted = manifest_mod.build_manifest(
        vendor=VENDOR, export_ref="e", job_ref="planted", run_id=PLANTED_RUN,
        destination={"kind": "object_storage", "url": f"s3://{s3.bucket}/ds"},
        files=[manifest_mod.FileRecord("ledger.csv", "finance/ledger.csv", 8, "0" * 64, 8)],
        started_at=0.0, finished_at=0.0,
    )
    s3.client().put_object(Bucket=s3.bucket, Key="ds/_manifest.json", Body=manifest_mod.dumps(planted))

    with caplog.at_level("WARNING"):
        summary = run_transfer(
            _one_file(tmp_path), ObjectStoreSink(f"s3://{s3.bucket}/ds", conn_id="aws_default"),
            vendor=VENDOR, export_ref="e", job_ref="j",
        )

    assert s3.manifest("ds")["run_id"] == summary.run_id
    assert s3.read("finance/ledger.csv") == b"keep me\n"
    assert "'finance/ledger.csv'" in caplog.text
