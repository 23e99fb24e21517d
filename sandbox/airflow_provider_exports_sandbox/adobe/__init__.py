"""Adobe Experience Platform sandbox: IMS tokens, Catalog, profile export jobs and Data Access.

A local stand-in for the Adobe services an AEP profile export touches, built from Adobe's documents
(``vendor-apis/README.md`` section 3 and the OpenAPI files beside it), not from our client; one
router per service, behind one gateway:

- IMS ``POST /ims/token/v3`` (OAuth Server-to-Server, client credentials + scope): :mod:`.ims`;
- the Platform gateway header checks (``Authorization``, ``x-api-key``, ``x-gw-ims-org-id``,
  ``x-sandbox-name``) with the error bodies of Adobe's troubleshooting guide: :mod:`.gateway`;
- then every Platform request judged by Adobe's OpenAPI document of its service: :mod:`.validation`;
- Catalog ``/data/foundation/catalog``: create/look up datasets, look up batches: :mod:`.catalog`;
- Segmentation/Profile ``/data/core/ups/export/jobs``: create, list, get, cancel/delete jobs whose
  status moves ``NEW -> PROCESSING -> SUCCEEDED`` (or ``FAILED``) with wall-clock time:
  :mod:`.export_jobs`;
- Data Access ``/data/foundation/export``: batch file listing, file "directories" and the Parquet
  part files themselves, with ``HEAD`` and ``Range``: :mod:`.data_access`.

The Parquet files are real (snappy, deterministic synthetic XDM profiles, see
:mod:`airflow_provider_exports_sandbox.synthetic_parquet`), built once into the cache directory and
streamed from disk.

Where Adobe's documents say nothing, the choice made here is marked ``SANDBOX CHOICE`` in a
comment; where they contradict each other, the variant used is named and, for DELETE, switchable.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import FastAPI

from airflow_provider_exports_sandbox.adobe.catalog import Catalog
from airflow_provider_exports_sandbox.adobe.data_access import DataAccess
from airflow_provider_exports_sandbox.adobe.export_jobs import ExportJobs
from airflow_provider_exports_sandbox.adobe.gateway import AdobeGateway
from airflow_provider_exports_sandbox.adobe.ims import Ims
from airflow_provider_exports_sandbox.adobe.records import (
    AEP_SCOPES,
    CATALOG_BASE,
    CLIENT_ID,
    CLIENT_SECRET,
    DATA_ACCESS_BASE,
    DEFAULT_DATASET_ID,
    EXPORT_BASE,
    IMS_ORG_ID,
    PROFILE_UNION_SCHEMA,
    SANDBOX_NAME,
    wall_clock_ms,
)
from airflow_provider_exports_sandbox.adobe.validation import spec_judge
from airflow_provider_exports_sandbox.specs import SpecGate
from airflow_provider_exports_sandbox.synthetic import read_meta

__all__ = [
    "AEP_SCOPES",
    "CATALOG_BASE",
    "CLIENT_ID",
    "CLIENT_SECRET",
    "DATA_ACCESS_BASE",
    "DEFAULT_DATASET_ID",
    "EXPORT_BASE",
    "IMS_ORG_ID",
    "PROFILE_UNION_SCHEMA",
    "SANDBOX_NAME",
    "AdobeAEPServer",
]


class AdobeAEPServer(AdobeGateway):
    """Adobe IMS + Catalog + export jobs + Data Access on one loopback port (settings:
    :class:`~.gateway.AdobeGateway`)."""

    def __init__(self, cache_dir: Path) -> None:
        super().__init__(cache_dir)
        self.ims = Ims(self)
        self.catalog = Catalog(self)
        self.export_jobs = ExportJobs(self)
        self.data_access = DataAccess(self)

    def build_app(self) -> FastAPI:
        app = FastAPI(
            title="Adobe Experience Platform sandbox",
            docs_url=None,
            redoc_url=None,
            openapi_url=None,
            redirect_slashes=False,
        )
        for service in (self.ims, self.catalog, self.export_jobs, self.data_access):
            app.include_router(service.router())
        app.add_middleware(SpecGate, judge=spec_judge(self))
        return app

    # -- what tests seed and read -----------------------------------------------------------------
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
            return self.export_jobs.new_job(body, "ups").job_id

    def job_status(self, job_id: int) -> str:
        """The status a GET of this job would report now."""
        with self._state_lock:
            return self._jobs[job_id].phase(wall_clock_ms())[0]

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

    def file_paths(self, batch_id: str) -> dict[str, Path]:
        """Every Parquet part of a batch by name, as the file it is served from (built into the
        cache if needed): the source of truth a check reads the rows from."""
        with self._state_lock:
            batch = self._batches[batch_id]
        return {name: self.data_access.part_path(spec) for dsf in batch.files for name, spec in dsf.parts}

    def expected_files(self, batch_id: str) -> list[tuple[str, str, int, str, int]]:
        """``(dataSetFileId, name, size, sha256, rows)`` for every Parquet part of a batch (built
        into the cache if needed: a large batch can take a while)."""
        with self._state_lock:
            batch = self._batches[batch_id]
        out = []
        for dsf in batch.files:
            for name, spec in dsf.parts:
                path = self.data_access.part_path(spec)
                sha256: str = read_meta(path)["sha256"]
                out.append((dsf.file_id, name, path.stat().st_size, sha256, spec.rows))
        return out
