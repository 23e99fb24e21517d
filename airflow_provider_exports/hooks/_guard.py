"""Where a vendor connection may send requests: its own hosts, public https hosts, and nothing else.

A vendor's answers name URLs (Sitecore's presigned output files); an attacker or a confused vendor
could name the cloud metadata address (``http://169.254.169.254/...``), which with instance metadata
v1 hands out the worker's own IAM keys, or any host of the worker's network. :class:`HostGuard` is
checked twice for every request of an :class:`~airflow_provider_exports.hooks._http.HttpClient`:

- before a byte is sent (:meth:`HostGuard.check_url`): no user info; ``https`` on its default port,
  unless the host is one the connection itself names;
- when the connection is made (:meth:`HostGuard.addresses`): the host name is resolved here and only
  its public addresses are connected to, so a name that resolves to a public address for the check
  and to a private one for the connection (DNS rebinding) is refused too.

Exempt from both: the connection's own hosts (its API and token hosts: a local sandbox on
``http://127.0.0.1`` is reached because the connection says so) and what its ``allowed_hosts`` extra
names (host names, addresses or CIDR networks of the user's own network).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from airflow_provider_exports.exceptions import ExportConfigError, URLRefused

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
_DEFAULT_PORTS = {"https": 443, "http": 80}
_FIELD = "extra.allowed_hosts"


def address_kind(ip: IPAddress) -> str | None:
    """Why ``ip`` is not a public address (``"link-local"``, ``"private"``...), or ``None`` if it is one."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    for kind, flag in (
        ("unspecified", ip.is_unspecified),
        ("loopback", ip.is_loopback),
        ("link-local (the cloud metadata address among them)", ip.is_link_local),
        ("multicast", ip.is_multicast),
        ("reserved", ip.is_reserved),
        ("private", ip.is_private),
    ):
        if flag:
            return kind
    return None if ip.is_global else "not globally reachable"


def parse_allowed_hosts(value: Any) -> tuple[frozenset[str], tuple[IPNetwork, ...]]:
    """The ``allowed_hosts`` extra: a list or a comma-separated string of host names, addresses
    and CIDR networks; ``(names, networks)``. Anything else raises ``ExportConfigError``."""
    if value in (None, "", []):
        return frozenset(), ()
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, Iterable) or isinstance(items, (bytes, dict)):
        raise ExportConfigError(_FIELD, f"{value!r}: give host names, addresses or networks, comma-separated")
    names: set[str] = set()
    networks: list[IPNetwork] = []
    for item in items:
        text = str(item).strip().lower()
        if not text:
            continue
        try:
            networks.append(ipaddress.ip_network(text.strip("[]"), strict=False))
            continue
        except ValueError:
            pass
        if not _is_host_name(text):
            raise ExportConfigError(
                _FIELD, f"{item!r} is neither a host name, an IP address nor a CIDR network (10.0.0.0/8)"
            )
        names.add(text)
    return frozenset(names), tuple(networks)


def _is_host_name(text: str) -> bool:
    labels = text.rstrip(".").split(".")
    return all(0 < len(label) <= 63 and label.replace("-", "").isalnum() and label.isascii() for label in labels)


@dataclass(frozen=True)
class HostGuard:
    """Which hosts one connection's requests may reach (see the module docstring).

    :param vendor: the vendor's display name, for errors.
    :param own_hosts: the host names the connection itself names (API and token hosts), lower case.
    :param allowed_names: host names its ``allowed_hosts`` extra names.
    :param allowed_networks: networks (and single addresses) its ``allowed_hosts`` extra names.
    """

    vendor: str
    own_hosts: frozenset[str] = frozenset()
    allowed_names: frozenset[str] = frozenset()
    allowed_networks: tuple[IPNetwork, ...] = field(default=())

    @classmethod
    def for_connection(cls, vendor: str, own_urls: Iterable[str | None], allowed_hosts: Any = None) -> HostGuard:
        """The guard of a connection whose own URLs are ``own_urls`` (its checked hosts)."""
        names, networks = parse_allowed_hosts(allowed_hosts)
        own = frozenset(h for h in (_host_of(u) for u in own_urls if u) if h)
        return cls(vendor, own, names, networks)

    def exempt(self, host: str) -> bool:
        """Whether ``host`` is one of the connection's own hosts or named by its ``allowed_hosts``."""
        host = host.lower().strip("[]")
        return host in self.own_hosts or host in self.allowed_names

    def check_url(self, url: str) -> None:
        """Refuse ``url`` before anything is sent (``URLRefused``), or return."""
        parts = urlsplit(str(url))
        scheme = parts.scheme.lower()
        try:
            host, port = parts.hostname or "", parts.port
        except ValueError:
            raise URLRefused(self.vendor, parts.netloc.rpartition("@")[2], "its port is not a number") from None
        shown = f"{host}:{port}" if port else host
        if "@" in parts.netloc:
            raise URLRefused(self.vendor, shown, "the URL carries user info (user:password@)")
        if scheme not in _DEFAULT_PORTS or not host:
            raise URLRefused(self.vendor, shown or str(parts.netloc), f"{scheme or 'no'} scheme; only https is fetched")
        if self.exempt(host):
            return
        if scheme != "https":
            raise URLRefused(self.vendor, shown, "plain http; only https is fetched from hosts of the vendor's choosing")
        if port not in (None, _DEFAULT_PORTS[scheme]):
            raise URLRefused(self.vendor, shown, f"port {port}; only https's own port 443 is fetched")
        literal = _ip_literal(host)
        why = None if literal is None else self._refusal(literal)
        if why is not None:
            raise URLRefused(self.vendor, shown, f"the address is {why}")

    def check_own(self, url: str) -> None:
        """:meth:`check_url`, and the host must be exempt: for clients that connect without the
        address check (the async one, which only polls the connection's own API)."""
        self.check_url(url)
        host = _host_of(url) or ""
        if not self.exempt(host):
            raise URLRefused(self.vendor, host, "the async client reaches the connection's own hosts only")

    def addresses(self, host: str, port: int) -> list[str] | None:
        """The addresses to connect to for ``host``: ``None`` for an exempt host (connected as
        usual), else its resolved public (or allowed) addresses; ``URLRefused`` when it has none.
        Raises ``OSError`` (``socket.gaierror``) when the name does not resolve."""
        if self.exempt(host):
            return None
        resolved = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        refusals = {  # each address once, in the resolver's order
            address: self._refusal(ipaddress.ip_address(address.split("%", 1)[0]))
            for address in dict.fromkeys(str(info[4][0]) for info in resolved)
        }
        permitted = [address for address, why in refusals.items() if why is None]
        if not permitted:
            shown = ", ".join(f"{a} ({why})" for a, why in refusals.items()) or "none"
            raise URLRefused(self.vendor, f"{host}:{port}", f"it resolves to no public address: {shown}")
        return permitted

    def _refusal(self, ip: IPAddress) -> str | None:
        if any(ip in network for network in self.allowed_networks if network.version == ip.version):
            return None
        return address_kind(ip)


def _host_of(url: str) -> str | None:
    try:
        return (urlsplit(url).hostname or "").lower() or None
    except ValueError:
        return None


def _ip_literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return None


def is_loopback_host(host: str) -> bool:
    """``localhost`` or a loopback address: the only hosts a credential may reach over plain http."""
    if host.lower().rstrip(".") == "localhost":
        return True
    ip = _ip_literal(host)
    return ip is not None and ip.is_loopback
