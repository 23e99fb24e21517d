"""What every vendor hook shares, checked for each vendor against its sandbox: no secret in ``repr``,
and a connection test (the UI's Test button) that obtains credentials and reads from the API host.
"""

from __future__ import annotations

import base64
import json
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from airflow_provider_exports.exceptions import VendorNotFoundError
from airflow_provider_exports.hooks._base import ExportsVendorHook
from airflow_provider_exports.hooks._http import TOKENS, RetryPolicy
from airflow_provider_exports.hooks.adobe_experience_platform import AdobeExperiencePlatformHook
from airflow_provider_exports.hooks.cordial import CordialHook
from airflow_provider_exports.hooks.sitecore_cdp import SitecoreCDPHook

FAST = RetryPolicy(max_attempts=3, backoff_initial=0.01, backoff_max=0.05)


@dataclass(frozen=True)
class Vendor:
    """One vendor as these tests see it.

    :ivar read: an authenticated read of something that does not exist (a 404).
    :ivar api_host_extra: the extra that names the API host (not the token host).
    :ivar test_path: the path the connection test reads on the API host.
    :ivar refusal: the vendor's own message for a wrong secret.
    """

    hook_class: type[ExportsVendorHook[Any]]
    sandbox_attr: str
    read: Callable[[Any], object]
    api_host_extra: str
    test_path: str
    refusal: str

    def server(self, sandbox: Any) -> Any:
        return getattr(sandbox, self.sandbox_attr)

    def hook_for(self, monkeypatch: pytest.MonkeyPatch, conn: dict[str, Any]) -> ExportsVendorHook[Any]:
        monkeypatch.setenv("AIRFLOW_CONN_UNDER_TEST", json.dumps(conn))
        return self.hook_class("under_test", retry=FAST)


VENDORS = {
    "sitecore": Vendor(
        SitecoreCDPHook,
        "sitecore",
        lambda hook: hook.get_latest_export("no_such_export"),
        "api_host",
        "/v2/audienceExports/definitions/*/reports",
        "Unauthorized",
    ),
    "cordial": Vendor(
        CordialHook,
        "cordial",
        lambda hook: hook.get_job("0" * 24),
        "api_host",
        "/v2/jobs",
        "Access Denied: Authentication Failure",
    ),
    "adobe": Vendor(
        AdobeExperiencePlatformHook,
        "adobe",
        lambda hook: hook.get_export_job(1),
        "platform_host",
        "/data/core/ups/export/jobs",
        "invalid client_id or client_secret",
    ),
}


@pytest.fixture(params=sorted(VENDORS))
def vendor(request: pytest.FixtureRequest) -> Vendor:
    return VENDORS[request.param]


def test_no_secret_or_token_in_repr(sandbox, vendor):
    secret = vendor.server(sandbox).connection()["password"]
    hook = vendor.hook_class(retry=FAST)
    with pytest.raises(VendorNotFoundError):  # authenticated: settings, core, auth, token are cached
        vendor.read(hook)
    tokens = [t.value for t in TOKENS._tokens.values()]
    basic = base64.b64encode(f"{secret}:".encode()).decode()  # Cordial's Authorization value
    shown = {
        "hook": repr(hook),
        "vars(hook)": repr(vars(hook)),
        "settings": repr(hook.settings),
        "auth": repr(hook.core.auth),
        "core": repr(hook.core),
        "token cache": repr(list(TOKENS._tokens.values())),
    }
    for name, text in shown.items():
        for hidden in (secret, basic, *tokens):
            assert hidden not in text, f"{name} shows a secret: {text}"


# -- test_connection -------------------------------------------------------------------------------


def closed_loopback_url() -> str:
    """``http://127.0.0.1:PORT`` where nothing listens (the port was free a moment ago)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def test_connection_test_obtains_credentials_and_reads_from_the_api_host(sandbox, vendor, monkeypatch):
    server = vendor.server(sandbox)
    hook = vendor.hook_for(monkeypatch, server.connection())

    ok, message = hook.test_connection()

    assert (ok, message) == (True, f"Connected to {vendor.hook_class.vendor}")
    assert [r.status for r in server.requests_to(vendor.test_path, "GET")] in ([200], [404])


def test_connection_test_with_a_wrong_secret_says_what_the_vendor_said(sandbox, vendor, monkeypatch):
    conn = vendor.server(sandbox).connection() | {"password": "wrong-secret-value"}
    hook = vendor.hook_for(monkeypatch, conn)

    ok, message = hook.test_connection()

    assert ok is False
    assert vendor.refusal in message
    assert "wrong-secret-value" not in message


def test_connection_test_with_the_api_host_on_a_closed_port_fails_naming_it(sandbox, vendor, monkeypatch):
    conn = vendor.server(sandbox).connection()  # the token host stays the working sandbox
    closed = closed_loopback_url()
    conn["extra"] = {**conn["extra"], vendor.api_host_extra: closed}
    hook = vendor.hook_for(monkeypatch, conn)

    ok, message = hook.test_connection()

    assert ok is False
    assert closed.removeprefix("http://") in message and vendor.test_path.split("*")[0] in message
    assert "?" not in message and conn["password"] not in message
