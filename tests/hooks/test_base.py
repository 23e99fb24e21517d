"""What every vendor hook shares, checked for each vendor against its sandbox: no secret in ``repr``,
and a connection test (the UI's Test button) that obtains credentials and reads from the API host,
tried with good credentials, a bad secret, an unreachable API host and a wrong region.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import AirflowFailException

from airflow_provider_exports.exceptions import (
    VendorAuthError,
    VendorAuthRefused,
    VendorNotFoundError,
    VendorNotFoundRefused,
    VendorServerError,
)
from airflow_provider_exports.hooks._auth import TOKENS
from airflow_provider_exports.hooks._base import ExportsVendorHook
from airflow_provider_exports.hooks._retry import RetryPolicy
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
    :ivar secret_field: what the hint for a refused secret names.
    :ivar api_hint: what the hint for an unreachable API host names.
    :ivar missing: a path on the API host that answers 404.
    """

    hook_class: type[ExportsVendorHook[Any]]
    sandbox_attr: str
    read: Callable[[Any], object]
    api_host_extra: str
    test_path: str
    refusal: str
    secret_field: str
    api_hint: str
    missing: str

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
        "password (the API secret)",
        "Check extra.api_host",
        "/v2/audienceExports/definitions/no_such_export/latestExport",
    ),
    "cordial": Vendor(
        CordialHook,
        "cordial",
        lambda hook: hook.get_job("0" * 24),
        "api_host",
        "/v2/jobs",
        "Access Denied: Authentication Failure",
        "password (the API key)",
        "Check extra.api_host",
        "/v2/jobs/" + "0" * 24,
    ),
    "adobe": Vendor(
        AdobeExperiencePlatformHook,
        "adobe",
        lambda hook: hook.get_export_job(1),
        "platform_host",
        "/data/core/ups/export/jobs",
        "invalid client_id or client_secret",
        "password (the client secret) and extra.scopes",
        "Check extra.platform_host",
        "/data/core/ups/export/jobs/1",
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
        "auth": repr(hook.http.auth),
        "http": repr(hook.http),
        "token cache": repr(list(TOKENS._tokens.values())),
    }
    for name, text in shown.items():
        for hidden in (secret, basic, *tokens):
            assert hidden not in text, f"{name} shows a secret: {text}"


# -- test_connection: four cases per vendor ---------------------------------------------------------


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

    assert (ok, message) == (
        True,
        f"Connected to {vendor.hook_class.vendor}: credentials accepted, {server.url} answered",
    )
    assert [r.status for r in server.requests_to(vendor.test_path, "GET")] in ([200], [404])


def test_connection_test_with_a_wrong_secret_says_what_the_vendor_said(sandbox, vendor, monkeypatch):
    conn = vendor.server(sandbox).connection() | {"password": "wrong-secret-value"}
    hook = vendor.hook_for(monkeypatch, conn)

    ok, message = hook.test_connection()

    assert ok is False
    assert vendor.refusal in message and vendor.secret_field in message
    assert "wrong-secret-value" not in message


def test_connection_test_with_the_api_host_on_a_closed_port_fails_quickly_naming_it(
    sandbox, vendor, monkeypatch
):
    conn = vendor.server(sandbox).connection()  # the token host stays the working sandbox
    closed = closed_loopback_url()
    conn["extra"] = {**conn["extra"], vendor.api_host_extra: closed}
    monkeypatch.setenv("AIRFLOW_CONN_UNDER_TEST", json.dumps(conn))
    hook = vendor.hook_class("under_test")  # as Airflow builds it: the default retry policy

    started = time.monotonic()
    ok, message = hook.test_connection()
    took = time.monotonic() - started

    assert ok is False
    assert closed.removeprefix("http://") in message and vendor.test_path.split("*")[0] in message
    assert f"{vendor.api_hint} ({closed})" in message
    assert "?" not in message and conn["password"] not in message
    # A task's policy (5 attempts, backoff up to 30 s) can take a minute; the test's call has one
    # quick retry and a 10 s deadline. The bound is loose so that a busy machine cannot break it.
    assert took < 30


@pytest.mark.parametrize(("vendor_name", "extra"), [("sitecore", "auth_host"), ("adobe", "ims_host")])
def test_connection_test_with_the_token_host_on_a_closed_port_names_it(
    sandbox, vendor_name, extra, monkeypatch
):
    vendor = VENDORS[vendor_name]
    conn = vendor.server(sandbox).connection()
    closed = closed_loopback_url()
    conn["extra"] = {**conn["extra"], extra: closed}

    ok, message = vendor.hook_for(monkeypatch, conn).test_connection()

    assert ok is False
    assert f"{closed}/" in message and f"Check extra.{extra} ({closed})" in message
    assert vendor.server(sandbox).requests_to(vendor.test_path) == []  # no token, no read


def test_connection_test_of_a_host_that_does_not_answer_ends_at_its_deadline(sandbox, vendor, monkeypatch):
    from airflow_provider_exports.hooks import _base

    monkeypatch.setattr(_base, "CONNECTION_TEST_SECONDS", 1.0)
    server = vendor.server(sandbox)
    server.faults.slow(vendor.test_path, seconds=2.5, times=None)
    hook = vendor.hook_for(monkeypatch, server.connection())

    ok, message = hook.test_connection()

    assert ok is False
    assert "no answer within 1 s" in message and vendor.api_hint in message


def test_connection_test_asked_to_wait_long_says_so_at_once(sandbox, vendor, monkeypatch):
    server = vendor.server(sandbox)
    server.faults.rate_limit(vendor.test_path, times=None, retry_after="60")
    hook = vendor.hook_for(monkeypatch, server.connection())

    ok, message = hook.test_connection()

    assert ok is False
    assert "the next attempt would start in 60.0 s" in message and "last answer: HTTP 429" in message
    assert len(server.requests_to(vendor.test_path)) == 1


# The wrong region. Sitecore: the region picks the API host, and a host of another region does not
# know the tenant. Vendor is silent on what such a host answers; modelled by a second Sitecore
# sandbox (the "US" host) that refuses the tokens of the first (the tenant's "EU" host) with 401.
# Cordial has no regions but two API hosts (api.cordial.io, api.usw2.cordial.io), and an account
# lives on one: modelled by a second Cordial sandbox that knows another account's key. Adobe has no
# regions in its API hosts; the closest analogue is the sandbox name, which picks the environment
# the Platform reads: a sandbox the organization does not have is refused with 403.


@pytest.fixture(scope="module")
def other_region(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A second Sitecore and a second Cordial API host that do not know the sandbox's account."""
    from airflow_provider_exports_sandbox.cordial import CordialServer
    from airflow_provider_exports_sandbox.sitecore_cdp import SitecoreCDPServer

    cache: Path = tmp_path_factory.mktemp("other-region")
    servers = {"sitecore": SitecoreCDPServer(cache / "sitecore"), "cordial": CordialServer(cache / "cordial")}
    for server in servers.values():
        server.start()
    servers["cordial"].default_settings = {
        **servers["cordial"].default_settings,
        "api_key": "another-account",
    }
    servers["cordial"].reset()
    try:
        yield servers
    finally:
        for server in servers.values():
            server.stop()


def test_connection_test_in_the_wrong_region_says_which_field_to_check(
    sandbox, other_region, vendor, monkeypatch
):
    from airflow_provider_exports.hooks import sitecore_cdp

    conn = vendor.server(sandbox).connection()
    name = vendor.hook_class.vendor
    if vendor.hook_class is SitecoreCDPHook:
        # The regions' hosts on loopback: the tenant lives in EU (the sandbox), US is the other host.
        monkeypatch.setattr(
            sitecore_cdp, "REGION_HOSTS", {"EU": sandbox.sitecore.url, "US": other_region["sitecore"].url}
        )
        extra = {k: v for k, v in conn["extra"].items() if k != "api_host"}
        ok, message = vendor.hook_for(
            monkeypatch, conn | {"extra": extra | {"region": "EU"}}
        ).test_connection()
        assert (ok, message) == (
            True,
            f"Connected to {name}: credentials accepted, {sandbox.sitecore.url} answered",
        )
        conn["extra"] = extra | {"region": "US"}
        expected = [
            f"{name} GET {other_region['sitecore'].url}/v2/audienceExports/definitions/",
            "HTTP 401 (UNAUTHORIZED): Full authentication is required",
            "A token was issued, but the API host refused it: check extra.region (US)",
        ]
    elif vendor.hook_class is CordialHook:
        wrong = other_region["cordial"].url
        conn["extra"] = {"api_host": wrong}
        expected = [
            f"{name} GET {wrong}/v2/jobs failed: HTTP 401: Access Denied: Authentication Failure",
            f"Check password (the API key) and extra.api_host ({wrong})",
            "api.usw2.cordial.io",
        ]
    else:
        conn["extra"] = {**conn["extra"], "sandbox_name": "dev"}
        expected = [
            f"{name} GET {sandbox.adobe.url}/data/core/ups/export/jobs failed: HTTP 403",
            "Sandbox 'dev' is not available to this organization",
            "IMS issued a token, but Platform refused the request",
            "extra.sandbox_name (dev)",
        ]

    ok, message = vendor.hook_for(monkeypatch, conn).test_connection()

    assert ok is False
    for text in expected:
        assert text in message
    assert conn["password"] not in message


def test_connection_test_names_every_bad_field_without_a_request(sandbox, vendor, monkeypatch):
    server = vendor.server(sandbox)
    conn = server.connection() | {"password": ""}
    conn["extra"] = {**conn["extra"], vendor.api_host_extra: "ftp://somewhere"}
    if vendor.hook_class is SitecoreCDPHook:
        conn["extra"]["auth_host"] = "gopher://x"
    if vendor.hook_class is AdobeExperiencePlatformHook:
        conn["extra"] |= {"ims_org_id": "ABC", "sandbox_name": "Prod"}

    ok, message = vendor.hook_for(monkeypatch, conn).test_connection()

    assert ok is False
    fields = {
        SitecoreCDPHook: ["password", "extra.api_host", "extra.auth_host"],
        CordialHook: ["password", "extra.api_host"],
        AdobeExperiencePlatformHook: [
            "password",
            "extra.ims_org_id",
            "extra.sandbox_name",
            "extra.platform_host",
        ],
    }[vendor.hook_class]
    assert [line.split(":", 1)[0] for line in message.splitlines()] == fields
    assert "scheme 'ftp' is not allowed; use https" in message
    assert server.requests == []


#: every extra that names a host the connection's credentials are sent to
CREDENTIAL_HOSTS = {
    SitecoreCDPHook: ("api_host", "auth_host"),
    CordialHook: ("api_host",),
    AdobeExperiencePlatformHook: ("platform_host", "ims_host"),
}


@pytest.mark.parametrize(
    ("host", "why"),
    [
        ("http://auth.example.com", "plain http to auth.example.com"),
        ("http://10.0.0.5:8080", "plain http to 10.0.0.5"),
        ("https://admin:hunter2-secret@api.example.com", "holds user info"),
        ("https://api.example.com/v2?token=abc", "query string or fragment"),
        ("https://api.example.com/#x", "query string or fragment"),
        ("https://api.example.com:99999", "port"),
    ],
)
def test_credential_hosts_are_https_without_user_info_query_or_fragment(sandbox, vendor, monkeypatch, host, why):
    server = vendor.server(sandbox)
    for extra in CREDENTIAL_HOSTS[vendor.hook_class]:
        conn = server.connection()
        conn["extra"] = {**conn["extra"], extra: host}
        ok, message = vendor.hook_for(monkeypatch, conn).test_connection()
        assert ok is False
        assert message.startswith(f"extra.{extra}: ") and why in message
        assert "hunter2" not in message
    assert server.requests == []


@pytest.mark.parametrize("host", ["http://localhost:{port}", "http://127.0.0.1:{port}", "http://[::1]:{port}"])
def test_plain_http_is_kept_for_a_loopback_sandbox(sandbox, vendor, monkeypatch, host):
    server = vendor.server(sandbox)
    port = server.url.rsplit(":", 1)[1]
    conn = server.connection()
    conn["extra"] = {**conn["extra"], vendor.api_host_extra: host.format(port=port)}
    settings = vendor.hook_for(monkeypatch, conn).settings
    assert host.format(port=port) in repr(settings)


def test_airflow_connections_test_prints_the_vendor_error_key(sandbox, monkeypatch, capsys):
    """``airflow connections test`` prints through rich, which took ``[access_denied]`` for markup
    and printed ``HTTP 401 : Unauthorized``; the key is in parentheses now."""
    from airflow.cli import cli_parser

    def connections_test(conn_id: str) -> None:
        args = cli_parser.get_parser().parse_args(["connections", "test", conn_id])
        args.func(args)

    monkeypatch.setenv("AIRFLOW__CORE__TEST_CONNECTION", "Enabled")
    monkeypatch.setenv("_AIRFLOW_PROCESS_CONTEXT", "client")  # the command sets it; restored after
    monkeypatch.setenv("COLUMNS", "400")  # one line per message: rich wraps at the terminal's width
    good = sandbox.sitecore.connection()
    monkeypatch.setenv("AIRFLOW_CONN_SITECORE_GOOD", json.dumps(good))
    monkeypatch.setenv("AIRFLOW_CONN_SITECORE_BAD", json.dumps(good | {"password": "wrong-secret-value"}))

    connections_test("sitecore_good")
    assert "Connection success!" in capsys.readouterr().out

    with contextlib.suppress(SystemExit):  # Airflow 3.3 exits with 1 on a failed test; 3.1 does not
        connections_test("sitecore_bad")
    out = capsys.readouterr().out
    assert "Connection failed!" in out
    assert "/oauth/token failed: HTTP 401 (access_denied): Unauthorized. Check login" in out
    assert "wrong-secret-value" not in out


# -- a task's call refused: failed at once, saying what to check -----------------------------------


def call_with(driver: str, hook: ExportsVendorHook[Any], path: str) -> object:
    """``GET path`` on the hook's API host through the worker's driver or the triggerer's."""
    if driver == "sync":
        return hook.call("GET", path)
    return asyncio.run(hook.acall("GET", path))


@pytest.mark.parametrize("driver", ["sync", "async"])
def test_a_refused_secret_fails_at_once_with_the_connection_tests_hint(sandbox, vendor, monkeypatch, driver):
    server = vendor.server(sandbox)
    hook = vendor.hook_for(monkeypatch, server.connection() | {"password": "wrong-secret-value"})

    with pytest.raises(VendorAuthRefused) as err:
        call_with(driver, hook, vendor.missing)

    assert isinstance(err.value, AirflowFailException)  # Airflow fails the task without a retry
    message = str(err.value)
    assert vendor.refusal in message
    assert "Not retried, the same call would be refused again; connection 'under_test': Check " in message
    assert vendor.secret_field in message
    assert "wrong-secret-value" not in message
    assert len(server.requests) == 1  # the core did not retry it either


@pytest.mark.parametrize("driver", ["sync", "async"])
def test_a_missing_object_fails_at_once_naming_the_arguments_then_the_connection(
    sandbox, vendor, monkeypatch, driver
):
    server = vendor.server(sandbox)
    hook = vendor.hook_for(monkeypatch, server.connection())

    with pytest.raises(VendorNotFoundRefused) as err:
        call_with(driver, hook, vendor.missing)

    assert isinstance(err.value, AirflowFailException) and isinstance(err.value, VendorNotFoundError)
    message = str(err.value)
    assert f"{server.url}{vendor.missing} failed: HTTP 404" in message
    hint = hook.connection_hint(hook.settings, "api_refused")
    assert message.endswith(
        f"Not retried, the same call would be refused again; check the task's arguments; if they are "
        f"right, connection 'under_test': {hint}"
    )
    assert server.connection()["password"] not in message
    assert len(server.requests_to(vendor.missing)) == 1


@pytest.mark.parametrize("driver", ["sync", "async"])
def test_a_5xx_is_still_retried_and_not_a_refusal(sandbox, vendor, monkeypatch, driver):
    server = vendor.server(sandbox)
    hook = vendor.hook_for(monkeypatch, server.connection())
    server.faults.server_error(vendor.missing, times=None, status=503)

    with pytest.raises(VendorServerError) as err:
        call_with(driver, hook, vendor.missing)

    assert not isinstance(err.value, AirflowFailException)
    assert len(server.requests_to(vendor.missing)) == FAST.max_attempts


def test_a_downloads_403_is_not_a_refusal(sandbox):
    """An expired presigned URL answers 403: a fresh one may pass, so the transfer and the task retry."""
    from airflow_provider_exports.hooks._http import HttpClient

    sandbox.sitecore.add_export("daily_loyalty_members")
    sandbox.sitecore.add_job("daily_loyalty_members", rows=10, end_time=datetime(2026, 11, 1, tzinfo=timezone.utc))
    hook = SitecoreCDPHook(retry=FAST)
    output = hook.get_latest_export("daily_loyalty_members")
    sandbox.sitecore.faults.expire_urls()
    client = HttpClient(hook.vendor, retry=FAST, guard=hook.guard, refusal_hint=hook.refusal_hint)
    with pytest.raises(VendorAuthError) as err, client.stream(output.files[0].url):
        pass
    assert err.value.http_status == 403 and not isinstance(err.value, AirflowFailException)


def one_call_dag(dag_id: str, call: Callable[[], object]) -> Any:
    """A DAG of one task, allowed two retries at once, that makes ``call``."""
    from airflow.providers.standard.operators.python import PythonOperator
    from airflow.sdk import DAG

    with DAG(dag_id, schedule=None, start_date=datetime(2026, 11, 1, tzinfo=timezone.utc)) as dag:
        PythonOperator(task_id="call", python_callable=call, retries=2, retry_delay=timedelta(0))
    return dag


@pytest.mark.parametrize(
    ("case", "tries"), [("wrong secret", 1), ("unknown export", 1), ("503", 3), ("429", 3)]
)
def test_a_task_refused_by_the_vendor_fails_without_its_retries(sandbox, run_dag, monkeypatch, capfd, case, tries):
    conn = sandbox.sitecore.connection()
    ref = "no_such_export" if case == "unknown export" else "daily_loyalty_members"
    if case == "wrong secret":
        conn["password"] = "wrong-secret-value"
    elif case == "503":
        sandbox.sitecore.faults.server_error("/v2/*", times=None, status=503)
    elif case == "429":
        sandbox.sitecore.faults.rate_limit("/v2/*", times=None, retry_after="0")
    monkeypatch.setenv("AIRFLOW_CONN_UNDER_TEST", json.dumps(conn))
    dag = one_call_dag(
        f"refused_{case.replace(' ', '_')}",
        lambda: SitecoreCDPHook("under_test", retry=FAST).get_latest_export(ref),
    )

    run = run_dag(dag, logical_date=datetime(2026, 11, 2, tzinfo=timezone.utc))

    ti = run.get_task_instance("call")
    assert (ti.state, ti.try_number) == ("failed", tries)
    log = "".join(capfd.readouterr())
    if case == "wrong secret":
        assert "VendorAuthRefused" in log and "connection 'under_test': Check login" in log
        assert "wrong-secret-value" not in log
    elif case == "unknown export":
        assert "VendorNotFoundRefused" in log and "Audience export no_such_export not found" in log
        assert "check the task's arguments; if they are right, connection 'under_test'" in log


def test_the_cli_workaround_for_the_test_button_needs_the_setting_and_then_tests(sandbox, tmp_path):
    """The workaround for the UI's Test button in docs/errors.md: ``airflow connections test`` in a real
    Airflow CLI, refused without ``[core] test_connection = Enabled`` and passing with it."""
    import subprocess
    import sys
    from pathlib import Path

    conn = sandbox.sitecore.connection()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")},
        "AIRFLOW_HOME": str(tmp_path),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW_CONN_SITECORE_CDP_DEFAULT": json.dumps(conn),
    }
    airflow = [sys.executable, "-m", "airflow", "connections", "test", "sitecore_cdp_default"]
    cwd = Path(__file__).resolve().parents[2]

    refused = subprocess.run(airflow, env=env, capture_output=True, text=True, timeout=120, cwd=cwd)
    assert "disabled" in (refused.stdout + refused.stderr).lower()

    env["AIRFLOW__CORE__TEST_CONNECTION"] = "Enabled"
    tested = subprocess.run(airflow, env=env, capture_output=True, text=True, timeout=120, cwd=cwd)
    out = tested.stdout + tested.stderr
    assert tested.returncode == 0 and "Connection success!" in out, out[-2000:]
    assert sandbox.sitecore.requests_to(VENDORS["sitecore"].test_path, "GET")  # it did read the API

    env["AIRFLOW_CONN_SITECORE_CDP_DEFAULT"] = json.dumps(conn | {"password": "wrong-secret-value"})
    wrong = subprocess.run(airflow, env=env, capture_output=True, text=True, timeout=120, cwd=cwd)
    out = wrong.stdout + wrong.stderr
    assert "Connection failed!" in out and "password (the API secret)" in out, out[-2000:]
    assert "wrong-secret-value" not in out and conn["password"] not in out
