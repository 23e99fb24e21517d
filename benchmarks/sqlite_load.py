"""Benchmark: JSON lines into SQLite through the SQL sink, beside the ADBC SQLite driver's bulk ingest.

The issue that brought Arrow to the SQL sink asked for the ADBC SQLite driver "if it measures
faster". This loads the sandbox's Sitecore guests (gzipped JSON lines, built once into the cache)
into a new table of a fresh SQLite file, alternating, ``--runs`` times, each in a fresh process:

  sink          the SQL sink (the row path: ``executemany`` in one transaction, typed at commit)
  adbc-ingest   the same rows read by pyarrow, then ``adbc_ingest`` (ADBC SQLite, C) on its own
                connection: no row count check, no manifest, no lock, Arrow's types

    python benchmarks/sqlite_load.py [--rows 1000000] [--runs 3] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
METHODS = ("sink", "adbc-ingest")


def child(method: str, source: Path, db: Path) -> dict[str, Any]:
    import airflow.sdk  # noqa: F401 - a worker has Airflow imported before the task runs
    from transfer import _cpu_seconds, _DiskSource, _peak_rss_mb

    cpu0, t0 = _cpu_seconds(), time.perf_counter()
    if method == "sink":
        from airflow_provider_exports.transfers.engine import SqlSink, run_transfer

        os.environ["AIRFLOW_CONN_BENCH_SQLITE"] = json.dumps({"conn_type": "sqlite", "host": str(db)})
        sink = SqlSink("guests", conn_id="bench_sqlite", batch_size=20_000)
        run_transfer([_DiskSource(source)], sink, vendor="bench", export_ref="bench", job_ref=method)
    else:
        import gzip

        import adbc_driver_sqlite.dbapi as adbc
        import pyarrow as pa
        import pyarrow.json as pj

        with gzip.open(source, "rb") as fh:
            table = pj.read_json(pa.BufferReader(fh.read()))
        with adbc.connect(str(db)) as conn, conn.cursor() as cur:
            cur.adbc_ingest("guests", table, mode="create")
            conn.commit()
    return {"seconds": time.perf_counter() - t0, "cpu_seconds": _cpu_seconds() - cpu0, "peak_rss_mb": _peak_rss_mb()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--cache-dir", type=Path, default=Path(tempfile.gettempdir()) / "exports-bench-cache")
    parser.add_argument("--json", action="store_true", help="one JSON line per method")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    sys.path[:0] = [str(REPO / "sandbox"), str(REPO / "benchmarks")]
    if args.child:
        method, source, db = args.child
        print(json.dumps(child(method, Path(source), Path(db))))
        return 0
    from sql_load import guests_jsonl_gz

    source = guests_jsonl_gz(args.cache_dir, args.rows, lambda *a: print(*a, file=sys.stderr))
    home = Path(tempfile.mkdtemp(prefix="exports-bench-home-"))
    env = {**os.environ, "AIRFLOW_HOME": str(home), "AIRFLOW__CORE__UNIT_TEST_MODE": "True", "PYTHONPATH": str(REPO)}
    results: dict[str, list[dict[str, Any]]] = {m: [] for m in METHODS}
    for run in range(args.runs):
        for method in METHODS:
            db = home / f"{method}-{run}.db"
            proc = subprocess.run(
                [sys.executable, __file__, "--child", method, str(source), str(db)],
                env=env, capture_output=True, text=True, check=False,
            )
            if proc.returncode:
                raise RuntimeError(f"{method} failed:\n{proc.stderr[-3000:]}")
            res = json.loads(proc.stdout.strip().splitlines()[-1])
            with sqlite3.connect(db) as conn:
                (count,) = conn.execute("SELECT count(*) FROM guests").fetchone()
            if count != args.rows:
                raise RuntimeError(f"{method}: {count} rows, expected {args.rows}")
            results[method].append(res)
            print(f"run {run + 1}/{args.runs} {method:12s} {res['seconds']:6.2f} s  CPU {res['cpu_seconds']:6.2f} s  "
                  f"peak RSS {res['peak_rss_mb']:6.1f} MB", file=sys.stderr, flush=True)
    base = statistics.median(r["seconds"] for r in results["sink"])
    for method in METHODS:
        median = statistics.median(r["seconds"] for r in results[method])
        line = {"method": method, "seconds": round(median, 3), "over_sink": round(median / base, 3), "rows": args.rows}
        print(json.dumps(line) if args.json else f"{method:12s} {median:6.2f} s  {median / base:5.2f} x sink")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
