"""Fixtures and sources for the SQL sink tests: SQLite files and the session's real PostgreSQL."""

from __future__ import annotations

import gzip
import json
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_exports.exceptions import SourceChanged
from airflow_provider_exports.transfers.engine import OpenedStream, SourceFile, run_transfer

VENDOR = "Sitecore CDP"
WAIT = 60.0  # seconds a test waits for another thread or process before it fails


@pytest.fixture
def pg(postgres, monkeypatch):
    """The session's PostgreSQL behind the Airflow connection ``pg``; a clean schema per test."""
    monkeypatch.setenv("AIRFLOW_CONN_PG", postgres.airflow_conn_json())
    conn = postgres.connect()
    conn.autocommit = True
    cur = conn.cursor()
    cur.execute("DROP SCHEMA IF EXISTS public CASCADE; CREATE SCHEMA public")
    yield conn
    conn.close()


@dataclass
class Db:
    """One warehouse under test: its connection id and a way to look at it from outside the load."""

    kind: str
    conn_id: str
    handle: Any  # the SQLite file, or an autocommit PostgreSQL connection

    def query(self, sql: str) -> list[tuple]:
        return query(self.handle, sql)

    def run(self, sql: str) -> None:
        if self.kind == "sqlite":
            with sqlite3.connect(self.handle) as conn:
                conn.executescript(sql)
            return
        self.handle.cursor().execute(sql)

    def column_types(self, table: str) -> dict[str, str]:
        """The table's column types, upper case (``DOUBLE PRECISION``, ``BIGINT``, ``TEXT``...)."""
        if self.kind == "sqlite":
            return {name: t.upper() for _, name, t, *_ in self.query(f"PRAGMA table_info({table})")}
        rows = self.query(
            f"SELECT column_name, data_type FROM information_schema.columns WHERE table_name = '{table}'"
        )
        return {name: t.upper() for name, t in rows}


@pytest.fixture(params=["sqlite", "postgres"])
def db(request) -> Db:
    """The same test on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        return Db("sqlite", "warehouse", request.getfixturevalue("warehouse"))
    return Db("postgres", "pg", request.getfixturevalue("pg"))


def query(db: Any, sql: str) -> list[tuple]:
    if isinstance(db, Path):
        with sqlite3.connect(db) as conn:
            return conn.execute(sql).fetchall()
    cur = db.cursor()
    cur.execute(sql)
    return cur.fetchall()


def jsonl_gz(path: Path, rows: list[dict]) -> Path:
    with gzip.open(path, "wt") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")
    return path


def load(sources, sink, job_ref="job-1", **kwargs):
    return run_transfer(sources, sink, vendor=VENDOR, export_ref="loyalty_members", job_ref=job_ref, **kwargs)


def jsonl(rows: Sequence[dict]) -> list[bytes]:
    """JSON lines, one chunk per line."""
    return [json.dumps(r).encode() + b"\n" for r in rows]


class ChunksSource(SourceFile):
    """A file held in memory as chunks, of unknown size.

    ``pause_before``: before that chunk, set ``paused`` and wait for ``resume`` (the load is then
    mid-file, its transaction open). ``changed``: the chunks of an earlier version of the file,
    of which the first read delivers half and then fails with :class:`SourceChanged`.
    """

    def __init__(
        self,
        name: str,
        chunks: Sequence[bytes],
        *,
        pause_before: int | None = None,
        changed: Sequence[bytes] | None = None,
    ) -> None:
        super().__init__(name)
        self.chunks = list(chunks)
        self.pause_before = pause_before
        self.paused = threading.Event()
        self.resume = threading.Event()
        self.changed = list(changed) if changed is not None else None

    def open(self, offset: int, chunk_size: int = 1 << 20, *, if_range: str | None = None):
        @contextmanager
        def opened() -> Iterator[OpenedStream]:
            yield OpenedStream(self._chunks(), None, start=0)

        return opened()

    def _chunks(self) -> Iterator[bytes]:
        if self.changed is not None:
            old, self.changed = self.changed, None
            yield from old[: len(old) // 2]
            raise SourceChanged(f"{self.name} changed at the source while it was read")
        for i, chunk in enumerate(self.chunks):
            if i == self.pause_before:
                self.paused.set()
                if not self.resume.wait(WAIT):
                    raise AssertionError("the test never resumed the load")
            yield chunk


def file_source(path: Path) -> ChunksSource:
    """A small file on disk as a source (read whole)."""
    return ChunksSource(path.name, [path.read_bytes()])


def wait_until(predicate, what: str, timeout: float = WAIT) -> None:
    """Poll ``predicate`` until it holds (a condition, not a guess at a duration)."""
    pause = threading.Event()
    for _ in range(int(timeout / 0.02)):
        if predicate():
            return
        pause.wait(0.02)
    raise AssertionError(f"timed out waiting until {what}")
