"""The provider's one error hierarchy.

Everything the provider raises on purpose is an :class:`ExportsError`, itself an ``AirflowException``,
so a user can catch the whole family or one branch. Vendor errors keep the vendor's own key and
message (Cordial ``errorKey``, Adobe ``error_code``, a job's ``errors[]``) so the task log says what the
vendor said. No exception here ever carries a token, a header or a URL query string.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException


class ExportsError(AirflowException):
    """Base class of every error this provider raises."""


class ExportConfigError(ExportsError, AirflowFailException, ValueError):
    """Bad input: names the field, what was given and what is allowed. Never retried.

    :param field: the (first) field at fault.
    :param problem: what is wrong with it and what is allowed.
    :param more: further ``(field, problem)`` pairs, when several fields were checked at once (a
        connection's fields): every problem is reported, not only the first.
    """

    def __init__(self, field: str, problem: str, *, more: Sequence[tuple[str, str]] = ()) -> None:
        self.field = field
        self.problem = problem
        #: every ``(field, problem)`` found, the first one first
        self.problems: list[tuple[str, str]] = [(field, problem), *more]
        # One line per field (problems themselves use "; "), so several read as a list.
        super().__init__("\n".join(f"{f}: {p}" for f, p in self.problems))


class VendorAPIError(ExportsError):
    """A vendor API answered with an error, or could not be reached.

    :param status_code: the HTTP status, or ``None`` when no response arrived (kept as ``http_status``;
        ``AirflowException.status_code`` means something else).
    :param error_key: the vendor's own error key or code, when the body carried one.
    :param message: the vendor's own message, or a description of the transport failure.
    :param url: the URL **without** its query string.
    :param retry_after: the seconds the vendor asked to wait, when it said.
    :param hint: what to check, added to the message (never a secret: fields and hosts only).
    """

    def __init__(
        self,
        vendor: str,
        *,
        status_code: int | None,
        error_key: str | None,
        message: str,
        method: str,
        url: str,
        retry_after: float | None = None,
        hint: str | None = None,
    ) -> None:
        self.vendor = vendor
        self.http_status = status_code
        self.error_key = error_key
        self.message = message
        self.method = method
        self.url = url
        self.retry_after = retry_after
        self.hint = hint
        status = f"HTTP {status_code}" if status_code is not None else "no response"
        # Parentheses, not brackets: rich (Airflow's CLI output) reads "[key]" as markup and drops
        # it, which printed "HTTP 401 : Unauthorized" for a refused Sitecore secret.
        key = f" ({error_key})" if error_key and str(error_key).strip() else ""
        #: what the vendor answered, without the request: ``HTTP 429 (KEY): message``
        self.summary = f"{status}{key}: {message}"
        told = f". {hint}" if hint else ""
        super().__init__(f"{vendor} {method} {url} failed: {self.summary}{told}")

    def fields(self) -> dict[str, Any]:
        """The keyword arguments the error was built from (JSON-able, no secret): what a trigger's
        event carries of it."""
        return {"status_code": self.http_status, **{k: getattr(self, k) for k in _API_ERROR_FIELDS}}


#: the keyword arguments of :class:`VendorAPIError` kept as attributes of the same name
_API_ERROR_FIELDS = ("error_key", "message", "method", "url", "retry_after", "hint")


class VendorAuthError(VendorAPIError):
    """401/403: the credentials or their permissions were refused."""


class VendorNotFoundError(VendorAPIError):
    """404: the export, job, batch or file does not exist."""


class VendorRefused(VendorAPIError, AirflowFailException):
    """An API call refused as it was asked: 400 (the request), 401/403 (the credentials or their
    permissions), 404 (what it names does not exist). The same call would be refused again, so
    Airflow fails the task at once instead of retrying it; ``hint`` names what to check (the
    connection test's words). A download is never refused so: a presigned URL's 403 means it
    expired, and a fresh one may pass.

    Refusals of 401/403 are also :class:`VendorAuthError`, of 404 :class:`VendorNotFoundError`.
    """

    #: the statuses of a refusal
    STATUSES = frozenset({400, 401, 403, 404})

    @staticmethod
    def of(vendor: str, fields: Mapping[str, Any]) -> VendorRefused:
        """The refusal built from ``fields`` (as :meth:`VendorAPIError.fields` gives them; other keys
        are left out), of the class its status calls for."""
        status = fields.get("status_code")
        cls = (
            VendorAuthRefused
            if status in (401, 403)
            else VendorNotFoundRefused
            if status == 404
            else VendorRefused
        )
        return cls(
            vendor,
            status_code=status,
            error_key=fields.get("error_key"),
            message=str(fields.get("message") or ""),
            method=str(fields.get("method") or ""),
            url=str(fields.get("url") or ""),
            retry_after=fields.get("retry_after"),
            hint=fields.get("hint"),
        )


class VendorAuthRefused(VendorAuthError, VendorRefused):
    """401/403 to an API call: never retried."""


class VendorNotFoundRefused(VendorNotFoundError, VendorRefused):
    """404 to an API call: never retried."""


class VendorRateLimitError(VendorAPIError):
    """429: too many requests; ``retry_after`` holds the vendor's wait in seconds when given."""


class VendorServerError(VendorAPIError):
    """5xx: the vendor failed; retried before it is raised."""


class VendorConnectionError(VendorAPIError):
    """The connection failed, timed out or was dropped before a full response arrived."""


class DeadlineExceeded(ExportsError):
    """A call stopped at the deadline of the wait it serves (a sensor's timeout), retried no further.

    :param what: what was being waited for, e.g. ``Sitecore CDP GET https://host/path`` (never a
        query string: callers pass a redacted URL).
    :param deadline: the wait's deadline, epoch seconds.
    """

    def __init__(self, what: str, deadline: float, reason: str) -> None:
        self.what = what
        self.deadline = deadline
        self.reason = reason
        when = datetime.fromtimestamp(deadline, tz=timezone.utc).isoformat(timespec="seconds")
        super().__init__(f"{what}: stopped at the wait's deadline ({when}): {reason}")


class ExportJobFailed(ExportsError, AirflowFailException):
    """The vendor reports that an export job finished in a failed state. Never retried: it stays failed."""

    def __init__(
        self,
        vendor: str,
        job_ref: str,
        status: str,
        *,
        errors: Sequence[Any] = (),
        details: Mapping[str, Any] | None = None,
    ) -> None:
        self.vendor = vendor
        self.job_ref = job_ref
        self.status = status
        self.errors = list(errors)
        self.details = dict(details or {})
        parts = [f"{vendor} export job {job_ref} ended with status {status}"]
        if self.details:
            parts.append(", ".join(f"{k}={v}" for k, v in self.details.items()))
        if self.errors:
            parts.append("errors: " + "; ".join(str(e) for e in self.errors))
        super().__init__(". ".join(parts))


class ExportJobMayExist(ExportsError, AirflowFailException):
    """A request that creates an export job reached the vendor, but its answer does not say which
    job it created (an empty 200, a 5xx, a connection lost before the answer). The job may exist:
    never retried automatically, so it is never created twice.

    :param name: the name the job was created under (how to find it in the vendor's UI).
    :param answer: what the vendor answered, or how the call failed.
    """

    def __init__(self, vendor: str, name: str, answer: str, *, looked_up: bool = False) -> None:
        self.vendor = vendor
        self.name = name
        self.answer = answer
        self.looked_up = looked_up
        found = " and no job of that name was found" if looked_up else ""
        super().__init__(
            f"{vendor} may have created the export job {name!r}: the create call ran but its answer "
            f"was unusable ({answer}){found}. Not retried, so it is not created twice: look for that "
            f"name among {vendor}'s jobs before clearing the task"
        )


class LimitExceeded(ExportsError, AirflowFailException):
    """Something from outside went past one of the provider's bounds (a body, a page count, a
    line, a file's size): never retried, the same answer would come again. Names the bound and the
    ``[exports]`` setting that raises it (docs/security.md).

    :param what: what was being read, e.g. ``Cordial GET https://host/v2/jobs`` (no query string).
    :param limit: the bound's setting name, e.g. ``max_json_body_bytes``.
    :param value: the bound in force.
    :param found: what was found past it.
    """

    def __init__(self, what: str, limit: str, value: int | float, found: str) -> None:
        self.what = what
        self.limit = limit
        self.value = value
        super().__init__(
            f"{what}: {found}, past the bound of {value:,} ({limit}); raise it with "
            f"[exports] {limit} (AIRFLOW__EXPORTS__{limit.upper()}) if this input is expected"
        )


class URLRefused(ExportsError, AirflowFailException):
    """A URL the provider was asked to fetch is not one it may reach: not https, another port, or a
    host whose address is loopback, private, link-local, multicast or reserved (the cloud metadata
    address among them). Refused before a byte is sent; never retried.
    """

    def __init__(self, vendor: str, host: str, reason: str) -> None:
        self.vendor = vendor
        self.host = host
        self.reason = reason
        super().__init__(
            f"{vendor}: refused to connect to {host}: {reason}. A host of your own network is reached "
            "only when it is the connection's own API host, or named in the connection's extra "
            "allowed_hosts (docs/security.md)"
        )


class JobWaitTimeout(ExportsError):
    """A job-creating operator's wait for its job reached its ``timeout``; the job was cancelled where
    the vendor allows it. A retry reattaches to the job if it still exists."""


class WaitStopped(ExportsError):
    """A wait for a vendor job in the worker was stopped: Airflow called ``on_kill`` on SIGTERM (a
    worker shutting down, a task cleared or marked by a user). Retried where retries are left; a
    job-creating operator's retry reattaches to its job if the vendor still runs it."""


class TransferError(ExportsError):
    """A transfer could not complete; the destination was left as it was."""


class TransferCancelled(TransferError):
    """The transfer was stopped (``on_kill``, a timeout, or another file failing) and aborted."""


class TransferRefused(TransferError, AirflowFailException):
    """The export cannot be stored as it is (colliding file names, an empty export where that
    would empty the destination, a type that changed between files...). Never retried: the same
    job gives the same answer. The destination was left as it was."""


class S3RequestFailed(TransferError):
    """An S3 request of a transfer failed: names the operation, the object, and the argument that
    gave the bucket. Retried by Airflow, unless it is an :class:`S3RequestRefused`.

    :param operation: the S3 operation, e.g. ``PutObject``.
    :param argument: the argument (of the operator, or of what gave the object) naming the bucket.
    :param code: S3's error code, e.g. ``NoSuchBucket``.
    :param response: botocore's parsed error response (its error and response metadata; no secret).
    """

    def __init__(
        self,
        operation: str,
        *,
        bucket: str,
        key: str | None,
        argument: str,
        code: str,
        message: str,
        response: Mapping[str, Any] | None = None,
        hint: str | None = None,
    ) -> None:
        self.operation = operation
        self.bucket = bucket
        self.key = key
        self.argument = argument
        self.code = code
        self.response = dict(response or {})
        where = f"s3://{bucket}/{key}" if key else f"s3://{bucket}"
        told = f". {hint}" if hint else ""
        super().__init__(
            f"S3 {operation} {where} failed: {code}: {message} (bucket {bucket!r} from {argument}){told}"
        )


class S3RequestRefused(S3RequestFailed, AirflowFailException):
    """S3 refused a transfer's request in a way that does not pass by itself (no such bucket,
    access denied, unknown credentials): never retried; the message says what to check."""


class TransferIntegrityError(TransferError):
    """Bytes received do not match the size or checksum the source announced."""


class SourceChanged(TransferIntegrityError):
    """The file changed at the source while it was being read (its ETag, Last-Modified or size
    moved between two requests); the runner starts that file again from its first byte."""


class ReadFileAgain(TransferError):
    """The sink found, part way, that the file must be read another way (a CSV that ``COPY``
    would read otherwise than the readers); the runner starts that file again from its first byte."""
