"""The kit is opt-in: a project that does not load it sees none of its fixtures; one that does gets
them all, and the test files docs/sandbox.md shows run as written against the sandbox."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
KIT_FIXTURES = {
    "exports_airflow_db",
    "exports_load_dag",
    "exports_run_dag",
    "exports_sandbox",
    "exports_sandbox_session",
    "exports_moto",
    "exports_s3",
    "exports_postgres",
    "exports_warehouse",
    "exports_postgres_warehouse",
}
#: the generic names the provider's old pytest11 plugin put into every environment
OLD_NAMES = {"sandbox", "moto_s3", "s3", "postgres"}


def _pytest(project: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """pytest in ``project`` as a user would run it: no Airflow settings from this session."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "PYTEST_"))}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def _fixture_names(output: str) -> set[str]:
    """The fixture names ``pytest --fixtures`` lists (a name at the start of a line, then ``[scope]``
    or `` -- file``)."""
    return set(re.findall(r"^([A-Za-z_][A-Za-z0-9_]*)(?: \[[a-z ]+\])? -- ", output, re.M))


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "test_nothing.py").write_text("def test_nothing():\n    pass\n")
    return tmp_path


def test_a_project_that_does_not_opt_in_sees_none_of_the_fixtures(project: Path) -> None:
    result = _pytest(project, "--fixtures", "-v")
    assert result.returncode == 0, result.stdout + result.stderr
    listed = _fixture_names(result.stdout)
    assert "tmp_path" in listed and "monkeypatch" in listed  # the listing was read
    assert not listed & (KIT_FIXTURES | OLD_NAMES)
    assert "airflow_provider_exports" not in result.stdout


def test_pytest_p_loads_the_kit(project: Path) -> None:
    result = _pytest(project, "-p", "airflow_provider_exports_sandbox.testing", "--fixtures", "-v")
    assert result.returncode == 0, result.stdout + result.stderr
    listed = _fixture_names(result.stdout)
    assert listed >= KIT_FIXTURES
    assert not listed & OLD_NAMES


def test_the_private_airflow_home_goes_when_the_session_ends(project: Path) -> None:
    (project / "test_nothing.py").write_text(
        "import os, pathlib\n\n"
        "def test_home():\n"
        "    pathlib.Path('home.txt').write_text(os.environ['AIRFLOW_HOME'])\n"
    )
    result = _pytest(project, "-p", "airflow_provider_exports_sandbox.testing", "-q")
    assert result.returncode == 0, result.stdout + result.stderr
    home = Path((project / "home.txt").read_text())
    assert home.name.startswith("exports-airflow-home-") and not home.exists()


def test_pytest_plugins_in_conftest_loads_the_kit(project: Path) -> None:
    (project / "conftest.py").write_text('pytest_plugins = ["airflow_provider_exports_sandbox.testing"]\n')
    result = _pytest(project, "--fixtures", "-v")
    assert result.returncode == 0, result.stdout + result.stderr
    assert _fixture_names(result.stdout) >= KIT_FIXTURES


def _docs_test_files() -> dict[str, str]:
    """The python blocks of docs/sandbox.md (the sandbox and the test kit) that open with ``# <path>``."""
    page = (REPO / "docs" / "sandbox.md").read_text()
    files = {}
    for block in re.findall(r"```python\n(.*?)```", page, re.S):
        first = block.splitlines()[0]
        if re.fullmatch(r"# [\w/]+\.py", first):
            files[first[2:]] = block
    return files


def test_the_docs_testing_examples_run_as_written(tmp_path: Path) -> None:
    files = _docs_test_files()
    assert set(files) == {"tests/conftest.py", "tests/test_sitecore_dag.py", "tests/test_rate_limited.py"}, sorted(files)
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    (tmp_path / "dags").mkdir()
    shutil.copy(REPO / "example_dags" / "sitecore_cdp_audience_export.py", tmp_path / "dags")

    result = _pytest(tmp_path, "-q", "tests", timeout=600)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    assert re.search(r"\b2 passed\b", result.stdout), result.stdout[-2000:]


def _kit_project(tmp_path: Path, dags: dict[str, str], test: str) -> Path:
    """A fresh project: ``dags/<name>`` files and one test file that loads the kit."""
    (tmp_path / "dags").mkdir()
    for name, text in dags.items():
        (tmp_path / "dags" / name).write_text(text)
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "conftest.py").write_text('pytest_plugins = ["airflow_provider_exports_sandbox.testing"]\n')
    (tmp_path / "tests" / "test_dag.py").write_text(
        "from pathlib import Path\n\nDAGS = Path(__file__).parents[1] / 'dags'\n\n\n" + test
    )
    return tmp_path


ONE_TASK_DAG = """
from datetime import datetime, timedelta

from airflow.sdk import DAG, task

with DAG("{dag_id}", schedule=None, start_date=datetime(2026, 1, 1)):

    @task(retries={retries}, retry_delay=timedelta(0))
    def land():
        {body}

    land()
"""


def test_a_failed_run_names_the_failed_task_its_try_and_its_exception(tmp_path: Path) -> None:
    project = _kit_project(
        tmp_path,
        {"boom.py": ONE_TASK_DAG.format(dag_id="boom", retries=1, body="raise ValueError('no bucket named lake')")},
        "def test_boom(exports_load_dag, exports_run_dag):\n"
        "    run = exports_run_dag(exports_load_dag(DAGS / 'boom.py'))\n"
        "    assert run.state == 'success'\n",
    )
    result = _pytest(project, "-q", "tests", timeout=300)
    assert result.returncode == 1, result.stdout[-4000:] + result.stderr[-2000:]
    explained = result.stdout.split("Captured stdout", 1)[0]  # the explanation, before the captured logs
    assert re.search(r"'failed' == 'success': the run manual__\S+ of boom is failed, not success", explained)
    assert "task land, try 1 of 2: ValueError: no bucket named lake" in explained
    assert "task land, try 2 of 2: ValueError: no bucket named lake" in explained


def test_a_dag_file_is_loaded_alone_without_its_siblings_import_errors(tmp_path: Path) -> None:
    project = _kit_project(
        tmp_path,
        {
            "good.py": ONE_TASK_DAG.format(dag_id="good", retries=0, body="return 1"),
            "broken.py": "from airflow.sdk import DAG\n\nraise RuntimeError('the sibling marker 4711')\n",
        },
        "def test_good(exports_load_dag, exports_run_dag):\n"
        "    dag = exports_load_dag(DAGS / 'good.py')\n"
        "    assert exports_run_dag(dag).state == 'success'\n"
        "    assert dag.test().state == 'success'  # a plain dag.test() finds it too\n"
        "    from airflow.models.errors import ParseImportError\n"
        "    from airflow.utils.session import create_session\n\n"
        "    with create_session() as session:\n"
        "        assert session.query(ParseImportError).all() == []\n",
    )
    result = _pytest(project, "-q", "-s", "tests", timeout=300)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "sibling marker" not in result.stdout + result.stderr
