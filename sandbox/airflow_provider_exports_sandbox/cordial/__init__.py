"""Cordial sandbox: v2 ``audiencetrendsexport``, ``contactexports`` and ``jobs`` with HTTP Basic API-key auth.

Built from vendor-apis README §2 (C-V2 Swagger, C-ATE, C-JOBS, C-ERR, C-RL) and Cordial's "Contact
exports API" article (https://support.cordial.com/hc/en-us/articles/203886068). Audiences are seeded
with :meth:`CordialServer.add_audience`. A Done job's file can be read back with
``GET /_sandbox/files/{jobId}`` or :meth:`CordialServer.export_file`, and is written to S3 the way
Cordial delivers into a customer's bucket when ``s3_endpoint_url`` is set (e.g. moto) and the
destination is S3. Every answer carries the ``X-Rate-Limit-*`` headers of C-RL.

This module is the server (its settings, state, job statuses and routes); what it keeps is in
:mod:`.records`, what it accepts in :mod:`.validation`, the files exports produce in :mod:`.files`.
"""

from __future__ import annotations

import base64
import datetime as dt
import threading
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any, ClassVar

from fastapi import FastAPI

# Runtime import: FastAPI resolves the route annotations when the app is built.
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from airflow_provider_exports_sandbox.cordial.files import (
    contact_count,
    export_file,
    upload_to_blob,
    upload_to_server,
)
from airflow_provider_exports_sandbox.cordial.records import (
    API_KEY,
    DEFAULT_PER_PAGE,
    PATHS,
    RATE_PERIOD_SECONDS,
    STATISTIC_MAX_PER_PAGE,
    Audience,
    ExportJob,
    cordial_error,
    iso,
    object_id,
    parse_date,
    parse_filter_day,
    time_matches,
)
from airflow_provider_exports_sandbox.cordial.validation import (
    config_error,
    contacts_error,
    destination_error,
    read_body,
    spec_judge,
)
from airflow_provider_exports_sandbox.server import VendorServer
from airflow_provider_exports_sandbox.specs import SpecGate

__all__ = ["API_KEY", "CordialServer"]


class CordialServer(VendorServer):
    """Cordial's API host (``https://api.cordial.io``) on a loopback port."""

    vendor: ClassVar[str] = "Cordial"
    default_settings: ClassVar[dict[str, Any]] = {
        **VendorServer.default_settings,
        "s3_endpoint_url": None,
        "s3_iam_role": False,
        "server_delivery": False,
        "azure_blob_connection_string": None,
        "rate_limit_per_minute": 120,
        "account_contacts": 100,
        "job_reads": None,
        "api_key": API_KEY,
        "account_timezone": "UTC",
    }

    def __init__(self, cache_dir: Path) -> None:
        #: the account's API key this host accepts (another host, e.g. another region's, knows another)
        self.api_key: str = API_KEY
        self.s3_endpoint_url: str | None = None
        #: the account has an IAM role for S3 delivery, so requests may leave the keys out
        self.s3_iam_role: bool = False
        #: SFTP and FTP deliveries are uploaded to the server the request names (a test server on
        #: loopback) with its user name and password, as Cordial does; else taken as delivered
        self.server_delivery: bool = False
        #: AZUREBLOB deliveries are written with this connection string (e.g. Azurite's), standing
        #: in for the access the account granted Cordial; else taken as delivered
        self.azure_blob_connection_string: str | None = None
        self.rate_limit_per_minute: int = 120
        #: how many contacts a contact export without ``audience-key`` holds
        self.account_contacts: int = 100
        #: when set, jobs created from now on move on with each ``GET /v2/jobs/{id}`` of them instead
        #: of with time: Scheduled at the first read, Processing (or Throttled) until read number
        #: ``job_reads``, which finds them Done (or Failed). Deterministic, for tests that count looks.
        self.job_reads: int | None = None
        #: the time zone in which the jobs list reads a day given to its ``times[...]`` filters
        self.account_timezone: str = "UTC"
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

    def file_name(self, job_id: str) -> str:
        with self._state_lock:
            return self._jobs[job_id].file_name

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
        """Write the file where the request named, as Cordial does, when the sandbox has somewhere
        to write it: an S3 endpoint (e.g. moto), SFTP and FTP test servers, an Azure Blob
        connection string (Azurite); other destinations are taken as delivered."""
        dest = job.destination
        upload: Callable[[], None] | None = None
        if dest.get("type") in ("SFTP", "FTP") and self.server_delivery:
            upload = partial(upload_to_server, dest, job.file_name, self._file(job))
        elif dest.get("type") == "AZUREBLOB" and self.azure_blob_connection_string:
            upload = partial(
                upload_to_blob, self.azure_blob_connection_string, dest, job.file_name, self._file(job)
            )
        if upload is not None:
            try:
                upload()
                job.delivered = True
            except Exception as exc:
                job.delivery_error = f"STORAGE_CONNECTION_ERROR: {type(exc).__name__}"
            return
        if dest.get("type") != "S3" or not self.s3_endpoint_url:
            job.delivered = True
            return
        import boto3

        # C-ATE: omit the path's trailing slash "to avoid duplicate slashes being added by
        # default": Cordial writes `<path>/<file name>`, the path exactly as it was sent.
        key = f"{dest['path']}/{job.file_name}"
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
        with self._state_lock:
            audiences = dict(self._audiences)
        return export_file(job, audiences, self.account_contacts)

    def _job_record(self, job: ExportJob) -> dict[str, Any]:
        status = self._status(job)
        elapsed = time.monotonic() - job.created_mono
        times: dict[str, str] = {}
        if status != "Scheduled":
            # TimesJ.start: "Time when job starts execution", so a Scheduled job has none.
            times["start"] = iso(job.created_wall + dt.timedelta(seconds=job.seconds))
        if status in ("Done", "Failed"):
            times["end"] = iso(job.created_wall + dt.timedelta(seconds=min(elapsed, 2 * job.seconds)))
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
            audiences = dict(self._audiences)
        return contact_count(job, audiences, self.account_contacts)

    def _validation_state(self) -> tuple[set[str], dict[str, Audience]]:
        """The account's saved SFTP keys and audiences, as the validation sees them."""
        with self._state_lock:
            return set(self._saved_keys), dict(self._audiences)

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
        return await read_body(request)

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
            self._jobs[job.job_id] = job
            empty = self._empty_answers > 0
            if empty:
                self._empty_answers -= 1
        if empty:
            return Response(status_code=200)
        # C-V2: {"jobId": string} (ContactExportsResponse; the trends 200 has no schema, README §2.3).
        return JSONResponse({"jobId": job.job_id})

    def build_app(self) -> FastAPI:
        app = FastAPI(title="Cordial sandbox", docs_url=None, redoc_url=None, openapi_url=None)
        # Innermost: every answer, a refusal by the spec too, carries the rate-limit headers.
        app.add_middleware(SpecGate, judge=spec_judge(self._authorized))

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
            saved_keys, audiences = self._validation_state()
            dest_error = destination_error(
                body.get("destination"), saved_keys=saved_keys, s3_iam_role=self.s3_iam_role
            )
            if dest_error is not None:
                return cordial_error(400, "GENERIC_ERROR_KEY", dest_error)
            refused = config_error(body, audiences)
            if refused is not None:
                return cordial_error(406, "GENERIC_ERROR_KEY", refused)
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
            saved_keys, audiences = self._validation_state()
            error = destination_error(
                body.get("destination"), saved_keys=saved_keys, s3_iam_role=self.s3_iam_role
            ) or contacts_error(body, audiences)
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
                    moment = parse_filter_day(raw, self.account_timezone)
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
                records = [r for r in records if time_matches(r["times"].get(which), op, moment)]
            # Vendor is silent on the order (README §2.4): sandbox choice: newest first.
            records.reverse()
            first = (max(page, 1) - 1) * max(per_page, 1)
            found = records[first : first + max(per_page, 1)]
            if not found:
                # C-V2: GET /v2/jobs answers 404 RecordNotFound; vendor is silent on whether a page
                # past the last is one: sandbox choice, every empty page is.
                return cordial_error(404, "RECORD_NOT_FOUND", "record not found")
            return JSONResponse(found)

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
