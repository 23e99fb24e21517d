"""Progress lines in the task log every few seconds: which files, how many bytes, MB/s, time left.

Thread-safe: the runner's file workers all report into one :class:`Progress`. Logging happens in
whichever worker crosses the interval, so no extra thread is needed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.2f} {unit}"
        n /= 1024
    return f"{n:.2f} TiB"


def human_seconds(s: float) -> str:
    s = max(0, round(s))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


class Progress:
    """Counts bytes for one transfer and logs a line at most every ``interval`` seconds.

    :param log: where the lines go (an operator passes ``self.log``).
    :param sizes: the listed size of each file (``None`` where unknown; :meth:`learn_size`
        fills those in when a download announces it).
    :param interval: seconds between progress lines.
    """

    def __init__(
        self,
        log: logging.Logger,
        *,
        sizes: list[int | None],
        interval: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._log = log
        self._total_files = len(sizes)
        self._sizes = list(sizes)
        self._interval = interval
        self._clock = clock
        self._lock = threading.Lock()
        self._started = clock()
        self._last_log = self._started
        self._bytes = 0
        self._done = 0
        self._active: dict[int, str] = {}

    def learn_size(self, index: int, size: int | None) -> None:
        """File ``index`` (from 1) turned out to be ``size`` bytes long."""
        if size is not None:
            with self._lock:
                self._sizes[index - 1] = size

    def start_file(self, index: int, name: str) -> None:
        """``index`` counts from 1."""
        with self._lock:
            self._active[index] = name

    def finish_file(self, index: int) -> None:
        with self._lock:
            self._active.pop(index, None)
            self._done += 1

    def rewind(self, n: int) -> None:
        """Forget ``n`` bytes counted for a file that starts again from its first byte."""
        with self._lock:
            self._bytes -= n

    def add(self, n: int) -> None:
        with self._lock:
            self._bytes += n
            now = self._clock()
            if now - self._last_log < self._interval:
                return
            self._last_log = now
            line = self._line(now)
        self._log.info("%s", line)

    def _line(self, now: float) -> str:
        elapsed = max(now - self._started, 1e-6)
        rate = self._bytes / elapsed
        if len(self._active) == 1:
            ((index, name),) = self._active.items()
            files = f"file {index} of {self._total_files} ({name})"
        elif self._active:
            files = f"files {', '.join(str(i) for i in sorted(self._active))} of {self._total_files}"
        else:
            files = f"{self._done} of {self._total_files} files done"
        amount = human_bytes(self._bytes)
        left = ""
        total = None if None in self._sizes else sum(s for s in self._sizes if s is not None)
        if total:
            amount += f" of {human_bytes(total)} ({100 * self._bytes / total:.0f}%)"
            if rate > 0:
                left = f", about {human_seconds(max(0, total - self._bytes) / rate)} left"
        return f"Transfer progress: {files}, {amount}, {rate / 1e6:.1f} MB/s{left}"

    def summary_line(self) -> str:
        elapsed = max(self._clock() - self._started, 1e-6)
        return (
            f"Transferred {self._done} of {self._total_files} files, {human_bytes(self._bytes)} "
            f"in {human_seconds(elapsed)} ({self._bytes / elapsed / 1e6:.1f} MB/s)"
        )
