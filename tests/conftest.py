"""Test session set-up: the opt-in test kit, and the short fixture names our tests use.

The kit (``airflow_provider_exports_sandbox.testing``, from the sandbox distribution) gives Airflow a
private home and metadata database before Airflow is imported and brings the sandbox, S3, warehouse
and DAG fixtures, all named ``exports_*``. The short names below are thin aliases kept for this suite only.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import pytest

from airflow_provider_exports_sandbox import specs
from airflow_provider_exports_sandbox.specs import CordialSwagger
from airflow_provider_exports_sandbox.testing._airflow import configure_airflow

# Now, not in the kit's pytest_configure: pytest imports the conftest.py files of the paths it is
# given before that hook runs, and some of ours import Airflow at module level.
configure_airflow()
pytest_plugins = ["airflow_provider_exports_sandbox.testing"]

REPO = Path(__file__).resolve().parents[1]
EXAMPLE_DAGS = REPO / "example_dags"
os.environ.setdefault("AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE", "False")
# This suite's own choice, as before the kit (a cron schedule gets data intervals); the kit leaves it off.
os.environ["AIRFLOW__CORE__UNIT_TEST_MODE"] = "True"


@pytest.fixture(scope="session", autouse=True)
def _one_execution_api_for_every_task():
    """One in-process execution API for every task ``dag.test()`` runs, as a deployment has one API
    server for all its tasks. Airflow builds a new one for each task, and its versioned routes are
    built at its first request: about 1.6 s a task on the floor's Airflow (3.1.0), two thirds of
    an example DAG's test there."""
    from airflow.sdk.execution_time import supervisor

    built = supervisor.in_process_api_server
    supervisor.in_process_api_server = functools.cache(built)
    yield
    supervisor.in_process_api_server = built


# -- short names for the kit's fixtures (this suite only) ----------------------------------------


@pytest.fixture(scope="session")
def airflow_db(exports_airflow_db):
    return exports_airflow_db


@pytest.fixture
def sandbox(exports_sandbox):
    return exports_sandbox


@pytest.fixture(scope="session")
def moto_s3(exports_moto):
    return exports_moto


@pytest.fixture
def s3(exports_s3):
    return exports_s3


@pytest.fixture(scope="session")
def postgres(exports_postgres):
    return exports_postgres


@pytest.fixture
def warehouse(exports_warehouse) -> Path:
    """The SQLite warehouse's file, behind the ``warehouse`` connection."""
    return exports_warehouse.path


@pytest.fixture
def load_example_dag(exports_load_dag):
    """``load(file_name, dag_id)``: an example DAG from ``example_dags/``."""
    return lambda file_name, dag_id: exports_load_dag(EXAMPLE_DAGS / file_name, dag_id)


@pytest.fixture
def run_dag(exports_run_dag):
    return exports_run_dag


@pytest.fixture(autouse=True)
def _fresh_token_cache():
    """Each test starts without cached tokens, so token counts are the test's own."""
    from airflow_provider_exports.hooks._auth import TOKENS

    TOKENS.clear()
    yield
    TOKENS.clear()


# -- Cordial's Swagger: what the sandbox answers and what our hook sends are both checked against it
# (the sandbox's one validator of it, airflow_provider_exports_sandbox.specs)


@pytest.fixture
def cordial_job(sandbox):
    """Makes audience-trends jobs of the audience ``vip`` at the Cordial sandbox: ``make(seconds,
    **overrides)`` returns the new job's id; the job stays Scheduled, then Processing, ``seconds`` each."""
    from airflow_provider_exports.hooks.cordial import CordialHook

    sandbox.cordial.add_audience("vip")

    def make(seconds: float = 0.2, **overrides) -> str:
        sandbox.cordial.job_seconds = seconds
        arguments = {
            "name": "weekly-trends",
            "audiences": ["vip"],
            "selected_timeframe_start": "2026-11-16",
            "selected_timeframe_end": "2026-11-22",
            "destination": {"type": "AWS"},
            **overrides,
        }
        return CordialHook().create_audience_trends_export(**arguments)

    return make


@pytest.fixture(scope="session")
def cordial_swagger() -> CordialSwagger:
    swagger = specs.cordial_swagger()
    if swagger is None:
        pytest.skip(specs.missing_reason(specs.CORDIAL_SPEC))
    return swagger


@pytest.fixture
def cordial_requests(cordial_swagger, monkeypatch):
    """Every request a Cordial hook sends in the test, sync or async; each must satisfy the Swagger.

    A spy on the HTTP client (the real request is sent): the test fails at teardown with what the spec
    refuses, so a test that uses this fixture proves every request it caused is a valid one.
    """
    from airflow_provider_exports.hooks._http import HttpClient

    sent: list[tuple[str, str, dict | None, object]] = []
    real_request, real_arequest = HttpClient.request, HttpClient.arequest

    def note(client, method, url, kwargs) -> None:
        if client.vendor == "Cordial":
            sent.append((method.upper(), str(url), kwargs.get("params"), kwargs.get("json")))

    def request(self, method, url, **kwargs):
        note(self, method, url, kwargs)
        return real_request(self, method, url, **kwargs)

    async def arequest(self, method, url, **kwargs):
        note(self, method, url, kwargs)
        return await real_arequest(self, method, url, **kwargs)

    monkeypatch.setattr(HttpClient, "request", request)
    monkeypatch.setattr(HttpClient, "arequest", arequest)
    yield sent
    problems = [
        p
        for method, url, params, body in sent
        for p in cordial_swagger.request_problems(method, url, params, body)
    ]
    assert not problems, "requests Cordial's Swagger refuses:\n" + "\n".join(problems)


@pytest.fixture
def sigterm_when():
    """``sigterm_when(ready, then=None)`` sends this process SIGTERM, as Airflow's supervisor does to a
    task it stops, once ``ready()`` holds (polled, up to 60 s), then calls ``then()``; returns the
    ``time.monotonic()`` list it sent at (empty if ``ready`` never held). The SIGTERM handler is
    restored afterwards."""
    import signal
    import threading
    import time

    previous = signal.getsignal(signal.SIGTERM)
    sent_at: list[float] = []

    def arm(ready, then=None) -> list[float]:
        def watch() -> None:
            deadline = time.monotonic() + 60
            while not ready():
                if time.monotonic() > deadline:
                    return
                time.sleep(0.05)
            sent_at.append(time.monotonic())
            os.kill(os.getpid(), signal.SIGTERM)
            if then is not None:
                then()

        threading.Thread(target=watch, daemon=True).start()
        return sent_at

    yield arm
    signal.signal(signal.SIGTERM, previous)
