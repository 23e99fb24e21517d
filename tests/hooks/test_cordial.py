"""CordialHook over real HTTP against the Cordial sandbox."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timezone

import pytest

from airflow_provider_exports.exceptions import (
    ExportConfigError,
    ExportJobMayExist,
    LimitExceeded,
    VendorAPIError,
    VendorAuthError,
    VendorNotFoundError,
    VendorRateLimitError,
)
from airflow_provider_exports.hooks._retry import RetryPolicy
from airflow_provider_exports.hooks.cordial import CordialHook, CordialJobStatus, job_event, poke_job
from airflow_provider_exports.utils.waiting import arun_poke

# every request these tests cause must satisfy Cordial's Swagger (conftest.py)
pytestmark = pytest.mark.usefixtures("cordial_requests")

FAST = RetryPolicy(max_attempts=3, backoff_initial=0.01, backoff_max=0.05)
S3_DESTINATION = {
    "type": "S3",
    "aws_bucket": "lake",
    "aws_region": "us-east-1",
    "path": "cordial/trends",
    "aws_access_key_id": "testing",
    "aws_secret_access_key": "testing",
}


def _create(hook, **overrides):
    args = {
        "name": "weekly-trends",
        "audiences": ["vip"],
        "selected_timeframe_start": "2026-11-16",
        "selected_timeframe_end": "2026-11-22",
        "destination": S3_DESTINATION,
    } | overrides
    return hook.create_audience_trends_export(**args)


def test_create_then_poll_until_done(sandbox):
    sandbox.cordial.job_seconds = 0.2
    sandbox.cordial.add_audience("vip")
    hook = CordialHook(retry=FAST)
    job_id = _create(hook)
    seen = set()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        status = hook.get_job(job_id)["status"]
        seen.add(status)
        if status == "Done":
            break
        time.sleep(0.1)
    assert "Done" in seen and seen <= {"Scheduled", "Pending", "Processing", "Done"}
    assert any(job.get("_id") == job_id for job in hook.list_jobs())


def test_vendor_error_key_and_message_surface_and_are_not_retried(sandbox):
    hook = CordialHook(retry=FAST)
    with pytest.raises(VendorAPIError) as err:
        _create(hook, audiences=["unknown-audience"])
    assert err.value.http_status == 406
    assert err.value.error_key == "GENERIC_ERROR_KEY"
    assert "Audience 'unknown-audience' does not exist." in err.value.message
    assert len(sandbox.cordial.requests_to("/v2/audiencetrendsexport")) == 1


def test_create_is_not_repeated_after_a_5xx_and_says_the_job_may_exist(sandbox):
    sandbox.cordial.add_audience("vip")
    sandbox.cordial.faults.server_error("/v2/audiencetrendsexport", times=1, status=502)
    with pytest.raises(ExportJobMayExist, match=r"may have created the export job 'weekly-trends'.*HTTP 502"):
        _create(CordialHook(retry=FAST))
    assert len(sandbox.cordial.requests_to("/v2/audiencetrendsexport")) == 1


def test_a_connection_lost_after_the_post_reached_cordial_is_not_repeated(sandbox):
    sandbox.cordial.add_audience("vip")
    # the job is created, then the answer is cut before its body
    sandbox.cordial.faults.drop_connection("/v2/audiencetrendsexport", after_bytes=0, method="POST")
    with pytest.raises(ExportJobMayExist, match="RemoteProtocolError"):
        _create(CordialHook(retry=FAST))
    assert len(sandbox.cordial.requests_to("/v2/audiencetrendsexport")) == 1
    assert len(sandbox.cordial.jobs_named("weekly-trends")) == 1


def test_an_empty_200_is_not_a_type_error_but_a_job_that_may_exist(sandbox):
    sandbox.cordial.add_audience("vip")
    sandbox.cordial.answer_creates_empty(1)
    with pytest.raises(ExportJobMayExist, match="HTTP 200 with an empty body"):
        _create(CordialHook(retry=FAST))
    assert len(sandbox.cordial.jobs_named("weekly-trends")) == 1


def test_create_is_repeated_after_a_429(sandbox):
    sandbox.cordial.add_audience("vip")
    sandbox.cordial.faults.rate_limit("/v2/audiencetrendsexport", times=1, retry_after="0")
    assert _create(CordialHook(retry=FAST))
    assert [r.status for r in sandbox.cordial.requests_to("/v2/audiencetrendsexport")] == [429, 200]


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"name": "weekly trends!"}, "name"),
        ({"selected_timeframe_start": "16/11/2026"}, "selected_timeframe_start"),
        ({"selected_timeframe_end": "2026-11-01"}, "selected_timeframe_end"),
        ({"destination": {"type": "DROPBOX"}}, "destination.type"),
        ({"destination": {"type": "S3", "aws_bucket": "lake", "path": "x"}}, "destination.aws_region"),
        ({"audiences": []}, "audiences"),
    ],
)
def test_bad_input_is_refused_before_any_request(sandbox, overrides, field):
    with pytest.raises(ExportConfigError) as err:
        _create(CordialHook(retry=FAST), **overrides)
    assert err.value.field == field
    assert sandbox.cordial.requests == []


def test_wrong_key_is_an_auth_error(sandbox, monkeypatch):
    import json

    monkeypatch.setenv(
        "AIRFLOW_CONN_CORDIAL_BAD", json.dumps(sandbox.cordial.connection() | {"password": "nope"})
    )
    with pytest.raises(VendorAuthError) as err:
        CordialHook("cordial_bad", retry=FAST).get_job("0" * 24)
    assert "Access Denied" in err.value.message


def test_api_host_defaults_and_accepts_override():
    assert CordialHook.settings_from_connection(None, "k", {}).api_host == "https://api.cordial.io"
    assert CordialHook.settings_from_connection(None, "k", {"api_host": "api.usw2.cordial.io"}).api_host == (
        "https://api.usw2.cordial.io"
    )


def test_a_400_from_the_server_is_not_retried(sandbox):
    sandbox.cordial.add_audience("vip")
    # Cordial alone knows whether an IAM role stands in for keys: without one it answers 400
    no_keys = {
        k: v for k, v in S3_DESTINATION.items() if not k.startswith("aws_access") and "secret" not in k
    }
    with pytest.raises(VendorAPIError) as err:
        _create(CordialHook(retry=FAST), destination=no_keys)
    assert err.value.http_status == 400
    assert "aws access key id" in err.value.message
    assert len(sandbox.cordial.requests_to("/v2/audiencetrendsexport")) == 1


def _contacts(hook, **overrides):
    args = {
        "name": "vip-members",
        "fields": ["email", "first_name"],
        "account_id": 1234,
        "destination": S3_DESTINATION,
        "audience_key": "vip",
    } | overrides
    return hook.create_contact_export(**args)


def test_contact_export_body_follows_the_spec(sandbox, cordial_requests):
    sandbox.cordial.add_audience("vip")
    job_id = _contacts(CordialHook(retry=FAST), lists=[8756, "8757"], export_type="JSON", compress=True)
    assert job_id in sandbox.cordial.job_ids()
    ((method, url, _params, body),) = cordial_requests
    assert (method, url.rsplit("/", 2)[-2:]) == ("POST", ["v2", "contactexports"])
    assert body == {
        "name": "vip-members",
        "exportType": "json",
        "destination": S3_DESTINATION,
        "fields": ["email", "first_name"],
        "accountId": 1234,
        "compress": True,
        "showHeader": True,
        "audience-key": "vip",
        "lists": [8756, 8757],
    }


@pytest.mark.parametrize(
    ("overrides", "field", "allowed"),
    [
        ({"fields": []}, "fields", "at least one contact field"),
        ({"fields": "email"}, "fields", "a list"),
        ({"account_id": "acme"}, "account_id", "positive integer"),
        ({"account_id": 0}, "account_id", "positive integer"),
        ({"export_type": "xml"}, "export_type", "csv or json"),
        ({"lists": ["newsletter"]}, "lists", r"list IDs \(integers\)"),
        ({"compress": "yes"}, "compress", "True or False"),
        ({"name": "vip members"}, "name", "letters, numbers and dashes"),
        ({"destination": {"type": "SFTP", "server": "h", "path": "/"}}, "destination.username", "SFTP"),
    ],
)
def test_contact_export_bad_input_is_refused_before_any_request(sandbox, overrides, field, allowed):
    with pytest.raises(ExportConfigError, match=allowed) as err:
        _contacts(CordialHook(retry=FAST), **overrides)
    assert err.value.field == field
    assert sandbox.cordial.requests == []


def test_contact_export_400_surfaces_cordials_message(sandbox):
    with pytest.raises(VendorAPIError) as err:
        _contacts(CordialHook(retry=FAST), audience_key="ghost")
    assert (err.value.http_status, err.value.error_key) == (400, "GENERIC_ERROR_KEY")
    assert err.value.message == "Audience with name: 'ghost' does not exist."


def test_unknown_job_is_record_not_found(sandbox):
    with pytest.raises(VendorNotFoundError) as err:
        CordialHook(retry=FAST).get_job("ffffffffffffffffffffffff")
    assert (err.value.error_key, err.value.message) == ("RECORD_NOT_FOUND", "record not found")


def test_a_429_names_cordials_rate_limit_headers(sandbox):
    sandbox.cordial.faults.rate_limit("/v2/jobs/*", times=None, retry_after="0")
    with pytest.raises(VendorRateLimitError, match=r"rate limit: limit 120, remaining 0, reset in 0"):
        CordialHook(retry=FAST).get_job("ffffffffffffffffffffffff")
    assert len(sandbox.cordial.requests_to("/v2/jobs/*")) == FAST.max_attempts


def test_find_jobs_by_name_sees_jobs_not_started_yet_and_prefers_active_ones(sandbox):
    from datetime import datetime, timedelta, timezone

    sandbox.cordial.add_audience("vip")
    sandbox.cordial.job_seconds = 0.05
    hook = CordialHook(retry=FAST)
    since = datetime.now(timezone.utc) - timedelta(minutes=1)
    sandbox.cordial.fail_next_jobs(1)
    failed = _create(hook)
    done = _create(hook)
    other = _create(hook, name="other-name")
    deadline = time.monotonic() + 10
    while {hook.get_job(j)["status"] for j in (failed, done, other)} != {"Failed", "Done"}:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    sandbox.cordial.job_seconds = 60.0  # the next one stays Scheduled, without a start time
    scheduled = _create(hook)

    found = hook.find_jobs_by_name("weekly-trends", started_since=since)
    assert [j["_id"] for j in found] == [scheduled, done, failed]
    assert hook.find_jobs_by_name(
        "weekly-trends", started_since=datetime.now(timezone.utc) + timedelta(hours=1)
    ) == [hook.get_job(scheduled)]


def test_find_jobs_by_name_sees_a_job_that_starts_between_its_reads(sandbox, monkeypatch):
    """The jobs list is read several times (not started, then started); a job that starts in
    between must still be found: the retried task would otherwise create a second export."""
    from datetime import datetime, timedelta, timezone

    sandbox.cordial.add_audience("vip")
    sandbox.cordial.job_reads = 5  # Scheduled until read twice, then Processing
    hook = CordialHook(retry=FAST)
    job_id = _create(hook, name="starts-between-reads")
    real_list_jobs = CordialHook.list_jobs
    reads_of_the_list: list[dict] = []

    def list_then_start(self, **filters):
        yield from real_list_jobs(self, **filters)
        reads_of_the_list.append(filters)
        if len(reads_of_the_list) == 1:  # the job starts after the first read of the list
            statuses = [hook.get_job(job_id)["status"] for _ in range(2)]
            assert statuses == ["Scheduled", "Processing"]

    monkeypatch.setattr(CordialHook, "list_jobs", list_then_start)
    since = datetime.now(timezone.utc) - timedelta(minutes=1)
    assert [j["_id"] for j in hook.find_jobs_by_name("starts-between-reads", started_since=since)] == [job_id]
    assert len(reads_of_the_list) > 1


# -- untrusted edges: ids in paths, listings bounded ------------------------------------------------

FULL_PAGE = [{"_id": f"{i:024x}", "status": "Done", "metadata": {"name": "other"}} for i in range(25)]


@pytest.mark.parametrize(
    "job_id",
    [
        "1/../../contacts/alice@example.com",  # measured on main: GET /v2/contacts/alice@example.com
        "5f6b1434f778ac145d25391a/../../contacts",
        "5f6b1434f778ac145d25391a?fields=x",
        "..",
        "",
        "5f6b1434f778ac145d25391",  # one digit short of a Mongo ID
    ],
)
async def test_a_job_id_that_is_no_cordial_job_id_is_refused_before_any_request(sandbox, job_id):
    hook = CordialHook(retry=FAST)
    with pytest.raises(ExportConfigError, match="24 hexadecimal digits") as err:
        hook.get_job(job_id)
    assert err.value.field == "job_id"
    with pytest.raises(ExportConfigError) as err:
        await arun_poke(hook, poke_job(job_id))
    await hook.aclose()
    assert err.value.field == "job_id"
    assert sandbox.cordial.requests == []


def test_a_create_answer_whose_job_id_would_escape_its_path_is_a_job_that_may_exist(sandbox):
    sandbox.cordial.add_audience("vip")
    sandbox.cordial.faults.answer("/v2/audiencetrendsexport", json={"jobId": "../contacts/alice@example.com"})
    with pytest.raises(ExportJobMayExist, match="a jobId that is not a Cordial job id"):
        _create(CordialHook(retry=FAST))


def test_a_jobs_list_whose_pages_are_always_full_stops_at_max_pages(sandbox, monkeypatch):
    monkeypatch.setenv("AIRFLOW__EXPORTS__MAX_PAGES", "5")
    # 40 full pages, then the sandbox's own (short) list: on a hook without the bound the listing
    # ends there without an error instead of running on (9,719 requests in 30 s measured on main)
    sandbox.cordial.faults.answer("/v2/jobs", times=40, json=FULL_PAGE, method="GET")
    hook = CordialHook(retry=FAST)
    with pytest.raises(LimitExceeded, match=r"max_pages.*AIRFLOW__EXPORTS__MAX_PAGES") as err:
        list(hook.list_jobs())
    assert err.value.limit == "max_pages" and "/v2/jobs" in err.value.what
    assert len(sandbox.cordial.requests_to("/v2/jobs", "GET")) == 5
    with pytest.raises(LimitExceeded):  # and so does the search a retried create runs
        hook.find_jobs_by_name("weekly-trends", started_since=datetime.now(timezone.utc))
    assert len(sandbox.cordial.requests_to("/v2/jobs", "GET")) == 10


def test_a_jobs_list_that_is_no_array_is_a_vendor_error(sandbox):
    sandbox.cordial.faults.answer("/v2/jobs", json={"jobs": FULL_PAGE}, method="GET")
    with pytest.raises(VendorAPIError, match="not the documented array"):
        list(CordialHook(retry=FAST).list_jobs())


# -- the status event of one poke ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "state"),
    [
        ("Done", "success"),
        ("Failed", "failed"),
        ("Throttled", "waiting"),
        ("Pending", "waiting"),
        ("Queued", "waiting"),
    ],
)
def test_only_done_and_failed_end_the_wait(status, state):
    event = job_event("j1", {"status": status, "totalItems": 3, "completedItems": 1})
    assert event.state == state
    assert event.description == f"Cordial job j1: status {status}, 1 of 3 items"


def test_every_documented_status_but_done_and_failed_keeps_the_wait_going():
    states = {status.value: job_event("j1", {"status": status}).state for status in CordialJobStatus}
    assert states == {
        "Scheduled": "waiting",
        "Pending": "waiting",
        "Processing": "waiting",
        "Throttled": "waiting",
        "Failed": "failed",
        "Done": "success",
    }


# -- an empty jobs list: C-V2's 404 RecordNotFound, or [] ------------------------------------------

RECORD_NOT_FOUND = {"error": True, "errorKey": "RECORD_NOT_FOUND", "message": "record not found"}


def _empty_list_as(sandbox, answer: str) -> None:
    """The jobs list answers no job as the sandbox does (C-V2: 404 RecordNotFound), or as `[]`."""
    if answer == "[]":
        sandbox.cordial.faults.answer("/v2/jobs", times=None, json=[], method="GET")


@pytest.mark.parametrize("answer", ["404 RecordNotFound", "[]"])
def test_an_empty_jobs_list_is_no_jobs(sandbox, answer):
    _empty_list_as(sandbox, answer)
    hook = CordialHook(retry=FAST)
    assert list(hook.list_jobs()) == []
    assert hook.find_jobs_by_name("weekly-trends", started_since=datetime.now(timezone.utc)) == []
    assert {r.status for r in sandbox.cordial.requests_to("/v2/jobs", "GET")} == {
        404 if answer.startswith("404") else 200
    }


@pytest.mark.parametrize("answer", ["404 RecordNotFound", "[]"])
def test_the_connection_test_passes_on_an_account_without_jobs(sandbox, answer):
    _empty_list_as(sandbox, answer)
    ok, message = CordialHook().test_connection()
    assert ok, message
    assert [r.status for r in sandbox.cordial.requests_to("/v2/jobs", "GET")] == [
        404 if answer.startswith("404") else 200
    ]


def test_a_404_record_not_found_without_its_error_key_is_no_jobs(sandbox):
    # C-V2 RecordNotFound requires `error` and `message` only
    sandbox.cordial.faults.answer(
        "/v2/jobs", times=None, status=404, json={"error": True, "message": "record not found"}, method="GET"
    )
    assert list(CordialHook(retry=FAST).list_jobs()) == []
    assert CordialHook().test_connection()[0]


def test_a_404_past_the_last_full_page_ends_the_list(sandbox):
    sandbox.cordial.faults.answer("/v2/jobs", times=1, json=FULL_PAGE, method="GET")
    assert len(list(CordialHook(retry=FAST).list_jobs())) == 25
    assert [r.status for r in sandbox.cordial.requests_to("/v2/jobs", "GET")] == [200, 404]


@pytest.mark.parametrize(
    "answer",
    [
        {"json": {"error": True, "errorKey": "ROUTE_NOT_FOUND", "message": "no such route"}},
        {"body": "<html><body>404 Not Found</body></html>", "headers": {"content-type": "text/html"}},
    ],
)
def test_any_other_404_of_the_jobs_list_stays_an_error(sandbox, answer):
    sandbox.cordial.faults.answer("/v2/jobs", times=None, status=404, method="GET", **answer)
    hook = CordialHook(retry=FAST)
    with pytest.raises(VendorNotFoundError):
        list(hook.list_jobs())
    with pytest.raises(VendorNotFoundError):
        hook.find_jobs_by_name("weekly-trends", started_since=datetime.now(timezone.utc))
    ok, message = CordialHook().test_connection()
    assert not ok and "HTTP 404" in message


@pytest.mark.parametrize("answer", ["404 RecordNotFound", "[]"])
def test_a_create_on_an_account_without_jobs_is_not_stopped_by_the_empty_list(sandbox, answer):
    """An answer that does not name the job makes the hook's caller look the job up by name."""
    sandbox.cordial.add_audience("vip")
    _empty_list_as(sandbox, answer)
    hook = CordialHook(retry=FAST)
    assert hook.find_jobs_by_name("weekly-trends", started_since=datetime.now(timezone.utc)) == []
    assert _create(hook) in sandbox.cordial.job_ids()


# -- destinations as the documents say: type spelling, FTP/SFTP port, path slashes -----------------


@pytest.mark.parametrize("spelled", ["s3", "S3"])
def test_a_destination_type_in_either_case_is_sent_as_the_spec_spells_it(sandbox, cordial_requests, spelled):
    sandbox.cordial.add_audience("vip")
    job_id = _create(CordialHook(retry=FAST), destination={**S3_DESTINATION, "type": spelled})
    assert job_id in sandbox.cordial.job_ids()
    ((_method, _url, _params, body),) = cordial_requests
    assert body["destination"]["type"] == "S3"


@pytest.mark.parametrize(
    ("destination", "port"),
    [
        ({"type": "sftp"}, 22),
        ({"type": "Sftp", "port": 2222}, 2222),
        ({"type": "SFTP", "port": "2222"}, 2222),
        ({"type": "ftp"}, 21),
        ({"type": "FTP", "port": None}, 21),
    ],
)
def test_an_ftp_or_sftp_destination_always_carries_a_port(sandbox, cordial_requests, destination, port):
    sandbox.cordial.add_audience("vip")
    server = {"server": "files.example.com", "username": "u", "password": "p", "path": "/in"}
    job_id = _contacts(CordialHook(retry=FAST), destination={**server, **destination})
    assert job_id in sandbox.cordial.job_ids()
    ((_method, _url, _params, body),) = cordial_requests
    assert body["destination"]["port"] == port
    assert body["destination"]["type"] == destination["type"].upper()


@pytest.mark.parametrize(
    ("kind", "path", "sent"),
    [
        ("S3", "exports/", "exports"),
        ("S3", "/exports/daily//", "exports/daily"),
        ("GCS", "/exports/", "exports"),
        ("AZUREBLOB", "exports/", "exports"),
        ("SFTP", "/home/u/exports/", "/home/u/exports"),
        ("SFTP", "exports/", "exports"),
        ("FTP", "/", "/"),
    ],
)
def test_a_path_is_sent_as_the_seed_recommends(kind, path, sent):
    from airflow_provider_exports.hooks.cordial import check_destination, delivered_key

    required = {
        "S3": {"aws_bucket": "b", "aws_region": "r"},
        "GCS": {"gcs_bucket": "b"},
        "AZUREBLOB": {"account": "a", "container": "c"},
        "SFTP": {"server": "s", "username": "u"},
        "FTP": {"server": "s", "username": "u"},
    }[kind]
    destination = check_destination({"type": kind, "path": path, **required})
    assert destination["path"] == sent
    assert delivered_key(destination["path"], "t.csv") == f"{sent}/t.csv"


@pytest.mark.parametrize(
    ("destination", "field", "allowed"),
    [
        ({"type": "S3", "aws_bucket": "b", "aws_region": "r", "path": "/"}, "destination.path", "key prefix"),
        ({"type": "GCS", "gcs_bucket": "b", "path": "//"}, "destination.path", "names no folder"),
        ({"type": "SFTP", "server": "s", "username": "u", "path": "/", "port": 0}, "destination.port", "1 to 65535"),
        ({"type": "FTP", "server": "s", "username": "u", "path": "/", "port": "ftp"}, "destination.port", "port"),
        ({"type": "Dropbox"}, "destination.type", "AWS, S3, GCS, FTP, SFTP, AZUREBLOB"),
        ({"type": None}, "destination.type", "either case"),
    ],
)
def test_a_bad_destination_is_refused_before_any_request(sandbox, destination, field, allowed):
    with pytest.raises(ExportConfigError, match=allowed) as err:
        _contacts(CordialHook(retry=FAST), destination=destination)
    assert err.value.field == field
    assert sandbox.cordial.requests == []


# -- times[start][gte]: the documented example's format, the exact window filtered here ------------


def test_the_start_filter_is_the_day_before_in_the_documented_format(sandbox, cordial_requests):
    from airflow_provider_exports.hooks.cordial import jobs_since_filter

    # the day before (4 March), moved back to a day of the month <= its month (see the next test)
    assert jobs_since_filter(datetime(2026, 3, 5, 0, 30, tzinfo=timezone.utc)) == "03-03-2026"
    assert jobs_since_filter(datetime(2026, 12, 6, 0, 30, tzinfo=timezone.utc)) == "12-05-2026"
    assert jobs_since_filter(datetime(2026, 1, 1, 23, 0, tzinfo=timezone.utc)) == "12-12-2025"
    # a start given in another zone is its UTC day's
    from zoneinfo import ZoneInfo

    assert jobs_since_filter(datetime(2026, 11, 5, 20, 0, tzinfo=ZoneInfo("America/Los_Angeles"))) == "11-05-2026"
    CordialHook(retry=FAST).find_jobs_by_name("x", started_since=datetime(2026, 3, 5, 0, 30, tzinfo=timezone.utc))
    filters = [params.get("times[start][gte]") for _m, _u, params, _b in cordial_requests]
    assert filters == [None, None, None, "03-03-2026"]


def test_the_start_filter_begins_before_the_window_whichever_way_the_day_is_read():
    """Vendor is silent on the order of the example's `01-01-2018`: read month first or day first
    (PHP's strtotime reads dashed dates day first), the day sent is never after the day before the
    window, so no job of the window (one this run created) can be filtered out."""
    from datetime import date, timedelta

    from airflow_provider_exports.hooks.cordial import jobs_since_filter

    for offset in range(2 * 366):
        since = datetime(2027, 1, 1, 6, tzinfo=timezone.utc) + timedelta(days=offset)
        month, day, year = (int(part) for part in jobs_since_filter(since).split("-"))
        day_before = since.date() - timedelta(days=1)
        for read in (date(year, month, day), date(year, day, month)):
            assert read <= day_before, (since, read)
        assert (day_before - date(year, month, day)).days < 31


def _done_job(sandbox, hook, name: str = "weekly-trends") -> tuple[str, datetime]:
    sandbox.cordial.add_audience("vip")
    sandbox.cordial.job_reads = 1  # Done, with its start time, at the first read
    job_id = _create(hook, name=name)
    start = datetime.fromisoformat(hook.get_job(job_id)["times"]["start"])
    return job_id, start


def test_a_job_started_just_before_the_exact_start_is_not_taken(sandbox):
    from datetime import timedelta

    hook = CordialHook(retry=FAST)
    job_id, start = _done_job(sandbox, hook)
    # Cordial's day filter lists it (its day began before it): the exact window drops it
    day = start.strftime("%m-%d-%Y")
    assert [j["_id"] for j in hook.list_jobs(times={"start][gte": day})] == [job_id]
    assert hook.find_jobs_by_name("weekly-trends", started_since=start + timedelta(seconds=1)) == []
    assert [j["_id"] for j in hook.find_jobs_by_name("weekly-trends", started_since=start)] == [job_id]


@pytest.mark.parametrize("zone", ["UTC", "Pacific/Kiritimati", "Etc/GMT+12", "America/Los_Angeles"])
def test_a_job_of_the_window_is_found_in_whatever_zone_cordial_reads_the_day(sandbox, zone):
    """Vendor is silent on the filter's time zone: the day sent begins before the window in any."""
    from datetime import timedelta

    sandbox.cordial.account_timezone = zone
    hook = CordialHook(retry=FAST)
    job_id, start = _done_job(sandbox, hook)
    found = hook.find_jobs_by_name("weekly-trends", started_since=start - timedelta(seconds=1))
    assert [j["_id"] for j in found] == [job_id]


@pytest.mark.parametrize(
    ("record", "named"),
    [([{"status": "Done"}], "it is not an object"), ({"status": "Done", "result": "12 records"}, "result is not an object")],
)
def test_a_job_record_not_as_documented_names_the_field(sandbox, record, named):
    """Over HTTP from the sandbox: the read, the poke (a sensor's, a trigger's) and the jobs list fail
    naming what the record got wrong, not an AttributeError inside them."""
    job_id = "548817d0367df1ef518b4567"
    sandbox.cordial.faults.answer(f"/v2/jobs/{job_id}", times=None, json=record)
    sandbox.cordial.faults.answer("/v2/jobs", json=[{"_id": job_id, "times": "today"}], method="GET")
    hook = CordialHook(retry=FAST)
    with pytest.raises(VendorAPIError, match=f"the job record is not as documented: {named}"):
        hook.get_job(job_id)
    with pytest.raises(VendorAPIError, match=named):
        asyncio.run(arun_poke(hook, poke_job(job_id)))
    with pytest.raises(VendorAPIError, match="times is not an object"):
        list(hook.list_jobs())
