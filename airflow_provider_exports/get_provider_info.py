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
SITECORE, CORDIAL, ADOBE = "Sitecore CDP", "Cordial", "Adobe Experience Platform"
#: each integration's module name (hooks/<name>.py, sensors/<name>.py...) and documentation
INTEGRATIONS = {
    SITECORE: ("sitecore_cdp", "https://doc.sitecore.com/cdp/"),
    CORDIAL: ("cordial", "https://support.cordial.com/"),
    ADOBE: ("adobe_experience_platform", "https://experienceleague.adobe.com/docs/experience-platform/"),
}
TARGETS = {"s3": "Amazon Simple Storage Service (S3)", "sql": "Common SQL", "object_storage": "Common IO"}
#: the transfer modules (transfers/<source>_to_<target>.py), in the order they are listed
TRANSFERS = (
    (SITECORE, "s3"),
    (SITECORE, "sql"),
    (CORDIAL, "sql"),
    (ADOBE, "s3"),
    (ADOBE, "sql"),
    (SITECORE, "object_storage"),
    (ADOBE, "object_storage"),
    (CORDIAL, "s3"),
    (CORDIAL, "object_storage"),
)
SITECORE_REGIONS = {"AP": "Asia Pacific", "EU": "Europe", "JP": "Japan", "US": "United States"}


def _text(label: str, description: str, **schema: Any) -> dict[str, Any]:
    return {"label": label, "description": description, "schema": {"type": ["string", "null"], **schema}}


#: every connection type's allow-list of hosts of the user's own network (docs/security.md)
ALLOWED_HOSTS = _text(
    "Allowed private hosts",
    "Hosts, IP addresses or networks (CIDR) of your own network this connection may download from, "
    "comma-separated; by default only public https hosts and the connection's own hosts are reached.",
)


def _modules(kind: str, *integrations: str) -> list[dict[str, Any]]:
    return [
        {"integration-name": name, "python-modules": [f"{PACKAGE}.{kind}.{INTEGRATIONS[name][0]}"]}
        for name in integrations
    ]


def _connection_type(
    integration: str,
    conn_type: str,
    hook_class: str,
    *,
    relabeling: dict[str, str],
    placeholders: dict[str, str],
    hidden: tuple[str, ...] = ("schema", "port", "host"),
    **fields: dict[str, Any],
) -> dict[str, Any]:
    """One connection type: its hook, its form and its extra fields, ``allowed_hosts`` last."""
    return {
        "connection-type": conn_type,
        "hook-class-name": f"{PACKAGE}.hooks.{INTEGRATIONS[integration][0]}.{hook_class}",
        "hook-name": integration,
        "ui-field-behaviour": {
            "hidden-fields": list(hidden), "relabeling": relabeling, "placeholders": placeholders
        },
        "conn-fields": {**fields, "allowed_hosts": ALLOWED_HOSTS},
    }


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
            {"integration-name": name, "external-doc-url": url} for name, (_, url) in INTEGRATIONS.items()
        ],
        "hooks": _modules("hooks", SITECORE, CORDIAL, ADOBE),
        "operators": _modules("operators", CORDIAL, ADOBE),
        "sensors": _modules("sensors", SITECORE, CORDIAL, ADOBE),
        "triggers": _modules("triggers", SITECORE, CORDIAL, ADOBE),
        "transfers": [
            {
                "source-integration-name": source,
                "target-integration-name": TARGETS[target],
                "python-module": f"{PACKAGE}.transfers.{INTEGRATIONS[source][0]}_to_{target}",
            }
            for source, target in TRANSFERS
        ],
        "connection-types": [
            _connection_type(
                SITECORE,
                "sitecore_cdp",
                "SitecoreCDPHook",
                relabeling={"login": "API key (client ID)", "password": "API secret"},
                placeholders={
                    "login": "Sitecore Cloud Portal > Developer center > API keys: the key",
                    "password": "The API secret, shown once when the key was created",
                    "extra": '{"region": "EU"}',
                },
                region=_text(
                    "Region",
                    "Your Sitecore CDP tenant's region: AP, EU, JP or US. Ignored when the API base URL is set.",
                    enum=list(SITECORE_REGIONS),
                    values_display={code: f"{code} ({name})" for code, name in SITECORE_REGIONS.items()},
                ),
                api_host=_text(
                    "API base URL (override)",
                    "Full base URL of the Audience export API, e.g. a local sandbox; overrides the region.",
                ),
                auth_host=_text(
                    "Auth host (override)", "Token server; default https://auth.sitecorecloud.io."
                ),
            ),
            _connection_type(
                CORDIAL,
                "cordial",
                "CordialHook",
                hidden=("schema", "port", "login", "host"),
                relabeling={"password": "API key"},
                placeholders={
                    "password": "Cordial > Account Settings > API Keys: the key",
                    "extra": '{"api_host": "api.cordial.io"}',
                },
                api_host=_text(
                    "API host",
                    "api.cordial.io (accounts on admin.cordial.io) or api.usw2.cordial.io "
                    "(usw2.admin.cordial.io), or a full URL override.",
                    default="api.cordial.io",
                    examples=["api.cordial.io", "api.usw2.cordial.io"],
                ),
            ),
            _connection_type(
                ADOBE,
                "adobe_aep",
                "AdobeExperiencePlatformHook",
                relabeling={"login": "Client ID", "password": "Client secret"},
                placeholders={
                    "login": "Developer Console > project > OAuth Server-to-Server: the client ID",
                    "password": "That credential's client secret",
                    "extra": '{"ims_org_id": "ABC123@AdobeOrg", "sandbox_name": "prod"}',
                },
                ims_org_id=_text("IMS organization ID", "Your organization id, ending in @AdobeOrg."),
                sandbox_name=_text(
                    "Sandbox name", "The all-lowercase sandbox name, e.g. prod.", examples=["prod"]
                ),
                scopes=_text(
                    "Scopes",
                    "Comma-separated OAuth scopes of the credential.",
                    default="openid,session,AdobeID,read_organizations,additional_info.projectedProductContext",
                ),
                ims_host=_text("IMS host (override)", "Default https://ims-na1.adobelogin.com."),
                platform_host=_text("Platform host (override)", "Default https://platform.adobe.io."),
            ),
        ],
        "config": provider_config(),
    }
