"""A run's stop signal: :class:`Cancellation`, set from ``on_kill``, a timeout or a failing file, and
seen by every part of the run (sources, sinks, database waits) within moments; and
:class:`OpenReads`, a source's open reads that its interrupt cuts."""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from airflow_provider_exports.exceptions import TransferCancelled

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
        self._interrupts: list[Callable[[], None]] = []
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
            interrupts = list(self._interrupts)
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
            self._interrupts.append(interrupt)
            already = self._event.is_set()
        try:
            if already:
                interrupt()
            yield
        finally:
            with self._lock:
                self._interrupts.remove(interrupt)


class OpenReads:
    """A source's open reads (a response body, a file handle), so that its ``interrupt`` can cut
    them. An interrupt and an ``open`` race: either the read is registered before the interrupt and
    cut by it, or :meth:`holding` sees the interrupt and refuses the read; none slips between."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._stopped = False
        self._reads: set[Any] = set()
        self._lock = threading.Lock()

    def check(self) -> None:
        """Refuse a new read once the source is interrupted."""
        if self._stopped:
            raise TransferCancelled(f"{self._name}: the read was interrupted")

    @contextmanager
    def holding(self, read: Any) -> Iterator[None]:
        """Register ``read`` while the block runs, and close it after."""
        with self._lock:
            self._reads.add(read)
            stopped = self._stopped
        try:
            if stopped:  # the interrupt came while the read was being opened: nothing cut it
                raise TransferCancelled(f"{self._name}: the read was interrupted")
            yield
        finally:
            with self._lock:
                self._reads.discard(read)
            with contextlib.suppress(Exception):
                read.close()

    def interrupt(self) -> list[Any]:
        """Refuse every later read; return the reads open now, for the source to cut."""
        with self._lock:
            self._stopped = True
            return list(self._reads)
