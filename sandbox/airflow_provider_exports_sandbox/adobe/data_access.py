"""Data Access ``/data/foundation/export``: a batch's file listing, file directories and the Parquet
part files themselves (real snappy files, built once into the cache), with ``HEAD`` and ``Range``."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from airflow_provider_exports_sandbox.adobe.gateway import AdobeGateway, problem
from airflow_provider_exports_sandbox.adobe.records import DATA_ACCESS_BASE, wall_clock_ms
from airflow_provider_exports_sandbox.synthetic import ranged_file_response
from airflow_provider_exports_sandbox.synthetic_parquet import ProfileFileSpec, write_profiles


class DataAccess:
    """The Data Access service's routes, over the Parquet files it builds on first use."""

    def __init__(self, aep: AdobeGateway) -> None:
        self.aep = aep
        self._build_locks: dict[str, threading.Lock] = {}
        self._paths: dict[ProfileFileSpec, Path] = {}

    def router(self) -> APIRouter:
        router = APIRouter()
        router.add_route(DATA_ACCESS_BASE + "/batches/{batch_id}/files", self.batch_files, methods=["GET"])
        router.add_route(DATA_ACCESS_BASE + "/files/{file_id}", self.file, methods=["GET", "HEAD"])
        return router

    def _paging(self, request: Request) -> tuple[int, int] | Response:
        q = request.query_params
        try:
            start = int(q.get("start", "0"))
            limit = int(q.get("limit", "100"))
            if start < 0 or limit < 1:
                raise ValueError
        except ValueError:
            return problem(400, "BadRequestError", "start must be >= 0 and limit >= 1.")
        # A-DA: 100 is the default and the maximum number of entries per request.
        return start, min(limit, 100)

    def batch_files(self, request: Request) -> Response:
        batch_id: str = request.path_params["batch_id"]
        if (denied := self.aep.check_gateway(request)) is not None:
            return denied
        paging = self._paging(request)
        if not isinstance(paging, tuple):
            return paging
        start, limit = paging
        with self.aep._state_lock:
            batch = self.aep._batches.get(batch_id)
            if batch is None:
                return problem(404, "NotFoundError", f"Batch {batch_id} was not found.")
            job = self.aep._jobs.get(batch.job_id)
            ready = job is None or job.phase(wall_clock_ms())[0] == "SUCCEEDED"
            # SANDBOX CHOICE: until the export has written the batch (and after a failure) the
            # batch lists no files.
            files = list(batch.files) if ready else []
            changed = job.phase(wall_clock_ms())[1] if job is not None else batch.created_ms
        base = f"{self.aep.url}{DATA_ACCESS_BASE}"
        data = []
        for dsf in files[start : start + limit]:
            size = sum(self.part_path(spec).stat().st_size for _, spec in dsf.parts)
            data.append(
                {
                    "dataSetFileId": dsf.file_id,
                    "dataSetViewId": self.aep._datasets.get(batch.dataset_id, {}).get("viewId", ""),
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

    def file(self, request: Request) -> Response:
        file_id: str = request.path_params["file_id"]
        if (denied := self.aep.check_gateway(request)) is not None:
            return denied
        # "<id>~d<k>": level k of the directory entries in front of a dataset file's parts.
        top_id, sep, level_text = file_id.partition("~d")
        level = int(level_text) if sep and level_text.isdigit() else 0
        with self.aep._state_lock:
            found = self.aep._files.get(top_id) if level <= self.aep.directory_depth and (level or not sep) else None
            job = self.aep._jobs.get(found[0].job_id) if found else None
            ready = found is not None and (job is None or job.phase(wall_clock_ms())[0] == "SUCCEEDED")
            depth = self.aep.directory_depth
        if found is None or not ready:
            return problem(404, "NotFoundError", f"Dataset file {file_id} was not found.")
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
                            "_links": {"self": {"href": f"{self.aep.url}{DATA_ACCESS_BASE}/files/{child}"}},
                        }
                    ],
                    "_page": {"limit": 100, "count": 1},
                }
            )
        if path_param is not None and level < depth:
            return problem(404, "NotFoundError", f"File {path_param} was not found in {file_id}.")
        if path_param is None:
            # (A HEAD without `path`, which the spec requires, was refused by data-access.yaml.)
            paging = self._paging(request)
            if not isinstance(paging, tuple):
                return paging
            start, limit = paging
            base = f"{self.aep.url}{DATA_ACCESS_BASE}/files/{file_id}"
            data = [
                {
                    "name": name,
                    "length": str(self.part_path(spec).stat().st_size),
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
                return ranged_file_response(request, self.part_path(spec), self.aep.file_media_type)
        return problem(404, "NotFoundError", f"File {path_param} was not found in {file_id}.")

    def part_path(self, spec: ProfileFileSpec) -> Path:
        """The cached Parquet file for ``spec``, built on first use (once, even if raced)."""
        cached = self._paths.get(spec)
        if cached is not None:
            return cached
        key = spec.cache_key()
        with self.aep._state_lock:
            lock = self._build_locks.setdefault(key, threading.Lock())
        with lock:
            cached = self._paths.get(spec)
            if cached is None:
                cached = self.aep.materialize(key, lambda out: write_profiles(spec, out))
                self._paths[spec] = cached
        return cached
