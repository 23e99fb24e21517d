"""The run: move every output file of one vendor job into a sink, check it, commit it once.

:func:`run_transfer` skips a job whose manifest is already at the destination, moves files
concurrently (bounded), counts and hashes every byte as it passes (SHA-256 of the bytes as the
vendor served them), checks sizes, logs progress, and commits with the manifest last. Any
failure aborts the sink, so the destination is left as it was. It returns a
:class:`TransferSummary`: references and counts for XCom, never a URL or a body.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from typing import Any

from airflow_provider_exports.exceptions import ExportConfigError, TransferError, TransferIntegrityError
from airflow_provider_exports.transfers.engine import manifest as manifest_mod
from airflow_provider_exports.transfers.engine.manifest import FileRecord
from airflow_provider_exports.transfers.engine.progress import Progress
from airflow_provider_exports.transfers.engine.sink import Sink, TransferContext
from airflow_provider_exports.transfers.engine.sources import DEFAULT_CHUNK_SIZE, SourceFile

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TransferSummary:
    """What a run did, small and JSON-able (use :meth:`to_dict` for XCom).

    :ivar locations: where each file went (object keys; for SQL, the table once per file).
    :ivar manifest: the manifest's key (S3) or the manifest table (SQL).
    :ivar skipped: ``True`` when an earlier run of the same job had already committed.
    :ivar rows: rows loaded (SQL), ``None`` for object stores.
    """

    vendor: str
    export_ref: str
    job_ref: str
    destination: dict[str, Any]
    manifest: str
    skipped: bool
    file_count: int
    bytes: int
    rows: int | None
    seconds: float
    locations: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def run_transfer(
    files: Sequence[SourceFile],
    sink: Sink,
    *,
    vendor: str,
    export_ref: str,
    job_ref: str,
    overwrite: bool = False,
    max_concurrent_files: int = 4,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    log: logging.Logger | None = None,
    progress_interval: float = 5.0,
    cancel_event: threading.Event | None = None,
    job_details: Mapping[str, Any] | None = None,
) -> TransferSummary:
    """Move ``files`` of one vendor job into ``sink``, all or nothing.

    :param files: the job's output files.
    :param sink: the destination (:class:`S3Sink`, :class:`SqlSink`).
    :param vendor: vendor display name, for the manifest and object metadata.
    :param export_ref: the export's reference (name, id) at the vendor.
    :param job_ref: the job's reference; a committed manifest with the same vendor, export and
        job refs makes the run skip.
    :param overwrite: move the files again even when the job's manifest is present.
    :param max_concurrent_files: files moved at once (a sink may allow fewer).
    :param chunk_size: bytes per read from a source.
    :param log: where progress and decisions are logged (an operator passes ``self.log``).
    :param progress_interval: seconds between progress lines.
    :param cancel_event: set it (e.g. from ``on_kill``) to stop the run; it then aborts.
    :param job_details: the vendor's facts about the job, recorded in the manifest (JSON-able).
    """
    log = log or _log
    if max_concurrent_files < 1:
        raise ExportConfigError("max_concurrent_files", "must be at least 1")
    names = [f.name for f in files]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ExportConfigError("files", f"several source files share a name: {', '.join(duplicates)}")

    ctx = TransferContext(vendor, export_ref, job_ref, cancel_event or threading.Event())
    existing = sink.find_manifest(ctx)
    if manifest_mod.same_job(existing, vendor=vendor, export_ref=export_ref, job_ref=job_ref):
        assert existing is not None
        if not overwrite:
            log.info(
                "%s export %s job %s is already at %s (manifest %s); skipping. Set overwrite=True to move it again.",
                vendor,
                export_ref,
                job_ref,
                sink.describe(),
                sink.manifest_location(),
            )
            return _summary_from_manifest(existing, sink, skipped=True)
        log.info("%s job %s is already at the destination; overwrite=True, moving it again", vendor, job_ref)

    progress = Progress(log, sizes=[f.size for f in files], interval=progress_interval)
    started = time.time()
    log.info(
        "Moving %d file(s) of %s export %s job %s to %s",
        len(files),
        vendor,
        export_ref,
        job_ref,
        sink.describe(),
    )

    records: list[FileRecord | None] = [None] * len(files)

    def move(index: int, source: SourceFile) -> None:
        t0 = time.monotonic()
        progress.start_file(index + 1, source.name)
        digest = hashlib.sha256()
        count = 0

        def counted() -> Iterator[bytes]:
            nonlocal count
            for chunk in source.iter_bytes(chunk_size):
                if ctx.cancel_event.is_set():
                    raise TransferError("transfer cancelled")
                if not count:
                    progress.learn_size(index + 1, source.announced_size)
                digest.update(chunk)
                count += len(chunk)
                progress.add(len(chunk))
                yield chunk

        stream = counted()
        stored = sink.write_file(source, stream)
        for _ in stream:  # a sink that stopped early still gets every byte counted and checked
            pass
        if source.size is not None and count != source.size:
            raise TransferIntegrityError(f"{source.name}: received {count} bytes, listed as {source.size}")
        records[index] = FileRecord(
            name=source.name,
            location=stored.location,
            bytes=count,
            sha256=digest.hexdigest(),
            stored_bytes=stored.stored_bytes,
            rows=stored.rows,
            seconds=round(time.monotonic() - t0, 3),
            attributes=dict(source.attributes),
        )
        progress.finish_file(index + 1)

    sink.begin(ctx)
    try:
        workers = min(
            max_concurrent_files, sink.max_file_concurrency or max_concurrent_files, len(files) or 1
        )
        if workers == 1:
            for i, source in enumerate(files):
                move(i, source)
        else:
            _run_concurrently(move, files, workers, ctx)
        done = [r for r in records if r is not None]
        manifest = manifest_mod.build_manifest(
            vendor=vendor,
            export_ref=export_ref,
            job_ref=job_ref,
            destination=sink.describe(),
            files=done,
            started_at=started,
            finished_at=time.time(),
            job_details=job_details,
        )
        sink.commit(manifest)
    except BaseException:
        ctx.cancel_event.set()
        sink.abort()
        raise
    log.info("%s; manifest at %s", progress.summary_line(), sink.manifest_location())
    return _summary_from_manifest(manifest, sink, skipped=False)


def _run_concurrently(move: Any, files: Sequence[SourceFile], workers: int, ctx: TransferContext) -> None:
    with ThreadPoolExecutor(workers, thread_name_prefix="transfer-file") as pool:
        futures = [pool.submit(move, i, f) for i, f in enumerate(files)]
        wait(futures, return_when=FIRST_EXCEPTION)
        first = next((f.exception() for f in futures if f.done() and f.exception() is not None), None)
        if first is not None:
            # Stop the other files at their next chunk, and report the error that started it.
            ctx.cancel_event.set()
            for f in futures:
                f.cancel()
            wait(futures)
            raise first


def _summary_from_manifest(manifest: Mapping[str, Any], sink: Sink, *, skipped: bool) -> TransferSummary:
    files = manifest.get("files") or []
    return TransferSummary(
        vendor=str(manifest.get("vendor")),
        export_ref=str(manifest.get("export_ref")),
        job_ref=str(manifest.get("job_ref")),
        destination=sink.describe(),
        manifest=sink.manifest_location(),
        skipped=skipped,
        file_count=len(files),
        bytes=int(manifest.get("total_bytes") or 0),
        rows=manifest.get("total_rows"),
        seconds=float(manifest.get("seconds") or 0.0),
        locations=[str(f.get("location")) for f in files],
    )
