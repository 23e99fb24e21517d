"""S3SourceFile against moto: whole reads, ranged reads, resumes after real cut connections (through a
proxy, since moto never drops one), a changed object refused by If-Match, interruption, and keys or
names that could read another object or spoof a log."""

from __future__ import annotations

import hashlib
import os
import threading
import time

import pytest
from airflow.providers.common.compat.sdk import AirflowFailException

from airflow_provider_exports.exceptions import (
    S3RequestFailed,
    S3RequestRefused,
    SourceChanged,
    TransferCancelled,
    TransferError,
    TransferRefused,
)
from airflow_provider_exports.transfers.engine import Cancellation
from airflow_provider_exports.transfers.engine.s3_source import S3SourceFile

MIB = 1024 * 1024


@pytest.fixture
def s3_hook(s3, flaky_s3):
    """An S3Hook that reaches moto through the flaky proxy, and a 6 MiB object to read."""
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    body = os.urandom(6 * MIB)
    s3.client().put_object(Bucket=s3.bucket, Key="delivered/export.csv", Body=body)
    hook = S3Hook(aws_conn_id="flaky_s3")
    hook.body = body  # type: ignore[attr-defined]
    return hook


def source(hook, s3, **kwargs) -> S3SourceFile:
    return S3SourceFile(hook, s3.bucket, "delivered/export.csv", **kwargs)


def read(src: S3SourceFile, **kwargs) -> bytes:
    return b"".join(src.iter_bytes(256 * 1024, **kwargs))


def test_reads_the_whole_object_and_learns_its_size(s3_hook, s3):
    src = source(s3_hook, s3)
    assert src.name == "export.csv"
    assert read(src) == s3_hook.body
    assert src.announced_size == 6 * MIB


def test_opens_at_an_offset_with_range(s3_hook, s3):
    with source(s3_hook, s3).open(5 * MIB) as stream:
        assert (stream.start, stream.total_size) == (5 * MIB, 6 * MIB)
        assert b"".join(stream.chunks) == s3_hook.body[5 * MIB :]


def test_resumes_after_cut_connections(s3_hook, s3, flaky_s3):
    flaky_s3.actions = [("cut", MIB), ("cut", 3 * MIB)]
    src = source(s3_hook, s3)
    data = read(src)
    assert hashlib.sha256(data).digest() == hashlib.sha256(s3_hook.body).digest()
    assert flaky_s3.connections >= 3  # the first read and two resumes
    # each resume asks for the rest of the same version of the object
    assert flaky_s3.sent.count(b"\r\nrange: bytes=") == 2 and flaky_s3.sent.count(b"\r\nif-match: ") == 2


def test_an_object_replaced_between_resumes_is_refused_by_if_match(s3_hook, s3, flaky_s3):
    flaky_s3.actions = [("cut", MIB)]
    src = source(s3_hook, s3)
    resume = src.before_retry

    def vendor_rewrites_then_resume(exc):
        s3.client().put_object(Bucket=s3.bucket, Key="delivered/export.csv", Body=os.urandom(6 * MIB))
        resume(exc)

    src.before_retry = vendor_rewrites_then_resume  # type: ignore[method-assign]
    with pytest.raises(SourceChanged, match="no longer has ETag"):
        read(src)


def test_a_missing_object_is_named_with_its_argument_and_retried(s3_hook, s3):
    with pytest.raises(S3RequestFailed) as err:
        read(S3SourceFile(s3_hook, s3.bucket, "delivered/nothing.csv", bucket_argument="export"))
    assert str(err.value).startswith(
        f"S3 GetObject s3://{s3.bucket}/delivered/nothing.csv failed: NoSuchKey: The specified key does "
        f"not exist. (bucket '{s3.bucket}' from export)"
    )
    assert isinstance(err.value, TransferError) and not isinstance(err.value, AirflowFailException)


def test_a_missing_bucket_is_named_with_its_argument_and_not_retried(s3_hook, s3):
    with pytest.raises(S3RequestRefused) as err:
        read(S3SourceFile(s3_hook, "no-such-bucket-here", "delivered/export.csv", bucket_argument="export"))
    message = str(err.value)
    assert "S3 GetObject s3://no-such-bucket-here/delivered/export.csv failed: NoSuchBucket" in message
    assert "Not retried: The bucket does not exist: check export" in message
    assert isinstance(err.value, AirflowFailException)


def test_a_cancellation_cuts_a_read_that_waits_for_bytes(s3_hook, s3, flaky_s3):
    flaky_s3.actions = [("stall", 2 * MIB)]  # S3 goes silent mid-body; botocore would wait 60 s
    cancellation = Cancellation()
    src = source(s3_hook, s3)
    first = threading.Event()
    outcome: list[BaseException] = []

    def reader() -> None:
        try:
            for _ in src.iter_bytes(256 * 1024, cancellation=cancellation):
                first.set()
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=reader)
    thread.start()
    assert first.wait(30)
    cancelled_at = time.monotonic()
    cancellation.cancel("test")
    thread.join(30)
    assert not thread.is_alive() and time.monotonic() - cancelled_at < 5
    assert len(outcome) == 1 and isinstance(outcome[0], TransferCancelled)


@pytest.mark.parametrize(
    "key", ["delivered/../finance/ledger.csv", "delivered/./export.csv", "../export.csv", "delivered/.."]
)
def test_a_key_with_a_dot_segment_is_refused_before_any_read(s3_hook, s3, flaky_s3, key):
    # S3 keeps such a key as its own object, but a compatible store, proxy or gateway may fold it
    s3.client().put_object(Bucket=s3.bucket, Key=key, Body=b"planted")
    with pytest.raises(TransferRefused, match=r"'\.' or '\.\.' part"):
        S3SourceFile(s3_hook, s3.bucket, key)
    assert flaky_s3.sent.count(b"GET /") == 0


@pytest.mark.parametrize(
    "key", ["delivered/\x1b[31mexport.csv", "delivered/export.csv\r\nINFO done", "delivered/\u202evsc.export"]
)
def test_a_key_that_could_spoof_a_log_is_refused_and_shown_escaped(s3_hook, s3, key):
    with pytest.raises(TransferRefused, match="control, format or line-separator") as refused:
        S3SourceFile(s3_hook, s3.bucket, key, "export.csv")
    assert ascii(key) in str(refused.value) and str(refused.value).isprintable()


def test_a_given_name_is_checked_like_any_source_name(s3_hook, s3):
    with pytest.raises(TransferRefused, match="not a relative path"):
        S3SourceFile(s3_hook, s3.bucket, "delivered/export.csv", "../export.csv")
    with pytest.raises(TransferRefused, match="control"):
        S3SourceFile(s3_hook, s3.bucket, "delivered/export.csv", "export\u2028.csv")
