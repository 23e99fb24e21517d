"""PostgreSQL: COPY, replace that keeps the table, what other sessions see, one load at a time."""

from __future__ import annotations

import gzip
import json
import logging
import os
import random
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone

import pytest

from airflow_provider_exports.exceptions import (
    LimitExceeded,
    TransferError,
    TransferIntegrityError,
    TransferRefused,
)
from airflow_provider_exports.transfers.engine import SqlSink, run_transfer
from airflow_provider_exports.transfers.engine.sql import sink as sink_mod
from airflow_provider_exports.transfers.engine.sql.postgres import encode_copy_text

from .conftest import VENDOR, WAIT, ChunksSource, file_source, jsonl, jsonl_gz, load, query, wait_until


def test_postgres_copy_of_sitecore_jsonl_gz(sitecore_job, pg):
    job = sitecore_job(rows=2500, rows_per_file=1000)

    summary = run_transfer(
        job.sources,
        SqlSink("guests", conn_id="pg", mode="replace"),
        vendor=VENDOR,
        export_ref=job.export_ref,
        job_ref=job.job_ref,
    )

    assert summary.rows == 2500
    assert query(pg, "SELECT count(*), count(DISTINCT ref) FROM guests") == [(2500, 2500)]
    types = dict(query(pg, "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'guests'"))
    assert types["lifetimeValue"] == "double precision" and types["ref"] == "text"


def _trends_csv(tmp_path):
    lines = ["id|name|score|note"] + [f'{i}|"n|{i}"|{i / 2}|{"" if i % 2 else chr(34) * 2}' for i in range(5000)]
    csv_path = tmp_path / "trends.csv.gz"
    with gzip.open(csv_path, "wt") as f:
        f.write("\n".join(lines) + "\n")
    return csv_path


def test_postgres_csv_and_parquet_load_into_new_tables(tmp_path, pg):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(
        pa.table({"id": [1, 2], "seen": pa.array([datetime(2026, 1, 2, tzinfo=timezone.utc)] * 2, pa.timestamp("us", "UTC")),
                  "tags": [["x"], None], "blob": [b"\x00\x01", b"\\"]}),
        tmp_path / "p.parquet",
    )

    csv_summary = load([file_source(_trends_csv(tmp_path))], SqlSink("trends", conn_id="pg", csv_delimiter="|"))
    pq_summary = load([file_source(tmp_path / "p.parquet")], SqlSink("p", conn_id="pg"))

    assert csv_summary.rows == 5000 and pq_summary.rows == 2
    assert query(pg, "SELECT id, name, score, note FROM trends WHERE id IN (0, 1) ORDER BY id") == [
        (0, "n|0", 0, None), (1, "n|1", 0.5, None)
    ]
    types = dict(query(pg, "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'trends'"))
    assert types == {"id": "bigint", "name": "text", "score": "numeric", "note": "text", "_source_file": "text"}
    rows = query(pg, "SELECT id, seen, tags, blob FROM p ORDER BY id")
    assert rows[0][1] == datetime(2026, 1, 2, tzinfo=timezone.utc) and rows[0][2] == ["x"]  # jsonb
    assert bytes(rows[0][3]) == b"\x00\x01" and bytes(rows[1][3]) == b"\\" and rows[1][2] is None


def test_postgres_csv_into_an_existing_table_passes_straight_to_copy(tmp_path, pg, monkeypatch):
    pg.cursor().execute("CREATE TABLE trends (id BIGINT, name TEXT, score DOUBLE PRECISION, note TEXT)")

    def parsed(*args, **kwargs):
        raise AssertionError("CSV into an existing table must not be parsed in Python")

    monkeypatch.setattr(sink_mod, "read_batches", parsed)
    summary = load([file_source(_trends_csv(tmp_path))], SqlSink("trends", conn_id="pg", csv_delimiter="|"))

    assert summary.rows == 5000
    assert query(pg, "SELECT id, name, score, note FROM trends WHERE id IN (0, 1) ORDER BY id") == [
        (0, "n|0", 0.0, None), (1, "n|1", 0.5, None)
    ]


@pytest.mark.parametrize("columns", [["a"], ["a", "b"]])
@pytest.mark.parametrize("eol", ["\n", "\r\n"], ids=["lf", "crlf"])
def test_postgres_csv_pass_through_skips_empty_lines_as_the_readers_do(pg, columns, eol):
    """COPY takes an empty line for a record of one empty field (refused, or a row of NULL in a
    table of one column); the pass-through drops it, as the row and columnar readers skip it."""
    pg.cursor().execute(f"CREATE TABLE t ({', '.join(c + ' TEXT' for c in columns)})")
    rows = [",".join(f"{c}{i}" for c in columns) for i in range(3)]
    body = eol.join([",".join(columns), rows[0], "", rows[1], "", "", rows[2], "", ""]).encode()

    summary = load([ChunksSource("t.csv", [body[:9], body[9:]])], SqlSink("t", conn_id="pg"))

    assert summary.rows == 3
    assert query(pg, f"SELECT {', '.join(columns)} FROM t ORDER BY 1") == [tuple(r.split(",")) for r in rows]


def test_postgres_csv_pass_through_drops_empty_lines_wherever_the_chunks_end(pg):
    """With the file's name added to every record on the way, and empty lines inside a quoted value kept."""
    pg.cursor().execute("CREATE TABLE t (a TEXT, b TEXT, _source_file TEXT)")
    body = b'a,b\r\n1,2\r\n\r\n"x\r\n\r\ny",3\r\n\r\n'
    for cut in range(len(body)):
        pg.cursor().execute("TRUNCATE t; DROP TABLE IF EXISTS exports_manifest")
        load([ChunksSource("t.csv", [body[:cut], body[cut:]])], SqlSink("t", conn_id="pg"))
        assert query(pg, "SELECT a, b, _source_file FROM t ORDER BY a") == [
            ("1", "2", "t.csv"),
            ("x\r\n\r\ny", "3", "t.csv"),
        ], cut


def test_postgres_csv_with_a_quote_inside_an_unquoted_field_loads_as_the_readers_read_it(pg, caplog):
    """COPY would open a quoted section at ``x"y"z`` and load ``xyz``; the CSV reader keeps the
    quotes. The pass-through stops at that record, the file is rolled back and read again."""
    pg.cursor().execute("CREATE TABLE t (id BIGINT, v TEXT, note TEXT)")
    body = b'id,v,note\n1,"a,b",x\n2,x"y"z,w\n3,c,"z"\n'
    with caplog.at_level(logging.WARNING):
        summary = load([ChunksSource("t.csv", [body[:20], body[20:]])], SqlSink("t", conn_id="pg"))

    assert summary.rows == 3
    assert query(pg, "SELECT id, v, note FROM t ORDER BY id") == [(1, "a,b", "x"), (2, 'x"y"z', "w"), (3, "c", "z")]
    assert (
        "t.csv: its record 3 (a header row is record 1) has a '\"' inside a field that does not start with one "
        "(not RFC 4180): COPY would take it for a quote, the CSV reader keeps it in the value; the file is read "
        "by the CSV reader instead; starting the file again from its first byte"
    ) in caplog.text


def test_postgres_csv_with_line_breaks_of_two_kinds_loads_as_the_readers_read_it(pg, caplog):
    """COPY takes the first line break's kind and refuses another (a bare psycopg error before);
    the readers take each for a line break: the file is rolled back and read again."""
    pg.cursor().execute("CREATE TABLE t (a TEXT, b TEXT)")
    body = b'a,b\r\n1,"x\ny"\r\n2,y\n3,z\r\n'
    with caplog.at_level(logging.WARNING):
        assert load([ChunksSource("t.csv", [body[:9], body[9:]])], SqlSink("t", conn_id="pg")).rows == 3
    assert query(pg, "SELECT a, b FROM t ORDER BY a") == [("1", "x\ny"), ("2", "y"), ("3", "z")]
    assert "t.csv: its record 3 (a header row is record 1) has a line break of another kind than its first" in caplog.text


@pytest.mark.parametrize("existing", [True, False], ids=["into", "new"])
@pytest.mark.parametrize(
    ("name", "body", "where"),
    [
        ("t.csv", b"a,b\n1,x\n2,x\x00y\n", "t.csv, row 2: a column of t"),
        ("t.jsonl", b'{"a":"1","b":"x"}\n{"a":"2","b":"x\\u0000y"}\n', "t.jsonl, row 2: column 'b' of t"),
    ],
    ids=["csv", "jsonl"],
)
def test_a_nul_character_is_refused_naming_its_row(pg, existing, name, body, where):
    """PostgreSQL's text holds no NUL: the load is refused naming the row (and the column where
    COPY names it), never a bare CharacterNotInRepertoire; nothing is committed."""
    if existing:
        pg.cursor().execute("CREATE TABLE t (a TEXT, b TEXT)")
    with pytest.raises(TransferRefused) as refused:
        load([ChunksSource(name, [body])], SqlSink("t", conn_id="pg"))
    assert str(refused.value).startswith(where), refused.value
    assert "the value there is text with a NUL character (\\u0000), which it cannot hold" in str(refused.value)
    assert query(pg, "SELECT to_regclass('t') IS NOT NULL") == [(existing,)]
    if existing:
        assert query(pg, "SELECT count(*) FROM t") == [(0,)]


def _random_csv(rng: random.Random) -> bytes:
    """RFC 4180 records of two fields (quoted or not, line breaks and quotes inside quotes), empty
    lines, ragged records, a byte-order mark here and there, and, not RFC 4180, a quote inside an
    unquoted field now and then (which COPY would read otherwise), with LF or CRLF breaks, or now
    and then a mix of LF, CRLF and CR in one file (which COPY refuses)."""
    eol = rng.choice(["\n", "\r\n"])
    lines = ["a,b"]
    for _ in range(rng.randint(0, 8)):
        kind = rng.random()
        if kind < 0.25:
            lines.append("")
        elif kind < 0.3:
            lines.append(rng.choice(["x", "x,y,z", " "]))  # ragged: refused by every path
        else:
            fields = []
            for _ in range(2):
                text = "".join(rng.choice(["p", "é", " ", "\ufeff", "\n", '"', ","]) for _ in range(rng.randint(0, 4)))
                quoted = rng.random() < 0.5 or any(c in text for c in '",\n')
                fields.append('"' + text.replace('"', '""') + '"' if quoted else text)
                if rng.random() < 0.04:
                    fields[-1] = rng.choice(['p"', '5" x', ' "p"', '"p"q"', 'p"",'])
            lines.append(",".join(fields))
    if rng.random() < 0.15:  # line breaks of every kind in one file: COPY takes only its first kind
        return "".join(line + rng.choice(["\n", "\r\n", "\r"]) for line in lines).encode()
    return (eol.join(lines) + rng.choice(["", eol, eol * 2])).encode()


@pytest.mark.parametrize("seed", range(2))
def test_postgres_csv_pass_through_loads_random_csv_as_the_row_reader_reads_it(pg, seed):
    """Into an existing table, COPY reads the bytes (not Python): the same rows as the row reader
    (an empty field NULL, quoted or not), or a refusal where it refuses, over random files; a file
    whose quotes or line breaks COPY would read otherwise is read again, by the readers."""
    from airflow_provider_exports.transfers.engine.formats import read_csv

    rng = random.Random(seed)
    for case in range(60):
        body = _random_csv(rng)
        try:
            want = sorted((r for b in read_csv([body]) for r in b.rows), key=repr)
        except TransferError:
            want = None
        pg.cursor().execute("DROP TABLE IF EXISTS t, exports_manifest; CREATE TABLE t (a TEXT, b TEXT)")
        cut = rng.randint(0, len(body))
        try:
            load([ChunksSource("t.csv", [body[:cut], body[cut:]])], SqlSink("t", conn_id="pg"))
        except Exception:  # COPY's own errors too: a refusal either way
            got = None
        else:
            got = sorted(query(pg, "SELECT a, b FROM t"), key=repr)
        assert got == want, (case, body)


@pytest.mark.parametrize("mode", ["append", "replace", "merge"])
def test_postgres_load_that_fails_halfway_leaves_the_table_unchanged(tmp_path, pg, mode):
    good = jsonl_gz(tmp_path / "good.jsonl.gz", [{"id": i, "v": "new"} for i in range(2000)])
    bad = jsonl_gz(tmp_path / "bad.jsonl.gz", [{"id": 5000, "v": "new"}, {"id": "not a number", "v": "x"}])
    cur = pg.cursor()
    cur.execute("CREATE TABLE t (id BIGINT, v TEXT); INSERT INTO t VALUES (0, 'old'), (1, 'old')")

    sink = SqlSink("t", conn_id="pg", mode=mode, key_columns=["id"] if mode == "merge" else ())
    with pytest.raises(Exception, match=r"(?i)invalid input syntax|bigint"):
        load([file_source(good), file_source(bad)], sink)

    assert query(pg, "SELECT id, v FROM t ORDER BY id") == [(0, "old"), (1, "old")]
    assert query(pg, "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1") == [
        ("exports_manifest",), ("t",)
    ]


def test_postgres_merge_and_rerun_skip(tmp_path, pg):
    day1 = jsonl_gz(tmp_path / "d1.jsonl.gz", [{"id": i, "v": "one"} for i in range(5)])
    day2 = jsonl_gz(tmp_path / "d2.jsonl.gz", [{"id": i, "v": "two"} for i in range(3, 8)])
    sink = SqlSink("public.m", conn_id="pg", mode="merge", key_columns=["id"])

    load([file_source(day1)], sink, "j1")
    load([file_source(day2)], sink, "j2")
    skipped = load([file_source(day2)], sink, "j2")

    assert skipped.skipped
    assert query(pg, "SELECT v, count(*) FROM m GROUP BY v ORDER BY v") == [("one", 3), ("two", 5)]
    assert query(pg, "SELECT job_ref FROM exports_manifest ORDER BY committed_at") == [("j1",), ("j2",)]


# --- replace keeps the table ----------------------------------------------------------------------------


def test_replace_keeps_index_primary_key_check_grant_and_dependent_view(pg):
    pg.cursor().execute(
        """
        CREATE TABLE members (id BIGINT PRIMARY KEY, tier TEXT CHECK (tier <> ''), points BIGINT);
        CREATE INDEX members_tier ON members (tier);
        DROP ROLE IF EXISTS exports_reader; CREATE ROLE exports_reader;
        GRANT SELECT ON members TO exports_reader;
        INSERT INTO members VALUES (1, 'gold', 10), (2, 'silver', 5);
        CREATE VIEW gold_members AS SELECT id, points FROM members WHERE tier = 'gold';
        """
    )
    rows = [{"id": 3, "tier": "gold", "points": 30}, {"id": 4, "tier": "bronze", "points": 1}]

    load([ChunksSource("m.jsonl", jsonl(rows))], SqlSink("members", conn_id="pg", mode="replace"))

    assert query(pg, "SELECT id, tier, points FROM members ORDER BY id") == [(3, "gold", 30), (4, "bronze", 1)]
    assert query(pg, "SELECT id, points FROM gold_members") == [(3, 30)]
    assert query(pg, "SELECT indexname FROM pg_indexes WHERE tablename = 'members' ORDER BY 1") == [
        ("members_pkey",), ("members_tier",)
    ]
    assert query(pg, "SELECT has_table_privilege('exports_reader', 'members', 'SELECT')") == [(True,)]
    constraints = query(pg, "SELECT contype FROM pg_constraint WHERE conrelid = 'members'::regclass ORDER BY 1")
    assert constraints == [("c",), ("p",)]
    with pytest.raises(Exception, match="check constraint"):
        pg.cursor().execute("INSERT INTO members VALUES (9, '', 0)")
    pg.cursor().execute("DROP VIEW gold_members; DROP TABLE members; DROP ROLE exports_reader")


def test_replace_is_invisible_to_other_sessions_until_it_commits(pg):
    pg.cursor().execute("CREATE TABLE t (id BIGINT, v TEXT); INSERT INTO t VALUES (1, 'old'), (2, 'old')")
    source = ChunksSource("x.jsonl", jsonl([{"id": i, "v": "new"} for i in range(10, 20)]), pause_before=5)
    sink = SqlSink("t", conn_id="pg", mode="replace", batch_size=1)

    with ThreadPoolExecutor(1) as pool:
        running = pool.submit(load, [source], sink)
        assert source.paused.wait(WAIT)
        # the load is mid-file: its DELETE and five rows are in, uncommitted
        wait_until(
            lambda: query(pg, "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
                              "WHERE c.relname = 't' AND l.mode = 'RowExclusiveLock'") == [(1,)],
            "the load holds the table for writing",
        )
        seen_meanwhile = query(pg, "SELECT id, v FROM t ORDER BY id")
        source.resume.set()
        running.result(WAIT)

    assert seen_meanwhile == [(1, "old"), (2, "old")]
    assert query(pg, "SELECT min(id), max(id), count(*), min(v) FROM t") == [(10, 19, 10, "new")]


# --- one load per table at a time, once per job ---------------------------------------------------------


def _waiting_for_the_table_lock(pg) -> bool:
    return query(pg, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted") == [(1,)]


@pytest.mark.parametrize("same_job", [True, False], ids=["same-job", "other-job"])
def test_two_threads_load_one_after_the_other_and_a_job_once(pg, same_job):
    pg.cursor().execute("CREATE TABLE t (id BIGINT, v TEXT)")
    first = ChunksSource("x.jsonl", jsonl([{"id": i, "v": "first"} for i in range(6)]), pause_before=3)
    second = ChunksSource("x.jsonl", jsonl([{"id": i, "v": "second"} for i in range(6)]))
    sink = {"conn_id": "pg", "mode": "replace", "batch_size": 1}

    with ThreadPoolExecutor(2) as pool:
        a = pool.submit(load, [first], SqlSink("t", **sink), "job-1")
        assert first.paused.wait(WAIT)
        b = pool.submit(load, [second], SqlSink("t", **sink), "job-1" if same_job else "job-2")
        wait_until(lambda: _waiting_for_the_table_lock(pg), "the second run waits for the first")
        first.resume.set()
        a_summary, b_summary = a.result(WAIT), b.result(WAIT)

    assert not a_summary.skipped and b_summary.skipped is same_job
    winner = "first" if same_job else "second"
    assert query(pg, "SELECT count(*), min(v), max(v) FROM t") == [(6, winner, winner)]
    assert query(pg, "SELECT count(*) FROM exports_manifest") == [(1 if same_job else 2,)]


#: a fresh Python importing Airflow on a busy 2-core machine can take a minute or more
STARTUP = 300.0

_CHILD = """
import json, sys
from contextlib import contextmanager
from airflow_provider_exports.transfers.engine import OpenedStream, SourceFile, SqlSink, run_transfer

class Path(SourceFile):
    def open(self, offset, chunk_size=1 << 20, *, if_range=None):
        @contextmanager
        def opened():
            with open(sys.argv[1], "rb") as f:
                yield OpenedStream(iter(lambda: f.read(64), b""), None)
        return opened()

summary = run_transfer([Path("x.jsonl")], SqlSink("t", conn_id="pg", mode="replace", batch_size=1),
                       vendor="V", export_ref="e", job_ref="job-1")
print(json.dumps(summary.to_dict()))
"""


def test_two_processes_of_the_same_job_one_loads_the_other_skips(pg, tmp_path):
    pg.cursor().execute("CREATE TABLE t (id BIGINT, v TEXT)")
    data = b"".join(jsonl([{"id": i, "v": "x" * 40} for i in range(50)]))
    fifo, plain = tmp_path / "first.fifo", tmp_path / "second.jsonl"
    os.mkfifo(fifo)
    plain.write_bytes(data)

    started: list[subprocess.Popen] = []

    def child(path):
        started.append(subprocess.Popen([sys.executable, "-c", _CHILD, str(path)], stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, env=os.environ.copy(), text=True))
        return started[-1]

    first = child(fifo)
    try:
        writer: list[int] = []

        def reader_is_there() -> bool:  # the first process reads its file once it holds the table
            try:
                writer.append(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
            except OSError:
                return first.poll() is not None
            return True

        wait_until(reader_is_there, "the first process reads its file", STARTUP)
        assert writer, first.communicate()[1][-3000:]
        os.set_blocking(writer[0], True)
        os.write(writer[0], data[: len(data) // 2])
        second = child(plain)
        wait_until(lambda: _waiting_for_the_table_lock(pg) or second.poll() is not None,
                   "the second process waits for the first", STARTUP)
        os.write(writer[0], data[len(data) // 2 :])
        os.close(writer[0])
        outs = [p.communicate(timeout=STARTUP) for p in (first, second)]
    finally:
        for p in started:  # only a failed test leaves one running
            if p.poll() is None:
                p.kill()
    for p, (_, err) in zip((first, second), outs, strict=True):
        assert p.returncode == 0, err[-3000:]
    summaries = [json.loads(out.strip().splitlines()[-1]) for out, _ in outs]

    assert [s["skipped"] for s in summaries] == [False, True]
    assert summaries[1]["run_id"] == summaries[0]["run_id"]
    assert query(pg, "SELECT count(*), count(DISTINCT id) FROM t") == [(50, 50)]
    assert query(pg, "SELECT count(*) FROM exports_manifest") == [(1,)]


def test_a_run_waiting_for_the_table_stops_when_cancelled(pg):
    from airflow_provider_exports.exceptions import TransferCancelled
    from airflow_provider_exports.transfers.engine import Cancellation

    pg.cursor().execute("CREATE TABLE t (id BIGINT)")
    first = ChunksSource("x.jsonl", jsonl([{"id": 1}, {"id": 2}]), pause_before=1)
    cancellation = Cancellation()
    with ThreadPoolExecutor(2) as pool:
        a = pool.submit(load, [first], SqlSink("t", conn_id="pg"), "job-1")
        assert first.paused.wait(WAIT)
        b = pool.submit(load, [ChunksSource("y.jsonl", jsonl([{"id": 3}]))], SqlSink("t", conn_id="pg"), "job-2",
                        cancellation=cancellation)
        wait_until(lambda: _waiting_for_the_table_lock(pg), "the second run waits for the first")
        cancellation.cancel("the task was killed")
        with pytest.raises(TransferCancelled, match="killed"):
            b.result(WAIT)
        first.resume.set()
        a.result(WAIT)

    assert query(pg, "SELECT id FROM t ORDER BY id") == [(1,), (2,)]


# --- psycopg2 ---------------------------------------------------------------------------------------------


class _Psycopg2Hook:
    """A DbApiHook stand-in that hands out psycopg2 connections (the provider's fallback driver)."""

    conn_name_attr = "conn_id"
    conn_id = "pg2"
    escape_word_format = '"{}"'
    placeholder = "%s"

    def __init__(self, postgres) -> None:
        self.postgres = postgres

    def get_conn(self):
        import psycopg2

        return psycopg2.connect(self.postgres.uri)


def test_psycopg2_copies_rows_and_restarts_a_file(pg, postgres, tmp_path):
    pytest.importorskip("psycopg2")
    pg.cursor().execute("CREATE TABLE trends (id BIGINT, name TEXT, score DOUBLE PRECISION, note TEXT)")
    hook = _Psycopg2Hook(postgres)
    changing = ChunksSource("a.jsonl", jsonl([{"id": 1, "v": "tab\there"}, {"id": 2, "v": None}]),
                            changed=jsonl([{"id": 9, "v": "gone"}] * 4))

    load([changing], SqlSink("t", hook=hook, batch_size=1))  # type: ignore[arg-type]
    load([file_source(_trends_csv(tmp_path))], SqlSink("trends", hook=hook, csv_delimiter="|"), "j2")  # type: ignore[arg-type]

    assert query(pg, "SELECT id, v FROM t ORDER BY id") == [(1, "tab\there"), (2, None)]
    assert query(pg, "SELECT count(*), max(score) FROM trends") == [(5000, 2499.5)]


def test_copy_text_encoding_escapes_and_nulls():
    rows = [("a\tb\\c\nd", None, 1, 1.5, True), ("", "x", None, None, False)]
    assert encode_copy_text(rows) == b"a\\tb\\\\c\\nd\t\\N\t1\t1.5\tt\n\tx\t\\N\t\\N\tf\n"


def test_advisory_lock_is_per_table(pg):
    """Loads of two different tables do not wait for each other."""
    pg.cursor().execute("CREATE TABLE a (id BIGINT); CREATE TABLE b (id BIGINT)")
    first = ChunksSource("x.jsonl", jsonl([{"id": 1}, {"id": 2}]), pause_before=1)
    with ThreadPoolExecutor(1) as pool:
        a = pool.submit(load, [first], SqlSink("a", conn_id="pg"))
        assert first.paused.wait(WAIT)
        other = threading.Thread(target=load, args=([ChunksSource("y.jsonl", jsonl([{"id": 3}]))], SqlSink("b", conn_id="pg")))
        other.start()
        other.join(WAIT)
        finished_while_a_was_open = not other.is_alive()
        first.resume.set()
        a.result(WAIT)

    assert finished_while_a_was_open
    assert query(pg, "SELECT id FROM b") == [(3,)]


# --- every row counted -------------------------------------------------------------------------------------

NOTES = b"note\nfirst\n\\.\nthird\nfourth\n"  # a 4-row file, \. alone on line 3


def _hook(driver, postgres):
    return {"conn_id": "pg"} if driver == "psycopg" else {"hook": _Psycopg2Hook(postgres)}


@pytest.mark.parametrize("driver", ["psycopg", "psycopg2"])
@pytest.mark.parametrize(
    "chunks",
    [[NOTES], [NOTES[: NOTES.index(b"\\") + 1], NOTES[NOTES.index(b"\\") + 1 :]], [NOTES.replace(b"\n", b"\r\n")]],
    ids=["whole", "cut-after-backslash", "crlf"],
)
def test_a_backslash_dot_line_loads_as_a_value_not_as_the_end_of_the_data(pg, postgres, driver, chunks):
    """PostgreSQL up to 17 ends COPY's CSV at an unquoted \\. line: main loaded 1 row of these 4."""
    pg.cursor().execute("CREATE TABLE notes (note TEXT)")

    summary = load([ChunksSource("notes.csv", chunks)], SqlSink("notes", **_hook(driver, postgres)))

    assert summary.rows == 4
    assert sorted(query(pg, "SELECT note FROM notes")) == [("\\.",), ("first",), ("fourth",), ("third",)]


def test_a_backslash_dot_line_that_is_no_row_of_the_table_is_refused_with_nothing_committed(pg):
    cur = pg.cursor()
    cur.execute("CREATE TABLE t (id BIGINT, v TEXT); INSERT INTO t VALUES (0, 'old')")
    data = b"id,v\n1,a\n\\.\n3,c\n4,d\n"

    # the record after the header's is row 2 (COPY's line 3), and the value is not shown
    with pytest.raises(TransferRefused, match=r"^t\.csv, row 2: column 'id' of t is bigint, and the value there is text,"):
        load([ChunksSource("t.csv", [data])], SqlSink("t", conn_id="pg", mode="replace"))

    assert query(pg, "SELECT id, v FROM t") == [(0, "old")]
    assert query(pg, "SELECT count(*) FROM exports_manifest") == [(0,)]


_DROPS_ROWS = """
CREATE TABLE t (id BIGINT, v TEXT);
INSERT INTO t VALUES (0, 'old');
CREATE FUNCTION drop_marked() RETURNS trigger LANGUAGE plpgsql AS
    $$ BEGIN IF NEW.v = 'drop' THEN RETURN NULL; END IF; RETURN NEW; END $$;
CREATE TRIGGER drop_marked BEFORE INSERT ON t FOR EACH ROW EXECUTE FUNCTION drop_marked();
"""
_ROWS = [{"id": 1, "v": "a"}, {"id": 2, "v": "drop"}, {"id": 3, "v": "c"}]


@pytest.mark.parametrize("driver", ["psycopg", "psycopg2"])
@pytest.mark.parametrize("path", ["csv-passthrough", "jsonl-columnar", "jsonl-rows", "executemany"])
def test_rows_the_database_did_not_take_fail_the_load_before_its_commit(pg, postgres, monkeypatch, driver, path):
    """A trigger that skips a row stands in for any way a database takes fewer rows than were sent."""
    pg.cursor().execute(_DROPS_ROWS)
    if path == "csv-passthrough":
        source = ChunksSource("t.csv", [b"id,v\n1,a\n2,drop\n3,c\n"])
    else:
        source = ChunksSource("t.jsonl", jsonl(_ROWS))
    if path == "jsonl-rows":  # without pyarrow: psycopg 3's write_row, psycopg2's COPY text
        monkeypatch.setattr(sink_mod, "_has_pyarrow", lambda: False)
    sink = SqlSink("t", mode="replace", use_copy=path != "executemany", **_hook(driver, postgres))

    with pytest.raises(TransferIntegrityError, match=rf"{source.name}: 3 row\(s\) read, but the database took 2"):
        load([source], sink)

    assert query(pg, "SELECT id, v FROM t") == [(0, "old")]
    assert query(pg, "SELECT count(*) FROM exports_manifest") == [(0,)]


def test_a_csv_header_with_an_unclosed_quote_stops_at_max_csv_header_bytes(pg, monkeypatch):
    monkeypatch.setenv("AIRFLOW__EXPORTS__MAX_CSV_HEADER_BYTES", str(64 * 1024))
    pg.cursor().execute("CREATE TABLE t (id BIGINT, v TEXT)")
    line = b"x" * 1023 + b"\n"
    chunks = [b'id,"v\n'] + [line * 64] * 128  # 8 MiB without the quote's end, in 64 KiB chunks
    read: list[int] = []

    class Counted(ChunksSource):
        def _chunks(self):
            for chunk in super()._chunks():
                read.append(len(chunk))
                yield chunk

    with pytest.raises(LimitExceeded, match=r"t\.csv: its CSV header row.*max_csv_header_bytes"):
        load([Counted("t.csv", chunks)], SqlSink("t", conn_id="pg"))

    assert sum(read) < 4 * 64 * 1024  # what is past the bound is not read
    assert query(pg, "SELECT count(*) FROM t") == [(0,)]


@pytest.mark.parametrize("binary", [True, False], ids=["binary-copy", "csv-copy"])
def test_a_field_the_existing_table_lacks_is_refused_by_name_whatever_the_copy(pg, binary, monkeypatch):
    """Into an existing table, columnar blocks go as binary COPY (the table's types) or CSV; a
    field the table has no column for is refused under ``on_schema_change="fail"``, naming it,
    before a row is written."""
    from airflow_provider_exports.exceptions import TransferRefused

    if not binary:
        monkeypatch.setattr(sink_mod, "_has_module", lambda name: name != "pgpq")
    pg.cursor().execute("CREATE TABLE t (id BIGINT, name TEXT); INSERT INTO t VALUES (0, 'kept')")
    rows = [{"id": 1, "name": "a", "tier": "gold"}]
    with pytest.raises(TransferRefused, match="t has no column 'tier'"):
        sink = SqlSink("t", conn_id="pg", on_schema_change="fail")
        load([ChunksSource("a.jsonl", jsonl(rows))], sink, job_ref="lacks")
    assert query(pg, "SELECT id, name FROM t") == [(0, "kept")]
