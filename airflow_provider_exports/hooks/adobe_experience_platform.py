"""Adobe Experience Platform: IMS server-to-server tokens, profile export jobs, Catalog, Data Access.

Every Platform call carries ``Authorization: Bearer``, ``x-api-key`` (the client ID),
``x-gw-ims-org-id`` and ``x-sandbox-name``. Sources: vendor-apis README §3 and the Adobe OpenAPI
documents beside it (segmentation.yaml for ``/export/jobs``, catalog.yaml, data-access.yaml).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

from airflow_provider_exports.exceptions import ExportConfigError, VendorAPIError
from airflow_provider_exports.hooks._base import ExportsVendorHook, normalise_host
from airflow_provider_exports.hooks._http import AuthScheme, ByteStream, ClientCredentialsAuth, RetryPolicy

IMS_HOST = "https://ims-na1.adobelogin.com"
TOKEN_PATH = "/ims/token/v3"
PLATFORM_HOST = "https://platform.adobe.io"
DEFAULT_SCOPES = "openid,session,AdobeID,read_organizations,additional_info.projectedProductContext"
PROFILE_UNION_SCHEMA = "https://ns.adobe.com/xdm/context/profile__union"
SCHEMA_CONTENT_TYPE = "application/vnd.adobe.xed+json;version=1"

EXPORT_JOBS = "/data/core/ups/export/jobs"
CATALOG = "/data/foundation/catalog"
DATA_ACCESS = "/data/foundation/export"

JOB_TERMINAL_STATUSES = frozenset({"SUCCEEDED", "FAILED"})
# Catalog's batch enum plus the values Adobe's own client has seen (vendor-apis README §3.5);
# anything else is treated as still running.
BATCH_SUCCESS = frozenset({"success", "active"})
BATCH_FAILED = frozenset({"failure", "failed", "aborted", "abandoned", "deleted"})


@dataclass(frozen=True)
class AdobeAEPSettings:
    client_id: str
    client_secret: str = field(repr=False)
    ims_org_id: str
    sandbox_name: str
    scopes: str
    ims_host: str
    platform_host: str


@dataclass(frozen=True)
class DataAccessFile:
    """One file of a batch, addressed by its dataset file id and its path inside it."""

    dataset_file_id: str
    name: str
    size: int | None


class AdobeExperiencePlatformHook(ExportsVendorHook[AdobeAEPSettings]):
    """Adobe Experience Platform APIs used by profile exports.

    Connection: login = client ID, password = client secret; extras ``ims_org_id`` (``…@AdobeOrg``),
    ``sandbox_name``, optional ``scopes`` (comma-separated), ``ims_host``, ``platform_host``.

    :param adobe_aep_conn_id: the Airflow connection id.
    """

    vendor = "Adobe Experience Platform"
    conn_name_attr = "adobe_aep_conn_id"
    default_conn_name = "adobe_aep_default"
    conn_type = "adobe_aep"
    hook_name = "Adobe Experience Platform"

    def __init__(
        self,
        adobe_aep_conn_id: str = default_conn_name,
        *,
        timeout: float = 60.0,
        retry: RetryPolicy | None = None,
    ) -> None:
        super().__init__(adobe_aep_conn_id, timeout=timeout, retry=retry)

    @classmethod
    def settings_from_connection(
        cls, login: str | None, password: str | None, extras: Mapping[str, Any]
    ) -> AdobeAEPSettings:
        if not login:
            raise ExportConfigError("login", "the Adobe client ID is missing")
        if not password:
            raise ExportConfigError("password", "the Adobe client secret is missing")
        org = str(extras.get("ims_org_id") or "")
        if not org.endswith("@AdobeOrg"):
            raise ExportConfigError("extra.ims_org_id", f"{org!r} is not an IMS organization id (…@AdobeOrg)")
        sandbox = str(extras.get("sandbox_name") or "")
        if not sandbox or sandbox != sandbox.lower():
            raise ExportConfigError("extra.sandbox_name", f"{sandbox!r}: give the all-lowercase sandbox name")
        return AdobeAEPSettings(
            client_id=login,
            client_secret=password,
            ims_org_id=org,
            sandbox_name=sandbox,
            scopes=str(extras.get("scopes") or DEFAULT_SCOPES),
            ims_host=normalise_host(extras.get("ims_host") or IMS_HOST, "extra.ims_host"),
            platform_host=normalise_host(extras.get("platform_host") or PLATFORM_HOST, "extra.platform_host"),
        )

    def auth_scheme(self, settings: AdobeAEPSettings) -> AuthScheme:
        return ClientCredentialsAuth(
            token_url=settings.ims_host + TOKEN_PATH,
            form={
                "grant_type": "client_credentials",
                "client_id": settings.client_id,
                "client_secret": settings.client_secret,
                "scope": settings.scopes,
            },
            extra_headers={
                "x-api-key": settings.client_id,
                "x-gw-ims-org-id": settings.ims_org_id,
                "x-sandbox-name": settings.sandbox_name,
            },
        )

    def base_url(self, settings: AdobeAEPSettings) -> str:
        return settings.platform_host

    # -- Catalog

    def create_profile_dataset(self, name: str, *, description: str | None = None) -> str:
        """Create a dataset on the profile union schema; returns its id."""
        body: dict[str, Any] = {
            "name": name,
            "schemaRef": {"id": PROFILE_UNION_SCHEMA, "contentType": SCHEMA_CONTENT_TYPE},
        }
        if description:
            body["description"] = description
        result = self.call("POST", f"{CATALOG}/dataSets", json=body, expected=(200, 201))
        # 201 with a one-element array such as ["@/dataSets/5b02..."]: the id is after the last "/".
        if not isinstance(result, list) or not result:
            raise VendorAPIError(
                self.vendor,
                status_code=201,
                error_key=None,
                message="dataset creation returned no id",
                method="POST",
                url=self.url(f"{CATALOG}/dataSets"),
            )
        return str(result[0]).rsplit("/", 1)[-1]

    def get_batch(self, batch_id: str, *, deadline: float | None = None) -> dict[str, Any]:
        """Catalog batch (the response is keyed by batch id; this returns the inner object)."""
        return _unwrap_keyed(self.call("GET", f"{CATALOG}/batches/{batch_id}", deadline=deadline), batch_id)

    async def aget_batch(self, batch_id: str, *, deadline: float | None = None) -> dict[str, Any]:
        body = await self.acall("GET", f"{CATALOG}/batches/{batch_id}", deadline=deadline)
        return _unwrap_keyed(body, batch_id)

    # -- profile export jobs (segmentation.yaml)

    def create_export_job(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """Create a profile export job from a ``CreateExportJobRequest`` body."""
        if not (body.get("destination") or {}).get("datasetId"):
            raise ExportConfigError("destination.datasetId", "is required")
        if not (body.get("schema") or {}).get("name"):
            raise ExportConfigError("schema.name", "is required (e.g. _xdm.context.profile)")
        return self.call("POST", EXPORT_JOBS, json=dict(body))

    def get_export_job(self, job_id: str | int, *, deadline: float | None = None) -> dict[str, Any]:
        """One export job; ``deadline`` (epoch seconds) bounds the call, retries included."""
        return self.call("GET", f"{EXPORT_JOBS}/{job_id}", deadline=deadline)

    async def aget_export_job(self, job_id: str | int, *, deadline: float | None = None) -> dict[str, Any]:
        return await self.acall("GET", f"{EXPORT_JOBS}/{job_id}", deadline=deadline)

    def list_export_jobs(self, *, status: str | None = None, limit: int = 100) -> Iterator[dict[str, Any]]:
        """All export jobs, following ``link.next`` (its ``offset``) until it is empty."""
        params: dict[str, Any] = {"limit": limit}
        if status:
            params["status"] = status
        while True:
            page = self.call("GET", EXPORT_JOBS, params=params) or {}
            yield from page.get("records") or []
            next_link = ((page.get("link") or {}).get("next") or "").strip()
            offset = parse_qs(urlsplit(next_link).query).get("offset") if next_link else None
            if not offset or not page.get("records"):
                return
            params["offset"] = offset[0]

    def cancel_export_job(self, job_id: str | int) -> None:
        """Cancel a job; Adobe documents 200 with a body, 204 with a body and 204 without one."""
        self.call("DELETE", f"{EXPORT_JOBS}/{job_id}", expected=(200, 202, 204))

    async def acancel_export_job(self, job_id: str | int) -> None:
        await self.acall("DELETE", f"{EXPORT_JOBS}/{job_id}", expected=(200, 202, 204))

    # -- Data Access

    def _data_access_pages(self, path: str, limit: int) -> Iterator[dict[str, Any]]:
        """Entries of a paged Data Access listing (``start``/``limit``; follows ``_links.next``)."""
        start = 0
        while True:
            page = self.call("GET", f"{DATA_ACCESS}{path}", params={"start": start, "limit": limit}) or {}
            data = page.get("data") or []
            yield from data
            if not data or not ((page.get("_links") or {}).get("next") or {}).get("href"):
                return
            start += len(data)

    def list_batch_files(self, batch_id: str, *, limit: int = 100) -> Iterator[dict[str, Any]]:
        """Dataset files of a batch (at most 100 a page)."""
        return self._data_access_pages(f"/batches/{batch_id}/files", limit)

    def list_files(self, dataset_file_id: str, *, limit: int = 100) -> Iterator[DataAccessFile]:
        """The files behind a dataset file id, descending into nested dataset file ids."""
        for entry in self._data_access_pages(f"/files/{dataset_file_id}", limit):
            if "name" in entry:
                length = str(entry.get("length"))
                yield DataAccessFile(
                    dataset_file_id, entry["name"], int(length) if length.isdigit() else None
                )
            elif entry.get("dataSetFileId"):
                yield from self.list_files(entry["dataSetFileId"], limit=limit)

    def batch_files(self, batch_id: str) -> list[DataAccessFile]:
        """Every downloadable file of a batch."""
        return [
            f for entry in self.list_batch_files(batch_id) for f in self.list_files(entry["dataSetFileId"])
        ]

    def file_size(self, dataset_file_id: str, path: str) -> int:
        response = self.core.request(
            "HEAD", self.url(f"{DATA_ACCESS}/files/{dataset_file_id}"), params={"path": path}
        )
        return int(response.headers["Content-Length"])

    def open_file(
        self, dataset_file_id: str, path: str, *, offset: int = 0
    ) -> AbstractContextManager[ByteStream]:
        """Stream one file from ``offset`` on (``Range``): each call must finish within Adobe's 60 s."""
        return self.core.stream(
            self.url(f"{DATA_ACCESS}/files/{dataset_file_id}"), params={"path": path}, offset=offset
        )

    def check_access(self) -> None:
        # The token comes from IMS; this read proves the Platform host, org and sandbox headers.
        self.call("GET", EXPORT_JOBS, params={"limit": 1})


def _unwrap_keyed(body: Any, key: str) -> dict[str, Any]:
    if isinstance(body, Mapping) and isinstance(body.get(key), Mapping):
        return dict(body[key])
    raise VendorAPIError(
        AdobeExperiencePlatformHook.vendor,
        status_code=200,
        error_key=None,
        message=f"the Catalog response has no entry for {key}",
        method="GET",
        url=CATALOG,
    )
