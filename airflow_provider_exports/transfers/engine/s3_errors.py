"""S3's errors as the provider's: every request of a transfer names its bucket, key and argument.

The S3 sink, its writer, the staged commit and the S3 source call S3 through :class:`S3Client`, a
thin wrapper of the boto3 client whose ``ClientError``s become :class:`S3RequestFailed` (retried by
Airflow) or, for what a retry cannot change (no such bucket, access denied, unknown credentials),
:class:`S3RequestRefused` (not retried). Both keep botocore's error response, so :func:`error_code`
reads them as it reads botocore's own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from airflow_provider_exports.exceptions import S3RequestFailed, S3RequestRefused

#: S3 error codes that the same request meets again, and what to check for each
REFUSALS = {
    "NoSuchBucket": "The bucket does not exist: check {argument} (and the AWS connection's account)",
    "InvalidBucketName": "That is not a bucket name: check {argument}",
    "AccessDenied": "The AWS connection's credentials may not do this: check {argument} and their IAM policy",
    "AllAccessDisabled": "All access to the bucket is disabled: check {argument}",
    "InvalidAccessKeyId": "S3 does not know the AWS connection's access key: check the AWS connection",
    "SignatureDoesNotMatch": "S3 refused the AWS connection's secret key: check the AWS connection",
}


def error_code(exc: BaseException) -> str:
    """The ``Error.Code`` of a botocore ``ClientError`` or an :class:`S3RequestFailed` (``""`` for any
    other exception)."""
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


def s3_error(exc: Exception, operation: str, bucket: str, key: str | None, argument: str) -> S3RequestFailed:
    """The provider's error for botocore's ``exc`` of ``operation`` on ``bucket``/``key``."""
    code = error_code(exc) or type(exc).__name__
    response = getattr(exc, "response", None) or {}
    message = str(response.get("Error", {}).get("Message") or "") or str(exc)
    refusal = REFUSALS.get(code)
    if refusal is None and code == "403":  # a HEAD's AccessDenied has no body, only its status
        refusal = REFUSALS["AccessDenied"]
    cls = S3RequestRefused if refusal else S3RequestFailed
    hint = f"Not retried: {refusal.format(argument=argument)}" if refusal else None
    return cls(
        operation,
        bucket=bucket,
        key=key,
        argument=argument,
        code=code,
        message=message,
        response=response,
        hint=hint,
    )


class S3Client:
    """The boto3 S3 client, its ``ClientError``s raised as :func:`s3_error` makes them.

    :param client: the boto3 client (an ``S3Hook``'s ``get_conn()``).
    :param argument: what gave the bucket, as errors name it (``s3_bucket``).
    """

    def __init__(self, client: Any, argument: str) -> None:
        self.client = client
        self.argument = argument

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.client, name)
        if name == "get_paginator":
            return lambda operation: _Paginator(method(operation), operation, self)
        if not callable(method) or name.startswith("_"):
            return method
        operation = _operation_name(name)
        return lambda **kwargs: self.call(operation, lambda: method(**kwargs), kwargs)

    def call(self, operation: str, request: Callable[[], Any], kwargs: dict[str, Any]) -> Any:
        from botocore.exceptions import ClientError

        try:
            return request()
        except ClientError as exc:
            raise s3_error(exc, operation, str(kwargs.get("Bucket")), kwargs.get("Key"), self.argument) from None


class _Paginator:
    """A botocore paginator whose pages' ``ClientError``s are raised as :func:`s3_error` makes them."""

    def __init__(self, paginator: Any, operation: str, client: S3Client) -> None:
        self._paginator = paginator
        self._operation = _operation_name(operation)
        self._client = client

    def paginate(self, **kwargs: Any) -> Iterator[Any]:
        pages = iter(self._paginator.paginate(**kwargs))
        while True:
            page = self._client.call(self._operation, lambda: next(pages, _END), kwargs)
            if page is _END:
                return
            yield page


_END = object()


def _operation_name(method: str) -> str:
    """``put_object`` → ``PutObject`` (S3's name of the operation)."""
    return "".join(part.capitalize() for part in method.split("_"))
