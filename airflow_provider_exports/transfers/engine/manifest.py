"""The ``_manifest.json`` commit marker: what one transfer wrote, written after everything else.

A downstream reader trusts a destination only once its manifest is there; a rerun for the same
vendor job finds it and skips. The manifest holds references and counts only, never a URL.

Format (``manifest_version`` 1)::

    {
      "manifest_version": 1,
      "vendor": "Sitecore CDP", "export_ref": "...", "job_ref": "...", "run_id": "20261122T031500Z-9f3a1c2b",
      "destination": {"kind": "s3", "bucket": "...", "prefix": "..."}
                     | {"kind": "sql", "conn_id": "...", "table": "...", "mode": "replace"},
      "checksum_algorithm": "sha256",
      "files": [{"name": "...", "location": "<key or table>", "bytes": 123, "sha256": "...",
                 "stored_bytes": 123 | null, "rows": null | 10, "seconds": 1.2, "attributes": {...}}],
      "file_count": 1, "total_bytes": 123, "total_rows": null | 10,
      "started_at": "2026-11-23T10:00:00+00:00", "finished_at": "...", "seconds": 1.2,
      "engine": "airflow-provider-exports 0.1.0"
    }

``bytes`` and ``sha256`` are of the file exactly as the vendor served it (before any
decompression); ``stored_bytes`` is what an object store received (``null`` for tables).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any

MANIFEST_NAME = "_manifest.json"
MANIFEST_VERSION = 1
CHECKSUM_ALGORITHM = "sha256"


@dataclass
class FileRecord:
    """What happened to one source file."""

    name: str
    location: str
    bytes: int
    sha256: str
    stored_bytes: int | None = None
    rows: int | None = None
    seconds: float = 0.0
    attributes: dict[str, Any] = field(default_factory=dict)


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=timezone.utc).isoformat(timespec="milliseconds")


def build_manifest(
    *,
    vendor: str,
    export_ref: str,
    job_ref: str,
    run_id: str,
    destination: Mapping[str, Any],
    files: Sequence[FileRecord],
    started_at: float,
    finished_at: float,
    job_details: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The manifest as a JSON-able dict; ``started_at``/``finished_at`` are epoch seconds.

    ``job_details`` holds the vendor's own facts about the job (Sitecore's ``definitionRef``,
    ``friendlyId``, ``datasetDate``, record counts...).
    """
    from airflow_provider_exports import __version__

    rows = [f.rows for f in files]
    return {
        "manifest_version": MANIFEST_VERSION,
        "vendor": vendor,
        "export_ref": export_ref,
        "job_ref": job_ref,
        "run_id": run_id,
        "job_details": dict(job_details or {}),
        "destination": dict(destination),
        "checksum_algorithm": CHECKSUM_ALGORITHM,
        "files": [asdict(f) for f in files],
        "file_count": len(files),
        "total_bytes": sum(f.bytes for f in files),
        "total_rows": None if any(r is None for r in rows) else sum(r for r in rows if r is not None),
        "started_at": _iso(started_at),
        "finished_at": _iso(finished_at),
        "seconds": round(finished_at - started_at, 3),
        "engine": f"airflow-provider-exports {__version__}",
    }


def dumps(manifest: Mapping[str, Any]) -> bytes:
    return json.dumps(manifest, indent=2, sort_keys=False).encode()


def loads(raw: bytes | str) -> dict[str, Any] | None:
    """The manifest in ``raw``, or ``None`` when it is not one (a reader must not trust it)."""
    try:
        data = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(data, dict) or data.get("manifest_version") != MANIFEST_VERSION:
        return None
    return data


def same_job(manifest: Mapping[str, Any] | None, *, vendor: str, export_ref: str, job_ref: str) -> bool:
    """Whether ``manifest`` records this very vendor job."""
    return (
        manifest is not None
        and manifest.get("vendor") == vendor
        and manifest.get("export_ref") == export_ref
        and manifest.get("job_ref") == job_ref
    )
