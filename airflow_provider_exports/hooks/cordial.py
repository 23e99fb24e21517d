"""Cordial: HTTP Basic with the account API key, the audience-trends export and the jobs resource.

Sources: vendor-apis README §2 and Cordial's Swagger v2 (``cordial-v2-openapi-original.json``).
An audience-trends export is daily population counts per audience (not members); Cordial writes
the CSV to the destination the request names, and reports progress through ``/v2/jobs``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from airflow_provider_exports.exceptions import ExportConfigError
from airflow_provider_exports.hooks._base import ExportsVendorHook, normalise_host
from airflow_provider_exports.hooks._http import AuthScheme, BasicAuth, RetryPolicy

API_HOSTS = ("api.cordial.io", "api.usw2.cordial.io")
TERMINAL_STATUSES = frozenset({"Done", "Failed"})
# Docs list Scheduled, Pending, Processing, Failed, Done; the spec's list filter adds Throttled.
ACTIVE_STATUSES = frozenset({"Scheduled", "Pending", "Processing", "Throttled"})

# Required destination fields per type, from the 400 messages of SourceAE (vendor-apis README §2.3).
DESTINATION_FIELDS: Mapping[str, tuple[str, ...]] = {
    "AWS": (),
    "S3": ("aws_bucket", "aws_region", "path"),
    "GCS": ("gcs_bucket", "path"),
    "FTP": ("server", "username", "path"),
    "SFTP": ("server", "username", "path"),
    "AZUREBLOB": ("account", "container", "path"),
}
_EXPORT_NAME = re.compile(r"[A-Za-z0-9-]+")


def check_export_name(name: str) -> str:
    if not isinstance(name, str) or not _EXPORT_NAME.fullmatch(name):
        raise ExportConfigError("name", f"{name!r} may only contain letters, numbers and dashes")
    return name


def check_timeframe(start: str | date, end: str | date) -> tuple[str, str]:
    """Both dates present, ISO-8601, and the end not before the start."""
    parsed = []
    for field_name, value in (("selected_timeframe_start", start), ("selected_timeframe_end", end)):
        text = value.isoformat() if isinstance(value, date) else str(value or "")
        try:
            parsed.append(date.fromisoformat(text[:10]))
        except ValueError:
            raise ExportConfigError(field_name, f"{value!r} is not an ISO-8601 date (YYYY-MM-DD)") from None
    if parsed[1] < parsed[0]:
        raise ExportConfigError("selected_timeframe_end", f"{end} is before selected_timeframe_start {start}")
    return parsed[0].isoformat(), parsed[1].isoformat()


def check_destination(destination: Mapping[str, Any]) -> Mapping[str, Any]:
    kind = str(destination.get("type") or "")
    if kind not in DESTINATION_FIELDS:
        raise ExportConfigError(
            "destination.type", f"{kind!r} is not allowed; use one of {', '.join(DESTINATION_FIELDS)}"
        )
    missing = [f for f in DESTINATION_FIELDS[kind] if not destination.get(f)]
    if missing:
        raise ExportConfigError(f"destination.{missing[0]}", f"is required when destination.type is {kind}")
    return destination


@dataclass(frozen=True)
class CordialSettings:
    api_key: str = field(repr=False)
    api_host: str


class CordialHook(ExportsVendorHook[CordialSettings]):
    """Cordial REST API v2.

    Connection: password = API key; extra ``api_host`` is ``api.cordial.io`` (default),
    ``api.usw2.cordial.io``, or a full URL override.

    :param cordial_conn_id: the Airflow connection id.
    """

    vendor = "Cordial"
    conn_name_attr = "cordial_conn_id"
    default_conn_name = "cordial_default"
    conn_type = "cordial"
    hook_name = "Cordial"

    def __init__(
        self,
        cordial_conn_id: str = default_conn_name,
        *,
        timeout: float = 60.0,
        retry: RetryPolicy | None = None,
    ) -> None:
        super().__init__(cordial_conn_id, timeout=timeout, retry=retry)

    @classmethod
    def settings_from_connection(
        cls, login: str | None, password: str | None, extras: Mapping[str, Any]
    ) -> CordialSettings:
        if not password:
            raise ExportConfigError("password", "the Cordial API key is missing")
        return CordialSettings(
            password, normalise_host(extras.get("api_host") or API_HOSTS[0], "extra.api_host")
        )

    def auth_scheme(self, settings: CordialSettings) -> AuthScheme:
        return BasicAuth(settings.api_key, "")

    def base_url(self, settings: CordialSettings) -> str:
        return settings.api_host

    def create_audience_trends_export(
        self,
        *,
        name: str,
        audiences: Sequence[str],
        selected_timeframe_start: str | date,
        selected_timeframe_end: str | date,
        destination: Mapping[str, Any],
        export_type: str = "csv",
    ) -> str:
        """Create an audience-trends export job; returns its ``jobId``.

        Not retried after a 5xx or a dropped connection: the job may exist already.
        """
        if not audiences:
            raise ExportConfigError("audiences", "give at least one audience name")
        start, end = check_timeframe(selected_timeframe_start, selected_timeframe_end)
        body = {
            "name": check_export_name(name),
            "exportType": export_type,
            "destination": dict(check_destination(destination)),
            "selected_timeframe_start": start,
            "selected_timeframe_end": end,
            "audiences": list(audiences),
        }
        result = self.call("POST", "/v2/audiencetrendsexport", json=body)
        return str(result["jobId"])

    def get_job(self, job_id: str, *, deadline: float | None = None) -> dict[str, Any]:
        """One job; ``deadline`` (epoch seconds) bounds the call, retries included."""
        return self.call("GET", f"/v2/jobs/{job_id}", deadline=deadline)

    async def aget_job(self, job_id: str, *, deadline: float | None = None) -> dict[str, Any]:
        return await self.acall("GET", f"/v2/jobs/{job_id}", deadline=deadline)

    def list_jobs(
        self,
        *,
        job_name: str | None = None,
        status: str | None = None,
        times: Mapping[str, str] | None = None,
        per_page: int = 25,
        max_pages: int | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Jobs matching the filters, page by page until a short page.

        :param times: filters such as ``{"start][gte": "2026-01-01"}`` become ``times[start][gte]``.
        """
        params: dict[str, Any] = {"per_page": per_page}
        if job_name:
            params["jobName"] = job_name
        if status:
            params["status"] = status
        for key, value in (times or {}).items():
            params[f"times[{key}]"] = value
        page = 1
        while max_pages is None or page <= max_pages:
            # Vendor is silent on paging headers (vendor-apis README §2.4): a page shorter than
            # per_page is taken as the last one.
            batch = self.call("GET", "/v2/jobs", params={**params, "page": page}) or []
            yield from batch
            if len(batch) < per_page:
                return
            page += 1

    def check_access(self) -> None:
        # Basic auth has no token endpoint: this read is the whole credential check.
        self.call("GET", "/v2/jobs", params={"per_page": 1})
