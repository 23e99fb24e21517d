"""Sitecore CDP sandbox: OAuth token endpoint, Audience export REST API (v2) and presigned files.

Built from vendor-apis README §1 (S-AE, S-OUT, S-DATA and the public clients of §1.4a). The API
only reads exports that are defined and scheduled in the CDP UI, so tests seed them with
:meth:`SitecoreCDPServer.add_export` and :meth:`SitecoreCDPServer.add_job`.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import math
import os
import re
import threading
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

# Runtime import: FastAPI resolves the route annotations when the app is built.
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from airflow_provider_exports_sandbox import synthetic
from airflow_provider_exports_sandbox.server import VendorServer
from airflow_provider_exports_sandbox.sitecore_cdp_jobs import (
    ExportDefinition,
    ExportJob,
    OutputFile,
)

if TYPE_CHECKING:
    from fastapi import FastAPI

API_KEY = "sandbox-sitecore-key"
API_SECRET = "sandbox-sitecore-secret"
AUDIENCE = "https://api.sitecorecloud.io"
SCOPE = "cdp.audience_exports:r"
CLIENT_KEY = "sandboxclientkey0000000000000000"

#: The endpoint map (README §1.3 and §1.4a), in one place so a correction is one line.
PATHS = {
    "token": "/oauth/token",
    "latest_export": "/v2/audienceExports/definitions/{audienceExportRef}/latestExport",
    "reports": "/v2/audienceExports/definitions/{audienceExportRef}/reports",
    "execution_export": "/v2/audienceExports/executions/{executionRef}/export",
    # Vendor is silent on the presigned URL path (vendor-apis README §1.4a: host `sitecore-cdp-...`,
    # S3-style): sandbox choice: an S3-like key under this prefix on the sandbox's own host.
    "file": "/sitecore-cdp-exports/{clientKey}/{friendlyId}/{executionRef}/{name}",
}

#: Sandbox control (no vendor counterpart): publish a finished job now.
PUBLISH_JOB_PATH = "/_sandbox/jobs"

FINAL_STATES = ("SUCCESS", "FAILED", "ALERT")
DEFINITION_TYPES = ("FULL_SYNC", "DELTA")
#: README §1.5 (S-OUT): more than 500,000 records are split into several files.
VENDOR_ROWS_PER_FILE = 500_000
_FRIENDLY_ID = re.compile(r"^[a-z0-9_]+$")
_NAMESPACE = uuid.UUID("6f1c8f0e-4d5b-4c39-9a57-3d2f5f0b7c11")


def rfc3339_ms(moment: dt.datetime) -> str:
    """RFC 3339 UTC with milliseconds, as in the recorded listing (``2024-11-05T12:08:00.145Z``)."""
    return (
        moment.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.")
        + f"{moment.microsecond // 1000:03d}Z"
    )


def sitecore_error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Response:
    # Vendor is silent on error bodies (vendor-apis README §1.4/§1.4a: only "a 401 type exists"):
    # sandbox choice: {"status": <int>, "code": <UPPER_SNAKE>, "message": <text>} for every API error.
    return JSONResponse(
        {"status": status, "code": code, "message": message}, status_code=status, headers=headers
    )


class SitecoreCDPServer(VendorServer):
    """Sitecore CDP's auth host and regional API host in one loopback server."""

    vendor: ClassVar[str] = "Sitecore CDP"

    def __init__(self, cache_dir: Path) -> None:
        super().__init__(cache_dir)
        # Vendor is silent on presigned-URL lifetime (vendor-apis README §1.4a, only `expireAt`):
        # sandbox choice: 1 hour, tunable per test through `url_ttl_seconds`.
        self.url_ttl_seconds = 3600.0
        self._definitions: dict[str, ExportDefinition] = {}
        self._jobs: dict[str, ExportJob] = {}
        self._state_lock = threading.RLock()

    # -- seeding --------------------------------------------------------------------------------
    def add_export(
        self,
        friendly_id: str,
        *,
        definition_type: str = "FULL_SYNC",
        rows_per_file: int = VENDOR_ROWS_PER_FILE,
        delta_prefixes: tuple[str, str] = ("added-", "removed-"),
    ) -> str:
        """Define an audience export (as if created in the CDP UI); returns its ``definitionRef``.

        ``delta_prefixes``: what the names of a delta job's added and removed files start with."""
        if not _FRIENDLY_ID.match(friendly_id):
            raise ValueError("friendlyId: only lowercase alphanumeric characters and underscores are allowed")
        if definition_type not in DEFINITION_TYPES:
            raise ValueError(f"definition_type must be one of {DEFINITION_TYPES}")
        with self._state_lock:
            if friendly_id in self._definitions:
                raise ValueError(f"audience export {friendly_id!r} already exists")
            definition = ExportDefinition(
                friendly_id,
                str(uuid.uuid5(_NAMESPACE, friendly_id)),
                definition_type,
                rows_per_file,
                delta_prefixes,
            )
            self._definitions[friendly_id] = definition
        return definition.definition_ref

    def add_job(
        self,
        friendly_id: str,
        *,
        status: str = "SUCCESS",
        rows: int = 1000,
        end_time: dt.datetime | None = None,
        pending_seconds: float = 0.0,
        pending_looks: int | None = None,
        error_logs: Sequence[str] = (),
        target_bytes: int | None = None,
        target_files: int = 1,
        execution_type: str = "SCHEDULED",
    ) -> str:
        """Add an export job; it is PENDING_* for ``pending_seconds`` then takes ``status``.

        ``pending_looks`` instead keeps it PENDING for that many reads of the reports list (the
        next read sees it final): for tests whose timing a busy machine must not change.

        ``target_bytes`` makes the output about that many bytes (for benchmarks) in ``target_files``
        files of equal size, built now so that the job's counters are known. Returns the job's
        ``executionRef``.
        """
        if status not in FINAL_STATES:
            raise ValueError(f"status must be one of {FINAL_STATES}")
        if target_files < 1:
            raise ValueError("target_files must be at least 1")
        if end_time is not None and end_time.tzinfo is None:
            raise ValueError("end_time must be timezone-aware")
        with self._state_lock:
            definition = self._definitions.get(friendly_id)
            if definition is None:
                raise KeyError(f"no audience export {friendly_id!r}; call add_export first")
            # Deterministic refs: the same seeding after a reset reuses the cached output files.
            seq = len(definition.jobs)
            many = f"/{target_files}" if target_files > 1 else ""
            execution_ref = str(uuid.uuid5(_NAMESPACE, f"{friendly_id}/{seq}/{rows}/{target_bytes}{many}"))
            job = ExportJob(
                execution_ref=execution_ref,
                definition=definition,
                final_status=status,
                rows=rows,
                created_mono=time.monotonic(),
                created_wall=dt.datetime.now(dt.timezone.utc),
                pending_seconds=pending_seconds,
                pending_looks=pending_looks,
                end_time=end_time,
                error_logs=tuple(error_logs),
                target_bytes=target_bytes,
                target_files=target_files,
                execution_type=execution_type,
                segment_execution_type="ON_DEMAND" if execution_type == "INSTANT_RUN" else "LIVE",
            )
            definition.jobs.append(job)
            self._jobs[execution_ref] = job
        if target_bytes is not None and status == "SUCCESS":
            for out in job.files():
                self._materialize(job, out)
        return execution_ref

    def publish_job(self, friendly_id: str, *, rows: int = 1000) -> str:
        """A successful job of a defined export that finished now (``POST /_sandbox/jobs``, the
        command ``publish-job``): what a manual DAG run, which waits for a job newer than its start,
        then finds. Returns its ``executionRef``."""
        with self._state_lock:
            known = sorted(self._definitions)
        if friendly_id not in known:
            raise ValueError(f"export: {friendly_id!r} is not defined here; defined: {', '.join(known) or 'none'}")
        if rows < 1:
            raise ValueError(f"rows: {rows} is not a positive number of rows")
        return self.add_job(friendly_id, rows=rows, execution_type="INSTANT_RUN")

    def expected_files(self, execution_ref: str) -> list[tuple[str, int, str, int]]:
        """``(name, size, sha256, rows)`` of each output file of a job, in listing order."""
        job = self._jobs[execution_ref]
        result = []
        for out in job.files():
            meta = synthetic.read_meta(self._materialize(job, out))
            result.append((out.name, int(meta["size"]), str(meta["sha256"]), int(meta["rows"])))
        return result

    def guest_refs(self, execution_ref: str, prefix: str = "") -> set[str]:
        """The ``ref`` of every guest in a job's output files whose names start with ``prefix``."""
        job = self._jobs[execution_ref]
        return {
            json.loads(line)["ref"]
            for out in job.files()
            if out.name.startswith(prefix)
            for line in gzip.decompress(self._materialize(job, out).read_bytes()).splitlines()
        }

    def file_path(self, execution_ref: str, name: str) -> Path:
        """The bytes a job's output file ``name`` is served from (built into the cache if needed):
        the source of truth a check reads the rows from."""
        job = self._jobs[execution_ref]
        return self._materialize(job, next(f for f in job.files() if f.name == name))

    def rewrite_file(self, execution_ref: str, name: str) -> None:
        """Give an output file a new version, same bytes (new ``ETag`` and ``Last-Modified``), as if
        the vendor wrote it again while a client was reading it."""
        job = self._jobs[execution_ref]
        out = next(f for f in job.files() if f.name == name)
        path = self._materialize(job, out)
        stamp = max(time.time_ns(), path.stat().st_mtime_ns + 1_000_000_000)
        os.utime(path, ns=(stamp, stamp))

    def reset_state(self) -> None:
        with self._state_lock:
            self._definitions.clear()
            self._jobs.clear()

    def connection(self) -> dict[str, Any]:
        return {
            "conn_type": "sitecore_cdp",
            "login": API_KEY,
            "password": API_SECRET,
            "extra": {"api_host": self.url, "auth_host": self.url},
        }

    # -- vendor bodies --------------------------------------------------------------------------
    def rate_limited_response(self, retry_after: str) -> Response:
        # Vendor is silent on rate limits (vendor-apis README §1.4a): sandbox choice: 429 with
        # Retry-After and the sandbox error body.
        return sitecore_error(429, "TOO_MANY_REQUESTS", "Too many requests", {"Retry-After": retry_after})

    def server_error_response(self, status: int) -> Response:
        return sitecore_error(
            status,
            "SERVICE_UNAVAILABLE" if status == 503 else "INTERNAL_SERVER_ERROR",
            "The server could not process the request",
        )

    def unauthorized_response(self) -> Response:
        return sitecore_error(
            401,
            "UNAUTHORIZED",
            "Full authentication is required to access this resource",
            {"WWW-Authenticate": "Bearer"},
        )

    def fault_response(self, kind: str, path: str, **params: Any) -> Response:
        if path.startswith("/sitecore-cdp-exports/"):
            # File downloads come from S3 in production, so they fail the S3 way.
            headers = {"Retry-After": str(params["retry_after"])} if kind == "rate_limit" else {}
            status = 429 if kind == "rate_limit" else int(params["status"])
            code = "SlowDown" if kind == "rate_limit" or status == 503 else "InternalError"
            resp = synthetic.s3_error(
                status,
                code,
                "Please reduce your request rate."
                if code == "SlowDown"
                else "We encountered an internal error. Please try again.",
            )
            resp.headers.update(headers)
            return resp
        return super().fault_response(kind, path, **params)

    # -- state helpers --------------------------------------------------------------------------
    def _definition(self, ref: str) -> ExportDefinition | None:
        with self._state_lock:
            found = self._definitions.get(ref)
            if found is None:
                found = next((d for d in self._definitions.values() if d.definition_ref == ref), None)
            return found

    def _materialize(self, job: ExportJob, out: OutputFile) -> Path:
        if out.target_bytes is not None:
            key = f"sitecore_cdp/{job.execution_ref}/sized-{out.target_bytes}/{out.name}"
            return self.materialize(
                key,
                lambda f: synthetic.write_sized_guests_jsonl_gz(
                    f, seed=out.seed, target_bytes=out.target_bytes or 0
                ),
            )
        key = f"sitecore_cdp/{job.execution_ref}/{out.seed}/{out.start}-{out.rows}/{out.name}"
        # Vendor is silent on the JSON layout (vendor-apis README §1.5: JSON Lines vs. one array):
        # sandbox choice: gzipped JSON Lines, one guest per line.
        return self.materialize(
            key, lambda f: synthetic.write_guests_jsonl_gz(f, seed=out.seed, start=out.start, rows=out.rows)
        )

    def _report(self, job: ExportJob) -> dict[str, Any]:
        status = job.status()
        finished = status in FINAL_STATES
        rows = job.rows
        if job.target_bytes is not None and job.final_status == "SUCCESS":
            rows = sum(int(synthetic.read_meta(self._materialize(job, f))["rows"]) for f in job.files())
        ok = finished and status != "FAILED"
        removed = rows // 5 if job.definition.definition_type == "DELTA" else 0
        return {
            "clientKey": CLIENT_KEY,
            "executionRef": job.execution_ref,
            "definitionRef": job.definition.definition_ref,
            "friendlyId": job.definition.friendly_id,
            "executionType": job.execution_type,
            "status": status,
            "definitionType": job.definition.definition_type,
            "segmentExecutionType": job.segment_execution_type,
            # Vendor is silent on counter semantics (vendor-apis README §1.4a lists names only):
            # sandbox choice: one in eleven scanned guests does not match the segment.
            "total": rows + rows // 10 if finished else 0,
            "filterMatchedGuests": rows if finished else 0,
            "filterNotMatchedGuests": rows // 10 if finished else 0,
            "filterFailures": 0,
            "successes": rows if ok else 0,
            "failures": rows if status == "FAILED" else 0,
            "successAdd": rows - removed if ok else 0,
            "successRemove": removed if ok else 0,
            "programmableErrors": [],
            "filterErrors": [],
            "errorLogs": list(job.error_logs) if finished else [],
            # Vendor is silent on these formats (README §1.4a: "strings (timestamps)"): sandbox
            # choice: RFC 3339 UTC ms; datasetDate = the midnight snapshot (S-DATA) before the run;
            # endTime null while the job is pending.
            "datasetDate": rfc3339_ms(job.started_at.replace(hour=0, minute=0, second=0, microsecond=0)),
            "startTime": rfc3339_ms(job.started_at),
            "endTime": rfc3339_ms(job.finished_at) if finished else None,
        }

    def _listing(self, job: ExportJob) -> dict[str, Any]:
        signed_at = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
        ttl = round(self.url_ttl_seconds)
        exports = []
        for out in job.files():
            path = self._materialize(job, out)
            size = path.stat().st_size
            url_path = PATHS["file"].format(
                clientKey=CLIENT_KEY,
                friendlyId=job.definition.friendly_id,
                executionRef=job.execution_ref,
                name=out.name,
            )
            # Vendor is silent on KB rounding (README §1.4a example: 52 + 2 = 54): sandbox
            # choice: each file rounded up, the total is the sum.
            exports.append(
                {
                    "url": synthetic.sign_url(self, url_path, ttl, now=signed_at),
                    "sizeKB": math.ceil(size / 1024),
                }
            )
        return {
            "executionRef": job.execution_ref,
            "definitionRef": job.definition.definition_ref,
            "friendlyId": job.definition.friendly_id,
            "clientKey": CLIENT_KEY,
            "expireAt": rfc3339_ms(signed_at + dt.timedelta(seconds=ttl)),
            "numberOfFiles": len(exports),
            "totalSizeKB": sum(e["sizeKB"] for e in exports),
            "exports": exports,
        }

    # -- app ------------------------------------------------------------------------------------
    def build_app(self) -> FastAPI:
        from fastapi import FastAPI

        app = FastAPI(title="Sitecore CDP sandbox", docs_url=None, redoc_url=None, openapi_url=None)

        def authorized(request: Request) -> bool:
            return self.tokens.is_valid(self.bearer_token(request))

        @app.post(PATHS["token"])
        async def token(request: Request) -> Response:
            content_type = request.headers.get("content-type", "")
            form: dict[str, Any]
            if content_type.startswith("application/json"):
                try:
                    form = dict(await request.json())
                except ValueError:
                    form = {}
            else:
                form = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
            # Vendor is silent on token error bodies (vendor-apis README §1.3): sandbox choice:
            # OAuth 2.0 (RFC 6749 §5.2) `error` / `error_description`.
            if form.get("grant_type") != "client_credentials":
                return JSONResponse(
                    {"error": "unsupported_grant_type", "error_description": "Unsupported grant type"},
                    status_code=400,
                )
            if form.get("client_id") != API_KEY or form.get("client_secret") != API_SECRET:
                return JSONResponse(
                    {"error": "access_denied", "error_description": "Unauthorized"}, status_code=401
                )
            if form.get("audience") != AUDIENCE:
                return JSONResponse(
                    {
                        "error": "access_denied",
                        "error_description": f"Service not found: {form.get('audience')}",
                    },
                    status_code=403,
                )
            ttl = self.token_ttl_seconds
            return JSONResponse(
                {
                    "access_token": self.tokens.issue(ttl),
                    "scope": SCOPE,
                    "expires_in": math.ceil(ttl),
                    "token_type": "Bearer",
                }
            )

        @app.post(PUBLISH_JOB_PATH, include_in_schema=False)
        async def publish_job(request: Request) -> Response:
            """Sandbox control (no vendor counterpart): a job of an export that finished now, as
            after "Run now" in Sitecore's UI; body ``{"export": <friendlyId>, "rows": <n>}``."""
            try:
                body = await request.json() if await request.body() else {}
                if not isinstance(body, dict):
                    raise TypeError("the body is a JSON object")
                ref = self.publish_job(str(body.get("export", "")), rows=int(body.get("rows", 1000)))
            except (ValueError, TypeError) as exc:
                return JSONResponse({"error": str(exc)}, status_code=400)
            with self._state_lock:
                job = self._jobs[ref]
            return JSONResponse(
                {"executionRef": ref, "export": job.definition.friendly_id, "endTime": rfc3339_ms(job.finished_at)},
                status_code=201,
            )

        @app.get(PATHS["latest_export"])
        def latest_export(request: Request, audienceExportRef: str) -> Response:
            if not authorized(request):
                return self.unauthorized_response()
            definition = self._definition(audienceExportRef)
            if definition is None:
                return sitecore_error(404, "NOT_FOUND", f"Audience export {audienceExportRef} not found")
            with self._state_lock:
                done = [j for j in definition.jobs if j.status() == "SUCCESS"]
            if not done:
                # Vendor is silent on "no finished job yet" (README §1.4a): sandbox choice: 404.
                return sitecore_error(404, "NOT_FOUND", f"No finished export job for {audienceExportRef}")
            return JSONResponse(self._listing(max(done, key=lambda j: j.finished_at)))

        @app.get(PATHS["reports"])
        def reports(request: Request, audienceExportRef: str) -> Response:
            if not authorized(request):
                return self.unauthorized_response()
            definition = self._definition(audienceExportRef)
            if definition is None:
                return sitecore_error(404, "NOT_FOUND", f"Audience export {audienceExportRef} not found")
            with self._state_lock:
                jobs = list(definition.jobs)
                for job in jobs:
                    job.look()
            # Vendor is silent on paging, order and whether unfinished jobs appear (README
            # §1.4a): sandbox choice: one unpaged array, newest start first, PENDING_* included.
            jobs.sort(key=lambda j: j.started_at, reverse=True)
            return JSONResponse([self._report(j) for j in jobs])

        @app.get(PATHS["execution_export"])
        def execution_export(request: Request, executionRef: str) -> Response:
            if not authorized(request):
                return self.unauthorized_response()
            with self._state_lock:
                job = self._jobs.get(executionRef)
            if job is None:
                return sitecore_error(404, "NOT_FOUND", f"Export job {executionRef} not found")
            if job.status() != "SUCCESS":
                # Vendor is silent on output of unfinished/failed jobs (README §1.4a): sandbox
                # choice: 404, only SUCCESS jobs have output files.
                return sitecore_error(
                    404, "NOT_FOUND", f"Export job {executionRef} has no output ({job.status()})"
                )
            return JSONResponse(self._listing(job))

        @app.api_route(PATHS["file"], methods=["GET", "HEAD"])
        def download(
            request: Request, clientKey: str, friendlyId: str, executionRef: str, name: str
        ) -> Response:
            denied = synthetic.verify_signed(request, self)
            if denied is not None:
                return denied
            with self._state_lock:
                job = self._jobs.get(executionRef)
            out = None
            if job is not None and job.definition.friendly_id == friendlyId and clientKey == CLIENT_KEY:
                out = next((f for f in job.files() if f.name == name), None)
            if job is None or out is None:
                return synthetic.s3_error(
                    404, "NoSuchKey", "The specified key does not exist.", Key=request.url.path
                )
            return synthetic.ranged_file_response(request, self._materialize(job, out), "application/gzip")

        return app
