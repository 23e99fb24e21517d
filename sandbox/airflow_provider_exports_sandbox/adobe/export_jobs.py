"""Segmentation/Profile ``/data/core/ups/export/jobs``: create, list, get and cancel or delete profile
export jobs, whose status moves ``NEW -> PROCESSING -> SUCCEEDED`` (or ``FAILED``) with wall-clock
time, each planned as batches of Parquet files when it is created."""

from __future__ import annotations

import math
import uuid
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from airflow_provider_exports_sandbox.adobe.gateway import AdobeGateway, json_body
from airflow_provider_exports_sandbox.adobe.records import (
    EXPORT_BASE,
    Batch,
    DataSetFile,
    Job,
    wall_clock_ms,
)
from airflow_provider_exports_sandbox.synthetic_parquet import ProfileFileSpec, project_columns

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


def ups_error(status: int, message: str) -> Response:
    """SANDBOX CHOICE: /export/jobs documents 403/404/503 without bodies; this is the error
    shape the same (Segmentation) spec shows for its audience endpoints."""
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


class ExportJobs:
    """The export jobs service's routes, and the planning of a job's batches."""

    def __init__(self, aep: AdobeGateway) -> None:
        self.aep = aep

    def router(self) -> APIRouter:
        router = APIRouter()
        for path in ("/export/jobs", "/export/jobs/"):
            router.add_route(EXPORT_BASE + path, self.create_job, methods=["POST"])
            router.add_route(EXPORT_BASE + path, self.list_jobs, methods=["GET"])
        router.add_route(EXPORT_BASE + "/export/jobs/{job_id}", self.get_job, methods=["GET"])
        router.add_route(EXPORT_BASE + "/export/jobs/{job_id}", self.delete_job, methods=["DELETE"])
        return router

    def _plan_batch(
        self,
        job_id: int,
        dataset_id: str,
        segments: tuple[str, ...],
        statuses: tuple[str, ...],
        segment_ns: str,
        columns: tuple[str, ...],
        created_ms: int,
    ) -> Batch:
        batch_uuid = uuid.uuid4()
        batch = Batch(batch_uuid.hex, job_id, dataset_id, segments, segment_ns, statuses, created_ms)
        if segments:
            rows = sum(self.aep.segment_rows.get(s, self.aep.default_rows) for s in segments)
        else:
            rows = self.aep.default_rows
        if self.aep.rows_per_file:
            n_files = max(1, math.ceil(rows / self.aep.rows_per_file))
        else:
            n_files = max(1, int(self.aep.files_per_batch))
        parts_per_file = max(1, int(self.aep.parts_per_file))
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
                    row_group_rows=int(self.aep.row_group_rows),
                )
                parts.append((f"part-{k:05d}-{write_uuid}.c000.snappy.parquet", spec))
                first_row += part_rows
            batch.files.append(DataSetFile(f"{batch_uuid}-{i + 1}", parts))
        return batch

    async def create_job(self, request: Request) -> Response:
        if (denied := self.aep.check_gateway(request, has_body=True)) is not None:
            return denied
        # The body's types (CreateExportJobRequest) were judged by segmentation.yaml
        # (.validation). What the spec does not say, the guides do (A-SEJ, A-PEJ): datasetId and
        # schema.name are required, and segmentId is when segments are given. Without the
        # document the sandbox serves unvalidated: these checks then also keep the route's reads safe.
        body = await json_body(request)
        if not isinstance(body, dict):
            return ups_error(400, "The request body must be a JSON object (CreateExportJobRequest).")
        destination = body.get("destination")
        dataset_id = destination.get("datasetId") if isinstance(destination, dict) else None
        if not isinstance(dataset_id, str) or not dataset_id:
            return ups_error(400, "destination.datasetId is required.")
        schema = body.get("schema")
        if not (isinstance(schema, dict) and isinstance(schema.get("name"), str) and schema["name"]):
            return ups_error(400, "schema.name is required.")
        filt = body.get("filter") or {}
        segments_in = (filt.get("segments") if isinstance(filt, dict) else None) or []
        if not isinstance(segments_in, list) or not all(
            isinstance(s, dict) and isinstance(s.get("segmentId"), str) and s["segmentId"]
            for s in segments_in
        ):
            return ups_error(400, "filter.segments[].segmentId is required when segments are given.")

        with self.aep._state_lock:
            if dataset_id not in self.aep._datasets:
                # SANDBOX CHOICE: undocumented; an unknown target dataset is refused at creation.
                return ups_error(400, f"The dataset {dataset_id} does not exist.")
            job = self.new_job(body, request.headers.get("x-profile-instance-id") or "ups")
            view = self.job_view(job, job.created_ms)
        # A-SEG: 200 with the job and an X-Location header (the HREF of the job).
        return JSONResponse(view, headers={"X-Location": f"{self.aep.url}{EXPORT_BASE}/export/jobs/{job.job_id}"})

    def new_job(self, body: dict[str, Any], profile_instance_id: str) -> Job:
        """Plan and keep a job for a checked ``CreateExportJobRequest`` body (call with the state lock)."""
        dataset_id = str(body["destination"].get("datasetId"))
        segment_per_batch = bool(body["destination"].get("segmentPerBatch", False))
        fields = body.get("fields")
        segments_in = (body.get("filter") or {}).get("segments") or []
        job_id = self.aep._next_job_id
        self.aep._next_job_id += 1
        now = wall_clock_ms()
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
        job = Job(
            job_id=job_id,
            created_ms=now,
            step_ms=float(self.aep.job_seconds) * 1000.0,
            request=body,
            dataset_id=dataset_id,
            segment_per_batch=segment_per_batch,
            batches=batches,
            will_fail=any(s in self.aep.failing_segments for s in seg_ids),
            profile_instance_id=profile_instance_id,
            request_id=uuid.uuid4().hex,
        )
        self.aep._jobs[job_id] = job
        for batch in batches:
            self.aep._batches[batch.batch_id] = batch
            for dsf in batch.files:
                self.aep._files[dsf.file_id] = (batch, dsf)
        return job

    def job_view(self, job: Job, now_ms: int) -> dict[str, Any]:
        status, changed_ms = job.phase(now_ms)
        req = job.request
        failed = status == "FAILED"
        destination: dict[str, Any] = {
            self.aep.dataset_id_key: job.dataset_id,
            "segmentPerBatch": job.segment_per_batch,
        }
        if job.segment_per_batch and job.batches and job.batches[0].segments:
            # Segmentation guide: with segmentPerBatch=true, destination.batches is an array (the
            # spec's schema says object: spec defect).
            destination["batches"] = [
                {
                    "segmentId": b.segments[0],
                    "segmentNs": b.segment_ns,
                    "status": list(b.statuses),
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
            "imsOrgId": self.aep.ims_org_id,
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

    def _lookup_job(self, job_id: str) -> Job | None:
        try:
            return self.aep._jobs.get(int(job_id))
        except ValueError:
            return None

    def get_job(self, request: Request) -> Response:
        job_id: str = request.path_params["job_id"]
        if (denied := self.aep.check_gateway(request)) is not None:
            return denied
        with self.aep._state_lock:
            job = self._lookup_job(job_id)
            if job is None:
                return ups_error(404, f"The export job {job_id} is not found.")
            return JSONResponse(self.job_view(job, wall_clock_ms()))

    def list_jobs(self, request: Request) -> Response:
        if (denied := self.aep.check_gateway(request)) is not None:
            return denied
        q = request.query_params
        try:
            limit = int(q.get("limit", self.aep.list_default_limit))
            if limit < 1:
                # The spec types limit as an integer only. SANDBOX CHOICE: below 1 is refused.
                raise ValueError
        except ValueError:
            return ups_error(400, "limit must be a positive integer.")
        # The spec's enum (NEW, SUCCEEDED, FAILED) was judged by segmentation.yaml (.validation).
        status_filter = q.get("status")
        after: tuple[int, int] | None = None
        if q.get("offset"):
            created, sep, jid = q["offset"].partition("_")
            if not (sep and created.isdigit() and jid.isdigit()):
                return ups_error(400, "offset must be <creationTime>_<id>.")
            after = (int(created), int(jid))
        now = wall_clock_ms()
        with self.aep._state_lock:
            jobs = sorted(self.aep._jobs.values(), key=lambda j: (j.created_ms, j.job_id), reverse=True)
            if status_filter:
                jobs = [j for j in jobs if j.phase(now)[0] == status_filter]
            if after is not None:
                jobs = [j for j in jobs if (j.created_ms, j.job_id) < after]
            page, rest = jobs[:limit], jobs[limit:]
            records = [self.job_view(j, now) for j in page]
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

    def delete_job(self, request: Request) -> Response:
        job_id: str = request.path_params["job_id"]
        if (denied := self.aep.check_gateway(request)) is not None:
            return denied
        with self.aep._state_lock:
            job = self._lookup_job(job_id)
            if job is None:
                return ups_error(404, f"The export job {job_id} is not found.")
            now = wall_clock_ms()
            status, _ = job.phase(now)
            if status in ("NEW", "PROCESSING"):
                job.cancelled_ms = now
            else:
                # SANDBOX CHOICE: "Cancel or delete": a finished job is deleted (GET is then 404),
                # its batches and files stay readable as datasets keep their batches.
                self.aep._jobs.pop(job.job_id, None)
        if self.aep.delete_style == "204-empty":
            return Response(status_code=204)
        if self.aep.delete_style == "204-body":
            # The Segmentation guide shows 204 *with* the JSON body, but a 204 cannot carry one
            # (RFC 9110 section 15.3.5) and HTTP servers drop it (uvicorn refuses to send it), so
            # on the wire this differs from "204-empty" only by its JSON Content-Type.
            return Response(status_code=204, media_type="application/json")
        return JSONResponse(_CANCEL_BODY, status_code=200)
