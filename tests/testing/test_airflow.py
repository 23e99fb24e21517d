"""The kit's Airflow helpers: the logical date it picks, DAG files by path, a database it did not make."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from airflow_provider_exports_sandbox.testing import _airflow
from airflow_provider_exports_sandbox.testing._airflow import (
    AirflowNotConfigured,
    init_metadata_db,
    load_dag_file,
    scheduled_logical_date,
)

NOW = datetime.now(timezone.utc)
MIDNIGHT = NOW.replace(hour=0, minute=0, second=0, microsecond=0)


def _timetables():
    try:  # Airflow 3.2+
        from airflow.sdk import CronDataIntervalTimetable, CronTriggerTimetable
    except ImportError:  # Airflow 3.1
        from airflow.timetables.interval import CronDataIntervalTimetable
        from airflow.timetables.trigger import CronTriggerTimetable
    return CronTriggerTimetable, CronDataIntervalTimetable


def _dag(**kwargs):
    import pendulum
    from airflow.sdk import DAG

    return DAG("kit_dates", start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False, **kwargs)


def test_a_cron_trigger_dag_runs_on_its_latest_scheduled_date() -> None:
    # What Airflow 3 makes of "@daily" (outside unit-test mode): the latest run is today's, at midnight
    CronTriggerTimetable, _ = _timetables()
    assert (
        scheduled_logical_date(_dag(schedule=CronTriggerTimetable("0 0 * * *", timezone="UTC"))) == MIDNIGHT
    )


def test_a_data_interval_schedule_runs_its_latest_complete_interval() -> None:
    _, CronDataIntervalTimetable = _timetables()
    dag = _dag(schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"))
    assert scheduled_logical_date(dag) == MIDNIGHT - timedelta(days=1)


def test_an_unscheduled_dag_runs_at_midnight_today() -> None:
    assert scheduled_logical_date(_dag(schedule=None)) == MIDNIGHT


def test_a_dag_file_that_fails_to_import_names_its_error(tmp_path: Path, airflow_db: Path) -> None:
    bad = tmp_path / "bad_dag.py"
    bad.write_text("from airflow.sdk import DAG\nraise RuntimeError('no such bucket configured')\n")
    with pytest.raises(ImportError, match="no such bucket configured"):
        load_dag_file(bad)


def test_a_file_with_two_dags_needs_a_dag_id(tmp_path: Path, airflow_db: Path) -> None:
    two = tmp_path / "two_dags.py"
    two.write_text(
        "from airflow.sdk import DAG\n"
        "with DAG('first', schedule=None):\n    pass\n"
        "with DAG('second', schedule=None):\n    pass\n"
    )
    with pytest.raises(ValueError, match=r"\['first', 'second'\]: pass dag_id="):
        load_dag_file(two)
    assert load_dag_file(two, "second").dag_id == "second"
    with pytest.raises(KeyError, match="no DAG 'third'"):
        load_dag_file(two, "third")
    with pytest.raises(FileNotFoundError):
        load_dag_file(tmp_path / "missing.py")


def test_never_touches_a_database_it_did_not_make(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(_airflow, "_home", tmp_path)  # Airflow's database is not in this home
    monkeypatch.setattr(_airflow, "_db_ready", False)
    with pytest.raises(AirflowNotConfigured, match="not the kit's private"):
        init_metadata_db()
    monkeypatch.setattr(_airflow, "_home", None)  # Airflow was imported before the kit ran
    with pytest.raises(AirflowNotConfigured, match=r"pytest -p airflow_provider_exports_sandbox\.testing"):
        init_metadata_db()
