"""The contract between the runner and a destination (S3, a SQL table).

A run is ``find_manifest`` (has this job been moved already?), ``begin``, one ``write_file`` per
source file (possibly from several threads, up to ``max_file_concurrency``), then ``commit`` with
the manifest, or ``abort``. Nothing a run wrote is visible to readers before ``commit`` ends,
and ``abort`` leaves the destination as it was.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_provider_exports.transfers.engine.sources import SourceFile


@dataclass(frozen=True)
class TransferContext:
    """Which vendor job a run moves; sinks put these refs into metadata and the manifest."""

    vendor: str
    export_ref: str
    job_ref: str
    cancel_event: threading.Event = field(default_factory=threading.Event)


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

    @abstractmethod
    def find_manifest(self, ctx: TransferContext) -> Mapping[str, Any] | None:
        """The manifest of an earlier committed run of ``ctx``'s job at this destination, if any."""

    @abstractmethod
    def begin(self, ctx: TransferContext) -> None:
        """Prepare a run; nothing is visible yet."""

    @abstractmethod
    def write_file(self, source: SourceFile, chunks: Iterator[bytes]) -> StoredFile:
        """Store one file from ``chunks`` (the file's bytes, in order, read to the end)."""

    @abstractmethod
    def commit(self, manifest: Mapping[str, Any]) -> None:
        """Make everything written visible, with the manifest last."""

    @abstractmethod
    def abort(self) -> None:
        """Throw away everything this run wrote; must not raise."""
