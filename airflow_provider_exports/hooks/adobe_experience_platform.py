"""Adobe Experience Platform: IMS server-to-server tokens, profile export jobs, Catalog, Data Access.

Every Platform call carries ``Authorization: Bearer``, ``x-api-key`` (the client ID),
``x-gw-ims-org-id`` and ``x-sandbox-name``. Sources: vendor-apis README §3 and the Adobe OpenAPI
documents beside it (segmentation.yaml for ``/export/jobs``, catalog.yaml, data-access.yaml).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from airflow_provider_exports.exceptions import ExportConfigError, VendorAPIError
from airflow_provider_exports.hooks._base import (
    AccessCheck,
    ConnectionFailure,
    ExportsVendorHook,
    FieldProblems,
    normalise_host,
)
from airflow_provider_exports.hooks._http import (
    AuthScheme,
    ByteStream,
    ClientCredentialsAuth,
    RetryPolicy,
    redact_url,
)
from airflow_provider_exports.hooks._untrusted import IdFormat, PageBudget, api_path, check_depth
from airflow_provider_exports.utils.waiting import JobPoke, PokeEvent

IMS_HOST = "https://ims-na1.adobelogin.com"
TOKEN_PATH = "/ims/token/v3"
PLATFORM_HOST = "https://platform.adobe.io"
DEFAULT_SCOPES = "openid,session,AdobeID,read_organizations,additional_info.projectedProductContext"
PROFILE_UNION_SCHEMA = "https://ns.adobe.com/xdm/context/profile__union"
SCHEMA_CONTENT_TYPE = "application/vnd.adobe.xed+json;version=1"

EXPORT_JOBS = "/data/core/ups/export/jobs"
EXPORT_JOB = EXPORT_JOBS + "/{job_id}"
CATALOG = "/data/foundation/catalog"
BATCH = CATALOG + "/batches/{batch_id}"
DATA_ACCESS = "/data/foundation/export"
BATCH_FILES = DATA_ACCESS + "/batches/{batch_id}/files"
FILE = DATA_ACCESS + "/files/{dataset_file_id}"



class AdobeExportJobStatus(StrEnum):
    """A profile export job's ``status`` (vendor-apis README §3.4): complete when ``SUCCEEDED``. A
    value Adobe does not document is read as still running."""

    NEW = "NEW"
    PROCESSING = "PROCESSING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"


class AdobeBatchStatus(StrEnum):
    """A Catalog batch's ``status``: the spec's enum, then the values Adobe's own client has seen
    (vendor-apis README §3.5). A value in neither is read as still running."""

    PROCESSING = "processing"
    SUCCESS = "success"
    FAILURE = "failure"
    QUEUED = "queued"
    RETRYING = "retrying"
    STALLED = "stalled"
    ABORTED = "aborted"
    ABANDONED = "abandoned"
    INACTIVE = "inactive"
    FAILED = "failed"  # in some of the spec's schemas
    LOADING = "loading"
    LOADED = "loaded"
    STAGED = "staged"
    ACTIVE = "active"
    STAGING = "staging"
    DELETED = "deleted"


#: a retried task reattaches to a job of its run in these statuses: it is running or has its batches
JOB_REATTACH_STATUSES = frozenset(
    {AdobeExportJobStatus.NEW, AdobeExportJobStatus.PROCESSING, AdobeExportJobStatus.SUCCEEDED}
)
#: the batch statuses in which a batch's files can be read
BATCH_SUCCESS = frozenset({AdobeBatchStatus.SUCCESS, AdobeBatchStatus.ACTIVE})
BATCH_FAILED = frozenset(
    {
        AdobeBatchStatus.FAILURE,
        AdobeBatchStatus.FAILED,
        AdobeBatchStatus.ABORTED,
        AdobeBatchStatus.ABANDONED,
        AdobeBatchStatus.DELETED,
    }
)
#: the documented values of ``filter.segments[].status`` (vendor-apis README §3.4)
SEGMENT_STATUSES = ("realized", "existing", "exited")
DEFAULT_SCHEMA_NAME = "_xdm.context.profile"

# A-SEG: ExportJobResponse.id is a number (examples 100.0, 24115, 11400769).
EXPORT_JOB_ID = IdFormat(re.compile(r"[0-9]{1,19}"), "an export job id (a number such as 24115)")
# Vendor is silent on the format of dataset, batch and dataset file ids (every spec types them as
# plain strings). Their examples are 24 or 32 hexadecimal digits (5b7c86968f7b6501e21ba9df,
# da5cfb4de32c4b93a09f7e37fa53ad52), UUIDs (65e18145-a5e8-4993-94f3-c70fadaa1fef) and Catalog's
# 51b340e26b64ed3eb31ec9z8: chosen, 1 to 128 of the characters a URL never escapes (RFC 3986's
# unreserved: letters, digits, "-", "_", "~"), the dot left out.
_PLAIN_ID = re.compile(r"[A-Za-z0-9_~-]{1,128}")
_PLAIN = "1 to 128 letters, digits, -, _ or ~"
DATASET_ID = IdFormat(_PLAIN_ID, f"a dataset id ({_PLAIN}, e.g. 5b7c86968f7b6501e21ba9df)")
BATCH_ID = IdFormat(_PLAIN_ID, f"a batch id ({_PLAIN}, e.g. da5cfb4de32c4b93a09f7e37fa53ad52)")
DATASET_FILE_ID = IdFormat(_PLAIN_ID, f"a dataset file id ({_PLAIN})")
#: A-SEG's ``offset`` of the export jobs list: ``<creationTime>_<id>`` (``1540974701302_96``)
_OFFSET = re.compile(r"([0-9]{1,20})_([0-9]{1,20})")
_DIGITS = re.compile(r"[0-9]{1,20}")


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


# -- reading what Adobe answers -----------------------------------------------------------------


def epoch_seconds(value: Any) -> float | None:
    """A job or batch time as epoch seconds.

    Vendor is silent (contradicts itself) on the unit: the Segmentation spec says ``creationTime``
    is in seconds, every example is in milliseconds (vendor-apis README §3.4). A number past
    10**11 (March 5138 in seconds) is read as milliseconds, anything smaller as seconds.
    """
    if isinstance(value, bool) or value in (None, ""):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number / 1000.0 if number > 1e11 else number


def job_dataset_id(job: Mapping[str, Any]) -> str | None:
    """The job's destination dataset; the docs spell it ``datasetId`` and ``dataSetId``."""
    destination = job.get("destination") or {}
    value = destination.get("datasetId") or destination.get("dataSetId")
    return str(value) if value else None


def job_batch_ids(job: Mapping[str, Any]) -> list[str]:
    """The batch the job wrote (``destination.batchId``), or one per segment with
    ``segmentPerBatch`` (``destination.batches[].batchId``); empty ones (a failed job) are left out.
    Each is checked as a batch id (:class:`ExportConfigError` naming the field): they go into paths."""
    destination = job.get("destination") or {}
    batches = destination.get("batches")
    if isinstance(batches, Mapping):  # the spec types it as one object (a spec defect)
        batches = [batches]
    ids = [
        check_batch_id(b["batchId"], f"destination.batches[{i}].batchId")
        for i, b in enumerate(batches or [])
        if isinstance(b, Mapping) and b.get("batchId")
    ]
    if not ids and destination.get("batchId"):
        ids = [check_batch_id(destination["batchId"], "destination.batchId")]
    return ids


def job_segments_of_batches(job: Mapping[str, Any]) -> dict[str, str]:
    """``{batchId: segmentId}`` for a job with ``segmentPerBatch``."""
    batches = (job.get("destination") or {}).get("batches")
    if isinstance(batches, Mapping):
        batches = [batches]
    return {
        str(b["batchId"]): str(b.get("segmentId"))
        for b in batches or []
        if isinstance(b, Mapping) and b.get("batchId") and b.get("segmentId")
    }


def job_errors(job: Mapping[str, Any]) -> list[dict[str, str]]:
    """Every ``errors[]`` entry of a job as ``{"code", "message"}`` (Adobe names the text ``msg``)."""
    return [
        {"code": str(e.get("code")), "message": str(e.get("msg") or e.get("message") or e.get("description"))}
        for e in job.get("errors") or []
        if isinstance(e, Mapping)
    ]


def check_job_id(value: Any, field_name: str = "export_job_id") -> str:
    """An export job id: Adobe's are numbers (``24115``; a JSON ``100.0`` is read as ``100``, a
    rendered template's surrounding blanks are dropped)."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return EXPORT_JOB_ID.check(value.strip() if isinstance(value, str) else value, field_name)


def check_batch_id(value: Any, field_name: str = "batch_id") -> str:
    return BATCH_ID.check(value, field_name)


def check_dataset_id(value: Any, field_name: str = "dataset_id") -> str:
    return DATASET_ID.check(value, field_name)


def check_dataset_file_id(value: Any, field_name: str = "dataset_file_id") -> str:
    return DATASET_FILE_ID.check(value, field_name)


# -- the export job request (CreateExportJobRequest) ---------------------------------------------

_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})", re.IGNORECASE)


def check_rfc3339(value: Any, field_name: str) -> str | None:
    """An RFC 3339 date-time with its offset (``2026-11-22T00:00:00Z``); a datetime is written as one.

    A space for the ``T`` (RFC 3339 §5.6 allows it; Airflow renders ``{{ data_interval_start }}`` so)
    is sent as ``T``. ``None`` and empty values (and ``"None"``, what an absent template value
    renders to) give ``None``.
    """
    if value is None or value in ("", "None"):
        return None
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ExportConfigError(field_name, f"{value!r} has no time zone")
        return value.isoformat()
    text = str(value).strip()
    if not _RFC3339.fullmatch(text):
        raise ExportConfigError(
            field_name, f"{value!r} is not an RFC 3339 date-time with an offset (e.g. 2026-11-22T00:00:00Z)"
        )
    text = text[:10] + "T" + text[11:]
    try:
        datetime.fromisoformat(text.upper().replace("Z", "+00:00"))
    except ValueError:
        raise ExportConfigError(field_name, f"{value!r} is not a valid date-time") from None
    return text


def _required_text(value: Any, field_name: str, hint: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ExportConfigError(field_name, f"is required ({hint})")
    return value.strip()


def _fields(value: Any, field_name: str) -> str | None:
    """``fields``: a comma-separated string of dot paths, or a list of them."""
    if value is None or value == "":
        return None
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, Iterable) or not all(isinstance(i, str) for i in items):
        raise ExportConfigError(field_name, f"{value!r}: give dot paths, as a list or comma-separated")
    parts = [p.strip() for item in items for p in item.split(",") if p.strip()]
    if not parts or any(" " in p for p in parts):
        raise ExportConfigError(field_name, f"{value!r}: give dot paths such as identities.id,person.name")
    return ",".join(parts)


def _bool(value: Any, field_name: str) -> bool | None:
    """``True``/``False``, or their text as a template renders it (``"True"``, ``"false"``)."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise ExportConfigError(field_name, f"{value!r} is not true or false")


def _listed(value: Any) -> Any:
    """A list given as text: JSON (``'["a", "b"]'``, what a rendered list looks like with double
    quotes) or comma-separated."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if text.startswith("["):
        import json

        try:
            return json.loads(text)
        except ValueError:
            return json.loads(text.replace("'", '"'))
    return [s.strip() for s in text.split(",") if s.strip()]


def _statuses(value: Any, field_name: str) -> list[str] | None:
    if value is None:
        return None
    try:
        items = list(_listed(value))
    except (TypeError, ValueError):
        items = [value]
    bad = [v for v in items if v not in SEGMENT_STATUSES]
    if bad or not items:
        raise ExportConfigError(
            field_name, f"{value!r}: each status must be one of {', '.join(SEGMENT_STATUSES)}"
        )
    return list(dict.fromkeys(items))


def _segments(
    value: Any, namespace: Any, statuses: Any
) -> list[dict[str, Any]]:
    """``segments``: segment ids, or ``{"segmentId", "segmentNs", "status"}`` objects."""
    if value is None or value == "" or value == []:
        return []
    try:
        items = list(_listed(value))
    except (TypeError, ValueError):
        raise ExportConfigError("segments", f"{value!r}: give segment ids or segment objects") from None
    default_status = _statuses(statuses, "segment_statuses")
    if namespace is not None and (not isinstance(namespace, str) or not namespace.strip()):
        raise ExportConfigError("segment_namespace", f"{namespace!r}: give a namespace such as ups")
    out = []
    for i, item in enumerate(items):
        if isinstance(item, str):
            item = {"segmentId": item}
        if not isinstance(item, Mapping):
            raise ExportConfigError(f"segments[{i}]", f"{item!r}: give a segment id or a segmentId/segmentNs/status object")
        unknown = set(item) - {"segmentId", "segmentNs", "status"}
        if unknown:
            raise ExportConfigError(f"segments[{i}]", f"unknown key(s) {', '.join(sorted(unknown))}")
        segment: dict[str, Any] = {
            "segmentId": _required_text(item.get("segmentId"), f"segments[{i}].segmentId", "a segment id")
        }
        ns = item.get("segmentNs", namespace)
        if ns is not None:
            segment["segmentNs"] = _required_text(ns, f"segments[{i}].segmentNs", "e.g. ups")
        status = _statuses(item["status"], f"segments[{i}].status") if "status" in item else default_status
        if status is not None:
            segment["status"] = status
        out.append(segment)
    return out


def export_job_request(
    *,
    dataset_id: Any,
    schema_name: Any = DEFAULT_SCHEMA_NAME,
    fields: Any = None,
    merge_policy_id: Any = None,
    merge_policy_version: Any = None,
    segments: Any = None,
    segment_namespace: Any = None,
    segment_statuses: Any = None,
    segment_qualification_start: Any = None,
    segment_qualification_end: Any = None,
    from_ingest_timestamp: Any = None,
    empty_profiles: Any = None,
    event_fields: Any = None,
    event_from_ingest_timestamp: Any = None,
    event_to_ingest_timestamp: Any = None,
    segment_per_batch: Any = False,
    evaluate_segments: Any = None,
) -> dict[str, Any]:
    """A ``POST /export/jobs`` body (``CreateExportJobRequest``) from checked arguments.

    Every problem raises :class:`ExportConfigError` naming the argument: the dataset id and the
    schema name are required, timestamps are RFC 3339, segment statuses are ``realized``,
    ``existing`` or ``exited``. Arguments left ``None`` are left out (Adobe's defaults apply).
    """
    body: dict[str, Any] = {}
    if (f := _fields(fields, "fields")) is not None:
        body["fields"] = f
    if merge_policy_id not in (None, ""):
        policy: dict[str, Any] = {"id": _required_text(merge_policy_id, "merge_policy_id", "a merge policy id")}
        if merge_policy_version not in (None, ""):
            try:
                policy["version"] = int(merge_policy_version)
            except (TypeError, ValueError):
                raise ExportConfigError("merge_policy_version", f"{merge_policy_version!r} is not a number") from None
        body["mergePolicy"] = policy
    elif merge_policy_version not in (None, ""):
        raise ExportConfigError("merge_policy_version", "needs merge_policy_id")
    filt: dict[str, Any] = {}
    if chosen := _segments(segments, segment_namespace, segment_statuses):
        filt["segments"] = chosen
    elif segment_statuses is not None or segment_namespace is not None:
        raise ExportConfigError("segments", "segment_statuses and segment_namespace need segments")
    start = check_rfc3339(segment_qualification_start, "segment_qualification_start")
    end = check_rfc3339(segment_qualification_end, "segment_qualification_end")
    if start or end:
        filt["segmentQualificationTime"] = {
            **({"startTime": start} if start else {}),
            **({"endTime": end} if end else {}),
        }
    if (ingest := check_rfc3339(from_ingest_timestamp, "from_ingest_timestamp")) is not None:
        filt["fromIngestTimestamp"] = ingest
    if (empty := _bool(empty_profiles, "empty_profiles")) is not None:
        filt["emptyProfiles"] = empty
    if filt:
        body["filter"] = filt
    event_list: dict[str, Any] = {}
    if (ef := _fields(event_fields, "event_fields")) is not None:
        event_list["fields"] = ef
    event_filter = {
        key: value
        for key, value in (
            ("fromIngestTimestamp", check_rfc3339(event_from_ingest_timestamp, "event_from_ingest_timestamp")),
            ("toIngestTimestamp", check_rfc3339(event_to_ingest_timestamp, "event_to_ingest_timestamp")),
        )
        if value is not None
    }
    if event_filter:
        event_list["filter"] = event_filter
    if event_list:
        body["additionalFields"] = {"eventList": event_list}
    destination: dict[str, Any] = {
        "datasetId": check_dataset_id(_required_text(dataset_id, "dataset_id", "the target dataset's id"))
    }
    if _bool(segment_per_batch, "segment_per_batch"):
        destination["segmentPerBatch"] = True
    body["destination"] = destination
    body["schema"] = {"name": _required_text(schema_name, "schema_name", f"e.g. {DEFAULT_SCHEMA_NAME}")}
    if (evaluate := _bool(evaluate_segments, "evaluate_segments")) is not None:
        body["evaluationInfo"] = {"segmentation": evaluate}
    return body


# -- the two-stage wait: the job, then its Catalog batches ----------------------------------------


def _describe(job_id: str, status: str, batches: Mapping[str, str] | None = None) -> str:
    text = f"export job {job_id} status {status or '(none)'}"
    if batches:
        text += "; Catalog batches " + ", ".join(f"{b} {s}" for b, s in batches.items())
    return text


def poke_export_job(job_id: str | int) -> JobPoke:
    """One poke at a profile export job: the job and, once it ``SUCCEEDED``, each Catalog batch it
    wrote (see :func:`export_job_event`). Ids are checked before they go into a path: a bad job id
    before any request, a batch id Adobe answers before it is read."""
    job = yield ("GET", _export_job_path(job_id), None)
    if str(job.get("status") or "").upper() != AdobeExportJobStatus.SUCCEEDED:
        return export_job_event(job)
    batches = {}
    for batch_id in job_batch_ids(job):
        batches[batch_id] = _unwrap_keyed((yield ("GET", api_path(BATCH, batch_id=batch_id), None)), batch_id)
    return export_job_event(job, batches)


def export_job_event(
    job: Mapping[str, Any], batches: Mapping[str, Mapping[str, Any]] | None = None
) -> PokeEvent:
    """How the wait stands, from a job (and the Catalog batches it wrote, once it ``SUCCEEDED``).

    ``FAILED`` fails with every ``errors[]`` entry's code and message; ``NEW``, ``PROCESSING`` and
    statuses Adobe does not document keep waiting; ``SUCCEEDED`` waits for every batch to reach
    ``success`` (a batch in ``failure``/``failed``/``aborted``/``abandoned``/``deleted`` fails; any
    other batch status, known or not, keeps waiting). ``batches``: the Catalog batch of each batch
    id, once fetched. A success's result is the list of batch ids (one, or one per segment with
    ``segmentPerBatch``).
    """
    job_id = str(job.get("id"))
    status = str(job.get("status") or "").upper()
    details = {"datasetId": job_dataset_id(job), "batchIds": job_batch_ids(job)}
    if status == AdobeExportJobStatus.FAILED:
        errors = [f"[{e['code']}] {e['message']}" for e in job_errors(job)]
        return PokeEvent("failed", _describe(job_id, status), None, job_id, status, errors, details)
    if status != AdobeExportJobStatus.SUCCEEDED:
        return PokeEvent("waiting", _describe(job_id, status), job_ref=job_id, job_status=status)
    ids = job_batch_ids(job)
    if not ids:
        # Vendor is silent on a SUCCEEDED job without a batch id: waiting would never end.
        return PokeEvent(
            "failed", _describe(job_id, status), None, job_id, status, ["the job names no batch id"], details
        )
    seen = {b: str(((batches or {}).get(b) or {}).get("status") or "unknown").lower() for b in ids}
    description = _describe(job_id, status, seen)
    failed = [b for b, s in seen.items() if s in BATCH_FAILED]
    if failed:
        errors = [
            f"batch {b} {seen[b]}: [{e.get('code')}] {e.get('description') or e.get('message')}"
            for b in failed
            for e in ((batches or {}).get(b) or {}).get("errors") or [{"code": seen[b], "description": "failed"}]
        ]
        return PokeEvent("failed", description, None, job_id, status, errors, {**details, "batchStatuses": seen})
    if all(s in BATCH_SUCCESS for s in seen.values()):
        return PokeEvent("success", description, ids, job_id, status)
    return PokeEvent("waiting", description, job_ref=job_id, job_status=status)


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
        problems = FieldProblems()
        if not login:
            problems.add(
                "login",
                "the Adobe client ID is missing; give the OAuth Server-to-Server credential's client ID",
            )
        if not password:
            problems.add(
                "password", "the Adobe client secret is missing; give that credential's client secret"
            )
        org = str(extras.get("ims_org_id") or "")
        if not org.endswith("@AdobeOrg"):
            problems.add(
                "extra.ims_org_id", f"{org!r} is not an IMS organization ID; give one ending in @AdobeOrg"
            )
        sandbox = str(extras.get("sandbox_name") or "")
        if not sandbox or sandbox != sandbox.lower():
            problems.add(
                "extra.sandbox_name", f"{sandbox!r}: give the all-lowercase sandbox name (e.g. prod)"
            )
        scopes = str(extras.get("scopes") or DEFAULT_SCOPES)
        if not all(s.strip() and " " not in s.strip() for s in scopes.split(",")):
            problems.add(
                "extra.scopes", f"{scopes!r}: give comma-separated scope names (e.g. {DEFAULT_SCOPES})"
            )
        ims_host = problems.check(
            lambda: normalise_host(extras.get("ims_host") or IMS_HOST, "extra.ims_host")
        )
        platform_host = problems.check(
            lambda: normalise_host(extras.get("platform_host") or PLATFORM_HOST, "extra.platform_host")
        )
        problems.raise_any()
        return AdobeAEPSettings(
            client_id=str(login),
            client_secret=str(password),
            ims_org_id=org,
            sandbox_name=sandbox,
            scopes=",".join(s.strip() for s in scopes.split(",")),
            ims_host=str(ims_host),
            platform_host=str(platform_host),
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
        return check_dataset_id(str(result[0]).rsplit("/", 1)[-1], "datasetId (Catalog's answer)")

    def find_datasets(self, name: str) -> list[tuple[str, dict[str, Any]]]:
        """Datasets named exactly ``name``, oldest first, as ``(id, dataset)``.

        Catalog filters on the ``name`` property (``GET /dataSets?property=name==...``), pages of at
        most 100 (``start``/``limit``), at most ``[exports] max_pages`` of them. Vendor is silent on
        whether that filter is exact: the names are compared here too. Vendor is silent on the order
        of equal names: ``orderBy=asc:created``.
        """
        found: list[tuple[str, dict[str, Any]]] = []
        pages = PageBudget.of(self, f"{CATALOG}/dataSets")
        start = 0
        while True:
            pages.spend()
            page = self.call(
                "GET",
                f"{CATALOG}/dataSets",
                params={
                    "property": f"name=={name}",
                    "properties": "name,schemaRef,created",
                    "orderBy": "asc:created",
                    "start": start,
                    "limit": 100,
                },
            ) or {}
            if not isinstance(page, Mapping):
                break
            found += [
                (check_dataset_id(k, "datasetId (Catalog's listing)"), dict(v))
                for k, v in page.items()
                if isinstance(v, Mapping) and v.get("name") == name
            ]
            if len(page) < 100:
                break
            start += len(page)
        return sorted(found, key=lambda item: epoch_seconds(item[1].get("created")) or 0.0)

    def get_or_create_profile_dataset(self, name: str, *, description: str | None = None) -> tuple[str, bool]:
        """The id of the dataset named ``name`` on the profile union schema, created if there is none;
        ``(id, created)``. A dataset of that name on another schema is refused, not reused."""
        for dataset_id, dataset in self.find_datasets(name):
            schema = (dataset.get("schemaRef") or {}).get("id")
            if schema == PROFILE_UNION_SCHEMA:
                return dataset_id, False
            raise ExportConfigError(
                "dataset_name",
                f"dataset {dataset_id} is named {name!r} but is on schema {schema!r}, not the profile "
                f"union schema {PROFILE_UNION_SCHEMA}; choose another name",
            )
        return self.create_profile_dataset(name, description=description), True

    def get_batch(self, batch_id: str, *, deadline: float | None = None) -> dict[str, Any]:
        """Catalog batch (the response is keyed by batch id; this returns the inner object)."""
        batch_id = check_batch_id(batch_id)
        body = self.call("GET", api_path(BATCH, batch_id=batch_id), deadline=deadline)
        return _unwrap_keyed(body, batch_id)

    async def aget_batch(self, batch_id: str, *, deadline: float | None = None) -> dict[str, Any]:
        batch_id = check_batch_id(batch_id)
        body = await self.acall("GET", api_path(BATCH, batch_id=batch_id), deadline=deadline)
        return _unwrap_keyed(body, batch_id)

    # -- profile export jobs (segmentation.yaml)

    def create_export_job(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """Create a profile export job from a ``CreateExportJobRequest`` body (see
        :func:`export_job_request`). Retried only when it provably was not received."""
        if not (body.get("destination") or {}).get("datasetId"):
            raise ExportConfigError("destination.datasetId", "is required")
        if not (body.get("schema") or {}).get("name"):
            raise ExportConfigError("schema.name", "is required (e.g. _xdm.context.profile)")
        return self.call("POST", EXPORT_JOBS, json=dict(body))

    def get_export_job(self, job_id: str | int, *, deadline: float | None = None) -> dict[str, Any]:
        """One export job; ``deadline`` (epoch seconds) bounds the call, retries included."""
        return self.call("GET", _export_job_path(job_id), deadline=deadline)

    async def aget_export_job(self, job_id: str | int, *, deadline: float | None = None) -> dict[str, Any]:
        return await self.acall("GET", _export_job_path(job_id), deadline=deadline)

    def list_export_jobs(
        self, *, status: str | None = None, limit: int = 100, pages: list[dict[str, Any]] | None = None
    ) -> Iterator[dict[str, Any]]:
        """All export jobs, following ``link.next`` (its ``offset``) until it is empty; each page's
        ``page`` object is appended to ``pages`` when given.

        At most ``[exports] max_pages`` pages (``LimitExceeded``), and each ``offset`` must move on
        in the listing's order: one that repeats or goes back raises :class:`VendorAPIError`.
        """
        params: dict[str, Any] = {"limit": limit}
        if status:
            params["status"] = status
        budget = PageBudget.of(self, EXPORT_JOBS)
        cursor = _OffsetCursor(redact_url(self.url(EXPORT_JOBS)))
        while True:
            budget.spend()
            page = self.call("GET", EXPORT_JOBS, params=params) or {}
            if pages is not None:
                pages.append(dict(page.get("page") or {}))
            yield from page.get("records") or []
            next_link = ((page.get("link") or {}).get("next") or "").strip()
            offset = parse_qs(urlsplit(next_link).query).get("offset") if next_link else None
            if not offset or not page.get("records"):
                return
            params["offset"] = cursor.advance(offset[0], str((page.get("page") or {}).get("sort") or ""))

    def find_export_job_since(self, dataset_id: str, created_since: float) -> dict[str, Any] | None:
        """The newest job into ``dataset_id`` created at or after ``created_since`` (epoch seconds)
        that is running or succeeded: the one a retried task reattaches to (a job that finished
        while the worker was dead still has its batches; a failed or cancelled one is not reused).

        The list is not filtered by status (the spec's filter has no ``PROCESSING``). Vendor is
        silent on whether the list is always newest first (its example answers ``page.sort``
        ``desc`` on ``createdTime``): the scan stops at the first older job only when a page says
        ``desc``, and reads every page otherwise.
        """
        pages: list[dict[str, Any]] = []
        for job in self.list_export_jobs(limit=50, pages=pages):
            created = epoch_seconds(job.get("creationTime"))
            if created is not None and created < created_since:
                if (pages[-1].get("sort") or "").lower() == "desc":
                    return None
                continue
            if (
                created is not None
                and job_dataset_id(job) == dataset_id
                and str(job.get("status") or "").upper() in JOB_REATTACH_STATUSES
            ):
                return job
        return None

    def cancel_export_job(self, job_id: str | int) -> None:
        """Cancel a job; Adobe documents 200 with a body, 204 with a body and 204 without one."""
        self.call("DELETE", _export_job_path(job_id), expected=(200, 202, 204))

    async def acancel_export_job(self, job_id: str | int) -> None:
        await self.acall("DELETE", _export_job_path(job_id), expected=(200, 202, 204))

    # -- Data Access

    def _data_access_pages(self, path: str, limit: int, pages: PageBudget) -> Iterator[dict[str, Any]]:
        """Entries of a paged Data Access listing (``start``/``limit``; follows ``_links.next``),
        each page counted against ``pages``."""
        start = 0
        while True:
            pages.spend()
            page = self.call("GET", path, params={"start": start, "limit": limit}) or {}
            data = page.get("data") or []
            yield from data
            if not data or not ((page.get("_links") or {}).get("next") or {}).get("href"):
                return
            start += len(data)

    def list_batch_files(self, batch_id: str, *, limit: int = 100) -> Iterator[dict[str, Any]]:
        """Dataset files of a batch (at most 100 a page, the documented maximum; at most
        ``[exports] max_pages`` pages)."""
        path = api_path(BATCH_FILES, batch_id=check_batch_id(batch_id))
        return self._data_access_pages(path, min(limit, 100), PageBudget.of(self, path))

    def list_files(self, dataset_file_id: str, *, limit: int = 100) -> Iterator[DataAccessFile]:
        """The files behind a dataset file id, following directory entries into further ids.

        Vendor is silent on the shape of a directory entry ("further dataSetFileId entries"): an
        entry with a ``dataSetFileId``, or whose ``_links.self.href`` names another
        ``/files/{id}`` without a ``path``, is followed; an entry with a ``name`` is a file. Each id
        is checked as a dataset file id and read once, so a listing that loops ends; the whole
        listing reads at most ``[exports] max_pages`` pages and ``[exports] max_listing_depth``
        levels of directories (``LimitExceeded``).
        """
        return self._walk_files(check_dataset_file_id(dataset_file_id), min(limit, 100), set())

    def _walk_files(
        self, file_id: str, limit: int, seen: set[str], pages: PageBudget | None = None, depth: int = 0
    ) -> Iterator[DataAccessFile]:
        """:meth:`list_files` of a checked id; ``pages`` and ``seen`` are the listing's, ``depth``
        the directory levels followed to reach ``file_id``."""
        path = api_path(FILE, dataset_file_id=file_id)
        pages = pages or PageBudget.of(self, path)
        seen.add(file_id)
        for entry in self._data_access_pages(path, limit, pages):
            if entry.get("name"):
                length = str(entry.get("length"))
                size = int(length) if _DIGITS.fullmatch(length) else None
                yield DataAccessFile(file_id, entry["name"], size)
                continue
            child = entry.get("dataSetFileId") or _linked_file_id(entry)
            if not child:
                continue
            child = check_dataset_file_id(child, f"dataSetFileId (a directory entry of {file_id})")
            if child not in seen:
                check_depth(pages.what, depth + 1)
                yield from self._walk_files(child, limit, seen, pages, depth + 1)

    def batch_files(self, batch_id: str) -> list[DataAccessFile]:
        """Every downloadable file of a batch; each dataset file id the batch lists is checked."""
        seen: set[str] = set()
        files: list[DataAccessFile] = []
        for entry in self.list_batch_files(batch_id):
            listed = entry.get("dataSetFileId")
            file_id = check_dataset_file_id(listed, f"dataSetFileId (a file of batch {batch_id})")
            if file_id not in seen:
                files += self._walk_files(file_id, 100, seen)
        return files

    def file_url(self, dataset_file_id: str, path: str) -> str:
        """The download URL of one file (``/files/{id}?path={name}``); no credential in it."""
        return self.url(_file_path(dataset_file_id)) + "?" + urlencode({"path": path})

    def file_size(self, dataset_file_id: str, path: str) -> int:
        response = self.core.request("HEAD", self.url(_file_path(dataset_file_id)), params={"path": path})
        return int(response.headers["Content-Length"])

    def open_file(
        self, dataset_file_id: str, path: str, *, offset: int = 0, length: int | None = None
    ) -> AbstractContextManager[ByteStream]:
        """Stream one file from ``offset`` on (``Range``), at most ``length`` bytes: each call must
        finish within Adobe's 60 s, so large files are read in windows."""
        return self.core.stream(self.file_url(dataset_file_id, path), offset=offset, length=length)

    # The token comes from IMS; this read proves the Platform host, org and sandbox headers.
    access_check = AccessCheck(EXPORT_JOBS, params={"limit": "1"})

    def connection_hint(self, settings: AdobeAEPSettings, failure: ConnectionFailure) -> str:
        if failure == "credentials_refused":
            return "Check login (the client ID), password (the client secret) and extra.scopes"
        if failure == "api_refused":
            return (
                f"IMS issued a token, but Platform refused the request: check extra.ims_org_id "
                f"({settings.ims_org_id}) and extra.sandbox_name ({settings.sandbox_name}), and that the "
                "credential's product profile may use that sandbox"
            )
        if failure == "auth_unreachable":
            return f"Check extra.ims_host ({settings.ims_host}) and this machine's network"
        return f"Check extra.platform_host ({settings.platform_host}) and this machine's network"


def _export_job_path(job_id: Any) -> str:
    return api_path(EXPORT_JOB, job_id=check_job_id(job_id))


def _file_path(dataset_file_id: Any) -> str:
    return api_path(FILE, dataset_file_id=check_dataset_file_id(dataset_file_id))


class _OffsetCursor:
    """The ``offset`` cursor of one export jobs listing: it must move on, page after page.

    A-SEG's offset is ``<creationTime>_<id>`` (``1540974701302_96``) of a page's last job, and the
    list is sorted by creation time, descending unless its ``page.sort`` says ``asc``. An offset
    seen before repeats a page; one that does not move in the sort's direction goes back. Either
    would loop, so either ends the listing.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.seen: set[str] = set()
        self.last: tuple[int, int] | None = None

    def advance(self, offset: str, sort: str) -> str:
        """``offset`` once it is known to move on, else :class:`VendorAPIError`."""
        if offset in self.seen:
            raise self._refused(offset, "repeats the offset of an earlier page")
        self.seen.add(offset)
        # Vendor is silent on other offset shapes: those are checked for repeats only.
        shape = _OFFSET.fullmatch(offset)
        position = (int(shape[1]), int(shape[2])) if shape else None
        if position is not None and self.last is not None:
            # A-SEG: "By default, records are sorted in descending order"
            order = "asc" if sort.strip().lower() == "asc" else "desc"
            if (position <= self.last) if order == "asc" else (position >= self.last):
                raise self._refused(offset, f"goes back in the listing's {order} order")
        if position is not None:
            self.last = position
        return offset

    def _refused(self, offset: str, why: str) -> VendorAPIError:
        return VendorAPIError(
            AdobeExperiencePlatformHook.vendor,
            status_code=200,
            error_key=None,
            message=f"link.next offset {offset[:80]!r} {why}: the listing would not end, so it stops here",
            method="GET",
            url=self.url,
        )


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


def _linked_file_id(entry: Mapping[str, Any]) -> str | None:
    """The dataset file id a directory entry links to (``.../files/{id}`` without ``path``)."""
    href = str(((entry.get("_links") or {}).get("self") or {}).get("href") or "")
    parts = urlsplit(href)
    if "/files/" not in parts.path or "path" in parse_qs(parts.query):
        return None
    return parts.path.rsplit("/files/", 1)[1].strip("/") or None
