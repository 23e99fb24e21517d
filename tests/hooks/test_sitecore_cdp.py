"""SitecoreCDPHook over real HTTP against the Sitecore sandbox."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from airflow_provider_exports.exceptions import ExportConfigError, VendorAPIError, VendorAuthError
from airflow_provider_exports.hooks._retry import RetryPolicy
from airflow_provider_exports.hooks.sitecore_cdp import (
    FAILED_STATUSES,
    REGION_HOSTS,
    SitecoreCDPHook,
    SitecoreJobStatus,
    export_event,
)

FAST = RetryPolicy(max_attempts=3, backoff_initial=0.01, backoff_max=0.05)
T0 = datetime(2026, 11, 1, tzinfo=timezone.utc)


def test_reads_latest_export_reports_and_one_job(sandbox):
    definition_ref = sandbox.sitecore.add_export("daily_loyalty_members", rows_per_file=40)
    first = sandbox.sitecore.add_job("daily_loyalty_members", rows=30, end_time=T0)
    second = sandbox.sitecore.add_job("daily_loyalty_members", rows=100, end_time=T0 + timedelta(days=1))
    hook = SitecoreCDPHook(retry=FAST)

    latest = hook.get_latest_export("daily_loyalty_members")
    assert latest.execution_ref == second and latest.definition_ref == definition_ref
    assert [f.name for f in latest.files] == [n for n, *_ in sandbox.sitecore.expected_files(second)]
    assert len(latest.files) == 3  # 100 rows, 40 per file
    assert "url" not in repr(latest.files[0]) and "X-Amz" not in repr(latest)

    reports = hook.get_reports(definition_ref)  # the UUID reference works as well as the friendly ID
    assert {r["executionRef"] for r in reports} == {first, second}
    assert hook.get_execution_output(first).execution_ref == first


@pytest.mark.parametrize(
    ("output", "named"),
    [
        ({"exports": []}, "executionRef is missing, not text"),
        ({"executionRef": "e1", "exports": [{"sizeKB": 1}]}, r"exports\[0\].url is missing, not text"),
        ({"executionRef": "e1", "exports": [{"url": 5}]}, r"exports\[0\].url is a JSON int, not text"),
        ({"executionRef": "e1", "exports": [{"url": "https://h/f?X-Amz-Signature=s", "sizeKB": "x"}]}, "sizeKB"),
        ({"executionRef": "e1", "exports": "f"}, "exports is not a list of objects"),
        ({"executionRef": "e1", "expireAt": "soon"}, "expireAt is the text 'soon', not an RFC 3339 time"),
        ([], "it is not an object"),
    ],
)
def test_a_job_output_not_as_documented_names_the_field(sandbox, output, named):
    """Over HTTP from the sandbox: a listing Sitecore answers otherwise than documented fails with
    the field it got wrong, never a KeyError or TypeError, and never shows a URL's query."""
    sandbox.sitecore.add_export("daily_loyalty_members")
    job = sandbox.sitecore.add_job("daily_loyalty_members", rows=3, end_time=T0)
    sandbox.sitecore.faults.answer(f"*/executions/{job}/export", json=output)

    with pytest.raises(VendorAPIError, match=named) as failed:
        SitecoreCDPHook(retry=FAST).get_execution_output(job)
    assert failed.value.http_status == 200 and "X-Amz-Signature" not in str(failed.value)


@pytest.mark.parametrize(
    ("reports", "named"),
    [
        (["job-1"], r"reports\[0\] is not an object"),
        ([{"executionRef": "e1", "status": "SUCCESS", "endTime": 1764547200}], r"reports\[0\].endTime is a JSON int"),
        ([{"executionRef": "e1", "startTime": "yesterday"}], r"reports\[0\].startTime is the text 'yesterday'"),
    ],
)
def test_reports_not_as_documented_name_the_report_and_field(sandbox, reports, named):
    """The wait compares the reports' times: one it cannot read fails the call (and the poke that
    made it) naming it, not a TypeError between a number and a text."""
    from airflow_provider_exports.hooks.sitecore_cdp import poke_export
    from airflow_provider_exports.utils.waiting import run_poke

    definition_ref = sandbox.sitecore.add_export("daily_loyalty_members")
    sandbox.sitecore.faults.answer(f"*/{definition_ref}/*", times=None, json=reports)
    hook = SitecoreCDPHook(retry=FAST)

    with pytest.raises(VendorAPIError, match=named):
        hook.get_reports(definition_ref)
    with pytest.raises(VendorAPIError, match=named):
        run_poke(hook, poke_export(definition_ref, None, ["FAILED"]))


@pytest.mark.parametrize(
    ("extras", "field"),
    [({"region": "MARS"}, "extra.region"), ({}, "extra.region"), ({"api_host": "ftp://x"}, "extra.api_host")],
)
def test_connection_settings_name_the_bad_field(extras, field):
    with pytest.raises(ExportConfigError) as err:
        SitecoreCDPHook.settings_from_connection("key", "secret", extras)
    assert err.value.field == field


def test_region_picks_the_documented_host():
    settings = SitecoreCDPHook.settings_from_connection("key", "secret", {"region": "jp"})
    assert settings.api_host == REGION_HOSTS["JP"] == "https://api-engage-jpe.sitecorecloud.io"
    assert settings.auth_host == "https://auth.sitecorecloud.io"


def test_bad_export_ref_fails_before_any_request(sandbox):
    with pytest.raises(ExportConfigError, match="audience_export_ref"):
        SitecoreCDPHook().get_reports("Daily Loyalty!")
    assert sandbox.sitecore.requests == []


def test_wrong_secret_is_an_auth_error_not_retried(sandbox, monkeypatch):
    conn = sandbox.sitecore.connection() | {"password": "wrong-secret"}
    import json

    monkeypatch.setenv("AIRFLOW_CONN_SITECORE_BAD", json.dumps(conn))
    with pytest.raises(VendorAuthError):
        SitecoreCDPHook("sitecore_bad", retry=FAST).get_reports("daily_loyalty_members")
    assert len(sandbox.sitecore.requests_to("/oauth/token")) == 1


def _report(ref, status, end):
    return {"executionRef": ref, "status": status, "endTime": end, "startTime": end}


@pytest.mark.parametrize(
    ("reports", "state", "ref"),
    [
        ([], "waiting", None),
        ([_report("a", "SUCCESS", "2026-10-31T23:00:00.000Z")], "waiting", "a"),
        ([_report("a", "SUCCESS", "2026-11-01T01:00:00.000Z")], "success", "a"),
        ([_report("a", "FAILED", "2026-11-01T01:00:00.000Z")], "failed", "a"),
        (
            [
                _report("a", "SUCCESS", "2026-11-01T01:00:00.000Z"),
                _report("b", "FAILED", "2026-11-01T02:00:00.000Z"),
            ],
            "success",
            "a",
        ),
        ([_report("a", "ALERT", "2026-11-01T01:00:00.000Z")], "failed", "a"),
        (
            [{"executionRef": "p", "status": "PENDING_EMR_JOB", "startTime": "2026-11-01T01:00:00.000Z"}],
            "waiting",
            "p",
        ),
    ],
    ids=[
        "none",
        "old-success",
        "new-success",
        "new-failure",
        "success-beats-later-failure",
        "alert",
        "pending",
    ],
)
def test_export_event(reports, state, ref):
    event = export_event("daily", reports, T0, FAILED_STATUSES)
    assert (event.state, event.job_ref) == (state, ref)


def test_every_documented_status_of_a_new_finished_job():
    def state(status: str, fail_statuses=FAILED_STATUSES) -> str:
        return export_event("daily", [_report("a", status, "2026-11-01T01:00:00.000Z")], T0, fail_statuses).state

    states = {status.value: state(status) for status in SitecoreJobStatus}
    assert states == {
        "PENDING_GUEST_CONTEXT": "waiting",
        "PENDING_SEGMENTATION": "waiting",
        "PENDING_EMR_SUBMIT": "waiting",
        "PENDING_EMR_JOB": "waiting",
        "SUCCESS": "success",
        "FAILED": "failed",
        "ALERT": "failed",
    }
    assert state("ALERT", {"FAILED"}) == "waiting" and state("SOMETHING_NEW") == "waiting"
