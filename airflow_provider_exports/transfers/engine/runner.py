"""The run: move every output file of one vendor job into a sink, check it, commit it once.

:func:`run_transfer` refuses file names that would collide at the destination, asks the sink
whether this job is already there (and skips it), moves files concurrently (bounded), counts and
hashes every byte as it passes (SHA-256 of the bytes as the vendor served them), starts a file
again from its first byte when the source changed under it, logs progress, and commits with the
manifest last. Any failure, a timeout or ``on_kill`` cancels the run: every in-flight file stops
at once and the sink aborts, so the destination is left as the last good run left it. It returns
a :class:`TransferSummary`: references and counts for XCom, never a URL or a body.
"""

from __future__ import annotations

import hashlib
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from typing import Any

from airflow_provider_exports.exceptions import (
    ExportConfigError,
    ReadFileAgain,
    SourceChanged,
    TransferCancelled,
    TransferIntegrityError,
    TransferRefused,
)
from airflow_provider_exports.transfers.engine import manifest as manifest_mod
from airflow_provider_exports.transfers.engine.cancellation import Cancellation
from airflow_provider_exports.transfers.engine.manifest import FileRecord
from airflow_provider_exports.transfers.engine.progress import Progress
from airflow_provider_exports.transfers.engine.sink import Sink, TransferContext
from airflow_provider_exports.transfers.engine.sources import DEFAULT_CHUNK_SIZE, SourceFile

_log = logging.getLogger(__name__)

#: how often one file may start again from zero: its source changed while it was read, or the sink
#: must read it another way
MAX_FILE_RESTARTS = 2
#: seconds the runner waits, after a cancellation, for file workers to leave before aborting the sink
CANCEL_GRACE_SECONDS = 10.0
#: chunks a file's reader may be ahead of its hashing thread (each up to ``chunk_size`` bytes)
HASH_QUEUE_CHUNKS = 4


@dataclass(frozen=True)
class TransferSummary:
    """What a run did, small and JSON-able (use :meth:`to_dict` for XCom).

    :ivar locations: where each file went (object keys; for SQL, the table once per file).
    :ivar manifest: the manifest's key (S3) or the manifest table (SQL).
    :ivar skipped: ``True`` when a run of the same job had already committed.
    :ivar rows: rows loaded (SQL), ``None`` for object stores.
    :ivar run_id: the id of the run that committed what is at the destination.
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
    run_id: str | None = None
    locations: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_names(files: Sequence[SourceFile], sink: Sink) -> None:
    """Refuse a file list whose names collide at the destination or take the manifest's name."""
    stored: dict[str, str] = {}
    for source in files:
        name = sink.stored_name(source.name)
        if name == manifest_mod.MANIFEST_NAME:
            raise TransferRefused(
                f"the export has a file stored as {name!r}, a name reserved for the provider's manifest"
            )
        if name in stored:
            raise TransferRefused(
                f"files {stored[name]!r} and {source.name!r} would both be stored as {name!r}"
            )
        stored[name] = source.name


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
    cancellation: Cancellation | None = None,
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
    :param cancellation: cancel it (from ``on_kill``) to stop the run; it then aborts.
    :param job_details: the vendor's facts about the job, recorded in the manifest (JSON-able).
    """
    log = log or _log
    if max_concurrent_files < 1:
        raise ExportConfigError("max_concurrent_files", "must be at least 1")
    check_names(files, sink)
    cancellation = cancellation or Cancellation()
    cancellation.check()
    ctx = TransferContext(vendor, export_ref, job_ref, cancellation=cancellation)

    existing = sink.begin(ctx)
    try:
        if manifest_mod.same_job(existing, vendor=vendor, export_ref=export_ref, job_ref=job_ref):
            assert existing is not None
            if not overwrite:
                log.info(
                    "%s export %s job %s is already at %s (manifest %s); skipping. "
                    "Set overwrite=True to move it again.",
                    vendor,
                    export_ref,
                    job_ref,
                    sink.describe(),
                    sink.manifest_location(),
                )
                sink.abort()
                return _summary_from_manifest(existing, sink, skipped=True)
            log.info(
                "%s job %s is already at the destination; overwrite=True, moving it again", vendor, job_ref
            )

        log.info(
            "Moving %d file(s) of %s export %s job %s to %s (run %s)",
            len(files),
            vendor,
            export_ref,
            job_ref,
            sink.describe(),
            ctx.run_id,
        )
        started = time.time()
        progress = Progress(log, sizes=[f.size for f in files], interval=progress_interval)
        records: list[FileRecord | None] = [None] * len(files)

        def move(index: int, source: SourceFile) -> None:
            records[index] = _move_file(index + 1, source, sink, progress, cancellation, chunk_size, log)

        workers = min(
            max_concurrent_files, sink.max_file_concurrency or max_concurrent_files, len(files) or 1
        )
        if workers == 1:
            for i, source in enumerate(files):
                move(i, source)
        else:
            _run_concurrently(move, files, workers, cancellation)
        cancellation.check()
        manifest = manifest_mod.build_manifest(
            vendor=vendor,
            export_ref=export_ref,
            job_ref=job_ref,
            run_id=ctx.run_id,
            destination=sink.describe(),
            files=[r for r in records if r is not None],
            started_at=started,
            finished_at=time.time(),
            job_details=job_details,
        )
        winner = sink.commit(manifest)
    except BaseException as exc:
        cancellation.cancel(f"transfer stopped: {type(exc).__name__}")
        sink.abort()
        raise
    if winner is not None:
        log.info(
            "A concurrent run (%s) committed %s job %s first; this run's copy was discarded",
            winner.get("run_id"),
            vendor,
            job_ref,
        )
        return _summary_from_manifest(winner, sink, skipped=True)
    log.info("%s; manifest at %s", progress.summary_line(), sink.manifest_location())
    return _summary_from_manifest(manifest, sink, skipped=False)


def _move_file(
    number: int,
    source: SourceFile,
    sink: Sink,
    progress: Progress,
    cancellation: Cancellation,
    chunk_size: int,
    log: logging.Logger,
) -> FileRecord:
    """Move one file into the sink while counting, hashing and checking its bytes."""
    t0 = time.monotonic()
    progress.start_file(number, source.name)
    count = 0

    def counted(digest: _Sha256) -> Iterator[bytes]:
        nonlocal count
        for chunk in source.iter_bytes(chunk_size, cancellation=cancellation):
            cancellation.check()
            if not count:
                progress.learn_size(number, source.announced_size)
            digest.update(chunk)
            count += len(chunk)
            progress.add(len(chunk))
            yield chunk

    for restart in range(MAX_FILE_RESTARTS + 1):
        digest = _Sha256()
        count = 0
        try:
            stream = counted(digest)
            stored = sink.write_file(source, stream)
            for _ in stream:  # a sink that stopped early still gets every byte counted and checked
                pass
            sha256 = digest.hexdigest()
            break
        except (SourceChanged, ReadFileAgain) as exc:
            if restart == MAX_FILE_RESTARTS:
                raise
            log.warning("%s; starting the file again from its first byte", exc)
            progress.rewind(count)
            sink.discard_file(source)
        finally:
            digest.close()
    if source.size is not None and count != source.size:
        raise TransferIntegrityError(f"{source.name}: received {count} bytes, listed as {source.size}")
    progress.finish_file(number)
    return FileRecord(
        name=source.name,
        location=stored.location,
        bytes=count,
        sha256=sha256,
        stored_bytes=stored.stored_bytes,
        rows=stored.rows,
        seconds=round(time.monotonic() - t0, 3),
        attributes=dict(source.attributes),
    )


class _Sha256:
    """SHA-256 of a file's bytes, computed on a thread of its own as the bytes pass.

    The reader hands each chunk over and goes on reading while the chunk is hashed (hashlib
    releases the GIL on large buffers), so hashing overlaps the download instead of adding to its
    time; at most :data:`HASH_QUEUE_CHUNKS` chunks wait. Small files are hashed inline.
    """

    def __init__(self) -> None:
        self._hash = hashlib.sha256()
        self._queue: queue.Queue[bytes | None] | None = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def update(self, chunk: bytes) -> None:
        if self._thread is None:
            if len(chunk) < 256 * 1024:  # not worth a thread (and a small file may end here)
                self._hash.update(chunk)
                return
            self._queue = queue.Queue(HASH_QUEUE_CHUNKS)
            self._thread = threading.Thread(target=self._work, name="transfer-sha256", daemon=True)
            self._thread.start()
        assert self._queue is not None
        self._queue.put(chunk)

    def _work(self) -> None:
        assert self._queue is not None
        try:
            while (chunk := self._queue.get()) is not None:
                self._hash.update(chunk)
        except BaseException as exc:  # pragma: no cover - hashing bytes does not fail
            self._error = exc
            while self._queue.get() is not None:  # keep draining so the reader never blocks
                pass

    def hexdigest(self) -> str:
        self.close()
        if self._error is not None:  # pragma: no cover
            raise self._error
        return self._hash.hexdigest()

    def close(self) -> None:
        """Let the hashing thread finish (it hashes what was handed over, then ends)."""
        if self._thread is not None and self._queue is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None


def _run_concurrently(
    move: Callable[[int, SourceFile], None],
    files: Sequence[SourceFile],
    workers: int,
    cancellation: Cancellation,
) -> None:
    """Move files on a pool; the first failure (or a timeout in this thread) cancels the others.

    The pool is never joined unboundedly: after a cancellation the workers get
    :data:`CANCEL_GRACE_SECONDS` to leave (their reads are interrupted, so they leave at once),
    then the caller aborts the sink whatever they do.
    """
    pool = ThreadPoolExecutor(workers, thread_name_prefix="transfer-file")
    futures: list[Future[None]] = []
    try:
        futures = [pool.submit(move, i, f) for i, f in enumerate(files)]
        wait(futures, return_when=FIRST_EXCEPTION)
        failures = [f.exception() for f in futures if f.done() and not f.cancelled() and f.exception()]
        if failures:
            first = next((e for e in failures if not isinstance(e, TransferCancelled)), failures[0])
            cancellation.cancel(f"another file failed: {type(first).__name__}")
            assert first is not None
            raise first
    except BaseException as exc:
        cancellation.cancel(f"transfer stopped: {type(exc).__name__}")
        raise
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
        if cancellation.is_set:
            wait(futures, timeout=CANCEL_GRACE_SECONDS)


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
        run_id=manifest.get("run_id"),
        locations=[str(f.get("location")) for f in files],
    )
