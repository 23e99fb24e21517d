"""The soak's S3 fault proxy, in front of a real moto server: it forwards what no fault matches,
answers a matched request with S3's 5xx instead of moto, or after moto wrote it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from airflow_provider_exports_sandbox.local_services import MotoServer
from dev.deployment.s3_faults import S3Fault, S3FaultProxy, operation


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoServer]:
    with MotoServer() as server:
        server.client().create_bucket(Bucket="lake")
        yield server


@pytest.fixture
def proxied(moto: MotoServer) -> Iterator[tuple[S3FaultProxy, Any]]:
    import boto3

    proxy = S3FaultProxy(moto.endpoint_url).start()
    client = boto3.client(
        "s3",
        endpoint_url=proxy.endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"total_max_attempts": 1, "mode": "standard"}),
    )
    yield proxy, client
    proxy.stop()


def _exists(moto: MotoServer, key: str) -> bool:
    return "Contents" in moto.client().list_objects_v2(Bucket="lake", Prefix=key)


def test_forwards_what_no_fault_matches(moto: MotoServer, proxied: tuple[S3FaultProxy, Any]) -> None:
    _, client = proxied
    put = client.put_object(Bucket="lake", Key="a/one", Body=b"x" * 70_000)
    assert put["ResponseMetadata"]["HTTPHeaders"]["date"].count("GMT") == 1  # moto's Date only
    assert client.get_object(Bucket="lake", Key="a/one")["Body"].read() == b"x" * 70_000
    assert _exists(moto, "a/one")
    assert client.head_object(Bucket="lake", Key="a/one")["ContentLength"] == 70_000


def test_answers_5xx_instead_of_moto(moto: MotoServer, proxied: tuple[S3FaultProxy, Any]) -> None:
    proxy, client = proxied
    fault = proxy.add(S3Fault("PutObject", "b/ds=1/*", status=503))
    with pytest.raises(ClientError) as exc:  # the key as S3 names it, not as the URL quotes it
        client.put_object(Bucket="lake", Key="b/ds=1/two", Body=b"data")
    assert exc.value.response["Error"]["Code"] == "SlowDown" and fault.hits == 1
    assert not _exists(moto, "b/ds=1/two")
    client.put_object(Bucket="lake", Key="b/ds=1/two", Body=b"data")  # times=1: the next one goes through
    assert _exists(moto, "b/ds=1/two")


def test_answers_5xx_after_moto_wrote(moto: MotoServer, proxied: tuple[S3FaultProxy, Any]) -> None:
    proxy, client = proxied
    proxy.add(S3Fault("PutObject", "c/_manifest.json", status=500, after_forwarding=True))
    with pytest.raises(ClientError) as exc:
        client.put_object(Bucket="lake", Key="c/_manifest.json", Body=b"{}")
    assert exc.value.response["Error"]["Code"] == "InternalError"
    assert _exists(moto, "c/_manifest.json")  # the write happened; only its answer was lost


def test_operations() -> None:
    assert operation("PUT", "/lake/k?partNumber=1&uploadId=u") == "UploadPart"
    assert operation("POST", "/lake/k?uploadId=u") == "CompleteMultipartUpload"
    assert operation("PUT", "/lake/k") == "PutObject"
    assert operation("PUT", "/lake/k?x-id=PutObject") == "PutObject"
    assert operation("POST", "/lake?delete") == "POST other"


def test_fails_a_part_and_loses_a_completes_answer(moto: MotoServer, proxied: tuple[S3FaultProxy, Any]) -> None:
    """The soak's ``s3-part-5xx`` and ``s3-complete-5xx`` (answer lost): matched by operation and key."""
    proxy, client = proxied
    key = "d/ds=1/run-1/big.bin"
    upload = client.create_multipart_upload(Bucket="lake", Key=key)["UploadId"]
    part = proxy.add(S3Fault("UploadPart", "d/ds=1/run-*", status=503))
    with pytest.raises(ClientError):
        client.upload_part(Bucket="lake", Key=key, UploadId=upload, PartNumber=1, Body=b"p" * 100)
    assert part.hits == 1
    assert "Parts" not in moto.client().list_parts(Bucket="lake", Key=key, UploadId=upload)
    etag = client.upload_part(Bucket="lake", Key=key, UploadId=upload, PartNumber=1, Body=b"p" * 100)["ETag"]
    complete = proxy.add(S3Fault("CompleteMultipartUpload", "d/ds=1/run-*", status=500, after_forwarding=True))
    parts = {"Parts": [{"PartNumber": 1, "ETag": etag}]}
    with pytest.raises(ClientError):
        client.complete_multipart_upload(Bucket="lake", Key=key, UploadId=upload, MultipartUpload=parts)
    assert complete.hits == 1 and _exists(moto, key)  # completed; only its answer was lost
