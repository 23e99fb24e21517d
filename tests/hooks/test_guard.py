"""The host guard: which URLs a connection's requests may reach, checked before sending and at connect."""

from __future__ import annotations

import pytest

from airflow_provider_exports.exceptions import ExportConfigError, URLRefused
from airflow_provider_exports.hooks._guard import HostGuard, address_kind, parse_allowed_hosts

SANDBOX = HostGuard.for_connection("Sitecore CDP", ["http://127.0.0.1:8080", "http://127.0.0.1:8080/oauth"])


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://169.254.169.254/latest/meta-data/iam/security-credentials/role", "plain http"),
        ("https://169.254.169.254/latest/meta-data/", "link-local"),
        ("https://[::ffff:169.254.169.254]/latest/meta-data/", "link-local"),
        ("https://[fd00:ec2::254]/latest/meta-data/", "private"),
        ("https://10.1.2.3/x", "private"),
        ("https://192.168.0.10/x", "private"),
        ("https://100.64.0.1/x", "not globally reachable"),
        ("https://127.0.0.2/x", "loopback"),
        ("https://0.0.0.0/x", "unspecified"),
        ("https://224.0.0.1/x", "multicast"),
        ("https://240.0.0.1/x", "reserved"),
        ("https://exports.example.com:8443/x", "port 8443"),
        ("https://user:pw@exports.example.com/x", "user info"),
        ("ftp://exports.example.com/x", "ftp scheme"),
        ("file:///etc/passwd", "scheme"),
    ],
)
def test_urls_a_vendor_may_not_send_us_to_are_refused_before_sending(url, why):
    with pytest.raises(URLRefused, match=why) as err:
        SANDBOX.check_url(url)
    assert "allowed_hosts" in str(err.value) and "pw" not in str(err.value)


def test_public_https_and_the_connections_own_hosts_pass():
    SANDBOX.check_url("https://bucket.s3.amazonaws.com/a/b.json.gz?X-Amz-Signature=x")
    SANDBOX.check_url("http://127.0.0.1:8080/sitecore-cdp-exports/x.json.gz")  # its own (sandbox) host
    SANDBOX.check_url("http://127.0.0.1:9999/other-port")  # the host is its own, whatever the port


def test_a_name_is_resolved_when_connecting_and_only_public_addresses_are_used():
    # The URL check passes (https, port 443, a name); the connection is refused: what DNS
    # rebinding would do, a public answer for the check and a private one for the connection.
    SANDBOX.check_url("https://localhost/x")
    with pytest.raises(URLRefused, match=r"resolves to no public address: .*loopback"):
        SANDBOX.addresses("localhost", 443)
    assert SANDBOX.addresses("127.0.0.1", 8080) is None  # its own host: connected as usual


def test_the_allow_list_names_hosts_addresses_and_networks():
    guard = HostGuard.for_connection(
        "Cordial", ["https://api.cordial.io"], "files.corp.example, 10.0.0.0/8,  fd00::1 "
    )
    guard.check_url("http://files.corp.example:9000/x")
    guard.check_url("https://10.20.30.40/x")
    guard.check_url("https://[fd00::1]/x")
    with pytest.raises(URLRefused, match="private"):
        guard.check_url("https://192.168.1.1/x")
    assert guard.addresses("files.corp.example", 9000) is None
    with pytest.raises(URLRefused):
        guard.check_own("https://10.20.30.40/x")  # the async client: own hosts only
    guard.check_own("https://api.cordial.io/v2/jobs")


@pytest.mark.parametrize("value", ["not a host!", ["ok.example", "bad_host"], {"a": 1}, "10.0.0.0/33"])
def test_a_bad_allow_list_entry_names_the_extra(value):
    with pytest.raises(ExportConfigError, match=r"extra\.allowed_hosts"):
        parse_allowed_hosts(value)


def test_address_kinds():
    import ipaddress

    assert address_kind(ipaddress.ip_address("8.8.8.8")) is None
    assert address_kind(ipaddress.ip_address("169.254.169.254")).startswith("link-local")
    assert address_kind(ipaddress.ip_address("::1")) == "loopback"
