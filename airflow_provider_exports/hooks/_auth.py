"""How a vendor authenticates, written once for both drivers: the headers of an attempt, the token
cache behind OAuth client credentials, and what a 401 proves stale.

A token fetch is a call of its own (:class:`~._call.SubCall`: the deadline of the call it serves),
one at a time per credential (:class:`~._call.OneAtATime`), and the token it brings is masked
(:class:`~._call.MaskSecret`) before anything else can see it.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field

from airflow_provider_exports.exceptions import VendorAuthError
from airflow_provider_exports.hooks._answers import redact_url
from airflow_provider_exports.hooks._call import Call, Flow, MaskSecret, OneAtATime, SubCall

log = logging.getLogger(__name__)


class AuthScheme(ABC):
    """How a vendor authenticates: the headers to add, and what to do about a 401."""

    @abstractmethod
    def headers(self, call: Call) -> Flow[dict[str, str]]:
        """The auth headers of one attempt of ``call`` (fetching a token counts against its deadline)."""

    def refresh_after_401(self, sent_headers: Mapping[str, str]) -> bool:
        """Forget credentials that a 401 proved stale; ``True`` if one retry with new ones makes sense."""
        return False


@dataclass(frozen=True)
class BasicAuth(AuthScheme):
    """HTTP Basic with a static key (Cordial: the API key as user name, a blank password)."""

    username: str = field(repr=False)
    password: str = field(default="", repr=False)

    def headers(self, call: Call) -> Flow[dict[str, str]]:
        yield from ()  # a static header: nothing to fetch
        raw = f"{self.username}:{self.password}".encode()
        return {"Authorization": "Basic " + base64.b64encode(raw).decode("ascii")}


@dataclass
class _Token:
    value: str = field(repr=False)
    refresh_at: float


class TokenCache:
    """Access tokens per credential, shared by every hook in the process, one fetch at a time.

    Keyed by token URL, client id, scope and a digest of the secret, so two connections with the
    same credentials share a token and a rotated secret gets a new one. A token is refreshed ahead
    of its expiry by a tenth of its lifetime (at most five minutes), and dropped when a 401 shows it
    stale.
    """

    def __init__(self) -> None:
        self._tokens: dict[tuple[str, ...], _Token] = {}
        self._guard = threading.Lock()

    def current(self, key: tuple[str, ...]) -> str | None:
        token = self._tokens.get(key)
        if token is None or time.monotonic() >= token.refresh_at:
            return None
        return token.value

    def store(self, key: tuple[str, ...], value: str, expires_in: float) -> None:
        margin = min(300.0, expires_in * 0.1)
        self._tokens[key] = _Token(value, time.monotonic() + max(0.0, expires_in - margin))

    def discard(self, key: tuple[str, ...], value: str) -> None:
        """Drop ``value`` if it is still the cached token (another fetch may have replaced it)."""
        with self._guard:
            token = self._tokens.get(key)
            if token is not None and token.value == value:
                del self._tokens[key]

    def clear(self) -> None:
        with self._guard:
            self._tokens.clear()


TOKENS = TokenCache()


@dataclass(frozen=True)
class ClientCredentialsAuth(AuthScheme):
    """OAuth 2.0 client credentials (Sitecore CDP, Adobe IMS) with a cached bearer token.

    :param token_url: the token endpoint.
    :param form: the form fields of the token request (``grant_type``, ``client_id``, secret, ...);
        left out of ``repr``, since it holds the secret.
    :param extra_headers: headers sent on every API call besides ``Authorization`` (Adobe's
        ``x-api-key``, ``x-gw-ims-org-id``, ``x-sandbox-name``).
    """

    token_url: str
    form: Mapping[str, str] = field(repr=False)
    extra_headers: Mapping[str, str] = field(default_factory=dict)

    @property
    def cache_key(self) -> tuple[str, ...]:
        secret_digest = hashlib.sha256(repr(sorted(self.form.items())).encode()).hexdigest()[:16]
        return (self.token_url, self.form.get("client_id", ""), self.form.get("scope", ""), secret_digest)

    def headers(self, call: Call) -> Flow[dict[str, str]]:
        token = TOKENS.current(self.cache_key)
        if token is None:
            token = yield OneAtATime(self.cache_key, self._fetch(call))
        return {"Authorization": f"Bearer {token}", **self.extra_headers}

    def _fetch(self, call: Call) -> Flow[str]:
        """A new token for ``call`` (one fetch per credential at a time: another may have just brought one)."""
        token = TOKENS.current(self.cache_key)
        if token is not None:
            return token
        response = yield SubCall(
            Call(
                call.vendor,
                "POST",
                self.token_url,
                data=dict(self.form),
                idempotent=True,
                deadline=call.deadline,
                authenticate=False,
            )
        )
        body = response.json()
        token = body.get("access_token") if isinstance(body, Mapping) else None
        if not token:
            raise VendorAuthError(
                call.vendor,
                status_code=response.status_code,
                error_key=None,
                message="the token response carries no access_token",
                method="POST",
                url=redact_url(self.token_url),
            )
        token = str(token)
        yield MaskSecret(token)
        expires_in = body.get("expires_in")
        TOKENS.store(self.cache_key, token, float(expires_in or 3600))
        log.info("%s: obtained an access token (expires in %s s)", call.vendor, expires_in)
        return token

    def refresh_after_401(self, sent_headers: Mapping[str, str]) -> bool:
        TOKENS.discard(self.cache_key, sent_headers.get("Authorization", "").removeprefix("Bearer "))
        return True
