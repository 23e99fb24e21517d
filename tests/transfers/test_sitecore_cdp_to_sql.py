"""SitecoreCDPToSqlOperator against the Sitecore sandbox, SQLite and a real PostgreSQL."""

from __future__ import annotations

import json
import sqlite3
import uuid

import pytest

from airflow_provider_exports.exceptions import ExportConfigError, TransferError
from airflow_provider_exports.transfers.sitecore_cdp_to_sql import SitecoreCDPToSqlOperator

EXPORT = "daily_loyalty_members"


@pytest.fixture
def sqlite_warehouse(tmp_path, monkeypatch):
    path = tmp_path / "warehouse.db"
    monkeypatch.setenv("AIRFLOW_CONN_WAREHOUSE", json.dumps({"conn_type": "sqlite", "host": str(path)}))
    return path


def _load(**kwargs):
    args = {"task_id": "load", "audience_export_ref": EXPORT, "conn_id": "warehouse", "table": "members"}
    return SitecoreCDPToSqlOperator(**(args | kwargs)).execute({})


def test_replace_loads_every_row_into_sqlite_and_reruns_skip(sandbox, sqlite_warehouse):
    sandbox.sitecore.add_export(EXPORT, rows_per_file=250)
    ref = sandbox.sitecore.add_job(EXPORT, rows=1000)
    summary = _load(mode="replace", execution_ref=ref)
    assert summary["rows"] == 1000
    with sqlite3.connect(sqlite_warehouse) as conn:
        assert conn.execute("select count(*) from members").fetchone()[0] == 1000
    assert _load(mode="replace", execution_ref=ref)["skipped"] is True


def test_failure_halfway_leaves_the_table_as_it_was(sandbox, sqlite_warehouse):
    sandbox.sitecore.add_export(EXPORT, rows_per_file=250)
    first = sandbox.sitecore.add_job(EXPORT, rows=500)
    _load(mode="append", execution_ref=first)
    second = sandbox.sitecore.add_job(EXPORT, rows=1000)
    # the third file of four fails for good: the first two were already inserted, inside the transaction
    sandbox.sitecore.faults.server_error("/sitecore-cdp-exports/*part-00003*", times=None, status=500)
    op = SitecoreCDPToSqlOperator(
        task_id="load", audience_export_ref=EXPORT, conn_id="warehouse", table="members", execution_ref=second
    )
    from airflow_provider_exports.hooks._retry import RetryPolicy

    op.hook.retry = RetryPolicy(max_attempts=2, backoff_initial=0.01, backoff_max=0.02)
    with pytest.raises(Exception, match="500"):
        op.execute({})
    with sqlite3.connect(sqlite_warehouse) as conn:
        assert conn.execute("select count(*) from members").fetchone()[0] == 500


def _table(path, sql="select * from members"):
    with sqlite3.connect(path) as conn:
        cur = conn.execute(sql)
        return [d[0] for d in cur.description], cur.fetchall()


@pytest.mark.parametrize(
    ("prefixes", "delta"),
    [
        (("added-", "removed-"), "by_name"),  # the sandbox's names
        (("GUESTS_ADDED_", "Guests_Removed_"), "by_name"),  # the words in either case
        (("added-", "removed-"), "always"),
    ],
)
def test_delta_rows_say_whether_added_or_removed(sandbox, sqlite_warehouse, prefixes, delta):
    sandbox.sitecore.add_export(EXPORT, definition_type="DELTA", rows_per_file=150, delta_prefixes=prefixes)
    ref = sandbox.sitecore.add_job(EXPORT, rows=500)
    _load(mode="replace", execution_ref=ref, delta=delta)
    _, rows = _table(sqlite_warehouse, "select _delta, _source_file, count(*) from members group by 1, 2")
    expected = {(kind, f"{kind}/{name}"): n for name, *_, n in sandbox.sitecore.expected_files(ref)
                for kind in ["added" if name.startswith(prefixes[0]) else "removed"]}
    assert {(k, f): n for k, f, n in rows} == expected
    assert sum(expected.values()) == 500 and {k for k, _ in expected} == {"added", "removed"}


@pytest.mark.parametrize("postgres_too", [False, True], ids=["sqlite", "postgres"])
def test_merge_keeps_a_delta_export_as_the_current_audience(
    sandbox, sqlite_warehouse, postgres_too, request, monkeypatch
):
    """mode='merge': added guests are upserted, removed ones deleted, in the load's transaction;
    replaying a job changes nothing. (The sandbox's second delta removes the first guests its first
    one added; the first removes guests no one added: not an error.)"""
    table = "members"
    if postgres_too:
        postgres = request.getfixturevalue("postgres")
        monkeypatch.setenv("AIRFLOW_CONN_WAREHOUSE", postgres.airflow_conn("warehouse")["AIRFLOW_CONN_WAREHOUSE"])
        table = f"members_{uuid.uuid4().hex[:8]}"

    def current() -> tuple[list[str], set[str]]:
        sql = f"select * from {table}"
        if postgres_too:
            with postgres.connect() as conn, conn.cursor() as cur:
                cur.execute(sql)
                names, rows = [c.name for c in cur.description], cur.fetchall()
        else:
            names, rows = _table(sqlite_warehouse, sql)
        return names, {row[names.index("ref")] for row in rows}

    sandbox.sitecore.add_export(EXPORT, definition_type="DELTA", rows_per_file=150)
    first, second = sandbox.sitecore.add_job(EXPORT, rows=500), sandbox.sitecore.add_job(EXPORT, rows=250)

    refs = sandbox.sitecore.guest_refs
    load = {"mode": "merge", "key_columns": ["ref"], "table": table}
    _load(execution_ref=first, **load)
    columns, members = current()
    assert members == refs(first, "added") and len(members) == 400
    assert "_delta" not in columns and columns[-1] == "_source_file"

    _load(execution_ref=second, **load)
    _, members = current()
    gone = refs(second, "removed")
    assert len(gone) == 50 and gone <= refs(first, "added")
    assert members == (refs(first, "added") - gone) | refs(second, "added")
    assert len(members) == 400 - 50 + 200

    assert _load(execution_ref=second, **load)["skipped"] is True  # a rerun of the job: its manifest
    assert current()[1] == members


def test_delta_never_loads_every_file_as_a_snapshot_naming_its_file(sandbox, sqlite_warehouse):
    sandbox.sitecore.add_export(EXPORT, definition_type="DELTA")
    ref = sandbox.sitecore.add_job(EXPORT, rows=500)
    _load(mode="replace", execution_ref=ref, delta="never")
    columns, _ = _table(sqlite_warehouse)
    assert "_delta" not in columns and columns[-1] == "_source_file"
    _, rows = _table(sqlite_warehouse, "select _source_file, count(*) from members group by 1")
    assert dict(rows) == {name: n for name, *_, n in sandbox.sitecore.expected_files(ref)}  # no added/ folder


def test_delta_by_name_takes_files_named_otherwise_as_snapshots_and_says_so(sandbox, sqlite_warehouse, caplog):
    """The wrong guess made visible: the job's report says DELTA, the rows name their files."""
    sandbox.sitecore.add_export(EXPORT, definition_type="DELTA", delta_prefixes=("guests-a-", "guests-b-"))
    ref = sandbox.sitecore.add_job(EXPORT, rows=500)
    _load(mode="replace", execution_ref=ref)
    columns, _ = _table(sqlite_warehouse)
    assert "_delta" not in columns
    _, rows = _table(sqlite_warehouse, "select _source_file, count(*) from members group by 1")
    assert dict(rows) == {"guests-a-part-00000.json.gz": 400, "guests-b-part-00000.json.gz": 100}
    assert any(f"job {ref} as a DELTA export, but 2 of its 2 file(s)" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("postgres_too", [False, True], ids=["sqlite", "postgres"])
def test_delta_always_fails_on_a_file_named_otherwise_before_anything_is_committed(
    sandbox, sqlite_warehouse, postgres_too, request, monkeypatch
):
    if postgres_too:
        postgres = request.getfixturevalue("postgres")
        monkeypatch.setenv("AIRFLOW_CONN_WAREHOUSE", postgres.airflow_conn("warehouse")["AIRFLOW_CONN_WAREHOUSE"])
    sandbox.sitecore.add_export(EXPORT, definition_type="DELTA", delta_prefixes=("added-", "guests-b-"))
    first = sandbox.sitecore.add_job(EXPORT, rows=100)
    table = f"members_{uuid.uuid4().hex[:8]}" if postgres_too else "members"  # the session's database
    _load(mode="replace", execution_ref=first, table=table, delta="by_name")
    second = sandbox.sitecore.add_job(EXPORT, rows=500)

    with pytest.raises(TransferError, match=r"delta='always'.*\['guests-b-part-00000.json.gz'\]") as err:
        _load(mode="replace", execution_ref=second, table=table, delta="always")

    assert "added-part" not in str(err.value)  # only the file that is neither is named
    assert not sandbox.sitecore.requests_to("/sitecore-cdp-exports/*/" + second + "/*")  # nothing read
    if postgres_too:
        with postgres.connect() as conn, conn.cursor() as cur:
            cur.execute(f"select count(*) from {table}")
            assert cur.fetchone()[0] == 100
            cur.execute("select job_ref from exports_manifest where destination = %s", (table,))
            assert cur.fetchall() == [(first,)]
    else:
        assert _table(sqlite_warehouse, "select count(*) from members")[1] == [(100,)]
        assert _table(sqlite_warehouse, "select job_ref from exports_manifest")[1] == [(first,)]


@pytest.mark.parametrize("delta", ["sometimes", "BY_NAME", None, True])
@pytest.mark.parametrize("operator", ["sql", "s3", "object_storage", "list_files", "stage_sql", "stage_s3"])
def test_delta_is_checked_when_the_dag_is_parsed(delta, operator):
    from airflow_provider_exports.transfers import sitecore_cdp_to_object_storage as to_os
    from airflow_provider_exports.transfers import sitecore_cdp_to_s3 as to_s3
    from airflow_provider_exports.transfers import sitecore_cdp_to_sql as to_sql

    made = {
        "sql": (to_sql.SitecoreCDPToSqlOperator, {"conn_id": "w", "table": "t"}),
        "stage_sql": (to_sql.SitecoreCDPStageFilesToSqlOperator, {"conn_id": "w", "table": "t", "group": {}}),
        "s3": (to_s3.SitecoreCDPToS3Operator, {"s3_bucket": "b"}),
        "stage_s3": (to_s3.SitecoreCDPStageFilesToS3Operator, {"s3_bucket": "b", "group": {}}),
        "object_storage": (to_os.SitecoreCDPToObjectStorageOperator, {"destination": "file:///tmp/x/"}),
        "list_files": (to_s3.SitecoreCDPListFilesOperator, {}),
    }
    cls, args = made[operator]
    with pytest.raises(ExportConfigError) as err:
        cls(task_id="t", audience_export_ref=EXPORT, delta=delta, **args)
    assert err.value.field == "delta"
    assert "by_name, never, always" in str(err.value)


def test_postgres_copy_load(sandbox, postgres, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_WAREHOUSE", postgres.airflow_conn("warehouse")["AIRFLOW_CONN_WAREHOUSE"])
    sandbox.sitecore.add_export(EXPORT, rows_per_file=400)
    ref = sandbox.sitecore.add_job(EXPORT, rows=1000)
    summary = _load(mode="replace", table="sitecore_members_pg", execution_ref=ref)
    assert summary["rows"] == 1000
    with postgres.connect() as conn, conn.cursor() as cur:
        cur.execute("select count(*) from sitecore_members_pg")
        assert cur.fetchone()[0] == 1000


def test_merge_needs_key_columns_at_parse_time():
    with pytest.raises(ExportConfigError) as err:
        SitecoreCDPToSqlOperator(
            task_id="t", audience_export_ref=EXPORT, conn_id="warehouse", table="t", mode="merge"
        )
    assert err.value.field == "key_columns"


@pytest.mark.parametrize("allow_empty", [False, True])
def test_allow_empty_reaches_the_sql_sink(allow_empty):
    from airflow_provider_exports.hooks.sitecore_cdp import ExportOutput

    op = SitecoreCDPToSqlOperator(
        task_id="t", audience_export_ref=EXPORT, conn_id="warehouse", table="t", mode="replace",
        allow_empty=allow_empty,
    )
    output = ExportOutput(execution_ref="e", definition_ref="d", friendly_id="f", expire_at=None,
                          total_size_kb=0, files=())
    with op.open_source() as source:
        assert op.make_sink(source, output).allow_empty is allow_empty


def test_a_file_whose_name_says_both_added_and_removed_is_refused(sandbox, sqlite_warehouse):
    sandbox.sitecore.add_export(EXPORT, definition_type="DELTA", delta_prefixes=("added-", "removed-added-"))
    ref = sandbox.sitecore.add_job(EXPORT, rows=500)
    with pytest.raises(TransferError, match=r"removed-added-part-00000\.json\.gz: the name says both"):
        _load(execution_ref=ref)
    # delta="never" loads it, every file a snapshot
    assert _load(execution_ref=ref, delta="never")["rows"] == 500


def test_a_full_sync_job_whose_files_are_named_added_is_said(caplog):
    from airflow_provider_exports.transfers._sitecore_cdp import SitecoreCDPExport
    from airflow_provider_exports.transfers.engine import SourceFile

    class Listed(SourceFile):
        def open(self, *args, **kwargs):
            raise AssertionError("not read")

    source = SitecoreCDPExport(hook=None, audience_export_ref=EXPORT)
    source._check_against_report("job-1", "FULL_SYNC", [Listed("added/x.json.gz", attributes={"delta": "added"})])
    assert any("job job-1 as a FULL_SYNC export, but 1 of its 1 file(s)" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(
    ("table", "why"),
    [
        ("vip guests", "characters other than letters, digits and underscores"),
        ("crm.VipGuests", "upper-case letters, which PostgreSQL keeps only when they are quoted"),
        ("2026_guests", "it starts with a digit"),
    ],
)
def test_a_table_name_that_needs_quoting_is_a_warning_when_the_dag_is_parsed(tmp_path, table, why):
    from airflow_provider_exports_sandbox.testing._airflow import _dagbag_module

    dag_file = tmp_path / "quoted_table.py"
    dag_file.write_text(
        "from airflow.sdk import DAG\n"
        "from airflow_provider_exports.transfers.sitecore_cdp_to_sql import SitecoreCDPToSqlOperator\n\n"
        "with DAG('quoted_table', schedule=None):\n"
        f"    SitecoreCDPToSqlOperator(task_id='load', audience_export_ref='exp', conn_id='w', table={table!r})\n"
    )
    with pytest.warns(UserWarning, match="needs quoting"):  # the DagBag emits what it captured again
        bag = _dagbag_module().DagBag(dag_folder=str(dag_file))
    assert bag.import_errors == {} and "quoted_table" in bag.dags
    (warning,) = bag.captured_warnings[str(dag_file)]  # what the UI shows as the file's warnings
    assert warning.startswith(f"{dag_file}:5: UserWarning: table={table!r}: ") and why in warning
    assert "every query must quote it the same way" in warning


@pytest.mark.parametrize("table", ["members", "analytics.loyalty_members_2026", "{{ params.table }}"])
def test_plain_or_templated_table_names_are_not_warned_about(table, recwarn):
    SitecoreCDPToSqlOperator(task_id="load", audience_export_ref=EXPORT, conn_id="warehouse", table=table)
    assert [str(w.message) for w in recwarn if "table=" in str(w.message)] == []


def test_a_table_name_with_a_space_loads_quoted(sandbox, sqlite_warehouse):
    sandbox.sitecore.add_export(EXPORT, rows_per_file=250)
    ref = sandbox.sitecore.add_job(EXPORT, rows=300)
    with pytest.warns(UserWarning, match="table='vip guests'"):
        summary = _load(mode="replace", execution_ref=ref, table="vip guests")
    assert summary["rows"] == 300
    with sqlite3.connect(sqlite_warehouse) as conn:
        assert conn.execute('select count(*) from "vip guests"').fetchone()[0] == 300


def test_on_schema_change_is_checked_when_the_dag_is_parsed():
    with pytest.raises(ExportConfigError) as err:
        SitecoreCDPToSqlOperator(
            task_id="t", audience_export_ref=EXPORT, conn_id="warehouse", table="t", on_schema_change="evolve"
        )
    assert err.value.field == "on_schema_change"
    assert "append_new_columns, fail, ignore" in str(err.value)


@pytest.mark.parametrize("policy", ["append_new_columns", "fail", "ignore"])
def test_an_attribute_the_table_lacks_follows_on_schema_change(sandbox, sqlite_warehouse, policy):
    """The table was made before the export gained ``lifetimeValue``: the next job brings it."""
    sandbox.sitecore.add_export(EXPORT, rows_per_file=400)
    first, second = sandbox.sitecore.add_job(EXPORT, rows=600), sandbox.sitecore.add_job(EXPORT, rows=900)
    _load(mode="append", execution_ref=first)
    with sqlite3.connect(sqlite_warehouse) as conn:
        conn.execute('ALTER TABLE members DROP COLUMN "lifetimeValue"')
    if policy == "fail":
        with pytest.raises(TransferError, match="members has no column 'lifetimeValue'"):
            _load(mode="append", execution_ref=second, on_schema_change=policy)
        assert _table(sqlite_warehouse, "select count(*) from members")[1] == [(600,)]
        return

    summary = _load(mode="append", execution_ref=second, on_schema_change=policy)

    with sqlite3.connect(sqlite_warehouse) as conn:
        types = {name: kind for _, name, kind, *_ in conn.execute("PRAGMA table_info(members)")}
        counts = conn.execute('select count(*), count("lifetimeValue") from members').fetchone() if policy != "ignore" else None
    if policy == "ignore":
        assert "lifetimeValue" not in types and summary["rows"] == 900
        return
    assert types["lifetimeValue"] == "DOUBLE PRECISION"
    assert counts == (1500, 900)  # the first job's rows have none
    assert summary["destination"]["columns_added"] == ["lifetimeValue"]
