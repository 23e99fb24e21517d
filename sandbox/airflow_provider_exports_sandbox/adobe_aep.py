"""Adobe Experience Platform sandbox: IMS tokens, Catalog, profile export jobs and Data Access.

A local stand-in for the four Adobe services an AEP profile export touches, built from Adobe's
documents (``vendor-apis/README.md`` section 3 and the OpenAPI files beside it), not from our
client:

- IMS ``POST /ims/token/v3`` (OAuth Server-to-Server, client credentials + scope);
- the Platform gateway header checks (``Authorization``, ``x-api-key``, ``x-gw-ims-org-id``,
  ``x-sandbox-name``) with the error bodies of Adobe's troubleshooting guide;
- Catalog ``/data/foundation/catalog``: create/look up datasets, look up batches;
- Segmentation/Profile ``/data/core/ups/export/jobs``: create, list, get, cancel/delete jobs whose
  status moves ``NEW -> PROCESSING -> SUCCEEDED`` (or ``FAILED``) with wall-clock time;
- Data Access ``/data/foundation/export``: batch file listing, file "directories" and the Parquet
  part files themselves, with ``HEAD`` and ``Range``.

The Parquet files are real (snappy, deterministic synthetic XDM profiles, see
:mod:`.synthetic_parquet`), built once into the cache directory and streamed from disk.

Where Adobe's documents say nothing, the choice made here is marked ``SANDBOX CHOICE`` in a
comment; where they contradict each other, the variant used is named and, for DELETE, switchable.
"""

from __future__ import annotations

import json
import math
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal
from urllib.parse import parse_qsl, quote, urlencode

from airflow_provider_exports_sandbox.server import VendorServer
from airflow_provider_exports_sandbox.synthetic_parquet import (
    DEFAULT_ROW_GROUP_ROWS,
    ProfileFileSpec,
    project_columns,
    write_profiles,
)

if TYPE_CHECKING:
    from fastapi import FastAPI
    from starlette.requests import Request
    from starlette.responses import Response

DeleteStyle = Literal["200-body", "204-empty", "204-body"]

CLIENT_ID = "sandbox-aep-client"
CLIENT_SECRET = "sandbox-aep-secret"
IMS_ORG_ID = "5A4B3C2D1E0F5A4B3C2D1E0F@AdobeOrg"
SANDBOX_NAME = "prod"
#: The scopes on Adobe's AEP Postman environment template (A-PM); a token request may ask for
#: any non-empty subset of them.
AEP_SCOPES: tuple[str, ...] = (
    "openid",
    "session",
    "AdobeID",
    "read_organizations",
    "additional_info.projectedProductContext",
)
PROFILE_UNION_SCHEMA = "https://ns.adobe.com/xdm/context/profile__union"
#: A dataset that exists from the start (and after every reset), for DAGs that hard-code one.
DEFAULT_DATASET_ID = "5e8a0b3c9d1f2a0001a7c0de"

EXPORT_BASE = "/data/core/ups"
CATALOG_BASE = "/data/foundation/catalog"
DATA_ACCESS_BASE = "/data/foundation/export"

_CANCEL_BODY = {"status": True, "message": "Export job has been marked for cancelling"}
# The documented failure example of an export job (Segmentation and Profile guides).
_FAILURE_ERRORS = [
    {
        "code": "0090000009",
        "msg": "Error writing profiles to output path 'adl://sandbox.azuredatalakestore.net/snapshot/{job}'",
        "callStack": "com.adobe.aep.unifiedprofile.common.logging.Logger",
    },
    {"code": "unknown", "msg": "Job aborted.", "callStack": "org.apache.spark.SparkException: Job aborted."},
]
_LIST_STATUSES = ("NEW", "PROCESSING", "SUCCEEDED", "FAILED")


def _now_ms() -> int:
    return int(time.time() * 1000)


def _hex_id(n: int = 24) -> str:
    return uuid.uuid4().hex[:n]


@dataclass
class _DataSetFile:
    """One Data Access ``dataSetFileId``: a "directory" of Parquet part files."""

    file_id: str
    parts: list[tuple[str, ProfileFileSpec]]

    @property
    def records(self) -> int:
        return sum(spec.rows for _, spec in self.parts)


@dataclass
class _Batch:
    batch_id: str
    job_id: int
    dataset_id: str
    segments: tuple[str, ...]
    segment_ns: str
    created_ms: int
    files: list[_DataSetFile] = field(default_factory=list)
    #: GETs of this batch answered since its job succeeded (see ``batch_pending_looks``)
    looks_after_success: int = 0

    @property
    def records(self) -> int:
        return sum(f.records for f in self.files)


@dataclass
class _Job:
    job_id: int
    created_ms: int
    step_ms: float
    request: dict[str, Any]
    dataset_id: str
    segment_per_batch: bool
    batches: list[_Batch]
    will_fail: bool
    profile_instance_id: str
    request_id: str
    export_job_uuid: str = field(default_factory=lambda: str(uuid.uuid4()))
    push_job_uuid: str = field(default_factory=lambda: str(uuid.uuid4()))
    cancelled_ms: int | None = None

    def phase(self, now_ms: int) -> tuple[str, int]:
        """(status, time of the last status change) at ``now_ms``; computed, never stored."""
        processing_at = self.created_ms + int(self.step_ms)
        done_at = self.created_ms + int(2 * self.step_ms)
        if self.cancelled_ms is not None and self.cancelled_ms < done_at:
            return "FAILED", self.cancelled_ms
        if now_ms < processing_at:
            return "NEW", self.created_ms
        if now_ms < done_at:
            return "PROCESSING", processing_at
        return ("FAILED" if self.will_fail else "SUCCEEDED"), done_at


class AdobeAEPServer(VendorServer):
    """Adobe IMS + Catalog + export jobs + Data Access on one loopback port.

    Settings (restored by :meth:`reset`): ``job_seconds`` (per non-terminal job status, taken
    when a job is created),
    ``delete_style`` (``"200-body"`` as in the Segmentation spec, ``"204-body"`` as in the
    Segmentation guide -- which on the wire is a 204 with a JSON Content-Type and no body --,
    ``"204-empty"`` as in the Profile guide), ``default_rows`` (profiles per
    batch), ``segment_rows`` (per-segment override), ``rows_per_file`` (if set, the number of
    dataset files follows from it; else ``files_per_batch`` files), ``parts_per_file`` (Parquet
    parts per dataset file), ``row_group_rows``, ``failing_segments`` (a job filtering on one of
    them ends ``FAILED``), ``file_media_type``, ``list_default_limit``, ``directory_depth`` (how
    many levels of directory entries a dataset file's listing has before its Parquet parts: 0
    lists the parts, 1 lists one further ``dataSetFileId`` that lists them), ``dataset_id_key``
    (``datasetId`` as in the spec, or ``dataSetId`` as in some guide examples, in a job's
    ``destination``), ``batch_pending_looks`` and ``batch_pending_status`` (a batch whose job
    has succeeded still answers that status to that many Catalog GETs: counted, not timed, so a
    test does not race the clock).
    """

    vendor: ClassVar[str] = "Adobe Experience Platform"
    default_settings: ClassVar[dict[str, Any]] = {
        **VendorServer.default_settings,
        # IMS answers expires_in=86399 (A-IMS).
        "token_ttl_seconds": 86399.0,
        "delete_style": "200-body",
        "default_rows": 1000,
        "rows_per_file": None,
        "files_per_batch": 2,
        "parts_per_file": 1,
        "row_group_rows": DEFAULT_ROW_GROUP_ROWS,
        # The Data Access spec says application/octet-stream; the Data Access tutorial shows
        # "Content-type: application/parquet" for a Parquet file. Switchable.
        "file_media_type": "application/octet-stream",
        # SANDBOX CHOICE: the default page size of GET /export/jobs is not documented.
        "list_default_limit": 50,
        "directory_depth": 0,
        "dataset_id_key": "datasetId",
        # Vendor is silent on how long a batch takes to reach "success" after its export job
        # SUCCEEDED: by default at once; a test can make it lag for a number of looks.
        "batch_pending_looks": 0,
        "batch_pending_status": "processing",
    }

    client_id: str = CLIENT_ID
    client_secret: str = CLIENT_SECRET
    ims_org_id: str = IMS_ORG_ID
    sandbox_name: str = SANDBOX_NAME

    def __init__(self, cache_dir: Path) -> None:
        self.delete_style: DeleteStyle = "200-body"
        self.default_rows: int = 1000
        self.rows_per_file: int | None = None
        self.files_per_batch: int = 2
        self.parts_per_file: int = 1
        self.row_group_rows: int = DEFAULT_ROW_GROUP_ROWS
        self.file_media_type: str = "application/octet-stream"
        self.list_default_limit: int = 50
        self.directory_depth: int = 0
        self.dataset_id_key: str = "datasetId"
        self.batch_pending_looks: int = 0
        self.batch_pending_status: str = "processing"
        self.failing_segments: set[str] = set()
        self.segment_rows: dict[str, int] = {}
        super().__init__(cache_dir)
        self._state_lock = threading.RLock()
        self._build_locks: dict[str, threading.Lock] = {}
        self._paths: dict[ProfileFileSpec, Path] = {}
        self._datasets: dict[str, dict[str, Any]] = {}
        self._jobs: dict[int, _Job] = {}
        self._batches: dict[str, _Batch] = {}
        self._files: dict[str, tuple[_Batch, _DataSetFile]] = {}
        self._next_job_id = 24115
        self.reset_state()

    # -- public helpers -------------------------------------------------------------------------
    def connection(self) -> dict[str, Any]:
        return {
            "conn_type": "adobe_aep",
            "login": self.client_id,
            "password": self.client_secret,
            "extra": {
                "ims_org_id": self.ims_org_id,
                "sandbox_name": self.sandbox_name,
                "ims_host": self.url,
                "platform_host": self.url,
            },
        }

    def reset_state(self) -> None:
        with self._state_lock:
            self.failing_segments = set()
            self.segment_rows = {}
            self._datasets.clear()
            self._jobs.clear()
            self._batches.clear()
            self._files.clear()
            self._add_dataset(
                DEFAULT_DATASET_ID,
                {
                    "name": "Sandbox profile export dataset",
                    "schemaRef": {
                        "id": PROFILE_UNION_SCHEMA,
                        "contentType": "application/vnd.adobe.xed+json;version=1",
                    },
                },
            )

    def job_status(self, job_id: int) -> str:
        """The status a GET of this job would report now."""
        with self._state_lock:
            return self._jobs[job_id].phase(_now_ms())[0]

    def job_ids(self) -> list[int]:
        """Every export job's id, oldest first (a finished job that was deleted is gone)."""
        with self._state_lock:
            return sorted(self._jobs)

    def job_cancelled(self, job_id: int) -> bool:
        """Whether a ``DELETE`` cancelled the job while it was running."""
        with self._state_lock:
            return self._jobs[job_id].cancelled_ms is not None

    def batch_ids(self, job_id: int) -> list[str]:
        """Every batch id of a job (also of a job that failed and reports ``batchId: ""``)."""
        with self._state_lock:
            return [b.batch_id for b in self._jobs[job_id].batches]

    def expected_files(self, batch_id: str) -> list[tuple[str, str, int, str, int]]:
        """``(dataSetFileId, name, size, sha256, rows)`` for every Parquet part of a batch.

        Builds the files into the cache if needed (a large batch can take a while).
        """
        with self._state_lock:
            batch = self._batches[batch_id]
        out = []
        for dsf in batch.files:
            for name, spec in dsf.parts:
                path = self._part_path(spec)
                out.append((dsf.file_id, name, path.stat().st_size, self._sha(path), spec.rows))
        return out

    # -- vendor bodies --------------------------------------------------------------------------
    def rate_limited_response(self, retry_after: str) -> Response:
        from starlette.responses import JSONResponse

        # Adobe I/O gateway 429 body (documented for the CJA APIs; AEP docs: honour Retry-After).
        return JSONResponse(
            {"error_code": "429050", "message": "Too many requests"},
            status_code=429,
            headers={"Retry-After": str(retry_after)},
        )

    def server_error_response(self, status: int) -> Response:
        from starlette.responses import JSONResponse

        # SANDBOX CHOICE: Adobe documents 500/503 statuses ("Service unavailable") but no body;
        # this uses the problem-details shape of the gateway's documented 400 content-type error.
        title = "Service unavailable" if status == 503 else "Internal server error"
        return JSONResponse(
            {
                "type": "https://ns.adobe.com/aep/errors/sandbox-" + str(status),
                "status": status,
                "title": title,
                "detail": "The sandbox simulated a server error; retry later.",
            },
            status_code=status,
        )

    def unauthorized_response(self) -> Response:
        return self._gateway_error(401, "401013", "Oauth token is not valid")

    # -- app ------------------------------------------------------------------------------------
    def build_app(self) -> FastAPI:
        from fastapi import FastAPI

        app = FastAPI(
            title="Adobe Experience Platform sandbox",
            docs_url=None,
            redoc_url=None,
            openapi_url=None,
            redirect_slashes=False,
        )
        route = app.add_route
        route("/ims/token/v3", self._ims_token, methods=["POST"])
        route(CATALOG_BASE + "/dataSets", self._create_dataset, methods=["POST"])
        route(CATALOG_BASE + "/dataSets", self._list_datasets, methods=["GET"])
        route(CATALOG_BASE + "/dataSets/{dataset_id}", self._get_dataset, methods=["GET"])
        route(CATALOG_BASE + "/batches/{batch_id}", self._get_batch, methods=["GET"])
        for path in ("/export/jobs", "/export/jobs/"):
            route(EXPORT_BASE + path, self._create_job, methods=["POST"])
            route(EXPORT_BASE + path, self._list_jobs, methods=["GET"])
        route(EXPORT_BASE + "/export/jobs/{job_id}", self._get_job, methods=["GET"])
        route(EXPORT_BASE + "/export/jobs/{job_id}", self._delete_job, methods=["DELETE"])
        route(DATA_ACCESS_BASE + "/batches/{batch_id}/files", self._batch_files, methods=["GET"])
        route(DATA_ACCESS_BASE + "/files/{file_id}", self._file, methods=["GET", "HEAD"])
        return app

    # -- IMS ------------------------------------------------------------------------------------
    async def _ims_token(self, request: Request) -> Response:
        from starlette.responses import JSONResponse

        # A-IMS: parameters may come in the query or the (recommended) form body.
        params = dict(parse_qsl(request.url.query, keep_blank_values=True))
        if request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            body = (await request.body()).decode("utf-8", "replace")
            params.update(parse_qsl(body, keep_blank_values=True))

        # SANDBOX CHOICE: the IMS reference lists the four mandatory parameters but not its error
        # bodies; these follow OAuth 2.0 (RFC 6749 section 5.2): 400 for a malformed request,
        # 401 invalid_client for a client that fails authentication.
        def error(status: int, code: str, description: str) -> Response:
            return JSONResponse({"error": code, "error_description": description}, status_code=status)

        for name in ("grant_type", "client_id", "client_secret", "scope"):
            if not params.get(name):
                return error(400, "invalid_request", f"missing required parameter: {name}")
        if params["grant_type"] != "client_credentials":
            return error(400, "unsupported_grant_type", "grant_type must be client_credentials")
        if params["client_id"] != self.client_id or params["client_secret"] != self.client_secret:
            return error(401, "invalid_client", "invalid client_id or client_secret")
        requested = [s.strip() for s in params["scope"].split(",") if s.strip()]
        unknown = [s for s in requested if s not in AEP_SCOPES]
        if not requested or unknown:
            return error(400, "invalid_scope", f"invalid scope: {','.join(unknown) or params['scope']}")
        ttl = float(self.token_ttl_seconds)
        token = self.tokens.issue(ttl)
        return JSONResponse({"access_token": token, "token_type": "bearer", "expires_in": int(ttl)})

    # -- Platform gateway -----------------------------------------------------------------------
    def _gateway_error(self, status: int, code: str, message: str) -> Response:
        from starlette.responses import JSONResponse

        return JSONResponse({"error_code": code, "message": message}, status_code=status)

    def _check_gateway(self, request: Request, *, has_body: bool = False) -> Response | None:
        """The Adobe I/O gateway's header checks (A-TRB "Request header errors")."""
        from starlette.responses import JSONResponse

        headers = request.headers
        # SANDBOX CHOICE: the order of the checks is not documented; missing token first.
        if not headers.get("authorization"):
            return self._gateway_error(403, "403010", "Oauth token is missing.")
        api_key = headers.get("x-api-key")
        if not api_key:
            return self._gateway_error(403, "403000", "Api Key is required")
        if api_key != self.client_id:
            return self._gateway_error(403, "403003", "Api Key is invalid")
        if not self.tokens.is_valid(self.bearer_token(request)):
            return self.unauthorized_response()
        org = headers.get("x-gw-ims-org-id")
        if not org:
            return self._gateway_error(400, "400003", "Missing header")
        if org != self.ims_org_id:
            # A-TRB: the credential is not entitled to the organization in x-gw-ims-org-id.
            return self._gateway_error(403, "403025", "Profile is not valid")
        sandbox = headers.get("x-sandbox-name")
        if not sandbox:
            # SANDBOX CHOICE: Adobe documents no body for a missing x-sandbox-name; the gateway's
            # "Missing header" body (documented for x-gw-ims-org-id) is reused.
            return self._gateway_error(400, "400003", "Missing header")
        if sandbox != self.sandbox_name:
            # SANDBOX CHOICE: undocumented; a sandbox the organization does not have is refused.
            return self._problem(
                403, "Forbidden", f"Sandbox '{sandbox}' is not available to this organization"
            )
        if has_body and headers.get("content-type", "").split(";")[0].strip().lower() != "application/json":
            # A-TRB "Valid content-type not specified".
            return JSONResponse(
                {
                    "type": "/placeholder/type/uri",
                    "status": 400,
                    "title": "BadRequestError",
                    "detail": "A valid content-type must be specified",
                },
                status_code=400,
            )
        return None

    def _problem(self, status: int, title: str, detail: str) -> Response:
        """SANDBOX CHOICE: Catalog and Data Access document error statuses but no bodies; this
        problem-details shape is the one of the gateway's documented content-type error."""
        from starlette.responses import JSONResponse

        return JSONResponse(
            {
                "type": f"https://ns.adobe.com/aep/errors/sandbox-{status}",
                "status": status,
                "title": title,
                "detail": detail,
            },
            status_code=status,
        )

    def _ups_error(self, status: int, message: str) -> Response:
        """SANDBOX CHOICE: /export/jobs documents 403/404/503 without bodies; this is the error
        shape the same (Segmentation) spec shows for its audience endpoints."""
        from starlette.responses import JSONResponse

        return JSONResponse(
            {
                "requestId": uuid.uuid4().hex,
                "errors": {str(status): [{"code": status, "message": message}]},
                "type": f"https://ns.adobe.com/aep/errors/UPAPI-sandbox-{status}",
                "title": message,
                "status": status,
            },
            status_code=status,
        )

    @staticmethod
    async def _json_body(request: Request) -> Any:
        try:
            return json.loads(await request.body() or b"null")
        except ValueError:
            return None

    # -- Catalog --------------------------------------------------------------------------------
    def _add_dataset(self, dataset_id: str, body: dict[str, Any]) -> dict[str, Any]:
        now = _now_ms()
        record = {
            "name": body.get("name", dataset_id),
            "imsOrg": self.ims_org_id,
            "version": "1.0.0",
            "created": now,
            "updated": now,
            "createdClient": self.client_id,
            "createdUser": f"{self.client_id}@AdobeID",
            "updatedUser": f"{self.client_id}@AdobeID",
            "viewId": _hex_id(),
            "files": f"@/dataSetFiles?dataSetId={dataset_id}",
            "tags": body.get("tags") or {},
        }
        for key in ("description", "schemaRef", "fileDescription"):
            if key in body:
                record[key] = body[key]
        self._datasets[dataset_id] = record
        return record

    async def _create_dataset(self, request: Request) -> Response:
        from starlette.responses import JSONResponse

        if (denied := self._check_gateway(request, has_body=True)) is not None:
            return denied
        body = await self._json_body(request)
        if not isinstance(body, dict):
            return self._problem(400, "BadRequestError", "The request body must be a JSON object.")
        schema_ref = body.get("schemaRef")
        if schema_ref is not None and not (
            isinstance(schema_ref, dict) and isinstance(schema_ref.get("id"), str)
        ):
            return self._problem(400, "BadRequestError", "schemaRef.id must be a string.")
        dataset_id = _hex_id()
        with self._state_lock:
            self._add_dataset(dataset_id, body)
        # A-CAT: 201, Location header, body ["@/dataSets/<id>"].
        return JSONResponse(
            [f"@/dataSets/{dataset_id}"],
            status_code=201,
            headers={"Location": f"{self.url}{CATALOG_BASE}/dataSets/{dataset_id}"},
        )

    def _get_dataset(self, request: Request) -> Response:
        from starlette.responses import JSONResponse

        dataset_id: str = request.path_params["dataset_id"]
        if (denied := self._check_gateway(request)) is not None:
            return denied
        with self._state_lock:
            record = self._datasets.get(dataset_id)
            if record is None:
                return self._problem(404, "NotFoundError", f"Dataset {dataset_id} was not found.")
            body = dict(record)
            last = max(
                (b for b in self._batches.values() if b.dataset_id == dataset_id),
                key=lambda b: b.created_ms,
                default=None,
            )
            if last is not None:
                body["lastBatchId"] = last.batch_id
                body["lastBatchStatus"] = self._batch_view(last, _now_ms())["status"]
        # A-CAT: lookups answer an object keyed by the id.
        return JSONResponse({dataset_id: body})

    def _list_datasets(self, request: Request) -> Response:
        """``GET /dataSets``: filters ``name`` and ``property`` (``field==value``, ``field!=value``),
        ``orderBy`` (``asc:created``/``desc:created``...), ``start``, ``limit`` (at most 100),
        ``properties``; the answer is an object keyed by dataset id (A-CAT)."""
        from starlette.responses import JSONResponse

        if (denied := self._check_gateway(request)) is not None:
            return denied
        q = request.query_params
        try:
            start = int(q.get("start", "0"))
            # Vendor is silent on the default page size of GET /dataSets; 100 is its maximum (A-CAT).
            limit = min(int(q.get("limit", "50")), 100)
            if start < 0 or limit < 1:
                raise ValueError
        except ValueError:
            return self._problem(400, "BadRequestError", "start must be >= 0 and limit a positive integer.")
        tests: list[tuple[str, str, str]] = []
        if q.get("name") is not None:
            tests.append(("name", "==", q["name"]))
        for prop in q.getlist("property"):
            # Vendor is silent (here) on the property grammar beyond its examples: == and != only.
            for op in ("!=", "=="):
                key, sep, value = prop.partition(op)
                if sep and key:
                    tests.append((key, op, value))
                    break
            else:
                return self._problem(400, "BadRequestError", f"Unsupported property filter {prop!r}.")
        order = q.get("orderBy", "")
        with self._state_lock:
            items = [(k, dict(v)) for k, v in self._datasets.items()]
        for key, op, value in tests:
            items = [
                (k, v) for k, v in items if (str(v.get(key)) == value) == (op == "==")
            ]
        if order:
            direction, _, fields = order.partition(":")
            if direction not in ("asc", "desc") or not fields:
                return self._problem(400, "BadRequestError", f"Unsupported orderBy {order!r}.")
            keys = fields.split(",")
            items.sort(key=lambda kv: tuple(str(kv[1].get(f, "")).zfill(20) for f in keys), reverse=direction == "desc")
        page = items[start : start + limit]
        wanted = [p for p in q.get("properties", "").split(",") if p]
        return JSONResponse({k: ({p: v[p] for p in wanted if p in v} if wanted else v) for k, v in page})

    def _batch_view(self, batch: _Batch, now_ms: int) -> dict[str, Any]:
        job = self._jobs.get(batch.job_id)
        status, changed_ms = job.phase(now_ms) if job is not None else ("SUCCEEDED", batch.created_ms)
        view: dict[str, Any] = {
            "imsOrg": self.ims_org_id,
            "created": batch.created_ms,
            "createdClient": "acp_core_unifiedProfile_feeds",
            "createdUser": "acp_core_unifiedProfile_feeds@AdobeID",
            "updatedUser": "acp_core_unifiedProfile_feeds@AdobeID",
            "updated": changed_ms,
            "version": "1.0.0",
            "relatedObjects": [{"type": "dataSet", "id": batch.dataset_id}],
            "errors": [],
        }
        if status in ("NEW", "PROCESSING"):
            view.update(status="processing", metrics={})
        elif status == "SUCCEEDED":
            view.update(
                status="success",
                started=batch.created_ms,
                completed=changed_ms,
                recordCount=batch.records,
                metrics={
                    "recordsRead": batch.records,
                    "recordsWritten": batch.records,
                    "recordsFailed": 0,
                    "startTime": batch.created_ms,
                    "endTime": changed_ms,
                },
            )
        else:
            # SANDBOX CHOICE: the batch of a failed or cancelled export reports "failure" (an
            # enum value of the Catalog spec) with the job's first error.
            view.update(
                status="failure",
                started=batch.created_ms,
                completed=changed_ms,
                metrics={"recordsWritten": 0, "recordsFailed": 0},
                errors=[{"code": "0090000009", "description": "The export job writing this batch failed."}],
            )
        return view

    def _get_batch(self, request: Request) -> Response:
        from starlette.responses import JSONResponse

        batch_id: str = request.path_params["batch_id"]
        if (denied := self._check_gateway(request)) is not None:
            return denied
        with self._state_lock:
            batch = self._batches.get(batch_id)
            if batch is None:
                return self._problem(404, "NotFoundError", f"Batch {batch_id} was not found.")
            view = self._batch_view(batch, _now_ms())
            if view["status"] == "success":
                batch.looks_after_success += 1
                if batch.looks_after_success <= self.batch_pending_looks:
                    view.update(status=self.batch_pending_status, metrics={})
                    for key in ("completed", "recordCount"):
                        view.pop(key, None)
            return JSONResponse({batch_id: view})

    # -- export jobs ----------------------------------------------------------------------------
    def _plan_batch(
        self,
        job_id: int,
        dataset_id: str,
        segments: tuple[str, ...],
        statuses: tuple[str, ...],
        segment_ns: str,
        columns: tuple[str, ...],
        created_ms: int,
    ) -> _Batch:
        batch_uuid = uuid.uuid4()
        batch = _Batch(batch_uuid.hex, job_id, dataset_id, segments, segment_ns, created_ms)
        if segments:
            rows = sum(self.segment_rows.get(s, self.default_rows) for s in segments)
        else:
            rows = self.default_rows
        if self.rows_per_file:
            n_files = max(1, math.ceil(rows / self.rows_per_file))
        else:
            n_files = max(1, int(self.files_per_batch))
        parts_per_file = max(1, int(self.parts_per_file))
        n_parts = n_files * parts_per_file
        # Spark names every part of one write with the same job uuid: part-NNNNN-<uuid>.c000...
        write_uuid = uuid.uuid5(batch_uuid, "write")
        seed = "+".join(segments) or "all-profiles"
        first_row = 0
        for i in range(n_files):
            parts = []
            for j in range(parts_per_file):
                k = i * parts_per_file + j
                part_rows = rows // n_parts + (1 if k < rows % n_parts else 0)
                spec = ProfileFileSpec(
                    rows=part_rows,
                    first_row=first_row,
                    seed=seed,
                    segments=segments,
                    segment_ns=segment_ns,
                    statuses=statuses,
                    columns=columns,
                    row_group_rows=int(self.row_group_rows),
                )
                parts.append((f"part-{k:05d}-{write_uuid}.c000.snappy.parquet", spec))
                first_row += part_rows
            batch.files.append(_DataSetFile(f"{batch_uuid}-{i + 1}", parts))
        return batch

    async def _create_job(self, request: Request) -> Response:
        from starlette.responses import JSONResponse

        if (denied := self._check_gateway(request, has_body=True)) is not None:
            return denied
        body = await self._json_body(request)
        if not isinstance(body, dict):
            return self._ups_error(400, "The request body must be a JSON object (CreateExportJobRequest).")
        destination = body.get("destination")
        if not isinstance(destination, dict):
            destination = {}
        dataset_id = destination.get("datasetId")
        if not isinstance(dataset_id, str) or not dataset_id:
            return self._ups_error(400, "destination.datasetId is required.")
        schema = body.get("schema")
        if not (isinstance(schema, dict) and isinstance(schema.get("name"), str) and schema["name"]):
            return self._ups_error(400, "schema.name is required.")
        filt = body.get("filter") or {}
        if not isinstance(filt, dict):
            return self._ups_error(400, "filter must be an object.")
        segments_in = filt.get("segments") or []
        if not isinstance(segments_in, list) or not all(
            isinstance(s, dict) and isinstance(s.get("segmentId"), str) and s["segmentId"]
            for s in segments_in
        ):
            return self._ups_error(400, "filter.segments[].segmentId is required when segments are given.")
        fields = body.get("fields")
        if fields is not None and not isinstance(fields, str):
            return self._ups_error(400, "fields must be a comma-separated string.")

        with self._state_lock:
            if dataset_id not in self._datasets:
                # SANDBOX CHOICE: undocumented; an unknown target dataset is refused at creation.
                return self._ups_error(400, f"The dataset {dataset_id} does not exist.")
            job = self._new_job(body, request.headers.get("x-profile-instance-id") or "ups")
            view = self._job_view(job, job.created_ms)
        # A-SEG: 200 with the job and an X-Location header (the HREF of the job).
        return JSONResponse(view, headers={"X-Location": f"{self.url}{EXPORT_BASE}/export/jobs/{job.job_id}"})

    def _new_job(self, body: dict[str, Any], profile_instance_id: str) -> _Job:
        """Plan and keep a job for a checked ``CreateExportJobRequest`` body (call with the state lock)."""
        dataset_id = str(body["destination"].get("datasetId"))
        segment_per_batch = bool(body["destination"].get("segmentPerBatch", False))
        fields = body.get("fields")
        segments_in = (body.get("filter") or {}).get("segments") or []
        job_id = self._next_job_id
        self._next_job_id += 1
        now = _now_ms()
        columns = project_columns(fields)
        seg_ids = [s["segmentId"] for s in segments_in]
        ns_of = {s["segmentId"]: s.get("segmentNs", "ups") for s in segments_in}

        def statuses_of(ids: list[str]) -> tuple[str, ...]:
            out: list[str] = []
            for s in segments_in:
                if s["segmentId"] in ids:
                    st = s.get("status") or ["realized", "existing"]
                    out.extend(x for x in ([st] if isinstance(st, str) else st) if x not in out)
            return tuple(out) or ("realized", "existing")

        if segment_per_batch and seg_ids:
            batches = [
                self._plan_batch(job_id, dataset_id, (s,), statuses_of([s]), ns_of[s], columns, now)
                for s in seg_ids
            ]
        else:
            ns = ns_of[seg_ids[0]] if seg_ids else "ups"
            batches = [
                self._plan_batch(
                    job_id, dataset_id, tuple(seg_ids), statuses_of(seg_ids), ns, columns, now
                )
            ]
        job = _Job(
            job_id=job_id,
            created_ms=now,
            step_ms=float(self.job_seconds) * 1000.0,
            request=body,
            dataset_id=dataset_id,
            segment_per_batch=segment_per_batch,
            batches=batches,
            will_fail=any(s in self.failing_segments for s in seg_ids),
            profile_instance_id=profile_instance_id,
            request_id=uuid.uuid4().hex,
        )
        self._jobs[job_id] = job
        for batch in batches:
            self._batches[batch.batch_id] = batch
            for dsf in batch.files:
                self._files[dsf.file_id] = (batch, dsf)
        return job

    def add_job(
        self,
        *,
        segments: tuple[str, ...] | list[str] = (),
        segment_per_batch: bool = False,
        dataset_id: str = DEFAULT_DATASET_ID,
        fields: str | None = None,
    ) -> int:
        """Seed an export job as if ``POST /export/jobs`` had created it; returns its id."""
        body: dict[str, Any] = {
            "destination": {"datasetId": dataset_id, "segmentPerBatch": segment_per_batch},
            "schema": {"name": "_xdm.context.profile"},
        }
        if segments:
            body["filter"] = {"segments": [{"segmentId": s} for s in segments]}
        if fields:
            body["fields"] = fields
        with self._state_lock:
            if dataset_id not in self._datasets:
                raise ValueError(f"no dataset {dataset_id} in the sandbox")
            return self._new_job(body, "ups").job_id

    def _job_view(self, job: _Job, now_ms: int) -> dict[str, Any]:
        status, changed_ms = job.phase(now_ms)
        req = job.request
        failed = status == "FAILED"
        destination: dict[str, Any] = {
            self.dataset_id_key: job.dataset_id,
            "segmentPerBatch": job.segment_per_batch,
        }
        if job.segment_per_batch and job.batches and job.batches[0].segments:
            # Segmentation guide: with segmentPerBatch=true, destination.batches is an array (the
            # spec's schema says object: spec defect).
            destination["batches"] = [
                {
                    "segmentId": b.segments[0],
                    "segmentNs": b.segment_ns,
                    "status": list(self._batch_statuses(req, b.segments[0])),
                    "batchId": "" if failed else b.batch_id,
                }
                for b in job.batches
            ]
        else:
            # Profile guide: a failed job reports batchId "".
            destination["batchId"] = "" if failed else job.batches[0].batch_id
        view: dict[str, Any] = {
            "id": job.job_id,
            "jobType": "BATCH",
            "destination": destination,
            "schema": {"name": req["schema"]["name"]},
            "imsOrgId": self.ims_org_id,
            "status": status,
            # SANDBOX CHOICE: without mergePolicy in the request, the default merge policy of the
            # documentation examples is reported.
            "mergePolicy": req.get("mergePolicy") or {"id": "timestampOrdered-none-mp", "version": 1},
            "profileInstanceId": job.profile_instance_id,
            "creationTime": job.created_ms,
            "updateTime": changed_ms,
            "requestId": job.request_id,
        }
        for key in ("fields", "filter", "additionalFields", "evaluationInfo"):
            if key in req:
                view[key] = req[key]
        metrics: dict[str, Any] = {"totalTime": {"startTimeInMs": job.created_ms}}
        gateway: dict[str, str] = {}
        processing_at = job.created_ms + int(job.step_ms)
        if status != "NEW" and not (
            failed and job.cancelled_ms is not None and job.cancelled_ms < processing_at
        ):
            gateway["exportJob"] = job.export_job_uuid
        if status in ("SUCCEEDED", "FAILED"):
            metrics["totalTime"] = {
                "startTimeInMs": job.created_ms,
                "endTimeInMs": changed_ms,
                "totalTimeInMs": changed_ms - job.created_ms,
            }
            if changed_ms > processing_at:
                metrics["profileExportTime"] = {
                    "startTimeInMs": processing_at,
                    "endTimeInMs": changed_ms,
                    "totalTimeInMs": changed_ms - processing_at,
                }
        if status == "SUCCEEDED":
            gateway["pushJob"] = job.push_job_uuid
            total = sum(b.records for b in job.batches)
            metrics["aCPDatasetWriteTime"] = {
                "startTimeInMs": changed_ms,
                "endTimeInMs": changed_ms,
                "totalTimeInMs": 0,
            }
            metrics["totalExportedProfileCounter"] = total
            # Every synthetic profile carries an ECID and an Email identity.
            metrics["exportedProfileByNamespaceCounter"] = {"ECID": total, "Email": total}
        if failed:
            if job.cancelled_ms is not None:
                # SANDBOX CHOICE: Adobe only says the job is "marked for cancelling"; here it ends
                # FAILED at once with this error.
                view["errors"] = [
                    {
                        "code": "unknown",
                        "msg": "Export job was cancelled by request.",
                        "callStack": "com.adobe.aep.unifiedprofile.common.logging.Logger",
                    }
                ]
            else:
                view["errors"] = [{**e, "msg": e["msg"].format(job=job.job_id)} for e in _FAILURE_ERRORS]
        view["metrics"] = metrics
        view["computeGatewayJobId"] = gateway
        return view

    @staticmethod
    def _batch_statuses(req: dict[str, Any], segment_id: str) -> tuple[str, ...]:
        for s in (req.get("filter") or {}).get("segments") or []:
            if s.get("segmentId") == segment_id:
                st = s.get("status") or ["realized", "existing"]
                return tuple([st] if isinstance(st, str) else st)
        return ("realized", "existing")

    def _lookup_job(self, job_id: str) -> _Job | None:
        try:
            return self._jobs.get(int(job_id))
        except ValueError:
            return None

    def _get_job(self, request: Request) -> Response:
        from starlette.responses import JSONResponse

        job_id: str = request.path_params["job_id"]
        if (denied := self._check_gateway(request)) is not None:
            return denied
        with self._state_lock:
            job = self._lookup_job(job_id)
            if job is None:
                return self._ups_error(404, f"The export job {job_id} is not found.")
            return JSONResponse(self._job_view(job, _now_ms()))

    def _list_jobs(self, request: Request) -> Response:
        from starlette.responses import JSONResponse

        if (denied := self._check_gateway(request)) is not None:
            return denied
        q = request.query_params
        try:
            limit = int(q.get("limit", self.list_default_limit))
            if limit < 1:
                raise ValueError
        except ValueError:
            return self._ups_error(400, "limit must be a positive integer.")
        status_filter = q.get("status")
        # The spec lists NEW, SUCCEEDED, FAILED; PROCESSING (a job status) is accepted as well.
        if status_filter is not None and status_filter not in _LIST_STATUSES:
            return self._ups_error(400, f"status must be one of {', '.join(_LIST_STATUSES)}.")
        after: tuple[int, int] | None = None
        if q.get("offset"):
            created, sep, jid = q["offset"].partition("_")
            if not (sep and created.isdigit() and jid.isdigit()):
                return self._ups_error(400, "offset must be <creationTime>_<id>.")
            after = (int(created), int(jid))
        now = _now_ms()
        with self._state_lock:
            jobs = sorted(self._jobs.values(), key=lambda j: (j.created_ms, j.job_id), reverse=True)
            if status_filter:
                jobs = [j for j in jobs if j.phase(now)[0] == status_filter]
            if after is not None:
                jobs = [j for j in jobs if (j.created_ms, j.job_id) < after]
            page, rest = jobs[:limit], jobs[limit:]
            records = [self._job_view(j, now) for j in page]
        page_offset = f"{page[-1].created_ms}_{page[-1].job_id}" if page else ""
        next_link = ""
        if rest:
            query = {"limit": str(limit), "offset": page_offset}
            if status_filter:
                query["status"] = status_filter
            # As in the guides' example: relative to the service base, "/export/jobs/?limit=...".
            next_link = "/export/jobs/?" + urlencode(query)
        return JSONResponse(
            {
                "records": records,
                "page": {
                    "sortField": "createdTime",
                    "sort": "desc",
                    "pageOffset": page_offset,
                    "pageSize": len(records),
                },
                "link": {"next": next_link},
            }
        )

    def _delete_job(self, request: Request) -> Response:
        from starlette.responses import JSONResponse, Response

        job_id: str = request.path_params["job_id"]
        if (denied := self._check_gateway(request)) is not None:
            return denied
        with self._state_lock:
            job = self._lookup_job(job_id)
            if job is None:
                return self._ups_error(404, f"The export job {job_id} is not found.")
            now = _now_ms()
            status, _ = job.phase(now)
            if status in ("NEW", "PROCESSING"):
                job.cancelled_ms = now
            else:
                # SANDBOX CHOICE: "Cancel or delete": a finished job is deleted (GET is then 404),
                # its batches and files stay readable as datasets keep their batches.
                self._jobs.pop(job.job_id, None)
        if self.delete_style == "204-empty":
            return Response(status_code=204)
        if self.delete_style == "204-body":
            # The Segmentation guide shows 204 *with* the JSON body, but a 204 cannot carry one
            # (RFC 9110 section 15.3.5) and HTTP servers drop it (uvicorn refuses to send it), so
            # on the wire this differs from "204-empty" only by its JSON Content-Type.
            return Response(status_code=204, media_type="application/json")
        return JSONResponse(_CANCEL_BODY, status_code=200)

    # -- Data Access ----------------------------------------------------------------------------
    def _paging(self, request: Request) -> tuple[int, int] | Response:
        q = request.query_params
        try:
            start = int(q.get("start", "0"))
            limit = int(q.get("limit", "100"))
            if start < 0 or limit < 1:
                raise ValueError
        except ValueError:
            return self._problem(400, "BadRequestError", "start must be >= 0 and limit >= 1.")
        # A-DA: 100 is the default and the maximum number of entries per request.
        return start, min(limit, 100)

    def _batch_files(self, request: Request) -> Response:
        from starlette.responses import JSONResponse

        batch_id: str = request.path_params["batch_id"]
        if (denied := self._check_gateway(request)) is not None:
            return denied
        paging = self._paging(request)
        if not isinstance(paging, tuple):
            return paging
        start, limit = paging
        with self._state_lock:
            batch = self._batches.get(batch_id)
            if batch is None:
                return self._problem(404, "NotFoundError", f"Batch {batch_id} was not found.")
            job = self._jobs.get(batch.job_id)
            ready = job is None or job.phase(_now_ms())[0] == "SUCCEEDED"
            # SANDBOX CHOICE: until the export has written the batch (and after a failure) the
            # batch lists no files.
            files = list(batch.files) if ready else []
            changed = job.phase(_now_ms())[1] if job is not None else batch.created_ms
        base = f"{self.url}{DATA_ACCESS_BASE}"
        data = []
        for dsf in files[start : start + limit]:
            size = sum(self._part_path(spec).stat().st_size for _, spec in dsf.parts)
            data.append(
                {
                    "dataSetFileId": dsf.file_id,
                    "dataSetViewId": self._datasets.get(batch.dataset_id, {}).get("viewId", ""),
                    "version": "1.0.0",
                    "created": str(changed),
                    "updated": str(changed),
                    "records": str(dsf.records),
                    "size": str(size),
                    "isValid": True,
                    "_links": {"self": {"href": f"{base}/files/{dsf.file_id}"}},
                }
            )
        page_href = f"{base}/batches/{batch_id}/files?" + urlencode({"start": start, "limit": limit})
        links: dict[str, Any] = {"page": {"href": page_href, "templated": True}}
        if start + limit < len(files):
            links["next"] = {
                "href": f"{base}/batches/{batch_id}/files?"
                + urlencode({"start": start + limit, "limit": limit})
            }
        # A-DAT paging example: _page.count is the total number of entries (6 with limit=1).
        return JSONResponse({"data": data, "_page": {"limit": limit, "count": len(files)}, "_links": links})

    def _file(self, request: Request) -> Response:
        from starlette.responses import JSONResponse, Response

        file_id: str = request.path_params["file_id"]
        if (denied := self._check_gateway(request)) is not None:
            return denied
        # "<id>~d<k>": level k of the directory entries in front of a dataset file's parts.
        top_id, sep, level_text = file_id.partition("~d")
        level = int(level_text) if sep and level_text.isdigit() else 0
        with self._state_lock:
            found = self._files.get(top_id) if level <= self.directory_depth and (level or not sep) else None
            job = self._jobs.get(found[0].job_id) if found else None
            ready = found is not None and (job is None or job.phase(_now_ms())[0] == "SUCCEEDED")
            depth = self.directory_depth
        if found is None or not ready:
            return self._problem(404, "NotFoundError", f"Dataset file {file_id} was not found.")
        _, dsf = found
        path_param = request.query_params.get("path")
        if path_param is None and request.method != "HEAD" and level < depth:
            # A-DA: a directory lists "further dataSetFileId entries". Vendor is silent on their
            # shape; here: the id and a self link, like a batch listing's entries.
            child = f"{top_id}~d{level + 1}"
            return JSONResponse(
                {
                    "data": [
                        {
                            "dataSetFileId": child,
                            "_links": {"self": {"href": f"{self.url}{DATA_ACCESS_BASE}/files/{child}"}},
                        }
                    ],
                    "_page": {"limit": 100, "count": 1},
                }
            )
        if path_param is not None and level < depth:
            return self._problem(404, "NotFoundError", f"File {path_param} was not found in {file_id}.")
        if path_param is None:
            if request.method == "HEAD":
                # A-DA: path is required on HEAD.
                return Response(status_code=400)
            paging = self._paging(request)
            if not isinstance(paging, tuple):
                return paging
            start, limit = paging
            base = f"{self.url}{DATA_ACCESS_BASE}/files/{file_id}"
            data = [
                {
                    "name": name,
                    "length": str(self._part_path(spec).stat().st_size),
                    "_links": {"self": {"href": f"{base}?path={quote(name)}"}},
                }
                for name, spec in dsf.parts[start : start + limit]
            ]
            body: dict[str, Any] = {"data": data, "_page": {"limit": limit, "count": len(dsf.parts)}}
            if start + limit < len(dsf.parts):
                body["_links"] = {
                    "next": {"href": f"{base}?" + urlencode({"start": start + limit, "limit": limit})}
                }
            return JSONResponse(body)
        for name, spec in dsf.parts:
            if name == path_param:
                from airflow_provider_exports_sandbox.synthetic import ranged_file_response

                return ranged_file_response(request, self._part_path(spec), self.file_media_type)
        return self._problem(404, "NotFoundError", f"File {path_param} was not found in {file_id}.")

    # -- files ----------------------------------------------------------------------------------
    def _part_path(self, spec: ProfileFileSpec) -> Path:
        """The cached Parquet file for ``spec``, built on first use (once, even if raced)."""
        cached = self._paths.get(spec)
        if cached is not None:
            return cached
        key = spec.cache_key()
        with self._state_lock:
            lock = self._build_locks.setdefault(key, threading.Lock())
        with lock:
            cached = self._paths.get(spec)
            if cached is None:
                cached = self.materialize(key, lambda out: write_profiles(spec, out))
                self._paths[spec] = cached
        return cached

    @staticmethod
    def _sha(path: Path) -> str:
        from airflow_provider_exports_sandbox.synthetic import read_meta

        digest: str = read_meta(path)["sha256"]
        return digest
