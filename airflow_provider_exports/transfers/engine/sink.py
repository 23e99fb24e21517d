"""The contract between the runner and a destination (S3, a SQL table), and what a run tells it.

A run is ``begin`` (which also says whether this very job is already at the destination), one
``write_file`` per source file (possibly from several threads, up to ``max_file_concurrency``;
``discard_file`` throws a file's partial output away when its source changed and it starts
again), then ``commit`` with the manifest, or ``abort``. Nothing a run wrote is visible to readers
before ``commit`` ends, and ``abort`` leaves the destination as the last committed run left it.
"""

from __future__ import annotations

import secrets
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from airflow_provider_exports.exceptions import TransferError
from airflow_provider_exports.transfers.engine.cancellation import Cancellation

if TYPE_CHECKING:
    from airflow_provider_exports.transfers.engine.sources import SourceFile


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
