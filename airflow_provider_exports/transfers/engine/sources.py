"""Sources: the output files of an export, each a byte stream that can resume at an offset.

A :class:`SourceFile` knows its name at the destination, its size when the vendor listed one,
a few attributes (``{"delta": "added"}``), and how to open its bytes at an offset. Its
:meth:`SourceFile.iter_bytes` delivers the whole file once, from the first byte to the last,
resuming by itself after a cut connection; the runner and the sinks never see a resume.

:class:`HttpSourceFile` is the one for HTTP downloads (presigned URLs, authenticated Data Access
files). Its URL is a bearer credential: it lives only in memory, is never in ``repr``, and is
logged only through ``redact_url``.
"""

from __future__ import annotations

import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from airflow_provider_exports.exceptions import (
    TransferError,
    TransferIntegrityError,
    VendorAuthError,
    VendorConnectionError,
)

if TYPE_CHECKING:
    from airflow_provider_exports.hooks._http import HttpCore

log = logging.getLogger(__name__)

DEFAULT_CHUNK_SIZE = 1 << 20


class OpenedStream:
    """What :meth:`SourceFile.open` yields: chunks from an offset, and the whole size if known."""

    def __init__(self, chunks: Iterator[bytes], total_size: int | None) -> None:
        self.chunks = chunks
        self.total_size = total_size


class SourceFile(ABC):
    """One output file of an export.

    :param name: the file's path relative to the destination prefix (``part-0001.json.gz``).
    :param size: its size in bytes when the vendor listed one; checked against what arrives.
    :param attributes: JSON-able facts about the file that go into the manifest.
    :param max_attempts: how many times in a row a read may fail without delivering a byte
        before the transfer gives up (a read that made progress resets the count).
    """

    def __init__(
        self,
        name: str,
        size: int | None = None,
        *,
        attributes: Mapping[str, Any] | None = None,
        max_attempts: int = 5,
    ) -> None:
        if not name or name.startswith("/") or ".." in name.split("/"):
            raise ValueError(f"a source file name must be a relative path, got {name!r}")
        self.name = name
        self.size = size
        self.attributes: dict[str, Any] = dict(attributes or {})
        self.max_attempts = max_attempts
        #: the size the server announced once the file is open (``None`` before, or if it did not say)
        self.announced_size: int | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, size={self.size!r})"

    @abstractmethod
    def open(self, offset: int, chunk_size: int = DEFAULT_CHUNK_SIZE) -> AbstractContextManager[OpenedStream]:
        """Open the file's bytes from ``offset`` on, delivered in chunks of about ``chunk_size``."""

    def resumable(self, exc: BaseException) -> bool:
        """Whether reopening at the current offset can get past ``exc``."""
        return False

    def before_retry(self, exc: BaseException) -> None:  # noqa: B027 - optional hook
        """Called before the reopen that follows ``exc`` (e.g. to fetch a fresh URL)."""

    def iter_bytes(self, chunk_size: int = DEFAULT_CHUNK_SIZE) -> Iterator[bytes]:
        """The whole file, once, in order; resumes after cut connections.

        Raises :class:`TransferIntegrityError` when the bytes that arrive disagree with the
        listed size or with the size the server announced.
        """
        offset = 0
        announced: int | None = None
        failures = 0
        while True:
            try:
                with self.open(offset, chunk_size) as stream:
                    if stream.total_size is not None:
                        if announced is not None and stream.total_size != announced:
                            raise TransferIntegrityError(
                                f"{self.name}: the file changed while it was read "
                                f"(size {announced} became {stream.total_size})"
                            )
                        announced = self.announced_size = stream.total_size
                        if self.size is not None and announced != self.size:
                            raise TransferIntegrityError(
                                f"{self.name}: listed as {self.size} bytes but the server "
                                f"announced {announced}"
                            )
                    for chunk in stream.chunks:
                        if chunk:
                            offset += len(chunk)
                            failures = 0
                            yield chunk
                break
            except TransferError:
                raise
            except Exception as exc:
                failures += 1
                if not self.resumable(exc) or failures >= self.max_attempts:
                    raise
                log.warning(
                    "%s: read failed at byte %d (%s); attempt %d of %d, resuming",
                    self.name,
                    offset,
                    type(exc).__name__,
                    failures + 1,
                    self.max_attempts,
                )
                self.before_retry(exc)
                time.sleep(min(8.0, 0.25 * 2 ** (failures - 1)))
        expected = announced if announced is not None else self.size
        if expected is not None and offset != expected:
            raise TransferIntegrityError(f"{self.name}: received {offset} bytes, expected {expected}")


def presigned_expiry(url: str) -> float | None:
    """The epoch second at which an S3-style presigned URL stops working, if the URL says.

    Understands SigV4 (``X-Amz-Date`` + ``X-Amz-Expires``) and SigV2 (``Expires``).
    """
    query = parse_qs(urlsplit(url).query)
    try:
        if "X-Amz-Date" in query and "X-Amz-Expires" in query:
            signed = datetime.strptime(query["X-Amz-Date"][0], "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)
            return signed.timestamp() + int(query["X-Amz-Expires"][0])
        if "Expires" in query:
            return float(query["Expires"][0])
    except (ValueError, IndexError):
        return None
    return None


class HttpSourceFile(SourceFile):
    """A file behind an HTTP URL, downloaded through the provider's :class:`HttpCore`.

    :param core: the vendor's HTTP core (auth for Data Access downloads, none for presigned URLs).
    :param name: path relative to the destination prefix.
    :param size: listed size in bytes, or ``None``.
    :param url_resolver: returns the file's current URL. Called before the first read when no
        ``url`` is given, and again when a URL has expired (403, or past its presigned expiry):
        the vendor layer fetches fresh URLs from the vendor there.
    :param url: the URL already at hand from the listing, to save one call to the resolver.
    :param headers: extra request headers.
    :param max_url_refreshes: how many times the URL may be fetched anew.
    """

    # a URL this close to expiry is refreshed before use rather than after a 403
    EXPIRY_MARGIN_S = 5.0

    def __init__(
        self,
        core: HttpCore,
        name: str,
        size: int | None,
        url_resolver: Callable[[], str],
        *,
        url: str | None = None,
        attributes: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        max_attempts: int = 5,
        max_url_refreshes: int = 3,
    ) -> None:
        super().__init__(name, size, attributes=attributes, max_attempts=max_attempts)
        self._core = core
        self._resolve = url_resolver
        self._url = url
        self._headers = dict(headers or {})
        self._refreshes_left = max_url_refreshes

    def _current_url(self) -> str:
        if self._url is None:
            self._url = self._resolve()
        expiry = presigned_expiry(self._url)
        if expiry is not None and expiry - self.EXPIRY_MARGIN_S <= time.time():
            self._refresh_url("past its expiry")
        return self._url

    def _refresh_url(self, why: str) -> None:
        if self._refreshes_left <= 0:
            raise TransferError(f"{self.name}: the download URL expired again and no refresh is left")
        self._refreshes_left -= 1
        old = self._url
        self._url = self._resolve()
        log.info(
            "%s: download URL %s (%s); fetched a fresh one from the vendor",
            self.name,
            "expired" if old else "missing",
            why,
        )

    def open(self, offset: int, chunk_size: int = DEFAULT_CHUNK_SIZE) -> AbstractContextManager[OpenedStream]:
        @contextmanager
        def opened() -> Iterator[OpenedStream]:
            with self._core.stream(self._current_url(), offset=offset, headers=self._headers) as body:
                yield OpenedStream(body.iter_bytes(chunk_size), body.total_size)

        return opened()

    def resumable(self, exc: BaseException) -> bool:
        # 401 is the core's to handle; 403 is what an expired presigned URL answers.
        if isinstance(exc, VendorAuthError):
            return exc.http_status == 403 and self._refreshes_left > 0
        return isinstance(exc, VendorConnectionError)

    def before_retry(self, exc: BaseException) -> None:
        if isinstance(exc, VendorAuthError):
            self._refresh_url(f"HTTP {exc.http_status} from {exc.url}")
