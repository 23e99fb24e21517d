"""The contract between the runner and a destination (S3, a SQL table), and a run's stop signal.

A run is ``begin`` (which also says whether this very job is already at the destination), one
``write_file`` per source file (possibly from several threads, up to ``max_file_concurrency``;
``discard_file`` throws a file's partial output away when its source changed and it starts
again), then ``commit`` with the manifest, or ``abort``. Nothing a run wrote is visible to readers
before ``commit`` ends, and ``abort`` leaves the destination as the last committed run left it.
"""

from __future__ import annotations

import logging
import secrets
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from airflow_provider_exports.exceptions import TransferCancelled, TransferError

if TYPE_CHECKING:
    from airflow_provider_exports.transfers.engine.sources import SourceFile

log = logging.getLogger(__name__)


class Cancellation:
    """A run's stop signal, set from ``on_kill``, a timeout or a failing file.

    Setting it wakes every :meth:`wait`, and runs the interrupts registered with
    :meth:`interrupting` (a download registers one that cuts its socket), so a transfer stops within
    moments even while a read is blocked. Thread-safe; cancelling twice is harmless.
    """

    def __init__(self) -> None:
        self._event = threading.Event()
        self._lock = threading.RLock()
        self._interrupts: dict[int, Callable[[], None]] = {}
        self._next_id = 0
        self.reason = "transfer cancelled"

    @property
    def is_set(self) -> bool:
        return self._event.is_set()

    def cancel(self, reason: str = "transfer cancelled") -> None:
        with self._lock:
            if self._event.is_set():
                return
            self.reason = reason
            self._event.set()
            interrupts = list(self._interrupts.values())
        for interrupt in interrupts:
            try:
                interrupt()
            except Exception:  # best effort: the reader notices the flag at its next chunk anyway
                log.debug("An interrupt failed", exc_info=True)

    def cancel_soon(self, reason: str = "transfer cancelled") -> None:
        """:meth:`cancel` on a short-lived thread: safe from a signal handler (Airflow calls
        ``on_kill`` from its SIGTERM handler, which may interrupt this very object's lock holder)."""
        threading.Thread(target=self.cancel, args=(reason,), name="transfer-cancel", daemon=True).start()

    def check(self) -> None:
        """Raise :class:`TransferCancelled` once the run is cancelled."""
        if self._event.is_set():
            raise TransferCancelled(self.reason)

    def wait(self, seconds: float) -> bool:
        """Sleep ``seconds`` unless cancelled first; ``True`` if cancelled."""
        return self._event.wait(max(0.0, seconds))

    @contextmanager
    def interrupting(self, interrupt: Callable[[], None]) -> Iterator[None]:
        """Run ``interrupt`` if the run is cancelled while the block runs (at once if it already is)."""
        with self._lock:
            key = self._next_id
            self._next_id += 1
            self._interrupts[key] = interrupt
            already = self._event.is_set()
        try:
            if already:
                interrupt()
            yield
        finally:
            with self._lock:
                self._interrupts.pop(key, None)


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
