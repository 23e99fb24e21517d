"""Running the example DAGs with ``dag.test()`` against the sandbox, moto and a SQLite warehouse."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

EXAMPLE_DAGS = Path(__file__).resolve().parents[2] / "example_dags"


@pytest.fixture
def warehouse(tmp_path, monkeypatch) -> Path:
    """An embedded SQLite warehouse behind the ``warehouse`` connection."""
    path = tmp_path / "warehouse.db"
    monkeypatch.setenv("AIRFLOW_CONN_WAREHOUSE", json.dumps({"conn_type": "sqlite", "host": str(path)}))
    return path


@pytest.fixture
def load_example_dag(airflow_db):
    """Parse one example DAG file the way the DAG processor would, with no import errors."""

    def load(file_name: str, dag_id: str):
        if _airflow_3_2_plus():
            from airflow.dag_processing.dagbag import DagBag
        else:
            from airflow.models.dagbag import DagBag

        bag = DagBag(dag_folder=str(EXAMPLE_DAGS / file_name))
        assert bag.import_errors == {}
        if not _airflow_3_2_plus():
            _write_serialized_dags(bag)
        return bag.dags[dag_id]

    return load


def _airflow_3_2_plus() -> bool:
    from airflow import __version__
    from packaging.version import Version

    return Version(Version(__version__).base_version) >= Version("3.2.0")


def _write_serialized_dags(bag) -> None:
    """Airflow 3.1's ``dag.test()`` runs only a DAG already serialized in the metadata DB (3.2+ writes
    it itself): write it as ``airflow dags test`` does on 3.1, into the DAGs-folder bundle."""
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.models.dagbag import sync_bag_to_db

    DagBundlesManager().sync_bundles_to_db()
    sync_bag_to_db(bag, "dags-folder", None)
