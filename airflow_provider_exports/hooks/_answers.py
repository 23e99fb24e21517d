"""What a vendor's HTTP answer means: the provider's exception for it, and how long it asks us to wait.

Sans I/O: every function here reads a response (or a transport failure) that a driver of
:mod:`._http` already has in hand. Redaction rules kept here: a URL reaches a log line or an error
only as ``scheme://host/path`` (a presigned URL's query string is a bearer credential).
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from airflow_provider_exports.exceptions import (
    VendorAPIError,
    VendorAuthError,
    VendorConnectionError,
    VendorNotFoundError,
    VendorRateLimitError,
    VendorRefused,
    VendorServerError,
)

#: what to check when an API call is refused (the hook's words, from its connection test)
RefusalHint = Callable[[VendorAPIError], str]


def redact_url(url: str) -> str:
    """Return ``url`` as ``scheme://host[:port]/path``: no query string, fragment or user info."""
    parts = urlsplit(str(url))
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header given in seconds or as an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    current = datetime.fromtimestamp(now if now is not None else time.time(), tz=timezone.utc)
    return max(0.0, (when - current).total_seconds())


def rate_limit_wait(headers: Mapping[str, str]) -> tuple[float | None, str]:
    """The seconds a 429 asks to wait, and what its rate-limit headers said (for the message).

    ``Retry-After`` (the minimum wait) wins; without it, ``X-Rate-Limit-Reset`` (seconds until the
    limit is whole again: Cordial's C-RL headers, also used by other APIs) is the wait.
    """
    told = {
        name: headers[header]
        for name, header in (
            ("limit", "X-Rate-Limit-Limit"),
            ("remaining", "X-Rate-Limit-Remaining"),
            ("reset in", "X-Rate-Limit-Reset"),
        )
        if headers.get(header)
    }
    said = ", ".join(f"{name} {value}" for name, value in told.items())
    wait = parse_retry_after(headers.get("Retry-After"))
    if wait is None:
        wait = parse_retry_after(headers.get("X-Rate-Limit-Reset"))
    return wait, f" (rate limit: {said})" if said else ""


def parse_error_body(response: httpx.Response) -> tuple[str | None, str]:
    """The vendor's own error key and message from an error response, whatever the vendor.

    Cordial: ``{"error": true, "errorKey", "message"}`` or ``{"error": "<message>"}`` on 401;
    Adobe gateway: ``{"error_code", "message"}``; Adobe IMS and OAuth servers: ``{"error",
    "error_description"}``; problem+json: ``{"title", "detail"}``; S3-style presigned URLs: XML
    ``<Code>``/``<Message>``.
    """
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, Mapping):
        key = next(
            (
                str(body[k])
                for k in ("errorKey", "error_code", "code", "error", "title")
                if isinstance(body.get(k), (str, int)) and not isinstance(body.get(k), bool)
            ),
            None,
        )
        message = next(
            (
                str(body[k])
                for k in ("message", "error_description", "msg", "detail", "title")
                if isinstance(body.get(k), str)
            ),
            None,
        )
        if message is None and isinstance(body.get("error"), str):
            key, message = None, body["error"]
        return key, message or response.reason_phrase
    text = response.text[:2000] if response.content else ""
    if "<Code>" in text:
        code = text.split("<Code>", 1)[1].split("</Code>", 1)[0]
        message = text.split("<Message>", 1)[1].split("</Message>", 1)[0] if "<Message>" in text else code
        return code, message
    return None, response.reason_phrase or "error"


_ERROR_CLASSES: dict[int, type[VendorAPIError]] = {
    401: VendorAuthError,
    403: VendorAuthError,
    404: VendorNotFoundError,
    429: VendorRateLimitError,
}


def error_for(vendor: str, method: str, response: httpx.Response) -> VendorAPIError:
    """The provider's exception for an HTTP error response, with the vendor's key and message."""
    key, message = parse_error_body(response)
    status = response.status_code
    retry_after = parse_retry_after(response.headers.get("Retry-After"))
    if status == 429:
        retry_after, said = rate_limit_wait(response.headers)
        message += said
    cls = _ERROR_CLASSES.get(status, VendorServerError if status >= 500 else VendorAPIError)
    return cls(
        vendor,
        status_code=status,
        error_key=key,
        message=message,
        method=method,
        url=redact_url(str(response.request.url)),
        retry_after=retry_after,
    )


def refused(error: VendorAPIError, hint: RefusalHint | None) -> VendorAPIError:
    """``error`` of an API call (never a download's) as the :class:`VendorRefused` that Airflow does
    not retry, with ``hint``'s words, when its status is one of a refusal; else ``error`` itself."""
    if error.http_status not in VendorRefused.STATUSES:
        return error
    return VendorRefused.of(error.vendor, {**error.fields(), "hint": hint(error) if hint else None})


class _NotSentError(VendorConnectionError):
    """The request never reached the server (connect failed): safe to send again, whatever the method."""


def connection_error(vendor: str, method: str, url: str, exc: httpx.TransportError) -> VendorConnectionError:
    """The provider's exception for a transport failure (a failure to connect is provably not sent)."""
    cls = _NotSentError if isinstance(exc, httpx.ConnectError) else VendorConnectionError
    return cls(
        vendor,
        status_code=None,
        error_key=None,
        message=f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__,
        method=method,
        url=redact_url(url),
    )


def provably_not_sent(exc: BaseException) -> bool:
    """Whether a failed request surely did not run at the server: it never connected, or a 429
    refused it. Any other failure of a request that creates something leaves its outcome unknown."""
    return isinstance(exc, (_NotSentError, VendorRateLimitError))


def json_body(response: httpx.Response, vendor: str) -> Any:
    """The JSON body of a successful response, or a clear error naming the URL (never its query)."""
    if not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        raise VendorAPIError(
            vendor,
            status_code=response.status_code,
            error_key=None,
            message="the response is not JSON",
            method=response.request.method,
            url=redact_url(str(response.request.url)),
        ) from None
