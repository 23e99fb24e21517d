"""AdobeExperiencePlatformToObjectStorageOperator against the AEP sandbox, into moto through ``s3://``
on Airflow's object storage (s3fs with the AWS connection), not the S3 operator's fast path."""

from __future__ import annotations

import hashlib

from airflow_provider_exports.transfers.adobe_experience_platform_to_object_storage import (
    AdobeExperiencePlatformToObjectStorageOperator,
)

from .test_adobe_experience_platform_to_s3 import finished_job


def test_a_job_lands_in_s3_through_object_storage_with_its_manifest(sandbox, s3):
    sandbox.adobe.default_rows = 200
    sandbox.adobe.files_per_batch = 2
    job_id, batches = finished_job(sandbox, segments=("seg-a", "seg-b"), per_batch=True)
    operator = AdobeExperiencePlatformToObjectStorageOperator(
        task_id="land",
        export_job_id=job_id,
        destination=f"s3://{s3.bucket}/raw/aep/",
        destination_conn_id="aws_default",
    )

    summary = operator.execute({})

    manifest = s3.manifest("raw/aep")
    assert summary["skipped"] is False and manifest["job_ref"] == job_id
    assert manifest["destination"] == {"kind": "object_storage", "url": f"s3://{s3.bucket}/raw/aep"}
    landed = {f["name"]: f["location"] for f in manifest["files"]}
    expected = [(b, *e) for b in batches for e in sandbox.adobe.expected_files(b)]
    assert len(landed) == len(expected) == 4
    for batch_id, file_id, name, size, sha256, _rows in expected:
        key = landed[f"{batch_id}/{file_id}/{name}"]
        assert key.startswith(f"raw/aep/run-{manifest['run_id']}/")
        body = s3.read(key)
        assert (len(body), hashlib.sha256(body).hexdigest()) == (size, sha256)
    assert operator.execute({})["skipped"] is True
