"""The soak's own checks, without the deployment: each loss, doubling and leftover the soak must
count is planted here, and counted; a clean destination counts nothing.

The soak itself (every Airflow component, the faults) is ``bash .ci/soak``.
"""

from __future__ import annotations

import hashlib
from collections import Counter

import pytest

from dev.deployment import soak_checks as checks
from dev.deployment.soak import _members_rows, _trends_rows, main
from dev.deployment.soak_faults import CATALOGUE, MULTIPART_JOB, SPECS, draw_plan, needs_parts

PREFIX = "raw/x/ds=2026-11-20/"
RUN = f"{PREFIX}run-20261206T143040Z-275197b2/"


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


FILES = {"part-00000.json.gz": b"first file", "part-00001.json.gz": b"second file"}
VENDOR = [checks.SourceFile(name, _sha(data)) for name, data in FILES.items()]


def _manifest(names: list[str]) -> dict[str, object]:
    entries = [{"name": n, "location": RUN + n, "sha256": _sha(FILES[n]), "bytes": len(FILES[n])} for n in names]
    return {"files": entries, "file_count": len(entries)}


def _landed(names: list[str]) -> dict[str, str]:
    found = {RUN + n: _sha(FILES[n]) for n in names}
    found[f"{PREFIX}_manifest.json"] = "m"
    return found


def test_a_clean_transfer_counts_nothing() -> None:
    verdict = checks.check_objects(PREFIX, VENDOR, _manifest(list(FILES)), _landed(list(FILES)))
    assert verdict.counts.clean and not verdict.problems


def test_a_lost_object_is_counted() -> None:
    landed = _landed(list(FILES))
    del landed[RUN + "part-00001.json.gz"]
    verdict = checks.check_objects(PREFIX, VENDOR, _manifest(list(FILES)), landed)
    assert verdict.counts.lost_objects == 1 and "missing" in verdict.problems[0]


def test_an_object_with_other_bytes_is_lost() -> None:
    landed = _landed(list(FILES))
    landed[RUN + "part-00000.json.gz"] = _sha(b"truncated")
    assert checks.check_objects(PREFIX, VENDOR, _manifest(list(FILES)), landed).counts.lost_objects == 1


def test_a_vendor_file_the_manifest_lacks_is_lost() -> None:
    verdict = checks.check_objects(PREFIX, VENDOR, _manifest(["part-00000.json.gz"]), _landed(["part-00000.json.gz"]))
    assert verdict.counts.lost_objects == 1


def test_no_manifest_loses_every_file() -> None:
    assert checks.check_objects(PREFIX, VENDOR, None, {}).counts.lost_objects == 2


def test_a_doubled_object_is_counted() -> None:
    landed = _landed(list(FILES))
    # a second run directory holding a copy of a file, beside the committed one
    landed[f"{PREFIX}run-20261206T150000Z-00000000/part-00000.json.gz"] = _sha(FILES["part-00000.json.gz"])
    verdict = checks.check_objects(PREFIX, VENDOR, _manifest(list(FILES)), landed)
    assert verdict.counts.doubled_objects == 1 and verdict.counts.lost_objects == 0


def test_a_file_listed_twice_is_doubled() -> None:
    manifest = _manifest([*FILES, "part-00000.json.gz"])
    assert checks.check_objects(PREFIX, VENDOR, manifest, _landed(list(FILES))).counts.doubled_objects == 1


def test_a_leftover_object_is_counted() -> None:
    landed = _landed(list(FILES))
    landed[f"{RUN}._manifest.json.tmp"] = "t"
    verdict = checks.check_objects(PREFIX, VENDOR, _manifest(list(FILES)), landed)
    assert verdict.counts.leftovers == 1 and verdict.counts.doubled_objects == 0


def test_delivered_files_lost_and_doubled() -> None:
    files = [checks.SourceFile("a.csv", _sha(b"a"))]
    assert checks.check_delivered(PREFIX, files, {f"{PREFIX}a.csv": _sha(b"a")}).counts.clean
    assert checks.check_delivered(PREFIX, files, {}).counts.lost_objects == 1
    doubled = checks.check_delivered(PREFIX, files, {f"{PREFIX}a.csv": _sha(b"a"), f"{PREFIX}b.csv": _sha(b"b")})
    assert doubled.counts.doubled_objects == 1


SOURCE = Counter({("r1", "a@x"): 1, ("r2", "b@x"): 1, ("r3", "c@x"): 1})


def test_rows_equal_to_the_source_count_nothing() -> None:
    verdict = checks.check_rows("t", SOURCE, Counter(SOURCE))
    assert verdict.counts.clean and checks.digest(SOURCE) == checks.digest(Counter(SOURCE))


def test_a_lost_row_is_counted() -> None:
    verdict = checks.check_rows("t", SOURCE, SOURCE - Counter({("r2", "b@x"): 1}))
    assert (verdict.counts.lost_rows, verdict.counts.doubled_rows) == (1, 0)
    assert "1 lost" in verdict.problems[0]


def test_a_doubled_row_is_counted() -> None:
    verdict = checks.check_rows("t", SOURCE, SOURCE + Counter({("r2", "b@x"): 1}))
    assert (verdict.counts.lost_rows, verdict.counts.doubled_rows) == (0, 1)


def test_a_changed_row_is_lost_and_doubled() -> None:
    changed = SOURCE - Counter({("r2", "b@x"): 1}) + Counter({("r2", "B@x"): 1})
    verdict = checks.check_rows("t", SOURCE, changed)
    assert (verdict.counts.lost_rows, verdict.counts.doubled_rows) == (1, 1)
    assert checks.digest(changed)[0] == 3 and checks.digest(changed)[1] != checks.digest(SOURCE)[1]


def test_expected_table_by_mode() -> None:
    before = Counter({("a", "d1", 1): 1, ("a", "d2", 2): 1})
    source = Counter({("a", "d2", 5): 1, ("a", "d3", 6): 1})
    assert checks.expected_table("replace", before, source) == source
    assert checks.expected_table("append", before, source) == before + source
    merged = checks.expected_table("merge", before, source, key=lambda r: r[:2])
    assert merged == Counter({("a", "d1", 1): 1, ("a", "d2", 5): 1, ("a", "d3", 6): 1})
    with pytest.raises(ValueError, match="merge needs a key"):
        checks.expected_table("merge", before, source)
    with pytest.raises(ValueError, match="replace, append or merge"):
        checks.expected_table("upsert", before, source)


def test_an_append_twice_is_doubled() -> None:
    before = Counter({("old",): 1})
    want = checks.expected_table("append", before, SOURCE)
    assert checks.check_rows("t", want, want + SOURCE).counts.doubled_rows == 3


def test_a_failed_run_must_leave_the_destination_as_it_was() -> None:
    assert checks.check_untouched(PREFIX, {}, {"t": (SOURCE, Counter(SOURCE))}).counts.clean
    touched = checks.check_untouched(PREFIX, {RUN + "part-00000.json.gz": "x"}, {"t": (SOURCE, Counter())})
    assert touched.counts.leftovers == 1 and touched.counts.lost_rows == 3


def test_leftovers_are_counted() -> None:
    assert checks.check_leftovers([], 0, []).counts.clean
    verdict = checks.check_leftovers(["_exports_stage_e14367_x_0"], 2, ["raw/a.gz (1a2b3c4d)"])
    assert verdict.counts.leftovers == 4 and len(verdict.problems) == 3


def test_a_second_vendor_job_is_a_duplicate_unless_cancelled() -> None:
    assert checks.check_jobs("adobe", 1, 1, 0).counts.clean
    assert checks.check_jobs("adobe", 2, 1, 1).counts.clean  # cleared: the first job was cancelled
    assert checks.check_jobs("cordial", 3, 2, 0).counts.duplicate_jobs == 1


def _record(verdict: checks.Verdict, injected: list[str]) -> checks.RunRecord:
    return checks.RunRecord(1, "d", "soak-001", ["worker-kill", "slow-answers"], injected, "success", False, True, verdict, 3.0)


def test_summary_and_exit_status() -> None:
    clean = _record(checks.Verdict(), ["worker-kill"])
    assert checks.passed([clean])
    summary = checks.summary([clean, clean], seed=7)
    assert summary["runs"] == 2 and summary["verified"] == 2 and summary["faults_injected"] == {"worker-kill": 2}
    lossy = checks.Verdict()
    lossy.counts.lost_rows = 1
    assert not checks.passed([clean, _record(lossy, [])])
    assert not checks.passed([])
    assert "worker-kill*, slow-answers" in checks.table([clean])


def test_the_plan_is_the_seeds() -> None:
    first, again, other = draw_plan(5, 30), draw_plan(5, 30), draw_plan(6, 30)
    assert [(d, [(f.kind, f.params) for f in fs]) for d, fs in first] == [
        (d, [(f.kind, f.params) for f in fs]) for d, fs in again
    ]
    assert first != other
    for dag_id, faults in first:
        assert 1 <= len(faults) <= 3
        assert all(CATALOGUE[f.kind].applies(SPECS[dag_id]) for f in faults)


def test_only_sitecore_runs_draw_the_part_faults_and_theirs_are_large() -> None:
    plan = draw_plan(21, 100)
    parted = [(dag_id, faults) for dag_id, faults in plan if needs_parts(faults)]
    assert parted and all(SPECS[dag_id].vendor == "sitecore" for dag_id, _ in parted)
    assert {f.kind for _, faults in parted for f in faults} >= {"s3-part-5xx", "s3-complete-5xx"}
    assert MULTIPART_JOB["target_bytes"] // MULTIPART_JOB["target_files"] > 8 * 1024 * 1024  # the provider's part


def test_source_rows_of_cordial_files() -> None:
    trends = b"audience,2026-11-13,2026-11-14\r\nloyal-customers,10235,10439\r\n"
    assert _trends_rows(trends, "t.csv") == [
        ("loyal-customers", "2026-11-13", 10235, "t.csv"),
        ("loyal-customers", "2026-11-14", 10439, "t.csv"),
    ]
    members = b"email,first_name,last_name\r\na@x,A,B\r\n"
    assert _members_rows(members, "m.csv") == [("a@x", "A", "B", "m.csv")]


def test_refuses_no_runs(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--runs", "0", "--seed", "1"])
    assert exc.value.code == 2 and "--runs: 0" in capsys.readouterr().err
