"""What the Adobe sandbox keeps: its fixed credentials and paths, and the datasets' batches, files
and export jobs, whose status is computed from the clock, never stored."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Literal

from airflow_provider_exports_sandbox.synthetic_parquet import ProfileFileSpec

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


def wall_clock_ms() -> int:
    return int(time.time() * 1000)


def hex_id(n: int = 24) -> str:
    return uuid.uuid4().hex[:n]


@dataclass
class DataSetFile:
    """One Data Access ``dataSetFileId``: a "directory" of Parquet part files."""

    file_id: str
    parts: list[tuple[str, ProfileFileSpec]]

    @property
    def records(self) -> int:
        return sum(spec.rows for _, spec in self.parts)


@dataclass
class Batch:
    batch_id: str
    job_id: int
    dataset_id: str
    segments: tuple[str, ...]
    segment_ns: str
    #: the segment statuses the export filtered this batch's profiles on
    statuses: tuple[str, ...]
    created_ms: int
    files: list[DataSetFile] = field(default_factory=list)
    #: GETs of this batch answered since its job succeeded (see ``batch_pending_looks``)
    looks_after_success: int = 0

    @property
    def records(self) -> int:
        return sum(f.records for f in self.files)


@dataclass
class Job:
    job_id: int
    created_ms: int
    step_ms: float
    request: dict[str, Any]
    dataset_id: str
    segment_per_batch: bool
    batches: list[Batch]
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

