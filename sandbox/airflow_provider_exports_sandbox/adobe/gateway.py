"""The Adobe I/O gateway every Platform service sits behind, and the state the services share.

:class:`AdobeGateway` holds the sandbox's settings (restored by ``reset()``), its datasets, jobs,
batches and files, the gateway's header checks and the error bodies Adobe documents (or, where it
documents none, the ``SANDBOX CHOICE`` made here). The services (:mod:`.ims`, :mod:`.catalog`,
:mod:`.export_jobs`, :mod:`.data_access`) each take it and answer their own paths.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any, ClassVar

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from airflow_provider_exports_sandbox.adobe.records import (
    CLIENT_ID,
    CLIENT_SECRET,
    DEFAULT_DATASET_ID,
    IMS_ORG_ID,
    PROFILE_UNION_SCHEMA,
    SANDBOX_NAME,
    Batch,
    DataSetFile,
    DeleteStyle,
    Job,
    hex_id,
    wall_clock_ms,
)
from airflow_provider_exports_sandbox.server import VendorServer
from airflow_provider_exports_sandbox.synthetic_parquet import DEFAULT_ROW_GROUP_ROWS


async def json_body(request: Request) -> Any:
    """The request's JSON body, or None when it is not JSON."""
    try:
        return json.loads(await request.body() or b"null")
    except ValueError:
        return None


def gateway_error(status: int, code: str, message: str) -> Response:
    """The Adobe I/O gateway's error body (A-TRB "Request header errors")."""
    return JSONResponse({"error_code": code, "message": message}, status_code=status)


def problem(status: int, title: str, detail: str) -> Response:
    """SANDBOX CHOICE: Catalog and Data Access document error statuses but no bodies; this
    problem-details shape is the one of the gateway's documented content-type error."""
    return JSONResponse(
        {
            "type": f"https://ns.adobe.com/aep/errors/sandbox-{status}",
            "status": status,
            "title": title,
            "detail": detail,
        },
        status_code=status,
    )


class AdobeGateway(VendorServer):
    """The gateway in front of Adobe's services: settings, shared state, header checks, error bodies.

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
        self._datasets: dict[str, dict[str, Any]] = {}
        self._jobs: dict[int, Job] = {}
        self._batches: dict[str, Batch] = {}
        self._files: dict[str, tuple[Batch, DataSetFile]] = {}
        self._next_job_id = 24115
        self.reset_state()

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
            self.add_dataset(
                DEFAULT_DATASET_ID,
                {
                    "name": "Sandbox profile export dataset",
                    "schemaRef": {
                        "id": PROFILE_UNION_SCHEMA,
                        "contentType": "application/vnd.adobe.xed+json;version=1",
                    },
                },
            )

    def rate_limited_response(self, retry_after: str) -> Response:
        # Adobe I/O gateway 429 body (documented for the CJA APIs; AEP docs: honour Retry-After).
        return JSONResponse(
            {"error_code": "429050", "message": "Too many requests"},
            status_code=429,
            headers={"Retry-After": str(retry_after)},
        )

    def server_error_response(self, status: int) -> Response:
        # SANDBOX CHOICE: Adobe documents 500/503 statuses ("Service unavailable") but no body;
        # this uses the problem-details shape of the gateway's documented 400 content-type error.
        title = "Service unavailable" if status == 503 else "Internal server error"
        return problem(status, title, "The sandbox simulated a server error; retry later.")

    def unauthorized_response(self) -> Response:
        return gateway_error(401, "401013", "Oauth token is not valid")

    def check_gateway(self, request: Request, *, has_body: bool = False) -> Response | None:
        """The Adobe I/O gateway's header checks (A-TRB "Request header errors")."""
        headers = request.headers
        # SANDBOX CHOICE: the order of the checks is not documented; missing token first.
        if not headers.get("authorization"):
            return gateway_error(403, "403010", "Oauth token is missing.")
        api_key = headers.get("x-api-key")
        if not api_key:
            return gateway_error(403, "403000", "Api Key is required")
        if api_key != self.client_id:
            return gateway_error(403, "403003", "Api Key is invalid")
        if not self.tokens.is_valid(self.bearer_token(request)):
            return self.unauthorized_response()
        org = headers.get("x-gw-ims-org-id")
        if not org:
            return gateway_error(400, "400003", "Missing header")
        if org != self.ims_org_id:
            # A-TRB: the credential is not entitled to the organization in x-gw-ims-org-id.
            return gateway_error(403, "403025", "Profile is not valid")
        sandbox = headers.get("x-sandbox-name")
        if not sandbox:
            # SANDBOX CHOICE: Adobe documents no body for a missing x-sandbox-name; the gateway's
            # "Missing header" body (documented for x-gw-ims-org-id) is reused.
            return gateway_error(400, "400003", "Missing header")
        if sandbox != self.sandbox_name:
            # SANDBOX CHOICE: undocumented; a sandbox the organization does not have is refused.
            return problem(
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

    def add_dataset(self, dataset_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """Keep a Catalog dataset record for ``body`` (call with the state lock)."""
        now = wall_clock_ms()
        record = {
            "name": body.get("name", dataset_id),
            "imsOrg": self.ims_org_id,
            "version": "1.0.0",
            "created": now,
            "updated": now,
            "createdClient": self.client_id,
            "createdUser": f"{self.client_id}@AdobeID",
            "updatedUser": f"{self.client_id}@AdobeID",
            "viewId": hex_id(),
            "files": f"@/dataSetFiles?dataSetId={dataset_id}",
            "tags": body.get("tags") or {},
        }
        for key in ("description", "schemaRef", "fileDescription"):
            if key in body:
                record[key] = body[key]
        self._datasets[dataset_id] = record
        return record
