"""What an answer means: URLs redacted, Retry-After and the rate-limit headers read."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import pytest

from airflow_provider_exports.hooks._answers import parse_retry_after, rate_limit_wait, redact_url


def test_redact_url_drops_query_and_userinfo():
    url = "https://user:pw@bucket.s3.amazonaws.com:8443/a/b.json.gz?X-Amz-Signature=abc&X-Amz-Credential=k"
    assert redact_url(url) == "https://bucket.s3.amazonaws.com:8443/a/b.json.gz"


def test_retry_after_seconds_and_http_date():
    assert parse_retry_after("3") == 3.0
    now = datetime(2026, 11, 23, 12, 0, 0, tzinfo=timezone.utc)
    later = format_datetime(now + timedelta(seconds=42), usegmt=True)
    assert parse_retry_after(later, now=now.timestamp()) == pytest.approx(42.0)
    assert parse_retry_after("garbage") is None
    assert parse_retry_after(None) is None


def test_a_429_without_retry_after_waits_for_the_rate_limit_reset():
    headers = {"X-Rate-Limit-Limit": "120", "X-Rate-Limit-Remaining": "0", "X-Rate-Limit-Reset": "17"}
    assert rate_limit_wait(headers) == (17.0, " (rate limit: limit 120, remaining 0, reset in 17)")
    assert rate_limit_wait({**headers, "Retry-After": "3"})[0] == 3.0  # Retry-After, the minimum, wins
    assert rate_limit_wait({}) == (None, "")
