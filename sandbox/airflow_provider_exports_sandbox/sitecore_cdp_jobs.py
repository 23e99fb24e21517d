"""The Sitecore CDP sandbox's export definitions and jobs: their states over time, and the output
files a job has (full, or a delta's added and removed guests), each a slice of synthetic guests."""

from __future__ import annotations

import datetime as dt
import math
import time
from dataclasses import dataclass, field

PENDING_STATES = ("PENDING_GUEST_CONTEXT", "PENDING_SEGMENTATION", "PENDING_EMR_SUBMIT", "PENDING_EMR_JOB")


@dataclass
class ExportDefinition:
    friendly_id: str
    definition_ref: str
    definition_type: str
    rows_per_file: int
    #: how a delta job's added and removed files are named (before ``part-00000.json.gz``)
    delta_prefixes: tuple[str, str] = ("added-", "removed-")
    jobs: list[ExportJob] = field(default_factory=list)


@dataclass(frozen=True)
class OutputFile:
    name: str
    seed: str
    start: int
    rows: int
    target_bytes: int | None = None


@dataclass
class ExportJob:
    execution_ref: str
    definition: ExportDefinition
    final_status: str
    rows: int
    created_mono: float
    created_wall: dt.datetime
    pending_seconds: float
    end_time: dt.datetime | None
    error_logs: tuple[str, ...]
    target_bytes: int | None
    execution_type: str
    segment_execution_type: str
    target_files: int = 1
    #: PENDING for this many appearances in the reports list, then final (not timed: for tests)
    pending_looks: int | None = None
    looks: int = 0
    looked_done_at: dt.datetime | None = None

    def look(self) -> None:
        """One appearance in the reports list (moves a ``pending_looks`` job on)."""
        self.looks += 1
        if self.pending_looks is not None and self.looks == self.pending_looks + 1:
            self.looked_done_at = dt.datetime.now(dt.timezone.utc)

    def status(self) -> str:
        if self.pending_looks is not None:
            return PENDING_STATES[0] if self.looks <= self.pending_looks else self.final_status
        elapsed = time.monotonic() - self.created_mono
        if self.pending_seconds > 0 and elapsed < self.pending_seconds:
            step = int(elapsed / self.pending_seconds * len(PENDING_STATES))
            return PENDING_STATES[min(step, len(PENDING_STATES) - 1)]
        return self.final_status

    @property
    def finished_at(self) -> dt.datetime:
        if self.end_time is not None:
            return self.end_time
        if self.looked_done_at is not None:
            return self.looked_done_at
        return self.created_wall + dt.timedelta(seconds=self.pending_seconds)

    @property
    def started_at(self) -> dt.datetime:
        if self.end_time is not None:
            return self.end_time - dt.timedelta(seconds=max(self.pending_seconds, 300.0))
        return self.created_wall

    def files(self) -> list[OutputFile]:
        if self.final_status != "SUCCESS":
            return []
        ref = self.execution_ref
        if self.target_bytes is not None:
            each = self.target_bytes // self.target_files
            return [
                OutputFile(f"part-{i:05d}.json.gz", f"{ref}/full" + (f"/{i}" if i else ""), 0, 0, each)
                for i in range(self.target_files)
            ]
        if self.definition.definition_type == "DELTA":
            removed = self.rows // 5
            added = self.rows - removed
            # Vendor is silent on delta file names (vendor-apis README §1.5: "separate files
            # distinguishing added guests from removed guests"): sandbox choice: `added-`/`removed-`
            # prefixes; `add_export(delta_prefixes=...)` names them otherwise (the code's other answers).
            added_prefix, removed_prefix = self.definition.delta_prefixes
            return self._split(added_prefix, f"{ref}/added", added) + self._split(
                removed_prefix, self._removed_seed(), removed
            )
        return self._split("", f"{ref}/full", self.rows)

    def _removed_seed(self) -> str:
        # Vendor is silent on how deltas relate (vendor-apis README §1.5): sandbox choice, a delta
        # removes the first guests the previous successful job added (the first: guests no one added).
        earlier = self.definition.jobs[: self.definition.jobs.index(self)]
        added_before = [j for j in earlier if j.final_status == "SUCCESS" and j.target_bytes is None]
        return f"{added_before[-1].execution_ref}/added" if added_before else f"{self.execution_ref}/removed"

    def _split(self, prefix: str, seed: str, rows: int) -> list[OutputFile]:
        per_file = max(1, self.definition.rows_per_file)
        count = max(1, math.ceil(rows / per_file))
        return [
            OutputFile(
                f"{prefix}part-{i:05d}.json.gz", seed, i * per_file, min(per_file, rows - i * per_file)
            )
            for i in range(count)
        ]
