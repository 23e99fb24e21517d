"""run_window() and its macro in real DAG runs (``dag.test()``): with a data interval, and without a
logical date (Airflow 3's manual runs), from ``run_after`` and the last successful run."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from airflow.sdk import DAG, task

from airflow_provider_exports.utils.windows import MACROS, RunWindow, run_window

LOGICAL_DATE = datetime(2026, 11, 22, tzinfo=timezone.utc)
SEEN: list[tuple[RunWindow, str]] = []


def window_dag(dag_id: str, fail: bool = False) -> DAG:
    """One task that records run_window(context) and what ``{{ run_window() }}`` renders to."""
    with DAG(
        dag_id, schedule="@daily", start_date=LOGICAL_DATE, catchup=False, user_defined_macros=MACROS
    ) as dag:

        @task(templates_dict={"rendered": "{{ run_window().start }}|{{ run_window().ds }}"})
        def record(templates_dict=None, **context):
            SEEN.append((run_window(context), templates_dict["rendered"]))
            if fail:
                raise RuntimeError("this run fails")

        record()
    return dag


@pytest.fixture(autouse=True)
def _fresh():
    SEEN.clear()


def test_a_run_with_a_logical_date_keeps_its_data_interval(run_dag, request):
    run = run_dag(window_dag(request.node.name), logical_date=LOGICAL_DATE)
    assert run.state == "success"
    ((window, rendered),) = SEEN
    assert window == RunWindow(
        start=run.data_interval_start, end=run.data_interval_end, ds=f"{LOGICAL_DATE:%Y-%m-%d}"
    )
    assert rendered == f"{run.data_interval_start}|2026-11-22"


def test_a_first_run_without_a_logical_date_runs_from_ever_to_run_after(run_dag, request):
    run_after = LOGICAL_DATE + timedelta(days=3, hours=5)
    run = run_dag(window_dag(request.node.name), logical_date=None, run_after=run_after)
    assert run.state == "success" and run.logical_date is None and run.data_interval_start is None
    ((window, rendered),) = SEEN
    assert window == RunWindow(start=None, end=run_after, ds="2026-11-25")
    assert rendered == "None|2026-11-25"


def test_without_a_logical_date_the_window_starts_where_the_last_successful_run_ended(run_dag, request):
    dag_id = request.node.name
    earlier = run_dag(window_dag(dag_id), logical_date=LOGICAL_DATE)
    failed = run_dag(window_dag(dag_id, fail=True), logical_date=LOGICAL_DATE + timedelta(days=1))
    assert (earlier.state, failed.state) == ("success", "failed")
    SEEN.clear()
    run_after = LOGICAL_DATE + timedelta(days=2, hours=1)
    run = run_dag(window_dag(dag_id), logical_date=None, run_after=run_after)
    assert run.state == "success"
    ((window, rendered),) = SEEN
    # the failed run in between does not count
    assert window == RunWindow(start=earlier.data_interval_end, end=run_after, ds="2026-11-24")
    assert rendered == f"{earlier.data_interval_end}|2026-11-24"
