"""What every vendor hook shares, checked for each vendor against its sandbox: no secret in ``repr``."""

from __future__ import annotations

import base64
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
    """One vendor as these tests see it: its hook, its sandbox and an authenticated read of
    something that does not exist (a 404)."""

    hook_class: type[ExportsVendorHook[Any]]
    sandbox_attr: str
    read: Callable[[Any], object]

    def server(self, sandbox: Any) -> Any:
        return getattr(sandbox, self.sandbox_attr)


VENDORS = {
    "sitecore": Vendor(SitecoreCDPHook, "sitecore", lambda hook: hook.get_latest_export("no_such_export")),
    "cordial": Vendor(CordialHook, "cordial", lambda hook: hook.get_job("0" * 24)),
    "adobe": Vendor(AdobeExperiencePlatformHook, "adobe", lambda hook: hook.get_export_job(1)),
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
