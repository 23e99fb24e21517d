"""Fan-out into SQL, on SQLite and PostgreSQL: groups staged in their own tables, one commit.

The commit must give what one load of every file would have given: the same column types (from
every value of every group), merge's last row of a key in file order across groups, and the
manifest row in the same transaction; staging tables go after the commit, stale ones later.
"""

from __future__ import annotations

import logging
import time

import pytest

from airflow_provider_exports.exceptions import (
    ExportConfigError,
    TransferError,
    TransferIntegrityError,
    TransferRefused,
)
from airflow_provider_exports.transfers.engine import SqlSink, TransferContext
from airflow_provider_exports.transfers.engine import manifest as manifest_mod
from airflow_provider_exports.transfers.engine.sql import sink as sink_mod
from airflow_provider_exports.transfers.engine.sql.staging import (
    SqlStagedCommit,
    SqlStagingSink,
    merge_trackers,
    stage_table_name,
)

from .conftest import VENDOR, ChunksSource, jsonl, load

RUN = "20261122T031500Z-9f3a1c2b"


def stage(db, groups, run_id=RUN, table="guests", **options):
    """Each group of sources through its own staging sink, as mapped tasks do."""
    staged = []
    for i, sources in enumerate(groups):
        sink = SqlStagingSink(table, conn_id=db.conn_id, **options, run_id=run_id, group=i)
        summary = load(sources, sink)
        staged.append(
            {"group": i, "skipped": summary.skipped, "files": sink.staged_files, **sink.staged_state()}
        )
    return staged


def commit(db, staged, run_id=RUN, table="guests", job_ref="job-1", stale_after=86400.0, **options):
    sink = SqlStagedCommit(table, conn_id=db.conn_id, stale_after=stale_after, **options)
    ctx = TransferContext(VENDOR, "loyalty_members", job_ref, run_id=run_id)
    sink.begin(ctx)
    try:
        sink.gather(staged)
        manifest = manifest_mod.build_manifest(
            vendor=VENDOR,
            export_ref="loyalty_members",
            job_ref=job_ref,
            run_id=run_id,
            destination=sink.describe(),
            files=[manifest_mod.FileRecord(**f) for g in staged for f in g["files"]],
            started_at=time.time(),
            finished_at=time.time(),
        )
        sink.commit(manifest)
    except BaseException:
        sink.abort()
        raise
    sink.drop_stages(run_id)


def stages_left(db) -> list[str]:
    if db.kind == "sqlite":
        rows = db.query("SELECT name FROM sqlite_master WHERE name LIKE '\\_exports\\_stage%' ESCAPE '\\'")
    else:
        rows = db.query("SELECT tablename FROM pg_tables WHERE tablename LIKE '\\_exports\\_stage%'")
    return sorted(r[0] for r in rows)


def src(name, rows):
    return ChunksSource(name, jsonl(rows))


def test_types_are_agreed_over_every_group_as_one_load_would(db):
    groups = [
        [src("a.jsonl", [{"id": 1, "score": 1, "zip": "02134", "flag": True}])],
        [src("b.jsonl", [{"id": 2, "score": 2.5, "zip": "10115", "flag": False, "extra": 7}])],
        [src("c.jsonl", [{"id": 3, "score": 3, "zip": None, "flag": True}])],
    ]
    commit(db, stage(db, groups))
    # the same files in one load, into another table
    load([s for g in groups for s in g], SqlSink("guests_one_load", conn_id=db.conn_id), job_ref="job-2")

    fanned = db.column_types("guests")
    assert fanned == db.column_types("guests_one_load")
    assert fanned["score"] == "DOUBLE PRECISION" and fanned["zip"] == "TEXT" and fanned["extra"] == "BIGINT"
    assert db.query("SELECT id, score, zip, flag, extra FROM guests ORDER BY id") == db.query(
        "SELECT id, score, zip, flag, extra FROM guests_one_load ORDER BY id"
    )
    assert db.query("SELECT destination, job_ref FROM exports_manifest ORDER BY 1") == [
        ("guests", "job-1"),
        ("guests_one_load", "job-2"),
    ]
    assert stages_left(db) == []


@pytest.mark.parametrize("exists", [False, True], ids=["new-table", "existing-table"])
def test_merge_keeps_the_last_row_of_a_key_in_file_order_across_groups(db, exists):
    if exists:
        db.run(
            "CREATE TABLE guests (id BIGINT, name TEXT); INSERT INTO guests VALUES (1, 'old'), (9, 'kept')"
        )
    groups = [
        [
            src("a.jsonl", [{"id": 1, "name": "a1"}, {"id": 2, "name": "a2"}]),
            src("b.jsonl", [{"id": 2, "name": "b2"}]),
        ],
        [src("c.jsonl", [{"id": 1, "name": "c1"}])],
    ]
    staged = stage(db, groups, mode="merge", key_columns=["id"])
    commit(db, staged, mode="merge", key_columns=["id"])
    expected = [(1, "c1"), (2, "b2")] + ([(9, "kept")] if exists else [])
    assert db.query("SELECT id, name FROM guests ORDER BY id") == expected


@pytest.mark.parametrize("exists", [False, True], ids=["new-table", "existing-table"])
def test_merge_of_a_delta_across_groups_deletes_the_removed_keys(db, exists):
    if exists:
        db.run("CREATE TABLE guests (id BIGINT, name TEXT); INSERT INTO guests VALUES (1, 'old'), (9, 'kept')")
    added, removed = src("added.jsonl", [{"id": 2, "name": "new"}]), src("removed.jsonl", [{"id": 1, "name": "x"}])
    added.attributes, removed.attributes = {"delta": "added"}, {"delta": "removed"}
    delta = {
        "mode": "merge",
        "key_columns": ["id"],
        "attribute_columns": {"_delta": "delta"},
        "removed_when": ("_delta", "removed"),
    }
    staged = stage(db, [[added], [removed]], **delta)
    commit(db, staged, **{k: v for k, v in delta.items() if k != "attribute_columns"})
    assert db.query("SELECT id, name FROM guests ORDER BY id") == [(2, "new")] + ([(9, "kept")] if exists else [])
    assert "_delta" not in db.column_types("guests")


def test_replace_into_an_existing_table_swaps_every_group_in_one_transaction(db):
    db.run("CREATE TABLE guests (id BIGINT, name TEXT); INSERT INTO guests VALUES (1, 'old')")
    staged = stage(
        db, [[src("a.jsonl", [{"id": 2, "name": "x"}])], [src("b.jsonl", [{"id": 3}])]], mode="replace"
    )
    # staged, not committed: readers still see the old rows
    assert db.query("SELECT id FROM guests") == [(1,)]
    assert len(stages_left(db)) == 2
    commit(db, staged, mode="replace")
    assert db.query("SELECT id, name FROM guests ORDER BY id") == [(2, "x"), (3, None)]
    assert stages_left(db) == []


def test_a_retried_group_loads_its_own_files_again_and_only_once(db):
    first = stage(db, [[src("a.jsonl", [{"id": 1}])], [src("b.jsonl", [{"id": 2}])]])
    # group 1 is staged again (its task was retried): its table is replaced, not added to
    sink = SqlStagingSink("guests", conn_id=db.conn_id, run_id=RUN, group=1)
    load([src("b.jsonl", [{"id": 2}])], sink)
    again = {"group": 1, "skipped": False, "files": sink.staged_files, **sink.staged_state()}
    commit(db, [first[0], again])
    assert db.query("SELECT id FROM guests ORDER BY id") == [(1,), (2,)]


def test_a_commit_that_is_refused_leaves_the_table(db):
    db.run("CREATE TABLE guests (id BIGINT); INSERT INTO guests VALUES (1)")
    staged = stage(db, [[src("a.jsonl", [])]], mode="replace")
    with pytest.raises(TransferRefused, match="no rows"):
        commit(db, staged, mode="replace")
    assert db.query("SELECT id FROM guests") == [(1,)]
    assert db.query("SELECT count(*) FROM exports_manifest") == [(0,)]


def test_a_commit_retried_after_a_failure_commits_the_kept_stages(db, monkeypatch):
    staged = stage(db, [[src("a.jsonl", [{"id": 1}])], [src("b.jsonl", [{"id": 2}])]])

    def lost(*args, **kwargs):
        raise ConnectionError("the database went away")

    with monkeypatch.context() as m:
        m.setattr(sink_mod, "record_manifest", lost)
        with pytest.raises(ConnectionError):
            commit(db, staged)
    assert len(stages_left(db)) == 2
    commit(db, staged)
    assert db.query("SELECT id FROM guests ORDER BY id") == [(1,), (2,)]
    assert stages_left(db) == []


def test_a_job_already_committed_is_not_staged_again(db):
    commit(db, stage(db, [[src("a.jsonl", [{"id": 1}])]]))
    again = stage(db, [[src("a.jsonl", [{"id": 1}])]], run_id="20261122T041500Z-0000000a")
    assert again[0]["skipped"] and again[0]["stage_table"] is None


def test_a_later_commit_drops_stale_stages_of_failed_runs(db):
    failed = stage(db, [[src("a.jsonl", [{"id": 1}])]], run_id="20261121T031500Z-0000000b")
    assert stages_left(db) == [stage_table_name("guests", "20261121T031500Z-0000000b", 0)]
    # a run a day later, with a grace of an hour: the failed run's stage is stale
    commit(db, stage(db, [[src("b.jsonl", [{"id": 2}])]]), stale_after=3600, job_ref="job-2")
    assert stages_left(db) == []
    with pytest.raises(TransferError, match=r"is gone"):
        commit(db, failed, run_id="20261121T031500Z-0000000b", job_ref="job-3")
    assert db.query("SELECT id FROM guests") == [(2,)]


def test_conflicting_declarations_in_two_groups_are_refused_naming_both_files():
    part = {"task_types": {}, "valued_by": {}, "columns": {}}
    with pytest.raises(
        TransferRefused, match=r"'x' is BIGINT in file 'a.parquet' and TEXT in file 'b.parquet'"
    ):
        merge_trackers(
            [
                {**part, "file_types": {"x": ["BIGINT", "a.parquet"]}},
                {**part, "file_types": {"x": ["TEXT", "b.parquet"]}},
            ]
        )
    with pytest.raises(TransferRefused, match=r"'x'.*'a.parquet' declares BIGINT.*'c.jsonl'"):
        merge_trackers(
            [
                {**part, "file_types": {"x": ["BIGINT", "a.parquet"]}},
                {**part, "file_types": {}, "valued_by": {"x": "c.jsonl"}},
            ]
        )


def test_stage_names_fit_every_database():
    name = stage_table_name("analytics.a_very_long_table_name_indeed_" + "x" * 40, RUN, 1023)
    schema, _, table = name.rpartition(".")
    assert schema == "analytics" and len(table) <= 63 and table.startswith("_exports_stage_")


# --- XCom and the registry are input -----------------------------------------------------------------------

LEDGER = "CREATE TABLE finance_ledger (id BIGINT, amount BIGINT); INSERT INTO finance_ledger VALUES (1, 1000000)"


def tables(db) -> list[str]:
    if db.kind == "sqlite":
        rows = db.query("SELECT name FROM sqlite_master WHERE type = 'table'")
    else:
        rows = db.query("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    return sorted(r[0] for r in rows if not r[0].startswith("_exports_stage"))


def test_a_registry_row_naming_another_table_is_not_dropped(db, caplog):
    db.run(LEDGER)
    staged = stage(db, [[src("a.jsonl", [{"id": 1}])]])
    old_run = "20261101T000000Z-0000000c"  # stale by a year: its tables are dropped after the commit
    db.run(
        "INSERT INTO exports_manifest_staging (destination, run_id, stage_table) VALUES "
        f"('guests', '{RUN}', 'finance_ledger'), ('guests', '{old_run}', 'finance_ledger'), "
        f"('guests', '{old_run}', '{stage_table_name('other', old_run, 0)}')"
    )

    with caplog.at_level(logging.WARNING):
        commit(db, staged)

    assert db.query("SELECT id, amount FROM finance_ledger") == [(1, 1000000)]
    assert db.query("SELECT id FROM guests") == [(1,)]
    assert stages_left(db) == []
    warned = [r.getMessage() for r in caplog.records if "not one of its staging tables" in r.getMessage()]
    assert len(warned) == 3 and "'finance_ledger'" in warned[0]


@pytest.mark.parametrize(
    ("key", "planted", "refused"),
    [
        ("stage_table", "finance_ledger", r"'finance_ledger' is not group 0's staging table of guests"),
        ("stage_table", stage_table_name("guests", "20261122T031500Z-00000000", 0), r"is not group 0's staging"),
        ("stage_table", None, r"group 0 reported 1 row\(s\) and no staging table"),
    ],
    ids=["another-table", "another-run", "rows-without-a-table"],
)
def test_an_xcom_group_naming_another_table_is_refused_with_nothing_committed(db, key, planted, refused):
    db.run(LEDGER)
    staged = stage(db, [[src("a.jsonl", [{"id": 1}])]])
    if planted and planted != "finance_ledger":  # another run's staging table, really there
        db.run(f"CREATE TABLE {planted} (id BIGINT)")
    staged[0][key] = planted

    with pytest.raises(ExportConfigError, match=refused):
        commit(db, staged)

    assert tables(db) == ["exports_manifest", "exports_manifest_staging", "finance_ledger"]
    assert db.query("SELECT count(*) FROM exports_manifest") == [(0,)]
    assert db.query("SELECT id, amount FROM finance_ledger") == [(1, 1000000)]


@pytest.mark.parametrize("exists", [False, True], ids=["new-table", "existing-table"])
def test_a_group_whose_staging_table_holds_other_than_it_reported_fails_the_commit(db, exists):
    if exists:
        db.run("CREATE TABLE guests (id BIGINT); INSERT INTO guests VALUES (0)")
    staged = stage(db, [[src("a.jsonl", [{"id": 1}, {"id": 2}])], [src("b.jsonl", [{"id": 3}])]], mode="replace")
    staged[1]["rows"] += 2

    with pytest.raises(
        TransferIntegrityError, match=r"_1 of group 1: 3 row\(s\) read, but the database took 1; the load"
    ):
        commit(db, staged, mode="replace")

    assert db.query("SELECT count(*) FROM exports_manifest") == [(0,)]
    assert ("guests" in tables(db)) is exists
    if exists:
        assert db.query("SELECT id FROM guests") == [(0,)]


@pytest.mark.parametrize("where", ["task_types", "file_types"])
def test_a_type_planted_in_xcom_is_refused_before_it_reaches_sql(db, where):
    db.run(LEDGER)
    staged = stage(db, [[src("a.jsonl", [{"id": 1}])]])
    planted = "TEXT); DROP TABLE IF EXISTS finance_ledger; SELECT 1 --"  # runs whole on main (PostgreSQL)
    types = staged[0]["types"]
    if where == "task_types":
        types["task_types"] = {"id": planted}
    else:  # as if a Parquet file had declared it
        types.update(file_types={"id": [planted, "a.parquet"]}, valued_by={}, columns={})

    with pytest.raises(ExportConfigError, match=r"group\.types: 'TEXT\); DROP .* is not a column type"):
        commit(db, staged)

    assert db.query("SELECT id, amount FROM finance_ledger") == [(1, 1000000)]
    assert tables(db) == ["exports_manifest", "exports_manifest_staging", "finance_ledger"]
