"""Sources: the output files of an export, each a byte stream that can resume at an offset.

A :class:`SourceFile` knows its name at the destination, its size when the vendor listed one,
a few attributes (``{"delta": "added"}``), and how to open its bytes at an offset. Its
:meth:`SourceFile.iter_bytes` delivers the whole file once, from the first byte to the last,
resuming by itself after a cut connection; the runner and the sinks never see a resume.

:class:`HttpSourceFile` is the one for HTTP downloads (presigned URLs, authenticated Data Access
files). Its URL is a bearer credential: it lives only in memory, is never in ``repr``, and is
logged only through ``redact_url``.

What a vendor says about a file is input (docs/security.md): its name must be a plain relative
path without characters that could spoof a log line or a path (:func:`check_source_name`), and no
byte is read past what the listing, the vendor's rounded size or the server's announced total
allow, nor, when nothing bounds the file, past :data:`~airflow_provider_exports.utils.limits.FILE_BYTES`.
"""

from __future__ import annotations

import logging
import threading
import time
import unicodedata
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import KW_ONLY, dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from airflow_provider_exports.exceptions import (
    LimitExceeded,
    SourceChanged,
    TransferError,
    TransferIntegrityError,
    TransferRefused,
    VendorAuthError,
    VendorConnectionError,
)
from airflow_provider_exports.utils import limits

if TYPE_CHECKING:
    from airflow_provider_exports.hooks._http import HttpClient
    from airflow_provider_exports.hooks._streams import ByteStream
    from airflow_provider_exports.transfers.engine.cancellation import Cancellation

log = logging.getLogger(__name__)

DEFAULT_CHUNK_SIZE = 1 << 20

#: Unicode categories refused in a file name: control characters (Cc: ESC, CR, LF...), format and
#: bidirectional controls (Cf: U+200E, U+202E, U+2066...), line and paragraph separators (Zl, Zp),
#: and lone surrogates (Cs, which no store can encode). In a log line or a listing they can make a
#: name read as another one, or as another log line.
REFUSED_NAME_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})


def escaped(text: object) -> str:
    """``text`` as :func:`ascii` writes it (every control character escaped, quoted), cut after
    300 characters: what an error message may show of a name from outside."""
    text = ascii(text)
    return text if len(text) <= 300 else text[:300] + "..."


def check_characters(text: object, what: str) -> str:
    """``text`` if it is a non-empty text without a character of :data:`REFUSED_NAME_CATEGORIES`;
    else :class:`TransferRefused` naming ``what``, the text shown escaped (:func:`escaped`) so
    the message itself cannot spoof a log."""
    if not isinstance(text, str) or not text:
        raise TransferRefused(f"a {what} must be a non-empty text, got {escaped(text)}")
    if text.isprintable():  # the common case, in C: no character of a refused category
        return text
    bad = sorted({ascii(c)[1:-1] for c in text if unicodedata.category(c) in REFUSED_NAME_CATEGORIES})
    if bad:
        raise TransferRefused(
            f"the {what} {escaped(text)} holds control, format or line-separator characters "
            f"({', '.join(bad[:10])}); they could make a log or a path read as another one"
        )
    return text


def check_source_name(name: object) -> str:
    """``name`` if it may name an export file: a relative path of plain segments (no leading
    ``/``, no empty, ``.`` or ``..`` segment) that :func:`check_characters` accepts; else
    :class:`TransferRefused`."""
    name = check_characters(name, "source file name")
    if any(part in ("", ".", "..") for part in name.split("/")):
        raise TransferRefused(
            f"the source file name {escaped(name)} is not a relative path of plain parts (no leading "
            "'/', no empty, '.' or '..' part)"
        )
    return name


@dataclass
class OpenedStream:
    """What :meth:`SourceFile.open` yields: the bytes from ``start`` on, and what the server said.

    :param chunks: the body.
    :param total_size: the whole file's size, if the server said.
    :param start: the offset of the first byte of ``chunks`` (0 when a server sent the whole file
        although a later offset was asked for).
    :param validator: the version of the file (ETag or Last-Modified), if the server said.
    :param window: the bytes asked for when the answer is one window of the file (a ``206`` to a
        bounded ``Range``): once it ends, the reader asks for the next one.
    """

    chunks: Iterator[bytes]
    total_size: int | None
    _: KW_ONLY
    start: int = 0
    validator: str | None = None
    window: int | None = None


class SourceFile(ABC):
    """One output file of an export.

    :param name: the file's path relative to the destination prefix (``part-0001.json.gz``);
        checked by :func:`check_source_name`.
    :param size: its exact size in bytes when the vendor listed one; checked against what arrives.
    :param size_range: ``(smallest, largest)`` byte counts the vendor's rounded size allows
        (Sitecore lists ``sizeKB``); checked against what the server announces and what arrives.
    :param attributes: JSON-able facts about the file that go into the manifest.
    """

    #: how many times in a row a read may fail without delivering a byte before the transfer
    #: gives up (a read that made progress resets the count)
    max_attempts = 5

    def __init__(
        self,
        name: str,
        size: int | None = None,
        *,
        size_range: tuple[int, int] | None = None,
        attributes: Mapping[str, Any] | None = None,
    ) -> None:
        self.name = check_source_name(name)
        self.size = size
        self.size_range = size_range
        self.attributes: dict[str, Any] = dict(attributes or {})
        #: the size the server announced once the file is open (``None`` before, or if it did not say)
        self.announced_size: int | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, size={self.size!r})"

    @abstractmethod
    def open(
        self, offset: int, chunk_size: int = DEFAULT_CHUNK_SIZE, *, if_range: str | None = None
    ) -> AbstractContextManager[OpenedStream]:
        """Open the file's bytes from ``offset`` on, in chunks of about ``chunk_size``.

        ``if_range`` is the validator of the version already partly read: a source that can,
        sends the whole file (``start`` 0) when the file changed since.
        """

    def resumable(self, exc: BaseException) -> bool:
        """Whether reopening at the current offset can get past ``exc``."""
        return False

    def before_retry(self, exc: BaseException) -> None:  # noqa: B027 - optional hook
        """Called before the reopen that follows ``exc`` (e.g. to fetch a fresh URL)."""

    def made_progress(self) -> None:  # noqa: B027 - optional hook
        """Called when an opened stream delivers its first bytes: limits on attempts start again."""

    def interrupt(self) -> None:  # noqa: B027 - optional hook
        """Make a read blocked in this file fail at once (called from another thread on cancellation)."""

    def _check_size(self, size: int, what: str) -> None:
        if self.size is not None and size != self.size:
            raise TransferIntegrityError(f"{self.name}: {what} {size} bytes, listed as {self.size}")
        if self.size_range is not None and not self.size_range[0] <= size <= self.size_range[1]:
            low, high = self.size_range
            raise TransferIntegrityError(
                f"{self.name}: {what} {size} bytes, but the vendor's listing allows {low} to {high}"
            )

    def iter_bytes(
        self, chunk_size: int = DEFAULT_CHUNK_SIZE, *, cancellation: Cancellation | None = None
    ) -> Iterator[bytes]:
        """The whole file, once, in order, from its first byte; resumes after cut connections.

        A resume asks for the rest with ``Range`` and ``If-Range``, and accepts only the bytes
        that follow the ones already read, of the same version of the file. Raises
        :class:`SourceChanged` when the file changed in between (the caller starts it again),
        :class:`TransferIntegrityError` when sizes disagree with the listing or with what the
        server announced (as soon as a byte arrives past one of them: nothing past it is read on),
        :class:`LimitExceeded` past :data:`limits.FILE_BYTES` when nothing says how big the file is,
        :class:`TransferCancelled` once ``cancellation`` is set.
        """
        with cancellation.interrupting(self.interrupt) if cancellation else nullcontext():
            yield from self._read_all(chunk_size, cancellation)

    def _byte_bound(self, total: int | None) -> tuple[int, str | None]:
        """The most bytes this file may have, and what says so: the smallest of the server's
        announced ``total``, the listed size and the top of the vendor's rounded size; when none
        is known, :data:`limits.FILE_BYTES` (what says so is then ``None``)."""
        known = [
            (bound, why)
            for bound, why in (
                (total, "the server announced"),
                (self.size, "the listing gives"),
                (self.size_range[1] if self.size_range else None, "the vendor's listing allows at most"),
            )
            if bound is not None
        ]
        return min(known) if known else (limits.FILE_BYTES.value, None)

    def _past_bound(self, received: int, bound: int, why: str | None) -> Exception:
        """The error for a file that brought ``received`` bytes, past its ``bound``."""
        if why is None:
            return limits.FILE_BYTES.exceeded(
                f"file {self.name}",
                f"{received:,} bytes arrived and neither a listing nor the server said how many to expect",
            )
        return TransferIntegrityError(
            f"{self.name}: the server sent more than {bound:,} bytes, but {why} {bound:,}; "
            "stopped reading there"
        )

    def _read_all(self, chunk_size: int, cancellation: Cancellation | None) -> Iterator[bytes]:
        offset = 0
        total: int | None = None
        validator: str | None = None
        failures = 0
        continuation = False  # this open asks for the window after one that ended in full
        bound, why = self._byte_bound(None)
        self.announced_size = None
        while True:
            if cancellation is not None:
                cancellation.check()
            try:
                with self.open(offset, chunk_size, if_range=validator if offset else None) as stream:
                    skip = self._position(stream, offset, total, validator)
                    if offset == 0:
                        total, validator = stream.total_size, stream.validator
                        if total is not None:
                            self.announced_size = total
                            self._check_size(total, "the server announced")
                        bound, why = self._byte_bound(total)
                    progressed = False
                    received = 0  # the answer's bytes, skipped ones included
                    for chunk in stream.chunks:
                        received += len(chunk)
                        if skip:
                            if len(chunk) <= skip:
                                skip -= len(chunk)
                                continue
                            chunk, skip = chunk[skip:], 0
                        if chunk:
                            offset += len(chunk)
                            if offset > bound:  # checked before the bytes go on: none past it is used
                                raise self._past_bound(offset, bound, why)
                            if not progressed:
                                progressed, failures = True, 0
                                self.made_progress()
                            yield chunk
                known = total if total is not None else self.size
                if (
                    stream.window is None  # the rest of the file came at once
                    or (known is not None and offset >= known)
                    or (continuation and total is None and received < stream.window)  # the last window
                ):
                    break
                if continuation and not progressed:
                    raise TransferIntegrityError(f"{self.name}: the window from byte {offset} on brought no new byte")
                continuation = True
            except (TransferError, LimitExceeded):
                raise
            except Exception as exc:
                if continuation and total is None and getattr(exc, "http_status", None) == 416:
                    break  # an unknown total, and no byte past the last window: the end
                continuation = False
                if cancellation is not None:
                    cancellation.check()  # a cut made by the cancellation is not a failure to retry
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
                delay = min(8.0, 0.25 * 2 ** (failures - 1))
                if cancellation is not None:
                    cancellation.wait(delay)
                else:
                    time.sleep(delay)
        expected = total if total is not None else self.size
        if expected is not None and offset != expected:
            raise TransferIntegrityError(f"{self.name}: received {offset} bytes, expected {expected}")
        self._check_size(offset, "received")

    def _position(
        self, stream: OpenedStream | ByteStream, offset: int, total: int | None, validator: str | None
    ) -> int:
        """How many leading bytes of ``stream`` (a reopened file, or a later window) are already
        read; raise if it is not the same file."""
        if offset == 0:
            if stream.start != 0:
                raise TransferIntegrityError(
                    f"{self.name}: asked for byte 0, the server sent from {stream.start}"
                )
            return 0
        if stream.validator and validator and stream.validator != validator:
            raise SourceChanged(
                f"{self.name} changed at the source while it was read (version {validator} became {stream.validator})"
            )
        if stream.total_size is not None and total is not None and stream.total_size != total:
            raise SourceChanged(
                f"{self.name} changed at the source while it was read (size {total} became {stream.total_size})"
            )
        if stream.start == offset:
            return 0
        if stream.start == 0:
            # The whole file again, of the same version (the server ignored Range): skip what we have.
            return offset
        raise TransferIntegrityError(
            f"{self.name}: asked for the bytes from {offset} on, the server sent them from {stream.start}"
        )


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
    """A file behind an HTTP URL, downloaded through the provider's :class:`HttpClient`.

    :param client: the vendor's HTTP client (auth for Data Access downloads, none for presigned URLs).
    :param name: path relative to the destination prefix.
    :param size: listed size in bytes, or ``None``.
    :param url_resolver: returns the file's current URL. Called before the first read when no
        ``url`` is given, and again when a URL has expired (403, or past its presigned expiry):
        the vendor layer fetches fresh URLs from the vendor there.
    :param url: the URL already at hand from the listing, to save one call to the resolver.
    :param size_range: see :class:`SourceFile`.
    :param window: read the file in ranged requests of at most this many bytes each, one after
        another, for servers that bound how long one answer may take (Adobe Data Access: 60 s);
        each window is checked as a resume is (:meth:`iter_bytes`). ``None``: one request.
    """

    # a URL this close to expiry is refreshed before use rather than after a 403
    EXPIRY_MARGIN_S = 5.0
    #: how many fresh URLs in a row may fail to deliver a byte before the transfer gives up; any
    #: byte that arrives restores the allowance, so a long download whose URLs keep expiring goes
    #: on as long as it makes progress
    max_url_refreshes = 3

    def __init__(
        self,
        client: HttpClient,
        name: str,
        size: int | None,
        url_resolver: Callable[[], str],
        *,
        url: str | None = None,
        size_range: tuple[int, int] | None = None,
        attributes: Mapping[str, Any] | None = None,
        window: int | None = None,
    ) -> None:
        super().__init__(name, size, size_range=size_range, attributes=attributes)
        if window is not None and window < 1:
            raise ValueError("window must be at least 1 byte")
        self.window = window
        self._http = client
        self._resolve = url_resolver
        self._url = url
        self._refreshes_left = self.max_url_refreshes
        self._stopped = threading.Event()  # set by interrupt(): no request of this file is retried

    def _current_url(self) -> str:
        if self._url is None:
            self._url = self._resolve()
        expiry = presigned_expiry(self._url)
        if expiry is not None and expiry - self.EXPIRY_MARGIN_S <= time.time():
            self._refresh_url("past its expiry")
        return self._url

    def _refresh_url(self, why: str) -> None:
        if self._refreshes_left <= 0:
            raise TransferError(
                f"{self.name}: {self.max_url_refreshes} fresh download URLs in a row expired "
                "before delivering a byte; giving up"
            )
        self._refreshes_left -= 1
        old = self._url
        self._url = self._resolve()
        log.info(
            "%s: download URL %s (%s); fetched a fresh one from the vendor",
            self.name,
            "expired" if old else "missing",
            why,
        )

    @contextmanager
    def open(
        self, offset: int, chunk_size: int = DEFAULT_CHUNK_SIZE, *, if_range: str | None = None
    ) -> Iterator[OpenedStream]:
        length = None if self.window is None else self._window_length(offset)
        with self._http.stream(
            self._current_url(),
            offset=offset,
            length=length,
            if_range=if_range,
            stop=self._stopped,
        ) as body:
            yield OpenedStream(
                body.iter_bytes(chunk_size),
                body.total_size,
                start=body.start,
                validator=body.validator,
                window=length if body.status_code == 206 else None,
            )

    def _window_length(self, position: int) -> int | None:
        """The bytes a windowed read asks for from ``position``; ``None`` for an empty file (no
        ``Range`` then)."""
        assert self.window is not None
        known = self.announced_size if self.announced_size is not None and position else self.size
        if known is None:
            return self.window
        return min(self.window, known - position) if known > position else None

    def resumable(self, exc: BaseException) -> bool:
        # 401 is the core's to handle; 403 is what an expired presigned URL answers.
        if isinstance(exc, VendorAuthError):
            return exc.http_status == 403  # a fresh URL may help; ``_refresh_url`` bounds how often
        return isinstance(exc, VendorConnectionError)

    def before_retry(self, exc: BaseException) -> None:
        if isinstance(exc, VendorAuthError):
            self._refresh_url(f"HTTP {exc.http_status} from {exc.url}")

    def made_progress(self) -> None:
        self._refreshes_left = self.max_url_refreshes

    def interrupt(self) -> None:
        self._stopped.set()
        self._http.interrupt()
