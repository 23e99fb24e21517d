"""Benchmark: three ways to send Arrow record batches into PostgreSQL, side by side, in one run.

The SQL sink's bulk path takes Arrow batches (from pyarrow's CSV, JSON and Parquet readers) to
``COPY``. This measures, on the same table (the sandbox's Sitecore guests, JSON lines read by
pyarrow), alternating, ``--runs`` times, each into a fresh table of the Arrow schema's types:

  csv-text     pyarrow's C++ CSV writer, then ``COPY ... (FORMAT csv)`` through psycopg (the server
               parses the text with each column type's input function, as ``CAST`` does)
  pgpq-binary  pgpq's encoder (Rust), then ``COPY ... (FORMAT binary)`` through psycopg
  adbc-ingest  the ADBC PostgreSQL driver's bulk ingest (``adbc_ingest``, binary COPY in C++), on a
               connection of its own

Reading and parsing are outside the timing (the table is read once, before); what is timed is the
encoding and the ``COPY`` until its commit. The choice it informed is in the README ("SQL: how rows
get there").

    python benchmarks/arrow_copy.py --rows 1000000 --runs 3 [--json]
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
METHODS = ("csv-text", "pgpq-binary", "adbc-ingest")


def _table(rows: int, cache: Path) -> Any:
    import gzip

    import pyarrow as pa
    import pyarrow.json as pj
    from sql_load import guests_jsonl_gz

    with gzip.open(guests_jsonl_gz(cache, rows), "rb") as fh:
        return pj.read_json(pa.BufferReader(fh.read()))


def _ddl(table: Any, name: str) -> str:
    import pyarrow as pa

    def sql_type(t: Any) -> str:
        if pa.types.is_integer(t):
            return "BIGINT"
        if pa.types.is_floating(t):
            return "DOUBLE PRECISION"
        if pa.types.is_boolean(t):
            return "BOOLEAN"
        return "TEXT"

    cols = ", ".join(f'"{f.name}" {sql_type(f.type)}' for f in table.schema)
    return f"CREATE TABLE {name} ({cols})"


def load(method: str, table: Any, uri: str, name: str) -> float:
    import psycopg

    t0 = time.perf_counter()
    if method == "adbc-ingest":
        import adbc_driver_postgresql.dbapi as adbc

        with adbc.connect(uri) as conn, conn.cursor() as cur:
            cur.adbc_ingest(name, table.to_reader(max_chunksize=65_536), mode="create")
            conn.commit()
        return time.perf_counter() - t0
    with psycopg.connect(uri) as conn, conn.cursor() as cur:
        cur.execute(_ddl(table, name))
        if method == "csv-text":
            import pyarrow.csv as pcsv

            with cur.copy(f"COPY {name} FROM STDIN WITH (FORMAT csv)") as copy:
                for batch in table.to_batches(max_chunksize=65_536):
                    out = io.BytesIO()
                    pcsv.write_csv(batch, out, pcsv.WriteOptions(include_header=False))
                    copy.write(out.getbuffer())
        else:
            from pgpq import ArrowToPostgresBinaryEncoder

            encoder = ArrowToPostgresBinaryEncoder(table.schema)
            with cur.copy(f"COPY {name} FROM STDIN WITH (FORMAT binary)") as copy:
                copy.write(encoder.write_header())
                for batch in table.to_batches(max_chunksize=65_536):
                    copy.write(encoder.write_batch(batch))
                copy.write(encoder.finish())
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--cache-dir", type=Path, default=Path(tempfile.gettempdir()) / "exports-bench-cache")
    parser.add_argument("--json", action="store_true", help="one JSON line per method, last")
    args = parser.parse_args(argv)
    sys.path[:0] = [str(REPO / "sandbox"), str(REPO / "benchmarks")]
    from airflow_provider_exports_sandbox.local_services import PostgresCluster

    table = _table(args.rows, args.cache_dir)
    seconds: dict[str, list[float]] = {m: [] for m in METHODS}
    with PostgresCluster() as cluster:
        admin = cluster.connect()
        admin.autocommit = True
        for run in range(args.runs):
            for method in METHODS:
                name = f"bench_{method.replace('-', '_')}"
                admin.cursor().execute(f"DROP TABLE IF EXISTS {name}")
                took = load(method, table, cluster.uri, name)
                cur = admin.cursor()
                cur.execute(f"SELECT count(*) FROM {name}")
                (count,) = cur.fetchone()
                if count != table.num_rows:
                    raise RuntimeError(f"{method}: {count} rows, expected {table.num_rows}")
                seconds[method].append(took)
                print(f"run {run + 1}/{args.runs} {method:12s} {took:6.2f} s", file=sys.stderr, flush=True)
        admin.close()
    base = statistics.median(seconds["csv-text"])
    for method in METHODS:
        median = statistics.median(seconds[method])
        line = {"method": method, "seconds": round(median, 3), "over_csv_text": round(median / base, 3)}
        print(
            json.dumps(line)
            if args.json
            else f"{method:12s} {median:6.2f} s  {median / base:5.2f} x csv-text"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
