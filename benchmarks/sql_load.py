"""Benchmark: CSV, JSON lines and Parquet into PostgreSQL through the SQL sink, beside ``psql \\copy``.

Starts a private PostgreSQL (as the tests do), builds synthetic files once into a cache (the
sandbox's Sitecore guests as gzipped JSON lines, its AEP XDM profiles as snappy Parquet) and the
same rows as CSV, then measures, alternating, ``--runs`` times, each in a fresh Python process
with Airflow imported (as a worker runs a task):

  jsonl-new       the sink loading the JSON lines into a new table (created at the first rows,
                  typed from every value)
  jsonl-into      the same into an existing, empty table of those types (what ``\\copy`` is
                  given)
  copy-jsonl      ``psql -c "\\copy ... FROM file.csv (FORMAT csv)"`` of the same rows as CSV into
                  an empty table of the same types
  csv-new, csv-into, copy-csv
                  the same three for the guests as CSV (the file ``copy-jsonl`` copies): the sink
                  reads it itself
  parquet-new, parquet-into, copy-parquet
                  the same for the AEP Parquet with ``flatten_structs`` (struct fields as columns,
                  lists and maps as ``jsonb``); its CSV is the rows as the sink's row reader sees
                  them (nested values as JSON text)
  csv-replace, jsonl-replace, parquet-replace (on demand)
                  the daily steady state: mode ``replace`` into the table holding the previous
                  load's rows (``DELETE`` of those, then the load, in one transaction)
  jsonl-into-rows, parquet-into-rows (on demand)
                  ``jsonl-into`` / ``parquet-into`` through the row path (pyarrow not used)
  csv-added, jsonl-added, parquet-added (on demand)
                  ``-into``, but the existing table lacks the export's last column: the load adds it
                  (``on_schema_change="append_new_columns"``), typed from its values

Files are read from disk (a source over the cached file) so the load is measured, not a download.
Every load is checked: row count, and the loaded table equals the ``\\copy`` table (``EXCEPT``
both ways). Wall time and CPU time (user + system, all threads) are measured around the load,
peak RSS is the process's ``VmHWM``; ``\\copy``'s is psql's own. The server's CPU time is measured
apart: every PostgreSQL process's (its backends, reaped or alive, and its WAL writer, checkpointer...)
over the same load. From the two, each ratio's floor: the load's client and server CPU seconds over
the machine's cores, against ``\\copy``'s wall time — no overlap of the two sides could go lower on
this machine.

    python benchmarks/sql_load.py                      # 1M rows each, medians of 3
    python benchmarks/sql_load.py --rows 200000 --runs 1 --json
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from transfer import _cpu_seconds, _DiskSource, _peak_rss_mb, _run_polling

REPO = Path(__file__).resolve().parents[1]
METHODS = (
    "csv-new",
    "csv-into",
    "copy-csv",
    "jsonl-new",
    "jsonl-into",
    "copy-jsonl",
    "parquet-new",
    "parquet-into",
    "copy-parquet",
)
ON_DEMAND = (
    *("csv-replace", "jsonl-replace", "parquet-replace", "jsonl-into-rows", "parquet-into-rows"),
    *("csv-added", "jsonl-added", "parquet-added"),
)
#: the cores the client and the server share (CI's machines have 2)
CORES = len(os.sched_getaffinity(0))
#: ratio targets (issue 19): ours / \copy of the same rows as CSV; a new table 1.5, an existing 1.3
TARGETS = {
    f"{fmt}_{kind}_over_copy": (f"{fmt}-{kind}", f"copy-{fmt}", 1.5 if kind == "new" else 1.3)
    for fmt in ("csv", "jsonl", "parquet")
    for kind in ("new", "into")
}


# --- children: one measured load per fresh process -------------------------------------------------


def child(method: str, spec: dict[str, Any]) -> dict[str, Any]:
    import logging

    import airflow.sdk  # noqa: F401 - a worker has Airflow imported before the task runs
    from airflow.providers.postgres.hooks.postgres import PostgresHook  # noqa: F401

    from airflow_provider_exports.transfers.engine import SqlSink, run_transfer

    logging.basicConfig(level=logging.WARNING)
    if method.endswith("-rows"):
        from airflow_provider_exports.transfers.engine.sql.postgres import PostgresDialect

        PostgresDialect.columnar = False  # the row path, as before pyarrow columns
    fmt = method.split("-")[0]
    sink = SqlSink(
        spec["table"],
        conn_id="bench_pg",
        mode="replace" if method.endswith("-replace") else "append",
        batch_size=20_000,
        flatten_structs=fmt == "parquet",
    )
    source = _DiskSource(Path(spec[fmt]))
    cpu0 = _cpu_seconds()
    t0 = time.perf_counter()
    summary = run_transfer([source], sink, vendor="bench", export_ref="bench", job_ref=method, overwrite=True)
    seconds = time.perf_counter() - t0
    return {
        "seconds": seconds,
        "cpu_seconds": _cpu_seconds() - cpu0,
        "peak_rss_mb": _peak_rss_mb(),
        "rows": summary.rows,
    }


_TICKS = os.sysconf("SC_CLK_TCK")


def _process_times(pid: int) -> tuple[int, float, float]:
    """``(parent pid, own CPU s, reaped children's CPU s)`` of ``pid`` from ``/proc/<pid>/stat``."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()  # after the command name, which may hold spaces
    ppid, utime, stime, cutime, cstime = (int(fields[i]) for i in (1, 11, 12, 13, 14))
    return ppid, (utime + stime) / _TICKS, (cutime + cstime) / _TICKS


def _server_processes(postmaster: int) -> dict[int, float]:
    """The CPU seconds of each live child of the postmaster (zombies included)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid, own, _ = _process_times(int(entry.name))
            except (OSError, ValueError, IndexError):
                continue  # gone meanwhile
            if ppid == postmaster:
                found[int(entry.name)] = own
    return found


def server_cpu_seconds(data_dir: Path, settle: frozenset[int] = frozenset()) -> tuple[float, frozenset[int]]:
    """The PostgreSQL server's CPU seconds so far (the postmaster, its reaped children, its live
    ones) and the live children's pids. With ``settle`` (the pids before a load), waits up to 5 s
    for the load's backends to end and be reaped, so their time is counted once, in the postmaster's."""
    postmaster = int((data_dir / "postmaster.pid").read_text().split()[0])
    deadline = time.monotonic() + 5
    while True:
        children = _server_processes(postmaster)
        _, own, reaped = _process_times(postmaster)
        if not settle or set(children) <= settle or time.monotonic() > deadline:
            return own + reaped + sum(children.values()), frozenset(children)
        time.sleep(0.02)


def run_child(method: str, spec: dict[str, Any], env: dict[str, str]) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, __file__, "--child", method, "--spec", json.dumps(spec)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{method} failed:\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# --- data ------------------------------------------------------------------------------------------


def guests_jsonl_gz(cache: Path, rows: int, say: Any = print) -> Path:
    """The sandbox's Sitecore guests as gzipped JSON lines, built once per row count into ``cache``
    (also what benchmarks/gunzip.py and benchmarks/arrow_copy.py read)."""
    from airflow_provider_exports_sandbox.synthetic import write_guests_jsonl_gz

    path = cache / f"guests-{rows}.jsonl.gz"
    if not path.exists():
        cache.mkdir(parents=True, exist_ok=True)
        say(f"Writing {rows} guests as gzipped JSON lines ...")
        with open(f"{path}.tmp", "wb") as out:
            write_guests_jsonl_gz(out, seed="bench", start=0, rows=rows, compresslevel=1)
        os.replace(f"{path}.tmp", path)
    return path


def build_files(cache: Path, rows: int, say: Any) -> dict[str, Path]:
    """The JSON lines, the Parquet and each as CSV, built once per row count."""
    from airflow_provider_exports_sandbox.synthetic_parquet import ProfileFileSpec, write_profiles

    cache.mkdir(parents=True, exist_ok=True)
    files = {
        "jsonl": cache / f"guests-{rows}.jsonl.gz",
        "jsonl_csv": cache / f"guests-{rows}.csv",
        "parquet": cache / f"profiles-{rows}.snappy.parquet",
        "parquet_csv": cache / f"profiles-{rows}.csv",
    }
    guests_jsonl_gz(cache, rows, say)
    if not files["parquet"].exists():
        say(f"Writing {rows} XDM profiles as Parquet ...")
        with open(f"{files['parquet']}.tmp", "wb") as out:
            write_profiles(ProfileFileSpec(rows=rows, segments=("loyal", "newsletter", "churn-risk")), out)
        os.replace(f"{files['parquet']}.tmp", files["parquet"])
    for fmt in ("jsonl", "parquet"):
        target = files[f"{fmt}_csv"]
        if not target.exists():
            say(f"Writing the same rows as CSV ({target.name}) ...")
            _write_csv(files[fmt], fmt, Path(f"{target}.tmp"))
            os.replace(f"{target}.tmp", target)
    return files


def _write_csv(path: Path, fmt: str, out: Path) -> None:
    """The rows as the sink's row reader gives them (nested values as JSON text), as CSV."""
    from airflow_provider_exports.transfers.engine.formats import read_batches

    def chunks() -> Any:
        with open(path, "rb") as fh:
            yield from iter(lambda: fh.read(1 << 20), b"")

    if fmt == "parquet":  # column-wise (the tests hold it equal to the row reader): minutes faster
        from airflow_provider_exports.transfers.engine.sql.arrow_readers import read_parquet_columnar
        from airflow_provider_exports.transfers.engine.sql.arrow_text import copy_text, encode_csv

        with open(out, "wb") as raw:
            for i, batch in enumerate(read_parquet_columnar(chunks(), flatten_structs=True)):
                if i == 0:
                    raw.write((",".join(batch.columns) + "\n").encode())
                raw.write(
                    encode_csv([copy_text(c, staged=True) for c in batch.table.columns], batch.num_rows)
                )
        return
    with open(out, "w", newline="", encoding="utf-8") as dst:
        writer = csv.writer(dst)
        header = False
        for batch in read_batches(chunks(), fmt, batch_size=50_000, flatten_structs=True):
            if not header:
                writer.writerow(batch.columns)
                header = True
            for row in batch.rows:
                writer.writerow(_csv_value(v) for v in row)


def _csv_value(v: Any) -> Any:
    if v is True or v is False:
        return "true" if v else "false"
    if isinstance(v, float):
        return repr(v)
    return "" if v is None else v


# --- the parent ------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows per file (default 1e6)")
    parser.add_argument(
        "--runs", type=int, default=3, help="runs per method; medians are reported (default 3)"
    )
    parser.add_argument(
        "--methods",
        default=",".join(METHODS),
        help=f"subset of {','.join(METHODS + ON_DEMAND)} (default: all but the -rows ones)",
    )
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=Path(tempfile.gettempdir()) / "exports-bench-cache",
        help="where synthetic files are built once and kept",
    )
    parser.add_argument(
        "--json", action="store_true", help="print one JSON line per target (and the medians)"
    )
    parser.add_argument(
        "--flat-rows",
        type=int,
        default=None,
        help="also load the Parquet of this many rows (parquet-new) and report peak RSS at --rows"
        " over peak RSS at --flat-rows (memory flat in file size: target <= 1.1)",
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--spec", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child:
        print(json.dumps(child(args.child, json.loads(args.spec))))
        return 0

    if args.json:
        real_stdout, sys.stdout = sys.stdout, sys.stderr  # Airflow may log to stdout
    say = (lambda *a: print(*a, file=sys.stderr, flush=True)) if args.json else print
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = sorted(set(methods) - set(METHODS + ON_DEMAND))
    if unknown:
        raise SystemExit(f"unknown method(s): {', '.join(unknown)}")
    home = Path(tempfile.mkdtemp(prefix="exports-bench-home-"))
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "True",
        "PYTHONPATH": str(REPO),
    }
    os.environ.update({k: v for k, v in env.items() if k.startswith("AIRFLOW")})

    from airflow_provider_exports_sandbox.local_services import PostgresCluster

    if not PostgresCluster.available():
        raise SystemExit("PostgreSQL server binaries not found (apt-get install postgresql)")
    files = build_files(args.cache_dir, args.rows, say)
    results: dict[str, list[dict[str, Any]]] = {m: [] for m in methods}
    cluster = PostgresCluster().start()
    data_dir = cluster.data_dir
    assert data_dir is not None
    try:
        env["AIRFLOW_CONN_BENCH_PG"] = cluster.airflow_conn_json()
        conn = cluster.connect()
        conn.autocommit = True
        cur = conn.cursor()
        # autovacuum's ANALYZE of a table just loaded is background work of no load's, and would
        # land in whichever load's server CPU it overlaps
        cur.execute("ALTER SYSTEM SET autovacuum = off")
        cur.execute("SELECT pg_reload_conf()")
        spec = {
            "csv": str(files["jsonl_csv"]),
            "jsonl": str(files["jsonl"]),
            "parquet": str(files["parquet"]),
        }
        # the tables the first loads make; \copy and the -into loads use their types
        for kind in ("csv", "jsonl", "parquet"):
            cur.execute(f"DROP TABLE IF EXISTS made_{kind}")
            run_child(f"{kind}-new", {**spec, "table": f"made_{kind}"}, env)
        for run in range(args.runs):
            for method in methods:
                server_before, alive = server_cpu_seconds(data_dir)
                kind = method.split("-")[0]
                table = f"bench_{method.replace('-', '_')}"
                cur.execute(f"DROP TABLE IF EXISTS {table}")
                if method.startswith("copy"):
                    kind = method.split("-")[1]
                    # the vendor's columns: not the name of the file each row came from
                    cur.execute(
                        f"CREATE TABLE {table} (LIKE made_{kind}); ALTER TABLE {table} DROP COLUMN _source_file"
                    )
                    csv_file = files["jsonl_csv" if kind == "csv" else kind + "_csv"]
                    copy = f"\\copy {table} FROM '{csv_file}' WITH (FORMAT csv, HEADER true)"
                    seconds, cpu, peak = _run_polling(
                        [
                            "psql",
                            "-q",
                            "-h",
                            cluster.host,
                            "-p",
                            str(cluster.port),
                            "-U",
                            cluster.user,
                            "-d",
                            cluster.database,
                            "-v",
                            "ON_ERROR_STOP=1",
                            "-c",
                            copy,
                        ]
                    )
                    res = {"seconds": seconds, "cpu_seconds": cpu, "peak_rss_mb": peak}
                else:
                    if "-into" in method or method.endswith("-added"):  # the table exists, empty, as \copy's does
                        cur.execute(f"CREATE TABLE {table} (LIKE made_{kind})")
                    if method.endswith("-added"):  # ... made before the export's last field came
                        cur.execute(
                            "SELECT quote_ident(attname) FROM pg_attribute WHERE attrelid = to_regclass(%s) "
                            "AND attnum > 0 AND NOT attisdropped AND attname <> '_source_file' ORDER BY attnum DESC LIMIT 1",
                            (table,),
                        )
                        cur.execute(f"ALTER TABLE {table} DROP COLUMN {cur.fetchone()[0]}")
                    if method.endswith("-replace"):  # yesterday's load of the same rows, replaced
                        cur.execute(
                            f"CREATE TABLE {table} (LIKE made_{kind}); INSERT INTO {table} SELECT * FROM made_{kind}"
                        )
                    res = run_child(method, {**spec, "table": table}, env)
                server_after = server_cpu_seconds(data_dir, settle=alive)[0]
                res["server_cpu_seconds"] = server_after - server_before
                _check_table(cur, table, f"made_{kind}", args.rows)
                results[method].append(res)
                say(
                    f"run {run + 1}/{args.runs} {method:18s} {res['seconds']:7.2f} s  "
                    f"{args.rows / res['seconds']:9.0f} rows/s  CPU {res['cpu_seconds']:6.2f} s  "
                    f"server CPU {res['server_cpu_seconds']:6.2f} s  peak RSS {res['peak_rss_mb']:7.1f} MB"
                )
        flat_peaks: dict[int, float] = {}
        if args.flat_rows:  # the same first load at two file sizes, one fresh process each
            sizes = {args.flat_rows: build_files(args.cache_dir, args.flat_rows, say), args.rows: files}
            for rows, built in sizes.items():
                cur.execute("DROP TABLE IF EXISTS bench_flat")
                res = run_child(
                    "parquet-new", {**spec, "parquet": str(built["parquet"]), "table": "bench_flat"}, env
                )
                flat_peaks[rows] = res["peak_rss_mb"]
                say(f"flat memory: parquet-new of {rows} rows, peak RSS {res['peak_rss_mb']:7.1f} MB")
        conn.close()
    finally:
        cluster.stop()

    report = _report(args, results)
    if flat_peaks:
        ratio = flat_peaks[args.rows] / flat_peaks[args.flat_rows]
        report["targets"].append(
            {
                "target": "parquet_peak_rss_ratio",
                "ratio": round(ratio, 3),
                "max": 1.1,
                "met": ratio <= 1.1,
                "peak_rss_mb": {str(rows): round(peak, 1) for rows, peak in flat_peaks.items()},
                "rows": args.rows,
            }
        )
    if args.json:
        for line in report["targets"]:
            print(json.dumps(line), file=real_stdout)
        print(
            json.dumps({"rows": args.rows, "runs": args.runs, "medians": report["medians"]}), file=real_stdout
        )
    else:
        _print(report, args)
    return 0


def _check_table(cur: Any, table: str, reference: str, rows: int) -> None:
    """``table`` holds ``rows`` rows, the same as the reference load's (both ways)."""
    cur.execute(f"SELECT count(*) FROM {table}")
    (count,) = cur.fetchone()
    if count != rows:
        raise RuntimeError(f"{table}: {count} rows loaded, expected {rows}")
    # compared on the columns of ``table`` (a \\copy table has no _source_file)
    cur.execute(
        "SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum) FROM pg_attribute "
        "WHERE attrelid = to_regclass(%s) AND attnum > 0 AND NOT attisdropped",
        (table,),
    )
    (cols,) = cur.fetchone()
    cur.execute(
        f"SELECT (SELECT count(*) FROM (SELECT {cols} FROM {table} EXCEPT ALL SELECT {cols} FROM {reference}) a), "
        f"(SELECT count(*) FROM (SELECT {cols} FROM {reference} EXCEPT ALL SELECT {cols} FROM {table}) b)"
    )
    extra, missing = cur.fetchone()
    if extra or missing:
        raise RuntimeError(f"{table}: {extra} rows not in {reference}, {missing} of its rows missing")


def _report(args: Any, results: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    med = {
        m: {
            "seconds": statistics.median(r["seconds"] for r in runs),
            "cpu_seconds": statistics.median(r["cpu_seconds"] for r in runs),
            "server_cpu_seconds": statistics.median(r["server_cpu_seconds"] for r in runs),
            "peak_rss_mb": statistics.median(r["peak_rss_mb"] for r in runs),
            "max_peak_rss_mb": max(r["peak_rss_mb"] for r in runs),
            "runs": len(runs),
        }
        for m, runs in results.items()
        if runs
    }
    targets = []
    for name, (ours, copy, target) in TARGETS.items():
        if ours in med and copy in med:
            ratio = med[ours]["seconds"] / med[copy]["seconds"]
            # the lowest wall time the load's CPU allows on this machine's cores, client and server
            # overlapping perfectly (neither side can use more cores than it has threads: not counted)
            cpu = med[ours]["cpu_seconds"] + med[ours]["server_cpu_seconds"]
            floor = cpu / CORES / med[copy]["seconds"]
            targets.append(
                {
                    "target": name,
                    "ratio": round(ratio, 3),
                    "max": target,
                    "met": ratio <= target,
                    "ours_s": round(med[ours]["seconds"], 3),
                    "copy_s": round(med[copy]["seconds"], 3),
                    "peak_rss_mb": round(med[ours]["max_peak_rss_mb"], 1),
                    "cpu_floor_ratio": round(floor, 3),
                    "cores": CORES,
                    "rows": args.rows,
                }
            )
    for rows_path, fast in (("jsonl-into-rows", "jsonl-into"), ("parquet-into-rows", "parquet-into")):
        if rows_path in med and fast in med:
            targets.append(
                {
                    "target": f"{rows_path.replace('-', '_')}_over_columnar",
                    "ratio": round(med[rows_path]["seconds"] / med[fast]["seconds"], 3),
                    "max": None,
                    "met": None,
                    "rows": args.rows,
                }
            )
    return {"medians": med, "targets": targets}


def _print(report: dict[str, Any], args: Any) -> None:
    print()
    print(f"{args.rows} rows per file, medians of {args.runs} run(s)")
    print(
        f"{'method':18s} {'seconds':>8s} {'rows/s':>9s} {'CPU s':>7s} {'server CPU s':>13s} "
        f"{'peak RSS MB':>12s} {'(max)':>7s}"
    )
    for method, m in report["medians"].items():
        print(
            f"{method:18s} {m['seconds']:8.2f} {args.rows / m['seconds'] / 1e3:8.0f}k {m['cpu_seconds']:7.2f} "
            f"{m['server_cpu_seconds']:13.2f} {m['peak_rss_mb']:12.1f} {m['max_peak_rss_mb']:7.1f}"
        )
    print()
    for t in report["targets"]:
        target = f"(target <= {t['max']}: {'met' if t['met'] else 'MISSED'})" if t["max"] else ""
        floor = f"  CPU floor on {t['cores']} cores {t['cpu_floor_ratio']:.2f}" if t.get("cores") else ""
        print(f"{t['target']:34s} {t['ratio']:6.2f} {target}{floor}")


if __name__ == "__main__":
    sys.exit(main())
