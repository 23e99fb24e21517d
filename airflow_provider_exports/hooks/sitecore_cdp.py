"""Sitecore CDP: OAuth2 client credentials and the Audience export REST API (v2).

The API only reads exports that are defined and scheduled in Sitecore: the latest finished job's
output, the jobs (reports) of an export, and the output of one job. Output URLs are presigned:
they are returned inside :class:`ExportOutput` (hidden from ``repr``) and never logged.

Sources: vendor-apis README §1. Paths and fields come from public clients (§1.4a); they are kept in
:data:`ENDPOINTS` so a correction is one line.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from functools import cached_property
from typing import Any
from urllib.parse import unquote, urlsplit

from airflow_provider_exports.exceptions import ExportConfigError
from airflow_provider_exports.hooks._auth import AuthScheme, ClientCredentialsAuth
from airflow_provider_exports.hooks._base import (
    AccessCheck,
    ConnectionFailure,
    ExportsVendorHook,
    FieldProblems,
    normalise_host,
)
from airflow_provider_exports.hooks._http import HttpClient
from airflow_provider_exports.hooks._retry import RetryPolicy
from airflow_provider_exports.hooks._untrusted import Answer, IdFormat, api_path, describe
from airflow_provider_exports.utils.waiting import JobPoke, PokeEvent

REGION_HOSTS: Mapping[str, str] = {
    "AP": "https://api-engage-ap.sitecorecloud.io",
    "EU": "https://api-engage-eu.sitecorecloud.io",
    "JP": "https://api-engage-jpe.sitecorecloud.io",
    "US": "https://api-engage-us.sitecorecloud.io",
}
AUTH_HOST = "https://auth.sitecorecloud.io"
TOKEN_PATH = "/oauth/token"
TOKEN_AUDIENCE = "https://api.sitecorecloud.io"

ENDPOINTS: Mapping[str, str] = {
    "latest_export": "/v2/audienceExports/definitions/{ref}/latestExport",
    "reports": "/v2/audienceExports/definitions/{ref}/reports",
    "execution_export": "/v2/audienceExports/executions/{ref}/export",
}
# An export ref no one defines: the connection test reads its reports and expects a 404.
CONNECTION_TEST_REF = "airflow_provider_exports_connection_test"


class SitecoreJobStatus(StrEnum):
    """An export job's (a report's) ``status`` (vendor-apis README §1): pending while it runs, then
    ``SUCCESS``, ``FAILED`` or ``ALERT``. A value Sitecore may add is read as not a success and not
    a failure: the wait goes on."""

    PENDING_GUEST_CONTEXT = "PENDING_GUEST_CONTEXT"
    PENDING_SEGMENTATION = "PENDING_SEGMENTATION"
    PENDING_EMR_SUBMIT = "PENDING_EMR_SUBMIT"
    PENDING_EMR_JOB = "PENDING_EMR_JOB"
    SUCCESS = "SUCCESS"
    FAILED = "FAILED"
    ALERT = "ALERT"


#: the statuses of a finished job that fail a wait (a sensor with ``fail_on_alert=False`` leaves out ALERT)
FAILED_STATUSES = frozenset({SitecoreJobStatus.FAILED, SitecoreJobStatus.ALERT})

_UUID = "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
EXPORT_REF = IdFormat(
    re.compile(rf"[a-z0-9_]+|{_UUID}"),
    "an audience export's friendly ID (lowercase letters, digits, underscores) or UUID reference",
)
EXECUTION_REF = IdFormat(re.compile(_UUID), "an export job reference (a UUID)")


def check_export_ref(value: str, field_name: str = "audience_export_ref") -> str:
    """An audience export is named by its friendly ID (``[a-z0-9_]``) or its UUID reference."""
    if not isinstance(value, str):  # a number is no friendly ID, even if its digits would be
        raise ExportConfigError(field_name, f"{value!r} is not {EXPORT_REF.description}")
    return EXPORT_REF.check(value, field_name)


def check_execution_ref(value: str, field_name: str = "execution_ref") -> str:
    return EXECUTION_REF.check(value, field_name)


def reports_path(audience_export_ref: str) -> str:
    return api_path(ENDPOINTS["reports"], ref=check_export_ref(audience_export_ref))


def parse_timestamp(value: str | None) -> datetime | None:
    """Sitecore timestamps are RFC 3339 (``...Z``, milliseconds); ``None`` when absent."""
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


@dataclass(frozen=True)
class ExportFileRef:
    """One output file of a job: a presigned URL (a bearer credential, never shown) and its size."""

    url: str = field(repr=False)
    size_kb: int

    @property
    def name(self) -> str:
        return unquote(urlsplit(self.url).path.rsplit("/", 1)[-1])


@dataclass(frozen=True)
class ExportOutput:
    """The output listing of one finished export job."""

    execution_ref: str
    definition_ref: str
    friendly_id: str
    expire_at: datetime | None
    total_size_kb: int
    files: tuple[ExportFileRef, ...]

    @classmethod
    def from_json(cls, body: Any, url: str) -> ExportOutput:
        """The listing Sitecore answered at ``url``; one not as documented (no ``executionRef``, a
        file without a URL, a size or a time that is not one) fails naming the field."""
        answer = Answer(SitecoreCDPHook.vendor, url, "the job's output")
        exports = body.get("exports") or [] if isinstance(body, Mapping) else None
        if not isinstance(exports, list) or not all(isinstance(f, Mapping) for f in exports):
            raise answer.wrong("exports is not a list of objects" if exports else "it is not an object")
        try:
            expire_at = parse_timestamp(body.get("expireAt"))
        except (AttributeError, ValueError):
            raise answer.wrong(f"expireAt is {describe(body.get('expireAt'))}, not an RFC 3339 time") from None
        return cls(
            execution_ref=answer.text(body.get("executionRef"), "executionRef"),
            definition_ref=answer.text(body.get("definitionRef"), "definitionRef", ""),
            friendly_id=answer.text(body.get("friendlyId"), "friendlyId", ""),
            expire_at=expire_at,
            total_size_kb=answer.size(body.get("totalSizeKB"), "totalSizeKB"),
            files=tuple(
                ExportFileRef(
                    answer.text(f.get("url"), f"exports[{i}].url"),
                    answer.size(f.get("sizeKB"), f"exports[{i}].sizeKB"),
                )
                for i, f in enumerate(exports)
            ),
        )


@dataclass(frozen=True)
class SitecoreCDPSettings:
    client_id: str
    client_secret: str = field(repr=False)
    api_host: str
    auth_host: str


class SitecoreCDPHook(ExportsVendorHook[SitecoreCDPSettings]):
    """Sitecore CDP Audience export REST API.

    Connection: login = API key (client ID), password = API secret, extra ``region`` (AP, EU, JP,
    US) or ``api_host`` (a base-URL override), and optionally ``auth_host``.

    :param sitecore_cdp_conn_id: the Airflow connection id.
    """

    vendor = "Sitecore CDP"
    conn_name_attr = "sitecore_cdp_conn_id"
    default_conn_name = "sitecore_cdp_default"
    conn_type = "sitecore_cdp"
    hook_name = "Sitecore CDP"

    def __init__(
        self,
        sitecore_cdp_conn_id: str = default_conn_name,
        *,
        timeout: float = 60.0,
        retry: RetryPolicy | None = None,
    ) -> None:
        super().__init__(sitecore_cdp_conn_id, timeout=timeout, retry=retry)

    @classmethod
    def settings_from_connection(
        cls, login: str | None, password: str | None, extras: Mapping[str, Any]
    ) -> SitecoreCDPSettings:
        problems = FieldProblems()
        if not login:
            problems.add(
                "login",
                "the Sitecore CDP API key (client ID) is missing; give the key of Developer center > API keys",
            )
        if not password:
            problems.add(
                "password",
                "the Sitecore CDP API secret is missing; give the secret shown when the key was created",
            )
        api_host: str | None = None
        if extras.get("api_host"):
            api_host = problems.check(lambda: normalise_host(extras["api_host"], "extra.api_host"))
        else:
            region = str(extras.get("region") or "").upper()
            if region in REGION_HOSTS:
                api_host = REGION_HOSTS[region]
            else:
                problems.add(
                    "extra.region",
                    f"{extras.get('region')!r} is not a Sitecore CDP region; use one of "
                    f"{', '.join(REGION_HOSTS)}, or set extra.api_host",
                )
        auth_host = problems.check(
            lambda: normalise_host(extras.get("auth_host") or AUTH_HOST, "extra.auth_host")
        )
        problems.raise_any()
        return SitecoreCDPSettings(str(login), str(password), str(api_host), str(auth_host))

    def auth_scheme(self, settings: SitecoreCDPSettings) -> AuthScheme:
        return ClientCredentialsAuth(
            token_url=settings.auth_host + TOKEN_PATH,
            form={
                "grant_type": "client_credentials",
                "client_id": settings.client_id,
                "client_secret": settings.client_secret,
                "audience": TOKEN_AUDIENCE,
            },
        )

    def base_url(self, settings: SitecoreCDPSettings) -> str:
        return settings.api_host

    @cached_property
    def download_http(self) -> HttpClient:
        """HTTP for the presigned output URLs: they carry their own signature, so no token is sent."""
        return HttpClient(self.vendor, auth=None, timeout=self.timeout, retry=self.retry, guard=self.guard)

    def close(self) -> None:
        super().close()
        if "download_http" in self.__dict__:
            self.download_http.close()

    # -- the three reads

    def get_latest_export(self, audience_export_ref: str) -> ExportOutput:
        """Output URLs of the most recently finished job of an export."""
        path = api_path(ENDPOINTS["latest_export"], ref=check_export_ref(audience_export_ref))
        return ExportOutput.from_json(self.call("GET", path), self.url(path))

    def get_reports(self, audience_export_ref: str, *, deadline: float | None = None) -> list[dict[str, Any]]:
        """The jobs (reports) of an export, as Sitecore returns them; ``deadline``: epoch seconds by
        which the call ends, retries included (``DeadlineExceeded``)."""
        path = reports_path(audience_export_ref)
        return _report_list(self.call("GET", path, deadline=deadline), self.url(path))

    def get_execution_output(self, execution_ref: str) -> ExportOutput:
        """Output URLs of one finished job."""
        path = api_path(ENDPOINTS["execution_export"], ref=check_execution_ref(execution_ref))
        return ExportOutput.from_json(self.call("GET", path), self.url(path))

    async def aget_reports(
        self, audience_export_ref: str, *, deadline: float | None = None
    ) -> list[dict[str, Any]]:
        path = reports_path(audience_export_ref)
        return _report_list(await self.acall("GET", path, deadline=deadline), self.url(path))

    # Vendor is silent on a cheaper authenticated read (the API has no "list exports") and on its
    # status codes (vendor-apis README §1.4a): chosen, the reports of an export no one defines. A
    # reachable API that accepts the token answers 404 (200 if someone defined it); bad credentials
    # fail at the token endpoint, a token the API host refuses (another region's tenant) with 401/403.
    access_check = AccessCheck(ENDPOINTS["reports"].format(ref=CONNECTION_TEST_REF), expected=(200, 404))

    def connection_hint(self, settings: SitecoreCDPSettings, failure: ConnectionFailure) -> str:
        region = next((r for r, host in REGION_HOSTS.items() if host == settings.api_host), None)
        api_field = f"extra.region ({region})" if region else f"extra.api_host ({settings.api_host})"
        if failure == "credentials_refused":
            return "Check login (the API key, i.e. client ID) and password (the API secret)"
        if failure == "api_refused":
            return (
                f"A token was issued, but the API host refused it: check {api_field}; an API key "
                "works only in the region of its tenant"
            )
        if failure == "auth_unreachable":
            return f"Check extra.auth_host ({settings.auth_host}) and this machine's network"
        return f"Check {api_field} and this machine's network"


def _report_list(body: Any, path: str) -> list[dict[str, Any]]:
    """The reports Sitecore answered at ``path``, each an object whose times are RFC 3339 (else a
    :class:`VendorAPIError` naming the report and field: the wait compares them)."""
    # Vendor is silent on paging of `reports` (vendor-apis README §1.4a): a bare array is read
    # whole; an envelope with a list under a common key is accepted too.
    reports: list[Any] = []
    if isinstance(body, list):
        reports = body
    elif isinstance(body, Mapping):
        reports = next((list(body[k]) for k in ("items", "reports", "data") if isinstance(body.get(k), list)), [])
    answer = Answer(SitecoreCDPHook.vendor, path, "the export's reports")
    for i, report in enumerate(reports):
        if not isinstance(report, Mapping):
            raise answer.wrong(f"reports[{i}] is not an object")
        for key in ("startTime", "endTime"):
            try:
                parse_timestamp(report.get(key))
            except (AttributeError, ValueError):
                raise answer.wrong(f"reports[{i}].{key} is {describe(report.get(key))}, not an RFC 3339 time") from None
    return reports


# -- the wait for a new finished job of an export --------------------------------------------------


def poke_export(
    audience_export_ref: str, finished_after: datetime | None, fail_statuses: Collection[str]
) -> JobPoke:
    """One poke at an export: its reports, read for a job that finished after ``finished_after``
    (see :func:`export_event`). A bad reference raises :class:`ExportConfigError` before any request."""
    path = reports_path(audience_export_ref)
    reports = _report_list((yield ("GET", path, None)), path)
    return export_event(audience_export_ref, reports, finished_after, fail_statuses)


def export_event(
    audience_export_ref: str,
    reports: list[dict[str, Any]],
    finished_after: datetime | None,
    fail_statuses: Collection[str],
) -> PokeEvent:
    """Whether an export's reports show a job that finished successfully after ``finished_after``;
    a success's result is that job's ``executionRef``.

    A successful job wins over a failed one; a failure (a status in ``fail_statuses``) counts only
    when it is the newest job that ended after ``finished_after`` and no job succeeded since.
    Anything else (pending jobs, no job, only older ones) means: keep waiting, for the newest job.
    """

    def ended(report: Mapping[str, Any]) -> datetime | None:
        return parse_timestamp(report.get("endTime"))

    def is_new(report: Mapping[str, Any]) -> bool:
        end = ended(report)
        return end is not None and (finished_after is None or end > finished_after)

    finished = sorted((r for r in reports if is_new(r)), key=lambda r: ended(r))  # type: ignore[arg-type,return-value]
    successes = [r for r in finished if r.get("status") == SitecoreJobStatus.SUCCESS]
    report: Mapping[str, Any] | None
    if successes:
        state, report = "success", successes[-1]
    elif finished and finished[-1].get("status") in fail_statuses:
        state, report = "failed", finished[-1]
    else:
        newest = max(reports, key=lambda r: r.get("startTime") or r.get("endTime") or "", default=None)
        state, report = "waiting", newest
    # One line for the task log each poke: the newest job, its status and end, and why the wait goes on.
    description = f"export {audience_export_ref}: {_job_line(report)}; {_why(state, report, finished_after)}"
    found: Mapping[str, Any] = report or {}
    ref, status = found.get("executionRef"), found.get("status")
    if state == "success":
        return PokeEvent("success", description, result=ref, job_ref=ref, job_status=status)
    if state == "failed":
        errors = list(found.get("errorLogs") or [])
        details = {k: found[k] for k in FAILURE_DETAILS if k in found}
        return PokeEvent("failed", description, job_ref=ref, job_status=status, errors=errors, details=details)
    return PokeEvent("waiting", description, job_ref=ref, job_status=status)


def _job_line(report: Mapping[str, Any] | None) -> str:
    """The job: ``job <ref> status <status> ended <time or ->`` (or ``no job yet``)."""
    if report is None:
        return "no job yet"
    return f"job {report.get('executionRef')} status {report.get('status')} ended {report.get('endTime') or '-'}"


def _why(state: str, report: Mapping[str, Any] | None, finished_after: datetime | None) -> str:
    """How the job compares with ``finished_after``: while waiting, why the wait goes on."""
    after = finished_after.isoformat() if finished_after is not None else None
    if state != "waiting":
        return f"it ended after finished_after {after}" if after else "any finished job counts"
    wanted = f"a job that ends after finished_after {after}" if after else "a job to finish"
    if report is None:
        return f"waiting for {wanted}"
    ended = parse_timestamp(report.get("endTime"))
    if ended is None:
        return f"the newest job has not ended; waiting for {wanted}"
    if finished_after is not None and ended <= finished_after:
        return (
            f"too old: the newest job ended at or before finished_after {after}; "
            "waiting for a job that ends after it"
        )
    return f"the newest job is not a success and does not fail the wait; waiting for {wanted}"


#: the counters of a report worth showing when its job failed
FAILURE_DETAILS = (
    "total", "successes", "failures", "filterFailures", "filterMatchedGuests", "filterNotMatchedGuests"
)
