"""Test session set-up: a private Airflow home and metadata DB, configured before Airflow is imported.

The sandbox, moto and PostgreSQL fixtures come from the provider's own pytest plugin
(``airflow_provider_exports.sandbox.pytest_plugin``), which users can load for their DAGs too.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
EXAMPLE_DAGS = REPO / "example_dags"
_HOME = Path(tempfile.mkdtemp(prefix="exports-airflow-home-"))

os.environ["AIRFLOW_HOME"] = str(_HOME)
# The DAGs folder must contain the DAG files that dag.test() runs; .airflowignore keeps the rest out.
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(REPO)
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__UNIT_TEST_MODE"] = "True"
os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{_HOME / 'airflow.db'}"
os.environ.setdefault("AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE", "False")

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """A fresh Airflow metadata DB, once per session (``dag.test()`` needs one)."""
    from airflow.utils import db

    db.resetdb()
    return _HOME


@pytest.fixture(autouse=True)
def _fresh_token_cache():
    """Each test starts without cached tokens, so token counts are the test's own."""
    from airflow_provider_exports.hooks._http import TOKENS

    TOKENS.clear()
    yield
    TOKENS.clear()


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
