"""The retry policy of every call, and the state machine that applies it: a flow (:mod:`._call`)
that yields its waits, so every rule below holds in both drivers alike."""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from airflow_provider_exports.exceptions import (
    DeadlineExceeded,
    VendorAPIError,
    VendorConnectionError,
    VendorServerError,
)
from airflow_provider_exports.hooks._answers import provably_not_sent, rate_limit_wait
from airflow_provider_exports.hooks._call import Call, Flow, T, Wait

log = logging.getLogger(__name__)

# 501 and 505 say the server will never do this; every other 5xx may pass.
_PERMANENT_5XX = frozenset({501, 505})
#: the most seconds of jitter added to a ``Retry-After`` wait
RETRY_AFTER_JITTER_MAX = 5.0


@dataclass(frozen=True)
class RetryPolicy:
    """When and how long to wait before trying a request again.

    Retried: connection failures and timeouts, 408, 429 and 5xx (but 501/505). A request that
    is not idempotent (a POST that creates a job) is retried only when it provably did not run:
    429, or a failure to connect. Waits honour ``Retry-After`` (capped at ``retry_after_max``),
    lengthened by a little jitter so that callers refused together do not return together;
    otherwise they are exponential with full jitter, capped at ``backoff_max``.

    With a deadline (the end of the wait a call serves), no wait is started that would end after
    it: the call raises :class:`DeadlineExceeded` at once instead.
    """

    max_attempts: int = 5
    backoff_initial: float = 1.0
    backoff_max: float = 30.0
    retry_after_max: float = 300.0
    #: a ``Retry-After`` wait is lengthened by up to this share of it (at most
    #: :data:`RETRY_AFTER_JITTER_MAX` seconds)
    retry_after_jitter: float = 0.25

    def should_retry(self, exc: BaseException, *, idempotent: bool) -> bool:
        if provably_not_sent(exc):
            return True
        if not idempotent:
            return False
        if isinstance(exc, VendorServerError):
            return exc.http_status not in _PERMANENT_5XX
        return isinstance(exc, VendorConnectionError) or (
            isinstance(exc, VendorAPIError) and exc.http_status == 408
        )

    def wait_seconds(self, attempt: int, exc: BaseException | None) -> float:
        """The server's wait (``Retry-After``, capped), else a fully jittered exponential backoff."""
        retry_after = getattr(exc, "retry_after", None)
        if retry_after is not None:
            return min(float(retry_after), self.retry_after_max)
        ceiling = min(self.backoff_max, self.backoff_initial * (2 ** (attempt - 1)))
        return random.uniform(0, ceiling)

    def jitter_for(self, exc: BaseException | None, seconds: float) -> float:
        """Extra seconds added to a ``Retry-After`` wait of ``seconds`` (backoff is jittered already)."""
        if getattr(exc, "retry_after", None) is None:
            return 0.0
        return random.uniform(0, min(RETRY_AFTER_JITTER_MAX, self.retry_after_jitter * seconds))

    def wait_within(self, attempt: int, exc: BaseException | None, deadline: float | None, what: str) -> float:
        """The wait after failed attempt ``attempt``; raises ``DeadlineExceeded`` if it would end
        after ``deadline``.

        The deadline is judged on the wait the server asked for, and the jitter never takes more
        than half of the time that would be left after it, so a wait that fits still leaves room
        for its attempt.
        """
        seconds = self.wait_seconds(attempt, exc)
        extra = self.jitter_for(exc, seconds)
        if deadline is None:
            return seconds + extra
        left = deadline - time.time()
        if seconds > left:
            answer = getattr(exc, "summary", None) or type(exc).__name__
            raise DeadlineExceeded(
                what,
                deadline,
                f"the next attempt would start in {seconds:.1f} s, after it ({max(left, 0.0):.1f} s left); "
                f"last answer: {answer}",
            ) from exc
        return seconds + min(extra, (left - seconds) / 2)

    def connection_hold(self, headers: Mapping[str, str]) -> float:
        """How long a 429 with these headers holds its whole connection (the async clients' rate
        limiter): the wait it asks for, capped as a retry's, else the first backoff."""
        wait, _said = rate_limit_wait(headers)
        return min(self.retry_after_max, wait) if wait is not None else self.backoff_initial

    def attempts(
        self, call: Call, attempt: Callable[[], Flow[T]], stop: threading.Event | None = None
    ) -> Flow[T]:
        """The flow of ``call``: ``attempt()`` until it succeeds, a failure is not to be retried,
        the attempts are used up or ``stop`` is set (a cancelled transfer: the wait in progress ends,
        and the last failure is raised). After the last attempt nothing waits: its failure is raised."""
        number = 1
        while True:
            try:
                return (yield from attempt())
            except Exception as failure:
                if (
                    number >= self.max_attempts
                    or (stop is not None and stop.is_set())
                    or not self.should_retry(failure, idempotent=call.idempotent)
                ):
                    raise
                seconds = self.wait_within(number, failure, call.deadline, call.what)
                log.warning(
                    "%s: attempt %d of %d failed (%s); retrying in %.1f s",
                    call.what,
                    number,
                    self.max_attempts,
                    failure,
                    seconds,
                )
                yield Wait(seconds, stop)
                if stop is not None and stop.is_set():
                    raise
            number += 1
