"""What the three vendor hooks share: a lazily resolved connection and one :class:`HttpClient`.

A vendor hook is its connection settings (parsed and checked in one function), its auth scheme
and its endpoints. The connection is not touched in ``__init__``: sync code resolves it on first
use through ``get_connection``, async code (triggers) through the async connection API, and both
fill the same cache slot. Inside an event loop nothing here reads a connection synchronously:
common-compat's ``get_async_connection`` uses ``BaseHook.aget_connection`` where it masks without
blocking (Airflow 3.3.2+), else the synchronous lookup in a worker thread (3.1, 3.2).

Every hook of one connection on one event loop (the triggerer's) shares one async client and one
rate limiter, found by the share key ``conn_type/conn_id/<digest>``: the digest is a keyed hash
(a random key per process) of the connection's fields, so an edited connection gets new ones and
the key, which may be logged, reveals nothing of the secret.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import time
from abc import abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any, ClassVar, Generic, Literal, TypeVar, Unpack
from urllib.parse import urlsplit

from airflow.providers.common.compat.sdk import BaseHook

from airflow_provider_exports.exceptions import (
    DeadlineExceeded,
    ExportConfigError,
    VendorAPIError,
    VendorConnectionError,
)
from airflow_provider_exports.hooks._answers import json_body, redact_url
from airflow_provider_exports.hooks._auth import AuthScheme
from airflow_provider_exports.hooks._call import CallOptions
from airflow_provider_exports.hooks._clients import ASYNC_REQUESTS_PER_SECOND
from airflow_provider_exports.hooks._guard import HostGuard, is_loopback_host, parse_allowed_hosts
from airflow_provider_exports.hooks._http import HttpClient
from airflow_provider_exports.hooks._retry import RetryPolicy

SettingsT = TypeVar("SettingsT")
T = TypeVar("T")
_FINGERPRINT_KEY = os.urandom(32)
#: the connection test's call, its token included, ends within this many seconds
CONNECTION_TEST_SECONDS = 10.0
#: a person waits for the Test button: one quick retry, not the five a task gets
CONNECTION_TEST_RETRY = RetryPolicy(max_attempts=2, backoff_initial=0.5, backoff_max=0.5)

#: why a connection test failed, for the vendor's hint: the token host refused the credentials,
#: the API host refused the request (after a token was issued, where there is one), or a host
#: could not be reached
ConnectionFailure = Literal["credentials_refused", "api_refused", "auth_unreachable", "api_unreachable"]


@dataclass(frozen=True)
class AccessCheck:
    """The vendor's cheapest authenticated read on its API host, made by the connection test;
    ``expected``: the statuses that prove the API host accepted the credentials."""

    path: str
    params: Mapping[str, str] | None = None
    expected: tuple[int, ...] = (200,)


class FieldProblems:
    """Every problem of a connection's fields, so that one error names all of them, not the first."""

    def __init__(self) -> None:
        self.found: list[tuple[str, str]] = []

    def add(self, field: str, problem: str) -> None:
        self.found.append((field, problem))

    def check(self, work: Callable[[], T]) -> T | None:
        """``work()``'s value, or ``None`` with its ``ExportConfigError`` problems kept."""
        try:
            return work()
        except ExportConfigError as exc:
            self.found.extend(exc.problems)
            return None

    def raise_any(self) -> None:
        if self.found:
            (field, problem), *more = self.found
            raise ExportConfigError(field, problem, more=more)


def normalise_host(value: str, field: str) -> str:
    """``api.cordial.io`` or ``https://api.cordial.io/`` → ``https://api.cordial.io``.

    A host that gets credentials (a token request, an API key, a bearer token): ``https`` (a bare
    host gets it), or plain ``http`` for a loopback address alone (a local sandbox on
    ``http://127.0.0.1:PORT``); no user info, query or fragment. The error never repeats the value
    (user info would be a password).
    """
    value = (value or "").strip().rstrip("/")
    if not value:
        raise ExportConfigError(field, "is empty; give a host name or a URL")
    if "://" not in value:
        value = f"https://{value}"
    parts = urlsplit(value)
    scheme = parts.scheme.lower()
    if scheme not in ("https", "http"):
        raise ExportConfigError(field, f"scheme {scheme!r} is not allowed; use https")
    if "@" in parts.netloc:
        raise ExportConfigError(
            field, "holds user info (name:password@); give credentials in the connection's fields, never in a URL"
        )
    if parts.query or parts.fragment or value.endswith(("?", "#")):
        raise ExportConfigError(field, "has a query string or fragment; give the scheme, host, port and path only")
    try:
        host, _port = parts.hostname, parts.port
    except ValueError:
        raise ExportConfigError(field, "has a port that is not a number from 1 to 65535") from None
    if not host:
        raise ExportConfigError(field, "names no host; give a host name or a URL")
    if scheme == "http" and not is_loopback_host(host):
        raise ExportConfigError(
            field,
            f"plain http to {host} would send credentials unencrypted; use https (http is allowed for a "
            "loopback sandbox only: 127.0.0.1, ::1, localhost)",
        )
    return value


class ExportsVendorHook(BaseHook, Generic[SettingsT]):
    """Base of the vendor hooks: connection settings, one HTTP core, JSON calls sync and async.

    :param conn_id: the Airflow connection id.
    :param timeout: seconds for connect, read and write of each request.
    :param retry: retry policy for every call (default: 5 attempts, jittered backoff, Retry-After).
    """

    vendor: ClassVar[str]
    conn_name_attr: ClassVar[str]
    default_conn_name: ClassVar[str]
    conn_type: ClassVar[str]
    hook_name: ClassVar[str]
    #: the async rate cap of one connection on one event loop (see ``ASYNC_REQUESTS_PER_SECOND``)
    max_requests_per_second: ClassVar[float | None] = ASYNC_REQUESTS_PER_SECOND

    def __init__(self, conn_id: str, *, timeout: float = 60.0, retry: RetryPolicy | None = None) -> None:
        super().__init__()
        self.conn_id = conn_id
        setattr(self, self.conn_name_attr, conn_id)
        self.timeout = timeout
        self.retry = retry

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # Airflow 3.1 takes a hook's form only from a get_ui_field_behaviour in the hook class's own
        # __dict__ (providers_manager._import_hook), never an inherited one: give each vendor hook its own.
        if "conn_type" in vars(cls) and "get_ui_field_behaviour" not in vars(cls):
            cls.get_ui_field_behaviour = vars(ExportsVendorHook)["get_ui_field_behaviour"]  # type: ignore[method-assign]

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """The connection form for Airflow older than 3.2, from the provider info newer ones read."""
        from airflow_provider_exports.get_provider_info import get_provider_info

        entry = next(
            c for c in get_provider_info()["connection-types"] if c["connection-type"] == cls.conn_type
        )
        behaviour = entry["ui-field-behaviour"]
        return {
            "hidden_fields": list(behaviour["hidden-fields"]),
            "relabeling": dict(behaviour["relabeling"]),
            "placeholders": dict(behaviour["placeholders"]),
        }

    # -- what each vendor defines

    @classmethod
    @abstractmethod
    def settings_from_connection(
        cls, login: str | None, password: str | None, extras: Mapping[str, Any]
    ) -> SettingsT:
        """Parse and check the connection's fields; raise ``ExportConfigError`` naming the field."""

    @abstractmethod
    def auth_scheme(self, settings: SettingsT) -> AuthScheme:
        """The auth scheme built from checked settings."""

    @abstractmethod
    def base_url(self, settings: SettingsT) -> str:
        """The API's base URL built from checked settings."""

    # -- connection, sync and async, one cache slot

    @cached_property
    def settings(self) -> SettingsT:
        conn = self.get_connection(self.conn_id)
        return self._settings_of(conn.login, conn.password, conn.extra_dejson)

    async def asettings(self) -> SettingsT:
        """Resolve the connection through the async API (never the sync one inside an event loop)."""
        if "settings" not in self.__dict__:
            from airflow.providers.common.compat.connection import (
                get_async_connection,
                get_async_extra_dejson,
            )

            conn = await get_async_connection(self.conn_id, hook=self)
            extras = await get_async_extra_dejson(conn)
            self.__dict__["settings"] = self._settings_of(conn.login, conn.password, extras)
        return self.settings

    def _settings_of(self, login: str | None, password: str | None, extras: Mapping[str, Any]) -> SettingsT:
        material = json.dumps([login, password, extras], sort_keys=True, default=str).encode()
        self._fingerprint = hmac.new(_FINGERPRINT_KEY, material, hashlib.sha256).hexdigest()[:16]
        # extras by their plain names, also where a form stored them as extra__<type>__<name>
        prefix = f"extra__{self.conn_type}__"
        plain = {
            k.removeprefix(prefix): v for k, v in extras.items() if k.startswith(prefix) and v not in ("", None)
        }
        plain.update({k: v for k, v in extras.items() if not k.startswith(prefix)})
        settings = self.settings_from_connection(login, password, plain)
        parse_allowed_hosts(plain.get("allowed_hosts"))  # a bad entry fails here, naming the extra
        self._allowed_hosts = plain.get("allowed_hosts")
        return settings

    @cached_property
    def guard(self) -> HostGuard:
        """Where this connection's requests may go: its own API and token hosts, what its
        ``allowed_hosts`` extra names, and public https hosts (docs/security.md)."""
        settings = self.settings
        own = [self.base_url(settings), getattr(self.auth_scheme(settings), "token_url", None)]
        return HostGuard.for_connection(self.vendor, own, self._allowed_hosts)

    @property
    def share_key(self) -> str:
        """What the async client and rate limiter are shared by: the connection, never a secret."""
        return f"{self.conn_type}/{self.conn_id}/{getattr(self, '_fingerprint', '-')}"

    @cached_property
    def http(self) -> HttpClient:
        settings = self.settings
        return HttpClient(
            self.vendor,
            auth=self.auth_scheme(settings),
            timeout=self.timeout,
            retry=self.retry,
            share_key=self.share_key,
            max_requests_per_second=self.max_requests_per_second,
            guard=self.guard,
            refusal_hint=self.refusal_hint,
        )

    async def ahttp(self) -> HttpClient:
        await self.asettings()
        return self.http

    def url(self, path: str) -> str:
        return self.base_url(self.settings) + path

    # -- JSON calls

    def call(self, method: str, path: str, **options: Unpack[CallOptions]) -> Any:
        """Call ``path`` on the vendor API and return the JSON body (``None`` when empty); ``options``
        as :class:`~._call.Call` takes them."""
        return json_body(self.http.request(method, self.url(path), **options), self.vendor)

    async def acall(self, method: str, path: str, **options: Unpack[CallOptions]) -> Any:
        """:meth:`call` on the event loop, for triggers."""
        http = await self.ahttp()
        return json_body(await http.arequest(method, self.url(path), **options), self.vendor)

    def close(self) -> None:
        if "http" in self.__dict__:
            self.http.close()

    async def aclose(self) -> None:
        if "http" in self.__dict__:
            await self.http.aclose()

    # -- the connection test (the UI's Test button, POST /api/v2/connections/test, airflow connections test)

    #: the vendor's cheapest authenticated read on its API host: a token alone proves nothing about it
    access_check: ClassVar[AccessCheck]

    @abstractmethod
    def connection_hint(self, settings: SettingsT, failure: ConnectionFailure) -> str:
        """What to check when the connection test failed so, naming the connection's fields."""

    def check_access(self, *, client: HttpClient | None = None, deadline: float | None = None) -> None:
        """Obtain credentials (a token, where there is one) and make :attr:`access_check`'s read."""
        check = self.access_check
        (client or self.http).request(
            "GET", self.url(check.path), params=check.params, expected=check.expected, deadline=deadline
        )

    def refusal_hint(self, exc: VendorAPIError) -> str:
        """What to check when a task's API call was refused (a :class:`VendorRefused`, never
        retried): the connection test's hint for the host that refused it."""
        settings = self.settings
        failure = _refused_where(exc, _token_place(self.auth_scheme(settings)))
        hint = f"connection {self.conn_id!r}: {self.connection_hint(settings, failure)}"
        if failure == "api_refused" and exc.http_status in (400, 404):
            # What is missing or malformed is more often in the task's arguments than the connection.
            hint = f"check the task's arguments; if they are right, {hint}"
        return f"Not retried, the same call would be refused again; {hint}"

    def test_connection(self) -> tuple[bool, str]:
        """Check the connection's fields, obtain credentials and make one read on the API host.

        The call (token included) gets one quick retry and ends within
        :data:`CONNECTION_TEST_SECONDS`. The message names the host that failed and what to check;
        it never holds a secret (errors carry no secret, hints name fields and hosts only).
        """
        try:
            settings = self.settings
        except Exception as exc:  # bad fields (all of them named), or no such connection
            return False, str(exc)
        auth = self.auth_scheme(settings)
        client = HttpClient(
            self.vendor,
            auth=auth,
            timeout=CONNECTION_TEST_SECONDS,
            retry=CONNECTION_TEST_RETRY,
            guard=self.guard,
        )
        try:
            self.check_access(client=client, deadline=time.time() + CONNECTION_TEST_SECONDS)
        except Exception as exc:
            return False, self._connection_failure(settings, exc, auth)
        finally:
            client.close()
        return True, f"Connected to {self.vendor}: credentials accepted, {self.base_url(settings)} answered"

    def _connection_failure(self, settings: SettingsT, exc: Exception, auth: AuthScheme) -> str:
        # Which stage failed: the token request (where there is one) or the read on the API host.
        token_place = _token_place(auth)
        if isinstance(exc, DeadlineExceeded):
            if "last answer" in exc.reason:  # it answered (a 429 asking for a long wait, a 5xx)
                return f"{exc.what}: {exc.reason}"
            at_token = token_place is not None and token_place in exc.what
            failure: ConnectionFailure = "auth_unreachable" if at_token else "api_unreachable"
            text = f"{exc.what}: no answer within {CONNECTION_TEST_SECONDS:.0f} s"
        elif isinstance(exc, VendorAPIError):
            if isinstance(exc, VendorConnectionError):
                failure = "auth_unreachable" if exc.url == token_place else "api_unreachable"
            elif exc.http_status is not None and 400 <= exc.http_status < 500 and exc.http_status != 429:
                failure = _refused_where(exc, token_place)
            else:  # a 5xx or a 429 after the retry: the vendor's own words say it
                return str(exc)
            text = str(exc)
        else:
            return f"{type(exc).__name__}: {exc}"
        return f"{text}. {self.connection_hint(settings, failure)}"


def _token_place(auth: AuthScheme) -> str | None:
    """Where the auth scheme asks for tokens (``scheme://host/path``), if it does."""
    token_url = getattr(auth, "token_url", None)
    return redact_url(token_url) if token_url else None


def _refused_where(exc: VendorAPIError, token_place: str | None) -> ConnectionFailure:
    """Which host refused: the token host (the credentials) or the API host (after a token, if any)."""
    return "credentials_refused" if token_place is not None and exc.url == token_place else "api_refused"
