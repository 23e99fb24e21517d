"""The manifest: its fields, its round trip, and how a rerun recognises its job."""

from __future__ import annotations

import json

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
