"""Cordial sandbox: v2 ``audiencetrendsexport`` and ``jobs`` with HTTP Basic API-key auth.

Built from vendor-apis README §2 (C-V2 Swagger, C-ATE, C-JOBS, C-ERR, C-RL). Audiences are
seeded with :meth:`CordialServer.add_audience`. A Done job's CSV can be read back with
``GET /_sandbox/files/{jobId}`` or :meth:`CordialServer.export_csv`, and is written to S3 when
``s3_endpoint_url`` is set and the destination is S3.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import io
import itertools
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

from airflow_provider_exports.sandbox.server import VendorServer

if TYPE_CHECKING:
    from fastapi import FastAPI

API_KEY = "sandbox-cordial-key"
PATHS = {
    "create": "/v2/audiencetrendsexport",
    "jobs": "/v2/jobs",
    "job": "/v2/jobs/{id}",
    "file": "/_sandbox/files/{id}",
}
DESTINATION_TYPES = ("AWS", "FTP", "SFTP", "S3", "GCS", "AZUREBLOB")
JOB_STATUSES = ("Scheduled", "Pending", "Processing", "Throttled", "Failed", "Done")
# Vendor is silent on the jobName of trends exports (vendor-apis README §2.4: not in the enum):
# sandbox choice: "ExportAudienceTrends", following the Export* names of the other exporters.
JOB_NAME = "ExportAudienceTrends"
# Vendor is silent on the default page size of GET /v2/jobs (README §2.4): sandbox choice: 25.
DEFAULT_PER_PAGE = 25
STATISTIC_MAX_PER_PAGE = 25
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


@dataclass
class TrendsJob:
    job_id: str
    name: str
    destination: dict[str, Any]
    start: dt.date
    end: dt.date
    audiences: list[str]
    created_mono: float
    created_wall: dt.datetime
    fail_reason: str | None = None
    delivered: bool = False
    delivery_error: str | None = None
    csv_cache: bytes | None = field(default=None, repr=False)

    @property
    def file_name(self) -> str:
        return f"{self.name}.csv"


class CordialServer(VendorServer):
    """Cordial's API host (``https://api.cordial.io``) on a loopback port."""

    vendor: ClassVar[str] = "Cordial"
    default_settings: ClassVar[dict[str, Any]] = {
        **VendorServer.default_settings,
        "s3_endpoint_url": None,
        "rate_limit_per_minute": 120,
    }

    def __init__(self, cache_dir: Path) -> None:
        self.s3_endpoint_url: str | None = None
        self.rate_limit_per_minute: int = 120
        super().__init__(cache_dir)
        self._audiences: dict[str, Audience] = {}
        self._jobs: dict[str, TrendsJob] = {}
        self._fail_next: list[str] = []
        self._state_lock = threading.RLock()

    # -- seeding --------------------------------------------------------------------------------
    def add_audience(self, name: str, trends_enabled: bool = True, *, base_size: int = 10_000) -> None:
        """A saved audience; exports of it fail unless trend analytics are enabled (C-TR)."""
        with self._state_lock:
            self._audiences[name] = Audience(name, trends_enabled, base_size)

    def fail_next_jobs(self, times: int = 1, reason: str = "Export failed") -> None:
        """The next ``times`` export jobs created end ``Failed`` instead of ``Done``."""
        with self._state_lock:
            self._fail_next.extend([reason] * times)

    def job_ids(self) -> list[str]:
        with self._state_lock:
            return list(self._jobs)

    def export_csv(self, job_id: str) -> bytes:
        """The CSV an export job produced (whatever its status; it is deterministic)."""
        with self._state_lock:
            job = self._jobs[job_id]
        return self._csv(job)

    def reset_state(self) -> None:
        with self._state_lock:
            self._audiences.clear()
            self._jobs.clear()
            self._fail_next.clear()

    def connection(self) -> dict[str, Any]:
        return {"conn_type": "cordial", "password": API_KEY, "extra": {"api_host": self.url}}

    # -- vendor bodies --------------------------------------------------------------------------
    def rate_limited_response(self, retry_after: str) -> Response:
        # Vendor is silent on the 429 body (vendor-apis README §2.7 gives status and headers
        # only): sandbox choice: the error envelope with errorKey TOO_MANY_REQUESTS.
        headers = {
            "Retry-After": retry_after,
            "X-Rate-Limit-Limit": str(self.rate_limit_per_minute),
            "X-Rate-Limit-Remaining": "0",
            "X-Rate-Limit-Reset": retry_after,
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
    def _status(self, job: TrendsJob) -> str:
        elapsed = time.monotonic() - job.created_mono
        if elapsed < self.job_seconds:
            return "Scheduled"
        if elapsed < 2 * self.job_seconds:
            return "Processing"
        if job.fail_reason is not None:
            return "Failed"
        if not job.delivered and job.delivery_error is None:
            self._deliver(job)
        return "Failed" if job.delivery_error is not None else "Done"

    def _deliver(self, job: TrendsJob) -> None:
        """Write the CSV to S3 when the sandbox has an S3 endpoint (e.g. moto) to write to."""
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
                aws_access_key_id=dest.get("aws_access_key_id") or "testing",
                aws_secret_access_key=dest.get("aws_secret_access_key") or "testing",
            )
            client.put_object(Bucket=dest["aws_bucket"], Key=key, Body=self._csv(job), ContentType="text/csv")
            job.delivered = True
        except Exception as exc:
            job.delivery_error = f"STORAGE_CONNECTION_ERROR: {type(exc).__name__}"

    def _csv(self, job: TrendsJob) -> bytes:
        if job.csv_cache is None:
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
                quoted = '"' + name.replace('"', '""') + '"' if ("," in name or '"' in name) else name
                out.write(",".join([quoted, *counts]) + "\r\n")
            job.csv_cache = out.getvalue().encode()
        return job.csv_cache

    def _job_record(self, job: TrendsJob) -> dict[str, Any]:
        status = self._status(job)
        elapsed = time.monotonic() - job.created_mono
        times: dict[str, str] = {}
        if status != "Scheduled":
            times["start"] = _iso(job.created_wall + dt.timedelta(seconds=self.job_seconds))
        if status in ("Done", "Failed"):
            times["end"] = _iso(job.created_wall + dt.timedelta(seconds=min(elapsed, 2 * self.job_seconds)))
        done = status == "Done"
        rows = len(job.audiences)
        return {
            # Vendor is silent on the id field (vendor-apis README §2.4: JobJ has none):
            # sandbox choice: `_id`, as in Cordial's MongoDB-style ids.
            "_id": job.job_id,
            "status": status,
            "jobName": JOB_NAME,
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
            "metadata": {"name": job.name, "exportType": "csv", "fileName": job.file_name},
        }

    # -- validation (README §2.3) ---------------------------------------------------------------
    @staticmethod
    def _destination_error(dest: Any) -> str | None:
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
        if kind == "S3":
            # "Required if destination is S3 and IAM role is not configured" (C-V2): the sandbox
            # account has no IAM role, so the keys are required.
            for name in ("aws_access_key_id", "aws_secret_access_key", "aws_bucket", "aws_region"):
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
        return username == API_KEY and password == ""

    def build_app(self) -> FastAPI:
        from fastapi import FastAPI

        app = FastAPI(title="Cordial sandbox", docs_url=None, redoc_url=None, openapi_url=None)

        @app.post(PATHS["create"])
        async def create_export(request: Request) -> Response:
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
            with self._state_lock:
                job = TrendsJob(
                    job_id=object_id(),
                    name=body["name"],
                    destination=dict(body["destination"]),
                    start=start,
                    end=end,
                    audiences=[str(a) for a in body["audiences"]],
                    created_mono=time.monotonic(),
                    created_wall=dt.datetime.now(dt.timezone.utc),
                    fail_reason=self._fail_next.pop(0) if self._fail_next else None,
                )
                job.destination["type"] = str(job.destination["type"]).upper()
                self._jobs[job.job_id] = job
            # C-V2 gives the 200 only as "jobId"; sibling exporters return {"jobId": ...} (README §2.3).
            return JSONResponse({"jobId": job.job_id})

        @app.get(PATHS["job"])
        def get_job(request: Request, id: str) -> Response:
            if not self._authorized(request):
                return self.unauthorized_response()
            with self._state_lock:
                job = self._jobs.get(id)
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
                self._csv(job),
                media_type="text/csv",
                headers={"Content-Disposition": f'attachment; filename="{job.file_name}"'},
            )

        return app


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
