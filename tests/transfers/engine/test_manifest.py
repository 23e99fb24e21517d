"""The manifest: its fields, its round trip, and how a rerun recognises its job."""

from __future__ import annotations

import json

import pytest

from airflow_provider_exports.exceptions import ExportConfigError
from airflow_provider_exports.transfers.engine import manifest
from airflow_provider_exports.transfers.engine.manifest import FileRecord


def _build() -> dict:
    return manifest.build_manifest(
        vendor="Sitecore CDP",
        export_ref="daily_loyalty_members",
        job_ref="exec-1",
        run_id="20261122T031500Z-9f3a1c2b",
        destination={"kind": "s3", "bucket": "lake", "prefix": "raw"},
        files=[
            FileRecord("a.json.gz", "raw/a.json.gz", 10, "aa", 10, None, 0.5, {"delta": "added"}),
            FileRecord("b.json.gz", "raw/b.json.gz", 20, "bb", 20, None, 0.25),
        ],
        started_at=1_800_000_000.0,
        finished_at=1_800_000_002.5,
    )


def test_fields():
    m = _build()
    assert m["manifest_version"] == 1 and m["checksum_algorithm"] == "sha256"
    assert m["file_count"] == 2 and m["total_bytes"] == 30 and m["total_rows"] is None
    assert m["seconds"] == 2.5 and m["started_at"].endswith("+00:00")
    assert m["files"][0]["attributes"] == {"delta": "added"}
    assert m["engine"].startswith("airflow-provider-exports ")


def test_round_trip_and_same_job():
    m = manifest.loads(manifest.dumps(_build()))
    assert m is not None
    assert manifest.same_job(m, vendor="Sitecore CDP", export_ref="daily_loyalty_members", job_ref="exec-1")
    assert not manifest.same_job(m, vendor="Sitecore CDP", export_ref="daily_loyalty_members", job_ref="exec-2")
    assert not manifest.same_job(None, vendor="x", export_ref="y", job_ref="z")


def test_what_is_not_a_manifest_is_not_trusted():
    assert manifest.loads(b"not json") is None
    assert manifest.loads(json.dumps({"manifest_version": 99})) is None
    assert manifest.loads(json.dumps([1, 2])) is None


def test_rows_add_up_when_every_file_counted_them():
    m = manifest.build_manifest(
        vendor="v", export_ref="e", job_ref="j", run_id="r", destination={"kind": "sql"},
        files=[FileRecord("a", "t", 1, "x", None, 3), FileRecord("b", "t", 1, "y", None, 4)],
        started_at=0.0, finished_at=1.0,
    )
    assert m["total_rows"] == 7


def test_a_manifest_whose_files_are_not_a_list_of_objects_is_not_trusted():
    for files in ("finance/ledger.csv", {"location": "x"}, ["finance/ledger.csv"], [{"location": "a"}, 3]):
        assert manifest.loads(json.dumps({"manifest_version": 1, "files": files})) is None
    assert manifest.loads(json.dumps({"manifest_version": 1, "files": [{"location": "a"}]})) is not None


RUN = "20261122T031500Z-9f3a1c2b"


def test_only_plain_paths_in_a_manifests_own_run_directory_are_its_own():
    assert manifest.in_run_dir(f"ds/run-{RUN}/a.csv", "ds", RUN)
    assert manifest.in_run_dir(f"ds/run-{RUN}/sub/a.csv", "ds", RUN)
    assert manifest.in_run_dir(f"run-{RUN}/a.csv", "", RUN)  # the root of a bucket
    assert manifest.in_run_dir(f"/data/ds/run-{RUN}/a.csv", "/data/ds", RUN)
    for path, run_id in [
        ("finance/ledger.csv", RUN),
        (f"other/run-{RUN}/a.csv", RUN),
        (f"ds/run-{RUN}/../../finance/ledger.csv", RUN),
        (f"ds/run-{RUN}/./a.csv", RUN),
        (f"ds/run-{RUN}//a.csv", RUN),
        (f"ds/run-{RUN}/", RUN),
        (f"ds/run-{RUN}", RUN),
        (f"ds/run-{RUN}x/a.csv", RUN),
        ("ds/run-20261122T031500Z-00000000/a.csv", RUN),  # another run's directory
        ("ds/run-reports/a.csv", "reports"),  # not a run id as runs make them
        (["ds", "a.csv"], RUN),
    ]:
        assert not manifest.in_run_dir(path, "ds", run_id), path


def test_a_run_id_is_checked_before_a_run_directory_is_named():
    assert manifest.run_dir("ds", RUN) == f"ds/run-{RUN}" and manifest.run_dir("", RUN) == f"run-{RUN}"
    for planted in ("reports", "../x", f"{RUN}/../..", f"{RUN}\n", None, 7):
        with pytest.raises(ExportConfigError, match=r"group\.run_id"):
            manifest.check_run_id(planted, "group.run_id")
        with pytest.raises(ExportConfigError, match="run_id"):
            manifest.run_dir("ds", planted)
