r"""What Adobe Experience Platform's answers mean: its endpoints, the statuses of export jobs and
Catalog batches (as ``Enum``\s), the formats of its ids, the readers of a job record, and the one
poke of a profile export job (the job, then its Catalog batches) that the sensor, the trigger and the
operator's wait all run. Plain functions over Adobe's JSON; the hook makes the calls.

Sources: vendor-apis README §3 and the Adobe OpenAPI documents beside it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from airflow_provider_exports.exceptions import ExportConfigError
from airflow_provider_exports.hooks._untrusted import Answer, IdFormat, api_path, describe, unusable_answer
from airflow_provider_exports.utils.waiting import JobPoke, PokeEvent

VENDOR = "Adobe Experience Platform"

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


def _batches(job: Mapping[str, Any]) -> list[Any]:
    """``destination.batches`` (one per segment with ``segmentPerBatch``) as a list: the spec types
    it as one object (a spec defect)."""
    batches = (job.get("destination") or {}).get("batches")
    return [batches] if isinstance(batches, Mapping) else list(batches or [])


def job_batch_ids(job: Mapping[str, Any]) -> list[str]:
    """The batch the job wrote (``destination.batchId``), or one per segment with
    ``segmentPerBatch`` (``destination.batches[].batchId``); empty ones (a failed job) are left out.
    Each is checked as a batch id (:class:`ExportConfigError` naming the field): they go into paths."""
    destination = job.get("destination") or {}
    ids = [
        BATCH_ID.check(b["batchId"], f"destination.batches[{i}].batchId")
        for i, b in enumerate(_batches(job))
        if isinstance(b, Mapping) and b.get("batchId")
    ]
    if not ids and destination.get("batchId"):
        ids = [BATCH_ID.check(destination["batchId"], "destination.batchId")]
    return ids


def job_segments_of_batches(job: Mapping[str, Any]) -> dict[str, str]:
    """``{batchId: segmentId}`` for a job with ``segmentPerBatch``."""
    return {
        str(b["batchId"]): str(b.get("segmentId"))
        for b in _batches(job)
        if isinstance(b, Mapping) and b.get("batchId") and b.get("segmentId")
    }


def check_job_id(value: Any, field_name: str = "export_job_id") -> str:
    """An export job id: Adobe's are numbers (``24115``; a JSON ``100.0`` is read as ``100``, a
    rendered template's surrounding blanks are dropped)."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return EXPORT_JOB_ID.check(value.strip() if isinstance(value, str) else value, field_name)


def answered_job_id(job: Any, url: str, method: str = "GET") -> str:
    """The id of an export job Adobe answered (created, or listed), checked as one (it goes into
    paths); else :class:`VendorAPIError`. After a create, a retry finds the job by its dataset."""
    value = job.get("id") if isinstance(job, Mapping) else None
    try:
        return check_job_id(value, "id")
    except ExportConfigError:
        raise unusable_answer(
            VENDOR, f"the export job's id is {describe(value)}, not an export job id", url=url, method=method
        ) from None


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
    path = export_job_path(job_id)
    job = export_job_record((yield ("GET", path, None)), path)
    if str(job.get("status") or "").upper() != AdobeExportJobStatus.SUCCEEDED:
        return export_job_event(job)
    batches = {}
    for batch_id in job_batch_ids(job):
        batches[batch_id] = batch_record(unwrap_keyed((yield ("GET", batch_path(batch_id), None)), batch_id))
    return export_job_event(job, batches)


def export_job_event(
    job: Mapping[str, Any], batches: Mapping[str, Mapping[str, Any]] | None = None
) -> PokeEvent:
    """How the wait stands, from a job and, once it ``SUCCEEDED``, the Catalog batch of each batch
    id it wrote (``batches``, once fetched).

    ``FAILED`` fails with every ``errors[]`` entry's code and message; ``SUCCEEDED`` succeeds once
    every batch is in :data:`BATCH_SUCCESS` and fails when one is in :data:`BATCH_FAILED`; any other
    status, known or not, keeps waiting. A success's result is the list of batch ids.
    """
    job_id = str(job.get("id"))
    status = str(job.get("status") or "").upper()
    ids = job_batch_ids(job)
    details = {"datasetId": job_dataset_id(job), "batchIds": ids}
    if status == AdobeExportJobStatus.FAILED:
        # Adobe names an error's text ``msg``
        errors = [
            f"[{e.get('code')}] {e.get('msg') or e.get('message') or e.get('description')}"
            for e in job.get("errors") or []
            if isinstance(e, Mapping)
        ]
        return PokeEvent("failed", _describe(job_id, status), None, job_id, status, errors, details)
    if status != AdobeExportJobStatus.SUCCEEDED:
        return PokeEvent("waiting", _describe(job_id, status), job_ref=job_id, job_status=status)
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
            if isinstance(e, Mapping)
        ]
        return PokeEvent("failed", description, None, job_id, status, errors, {**details, "batchStatuses": seen})
    if all(s in BATCH_SUCCESS for s in seen.values()):
        return PokeEvent("success", description, ids, job_id, status)
    return PokeEvent("waiting", description, job_ref=job_id, job_status=status)


def export_job_path(job_id: Any) -> str:
    return api_path(EXPORT_JOB, job_id=check_job_id(job_id))


def batch_path(batch_id: Any) -> str:
    return api_path(BATCH, batch_id=BATCH_ID.check(batch_id, "batch_id"))


def file_path(dataset_file_id: Any) -> str:
    return api_path(FILE, dataset_file_id=DATASET_FILE_ID.check(dataset_file_id, "dataset_file_id"))


def export_job_record(body: Any, url: str) -> dict[str, Any]:
    """A profile export job as Adobe answered it at ``url``: an object whose ``destination`` is an
    object, ``destination.batches`` a list (or one object) and ``errors`` a list where given, else
    :class:`VendorAPIError` naming them."""
    answer = Answer(VENDOR, url, "the export job")
    job = answer.record(body, objects=("destination",), lists=("errors",))
    if not isinstance((job.get("destination") or {}).get("batches") or [], (list, Mapping)):
        raise answer.wrong("destination.batches is not a list")
    return job


def batch_record(batch: Mapping[str, Any]) -> dict[str, Any]:
    """A Catalog batch whose ``errors`` is a list where given, else :class:`VendorAPIError`."""
    return Answer(VENDOR, CATALOG, "the Catalog batch").record(batch, lists=("errors",))


def unwrap_keyed(body: Any, key: str) -> dict[str, Any]:
    """A Catalog answer keyed by id (``{id: object}``): the object of ``key``."""
    if isinstance(body, Mapping) and isinstance(body.get(key), Mapping):
        return dict(body[key])
    raise unusable_answer(VENDOR, f"the Catalog response has no entry for {key}", url=CATALOG)
