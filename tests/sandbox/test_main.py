"""``python -m airflow_provider_exports_sandbox``: the ``publish-job`` verb against a running sandbox,
in a child process as a user runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from airflow_provider_exports_sandbox import Sandbox

EXPORT = "daily_loyalty_members"


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "airflow_provider_exports_sandbox", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


def newest(sandbox: Sandbox) -> str:
    return max(sandbox.sitecore._jobs.values(), key=lambda j: j.finished_at).execution_ref


def test_publish_job_finds_the_sandbox_through_the_connection_it_printed(
    sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    sandbox.sitecore.add_export(EXPORT)
    old = sandbox.sitecore.add_job(EXPORT)
    # the fixture exported AIRFLOW_CONN_SITECORE_CDP_DEFAULT, as a user's shell does after the sandbox printed it
    assert json.loads(os.environ["AIRFLOW_CONN_SITECORE_CDP_DEFAULT"])["extra"]["api_host"] == sandbox.sitecore.url
    done = cli("publish-job", "--rows", "5")
    assert done.returncode == 0, done.stderr
    ref = newest(sandbox)
    assert ref != old and done.stdout.startswith(f"Published job {ref} of {EXPORT} (finished ")
    assert sandbox.sitecore.expected_files(ref)[0][3] == 5


def test_publish_job_with_a_url_and_an_export(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    sandbox.sitecore.add_export("weekly_churn")
    monkeypatch.delenv("AIRFLOW_CONN_SITECORE_CDP_DEFAULT")
    done = cli("publish-job", "weekly_churn", "--url", sandbox.sitecore.url + "/")
    assert done.returncode == 0, done.stderr
    assert [j.definition.friendly_id for j in sandbox.sitecore._jobs.values()] == ["weekly_churn"]


def test_publish_job_says_what_is_wrong(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    sandbox.sitecore.add_export(EXPORT)
    unknown = cli("publish-job", "nightly")
    assert unknown.returncode == 1
    assert "400" in unknown.stderr and "'nightly' is not defined here; defined: daily_loyalty_members" in unknown.stderr
    monkeypatch.delenv("AIRFLOW_CONN_SITECORE_CDP_DEFAULT")
    nowhere = cli("publish-job")
    assert nowhere.returncode != 0 and "give --url" in nowhere.stderr
    closed = cli("publish-job", "--url", "http://127.0.0.1:9")
    assert closed.returncode == 1 and "no sandbox answered at http://127.0.0.1:9" in closed.stderr
    assert sandbox.sitecore._jobs == {}
