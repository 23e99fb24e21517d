"""s3_error: which of S3's error codes a retry cannot change, and what the error names.

The S3 requests themselves meet these errors against moto in test_s3_sink.py and test_s3_source.py.
"""

from __future__ import annotations

import pytest
from airflow.providers.common.compat.sdk import AirflowFailException

from airflow_provider_exports.exceptions import S3RequestFailed
from airflow_provider_exports.transfers.engine.s3_errors import error_code, s3_error


@pytest.mark.parametrize(
    ("code", "refused"),
    [
        ("AccessDenied", True),
        ("403", True),
        ("InvalidAccessKeyId", True),
        ("SlowDown", False),
        ("InternalError", False),
    ],
)
def test_which_s3_errors_are_refusals(code, refused):
    """Codes moto does not answer (it enforces no IAM policy): botocore's own error, built as it is."""
    from botocore.exceptions import ClientError

    exc = ClientError({"Error": {"Code": code, "Message": "m"}}, "PutObject")
    error = s3_error(exc, "PutObject", "b", "k", "s3_bucket")
    assert isinstance(error, S3RequestFailed) and isinstance(error, AirflowFailException) is refused
    assert str(error).startswith(f"S3 PutObject s3://b/k failed: {code}: m (bucket 'b' from s3_bucket)")
    assert error_code(error) == code  # read as botocore's own error is read
