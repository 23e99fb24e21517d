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


@pytest.fixture
def run_dag(airflow_db):
    """``dag.test()`` of a DAG built in a test (Airflow 3.1 needs it serialized in the metadata DB first)."""

    def run(dag, **kwargs):
        if _airflow_3_2_plus():  # 3.2+ serializes only what its DAGs folder holds
            from airflow.dag_processing.dagbag import DagBag
        else:
            from airflow.models.dagbag import DagBag

        bag = DagBag(dag_folder=os.devnull, collect_dags=False)
        bag.bag_dag(dag)
        _write_serialized_dags(bag)
        return dag.test(**kwargs)

    return run


def _airflow_3_2_plus() -> bool:
    from airflow import __version__
    from packaging.version import Version

    return Version(Version(__version__).base_version) >= Version("3.2.0")


def _write_serialized_dags(bag) -> None:
    """Airflow 3.1's ``dag.test()`` runs only a DAG already serialized in the metadata DB (3.2+ writes
    the DAGs of its DAGs folder itself): write it as ``airflow dags test`` does on 3.1, into the
    DAGs-folder bundle."""
    from airflow.dag_processing.bundles.manager import DagBundlesManager

    if _airflow_3_2_plus():
        from airflow.dag_processing.dagbag import sync_bag_to_db
    else:
        from airflow.models.dagbag import sync_bag_to_db

    DagBundlesManager().sync_bundles_to_db()
    sync_bag_to_db(bag, "dags-folder", None)


# -- Cordial's Swagger: what the sandbox answers and what our hook sends are both checked against it

CORDIAL_SPEC = Path("/work/shared/vendor-apis/cordial/cordial-v2-openapi-original.json")


class CordialSwagger:
    """Cordial's Swagger 2.0 document (C-V2) as jsonschema checks, with its known defects worked around."""

    def __init__(self, doc: dict) -> None:
        self.doc = doc
        definitions = doc["definitions"]
        # Spec defect: four shared responses (RecordsNotFound, OrderValidationError, OrderNotFound,
        # SupplementRemove) point at definitions that do not exist. None is on the endpoints tested
        # here, but a dangling $ref breaks whole-document resolution: stub each as "any object".
        for missing in ("RecordsNotFound", "OrderValidationError", "OrderNotFound", "SupplementRemove"):
            definitions.setdefault(missing, {"type": "object"})
        # Spec defect: SourceAE.required names `fields` and `accountId`, which are not properties
        # of SourceAE and not in Cordial's docs (C-ATE); a valid request could never satisfy them.
        source = definitions["SourceAE"]
        source["required"] = [r for r in source["required"] if r not in ("fields", "accountId")]

    def validate(self, instance, schema: dict) -> None:
        import jsonschema

        jsonschema.Draft4Validator({**schema, "definitions": self.doc["definitions"]}).validate(instance)

    def response_schema(self, path: str, method: str, status: int) -> dict:
        """The schema Cordial's spec gives for one response, following ``#/responses/...`` refs."""
        response = self.doc["paths"][path][method]["responses"][str(status)]
        ref = response.get("$ref")
        if ref is not None:
            response = self.doc["responses"][ref.rsplit("/", 1)[1]]
        if "schema" not in response:
            raise AssertionError(f"spec has no schema for {method.upper()} {path} {status}")
        return dict(response["schema"])

    def validate_response(self, resp, path: str, method: str) -> None:
        self.validate(resp.json(), self.response_schema(path, method, resp.status_code))

    def request_problems(self, method: str, url: str, params, body) -> list[str]:
        """What is wrong with one request by the spec: its path, query parameters and JSON body."""
        import re
        from urllib.parse import urlsplit

        import jsonschema

        path = urlsplit(url).path
        what = f"{method} {path}"
        template = next(
            (t for t in self.doc["paths"] if re.fullmatch(re.sub(r"\{[^/]+\}", "[^/]+", t), path)), None
        )
        if template is None:
            return [f"{what}: no such path in the spec"]
        operation = self.doc["paths"][template].get(method.lower())
        if operation is None:
            return [f"{what}: the spec has no {method} for {template}"]
        declared = {p["name"]: p for p in operation.get("parameters", [])}
        problems = []
        for name, value in (params or {}).items():
            param = declared.get(name)
            if param is None or param["in"] != "query":
                problems.append(f"{what}: query parameter {name!r} is not in the spec")
            elif not isinstance(value, str):
                problems.append(f"{what}: query parameter {name}={value!r} is not a string")
            elif "enum" in param and value not in param["enum"]:
                problems.append(f"{what}: {name}={value!r} is not one of {param['enum']}")
        body_param = next((p for p in declared.values() if p["in"] == "body"), None)
        if body_param is None and body is not None:
            problems.append(f"{what}: the spec takes no body")
        elif body_param is not None:
            try:
                self.validate(body, body_param["schema"])
            except jsonschema.ValidationError as exc:
                problems.append(f"{what}: body: {exc.message} at {list(exc.absolute_path)}")
        return problems


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
    if not CORDIAL_SPEC.exists():
        pytest.skip(f"Cordial spec not found at {CORDIAL_SPEC}")
    return CordialSwagger(json.loads(CORDIAL_SPEC.read_text()))


@pytest.fixture
def cordial_requests(cordial_swagger, monkeypatch):
    """Every request a Cordial hook sends in the test, sync or async; each must satisfy the Swagger.

    A spy on the HTTP core (the real request is sent): the test fails at teardown with what the spec
    refuses, so a test that uses this fixture proves every request it caused is a valid one.
    """
    from airflow_provider_exports.hooks._http import HttpCore

    sent: list[tuple[str, str, dict | None, object]] = []
    real_request, real_arequest = HttpCore.request, HttpCore.arequest

    def note(core, method, url, kwargs) -> None:
        if core.vendor == "Cordial":
            sent.append((method.upper(), str(url), kwargs.get("params"), kwargs.get("json")))

    def request(self, method, url, **kwargs):
        note(self, method, url, kwargs)
        return real_request(self, method, url, **kwargs)

    async def arequest(self, method, url, **kwargs):
        note(self, method, url, kwargs)
        return await real_arequest(self, method, url, **kwargs)

    monkeypatch.setattr(HttpCore, "request", request)
    monkeypatch.setattr(HttpCore, "arequest", arequest)
    yield sent
    problems = [
        p
        for method, url, params, body in sent
        for p in cordial_swagger.request_problems(method, url, params, body)
    ]
    assert not problems, "requests Cordial's Swagger refuses:\n" + "\n".join(problems)
