"""The fan-out operators' own rules: grouping, the checks on what is mapped and what is committed."""

from __future__ import annotations

import pytest

from airflow_provider_exports.exceptions import ExportConfigError
from airflow_provider_exports.transfers._fan_out import (
    FanOutCommitOperator,
    check_destination,
    check_group,
    make_groups,
)
from airflow_provider_exports.transfers.sitecore_cdp_to_s3 import SitecoreCDPListFilesOperator

RUN = "20261122T031500Z-9f3a1c2b"


def test_groups_keep_listing_order_and_respect_max_groups():
    refs = [{"name": str(i)} for i in range(7)]
    assert [[r["name"] for r in g] for g in make_groups(refs, 3, None)] == [
        ["0", "1", "2"],
        ["3", "4", "5"],
        ["6"],
    ]
    assert [len(g) for g in make_groups(refs, 1, 2)] == [4, 3]  # groups grow to fit max_groups
    assert make_groups([], 2, None) == [[]]  # an empty job still reaches its commit


def test_a_group_that_is_not_a_listing_is_refused_naming_the_field():
    with pytest.raises(ExportConfigError, match="group: map the stage-files task"):
        check_group({"files": []})
    with pytest.raises(ExportConfigError, match=r"group\.run_id"):
        check_group({"run_id": "../x", "group": 0, "groups": 1, "job": {}, "files": []})


def test_bad_grouping_is_refused_when_the_dag_is_parsed():
    with pytest.raises(ExportConfigError, match="files_per_group"):
        SitecoreCDPListFilesOperator(task_id="l", audience_export_ref="x", files_per_group=0)
    with pytest.raises(ExportConfigError, match="max_groups"):
        SitecoreCDPListFilesOperator(task_id="l", audience_export_ref="x", max_groups=0)


def _group(n, of, run_id=RUN, **more):
    return {
        "run_id": run_id,
        "group": n,
        "groups": of,
        "job": {"job_ref": "j"},
        "destination": {"kind": "s3"},
        **more,
    }


@pytest.mark.parametrize(
    ("staged", "problem"),
    [
        ([], "give the stage-files tasks' results"),
        ([_group(0, 2)], r"groups \[0\] were staged, the listing made 2"),
        ([_group(0, 2), _group(1, 2, run_id="20261122T031500Z-00000000")], "differ in run_id"),
        ([_group(0, 1, run_id="../finance")], r"staged\.run_id: '\.\./finance' is not a run id"),
    ],
    ids=["nothing", "a-group-missing", "two-runs", "a-planted-run-id"],
)
def test_the_commit_needs_every_group_of_one_run(staged, problem):
    with pytest.raises(ExportConfigError, match=problem):
        FanOutCommitOperator(task_id="c", staged=staged)._checked_groups()


def test_a_commit_whose_xcom_run_id_is_planted_is_refused_and_deletes_nothing(s3):
    # someone's own folder under the prefix, whose name happens to start with "run-"
    s3.client().put_object(Bucket=s3.bucket, Key="exports/run-reports/q3.csv", Body=b"keep me\n")
    destination = {
        "kind": "s3", "bucket": s3.bucket, "prefix": "exports", "aws_conn_id": "aws_default",
        "decompress": False, "extra_args": {}, "allow_empty": False, "overwrite": False,
    }
    job = {"vendor": "Cordial", "export_ref": "e", "job_ref": "j", "details": {}, "listed_at": 0.0}
    planted = [
        {**_group(0, 2, run_id="reports", job=job, destination=destination), "skipped": True, "files": []},
        {**_group(1, 2, run_id="reports", job=job, destination=destination), "skipped": False, "files": []},
    ]

    with pytest.raises(ExportConfigError, match=r"staged\.run_id"):
        FanOutCommitOperator(task_id="c", staged=planted).execute({})

    assert s3.keys() == ["exports/run-reports/q3.csv"]


def _commit_of_a_dag(**stage_args):
    """A commit task whose ``staged`` is a mapped SQL stage-files task's output, as in the examples."""
    import pendulum
    from airflow.sdk import DAG

    from airflow_provider_exports.transfers.sitecore_cdp_to_sql import SitecoreCDPStageFilesToSqlOperator

    with DAG("fan_out_destination", schedule=None, start_date=pendulum.datetime(2026, 11, 1)):
        files = SitecoreCDPListFilesOperator(task_id="list_files", audience_export_ref="members")
        load = SitecoreCDPStageFilesToSqlOperator.partial(
            task_id="load_files", audience_export_ref="members", conn_id="warehouse", **stage_args
        ).expand(group=files.output)
        return FanOutCommitOperator(task_id="commit", staged=load.output)


GUESTS = {
    "kind": "sql", "conn_id": "warehouse", "table": "guests", "mode": "merge", "key_columns": ["ref"],
    "create_table": True, "on_schema_change": "append_new_columns", "allow_empty": False,
    "overwrite": False, "manifest_table": "exports_manifest", "lock_timeout": 600.0,
}


def test_the_commit_knows_its_destination_from_the_dag():
    commit = _commit_of_a_dag(table="guests", mode="merge", key_columns=["ref"])
    assert commit.stage_destination == {
        "task_id": "load_files",
        "kind": "sql",
        "args": {k: GUESTS[k] for k in ("conn_id", "table", "mode", "key_columns", "create_table",
                                         "on_schema_change", "allow_empty", "overwrite")},
        "removed_when": ["_delta", "removed"],  # Sitecore's delta mark, when a job's files have it
    }
    check_destination(GUESTS, commit.stage_destination)  # what the stage-files task wrote: accepted
    check_destination({**GUESTS, "removed_when": ["_delta", "removed"]}, commit.stage_destination)


def test_a_removal_mark_changed_in_xcom_is_refused():
    """XCom may say whether the job was a delta (the files decide), not what marks a removed row."""
    commit = _commit_of_a_dag(table="guests", mode="merge", key_columns=["ref"])
    with pytest.raises(ExportConfigError, match=r"staged\.destination: removed_when is \['ref', 'x'\]"):
        check_destination({**GUESTS, "removed_when": ["ref", "x"]}, commit.stage_destination)


@pytest.mark.parametrize(
    ("key", "planted"),
    [("table", "finance_ledger"), ("mode", "replace"), ("conn_id", "finance"), ("kind", "s3"),
     ("manifest_table", "finance_ledger"), ("allow_empty", True), ("key_columns", ["id"]),
     ("on_schema_change", "ignore")],
)
def test_a_destination_changed_in_xcom_is_refused(key, planted):
    commit = _commit_of_a_dag(table="guests", mode="merge", key_columns=["ref"])
    with pytest.raises(ExportConfigError, match=rf"staged\.destination: {key} is .*'load_files'"):
        check_destination({**GUESTS, key: planted}, commit.stage_destination)


def test_a_commit_pointed_at_another_table_through_xcom_leaves_it_alone(warehouse):
    import sqlite3

    from airflow_provider_exports.transfers.engine.sql.staging import tracker_to_json
    from airflow_provider_exports.transfers.engine.sql.types import TypeTracker

    with sqlite3.connect(warehouse) as conn:
        conn.execute("CREATE TABLE finance_ledger (account TEXT, amount BIGINT)")
        conn.execute("INSERT INTO finance_ledger VALUES ('1001', 250)")
    commit = _commit_of_a_dag(table="guests", mode="merge", key_columns=["ref"])
    job = {"vendor": "Sitecore CDP", "export_ref": "members", "job_ref": "j", "details": {}, "listed_at": 0.0}
    planted = {**GUESTS, "table": "finance_ledger", "mode": "replace", "allow_empty": True, "key_columns": []}
    commit.staged = [  # what XCom holds once someone changed it
        {**_group(0, 1, job=job, destination=planted), "skipped": False, "files": [], "stage_table": None,
         "columns": [], "rows": 0, "ordinals": 0, "target_existed": True,
         "types": tracker_to_json(TypeTracker({}))}
    ]
    with pytest.raises(ExportConfigError, match=r"staged\.destination: table is 'finance_ledger'"):
        commit.execute({})
    with sqlite3.connect(warehouse) as conn:
        assert conn.execute("SELECT * FROM finance_ledger").fetchall() == [("1001", 250)]


def test_rows_a_group_lists_for_its_files_must_be_its_staged_rows(warehouse):
    from airflow_provider_exports.exceptions import TransferIntegrityError

    commit = _commit_of_a_dag(table="guests", mode="merge", key_columns=["ref"])
    job = {"vendor": "Sitecore CDP", "export_ref": "members", "job_ref": "j", "details": {}, "listed_at": 0.0}
    record = {"name": "a.jsonl", "location": "guests", "bytes": 10, "sha256": "0" * 64, "rows": 5}
    commit.staged = [
        {**_group(0, 1, job=job, destination=GUESTS), "skipped": False, "files": [record], "rows": 3}
    ]
    with pytest.raises(TransferIntegrityError, match="group 0 reports 3 row"):
        commit.execute({})
