"""Airflow for offline DAG tests: a private home and metadata database, DAG files loaded by path,
and ``dag.test()`` on the logical date the scheduler would have run last.

Used by the pytest kit (:mod:`airflow_provider_exports_sandbox.testing`) and the demo. Airflow reads its home
and database settings once, when it is first imported, so :func:`configure_airflow` runs before that;
nothing here imports Airflow at import time.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

__all__ = [
    "AirflowNotConfigured",
    "configure_airflow",
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
    the file defines several). Import errors fail with the file's own traceback. On Airflow 3.1 the
    DAG is also written to the metadata DB, which ``dag.test()`` needs there."""
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
    if not _airflow_3_2_plus():  # so that a plain dag.test() works too
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
    returns the DagRun. A DAG built outside the DAGs folder (in a test) is serialized first."""
    init_metadata_db()
    kwargs.setdefault("logical_date", scheduled_logical_date(dag))
    if not _airflow_3_2_plus() or not _in_dags_folder(dag):
        _write_serialized(dag)
    return dag.test(**kwargs)
