"""Local stand-ins for the vendor APIs (Sitecore CDP, Cordial, Adobe Experience Platform).

``Sandbox`` bundles one :class:`~airflow_provider_exports_sandbox.server.VendorServer` per vendor,
each a real HTTP server on a loopback port that speaks the vendor's API as the vendor documents
it, with fault injection for tests, the demo and offline DAG development. The distribution
``airflow-provider-exports-sandbox`` also holds the opt-in pytest kit (:mod:`.testing`) and the demo
(``python -m airflow_provider_exports_sandbox.demo``).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_provider_exports_sandbox.adobe import AdobeAEPServer
    from airflow_provider_exports_sandbox.cordial import CordialServer
    from airflow_provider_exports_sandbox.server import VendorServer
    from airflow_provider_exports_sandbox.sitecore_cdp import SitecoreCDPServer

__version__ = "0.1.0"
__all__ = ["CONN_IDS", "Sandbox", "__version__"]

#: Airflow connection ids the sandbox's connections are exported under, by attribute name.
CONN_IDS: dict[str, str] = {
    "sitecore": "sitecore_cdp_default",
    "cordial": "cordial_default",
    "adobe": "adobe_aep_default",
}


class Sandbox:
    """All vendor servers together; nothing starts in ``__init__``."""

    def __init__(self, cache_dir: Path | str | None = None) -> None:
        from airflow_provider_exports_sandbox.adobe import AdobeAEPServer
        from airflow_provider_exports_sandbox.cordial import CordialServer
        from airflow_provider_exports_sandbox.sitecore_cdp import SitecoreCDPServer

        self.cache_dir = (
            Path(cache_dir)
            if cache_dir is not None
            else Path(tempfile.gettempdir()) / "exports-sandbox-cache"
        )
        self.sitecore: SitecoreCDPServer = SitecoreCDPServer(self.cache_dir / "sitecore_cdp")
        self.cordial: CordialServer = CordialServer(self.cache_dir / "cordial")
        self.adobe: AdobeAEPServer = AdobeAEPServer(self.cache_dir / "adobe_aep")

    @property
    def servers(self) -> dict[str, VendorServer]:
        """The vendor servers by attribute name (``sitecore``, ``cordial``, ``adobe``)."""
        return {"sitecore": self.sitecore, "cordial": self.cordial, "adobe": self.adobe}

    def start(self, port_base: int | None = None) -> Sandbox:
        """Start every server; with ``port_base`` they listen on consecutive ports from it."""
        try:
            for offset, server in enumerate(self.servers.values()):
                server.start(0 if port_base is None else port_base + offset)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        for server in self.servers.values():
            server.stop()

    def reset(self) -> None:
        """Clear faults, request logs and seeded state on every server."""
        for server in self.servers.values():
            server.reset()

    def connections(self) -> dict[str, dict[str, Any]]:
        """Airflow Connection JSON forms, keyed by connection id."""
        return {CONN_IDS[name]: server.connection() for name, server in self.servers.items()}

    def airflow_env(self) -> dict[str, str]:
        """``AIRFLOW_CONN_<ID>`` environment variables for :meth:`connections`."""
        return {
            f"AIRFLOW_CONN_{conn_id.upper()}": json.dumps(conn)
            for conn_id, conn in self.connections().items()
        }

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
