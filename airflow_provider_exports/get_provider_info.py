"""Provider metadata read by Airflow's providers manager (entry point ``apache_airflow_provider``).

Airflow 3.2 and newer build the connection forms from ``conn-fields`` and ``ui-field-behaviour``
here without importing the hooks; older versions fall back to the hooks' ``get_ui_field_behaviour``.
Extras are stored under their plain names (``region``, ``api_host``...). None of them is a secret:
every secret lives in the password field, which Airflow masks.

What the UI does with it (Airflow 3.3): ``placeholders`` show in the standard fields (login,
password...); an extra field shows a dropdown for an ``enum`` (labelled by ``values_display``; no
``null`` in it: the dropdown can be cleared) and suggestions for ``examples``. A connection form has
no default connection id: Airflow's form metadata leaves ``default_conn_name`` empty for every type.
"""

from __future__ import annotations

from typing import Any

PACKAGE = "airflow_provider_exports"


def _text(label: str, description: str, **schema: Any) -> dict[str, Any]:
    return {"label": label, "description": description, "schema": {"type": ["string", "null"], **schema}}


#: every connection type's allow-list of hosts of the user's own network (README, "Security")
ALLOWED_HOSTS = _text(
    "Allowed private hosts",
    "Hosts, IP addresses or networks (CIDR) of your own network this connection may download from, "
    "comma-separated; by default only public https hosts and the connection's own hosts are reached.",
)


def get_provider_info() -> dict[str, Any]:
    from airflow_provider_exports import __version__
    from airflow_provider_exports.utils.limits import provider_config

    return {
        "package-name": "airflow-provider-exports",
        "name": "Customer-data platform exports",
        "description": "Audience and profile exports from Sitecore CDP, Cordial and Adobe Experience "
        "Platform into S3 or a SQL warehouse.",
        "versions": [__version__],
        "integrations": [
            {"integration-name": "Sitecore CDP", "external-doc-url": "https://doc.sitecore.com/cdp/"},
            {"integration-name": "Cordial", "external-doc-url": "https://support.cordial.com/"},
            {
                "integration-name": "Adobe Experience Platform",
                "external-doc-url": "https://experienceleague.adobe.com/docs/experience-platform/",
            },
        ],
        "hooks": [
            {"integration-name": "Sitecore CDP", "python-modules": [f"{PACKAGE}.hooks.sitecore_cdp"]},
            {"integration-name": "Cordial", "python-modules": [f"{PACKAGE}.hooks.cordial"]},
            {
                "integration-name": "Adobe Experience Platform",
                "python-modules": [f"{PACKAGE}.hooks.adobe_experience_platform"],
            },
        ],
        "operators": [
            {"integration-name": "Cordial", "python-modules": [f"{PACKAGE}.operators.cordial"]},
            {
                "integration-name": "Adobe Experience Platform",
                "python-modules": [f"{PACKAGE}.operators.adobe_experience_platform"],
            },
        ],
        "sensors": [
            {"integration-name": "Sitecore CDP", "python-modules": [f"{PACKAGE}.sensors.sitecore_cdp"]},
            {"integration-name": "Cordial", "python-modules": [f"{PACKAGE}.sensors.cordial"]},
            {
                "integration-name": "Adobe Experience Platform",
                "python-modules": [f"{PACKAGE}.sensors.adobe_experience_platform"],
            },
        ],
        "triggers": [
            {"integration-name": "Sitecore CDP", "python-modules": [f"{PACKAGE}.triggers.sitecore_cdp"]},
            {"integration-name": "Cordial", "python-modules": [f"{PACKAGE}.triggers.cordial"]},
            {
                "integration-name": "Adobe Experience Platform",
                "python-modules": [f"{PACKAGE}.triggers.adobe_experience_platform"],
            },
        ],
        "transfers": [
            {
                "source-integration-name": "Sitecore CDP",
                "target-integration-name": "Amazon Simple Storage Service (S3)",
                "python-module": f"{PACKAGE}.transfers.sitecore_cdp_to_s3",
            },
            {
                "source-integration-name": "Sitecore CDP",
                "target-integration-name": "Common SQL",
                "python-module": f"{PACKAGE}.transfers.sitecore_cdp_to_sql",
            },
            {
                "source-integration-name": "Cordial",
                "target-integration-name": "Common SQL",
                "python-module": f"{PACKAGE}.transfers.cordial_to_sql",
            },
            {
                "source-integration-name": "Adobe Experience Platform",
                "target-integration-name": "Amazon Simple Storage Service (S3)",
                "python-module": f"{PACKAGE}.transfers.adobe_experience_platform_to_s3",
            },
            {
                "source-integration-name": "Adobe Experience Platform",
                "target-integration-name": "Common SQL",
                "python-module": f"{PACKAGE}.transfers.adobe_experience_platform_to_sql",
            },
            {
                "source-integration-name": "Sitecore CDP",
                "target-integration-name": "Common IO",
                "python-module": f"{PACKAGE}.transfers.sitecore_cdp_to_object_storage",
            },
            {
                "source-integration-name": "Adobe Experience Platform",
                "target-integration-name": "Common IO",
                "python-module": f"{PACKAGE}.transfers.adobe_experience_platform_to_object_storage",
            },
        ],
        "connection-types": [
            {
                "connection-type": "sitecore_cdp",
                "hook-class-name": f"{PACKAGE}.hooks.sitecore_cdp.SitecoreCDPHook",
                "hook-name": "Sitecore CDP",
                "ui-field-behaviour": {
                    "hidden-fields": ["schema", "port", "host"],
                    "relabeling": {"login": "API key (client ID)", "password": "API secret"},
                    "placeholders": {
                        "login": "Sitecore Cloud Portal > Developer center > API keys: the key",
                        "password": "The API secret, shown once when the key was created",
                        "extra": '{"region": "EU"}',
                    },
                },
                "conn-fields": {
                    "region": _text(
                        "Region",
                        "Your Sitecore CDP tenant's region: AP, EU, JP or US. Ignored when the API base URL is set.",
                        enum=["AP", "EU", "JP", "US"],
                        values_display={
                            "AP": "AP (Asia Pacific)",
                            "EU": "EU (Europe)",
                            "JP": "JP (Japan)",
                            "US": "US (United States)",
                        },
                    ),
                    "api_host": _text(
                        "API base URL (override)",
                        "Full base URL of the Audience export API, e.g. a local sandbox; overrides the region.",
                    ),
                    "auth_host": _text(
                        "Auth host (override)", "Token server; default https://auth.sitecorecloud.io."
                    ),
                    "allowed_hosts": ALLOWED_HOSTS,
                },
            },
            {
                "connection-type": "cordial",
                "hook-class-name": f"{PACKAGE}.hooks.cordial.CordialHook",
                "hook-name": "Cordial",
                "ui-field-behaviour": {
                    "hidden-fields": ["schema", "port", "login", "host"],
                    "relabeling": {"password": "API key"},
                    "placeholders": {
                        "password": "Cordial > Account Settings > API Keys: the key",
                        "extra": '{"api_host": "api.cordial.io"}',
                    },
                },
                "conn-fields": {
                    "api_host": _text(
                        "API host",
                        "api.cordial.io (accounts on admin.cordial.io) or api.usw2.cordial.io "
                        "(usw2.admin.cordial.io), or a full URL override.",
                        default="api.cordial.io",
                        examples=["api.cordial.io", "api.usw2.cordial.io"],
                    ),
                    "allowed_hosts": ALLOWED_HOSTS,
                },
            },
            {
                "connection-type": "adobe_aep",
                "hook-class-name": f"{PACKAGE}.hooks.adobe_experience_platform.AdobeExperiencePlatformHook",
                "hook-name": "Adobe Experience Platform",
                "ui-field-behaviour": {
                    "hidden-fields": ["schema", "port", "host"],
                    "relabeling": {"login": "Client ID", "password": "Client secret"},
                    "placeholders": {
                        "login": "Developer Console > project > OAuth Server-to-Server: the client ID",
                        "password": "That credential's client secret",
                        "extra": '{"ims_org_id": "ABC123@AdobeOrg", "sandbox_name": "prod"}',
                    },
                },
                "conn-fields": {
                    "ims_org_id": _text("IMS organization ID", "Your organization id, ending in @AdobeOrg."),
                    "sandbox_name": _text(
                        "Sandbox name", "The all-lowercase sandbox name, e.g. prod.", examples=["prod"]
                    ),
                    "scopes": _text(
                        "Scopes",
                        "Comma-separated OAuth scopes of the credential.",
                        default="openid,session,AdobeID,read_organizations,additional_info.projectedProductContext",
                    ),
                    "ims_host": _text("IMS host (override)", "Default https://ims-na1.adobelogin.com."),
                    "platform_host": _text("Platform host (override)", "Default https://platform.adobe.io."),
                    "allowed_hosts": ALLOWED_HOSTS,
                },
            },
        ],
        "config": provider_config(),
    }
