"""Airflow for offline DAG tests: a private home and metadata database, DAG files loaded by path,
and ``dag.test()`` on the logical date the scheduler would have run last, remembering the tries that
failed (their task, try number and exception) to say why a run failed.

Used by the pytest kit (:mod:`airflow_provider_exports_sandbox.testing`) and the demo. Airflow reads its home
and database settings once, when it is first imported, so :func:`configure_airflow` runs before that;
nothing here imports Airflow at import time.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pluggy

__all__ = [
    "AirflowNotConfigured",
    "FailedTry",
    "configure_airflow",
    "failed_tries",
    "init_metadata_db",
    "load_dag_file",
    "run_dag",
    "scheduled_logical_date",
]

_home: Path | None = None
_imported_first = False
_db_ready = False


class AirflowNotConfigured(RuntimeError):
    """Airflow was imported before the kit could give it a private home and database."""


def configure_airflow(home: Path | None = None) -> Path | None:
    """Point Airflow at a private home (a temp dir unless ``home`` is given) with its own SQLite
    metadata database; once per process. Returns the home, or None when Airflow was already
    imported: its settings are then left alone (and :func:`init_metadata_db` refuses to run)."""
    global _home, _imported_first
    if _home is not None or _imported_first:
        return _home
    if any(name == "airflow" or name.startswith("airflow.") for name in sys.modules):
        _imported_first = True
        return None
    if home is None:
        home = Path(tempfile.mkdtemp(prefix="exports-airflow-home-"))
    home.mkdir(parents=True, exist_ok=True)
    (home / "dags").mkdir(exist_ok=True)
    os.environ["AIRFLOW_HOME"] = str(home)
    os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{home / 'airflow.db'}"
    os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
    # Not UNIT_TEST_MODE: its settings change how a schedule is read ("@daily" gets data intervals),
    # and a DAG's tests should see what production sees.
    # The user's DAGs folder if they set one; load_dag_file's callers point it at the file's folder.
    os.environ.setdefault("AIRFLOW__CORE__DAGS_FOLDER", str(home / "dags"))
    _home = home
    return home


def remove_home() -> None:
    """Delete the temp home :func:`configure_airflow` made (end of the test session)."""
    if _home is not None and _home.name.startswith("exports-airflow-home-"):
        shutil.rmtree(_home, ignore_errors=True)


def init_metadata_db() -> Path:
    """Create Airflow's metadata tables in the private database (once per process); returns the home.

    Refuses any other database: the kit never creates or drops tables in a database it did not make.
    """
    global _db_ready
    if _home is None:
        raise AirflowNotConfigured(
            "Airflow was imported before airflow_provider_exports_sandbox.testing could give it a private "
            "home and metadata database. Load the kit with `pytest -p airflow_provider_exports_sandbox.testing`, "
            "or list it in `pytest_plugins` of the top-level conftest.py and import Airflow there only "
            "inside fixtures or tests."
        )
    from airflow import settings

    expected = f"sqlite:///{_home / 'airflow.db'}"
    if expected != settings.SQL_ALCHEMY_CONN:
        raise AirflowNotConfigured(
            f"Airflow's metadata database is {settings.SQL_ALCHEMY_CONN!r}, not the kit's private "
            f"{expected!r}: it was configured elsewhere, so the kit leaves it alone."
        )
    if not _db_ready:
        from airflow.utils import db

        db.initdb()  # a new file: creates the tables, drops nothing
        _db_ready = True
    return _home


def _airflow_3_2_plus() -> bool:
    from airflow import __version__
    from packaging.version import Version

    return Version(Version(__version__).base_version) >= Version("3.2.0")


def _dagbag_module() -> Any:
    """Where ``DagBag`` and ``sync_bag_to_db`` live: moved to ``airflow.dag_processing`` in 3.2."""
    import importlib

    return importlib.import_module(
        "airflow.dag_processing.dagbag" if _airflow_3_2_plus() else "airflow.models.dagbag"
    )


def load_dag_file(path: str | os.PathLike[str], dag_id: str | None = None) -> Any:
    """Parse one DAG file as the DAG processor would and return its DAG (``dag_id`` names one when
    the file defines several). Import errors fail with the file's own traceback. Only that file is
    parsed, never the files beside it; its DAG is written to the metadata DB, where a plain
    ``dag.test()`` finds it."""
    file = Path(path).resolve()
    if not file.is_file():
        raise FileNotFoundError(f"DAG file {file} does not exist")
    bag = _dagbag_module().DagBag(dag_folder=str(file))
    if bag.import_errors:
        errors = "\n".join(f"{name}:\n{error}" for name, error in bag.import_errors.items())
        raise ImportError(f"DAG file {file} failed to import:\n{errors}")
    if dag_id is None:
        if len(bag.dags) != 1:
            raise ValueError(f"{file} defines the DAGs {sorted(bag.dags)}: pass dag_id= to choose one")
        dag_id = next(iter(bag.dags))
    if dag_id not in bag.dags:
        raise KeyError(f"{file} defines no DAG {dag_id!r}; it defines {sorted(bag.dags)}")
    dag = bag.dags[dag_id]
    init_metadata_db()
    _write_serialized(dag)
    return dag


def scheduled_logical_date(dag: Any, now: datetime | None = None) -> datetime:
    """The logical date of the run the scheduler would have started last for ``dag`` (its latest
    complete interval, as with ``catchup=False``); midnight UTC today for a DAG without a schedule.

    ``dag.test()`` without a logical date uses "now", which with a cron schedule (Airflow 3's
    ``CronTriggerTimetable``) makes ``data_interval_start`` now as well: a sensor waiting for a job
    that finished after it then never sees one that already exists.
    """
    now = now or datetime.now(timezone.utc)
    timetable = dag.timetable
    try:  # Airflow 3.2+: the DAG holds the SDK's timetable, the scheduler the core one
        from airflow.serialization.encoders import coerce_to_core_timetable

        timetable = coerce_to_core_timetable(timetable)
    except ImportError:
        pass
    if getattr(timetable, "periodic", False) and dag.start_date is not None:
        from airflow.timetables.base import TimeRestriction

        info = timetable.next_dagrun_info(
            last_automated_data_interval=None,
            restriction=TimeRestriction(earliest=dag.start_date, latest=None, catchup=False),
        )
        logical_date = info.logical_date if info is not None else None
        if logical_date is not None and logical_date <= now:
            return datetime.fromtimestamp(logical_date.timestamp(), timezone.utc)
    return now.astimezone(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)


def _write_serialized(dag: Any) -> None:
    """Write the DAG into the metadata DB, into the DAGs-folder bundle, as ``airflow dags test`` does:
    Airflow 3.1's ``dag.test()`` needs it there, and 3.2+ writes only what its DAGs folder holds."""
    from airflow.dag_processing.bundles.manager import DagBundlesManager

    bag = _dagbag_module().DagBag(dag_folder=os.devnull, collect_dags=False)
    bag.bag_dag(dag)
    DagBundlesManager().sync_bundles_to_db()
    _dagbag_module().sync_bag_to_db(bag, "dags-folder", None)


def _in_dags_folder(dag: Any) -> bool:
    from airflow import settings

    try:
        Path(dag.fileloc).resolve().relative_to(Path(settings.DAGS_FOLDER).resolve())
    except (TypeError, ValueError):
        return False
    return True


def run_dag(dag: Any, **kwargs: Any) -> Any:
    """``dag.test(**kwargs)`` with ``logical_date`` defaulting to :func:`scheduled_logical_date`;
    returns the DagRun (:func:`failed_tries` says which tries of it failed, and why). A DAG built
    outside the DAGs folder (in a test, or loaded by :func:`load_dag_file`) is serialized first."""
    global _last_run
    init_metadata_db()
    kwargs.setdefault("logical_date", scheduled_logical_date(dag))
    if not _airflow_3_2_plus() or not _in_dags_folder(dag):
        _write_serialized(dag)
    _FAILURES.listen()
    _FAILURES.tries = []
    try:
        run = dag.test(**kwargs)
    finally:
        tries, _FAILURES.tries = _FAILURES.tries, None
    _last_run = (run.dag_id, run.run_id, tries)
    return run


@dataclass(frozen=True)
class FailedTry:
    """One failed try of a task in a run the kit made: the task, the try and its exception."""

    task_id: str
    map_index: int
    try_number: int
    tries: int
    error: str

    def __str__(self) -> str:
        mapped = f"[{self.map_index}]" if self.map_index >= 0 else ""
        return f"task {self.task_id}{mapped}, try {self.try_number} of {self.tries}: {self.error}"


def failed_tries(run: Any) -> list[FailedTry]:
    """The failed tries of ``run``, the last run :func:`run_dag` made (``[]`` for any other run)."""
    if _last_run is None or _last_run[:2] != (run.dag_id, run.run_id):
        return []
    return list(_last_run[2])


def explain_run_state(op: str, left: object, right: object) -> list[str] | None:
    """Why the last run's state is not the one a test compared it with (``assert run.state ==
    "success"``): its failed tries, for pytest's ``pytest_assertrepr_compare``; ``None`` otherwise."""
    if op != "==" or _last_run is None:
        return None
    state, wanted = (left, right) if _is_run_state(left) else (right, left)
    if not _is_run_state(state) or not isinstance(wanted, str) or state == wanted:
        return None
    dag_id, run_id, tries = _last_run
    lines = [f"{str(state)!r} == {str(wanted)!r}: the run {run_id} of {dag_id} is {state}, not {wanted}"]
    lines += [f"  {t}" for t in tries] or ["  (no task failed in it)"]
    return lines


def _is_run_state(value: object) -> bool:
    # Airflow's DagRunState (a str enum), wherever this Airflow version defines it.
    return isinstance(value, str) and type(value).__name__ == "DagRunState"


class _FailureListener:
    """An Airflow listener noting every failed try while :func:`run_dag` runs (``tries`` not None)."""

    hookimpl = pluggy.HookimplMarker("airflow")

    def __init__(self) -> None:
        self.tries: list[FailedTry] | None = None
        self._listening = False

    def listen(self) -> None:
        if not self._listening:
            from airflow.providers.common.compat.sdk import get_listener_manager

            get_listener_manager().add_listener(self)
            self._listening = True

    @hookimpl
    def on_task_instance_failed(self, previous_state: Any, task_instance: Any, error: Any) -> None:
        if self.tries is None:
            return
        text = f"{type(error).__name__}: {error}" if isinstance(error, BaseException) else str(error)
        map_index = getattr(task_instance, "map_index", None)
        self.tries.append(
            FailedTry(
                task_id=str(task_instance.task_id),
                map_index=-1 if map_index is None else int(map_index),
                try_number=int(task_instance.try_number),
                tries=int(getattr(task_instance, "max_tries", 0) or 0) + 1,
                error=text,
            )
        )


_FAILURES = _FailureListener()
#: the last run :func:`run_dag` made: its DAG id, run id and failed tries
_last_run: tuple[str, str, list[FailedTry]] | None = None
