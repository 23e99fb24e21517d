"""Parsing a DAG that uses the provider stays cheap: our modules pull in no heavy library.

The example DAG files are imported in a fresh process after ``airflow.sdk`` and the amazon
provider's ``S3Hook`` (which a DAG using the provider loads anyway); the packages that appear
only then must not include an HTTP client, boto3, pyarrow or a database driver. (The time it
takes is measured by ``benchmarks/imports.py``, not here.)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.conftest import EXAMPLE_DAGS, REPO

HEAVY = ["httpx", "httpcore", "boto3", "botocore", "pyarrow", "psycopg", "psycopg2", "asyncpg", "sqlite3"]

_PROBE = """
import json, sys
import airflow.sdk
from airflow.providers.amazon.aws.hooks.s3 import S3Hook
before = set(sys.modules)
sys.path.insert(0, {dags!r})
for dag in {dags_to_import!r}:
    __import__(dag)
added = {{m.split(".")[0] for m in set(sys.modules) - before}}
ours = sorted(m for m in sys.modules if m.startswith("airflow_provider_exports."))
print(json.dumps({{"added": sorted(added), "loaded": sorted({{m.split(".")[0] for m in sys.modules}}), "ours": ours}}))
"""


def test_parsing_the_example_dags_imports_nothing_heavy(tmp_path):
    dags = sorted(p.stem for p in EXAMPLE_DAGS.glob("*.py"))
    assert len(dags) >= 3
    env = {**os.environ, "AIRFLOW_HOME": str(tmp_path), "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE.format(dags=str(EXAMPLE_DAGS), dags_to_import=dags)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    seen = json.loads(proc.stdout.strip().splitlines()[-1])
    assert {"airflow_provider_exports", *dags} <= set(seen["added"])  # the probe did import them
    assert [m for m in HEAVY if m in seen["added"]] == []
    # pyarrow never at parse time (database drivers only as Airflow's own: 3.1 imports psycopg2)
    assert "pyarrow" not in seen["loaded"]
    # the engine's moving parts are imported when a task runs, not when its DAG is parsed
    engine = "airflow_provider_exports.transfers.engine."
    assert [
        m
        for m in seen["ours"]
        if m in {engine + "runner", engine + "s3_sink", engine + "progress", engine + "sql.sink"}
    ] == []
