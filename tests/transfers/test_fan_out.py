"""The fan-out operators' own rules: grouping, the checks on what is mapped and what is committed."""

from __future__ import annotations

import pytest

from airflow_provider_exports.exceptions import ExportConfigError
from airflow_provider_exports.transfers._fan_out import FanOutCommitOperator, check_group, make_groups
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
