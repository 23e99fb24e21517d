"""The Sitecore CDP delta example DAG end to end: two delta jobs of the sandbox applied to an SQLite
table with ``dag.test()``; after each, the table holds exactly the audience the jobs so far define."""

from __future__ import annotations

import gzip
import hashlib
import json
import sqlite3
from datetime import datetime, timedelta, timezone

import pytest

from ._no_secret import assert_no_secret

EXPORT = "daily_loyalty_changes"
TABLE = "loyalty_members_current"
DAY = datetime(2026, 11, 22, tzinfo=timezone.utc)


@pytest.fixture
def flow(sandbox, warehouse, load_example_dag):
    sandbox.sitecore.add_export(EXPORT, definition_type="DELTA", rows_per_file=300)
    dag = load_example_dag("sitecore_cdp_audience_delta.py", "sitecore_cdp_audience_delta")
    assert dag.get_task("wait_for_export").deferrable is True  # as written: waits in the triggerer
    dag.get_task("wait_for_export").deferrable = False  # here the job has finished: one poke
    dag.get_task("apply_changes").retries = 0  # a failure fails the test now, not after two 5-minute delays
    return dag


def _states(run):
    return {ti.task_id: ti.state for ti in run.get_task_instances()}


def _served(sandbox, execution_ref: str, kind: str) -> list[dict]:
    """The guests of a job's ``added`` or ``removed`` files, as the sandbox served them."""
    return [
        json.loads(line)
        for name, *_ in sandbox.sitecore.expected_files(execution_ref)
        if name.startswith(f"{kind}-")
        for line in gzip.decompress(sandbox.sitecore.file_path(execution_ref, name).read_bytes()).splitlines()
    ]


def _audience(sandbox, *jobs: str) -> dict[str, dict]:
    """The audience the delta jobs define, applied in order: joined guests in, guests who left out."""
    audience: dict[str, dict] = {}
    for job in jobs:
        audience.update((g["ref"], g) for g in _served(sandbox, job, "added"))
        for guest in _served(sandbox, job, "removed"):
            audience.pop(guest["ref"], None)
    return audience


def _checksum(rows) -> str:
    return hashlib.sha256("\n".join(sorted(json.dumps(r, sort_keys=True) for r in rows)).encode()).hexdigest()


def _table(warehouse) -> dict[str, dict]:
    """The table's rows by ``ref``, without the column that names each row's file."""
    with sqlite3.connect(warehouse) as conn:
        cur = conn.execute(f"select * from {TABLE}")
        names = [d[0] for d in cur.description]
        rows = [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
    assert names[-1] == "_source_file" and "_delta" not in names, names
    return {r["ref"]: {k: v for k, v in r.items() if k != "_source_file"} for r in rows}


def _applied_jobs(warehouse) -> set[str]:
    """The jobs whose manifest row the table's loads committed."""
    with sqlite3.connect(warehouse) as conn:
        rows = conn.execute("select job_ref from exports_manifest where destination = ?", (TABLE,)).fetchall()
    return {job for (job,) in rows}


def _state(table: dict[str, dict]) -> tuple[int, str]:
    return len(table), _checksum(table.values())


def _seen_by_a_reader_during_the_merge(monkeypatch, warehouse) -> list[tuple[tuple[int, str], set]]:
    """What another connection reads (the table's :func:`_state`, the jobs applied) each time a load
    has deleted and upserted its rows but not yet committed: filled in while the DAG runs."""
    from airflow_provider_exports.transfers.engine.sql import sink

    seen: list[tuple[tuple[int, str], set]] = []
    real_merge = sink.merge

    def merge(*args, **kwargs):
        real_merge(*args, **kwargs)
        seen.append((_state(_table(warehouse)), _applied_jobs(warehouse)))

    monkeypatch.setattr(sink, "merge", merge)
    return seen


def _check_current(warehouse, audience: dict[str, dict]) -> dict[str, dict]:
    table = _table(warehouse)
    assert set(table) == set(audience)
    assert _checksum(table.values()) == _checksum(audience.values())
    return table


def test_two_delta_jobs_keep_the_table_the_current_audience(flow, sandbox, warehouse, capfd, monkeypatch):
    first = sandbox.sitecore.add_job(EXPORT, rows=1000, end_time=DAY + timedelta(hours=3))
    run = flow.test(logical_date=DAY)
    assert run.state == "success", _states(run)
    # the first job removes guests nobody added: not an error, nothing to delete
    assert len(_served(sandbox, first, "removed")) == 200
    _check_current(warehouse, _audience(sandbox, first))
    assert len(_table(warehouse)) == 800

    before = _table(warehouse)
    second = sandbox.sitecore.add_job(EXPORT, rows=500, end_time=DAY + timedelta(days=1, hours=3))
    during = _seen_by_a_reader_during_the_merge(monkeypatch, warehouse)
    run = flow.test(logical_date=DAY + timedelta(days=1))
    assert run.state == "success", _states(run)
    # a reader during the load: the table as the first job left it, without the second's manifest row
    assert during == [(_state(before), {first})]
    assert _applied_jobs(warehouse) == {first, second}
    gone = {g["ref"] for g in _served(sandbox, second, "removed")}
    assert len(gone) == 100 and gone <= {g["ref"] for g in _served(sandbox, first, "added")}
    table = _check_current(warehouse, _audience(sandbox, first, second))
    assert len(table) == 800 - 100 + 400 and not gone & set(table)

    from airflow_provider_exports.hooks._auth import TOKENS

    secrets = [sandbox.sitecore.connection()["password"], *(t.value for t in TOKENS._tokens.values())]
    assert_no_secret(run, "".join(capfd.readouterr()), [*secrets, "X-Amz-Signature"])
    assert TOKENS._tokens, "the run obtained a token"

    # the same job again (the run's retry, or a user clearing it): skipped, the table as it was
    again = flow.test(logical_date=DAY + timedelta(days=1))
    assert again.state == "success", _states(again)
    xcom = again.get_task_instance("apply_changes").xcom_pull(task_ids="apply_changes")
    assert xcom["skipped"] is True, xcom
    assert _check_current(warehouse, _audience(sandbox, first, second)) == table


def test_a_job_that_finished_before_the_run_s_newest_is_applied_first(flow, sandbox, warehouse, capfd):
    """Two jobs finished since the last run (a paused DAG, a failed day): the sensor gives the
    newest; the one before it, which the table misses, is applied first, in its own load."""
    first = sandbox.sitecore.add_job(EXPORT, rows=1000, end_time=DAY + timedelta(hours=3))
    assert flow.test(logical_date=DAY).state == "success"
    second = sandbox.sitecore.add_job(EXPORT, rows=500, end_time=DAY + timedelta(days=1, hours=2))
    third = sandbox.sitecore.add_job(EXPORT, rows=500, end_time=DAY + timedelta(days=1, hours=4))

    run = flow.test(logical_date=DAY + timedelta(days=1))

    assert run.state == "success", _states(run)
    ti = run.get_task_instance("apply_changes")
    assert ti.xcom_pull(task_ids="wait_for_export") == third
    xcom = ti.xcom_pull(task_ids="apply_changes")
    assert xcom["job_ref"] == third and xcom["caught_up"] == [
        {"job_ref": second, "skipped": False, "file_count": len(sandbox.sitecore.expected_files(second)), "rows": 500}
    ]
    assert _applied_jobs(warehouse) == {first, second, third}
    _check_current(warehouse, _audience(sandbox, first, second, third))
    assert f"Job {second} came before this run's and is not in the destination: moving it first" in "".join(capfd.readouterr())

    # the run again: every job held, nothing moved
    again = flow.test(logical_date=DAY + timedelta(days=1))
    xcom = again.get_task_instance("apply_changes").xcom_pull(task_ids="apply_changes")
    assert xcom["skipped"] is True and "caught_up" not in xcom, xcom
    _check_current(warehouse, _audience(sandbox, first, second, third))


def test_a_first_load_applies_only_the_job_it_is_given(flow, sandbox, warehouse):
    """With no job of the export in the table yet, which jobs it started from is not guessed."""
    sandbox.sitecore.add_job(EXPORT, rows=1000, end_time=DAY - timedelta(days=1))
    newest = sandbox.sitecore.add_job(EXPORT, rows=500, end_time=DAY + timedelta(hours=3))

    run = flow.test(logical_date=DAY)

    assert run.state == "success", _states(run)
    assert "caught_up" not in run.get_task_instance("apply_changes").xcom_pull(task_ids="apply_changes")
    assert _applied_jobs(warehouse) == {newest}
