"""Cordial sandbox: v2 ``audiencetrendsexport``, ``contactexports`` and ``jobs`` with HTTP Basic API-key auth.

Built from vendor-apis README §2 (C-V2 Swagger, C-ATE, C-JOBS, C-ERR, C-RL) and Cordial's "Contact
exports API" article (https://support.cordial.com/hc/en-us/articles/203886068). Audiences are seeded
with :meth:`CordialServer.add_audience`. A Done job's file can be read back with
``GET /_sandbox/files/{jobId}`` or :meth:`CordialServer.export_file`, and is written to S3 the way
Cordial delivers into a customer's bucket when ``s3_endpoint_url`` is set (e.g. moto) and the
destination is S3. Every answer carries the ``X-Rate-Limit-*`` headers of C-RL.
"""

from __future__ import annotations

import base64
import datetime as dt
import gzip
import hashlib
import io
import itertools
import json
import os
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

# Runtime import: FastAPI resolves the route annotations when the app is built.
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from airflow_provider_exports_sandbox.server import VendorServer

if TYPE_CHECKING:
    from fastapi import FastAPI

API_KEY = "sandbox-cordial-key"
PATHS = {
    "create": "/v2/audiencetrendsexport",
    "contacts": "/v2/contactexports",
    "jobs": "/v2/jobs",
    "job": "/v2/jobs/{id}",
    "file": "/_sandbox/files/{id}",
}
DESTINATION_TYPES = ("AWS", "FTP", "SFTP", "S3", "GCS", "AZUREBLOB")
JOB_STATUSES = ("Scheduled", "Pending", "Processing", "Throttled", "Failed", "Done")
# Vendor is silent on the jobName of trends exports (vendor-apis README §2.4: not in the enum):
# sandbox choice: "ExportAudienceTrends", following the Export* names of the other exporters.
JOB_NAME = "ExportAudienceTrends"
# C-V2's jobName enum: contact exports are "ExportContacts".
CONTACTS_JOB_NAME = "ExportContacts"
# C-V2 SourceCE.exportType: "Possible values: CSV, JSON, TXT" (the article's example sends "csv").
CONTACT_EXPORT_TYPES = ("csv", "json", "txt")
# Vendor is silent on the default page size of GET /v2/jobs (README §2.4): sandbox choice: 25.
DEFAULT_PER_PAGE = 25
STATISTIC_MAX_PER_PAGE = 25
# C-RL: the limit's period is "typically one minute for most of our endpoints".
RATE_PERIOD_SECONDS = 60.0
_NAME = re.compile(r"^[A-Za-z0-9-]+$")
_counter = itertools.count(int.from_bytes(os.urandom(3), "big"))


def cordial_error(
    status: int, error_key: str, message: str, headers: dict[str, str] | None = None
) -> Response:
    """Cordial's error envelope (README §2.6, C-V2 definitions)."""
    return JSONResponse(
        {"error": True, "errorKey": error_key, "message": message}, status_code=status, headers=headers
    )


def object_id() -> str:
    """A 24-hex id shaped like a MongoDB ObjectId (time, random, counter), as in C-V2's examples."""
    counter = next(_counter) & 0xFFFFFF
    return f"{int(time.time()):08x}{os.urandom(5).hex()}{counter:06x}"


def parse_date(value: Any) -> dt.date | None:
    """ISO-8601 date or date-time, or ``MM-DD-YYYY`` as in C-JOBS' example; ``None`` if invalid."""
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    try:
        return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).date()
    except ValueError:
        pass
    for fmt in ("%Y-%m-%d", "%m-%d-%Y", "%m/%d/%Y"):
        try:
            return dt.datetime.strptime(text, fmt).date()
        except ValueError:
            continue
    return None


def _parse_moment(value: str) -> dt.datetime | None:
    try:
        moment = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        day = parse_date(value)
        if day is None:
            return None
        moment = dt.datetime(day.year, day.month, day.day)
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.timezone.utc)


def _iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S+00:00")


@dataclass
class Audience:
    name: str
    trends_enabled: bool = True
    base_size: int = 10_000
    #: how many contacts a contact export of this audience (``audience-key``) holds
    members: int = 50


@dataclass
class ExportJob:
    """One export job: an audience-trends export (``kind`` ``trends``) or a contact export (``contacts``)."""

    job_id: str
    kind: str
    name: str
    destination: dict[str, Any]
    created_mono: float
    created_wall: dt.datetime
    #: how long the job stays Scheduled, then Processing: the server's ``job_seconds`` at creation
    seconds: float = 1.0
    #: the server's ``job_reads`` at creation: the job moves on with reads of it, not with time
    reads_to_finish: int | None = None
    reads: int = 0
    # trends
    start: dt.date = dt.date.min
    end: dt.date = dt.date.min
    audiences: list[str] = field(default_factory=list)
    # contacts
    fields: list[str] = field(default_factory=list)
    lists: list[int] = field(default_factory=list)
    audience_key: str | None = None
    export_type: str = "csv"
    compress: bool = False
    show_header: bool = False
    # outcome
    fail_reason: str | None = None
    throttled: bool = False
    delivered: bool = False
    delivery_error: str | None = None
    file_cache: bytes | None = field(default=None, repr=False)

    @property
    def job_name(self) -> str:
        return JOB_NAME if self.kind == "trends" else CONTACTS_JOB_NAME

    @property
    def file_name(self) -> str:
        # Vendor is silent on the delivered file's name: sandbox choice: the export's `name` and
        # the type's extension; C-V2 SourceCE.compress: "with the file extension .gz added".
        extension = "csv" if self.kind == "trends" else self.export_type
        return f"{self.name}.{extension}" + (".gz" if self.compress else "")


class CordialServer(VendorServer):
    """Cordial's API host (``https://api.cordial.io``) on a loopback port."""

    vendor: ClassVar[str] = "Cordial"
    default_settings: ClassVar[dict[str, Any]] = {
        **VendorServer.default_settings,
        "s3_endpoint_url": None,
        "s3_iam_role": False,
        "rate_limit_per_minute": 120,
        "account_contacts": 100,
        "job_reads": None,
        "api_key": API_KEY,
    }

    def __init__(self, cache_dir: Path) -> None:
        #: the account's API key this host accepts (another host, e.g. another region's, knows another)
        self.api_key: str = API_KEY
        self.s3_endpoint_url: str | None = None
        #: the account has an IAM role for S3 delivery, so requests may leave the keys out
        self.s3_iam_role: bool = False
        self.rate_limit_per_minute: int = 120
        #: how many contacts a contact export without ``audience-key`` holds
        self.account_contacts: int = 100
        #: when set, jobs created from now on move on with each ``GET /v2/jobs/{id}`` of them instead
        #: of with time: Scheduled at the first read, Processing (or Throttled) until read number
        #: ``job_reads``, which finds them Done (or Failed). Deterministic, for tests that count looks.
        self.job_reads: int | None = None
        super().__init__(cache_dir)
        self._audiences: dict[str, Audience] = {}
        self._saved_keys: set[str] = set()
        self._jobs: dict[str, ExportJob] = {}
        self._fail_next: list[str] = []
        self._throttle_next = 0
        self._empty_answers = 0
        self._answered: list[float] = []  # monotonic times of recent answers (X-Rate-Limit-*)
        self._state_lock = threading.RLock()

    # -- seeding --------------------------------------------------------------------------------
    def add_audience(
        self, name: str, trends_enabled: bool = True, *, base_size: int = 10_000, members: int = 50
    ) -> None:
        """A saved audience; trends exports of it fail unless trend analytics are enabled (C-TR)."""
        with self._state_lock:
            self._audiences[name] = Audience(name, trends_enabled, base_size, members)

    def add_saved_key(self, name: str) -> None:
        """A saved SFTP public-key authentication key that requests may name as ``savedKey``."""
        with self._state_lock:
            self._saved_keys.add(name)

    def fail_next_jobs(self, times: int = 1, reason: str = "Export failed") -> None:
        """The next ``times`` export jobs created end ``Failed`` instead of ``Done``."""
        with self._state_lock:
            self._fail_next.extend([reason] * times)

    def throttle_next_jobs(self, times: int = 1) -> None:
        """The next ``times`` jobs show ``Throttled`` instead of ``Processing`` while they run.

        Vendor is silent on when a job is Throttled (C-V2 lists it only among the list filter's
        statuses, not in JobJ's status enum): sandbox choice, on request only.
        """
        with self._state_lock:
            self._throttle_next += times

    def answer_creates_empty(self, times: int = 1) -> None:
        """The next ``times`` create requests make their job but answer 200 with an empty body.

        C-V2 gives the 200 of POST /v2/audiencetrendsexport no schema ("jobId" only): a server
        that follows the spec to the letter may answer exactly that.
        """
        with self._state_lock:
            self._empty_answers += times

    def job_ids(self) -> list[str]:
        with self._state_lock:
            return list(self._jobs)

    def jobs_named(self, name: str) -> list[str]:
        """The ids of every job created under ``name``."""
        with self._state_lock:
            return [j.job_id for j in self._jobs.values() if j.name == name]

    def export_file(self, job_id: str) -> bytes:
        """The file an export job produced, as delivered (gzipped when ``compress``), whatever its
        status; it is deterministic."""
        with self._state_lock:
            job = self._jobs[job_id]
        return self._file(job)

    def export_csv(self, job_id: str) -> bytes:
        """The CSV an audience-trends export job produced (see :meth:`export_file`)."""
        return self.export_file(job_id)

    def file_name(self, job_id: str) -> str:
        with self._state_lock:
            return self._jobs[job_id].file_name

    @staticmethod
    def contact(index: int, field_name: str, audience: str | None) -> str:
        """The value of ``field_name`` for the ``index``-th contact of an export (deterministic)."""
        scope = audience or "all"
        if field_name == "email":
            return f"{scope.lower()}-{index:05d}@example.com"
        if field_name == "cID":
            return hashlib.sha256(f"{scope}/{index}".encode()).hexdigest()[:24]
        return f"{field_name}-{index}"

    def reset_state(self) -> None:
        with self._state_lock:
            self._audiences.clear()
            self._saved_keys.clear()
            self._jobs.clear()
            self._fail_next.clear()
            self._throttle_next = 0
            self._empty_answers = 0
            self._answered.clear()

    def connection(self) -> dict[str, Any]:
        return {"conn_type": "cordial", "password": self.api_key, "extra": {"api_host": self.url}}

    # -- vendor bodies --------------------------------------------------------------------------
    def rate_limit_headers(
        self, *, exhausted: bool = False, retry_after: str | None = None
    ) -> dict[str, str]:
        """C-RL's headers: the limit per period, what is left of it, seconds until it is whole again.

        The sandbox counts its answers over a sliding minute but enforces no limit (faults do).
        """
        now = time.monotonic()
        with self._state_lock:
            self._answered = [t for t in self._answered if now - t < RATE_PERIOD_SECONDS]
            used = len(self._answered)
            reset = RATE_PERIOD_SECONDS - (now - self._answered[0]) if self._answered else 0.0
        remaining = 0 if exhausted else max(0, self.rate_limit_per_minute - used)
        return {
            "X-Rate-Limit-Limit": str(self.rate_limit_per_minute),
            "X-Rate-Limit-Remaining": str(remaining),
            "X-Rate-Limit-Reset": retry_after if retry_after is not None else str(int(reset + 0.999)),
        }

    def _count_answer(self) -> None:
        with self._state_lock:
            self._answered.append(time.monotonic())

    def rate_limited_response(self, retry_after: str) -> Response:
        # Vendor is silent on the 429 body (vendor-apis README §2.7 gives status and headers
        # only): sandbox choice: the error envelope with errorKey TOO_MANY_REQUESTS.
        headers = {
            "Retry-After": retry_after,
            **self.rate_limit_headers(exhausted=True, retry_after=retry_after),
        }
        return cordial_error(429, "TOO_MANY_REQUESTS", "Too Many Requests", headers)

    def server_error_response(self, status: int) -> Response:
        # Vendor is silent on 5xx bodies (vendor-apis README §2.6, C-ERR 5xx part unreadable):
        # sandbox choice: the error envelope with GENERIC_ERROR_KEY.
        return cordial_error(status, "GENERIC_ERROR_KEY", "Internal Server Error")

    def unauthorized_response(self) -> Response:
        # README §2.6: the 401 body's `error` is a string, unlike the envelope.
        return JSONResponse({"error": "Access Denied: Authentication Failure"}, status_code=401)

    # -- job model ------------------------------------------------------------------------------
    def _status(self, job: ExportJob) -> str:
        if job.reads_to_finish is not None:
            scheduled, running = job.reads <= 1, job.reads < job.reads_to_finish
        else:
            elapsed = time.monotonic() - job.created_mono
            scheduled, running = elapsed < job.seconds, elapsed < 2 * job.seconds
        if scheduled and running:
            return "Scheduled"
        if running:
            return "Throttled" if job.throttled else "Processing"
        if job.fail_reason is not None:
            return "Failed"
        if not job.delivered and job.delivery_error is None:
            self._deliver(job)
        return "Failed" if job.delivery_error is not None else "Done"

    def _deliver(self, job: ExportJob) -> None:
        """Write the file into the S3 bucket the request named, as Cordial does, when the sandbox
        has an S3 endpoint (e.g. moto) to write to; other destinations are taken as delivered."""
        dest = job.destination
        if dest.get("type") != "S3" or not self.s3_endpoint_url:
            job.delivered = True
            return
        import boto3

        key = "/".join(p for p in (str(dest.get("path", "")).strip("/"), job.file_name) if p)
        try:
            client = boto3.client(
                "s3",
                endpoint_url=self.s3_endpoint_url,
                region_name=dest.get("aws_region") or "us-east-1",
                # with the account's IAM role (no keys in the request) the sandbox's own credentials
                aws_access_key_id=dest.get("aws_access_key_id") or "testing",
                aws_secret_access_key=dest.get("aws_secret_access_key") or "testing",
            )
            content_type = {"csv": "text/csv", "json": "application/json"}.get(job.export_type, "text/plain")
            client.put_object(
                Bucket=dest["aws_bucket"],
                Key=key,
                Body=self._file(job),
                ContentType="application/gzip" if job.compress else content_type,
            )
            job.delivered = True
        except Exception as exc:
            job.delivery_error = f"STORAGE_CONNECTION_ERROR: {type(exc).__name__}"

    def _file(self, job: ExportJob) -> bytes:
        if job.file_cache is None:
            raw = self._trends_csv(job) if job.kind == "trends" else self._contacts_file(job)
            job.file_cache = gzip.compress(raw, mtime=0) if job.compress else raw
        return job.file_cache

    def _trends_csv(self, job: ExportJob) -> bytes:
        # Vendor is silent on the trends CSV layout (vendor-apis README §2.1): sandbox choice:
        # header `audience,<YYYY-MM-DD>...`, a row per audience, a column per day, integer counts.
        days = [job.start + dt.timedelta(days=i) for i in range((job.end - job.start).days + 1)]
        out = io.StringIO()
        out.write(",".join(["audience", *(d.isoformat() for d in days)]) + "\r\n")
        for name in job.audiences:
            base = self._audiences[name].base_size if name in self._audiences else 10_000
            counts = []
            for day in days:
                digest = hashlib.sha256(f"{name}/{day.isoformat()}".encode()).digest()
                counts.append(str(base + int.from_bytes(digest[:2], "big") % max(1, base // 10)))
            out.write(",".join([_csv_field(name), *counts]) + "\r\n")
        return out.getvalue().encode()

    def _contacts_file(self, job: ExportJob) -> bytes:
        count = self._contact_count(job)
        # Lists: "a value of 1 if they are on the list or 0 if they are not" (the article); vendor
        # is silent on the column name: sandbox choice, the list ID; every third contact is on it.
        columns = [*job.fields, *(str(i) for i in job.lists)]
        out = io.StringIO()
        if job.export_type == "json":
            # Vendor is silent on the JSON file's layout: sandbox choice, JSON lines (an object per
            # contact, keyed by field).
            for n in range(count):
                record: dict[str, Any] = {f: self.contact(n, f, job.audience_key) for f in job.fields}
                record.update({str(i): 1 if (n + i) % 3 == 0 else 0 for i in job.lists})
                out.write(json.dumps(record) + "\n")
        else:
            # C-V2 SourceCE.delimiter: "Only used if ExportType is set to TXT"; CSV uses commas.
            if job.show_header:
                out.write(",".join(_csv_field(c) for c in columns) + "\r\n")
            for n in range(count):
                values = [self.contact(n, f, job.audience_key) for f in job.fields]
                values += ["1" if (n + i) % 3 == 0 else "0" for i in job.lists]
                out.write(",".join(_csv_field(v) for v in values) + "\r\n")
        return out.getvalue().encode()

    def _job_record(self, job: ExportJob) -> dict[str, Any]:
        status = self._status(job)
        elapsed = time.monotonic() - job.created_mono
        times: dict[str, str] = {}
        if status != "Scheduled":
            # TimesJ.start: "Time when job starts execution", so a Scheduled job has none.
            times["start"] = _iso(job.created_wall + dt.timedelta(seconds=job.seconds))
        if status in ("Done", "Failed"):
            times["end"] = _iso(job.created_wall + dt.timedelta(seconds=min(elapsed, 2 * job.seconds)))
        done = status == "Done"
        rows = len(job.audiences) if job.kind == "trends" else self._contact_count(job)
        metadata: dict[str, Any] = {
            "name": job.name,
            "exportType": job.export_type,
            "fileName": job.file_name,
        }
        if job.lists:
            metadata["lists"] = [str(i) for i in job.lists]  # JobMetadataJ.lists: strings
        return {
            # Vendor is silent on the id field (vendor-apis README §2.4: JobJ has none):
            # sandbox choice: `_id`, as in Cordial's MongoDB-style ids.
            "_id": job.job_id,
            "status": status,
            "jobName": job.job_name,
            "totalItems": rows,
            "completedItems": rows if done else 0,
            "times": times,
            "result": {
                "totalRecords": rows if done else 0,
                "updated": 0,
                "rejected": 0,
                "inserted": rows if done else 0,
                "error": 1 if status == "Failed" else 0,
                "ignored": 0,
            },
            "metadata": metadata,
        }

    def _contact_count(self, job: ExportJob) -> int:
        with self._state_lock:
            audience = self._audiences.get(job.audience_key) if job.audience_key else None
        return audience.members if audience is not None else self.account_contacts

    # -- validation (README §2.3; C-V2 SourceCE) ------------------------------------------------
    def _destination_error(self, dest: Any) -> str | None:
        if not isinstance(dest, dict) or not dest.get("type"):
            return "The destination.type field is required."
        kind = str(dest["type"]).upper()
        if kind not in DESTINATION_TYPES:
            # Vendor is silent on an unknown type's message (README §2.3): sandbox choice: the
            # same Laravel wording as the documented "selected destination.transport" message.
            return "The selected destination.type is invalid."

        def missing(name: str) -> bool:
            value = dest.get(name)
            return value is None or (isinstance(value, str) and not value.strip())

        if kind in ("FTP", "SFTP"):
            if missing("server"):
                return "The destination.server field is required."
            if missing("username"):
                return "The destination.username field is required."
            if missing("password") and not (kind == "SFTP" and not missing("savedKey")):
                return "Parameter password is not set"
            if kind == "SFTP" and not missing("savedKey"):
                with self._state_lock:
                    known = dest["savedKey"] in self._saved_keys
                if not known:
                    # C-V2 ContactExportsError lists this message.
                    return f"SSH key with such Name/ID: {dest['savedKey']} does not exist."
        if kind == "S3":
            # "Required if destination is S3 and IAM role is not configured" (C-V2): the sandbox
            # account has no IAM role unless `s3_iam_role` is set.
            keys = () if self.s3_iam_role else ("aws_access_key_id", "aws_secret_access_key")
            for name in (*keys, "aws_bucket", "aws_region"):
                if missing(name):
                    return f"The destination.{name.replace('_', ' ')} field is required."
        if kind == "GCS" and missing("gcs_bucket"):
            return "The destination.gcs bucket field is required."
        if kind == "AZUREBLOB":
            for name in ("account", "container"):
                if missing(name):
                    return f"The destination.{name} field is required."
        if kind != "AWS" and missing("path"):
            return "The destination.path field is required."
        return None

    def _config_error(self, body: dict[str, Any]) -> str | None:
        name = body.get("name")
        if not isinstance(name, str) or not name:
            return "Field 'name' should be provided."
        if not _NAME.match(name):
            # Vendor is silent on this message (C-ATE: "may only contain letters, numbers, and
            # dashes"): sandbox choice: a 406 in the documented config-error style.
            return "Field 'name' may only contain letters, numbers, and dashes."
        audiences = body.get("audiences")
        if not isinstance(audiences, list) or not audiences:
            return "Field 'audiences' should be provided."
        start_raw, end_raw = body.get("selected_timeframe_start"), body.get("selected_timeframe_end")
        # Vendor is silent on whether the timeframe may be left out entirely (README §2.3):
        # sandbox choice: both are required.
        if start_raw in (None, "") or end_raw in (None, ""):
            return "Both fields 'selected_timeframe_start' and 'selected_timeframe_end' should be present."
        start, end = parse_date(start_raw), parse_date(end_raw)
        if start is None:
            return "The 'selected_timeframe_start' is invalid. ISO-8601 is a recommended format."
        if end is None:
            return "The 'selected_timeframe_end' is invalid. ISO-8601 is a recommended format."
        if end < start:
            return "'selected_timeframe_end' cannot be in past in comparison with 'selected_timeframe_start'"
        with self._state_lock:
            for audience in audiences:
                found = self._audiences.get(str(audience))
                if found is None:
                    return f"Audience '{audience}' does not exist."
                if not found.trends_enabled:
                    return f"For Audience '{audience}' analytics disabled."
        return None

    def _contacts_error(self, body: dict[str, Any]) -> str | None:
        """The 400 message for a contact export request (C-V2 SourceCE, ContactExportsError)."""
        # Vendor is silent on the messages for missing required fields: sandbox choice, the same
        # Laravel wording as the documented destination messages.
        fields, account = body.get("fields"), body.get("accountId")
        if not isinstance(fields, list) or not fields or not all(isinstance(f, str) and f for f in fields):
            return "The fields field is required."
        if isinstance(account, bool) or not isinstance(account, int):
            # Vendor is silent on which account ids are accepted: any integer.
            return "The accountId field is required."
        name = body.get("name")
        if name is not None and (not isinstance(name, str) or not _NAME.match(name)):
            return "The name may only contain letters, numbers, and dashes."
        if str(body.get("exportType", "csv")).lower() not in CONTACT_EXPORT_TYPES:
            return "The selected export type is invalid."
        lists = body.get("lists", [])
        if not isinstance(lists, list) or not all(
            isinstance(i, (int, float)) and not isinstance(i, bool) for i in lists
        ):
            # Vendor is silent on this message (C-V2: list items are numbers): sandbox choice.
            return "The selected lists are invalid."
        key = body.get("audience-key")
        if key is not None:
            with self._state_lock:
                known = str(key) in self._audiences
            if not known:
                return f"Audience with name: '{key}' does not exist."
        for flag in ("compress", "showHeader"):
            if flag in body and not isinstance(body[flag], bool):
                # Vendor is silent (C-V2 types both as boolean): sandbox choice.
                return f"The {flag} field must be true or false."
        return None

    # -- app ------------------------------------------------------------------------------------
    def _authorized(self, request: Request) -> bool:
        scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            username, _, password = base64.b64decode(encoded.strip()).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return False
        # C-REST: API key as username, blank password.
        return username == self.api_key and password == ""

    async def _json_body(self, request: Request) -> dict[str, Any] | Response:
        """The body of an authorized request as a dict, or Cordial's answer to a request it refuses
        (a wrong key, a body it cannot read)."""
        if not self._authorized(request):
            return self.unauthorized_response()
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        body: Any
        if content_type == "application/json":
            try:
                body = await request.json()
            except ValueError:
                return cordial_error(400, "INVALID_JSON_PROVIDED", "Invalid JSON provided")
        elif content_type == "application/x-www-form-urlencoded":
            body = _nest_form(list((await request.form()).multi_items()))
        else:
            return cordial_error(
                415,
                "UNSUPPORTED_MEDIA_TYPE",
                "Unsupported Media Type: Content-Type header must be application/json or "
                "application/x-www-form-urlencoded.",
            )
        if not isinstance(body, dict):
            return cordial_error(400, "INVALID_JSON_PROVIDED", "Invalid JSON provided")
        return body

    def _new_job(self, kind: str, body: dict[str, Any], **spec: Any) -> Response:
        with self._state_lock:
            job = ExportJob(
                job_id=object_id(),
                kind=kind,
                name=str(body.get("name") or ""),
                destination=dict(body["destination"]),
                created_mono=time.monotonic(),
                created_wall=dt.datetime.now(dt.timezone.utc),
                seconds=self.job_seconds,
                reads_to_finish=self.job_reads,
                fail_reason=self._fail_next.pop(0) if self._fail_next else None,
                **spec,
            )
            if self._throttle_next:
                self._throttle_next -= 1
                job.throttled = True
            if not job.name:
                # Vendor is silent on the file name of an unnamed export: sandbox choice, the job id.
                job.name = job.job_id
            job.destination["type"] = str(job.destination["type"]).upper()
            self._jobs[job.job_id] = job
            empty = self._empty_answers > 0
            if empty:
                self._empty_answers -= 1
        if empty:
            return Response(status_code=200)
        # C-V2: {"jobId": string} (ContactExportsResponse; the trends 200 has no schema, README §2.3).
        return JSONResponse({"jobId": job.job_id})

    def build_app(self) -> FastAPI:
        from fastapi import FastAPI

        app = FastAPI(title="Cordial sandbox", docs_url=None, redoc_url=None, openapi_url=None)

        @app.middleware("http")
        async def rate_limit_headers(request: Request, call_next: Any) -> Response:
            response: Response = await call_next(request)
            if not request.url.path.startswith("/_sandbox/"):
                self._count_answer()
                for name, value in self.rate_limit_headers().items():
                    response.headers.setdefault(name, value)
            return response

        @app.post(PATHS["create"])
        async def create_export(request: Request) -> Response:
            body = await self._json_body(request)
            if isinstance(body, Response):
                return body
            # Vendor is silent on the order of checks (README §2.3): sandbox choice: request
            # validation of the destination (400) before the export configuration (406).
            dest_error = self._destination_error(body.get("destination"))
            if dest_error is not None:
                return cordial_error(400, "GENERIC_ERROR_KEY", dest_error)
            if body.get("exportType", "csv") != "csv":
                # Vendor is silent on this message (C-V2 enum: only csv): sandbox choice.
                return cordial_error(400, "VALIDATION_ERROR", "The selected exportType is invalid.")
            config_error = self._config_error(body)
            if config_error is not None:
                return cordial_error(406, "GENERIC_ERROR_KEY", config_error)
            start = parse_date(body["selected_timeframe_start"])
            end = parse_date(body["selected_timeframe_end"])
            assert start is not None and end is not None
            return self._new_job(
                "trends", body, start=start, end=end, audiences=[str(a) for a in body["audiences"]]
            )

        @app.post(PATHS["contacts"])
        async def create_contact_export(request: Request) -> Response:
            body = await self._json_body(request)
            if isinstance(body, Response):
                return body
            # C-V2 documents only 400 (ContactExportsError) and 415 for this operation.
            error = self._destination_error(body.get("destination")) or self._contacts_error(body)
            if error is not None:
                return cordial_error(400, "GENERIC_ERROR_KEY", error)
            return self._new_job(
                "contacts",
                body,
                fields=list(body["fields"]),
                lists=[int(i) for i in body.get("lists", [])],
                audience_key=body.get("audience-key"),
                export_type=str(body.get("exportType", "csv")).lower(),
                compress=bool(body.get("compress", False)),
                # The article: showHeader "The default is false".
                show_header=bool(body.get("showHeader", False)),
            )

        @app.get(PATHS["job"])
        def get_job(request: Request, id: str) -> Response:
            if not self._authorized(request):
                return self.unauthorized_response()
            with self._state_lock:
                job = self._jobs.get(id)
                if job is not None:
                    job.reads += 1
            if job is None:
                return cordial_error(404, "RECORD_NOT_FOUND", "record not found")
            record = self._job_record(job)
            fields = request.query_params.get("fields")
            if fields:
                wanted = {f.strip() for f in fields.split(",") if f.strip()} | {"_id"}
                record = {k: v for k, v in record.items() if k in wanted}
            return JSONResponse(record)

        @app.get(PATHS["jobs"])
        def list_jobs(request: Request) -> Response:
            if not self._authorized(request):
                return self.unauthorized_response()
            q = request.query_params
            include = {p.strip() for p in q.get("include", "").split(",") if p.strip()}
            try:
                per_page = int(q.get("per_page", DEFAULT_PER_PAGE))
                page = int(q.get("page", 1))
            except ValueError:
                return cordial_error(422, "GENERIC_ERROR_KEY", "Pagination value is incorrect")
            if "statistic" in include and per_page > STATISTIC_MAX_PER_PAGE:
                return cordial_error(
                    400,
                    "JOBS_STATISTIC_PER_PAGE_EXCEEDED",
                    "When include=statistic is requested, per_page must not exceed 25.",
                )
            filters: list[tuple[str, str, dt.datetime]] = []
            for which in ("start", "end"):
                for op in ("gt", "gte", "lt", "lte"):
                    raw = q.get(f"times[{which}][{op}]")
                    if raw is None:
                        continue
                    moment = _parse_moment(raw)
                    if moment is None:
                        return cordial_error(422, "GENERIC_ERROR_KEY", "Time value is incorrect")
                    filters.append((which, op, moment))
            with self._state_lock:
                jobs = list(self._jobs.values())
            records = [self._job_record(j) for j in jobs]
            if q.get("jobName"):
                records = [r for r in records if r["jobName"] == q["jobName"]]
            if q.get("status"):
                records = [r for r in records if r["status"] == q["status"]]
            for which, op, moment in filters:
                records = [r for r in records if _time_matches(r["times"].get(which), op, moment)]
            # Vendor is silent on order and on empty results (README §2.4; the spec also lists a
            # 404 for the list): sandbox choice: newest first, an empty page is `[]`.
            records.reverse()
            first = (max(page, 1) - 1) * max(per_page, 1)
            return JSONResponse(records[first : first + max(per_page, 1)])

        @app.get(PATHS["file"])
        def sandbox_file(request: Request, id: str) -> Response:
            with self._state_lock:
                job = self._jobs.get(id)
            if job is None:
                return cordial_error(404, "RECORD_NOT_FOUND", "record not found")
            if self._status(job) != "Done":
                return cordial_error(409, "GENERIC_ERROR_KEY", f"Job {id} is not Done")
            return Response(
                self._file(job),
                media_type="application/octet-stream",
                headers={"Content-Disposition": f'attachment; filename="{job.file_name}"'},
            )

        return app


def _csv_field(value: str) -> str:
    return '"' + value.replace('"', '""') + '"' if any(c in value for c in ',"\r\n') else value


def _time_matches(value: str | None, op: str, moment: dt.datetime) -> bool:
    if value is None:
        return False
    actual = dt.datetime.fromisoformat(value)
    return {
        "gt": actual > moment,
        "gte": actual >= moment,
        "lt": actual < moment,
        "lte": actual <= moment,
    }[op]


def _nest_form(items: list[tuple[str, Any]]) -> dict[str, Any]:
    """PHP-style form fields (``destination[type]=S3``, ``audiences[]=a``) to nested JSON."""
    out: dict[str, Any] = {}
    for key, value in items:
        if not isinstance(value, str):
            continue
        parts = re.findall(r"[^\[\]]+|\[\]", key)
        node: Any = out
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            nxt = parts[i + 1] if not last else None
            if part == "[]":
                if isinstance(node, list):
                    node.append(value)
                break
            if last:
                node[part] = value
            else:
                node = node.setdefault(part, [] if nxt == "[]" else {})
    # Indexed lists (audiences[0]=a) arrive as dicts with numeric keys.
    for key, value in list(out.items()):
        if isinstance(value, dict) and value and all(k.isdigit() for k in value):
            out[key] = [value[k] for k in sorted(value, key=int)]
    return out
