"""The Cordial create-export operators: checks, destinations from connections, create-or-reattach, the wait.

Parse-time and run-time checks are called directly; everything that talks to Cordial runs in a real
``dag.test()`` against the sandbox, with every request the hook sends checked against Cordial's
Swagger (the ``cordial_requests`` fixture).
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone

import pytest
from airflow.sdk import DAG

from airflow_provider_exports.exceptions import ExportConfigError, ExportJobMayExist
from airflow_provider_exports.hooks.cordial import CordialHook
from airflow_provider_exports.operators.cordial import (
    CordialAzureBlobDestination,
    CordialCreateAudienceTrendsExportOperator,
    CordialCreateContactExportOperator,
    CordialFtpDestination,
    CordialGcsDestination,
    CordialS3Destination,
    CordialSftpDestination,
    CordialUIDestination,
    default_job_name,
)
from airflow_provider_exports_sandbox.testing import failed_tries

pytestmark = pytest.mark.usefixtures("cordial_requests")

LOGICAL_DATE = datetime(2026, 11, 22, tzinfo=timezone.utc)
DAG_ID = "cordial_operator_test"
KEY_ID, SECRET = "FAKE-OPERATOR-KEY-ID", "fake-operator-secret-for-tests-only"
SFTP_PASSWORD = "sftp-password-fedcba9876543210"
TRENDS = {
    "audiences": ["vip", "dormant-buyers"],
    "selected_timeframe_start": "{{ data_interval_start | ds }}",
    "selected_timeframe_end": "{{ macros.ds_add(data_interval_start | ds, 6) }}",
}


@pytest.fixture
def delivery(sandbox, s3, monkeypatch):
    """Cordial delivers into moto's S3 with the keys of the ``cordial_delivery`` AWS connection."""
    sandbox.cordial.s3_endpoint_url = s3.endpoint_url
    sandbox.cordial.job_seconds = 0.3
    sandbox.cordial.add_audience("vip")
    sandbox.cordial.add_audience("dormant-buyers", members=5)
    aws = {"conn_type": "aws", "login": KEY_ID, "password": SECRET, "extra": {"region_name": "us-east-1"}}
    monkeypatch.setenv("AIRFLOW_CONN_CORDIAL_DELIVERY", json.dumps(aws))
    sftp = {
        "conn_type": "sftp",
        "host": "sftp.example.com",
        "port": 2222,
        "login": "cordial",
        "password": SFTP_PASSWORD,
    }
    monkeypatch.setenv("AIRFLOW_CONN_PARTNER_SFTP", json.dumps(sftp))
    return s3


def s3_destination(s3, **overrides) -> CordialS3Destination:
    return CordialS3Destination(
        **{"bucket": s3.bucket, "path": "cordial/{{ ds }}", "aws_conn_id": "cordial_delivery", **overrides}
    )


def one_task_dag(operator_class, **kwargs) -> DAG:
    with DAG(DAG_ID, schedule="@daily", start_date=LOGICAL_DATE, catchup=False) as dag:
        operator_class(task_id="export", poll_interval=0.2, **kwargs)
    return dag


def states(run) -> dict[str, str]:
    return {ti.task_id: ti.state for ti in run.get_task_instances()}


def xcom(run, key: str = "return_value"):
    return run.get_task_instance("export").xcom_pull(task_ids="export", key=key)


def posts(sandbox) -> list:
    return sandbox.cordial.requests_to("/v2/*export*", method="POST")


# -- parse time: literal values are checked when the DAG is parsed ------------------------------


def trends(**overrides) -> CordialCreateAudienceTrendsExportOperator:
    kwargs = {
        "task_id": "trends",
        "audiences": ["vip"],
        "selected_timeframe_start": "2026-11-16",
        "selected_timeframe_end": "2026-11-22",
        "destination": CordialUIDestination(),
        **overrides,
    }
    return CordialCreateAudienceTrendsExportOperator(**kwargs)


def contacts(**overrides) -> CordialCreateContactExportOperator:
    kwargs = {
        "task_id": "contacts",
        "fields": ["email"],
        "account_id": 1234,
        "destination": CordialUIDestination(),
        **overrides,
    }
    return CordialCreateContactExportOperator(**kwargs)


@pytest.mark.parametrize(
    ("make", "overrides", "field", "allowed"),
    [
        (trends, {"name": "weekly trends!"}, "name", "letters, numbers and dashes"),
        (trends, {"audiences": []}, "audiences", "at least one audience name"),
        (trends, {"audiences": "vip"}, "audiences", "a list"),
        (trends, {"selected_timeframe_start": "16/11/2026"}, "selected_timeframe_start", "ISO-8601 date"),
        (trends, {"selected_timeframe_end": "next week"}, "selected_timeframe_end", "ISO-8601 date"),
        (
            trends,
            {"selected_timeframe_end": "2026-11-15"},
            "selected_timeframe_end",
            "before selected_timeframe_start",
        ),
        (
            trends,
            {"destination": {"type": "S3", "aws_secret_access_key": "x"}},
            "destination",
            "never from a literal",
        ),
        (contacts, {"fields": []}, "fields", "at least one contact field"),
        (contacts, {"account_id": "acme"}, "account_id", "positive integer"),
        (contacts, {"lists": ["newsletter"]}, "lists", "integers"),
        (contacts, {"export_type": "xml"}, "export_type", "csv or json"),
        (contacts, {"compress": "yes"}, "compress", "True or False"),
        (contacts, {"show_header": None}, "show_header", "True or False"),
    ],
)
def test_bad_literal_input_fails_when_the_dag_is_parsed(make, overrides, field, allowed):
    with pytest.raises(ExportConfigError, match=allowed) as err:
        make(**overrides)
    assert err.value.field == field
    assert str(err.value).startswith(f"{field}: ")


@pytest.mark.parametrize(
    ("build", "field", "allowed"),
    [
        (lambda: CordialS3Destination(bucket="My_Bucket", path="x"), "destination.bucket", "S3 bucket name"),
        (lambda: CordialS3Destination(bucket="lake", path=""), "destination.path", "is required"),
        (
            lambda: CordialSftpDestination(sftp_conn_id="", path="/in"),
            "destination.sftp_conn_id",
            "is required",
        ),
        (lambda: CordialFtpDestination(ftp_conn_id="ftp", path=" "), "destination.path", "is required"),
        (lambda: CordialGcsDestination(bucket="", path="x"), "destination.bucket", "is required"),
        (
            lambda: CordialAzureBlobDestination(account="a", container="", path="x"),
            "destination.container",
            "is required",
        ),
    ],
)
def test_bad_destination_fields_fail_when_the_dag_is_parsed(build, field, allowed):
    with pytest.raises(ExportConfigError, match=allowed) as err:
        build()
    assert err.value.field == field


def test_templates_are_left_for_run_time_and_nothing_is_requested(sandbox):
    trends(
        name="{{ params.name }}",
        audiences="{{ params.audiences }}",
        selected_timeframe_start="{{ ds }}",
        selected_timeframe_end="{{ ds }}",
        destination=CordialS3Destination(bucket="{{ var.value.bucket }}", path="{{ ds }}"),
    )
    contacts(
        fields="{{ params.fields }}", account_id="{{ var.value.cordial_account }}", lists="{{ params.lists }}"
    )
    assert sandbox.cordial.requests == []


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"selected_timeframe_start": "{{ params.start }}"}, "selected_timeframe_start"),
        ({"destination": CordialS3Destination(bucket="{{ params.bucket }}", path="x")}, "destination.bucket"),
        ({"name": "{{ params.name }}"}, "name"),
    ],
)
def test_rendered_values_are_checked_before_any_request(sandbox, overrides, field):
    op = trends(**{"name": "given-name", **overrides})
    op.render_template_fields({"params": {"start": "yesterday", "bucket": "Not A Bucket", "name": "a b"}})
    with pytest.raises(ExportConfigError) as err:
        op.find_job({})
    assert err.value.field == field
    assert sandbox.cordial.requests == []


def test_the_default_name_is_one_per_run_in_letters_digits_and_dashes():
    from types import SimpleNamespace

    ti = SimpleNamespace(dag_id="daily.exports_v2", task_id="group.trends", map_index=-1)
    run = SimpleNamespace(logical_date=LOGICAL_DATE, run_id="scheduled__x")
    assert default_job_name({"ti": ti, "dag_run": run}) == "daily-exports-v2-group-trends-20261122T000000Z"
    manual = SimpleNamespace(logical_date=None, run_id="manual__2026-11-22T10:00:00+00:00")
    mapped = SimpleNamespace(dag_id="d" * 120, task_id="t", map_index=3)
    name = default_job_name({"ti": mapped, "dag_run": manual})
    assert (
        len(name) == 100
        and name.startswith("ddd")
        and name != default_job_name({"ti": ti, "dag_run": manual})
    )


# -- destinations from connections -------------------------------------------------------------


def test_s3_keys_come_from_the_aws_connection_masked_at_once(delivery, monkeypatch):
    from airflow.providers.common.compat import sdk

    masked = []
    monkeypatch.setattr(sdk, "mask_secret", masked.append, raising=False)
    destination = s3_destination(delivery, path="cordial/trends", region=None)
    assert destination.request() == {
        "type": "S3",
        "aws_bucket": delivery.bucket,
        "path": "cordial/trends",
        "aws_access_key_id": KEY_ID,
        "aws_secret_access_key": SECRET,
        "aws_region": "us-east-1",  # the connection's region_name
    }
    assert KEY_ID in masked and SECRET in masked
    shown = repr(destination) + json.dumps(destination.reference())
    assert KEY_ID not in shown and SECRET not in shown


def test_s3_without_a_connection_is_cordials_iam_role(sandbox):
    assert CordialS3Destination(bucket="lake", path="p", region="eu-west-1").request() == {
        "type": "S3",
        "aws_bucket": "lake",
        "path": "p",
        "aws_region": "eu-west-1",
    }
    with pytest.raises(ExportConfigError, match="region") as err:
        CordialS3Destination(bucket="lake", path="p").request()
    assert err.value.field == "destination.region"


@pytest.mark.parametrize(
    ("conn", "problem"),
    [
        ({"conn_type": "aws", "extra": {"region_name": "us-east-1"}}, "no access key ID and secret"),
        (
            {"conn_type": "aws", "login": "k", "password": "s", "extra": {"aws_session_token": "t"}},
            "temporary credentials",
        ),
    ],
)
def test_s3_connections_cordial_cannot_use_are_refused(sandbox, monkeypatch, conn, problem):
    monkeypatch.setenv("AIRFLOW_CONN_ODD_AWS", json.dumps(conn))
    with pytest.raises(ExportConfigError, match=problem) as err:
        CordialS3Destination(bucket="lake", path="p", aws_conn_id="odd_aws").request()
    assert err.value.field == "destination.aws_conn_id"


def test_sftp_and_ftp_come_from_their_connections(delivery, monkeypatch):
    from airflow.providers.common.compat import sdk

    masked = []
    monkeypatch.setattr(sdk, "mask_secret", masked.append, raising=False)
    assert CordialSftpDestination(sftp_conn_id="partner_sftp", path="/in").request() == {
        "type": "SFTP",
        "server": "sftp.example.com",
        "port": 2222,
        "username": "cordial",
        "password": SFTP_PASSWORD,
        "path": "/in",
    }
    assert SFTP_PASSWORD in masked
    with_key = CordialSftpDestination(
        sftp_conn_id="partner_sftp", path="/in", saved_key="partner-key"
    ).request()
    assert "password" not in with_key and with_key["savedKey"] == "partner-key"
    assert CordialFtpDestination(ftp_conn_id="partner_sftp", path="/in").request()["type"] == "FTP"
    monkeypatch.setenv(
        "AIRFLOW_CONN_NO_HOST", json.dumps({"conn_type": "ftp", "login": "u", "password": "p"})
    )
    with pytest.raises(ExportConfigError, match="has no host") as err:
        CordialFtpDestination(ftp_conn_id="no_host", path="/in").request()
    assert err.value.field == "destination.ftp_conn_id"


# -- create, push the job id, wait --------------------------------------------------------------


@pytest.mark.parametrize("deferrable", [False, True], ids=["in-the-worker", "deferred"])
def test_creates_pushes_the_job_id_and_waits(delivery, sandbox, run_dag, cordial_requests, deferrable):
    sandbox.cordial.job_reads = 3  # Scheduled, Processing, then Done at the third poke
    dag = one_task_dag(
        CordialCreateAudienceTrendsExportOperator,
        destination=s3_destination(delivery),
        deferrable=deferrable,
        **TRENDS,
    )
    run = run_dag(dag, logical_date=LOGICAL_DATE)
    assert run.state == "success", states(run)
    name = "cordial-operator-test-export-20261122T000000Z"
    (job_id,) = sandbox.cordial.jobs_named(name)
    assert xcom(run, "job_id") == job_id
    assert xcom(run) == {
        "vendor": "Cordial",
        "job_id": job_id,
        "name": name,
        "export": "audience_trends",
        "destination": {
            "type": "S3",
            "bucket": delivery.bucket,
            "path": "cordial/2026-11-22",
            "region": None,
        },
        "export_type": "csv",
        "compress": False,
        "show_header": True,
        "file_name": f"{name}.csv",
    }
    assert delivery.keys() == [f"cordial/2026-11-22/{name}.csv"]
    (body,) = [b for m, _u, _p, b in cordial_requests if m == "POST"]
    assert body["selected_timeframe_start"] == "2026-11-21" and body["selected_timeframe_end"] == "2026-11-27"
    assert (body["destination"]["aws_access_key_id"], body["destination"]["aws_secret_access_key"]) == (
        KEY_ID,
        SECRET,
    )
    assert len(sandbox.cordial.requests_to("/v2/jobs/*")) == 3  # it waited for Done


def test_contact_export_with_the_accounts_iam_role(delivery, sandbox, run_dag, cordial_requests):
    sandbox.cordial.s3_iam_role = True
    dag = one_task_dag(
        CordialCreateContactExportOperator,
        fields=["email", "first_name"],
        account_id="{{ var.value.get('cordial_account', 1234) }}",
        audience_key="dormant-buyers",
        export_type="json",
        compress=True,
        destination=CordialS3Destination(bucket=delivery.bucket, path="members", region="us-east-1"),
    )
    run = run_dag(dag, logical_date=LOGICAL_DATE)
    assert run.state == "success", states(run)
    assert xcom(run)["file_name"].endswith(".json.gz") and xcom(run)["export"] == "contacts"
    (body,) = [b for m, _u, _p, b in cordial_requests if m == "POST"]
    assert "aws_access_key_id" not in body["destination"] and body["accountId"] == 1234


def test_a_failed_job_fails_the_task_with_its_result_and_is_not_retried(delivery, sandbox, run_dag, capfd):
    sandbox.cordial.fail_next_jobs(1)
    dag = one_task_dag(
        CordialCreateAudienceTrendsExportOperator, destination=s3_destination(delivery), retries=2, **TRENDS
    )
    run = run_dag(dag, logical_date=LOGICAL_DATE)
    assert states(run) == {"export": "failed"}  # at once: a failed job stays failed
    log = "".join(capfd.readouterr())
    assert "ended with status Failed" in log and "totalRecords=0" in log and "error=1" in log
    assert len(posts(sandbox)) == 1


def test_a_406_fails_with_cordials_message_and_error_key(delivery, sandbox, run_dag, capfd):
    sandbox.cordial.add_audience("no-trends", trends_enabled=False)
    dag = one_task_dag(
        CordialCreateAudienceTrendsExportOperator,
        destination=s3_destination(delivery),
        **{**TRENDS, "audiences": ["no-trends"]},
    )
    run = run_dag(dag, logical_date=LOGICAL_DATE)
    assert states(run) == {"export": "failed"}
    log = "".join(capfd.readouterr())
    assert "HTTP 406 (GENERIC_ERROR_KEY): For Audience 'no-trends' analytics disabled." in log


# -- never a second job -------------------------------------------------------------------------


def test_a_retry_after_the_worker_died_past_the_post_reattaches(
    delivery, sandbox, run_dag, monkeypatch, capfd
):
    real_create = CordialHook.create_job

    def create_then_die(self, path, body):
        real_create(self, path, body)
        raise SystemExit(137)  # the worker is killed right after Cordial took the request

    monkeypatch.setattr(CordialHook, "create_job", create_then_die)
    dag = one_task_dag(
        CordialCreateAudienceTrendsExportOperator,
        destination=s3_destination(delivery),
        retries=1,
        retry_delay=0,
        **TRENDS,
    )
    run = run_dag(dag, logical_date=LOGICAL_DATE)
    assert run.state == "success", states(run)
    assert run.get_task_instance("export").try_number == 2
    name = "cordial-operator-test-export-20261122T000000Z"
    assert len(sandbox.cordial.jobs_named(name)) == 1 and len(posts(sandbox)) == 1
    assert xcom(run)["job_id"] == sandbox.cordial.jobs_named(name)[0]
    assert "Reattaching to Cordial job" in "".join(capfd.readouterr())


def test_sigterm_stops_the_wait_in_the_worker_at_once_and_the_retry_reattaches(
    delivery, sandbox, run_dag, sigterm_when
):
    """Airflow 3 calls ``on_kill`` on SIGTERM and lets the task go on: the wait in the worker would
    poll on until the job ends, past the supervisor's 5 s grace. It stops at once instead; Cordial
    cannot cancel a job, so the retry reattaches to it and waits again: one job."""
    sandbox.cordial.job_seconds = 6
    ended_at: list[float] = []
    dag = one_task_dag(
        CordialCreateAudienceTrendsExportOperator,
        destination=s3_destination(delivery),
        retries=1,
        retry_delay=0,
        on_retry_callback=lambda context: ended_at.append(time.monotonic()),
        **TRENDS,
    )
    sent_at = sigterm_when(lambda: sandbox.cordial.requests_to("/v2/jobs/*", "GET"))

    run = run_dag(dag, logical_date=LOGICAL_DATE)

    assert sent_at and ended_at and ended_at[0] - sent_at[0] < 5.0
    (stopped,) = failed_tries(run)
    assert stopped.try_number == 1 and "stopped on SIGTERM" in stopped.error
    assert run.state == "success"
    assert len(posts(sandbox)) == 1


@pytest.mark.parametrize("answer", ["empty 200", "connection lost"])
def test_an_answer_without_the_job_finds_it_by_name(delivery, sandbox, run_dag, answer):
    if answer == "empty 200":
        sandbox.cordial.answer_creates_empty(1)
    else:
        sandbox.cordial.faults.drop_connection("/v2/audiencetrendsexport", after_bytes=0, method="POST")
    dag = one_task_dag(
        CordialCreateAudienceTrendsExportOperator, destination=s3_destination(delivery), **TRENDS
    )
    run = run_dag(dag, logical_date=LOGICAL_DATE)
    assert run.state == "success", states(run)
    (job_id,) = sandbox.cordial.jobs_named("cordial-operator-test-export-20261122T000000Z")
    assert xcom(run)["job_id"] == job_id and len(posts(sandbox)) == 1


def test_an_answer_without_the_job_and_no_job_by_name_fails_without_retry(delivery, sandbox, run_dag, capfd):
    sandbox.cordial.faults.server_error("/v2/audiencetrendsexport", status=502, method="POST")
    dag = one_task_dag(
        CordialCreateAudienceTrendsExportOperator, destination=s3_destination(delivery), retries=2, **TRENDS
    )
    dag.get_task("export").uncertain_lookup_delays = (0.0, 0.1)
    run = run_dag(dag, logical_date=LOGICAL_DATE)
    assert states(run) == {"export": "failed"}
    log = "".join(capfd.readouterr())
    assert ExportJobMayExist.__name__ in log and "may have created the export job" in log
    assert "no job of that name was found" in log
    assert len(posts(sandbox)) == 1


# -- the wait's deadline ------------------------------------------------------------------------


@pytest.mark.parametrize("deferrable", [False, True], ids=["in-the-worker", "deferred"])
def test_the_wait_ends_at_its_timeout_while_calls_are_retried(delivery, sandbox, run_dag, capfd, deferrable):
    # every poke meets a 429 asking for 30 s: no retry wait may carry the wait past its timeout
    sandbox.cordial.faults.rate_limit("/v2/jobs/*", times=None, retry_after="30")
    dag = one_task_dag(
        CordialCreateAudienceTrendsExportOperator,
        destination=s3_destination(delivery),
        timeout=2,
        deferrable=deferrable,
        **TRENDS,
    )
    started = time.monotonic()
    run = run_dag(dag, logical_date=LOGICAL_DATE)
    took = time.monotonic() - started
    assert states(run) == {"export": "failed"}
    assert "JobWaitTimeout" in "".join(capfd.readouterr())
    assert took < 2 + 15  # the run's own overhead (dag.test, the DB) on a busy machine, not 30 s waits
    assert len(posts(sandbox)) == 1


# -- issue 18: as Cordial's documents say ----------------------------------------------------------


@pytest.mark.parametrize("answer", ["404 RecordNotFound", "[]"])
def test_a_create_on_an_account_without_jobs_creates_one_job(delivery, sandbox, run_dag, answer):
    """find_job runs before every create: C-V2 answers an empty jobs list with 404 RecordNotFound."""
    if answer == "[]":
        sandbox.cordial.faults.answer("/v2/jobs", times=None, json=[], method="GET")
    dag = one_task_dag(
        CordialCreateAudienceTrendsExportOperator, destination=s3_destination(delivery), **TRENDS
    )
    run = run_dag(dag, logical_date=LOGICAL_DATE)
    assert run.state == "success", states(run)
    assert len(posts(sandbox)) == 1
    listed = {r.status for r in sandbox.cordial.requests_to("/v2/jobs", "GET")}
    assert listed == {404 if answer.startswith("404") else 200}


@pytest.mark.parametrize(
    ("destination_class", "conn_type", "port"),
    [(CordialSftpDestination, "sftp", 22), (CordialFtpDestination, "ftp", 21)],
)
def test_a_connection_without_a_port_sends_the_protocols_port(
    delivery, sandbox, run_dag, monkeypatch, cordial_requests, destination_class, conn_type, port
):
    """C-ATE: destination.port is "required if type is FTP or SFTP" (the sandbox refuses it missing)."""
    conn = {"conn_type": conn_type, "host": "files.example.com", "login": "cordial", "password": "pw-x1"}
    monkeypatch.setenv("AIRFLOW_CONN_NO_PORT", json.dumps(conn))
    key = "sftp_conn_id" if conn_type == "sftp" else "ftp_conn_id"
    destination = destination_class(**{key: "no_port", "path": "/outbound/"})
    assert destination.request()["port"] == port
    dag = one_task_dag(CordialCreateAudienceTrendsExportOperator, destination=destination, **TRENDS)
    run = run_dag(dag, logical_date=LOGICAL_DATE)
    assert run.state == "success", states(run)
    (body,) = [b for m, _u, _p, b in cordial_requests if m == "POST"]
    assert (body["destination"]["type"], body["destination"]["port"]) == (conn_type.upper(), port)
    assert body["destination"]["path"] == "/outbound"
    assert xcom(run)["destination"]["path"] == "/outbound"


def test_an_s3_path_with_slashes_lands_where_the_reference_says(delivery, sandbox, run_dag, cordial_requests):
    dag = one_task_dag(
        CordialCreateAudienceTrendsExportOperator,
        destination=s3_destination(delivery, path="/cordial/{{ ds }}/"),
        **TRENDS,
    )
    run = run_dag(dag, logical_date=LOGICAL_DATE)
    assert run.state == "success", states(run)
    name = "cordial-operator-test-export-20261122T000000Z"
    (body,) = [b for m, _u, _p, b in cordial_requests if m == "POST"]
    assert body["destination"]["path"] == "cordial/2026-11-22"
    assert xcom(run)["destination"]["path"] == "cordial/2026-11-22"
    assert delivery.keys() == [f"cordial/2026-11-22/{name}.csv"]


@pytest.mark.parametrize(
    ("build", "field", "allowed"),
    [
        (lambda: CordialS3Destination(bucket="lake", path="/"), "destination.path", "key prefix"),
        (lambda: CordialGcsDestination(bucket="lake", path="//"), "destination.path", "names no folder"),
    ],
)
def test_a_path_that_names_no_folder_fails_when_the_dag_is_parsed(build, field, allowed):
    with pytest.raises(ExportConfigError, match=allowed) as err:
        build()
    assert err.value.field == field
