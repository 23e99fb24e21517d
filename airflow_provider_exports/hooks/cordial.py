"""Cordial: HTTP Basic with the account API key, the two export creators and the jobs resource.

Sources: vendor-apis README §2, Cordial's Swagger v2 (``cordial-v2-openapi-original.json``) and
Cordial's "Contact exports API" article (https://support.cordial.com/hc/en-us/articles/203886068).
An audience-trends export is daily population counts per audience (not members); a contact export
is an audience's members. Cordial writes the file to the destination the request names and
reports progress through ``/v2/jobs``; a create call answers only the new job's ``jobId``.

The request bodies are built and checked here, so the operators check literal values when the DAG
is parsed with the same functions the hook runs before it sends anything. Every error names the
field and what is allowed.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from enum import StrEnum
from typing import Any

from airflow_provider_exports.exceptions import (
    ExportConfigError,
    ExportJobMayExist,
    VendorAPIError,
    VendorNotFoundError,
)
from airflow_provider_exports.hooks._answers import provably_not_sent, redact_url
from airflow_provider_exports.hooks._auth import AuthScheme, BasicAuth
from airflow_provider_exports.hooks._base import (
    AccessCheck,
    ConnectionFailure,
    ExportsVendorHook,
    FieldProblems,
    normalise_host,
)
from airflow_provider_exports.hooks._http import HttpClient
from airflow_provider_exports.hooks._retry import RetryPolicy
from airflow_provider_exports.hooks._untrusted import Answer, IdFormat, PageBudget, api_path, unusable_answer
from airflow_provider_exports.utils.waiting import JobPoke, PokeEvent

VENDOR = "Cordial"
API_HOSTS = ("api.cordial.io", "api.usw2.cordial.io")
PATHS = {
    "audience_trends": "/v2/audiencetrendsexport",
    "contacts": "/v2/contactexports",
    "jobs": "/v2/jobs",
    "job": "/v2/jobs/{job_id}",
}


class CordialJobStatus(StrEnum):
    """A job's ``status``: the docs list Scheduled, Pending, Processing, Failed and Done; the spec's
    list filter adds Throttled. Only Done and Failed end a job; any other value, one Cordial may add
    included, means it is still running."""

    SCHEDULED = "Scheduled"
    PENDING = "Pending"
    PROCESSING = "Processing"
    THROTTLED = "Throttled"
    FAILED = "Failed"
    DONE = "Done"


# Vendor is silent on whether a job that has not started yet carries `times.start` (TimesJ: "Time
# when job starts execution"): jobs in these statuses are also looked up without a time filter.
NOT_STARTED_STATUSES = (CordialJobStatus.SCHEDULED, CordialJobStatus.PENDING, CordialJobStatus.THROTTLED)

# Required destination fields per type, from the 400 messages of SourceAE (vendor-apis README §2.3).
# The types are spelled as C-V2 DestinationObject.type lists them ("Possible values: AWS, FTP, SFTP,
# S3, GCS, AZUREBLOB"; it has no enum), and always sent so. Vendor is silent on whether Cordial also
# takes other cases (vendor-apis README §2.3: C-ATE's examples send "s3", its list says S3; the v1
# Swagger's enums are lower case): chosen: a user's type is taken in either case and sent upper case.
DESTINATION_FIELDS: Mapping[str, tuple[str, ...]] = {
    "AWS": (),
    "S3": ("aws_bucket", "aws_region", "path"),
    "GCS": ("gcs_bucket", "path"),
    "FTP": ("server", "username", "path"),
    "SFTP": ("server", "username", "path"),
    "AZUREBLOB": ("account", "container", "path"),
}
# C-ATE: destination.port is "required if type is FTP or SFTP": the connection's, else the protocol's.
DEFAULT_PORTS: Mapping[str, int] = {"SFTP": 22, "FTP": 21}
# Object stores: the path is a key prefix, which has no root (see destination_path).
OBJECT_STORE_TYPES = ("S3", "GCS", "AZUREBLOB")
_EXPORT_NAME = re.compile(r"[A-Za-z0-9-]+")
# C-V2: a jobId is a "Mongo ID" (SupplementImportConfigSuccess), as in GET /v2/jobs/{id}'s example
# 548817d0367df1ef518b4567 and every jobId example: a MongoDB ObjectId, 24 hexadecimal digits.
JOB_ID = IdFormat(
    re.compile(r"[0-9a-fA-F]{24}"),
    "a Cordial job id (the jobId a create call answers: 24 hexadecimal digits, "
    "e.g. 548817d0367df1ef518b4567)",
)


def check_job_id(job_id: Any, field_name: str = "job_id") -> str:
    """A Cordial job id, checked before it goes into a URL path."""
    return JOB_ID.check(job_id, field_name)


def check_export_name(name: Any) -> str:
    """C-ATE and the contact exports article: "may only contain letters, numbers, and dashes"."""
    if not isinstance(name, str) or not _EXPORT_NAME.fullmatch(name):
        raise ExportConfigError("name", f"{name!r} may only contain letters, numbers and dashes")
    return name


def check_date(value: Any, field_name: str) -> date:
    """One timeframe date, ISO-8601 (checked on its own while the other is still a template)."""
    text = value.isoformat() if isinstance(value, date) else str(value or "")
    try:
        return date.fromisoformat(text[:10])
    except ValueError:
        raise ExportConfigError(field_name, f"{value!r} is not an ISO-8601 date (YYYY-MM-DD)") from None


def check_timeframe(start: str | date, end: str | date) -> tuple[str, str]:
    """Both dates present, ISO-8601, and the end not before the start."""
    first = check_date(start, "selected_timeframe_start")
    last = check_date(end, "selected_timeframe_end")
    if last < first:
        raise ExportConfigError("selected_timeframe_end", f"{end} is before selected_timeframe_start {start}")
    return first.isoformat(), last.isoformat()


def check_names(values: Any, field_name: str, what: str) -> list[str]:
    """A non-empty list of non-empty strings (audience names, contact fields)."""
    if isinstance(values, str) or not isinstance(values, Sequence) or not values:
        raise ExportConfigError(field_name, f"give a list of at least one {what}, got {values!r}")
    bad = [v for v in values if not isinstance(v, str) or not v.strip()]
    if bad:
        raise ExportConfigError(field_name, f"{bad[0]!r} is not a {what}; give non-empty strings")
    return list(values)


def check_lists(lists: Any) -> list[int]:
    """List IDs. Cordial's article also allows list names, but its Swagger types the items as
    numbers, and every request this hook sends must satisfy the Swagger."""
    if lists is None:
        return []
    if isinstance(lists, str) or not isinstance(lists, Sequence):
        raise ExportConfigError("lists", f"give a list of list IDs (integers), got {lists!r}")
    ids = []
    for value in lists:
        if isinstance(value, bool) or not (
            isinstance(value, int) or (isinstance(value, str) and value.isdigit())
        ):
            raise ExportConfigError(
                "lists", f"{value!r} is not a list ID; Cordial's spec takes list IDs (integers) only"
            )
        ids.append(int(value))
    return ids


def check_export_type(export_type: Any) -> str:
    kind = str(export_type or "").lower()
    if kind not in ("csv", "json"):
        raise ExportConfigError("export_type", f"{export_type!r} is not allowed; use csv or json")
    return kind


def check_account_id(account_id: Any) -> int:
    """Cordial's account ID, an integer the spec requires in every contact export request."""
    whole = isinstance(account_id, int) or (isinstance(account_id, str) and account_id.strip().isdigit())
    if isinstance(account_id, bool) or not whole or int(account_id) < 1:
        raise ExportConfigError("account_id", f"{account_id!r} is not an account ID; give a positive integer")
    return int(account_id)


def check_flag(value: Any, field_name: str) -> bool:
    if not isinstance(value, bool):
        raise ExportConfigError(field_name, f"{value!r} is not allowed; use True or False")
    return value


def destination_type(value: Any) -> str:
    """A destination type in the spec's spelling (upper case), given in either case."""
    kind = value.upper() if isinstance(value, str) else ""
    if kind not in DESTINATION_FIELDS:
        raise ExportConfigError(
            "destination.type",
            f"{value!r} is not allowed; use one of {', '.join(DESTINATION_FIELDS)} (in either case)",
        )
    return kind


def destination_path(kind: str, path: Any) -> str:
    """The folder path as it is sent: C-ATE says to omit the trailing slash "to avoid duplicate
    slashes being added by default", so Cordial writes ``<path>/<file name>`` (:func:`delivered_key`).

    Vendor is silent on a leading slash (vendor-apis README §2.3): chosen: an object store's path
    (S3, GCS, Azure Blob: a key prefix) is sent without one, so the key is ``exports/<name>``
    whether Cordial keeps a leading slash or drops it; an FTP/SFTP path keeps it (absolute, not
    relative to the login's home), and ``/`` stays the server's root.
    """
    text = path.strip() if isinstance(path, str) else ""
    sent = text.strip("/") if kind in OBJECT_STORE_TYPES else (text.rstrip("/") or text[:1])
    if not sent:
        where = "a key prefix in the bucket, e.g. 'exports'" if kind in OBJECT_STORE_TYPES else "a folder"
        raise ExportConfigError(
            "destination.path", f"{path!r} names no folder; Cordial requires one for {kind}: give {where}"
        )
    return sent


def delivered_key(path: str, file_name: str) -> str:
    """Where Cordial writes an export's file: ``<path>/<file name>``, ``path`` as it was sent."""
    return f"{path}/{file_name}"


def check_port(value: Any) -> int:
    whole = isinstance(value, int) or (isinstance(value, str) and value.strip().isdigit())
    if isinstance(value, bool) or not whole or not 1 <= int(value) <= 65535:
        raise ExportConfigError("destination.port", f"{value!r} is not a port; give a number from 1 to 65535")
    return int(value)


def check_destination(destination: Mapping[str, Any]) -> dict[str, Any]:
    """A request's ``destination`` object as it is sent: a documented type in the spec's spelling,
    that type's required fields, the path as the seed recommends, and a port for FTP and SFTP."""
    kind = destination_type(destination.get("type"))
    missing = [f for f in DESTINATION_FIELDS[kind] if not destination.get(f)]
    if missing:
        raise ExportConfigError(f"destination.{missing[0]}", f"is required when destination.type is {kind}")
    sent = {**destination, "type": kind}
    if "path" in DESTINATION_FIELDS[kind]:
        sent["path"] = destination_path(kind, destination["path"])
    if kind in DEFAULT_PORTS:
        port = destination.get("port")
        sent["port"] = DEFAULT_PORTS[kind] if port is None or port == "" else check_port(port)
    return sent


def audience_trends_body(
    *,
    name: str,
    audiences: Sequence[str],
    selected_timeframe_start: str | date,
    selected_timeframe_end: str | date,
    destination: Mapping[str, Any],
) -> dict[str, Any]:
    """The checked ``SourceAE`` body of ``POST /v2/audiencetrendsexport``."""
    start, end = check_timeframe(selected_timeframe_start, selected_timeframe_end)
    return {
        "name": check_export_name(name),
        "exportType": "csv",  # the only value of SourceAE.exportType
        "destination": check_destination(destination),
        "selected_timeframe_start": start,
        "selected_timeframe_end": end,
        "audiences": check_names(audiences, "audiences", "audience name"),
    }


def contact_export_body(
    *,
    name: str,
    fields: Sequence[str],
    account_id: int | str,
    destination: Mapping[str, Any],
    audience_key: str | None = None,
    lists: Sequence[int] | None = None,
    export_type: str = "csv",
    compress: bool = False,
    show_header: bool = True,
) -> dict[str, Any]:
    """The checked ``SourceCE`` body of ``POST /v2/contactexports`` (required: ``destination``,
    ``fields``, ``accountId``)."""
    body: dict[str, Any] = {
        "name": check_export_name(name),
        # The article's example sends "csv" (its list says CSV, JSON): lower case, as for trends.
        "exportType": check_export_type(export_type),
        "destination": check_destination(destination),
        "fields": check_names(fields, "fields", "contact field"),
        "accountId": check_account_id(account_id),
        "compress": check_flag(compress, "compress"),
        "showHeader": check_flag(show_header, "show_header"),
    }
    if audience_key is not None and audience_key != "":
        if not isinstance(audience_key, str) or not audience_key.strip():
            raise ExportConfigError("audience_key", f"{audience_key!r} is not a saved audience name")
        body["audience-key"] = audience_key
    ids = check_lists(lists)
    if ids:
        body["lists"] = ids
    return body


def means_no_jobs(exc: VendorAPIError) -> bool:
    """Whether an error is how C-V2 answers ``GET /v2/jobs`` when no job matches: 404
    ``RecordNotFound`` (``{"error": true, "errorKey": "RECORD_NOT_FOUND", "message": "record not
    found"}``). Any other 404 (a proxy's page, a path that is not the API's) stays an error.

    Vendor is silent on whether every such answer carries ``errorKey`` (RecordNotFound requires
    only ``error`` and ``message``; vendor-apis README §2.4): chosen: the key RECORD_NOT_FOUND, or
    no key and the message "record not found".
    """
    if exc.http_status != 404:
        return False
    if exc.error_key is not None:
        return exc.error_key == "RECORD_NOT_FOUND"
    return exc.message.strip().lower() == "record not found"


def jobs_since_filter(started_since: datetime) -> str:
    """The ``times[start][gte]`` value for jobs started since ``started_since``: a day, in the
    format of the only documented example (C-JOBS: ``times[start][gte]=01-01-2018``).

    Vendor is silent on the formats the filter takes and on whose day it means (vendor-apis README
    §2.4): chosen: ``MM-DD-YYYY`` (month first, as a US vendor writes dates; the example reads the
    same either way), and the UTC day *before* ``started_since``'s, so that a day read as midnight
    in any time zone (UTC-12 to UTC+14) begins before ``started_since``. The list is then cut to the
    exact window by :meth:`CordialHook.find_jobs_by_name`.

    The day sent is moved back, if needed, to one whose day of the month is at most its month
    (the 5th of December stays; the 20th of March becomes the 3rd): read day first instead (PHP's
    ``strtotime`` reads dashed dates so), it is then the same day or an earlier one, never a later
    one that would hide a job this run already created. The cost: up to a month more of jobs read.
    """
    day = (started_since.astimezone(timezone.utc) - timedelta(days=1)).date()
    return day.replace(day=min(day.day, day.month)).strftime("%m-%d-%Y")


def job_started_before(job: Mapping[str, Any], moment: datetime) -> bool:
    """Whether a job's ``times.start`` (JobJ: date-time) is before ``moment``. A job without a start
    (not started yet) is not; neither is one whose start cannot be read, which is left to
    Cordial's own filter (a job dropped wrongly would be created a second time)."""
    start = (job.get("times") or {}).get("start")
    try:
        started = datetime.fromisoformat(str(start))
    except ValueError:
        return False
    if started.tzinfo is None:
        # Vendor is silent on a start without an offset: read as UTC, as JobJ's other times.
        started = started.replace(tzinfo=timezone.utc)
    return started < moment


def _job_path(job_id: Any) -> str:
    return api_path(PATHS["job"], job_id=check_job_id(job_id))


def _unusable_job_id(content: bytes, job_id: Any) -> str:
    """How a create call's answer fails to name its job, for :class:`ExportJobMayExist`."""
    if not content:
        return "an empty body"
    if job_id is None or job_id == "":
        return "a body without a jobId"
    return f"a jobId that is not a Cordial job id ({repr(job_id)[:80]})"


def _first_text(record: Mapping[str, Any], keys: Sequence[str]) -> str | None:
    """The first of ``keys`` whose value in ``record`` is a non-empty string."""
    return next((str(record[key]) for key in keys if isinstance(record.get(key), str) and record[key]), None)


def job_record(body: Any, url: str) -> dict[str, Any]:
    """A job record (JobJ) as Cordial answered it at ``url``: an object whose ``result``,
    ``metadata`` and ``times`` are objects where given, else :class:`VendorAPIError` naming them."""
    return Answer(VENDOR, url, "the job record").record(body, objects=("result", "metadata", "times"))


def job_id_of(job: Mapping[str, Any]) -> str | None:
    # Vendor is silent on the id field of a job record (vendor-apis README §2.4: JobJ has none):
    # `_id`, as in Cordial's MongoDB-style ids; `id` and `jobId` are taken too.
    return _first_text(job, ("_id", "id", "jobId"))


def job_file_name(job: Mapping[str, Any]) -> str | None:
    """The file name a job reports in ``metadata`` (JobMetadataJ has ``fileName`` and ``filename``)."""
    return _first_text(job.get("metadata") or {}, ("fileName", "filename"))


# -- the wait for one job ------------------------------------------------------------------------


def job_event(job_id: str, job: Mapping[str, Any]) -> PokeEvent:
    """What one job record says; a Done job's result is a small summary of it (JSON, no secret)."""
    status = str(job.get("status"))
    done, total = job.get("completedItems"), job.get("totalItems")
    progress = f", {done} of {total} items" if total is not None else ""
    description = f"Cordial job {job_id}: status {status}{progress}"
    if status == CordialJobStatus.DONE:
        summary = {
            "job_id": job_id,
            "status": status,
            "file_name": job_file_name(job),
            "total_records": (job.get("result") or {}).get("totalRecords"),
        }
        return PokeEvent("success", description, result=summary, job_ref=job_id, job_status=status)
    if status == CordialJobStatus.FAILED:
        result = job.get("result") or {}
        errors = [f"{result['error']} record(s) in error"] if result.get("error") else []
        # the details: the record's result counters and error, and its item counts
        details = {**result, **{key: job[key] for key in ("totalItems", "completedItems") if key in job}}
        return PokeEvent(
            "failed", description, job_ref=job_id, job_status=status, errors=errors, details=details
        )
    return PokeEvent("waiting", description, job_ref=job_id, job_status=status)


def poke_job(job_id: str) -> JobPoke:
    """One poke at a job: ``GET /v2/jobs/{id}`` (a ``job_id`` that is not a Cordial job id raises
    :class:`ExportConfigError` before any request)."""
    path = _job_path(job_id)
    return job_event(job_id, job_record((yield ("GET", path, None)), path))


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

    vendor = VENDOR
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
        problems = FieldProblems()
        if not password:
            problems.add("password", "the Cordial API key is missing; give a key of Cordial's API Keys page")
        api_host = problems.check(
            lambda: normalise_host(extras.get("api_host") or API_HOSTS[0], "extra.api_host")
        )
        problems.raise_any()
        return CordialSettings(str(password), str(api_host))

    def auth_scheme(self, settings: CordialSettings) -> AuthScheme:
        return BasicAuth(settings.api_key, "")

    def base_url(self, settings: CordialSettings) -> str:
        return settings.api_host

    # -- creating jobs

    def create_audience_trends_export(self, **arguments: Any) -> str:
        """Create an audience-trends export job from :func:`audience_trends_body`'s arguments;
        returns its ``jobId`` (see :meth:`create_job`)."""
        return self.create_job(PATHS["audience_trends"], audience_trends_body(**arguments))

    def create_contact_export(self, **arguments: Any) -> str:
        """Create a contact export job (an audience's members) from :func:`contact_export_body`'s
        arguments; returns its ``jobId`` (see :meth:`create_job`)."""
        return self.create_job(PATHS["contacts"], contact_export_body(**arguments))

    def create_job(self, path: str, body: Mapping[str, Any]) -> str:
        """``POST`` a checked export body; the new job's ``jobId``.

        The core repeats the POST only when it provably did not run (no connection, a 429). Any
        other failure after sending (a 5xx, a lost connection) and a 200 without a ``jobId``
        (Cordial's spec gives the trends 200 no schema) leave the job's existence unknown:
        :class:`ExportJobMayExist`, never a second POST. 4xx answers raise as they are.
        """
        name = str(body.get("name"))
        try:
            response = self.http.request("POST", self.url(path), json=dict(body))
        except VendorAPIError as exc:
            if provably_not_sent(exc) or (exc.http_status is not None and exc.http_status < 500):
                raise
            raise ExportJobMayExist(VENDOR, name, exc.summary) from exc
        try:
            answer = response.json() if response.content else None
        except ValueError:
            answer = None
        job_id = answer.get("jobId") if isinstance(answer, Mapping) else None
        if not isinstance(job_id, str) or not JOB_ID.pattern.fullmatch(job_id):
            raise ExportJobMayExist(
                VENDOR,
                name,
                f"HTTP {response.status_code} with {_unusable_job_id(response.content, job_id)} "
                f"from POST {redact_url(self.url(path))}",
            )
        return job_id

    # -- reading jobs

    def get_job(self, job_id: str) -> dict[str, Any]:
        """One job. A ``job_id`` that is not a Cordial job id raises :class:`ExportConfigError`
        before any request."""
        path = _job_path(job_id)
        return job_record(self.call("GET", path), self.url(path))

    def list_jobs(
        self, *, status: str | None = None, times: Mapping[str, str] | None = None, per_page: int = 25
    ) -> Iterator[dict[str, Any]]:
        """Jobs matching the filters, page by page until a short page; at most ``[exports]
        max_pages`` pages (``LimitExceeded`` past them: a list whose pages are always full ends).

        :param times: filters such as ``{"start][gte": "01-31-2026"}`` become ``times[start][gte]``.
        """
        params: dict[str, Any] = {"per_page": str(per_page)}
        if status:
            params["status"] = status
        for key, value in (times or {}).items():
            params[f"times[{key}]"] = value
        pages = PageBudget.of(self, PATHS["jobs"])
        page = 1
        while True:
            pages.spend()
            # Vendor is silent on paging headers (vendor-apis README §2.4): a page shorter than
            # per_page is taken as the last one. An empty list is C-V2's 404 RecordNotFound, or `[]`.
            try:
                batch = self.call("GET", PATHS["jobs"], params={**params, "page": str(page)}) or []
            except VendorNotFoundError as exc:
                if not means_no_jobs(exc):
                    raise
                return
            if not isinstance(batch, list):
                raise unusable_answer(
                    VENDOR,
                    f"the jobs list answered a JSON {type(batch).__name__}, not the documented array",
                    url=self.url(PATHS["jobs"]),
                )
            yield from (job_record(job, self.url(PATHS["jobs"])) for job in batch)
            if len(batch) < per_page:
                return
            page += 1

    def find_jobs_by_name(self, name: str, *, started_since: datetime) -> list[dict[str, Any]]:
        """Every job named ``name`` (``metadata.name``) started since ``started_since``, or not
        started yet; the best one to reattach to first (active, then Done, then Failed; newest first).

        The jobs list cannot filter by name: it is read by start day (``times[start][gte]``, see
        :func:`jobs_since_filter`) and by the statuses of jobs that may not have started, and
        filtered here, by name and by the exact start.
        """
        since = started_since.astimezone(timezone.utc)
        # Jobs not started yet first: a job that starts between two reads then shows in the
        # second (start times stay); read the other way round, it would be in neither.
        queries: list[dict[str, Any]] = [{"status": status} for status in NOT_STARTED_STATUSES]
        queries.append({"times": {"start][gte": jobs_since_filter(since)}})
        found: dict[str, dict[str, Any]] = {}
        for query in queries:
            for job in self.list_jobs(**query):
                if (job.get("metadata") or {}).get("name") == name and not job_started_before(job, since):
                    found[job_id_of(job) or f"#{len(found)}"] = job

        def started(job: Mapping[str, Any]) -> str:
            return str((job.get("times") or {}).get("start") or "9999")  # not started yet: newest

        def preference(job: Mapping[str, Any]) -> int:
            ranks: Mapping[str, int] = {CordialJobStatus.DONE: 1, CordialJobStatus.FAILED: 2}
            return ranks.get(str(job.get("status")), 0)

        jobs = sorted(found.values(), key=started, reverse=True)
        return sorted(jobs, key=preference)  # stable: newest first within each group

    # Basic auth has no token endpoint: this read is the whole credential check.
    access_check = AccessCheck(PATHS["jobs"], params={"per_page": "1"})

    def check_access(self, *, client: HttpClient | None = None, deadline: float | None = None) -> None:
        """The jobs read of :attr:`access_check`; an account without jobs answers 404 RecordNotFound."""
        try:
            super().check_access(client=client, deadline=deadline)
        except VendorNotFoundError as exc:
            if not means_no_jobs(exc):
                raise

    def connection_hint(self, settings: CordialSettings, failure: ConnectionFailure) -> str:
        if failure in ("api_refused", "credentials_refused"):
            # Vendor is silent on what a host answers a key of an account on the other host: a
            # refusal is taken to mean the key or the host.
            return (
                f"Check password (the API key) and extra.api_host ({settings.api_host}): an account "
                f"on admin.cordial.io uses {API_HOSTS[0]}, one on usw2.admin.cordial.io uses {API_HOSTS[1]}"
            )
        return f"Check extra.api_host ({settings.api_host}) and this machine's network"
