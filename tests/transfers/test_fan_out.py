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
    ],
    ids=["nothing", "a-group-missing", "two-runs"],
)
def test_the_commit_needs_every_group_of_one_run(staged, problem):
    with pytest.raises(ExportConfigError, match=problem):
        FanOutCommitOperator(task_id="c", staged=staged)._checked_groups()
