"""Catalog ``/data/foundation/catalog``: create, look up and list datasets; look up batches."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from airflow_provider_exports_sandbox.adobe.gateway import AdobeGateway, json_body, problem
from airflow_provider_exports_sandbox.adobe.records import CATALOG_BASE, Batch, hex_id, wall_clock_ms


class Catalog:
    """The Catalog service's routes."""

    def __init__(self, aep: AdobeGateway) -> None:
        self.aep = aep

    def router(self) -> APIRouter:
        router = APIRouter()
        router.add_route(CATALOG_BASE + "/dataSets", self.create_dataset, methods=["POST"])
        router.add_route(CATALOG_BASE + "/dataSets", self.list_datasets, methods=["GET"])
        router.add_route(CATALOG_BASE + "/dataSets/{dataset_id}", self.get_dataset, methods=["GET"])
        router.add_route(CATALOG_BASE + "/batches/{batch_id}", self.get_batch, methods=["GET"])
        return router

    async def create_dataset(self, request: Request) -> Response:
        if (denied := self.aep.check_gateway(request, has_body=True)) is not None:
            return denied
        # The body's shape (dataSetRequest) was judged by catalog.yaml (.validation); without the
        # document the sandbox serves unvalidated, and keeps only a JSON object.
        body = await json_body(request)
        if not isinstance(body, dict):
            return problem(400, "BadRequestError", "The request body must be a JSON object.")
        dataset_id = hex_id()
        with self.aep._state_lock:
            self.aep.add_dataset(dataset_id, body)
        # A-CAT: 201, Location header, body ["@/dataSets/<id>"].
        return JSONResponse(
            [f"@/dataSets/{dataset_id}"],
            status_code=201,
            headers={"Location": f"{self.aep.url}{CATALOG_BASE}/dataSets/{dataset_id}"},
        )

    def get_dataset(self, request: Request) -> Response:
        dataset_id: str = request.path_params["dataset_id"]
        if (denied := self.aep.check_gateway(request)) is not None:
            return denied
        with self.aep._state_lock:
            record = self.aep._datasets.get(dataset_id)
            if record is None:
                return problem(404, "NotFoundError", f"Dataset {dataset_id} was not found.")
            body = dict(record)
            last = max(
                (b for b in self.aep._batches.values() if b.dataset_id == dataset_id),
                key=lambda b: b.created_ms,
                default=None,
            )
            if last is not None:
                body["lastBatchId"] = last.batch_id
                body["lastBatchStatus"] = self.batch_view(last, wall_clock_ms())["status"]
        # A-CAT: lookups answer an object keyed by the id.
        return JSONResponse({dataset_id: body})

    def list_datasets(self, request: Request) -> Response:
        """``GET /dataSets``: filters ``name`` and ``property`` (``field==value``, ``field!=value``),
        ``orderBy`` (``asc:created``/``desc:created``...), ``start``, ``limit`` (at most 100),
        ``properties``; the answer is an object keyed by dataset id (A-CAT)."""
        if (denied := self.aep.check_gateway(request)) is not None:
            return denied
        q = request.query_params
        try:
            start = int(q.get("start", "0"))
            # Vendor is silent on the default page size of GET /dataSets; 100 is its maximum (A-CAT).
            limit = min(int(q.get("limit", "50")), 100)
            if start < 0 or limit < 1:
                raise ValueError
        except ValueError:
            return problem(400, "BadRequestError", "start must be >= 0 and limit a positive integer.")
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
                return problem(400, "BadRequestError", f"Unsupported property filter {prop!r}.")
        order = q.get("orderBy", "")
        with self.aep._state_lock:
            items = [(k, dict(v)) for k, v in self.aep._datasets.items()]
        for key, op, value in tests:
            items = [
                (k, v) for k, v in items if (str(v.get(key)) == value) == (op == "==")
            ]
        if order:
            direction, _, fields = order.partition(":")
            if direction not in ("asc", "desc") or not fields:
                return problem(400, "BadRequestError", f"Unsupported orderBy {order!r}.")
            keys = fields.split(",")
            items.sort(key=lambda kv: tuple(str(kv[1].get(f, "")).zfill(20) for f in keys), reverse=direction == "desc")
        page = items[start : start + limit]
        wanted = [p for p in q.get("properties", "").split(",") if p]
        return JSONResponse({k: ({p: v[p] for p in wanted if p in v} if wanted else v) for k, v in page})

    def batch_view(self, batch: Batch, now_ms: int) -> dict[str, Any]:
        job = self.aep._jobs.get(batch.job_id)
        status, changed_ms = job.phase(now_ms) if job is not None else ("SUCCEEDED", batch.created_ms)
        view: dict[str, Any] = {
            "imsOrg": self.aep.ims_org_id,
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

    def get_batch(self, request: Request) -> Response:
        batch_id: str = request.path_params["batch_id"]
        if (denied := self.aep.check_gateway(request)) is not None:
            return denied
        with self.aep._state_lock:
            batch = self.aep._batches.get(batch_id)
            if batch is None:
                return problem(404, "NotFoundError", f"Batch {batch_id} was not found.")
            view = self.batch_view(batch, wall_clock_ms())
            if view["status"] == "success":
                batch.looks_after_success += 1
                if batch.looks_after_success <= self.aep.batch_pending_looks:
                    view.update(status=self.aep.batch_pending_status, metrics={})
                    for key in ("completed", "recordCount"):
                        view.pop(key, None)
            return JSONResponse({batch_id: view})
