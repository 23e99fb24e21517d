"""Ids and listings where the vendor hooks meet outside input (issue 16, "Untrusted edges").

An id (from a DAG, XCom, or a vendor's own answer) is checked against its vendor's format, and
reaches a URL path only through :func:`api_path`, which escapes it as one path segment: an id can
never name another resource. A vendor's answer is read field by field through :class:`Answer`, which
names the field it got otherwise than documented. A paged listing reads at most ``[exports] max_pages`` pages
(:class:`PageBudget`), a listing that follows directories at most ``[exports] max_listing_depth``
levels of them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from airflow_provider_exports.exceptions import ExportConfigError, VendorAPIError
from airflow_provider_exports.hooks._answers import redact_url
from airflow_provider_exports.hooks._base import ExportsVendorHook
from airflow_provider_exports.utils import limits

# What URL normalisation resolves even when escaped (RFC 3986 §5.2.4 removes "." and ".." segments).
_DOT_SEGMENTS = frozenset({"", ".", ".."})


@dataclass(frozen=True)
class IdFormat:
    """One kind of vendor id: the pattern every such id matches, and what to call it in an error."""

    pattern: re.Pattern[str]
    #: e.g. "a Cordial job id (24 hexadecimal digits, such as 548817d0367df1ef518b4567)"
    description: str

    def check(self, value: Any, field_name: str) -> str:
        """``value`` (a string, or a whole number) as an id of this format, else
        :class:`ExportConfigError` naming ``field_name`` and the format."""
        text = str(value) if isinstance(value, (str, int)) and not isinstance(value, bool) else None
        if text is None or not self.pattern.fullmatch(text):
            raise ExportConfigError(field_name, f"{value!r} is not {self.description}")
        return text


def unusable_answer(
    vendor: str, message: str, *, url: str, method: str = "GET", status_code: int = 200
) -> VendorAPIError:
    """An answer of a successful status that says nothing usable (the URL without its query)."""
    return VendorAPIError(
        vendor, status_code=status_code, error_key=None, message=message, method=method, url=redact_url(url)
    )


@dataclass(frozen=True)
class Answer:
    """What ``vendor`` answered to a GET of ``url`` (``what``: "the job's output"), read field by
    field: a value not as documented raises :class:`VendorAPIError` (HTTP 200) naming the field,
    never a ``KeyError`` or ``TypeError``; the URL only without its query."""

    vendor: str
    url: str
    what: str

    def wrong(self, problem: str) -> VendorAPIError:
        return unusable_answer(self.vendor, f"{self.what} is not as documented: {problem}", url=self.url)

    def record(self, body: Any, *, objects: Sequence[str] = (), lists: Sequence[str] = ()) -> dict[str, Any]:
        """``body`` as an object whose fields ``objects`` are objects and ``lists`` lists, where given."""
        if not isinstance(body, Mapping):
            raise self.wrong("it is not an object")
        for key in objects:
            if body.get(key) is not None and not isinstance(body[key], Mapping):
                raise self.wrong(f"{key} is not an object")
        for key in lists:
            if body.get(key) is not None and not isinstance(body[key], list):
                raise self.wrong(f"{key} is not a list")
        return dict(body)

    def text(self, value: Any, name: str, default: str | None = None) -> str:
        """A non-empty string, or ``default`` for a missing one (none: required)."""
        if value is None and default is not None:
            return default
        if not isinstance(value, str) or not value:
            raise self.wrong(f"{name} is {describe(value)}, not text")
        return value

    def size(self, value: Any, name: str) -> int:
        """A whole number of zero or more (or its digits as text); 0 when missing."""
        if value is None or (isinstance(value, int) and not isinstance(value, bool) and value >= 0):
            return value or 0
        if isinstance(value, str) and value.isdigit():
            return int(value)
        raise self.wrong(f"{name} is {describe(value)}, not a size")


def describe(value: Any) -> str:
    """What a vendor's JSON value is, for an error: its type, or its first 40 characters (not a
    text with a query, which may be a presigned URL's credential)."""
    if isinstance(value, str):
        return f"the text {value[:40]!r}" if "?" not in value else "a text"
    return "missing" if value is None else f"a JSON {type(value).__name__}"


def api_path(template: str, **segments: str) -> str:
    """``template`` with each ``{name}`` replaced by its (checked) id escaped as one path segment.

    Escaping is the second line behind each id's format check: a ``/``, ``?``, ``#`` or ``%`` that
    got through would stay inside its segment. A segment that URL normalisation would resolve
    (empty, ``.``, ``..``) is refused outright.
    """
    for name, value in segments.items():
        if value in _DOT_SEGMENTS:
            raise ExportConfigError(name, f"{value!r} cannot name a resource in a URL path")
    return template.format(**{name: quote(value, safe="") for name, value in segments.items()})


class PageBudget:
    """The pages one listing may read (``[exports] max_pages``); shared by a listing's recursion.
    ``what`` names the listing in the error: ``<vendor> GET <url without query>``."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.limit = limits.PAGES.value
        self.read = 0

    @classmethod
    def of(cls, hook: ExportsVendorHook[Any], path: str) -> PageBudget:
        return cls(f"{hook.vendor} GET {redact_url(hook.url(path))}")

    def spend(self) -> None:
        """Count the next page, before it is requested; past the bound, ``LimitExceeded``."""
        if self.read >= self.limit:
            raise limits.PAGES.exceeded(
                self.what, f"{self.read:,} pages read and the listing goes on", self.limit
            )
        self.read += 1


def check_depth(what: str, depth: int) -> None:
    """Refuse a directory ``depth`` levels below a listing's start past ``[exports] max_listing_depth``."""
    bound = limits.LISTING_DEPTH.value
    if depth > bound:
        raise limits.LISTING_DEPTH.exceeded(what, f"a directory {depth} levels deep", bound)
