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

An object store's manifest lists files of its own run only: ``<root>/run-<run id>/<name>``
(:func:`run_dir`). A manifest read back is input like any other (anyone who can write under the
root can plant one), so a sink trusts, and deletes, only the locations :func:`in_run_dir` accepts.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any

from airflow_provider_exports.exceptions import ExportConfigError

MANIFEST_NAME = "_manifest.json"
MANIFEST_VERSION = 1
CHECKSUM_ALGORITHM = "sha256"
RUN_DIR_PREFIX = "run-"
#: the run ids :func:`~airflow_provider_exports.transfers.engine.sink.new_run_id` makes
RUN_ID = re.compile(r"\d{8}T\d{6}Z-[0-9a-f]{8}")


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
    """The manifest in ``raw``, or ``None`` when it is not one (a reader must not trust it): a JSON
    object of our version whose ``files`` is a list of objects."""
    try:
        data = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(data, dict) or data.get("manifest_version") != MANIFEST_VERSION:
        return None
    files = data.get("files")
    if files is not None and not (isinstance(files, list) and all(isinstance(f, dict) for f in files)):
        return None
    return data


def locations(manifest: Mapping[str, Any] | None) -> list[Any]:
    """The ``location`` of every file ``manifest`` lists, as recorded (a string, if it is ours)."""
    return [f.get("location") for f in (manifest or {}).get("files") or []]


def same_job(manifest: Mapping[str, Any] | None, *, vendor: str, export_ref: str, job_ref: str) -> bool:
    """Whether ``manifest`` records this very vendor job."""
    return (
        manifest is not None
        and manifest.get("vendor") == vendor
        and manifest.get("export_ref") == export_ref
        and manifest.get("job_ref") == job_ref
    )


def is_run_id(value: object) -> bool:
    """Whether ``value`` is a run id as a run makes them (``20261122T031500Z-9f3a1c2b``)."""
    return isinstance(value, str) and RUN_ID.fullmatch(value) is not None


def check_run_id(value: object, field: str) -> str:
    """``value`` if it is a run id, else an :class:`ExportConfigError` naming ``field``: a run id
    that came through XCom must not build a path before it is checked."""
    if not is_run_id(value):
        raise ExportConfigError(
            field, f"{ascii(value)[:80]} is not a run id as a run makes them (like 20261122T031500Z-9f3a1c2b)"
        )
    return str(value)


def run_dir(root: str, run_id: str) -> str:
    """A run's directory, ``<root>/run-<run id>`` (``run-<run id>`` when ``root`` is empty)."""
    name = RUN_DIR_PREFIX + check_run_id(run_id, "run_id")
    return f"{root}/{name}" if root else name


def in_run_dir(path: object, root: str, run_id: object) -> bool:
    """Whether ``path`` names a file inside the run directory ``<root>/run-<run_id>/`` by plain
    segments (no empty, ``.`` or ``..`` one, which a filesystem or a store's client would fold into
    another place): the only places a manifest of run ``run_id`` may list."""
    if not isinstance(path, str) or not is_run_id(run_id):
        return False
    inside = run_dir(root, str(run_id)) + "/"
    rest = path[len(inside) :].split("/")
    return path.startswith(inside) and all(part not in ("", ".", "..") for part in rest)

