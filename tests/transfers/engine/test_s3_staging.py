"""Fan-out into S3 (moto): groups staged under one run directory, one manifest commit, and what
happens when another run commits in between."""

from __future__ import annotations

import time

import pytest

from airflow_provider_exports.exceptions import ExportConfigError, TransferError, TransferRefused
from airflow_provider_exports.transfers.engine import TransferContext, run_transfer
from airflow_provider_exports.transfers.engine import manifest as manifest_mod
from airflow_provider_exports.transfers.engine.s3_staging import S3StagedCommit, S3StagingSink

from .conftest import LocalFileSource

VENDOR = "Sitecore CDP"
RUN = "20261122T031500Z-9f3a1c2b"


@pytest.fixture
def files(tmp_path):
    made = []
    for i in range(3):
        path = tmp_path / f"part-{i}.json"
        path.write_bytes(b'{"id": %d}\n' % i * (i + 1))
        made.append(LocalFileSource(path))
    return made


def stage(s3, groups, run_id=RUN, job_ref="job-1"):
    staged = []
    for i, sources in enumerate(groups):
        sink = S3StagingSink(s3.bucket, "exports", run_id=run_id)
        summary = run_transfer(sources, sink, vendor=VENDOR, export_ref="members", job_ref=job_ref)
        staged.append(
            {"group": i, "skipped": summary.skipped, "files": sink.staged_files, **sink.staged_state()}
        )
    return staged


def commit(s3, staged, run_id=RUN, job_ref="job-1"):
    sink = S3StagedCommit(s3.bucket, "exports")
    manifest = manifest_mod.build_manifest(
        vendor=VENDOR,
        export_ref="members",
        job_ref=job_ref,
        run_id=run_id,
        destination=sink.describe(),
        files=[manifest_mod.FileRecord(**f) for g in staged for f in g["files"]],
        started_at=time.time(),
        finished_at=time.time(),
    )
    return sink.commit_staged(TransferContext(VENDOR, "members", job_ref, run_id=run_id), manifest, staged)


def test_groups_land_in_one_run_directory_that_the_manifest_commits(s3, files):
    staged = stage(s3, [files[:2], files[2:]])
    run_dir = f"exports/run-{RUN}/"
    assert sorted(s3.keys()) == [run_dir + f.name for f in files]  # staged, no manifest yet
    assert commit(s3, staged) is None
    manifest = s3.manifest("exports")
    assert [f["location"] for f in manifest["files"]] == [run_dir + f.name for f in files]
    for f, record in zip(files, manifest["files"], strict=True):
        assert s3.read(record["location"]) == f.path.read_bytes()


def test_a_job_committed_by_another_run_meanwhile_discards_this_run(s3, files):
    staged = stage(s3, [files])
    other = "20261122T041500Z-0000000a"
    commit(s3, stage(s3, [files], run_id=other), run_id=other)
    assert commit(s3, staged)["run_id"] == other  # the winner; this run reports the job as there
    assert not [k for k in list(s3.keys()) if RUN in k]
    assert s3.manifest("exports")["run_id"] == other


def test_another_job_committed_meanwhile_fails_this_run_and_stays(s3, files):
    staged = stage(s3, [files])
    other = "20261122T041500Z-0000000a"
    commit(s3, stage(s3, [files[:1]], run_id=other, job_ref="job-2"), run_id=other, job_ref="job-2")
    with pytest.raises(TransferError, match="another run committed job-2"):
        commit(s3, staged)
    assert s3.manifest("exports")["job_ref"] == "job-2"
    assert not [k for k in list(s3.keys()) if RUN in k]


def test_a_staged_object_gone_before_the_commit_commits_nothing(s3, files):
    staged = stage(s3, [files])
    s3.client().delete_object(Bucket=s3.bucket, Key=staged[0]["files"][1]["location"])
    with pytest.raises(TransferError, match="is missing"):
        commit(s3, staged)
    assert "exports/_manifest.json" not in list(s3.keys())


def test_a_job_already_committed_is_not_staged_again(s3, files):
    commit(s3, stage(s3, [files]))
    again = stage(s3, [files], run_id="20261122T041500Z-0000000a")
    assert again[0]["skipped"] and again[0]["files"] == []


def test_an_empty_run_is_refused_unless_allowed(s3):
    with pytest.raises(TransferRefused, match="has no files"):
        commit(s3, stage(s3, [[]]))


def test_a_customer_provided_key_cannot_travel_through_xcom(s3):
    with pytest.raises(ExportConfigError, match="SSECustomerKey"):
        S3StagingSink(s3.bucket, "x", extra_args={"SSECustomerKey": "k"}, run_id=RUN)


# -- what the groups pass through XCom is checked before anything is listed or deleted -----------


def test_a_run_id_from_xcom_is_checked_before_any_prefix_is_built_from_it(s3, files):
    # someone's own folder under the prefix, whose name happens to start with "run-"
    s3.client().put_object(Bucket=s3.bucket, Key="exports/run-reports/q3.csv", Body=b"keep me\n")
    planted = "reports"
    ctx = TransferContext(VENDOR, "members", "job-1", run_id=planted)
    manifest = manifest_mod.build_manifest(
        vendor=VENDOR, export_ref="members", job_ref="job-1", run_id=planted, destination={"kind": "s3"},
        files=[manifest_mod.FileRecord("q3.csv", "exports/run-reports/q3.csv", 8, "0" * 64, 8)],
        started_at=time.time(), finished_at=time.time(),
    )

    with pytest.raises(ExportConfigError, match="run_id"):
        S3StagingSink(s3.bucket, "exports", run_id=planted)
    with pytest.raises(ExportConfigError, match=r"staged\.run_id"):
        S3StagedCommit(s3.bucket, "exports").discard_staged(ctx)
    with pytest.raises(ExportConfigError, match=r"staged\.run_id"):
        S3StagedCommit(s3.bucket, "exports").commit_staged(ctx, manifest, [{"group": 0, "base_etag": None}])

    assert s3.keys() == ["exports/run-reports/q3.csv"]


def test_a_discard_never_deletes_what_the_manifest_in_place_lists(s3, files):
    commit(s3, stage(s3, [files]))
    committed = sorted(s3.keys())

    # a commit task told (by XCom) that the committed run's id is its own, and that a group skipped
    current = S3StagedCommit(s3.bucket, "exports").discard_staged(TransferContext(VENDOR, "members", "job-1", run_id=RUN))

    assert current["run_id"] == RUN
    assert sorted(s3.keys()) == committed


def test_a_group_location_outside_the_run_directory_is_refused_and_nothing_is_committed(s3, files):
    s3.client().put_object(Bucket=s3.bucket, Key="finance/ledger.csv", Body=b"keep me\n")
    staged = stage(s3, [files])
    staged[0]["files"][0]["location"] = "finance/ledger.csv"
    staged[0]["files"][0]["stored_bytes"] = 8

    with pytest.raises(TransferRefused, match=r"'finance/ledger\.csv' is outside this run's directory"):
        commit(s3, staged)

    assert "exports/_manifest.json" not in list(s3.keys())
    assert s3.read("finance/ledger.csv") == b"keep me\n"


def test_a_commit_over_a_planted_manifest_leaves_what_it_lists_outside_alone(s3, files, caplog):
    s3.client().put_object(Bucket=s3.bucket, Key="finance/ledger.csv", Body=b"keep me\n")
    planted = manifest_mod.build_manifest(
        vendor=VENDOR, export_ref="members", job_ref="planted", run_id="20261122T021500Z-0000000b",
        destination={"kind": "s3"},
        files=[manifest_mod.FileRecord("ledger.csv", "finance/ledger.csv", 8, "0" * 64, 8)],
        started_at=time.time(), finished_at=time.time(),
    )
    s3.client().put_object(Bucket=s3.bucket, Key="exports/_manifest.json", Body=manifest_mod.dumps(planted))

    with caplog.at_level("WARNING"):
        assert commit(s3, stage(s3, [files])) is None

    assert s3.manifest("exports")["run_id"] == RUN
    assert s3.read("finance/ledger.csv") == b"keep me\n"
    assert "'finance/ledger.csv'" in caplog.text and "left alone" in caplog.text


def test_a_start_time_from_xcom_past_s3s_clock_cannot_sweep_runs_still_staging(s3, files):
    other = "20261122T041500Z-0000000a"
    stage(s3, [files[:1]], run_id=other, job_ref="job-2")  # another run, staging right now
    staged = stage(s3, [files[1:]])
    staged[0]["began_at"] = "2100-01-01T00:00:00+00:00"  # planted: the sweep would take everything
    assert commit(s3, staged) is None
    assert f"exports/run-{other}/{files[0].name}" in s3.keys(f"exports/run-{other}/")


@pytest.mark.parametrize("began_at", ["yesterday", "2026-11-22T03:15:00"])
def test_a_start_time_from_xcom_must_be_a_recorded_one(s3, files, began_at):
    staged = stage(s3, [files])
    staged[0]["began_at"] = began_at
    with pytest.raises(ExportConfigError, match=r"staged\.began_at"):
        commit(s3, staged)
