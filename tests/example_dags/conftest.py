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
        from airflow.dag_processing.dagbag import DagBag

        bag = DagBag(dag_folder=str(EXAMPLE_DAGS / file_name))
        assert bag.import_errors == {}
        return bag.dags[dag_id]

    return load
