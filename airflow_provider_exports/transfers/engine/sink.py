"""The contract between the runner and a destination (S3, a SQL table), and what a run tells it.

A run is ``begin`` (which also says whether this very job is already at the destination), one
``write_file`` per source file (possibly from several threads, up to ``max_file_concurrency``;
``discard_file`` throws a file's partial output away when its source changed and it starts
again), then ``commit`` with the manifest, or ``abort``. Nothing a run wrote is visible to readers
before ``commit`` ends, and ``abort`` leaves the destination as the last committed run left it.
"""

from __future__ import annotations

import logging
import secrets
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from airflow_provider_exports.exceptions import TransferError, TransferRefused
from airflow_provider_exports.transfers.engine import manifest as manifest_mod
from airflow_provider_exports.transfers.engine.cancellation import Cancellation
from airflow_provider_exports.transfers.engine.streams import gunzip

if TYPE_CHECKING:
    from airflow_provider_exports.transfers.engine.sources import SourceFile

log = logging.getLogger(__name__)


def new_run_id() -> str:
    """A sortable, unique id for one run: ``20261122T031500Z-9f3a1c2b``."""
    return f"{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}-{secrets.token_hex(4)}"


@dataclass(frozen=True)
class TransferContext:
    """Which vendor job a run moves, the run's id, and its stop signal."""

    vendor: str
    export_ref: str
    job_ref: str
    run_id: str = field(default_factory=new_run_id)
    cancellation: Cancellation = field(default_factory=Cancellation)


@dataclass(frozen=True)
class StoredFile:
    """Where one file went: an object key or a table, bytes stored (objects), rows (tables)."""

    location: str
    stored_bytes: int | None = None
    rows: int | None = None


class Sink(ABC):
    """A destination for the output files of one export job."""

    #: how many files the sink can take at once; ``None`` for no limit of its own
    max_file_concurrency: int | None = None

    @abstractmethod
    def describe(self) -> dict[str, Any]:
        """The destination as JSON-able references (bucket and prefix, or conn id and table)."""

    @abstractmethod
    def manifest_location(self) -> str:
        """Where the manifest of a run goes: an object key, or the manifest table."""

    def stored_name(self, name: str) -> str:
        """The name a source file is stored under (the runner refuses two files with one name)."""
        return name

    @abstractmethod
    def begin(self, ctx: TransferContext) -> Mapping[str, Any] | None:
        """Prepare a run, nothing visible yet; return the committed manifest of ``ctx``'s job at
        this destination, if there is one (a sink with a lock checks under it)."""

    @abstractmethod
    def write_file(self, source: SourceFile, chunks: Iterator[bytes]) -> StoredFile:
        """Store one file from ``chunks`` (the file's bytes, in order, read to the end)."""

    def discard_file(self, source: SourceFile) -> None:
        """Throw away what :meth:`write_file` stored of ``source``, before it is written again."""
        raise TransferError(f"{source.name}: this destination cannot restart a single file")

    @abstractmethod
    def commit(self, manifest: Mapping[str, Any]) -> Mapping[str, Any] | None:
        """Make everything written visible, with the manifest last.

        Returns ``None``, or the manifest of a concurrent run of the same job that committed first;
        this run's output is then thrown away (the runner reports the run as skipped).
        """

    @abstractmethod
    def abort(self) -> None:
        """Throw away everything this run wrote; must not raise."""


class RunDirectorySink(Sink):
    """An object store: each run writes under ``<root>/run-<run id>/`` and commits with
    ``<root>/_manifest.json`` (see :mod:`.s3_sink`). A manifest read back is input: only the
    locations :meth:`_ours` accepts are trusted or removed; the rest is logged and left alone.
    """

    decompress = False
    allow_empty = False
    _ctx: TransferContext | None = None
    #: the committed manifest read at ``begin``, which the commit replaces
    _replaced: Mapping[str, Any] | None = None

    @abstractmethod
    def uri(self) -> str:
        """The root as a URL (``s3://bucket/prefix``, ``file:///data/exports``)."""

    @abstractmethod
    def _ours(self, location: object, run_id: object) -> bool:
        """Whether ``location`` lies in the run directory of ``run_id`` by plain segments."""

    @abstractmethod
    def _sizes_in(self, folder: str) -> dict[str, int]:
        """The files under a folder of locations and their sizes, by location."""

    def stored_name(self, name: str) -> str:
        if self.decompress and name.lower().endswith(".gz"):
            return name[:-3]
        return name

    def _stored_bytes(self, source: SourceFile, chunks: Iterator[bytes]) -> Iterator[bytes]:
        if self.decompress and source.name.lower().endswith(".gz"):
            return gunzip(chunks, name=source.name)
        return chunks

    def _same_job(self, manifest: Mapping[str, Any] | None) -> bool:
        ctx = self._ctx
        assert ctx is not None, "begin() first"
        return manifest_mod.same_job(manifest, vendor=ctx.vendor, export_ref=ctx.export_ref, job_ref=ctx.job_ref)

    def _trusted(self) -> Mapping[str, Any] | None:
        """The manifest read at ``begin``, if it records this job and every file it lists is in its
        run's directory with the size it recorded (the first one that is not is logged)."""
        manifest = self._replaced
        if manifest is None or not self._same_job(manifest):
            return None
        if self._outside_its_run(manifest, "not trusted: moving the job again"):
            return None
        files = manifest.get("files") or []
        present: dict[str, int] = {}
        for folder in {str(f.get("location")).rpartition("/")[0] for f in files}:
            present.update(self._sizes_in(folder))
        for f in files:
            recorded = f.get("stored_bytes") if f.get("stored_bytes") is not None else f.get("bytes")
            if present.get(str(f.get("location"))) != recorded:
                log.warning(
                    "The manifest at %s/%s lists %s, which is missing or has another size; moving the job again",
                    self.uri(),
                    manifest_mod.MANIFEST_NAME,
                    f.get("location"),
                )
                return None
        return manifest

    def _outside_its_run(self, manifest: Mapping[str, Any], doing: str) -> list[Any]:
        """The locations ``manifest`` lists outside its own run's directory, logged in one warning
        (the first five, escaped: a location must not spoof the log) with what is ``doing``."""
        run_id = manifest.get("run_id")
        refused = [loc for loc in manifest_mod.locations(manifest) if not self._ours(loc, run_id)]
        if refused:
            own = (
                f"{manifest_mod.RUN_DIR_PREFIX}{run_id}/ beside it"
                if manifest_mod.is_run_id(run_id)
                else f"none: its run id {ascii(str(run_id))[:80]} is not one a run makes"
            )
            shown = ", ".join(ascii(str(loc))[:200] for loc in refused[:5])
            more = f" and {len(refused) - 5} more" if len(refused) > 5 else ""
            log.warning(
                "The manifest at %s/%s lists %d location(s) outside its run directory (%s): %s%s; %s",
                self.uri(),
                manifest_mod.MANIFEST_NAME,
                len(refused),
                own,
                shown,
                more,
                doing,
            )
        return refused

    def _remove_replaced(self, manifest: Mapping[str, Any]) -> None:
        """After the commit: remove what the replaced manifest listed in its own run's directory
        and ``manifest`` does not, and what earlier runs left (:meth:`_remove_earlier`)."""
        self._outside_its_run(self._replaced or {}, "those are left alone")
        keep = set(manifest_mod.locations(manifest))
        run_id = (self._replaced or {}).get("run_id")
        replaced = [loc for loc in manifest_mod.locations(self._replaced) if self._ours(loc, run_id) and loc not in keep]
        try:
            removed = self._remove_earlier(replaced, keep)
        except Exception:
            log.warning(
                "Committed, but could not remove the replaced files under %s; readers of the manifest "
                "are not affected, the next run retries",
                self.uri(),
                exc_info=True,
            )
            return
        if removed:
            log.info("Removed %s of earlier runs under %s", removed, self.uri())

    @abstractmethod
    def _remove_earlier(self, replaced: list[str], keep: set[Any]) -> str:
        """Remove the ``replaced`` locations and the ``run-*`` directories (or their files) that
        earlier runs left and no location in ``keep`` lies in; say what went (``""``: nothing)."""

    def _refuse_empty(self, files: int) -> None:
        if not files and not self.allow_empty:
            assert self._ctx is not None
            raise TransferRefused(
                f"{self._ctx.vendor} job {self._ctx.job_ref} has no files; {self.uri()} keeps what it had "
                "(set allow_empty=True to commit an empty job)"
            )

    def _winner(self, current: Mapping[str, Any] | None) -> Mapping[str, Any]:
        """``current``, committed first by another run, if it moved this same job; else raise."""
        if self._same_job(current):
            assert current is not None
            return current
        assert self._ctx is not None
        other = current.get("job_ref") if current else "an unreadable or removed manifest"
        raise TransferError(
            f"another run committed {other} to {self.uri()} while this run moved job {self._ctx.job_ref}; "
            "this run's files were discarded and the other commit stays"
        )
