"""The retry policy: what is retried, how long each wait is, the deadline rule, the jitter.

How the policy plays out over real HTTP, through both drivers, is the table of ``test_request_path.py``.
"""

from __future__ import annotations

import time

import pytest

from airflow_provider_exports.exceptions import (
    DeadlineExceeded,
    VendorAPIError,
    VendorConnectionError,
    VendorRateLimitError,
    VendorServerError,
)
from airflow_provider_exports.hooks._call import Call, drive
from airflow_provider_exports.hooks._retry import RetryPolicy


@pytest.mark.parametrize(
    ("exc", "idempotent", "expected"),
    [
        (
            VendorRateLimitError("V", status_code=429, error_key=None, message="", method="POST", url=""),
            False,
            True,
        ),
        (
            VendorServerError("V", status_code=503, error_key=None, message="", method="GET", url=""),
            True,
            True,
        ),
        (
            VendorServerError("V", status_code=503, error_key=None, message="", method="POST", url=""),
            False,
            False,
        ),
        (
            VendorServerError("V", status_code=501, error_key=None, message="", method="GET", url=""),
            True,
            False,
        ),
        (VendorAPIError("V", status_code=400, error_key=None, message="", method="GET", url=""), True, False),
        (
            VendorConnectionError("V", status_code=None, error_key=None, message="", method="GET", url=""),
            True,
            True,
        ),
    ],
    ids=["429-post", "503-get", "503-post", "501", "400", "read-error"],
)
def test_what_is_retried(exc, idempotent, expected):
    assert RetryPolicy().should_retry(exc, idempotent=idempotent) is expected


def test_backoff_is_jittered_and_capped_and_retry_after_wins():
    policy = RetryPolicy(backoff_initial=1.0, backoff_max=4.0, retry_after_max=10.0)
    waits = {policy.wait_seconds(6, None) for _ in range(50)}
    assert all(0 <= w <= 4.0 for w in waits) and len(waits) > 1
    limited = VendorRateLimitError(
        "V", status_code=429, error_key=None, message="", method="GET", url="", retry_after=60
    )
    assert policy.wait_seconds(1, limited) == 10.0


def test_wait_within_refuses_a_wait_past_the_deadline_but_not_after_the_last_attempt():
    policy = RetryPolicy(max_attempts=3, retry_after_max=300)
    limited = VendorRateLimitError(
        "V", status_code=429, error_key="SLOW_DOWN", message="later", method="GET", url="", retry_after=30
    )
    soon = time.time() + 5
    with pytest.raises(DeadlineExceeded) as err:
        policy.wait_within(1, limited, soon, "V GET https://host/path")
    assert "30.0 s" in str(err.value) and "HTTP 429 (SLOW_DOWN): later" in str(err.value)
    assert err.value.__cause__ is limited
    assert 30 <= policy.wait_within(1, limited, time.time() + 60, "V") <= 35  # with its jitter
    assert 30 <= policy.wait_within(1, limited, None, "V") <= 35

    # After the last attempt nothing waits: the failure itself is raised, not the deadline's error.
    def refused():
        raise limited
        yield  # a flow

    call = Call("V", "GET", "https://host/path", deadline=soon)
    with pytest.raises(VendorRateLimitError):
        drive(RetryPolicy(max_attempts=1).attempts(call, refused), lambda effect: None)


def test_retry_after_is_jittered_within_the_deadline():
    """Both drivers: the waits of one policy (sync and async alike since issue 17)."""
    policy = RetryPolicy()
    limited = VendorRateLimitError(
        "V", status_code=429, error_key=None, message="slow down", method="GET", url="u", retry_after=10.0
    )
    waits = [policy.wait_within(1, limited, None, "x") for _ in range(200)]
    assert all(10.0 <= w <= 10.0 + 2.5 for w in waits)  # at most a quarter more (and 5 s)
    assert len(set(waits)) > 150 and max(waits) > 11.0
    # with a deadline: judged on the server's wait; the jitter takes at most half the slack
    near = [policy.wait_within(1, limited, time.time() + 11, "x") for _ in range(200)]
    assert all(10.0 <= w <= 10.5 + 0.01 for w in near)
    with pytest.raises(DeadlineExceeded):
        policy.wait_within(1, limited, time.time() + 9, "x")
    long = VendorRateLimitError(
        "V", status_code=429, error_key=None, message="slow down", method="GET", url="u", retry_after=100.0
    )
    assert all(100.0 <= policy.wait_within(1, long, None, "x") <= 105.0 for _ in range(50))
    # backoff without Retry-After is jittered already and gets nothing more
    assert all(policy.wait_within(1, None, None, "x") <= 1.0 for _ in range(50))
