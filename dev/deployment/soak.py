"""``python -m dev.deployment.soak --runs N --seed S`` (what ``bash .ci/soak`` runs): a randomized
fault soak under the real deployment, checked against the source of truth after every run.

It starts the deployment once (:class:`~dev.deployment.services.Deployment`: PostgreSQL for
Airflow and another for the warehouse, Redis, moto, the vendor sandbox, the api-server, scheduler,
DAG processor, triggerer and two Celery workers), lets the scheduled runs of the six example DAGs
of :data:`.soak_faults.SPECS` finish (not the delta one: docs/soak.md, "The draw"), then runs N
DAG runs one after another, each drawn with its faults from ``random.Random(S)``
(:mod:`.soak_faults`; the whole plan is drawn first and printed). After every run it reads back
what landed and compares it with what the sandbox served (:mod:`.soak_checks`):

- S3: the manifest and exactly the files it lists, each with the vendor's SHA-256, every vendor
  file listed once; Cordial's own deliveries: exactly this run's jobs' files;
- the warehouse: each table's rows (a multiset: count and checksum) equal to what the load's mode
  makes of the table before and the vendor's rows (read from the files the sandbox served);
- nothing left: no staging table or registry row, no other run directory, no open multipart upload;
- one vendor job per export task (a retry finds its job; a job cancelled on purpose is not counted).

A run that fails is retried once (its failed tasks cleared, the faults gone, as a user would); if
the retry fails too, the run must have left the destination exactly as it was. The summary is a
table and, last, one JSON line; the exit status is 0 only when nothing was lost, doubled or left.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import hashlib
import io
import json
import shutil
import signal
import sys
import time
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from dev.deployment import soak_checks as checks
from dev.deployment.processes import CheckFailed, log, wait_for
from dev.deployment.services import BUCKET, Deployment
from dev.deployment.soak_faults import (
    CATALOGUE,
    MULTIPART_JOB,
    SPECS,
    DagSpec,
    Fault,
    RunContext,
    arm,
    disarm,
    draw_plan,
    needs_parts,
    strike,
)

Row = checks.Row

#: each table's rows as the checks compare them: columns that carry every source row's identity
#: and content, read the same way from the vendor's files (:func:`source_rows`)
TABLE_SQL = {
    "loyalty_members": 'SELECT "ref", "email", "loyaltyTier", "lifetimeValue", "_source_file" FROM {t}',
    "cordial_audience_trends": 'SELECT "audience", "day"::text, "count", "_source_file" FROM {t}',
    "cordial_loyal_members": 'SELECT "email", "first_name", "last_name", "_source_file" FROM {t}',
    "aep_profiles": (
        """SELECT "personalEmail"->>'address', "identities"->0->>'id', "person"->'name'->>'lastName',"""
        """ regexp_replace("_source_file", '^.*/', '') FROM {t}"""
    ),
}
MERGE_KEYS = {"cordial_audience_trends": lambda row: row[:2]}


def _family(table: str) -> str:
    return table.removesuffix("_fan_out")


# -- what the warehouse, the bucket and the vendors hold


def table_rows(dep: Deployment, table: str) -> Counter[Row]:
    conn = dep.warehouse_connect()
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT to_regclass(%s)", (f'"{table}"',))
            row = cur.fetchone()
            if row is None or row[0] is None:
                return Counter()
            cur.execute(TABLE_SQL[_family(table)].format(t=f'"{table}"'))
            return Counter(tuple(r) for r in cur.fetchall())
    finally:
        conn.close()


def staging_leftovers(dep: Deployment) -> tuple[list[str], int]:
    """The staging tables in the warehouse, and the rows of every staging registry."""
    conn = dep.warehouse_connect()
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT tablename FROM pg_tables WHERE tablename LIKE '\\_exports\\_stage%%'")
            stages = [str(r[0]) for r in cur.fetchall()]
            cur.execute("SELECT tablename FROM pg_tables WHERE tablename LIKE '%%\\_staging'")
            registry = 0
            for (name,) in cur.fetchall():
                cur.execute(f'SELECT count(*) FROM "{name}"')
                counted = cur.fetchone()
                registry += int(counted[0]) if counted else 0
            return stages, registry
    finally:
        conn.close()


def objects(dep: Deployment, prefix: str) -> dict[str, str]:
    """Key -> SHA-256 of every object under ``prefix``."""
    found = {}
    for key in dep.objects(prefix):
        found[key] = hashlib.sha256(dep.s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()).hexdigest()
    return found


def open_uploads(dep: Deployment) -> list[str]:
    uploads = dep.s3.list_multipart_uploads(Bucket=BUCKET).get("Uploads", [])
    return [f"{u['Key']} ({u['UploadId'][:8]})" for u in uploads]


def _jsonl_rows(path: Path, name: str) -> list[Row]:
    with gzip.open(path, "rt") as lines:
        rows = [json.loads(line) for line in lines if line.strip()]
    return [(r["ref"], r["email"], r["loyaltyTier"], r["lifetimeValue"], name) for r in rows]


def _trends_rows(data: bytes, name: str) -> list[Row]:
    table = list(csv.reader(io.StringIO(data.decode())))
    days = table[0][1:]
    return [(line[0], day, int(count), name) for line in table[1:] for day, count in zip(days, line[1:], strict=True)]


def _members_rows(data: bytes, name: str) -> list[Row]:
    text = gzip.decompress(data).decode() if name.endswith(".gz") else data.decode()
    return [(r["email"], r["first_name"], r["last_name"], name) for r in csv.DictReader(io.StringIO(text))]


def _parquet_rows(path: Path, name: str) -> list[Row]:
    import pyarrow.parquet as pq

    table = pq.read_table(path, columns=["personalEmail", "identities", "person"]).to_pylist()
    return [(r["personalEmail"]["address"], r["identities"][0]["id"], r["person"]["name"]["lastName"], name) for r in table]


class Source:
    """What the vendor served one run: its files (name, SHA-256) and, per table, its rows."""

    def __init__(self) -> None:
        self.files: list[checks.SourceFile] = []
        self.rows: dict[str, Counter[Row]] = {}
        self.jobs_created = 0
        self.jobs_cancelled = 0


def vendor_source(dep: Deployment, spec: DagSpec, run_id: str, jobs_before: set[Any], sitecore_job: str) -> Source:
    """The source of truth for a run, from the sandbox: the job(s) of the run and their files
    (Sitecore's: the job published for this run, whichever job the sensor took)."""
    source = Source()
    if spec.vendor == "sitecore":
        ref = sitecore_job
        rows: Counter[Row] = Counter()
        if ref:
            for name, _size, sha, _rows in dep.sandbox.sitecore.expected_files(str(ref)):
                source.files.append(checks.SourceFile(name, sha))
                rows.update(_jsonl_rows(dep.sandbox.sitecore.file_path(str(ref), name), name))
        source.rows = {spec.tables[0][0]: rows}
    elif spec.vendor == "cordial":
        cordial = dep.sandbox.cordial
        new = [j for j in cordial.job_ids() if j not in jobs_before]
        source.jobs_created = len(new)
        trends: Counter[Row] = Counter()
        members: Counter[Row] = Counter()
        for job in new:
            name, data = cordial.file_name(job), cordial.export_file(job)
            source.files.append(checks.SourceFile(name, hashlib.sha256(data).hexdigest()))
            if "export-trends" in name:
                trends.update(_trends_rows(data, name))
            else:
                members.update(_members_rows(data, name))
        for table, _mode in spec.tables:
            source.rows[table] = members if table == "cordial_loyal_members" else trends
    else:
        adobe = dep.sandbox.adobe
        new = [j for j in adobe.job_ids() if j not in jobs_before]
        source.jobs_created = len(new)
        source.jobs_cancelled = sum(adobe.job_cancelled(j) for j in new)
        job = dep.xcom(spec.dag_id, run_id, "export_profiles", "job_id")
        rows = Counter()
        if job is not None:
            for batch in adobe.batch_ids(int(job)):
                paths = adobe.file_paths(batch)
                for _file_id, name, _size, sha, _rows in adobe.expected_files(batch):
                    source.files.append(checks.SourceFile(name, sha))
                    rows.update(_parquet_rows(paths[name], name))
        source.rows = {spec.tables[0][0]: rows}
    return source


def vendor_jobs(dep: Deployment, vendor: str) -> set[Any]:
    if vendor == "cordial":
        return set(dep.sandbox.cordial.job_ids())
    if vendor == "adobe":
        return set(dep.sandbox.adobe.job_ids())
    return set()


# -- one run


def verify(
    dep: Deployment,
    spec: DagSpec,
    run_id: str,
    prefix: str,
    before: dict[str, Counter[Row]],
    jobs_before: set[Any],
    sitecore_job: str = "",
) -> checks.Verdict:
    """A run that succeeded, against the source of truth."""
    verdict = checks.Verdict()
    source = vendor_source(dep, spec, run_id, jobs_before, sitecore_job)
    landed = objects(dep, prefix)
    if spec.vendor == "cordial":
        verdict.merge(checks.check_delivered(prefix, source.files, landed))
    else:
        verdict.merge(checks.check_objects(prefix, source.files, dep.manifest(prefix), landed))
    for table, mode in spec.tables:
        want = checks.expected_table(mode, before[table], source.rows[table], MERGE_KEYS.get(_family(table)))
        verdict.merge(checks.check_rows(table, want, table_rows(dep, table)))
    if spec.jobs:
        verdict.merge(checks.check_jobs(spec.vendor, source.jobs_created, spec.jobs, source.jobs_cancelled))
    return verdict


def leftovers(dep: Deployment) -> checks.Verdict:
    stages, registry = staging_leftovers(dep)
    return checks.check_leftovers(stages, registry, open_uploads(dep))


def run_one(dep: Deployment, number: int, dag_id: str, faults: list[Fault], day: Any) -> checks.RunRecord:
    t0 = time.monotonic()
    spec = SPECS[dag_id]
    run_id = f"soak-{number:03d}"
    prefix = spec.prefix.format(ds=day.isoformat())
    before = {table: table_rows(dep, table) for table, _ in spec.tables}
    jobs_before = vendor_jobs(dep, spec.vendor)
    ctx = RunContext(dep, spec, run_id, prefix)
    sitecore_job = ""
    if spec.vendor == "sitecore":
        # A new finished job for every run, as each day brings: the sensor must find it, and the
        # transfers move it (a job moved before is skipped, by design, and would test nothing).
        # Faults on S3's parts need files larger than a part.
        if needs_parts(faults):
            sitecore_job = dep.sandbox.sitecore.add_job("daily_loyalty_members", **MULTIPART_JOB)
            ctx.file_bytes = MULTIPART_JOB["target_bytes"] // MULTIPART_JOB["target_files"]
        else:
            sitecore_job = dep.sandbox.sitecore.add_job("daily_loyalty_members", rows=5000)
    log(f"run {number}: {dag_id} ds={day} faults {', '.join(map(str, faults))} {[f.params for f in faults]}")
    struck: list[str] = []
    try:
        arm(ctx, faults)
        dep.trigger(dag_id, run_id, day)
        struck = strike(ctx, faults)
        state = dep.wait_for_run(dag_id, run_id, timeout=900)
    finally:
        injected = sorted(disarm(ctx, faults) + struck, key=list(CATALOGUE).index)
    retried = False
    if state != "success":
        retried = True
        log(f"run {number}: {state}; clearing its failed tasks (the faults are gone), as a user would")
        dep.api(
            "POST",
            f"/api/v2/dags/{dag_id}/clearTaskInstances",
            {"dry_run": False, "dag_run_id": run_id, "only_failed": True},
        )
        wait_for(lambda: dep.run_state(dag_id, run_id) not in ("failed",), 120, f"{run_id} runs again", poll=1)
        state = dep.wait_for_run(dag_id, run_id, timeout=900)
    if state == "success":
        verdict = verify(dep, spec, run_id, prefix, before, jobs_before, sitecore_job)
    else:
        after = {table: table_rows(dep, table) for table, _ in spec.tables}
        verdict = checks.check_untouched(prefix, objects(dep, prefix), {t: (before[t], after[t]) for t in before})
    verdict.merge(leftovers(dep))
    record = checks.RunRecord(
        number, dag_id, run_id, [f.kind for f in faults], injected, state, retried, True, verdict, time.monotonic() - t0
    )
    log(
        f"run {number}: {state}{' after a retry' if retried else ''}, injected {injected or 'none'};"
        f" {'clean' if verdict.counts.clean else 'PROBLEMS: ' + '; '.join(verdict.problems)}"
        f" ({record.seconds:.0f} s)"
    )
    return record


def run_days(plan: list[tuple[str, list[Fault]]], today: Any) -> list[Any]:
    """A logical day per run, unique per DAG: back from the day before yesterday (the scheduled
    runs hold today's and yesterday's), never before the DAGs' start date."""
    first = datetime(2026, 11, 1, tzinfo=timezone.utc).date()
    used: Counter[str] = Counter()
    days = []
    for dag_id, _ in plan:
        used[dag_id] += 1
        day = today - timedelta(days=1 + used[dag_id])
        if day < first:
            raise SystemExit(f"--runs: {dag_id} drawn {used[dag_id]} times, more days than since {first}")
        days.append(day)
    return days


def settle(dep: Deployment) -> None:
    """Unpause the soak's six DAGs (once the DAG processor has parsed them all) and wait until the
    scheduler's own runs of them end."""

    def parsed() -> bool:
        return set(SPECS) <= {d["dag_id"] for d in dep.api("GET", "/api/v2/dags?limit=100")["dags"]}

    wait_for(parsed, 600, f"the DAG processor parses {', '.join(SPECS)}", poll=2)
    for dag_id in SPECS:
        dep.api("PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": False})
    runs: dict[str, str] = {}

    def created() -> bool:
        for dag_id in SPECS:
            found = dep.api("GET", f"/api/v2/dags/{dag_id}/dagRuns?limit=5")["dag_runs"]
            if found:
                runs[dag_id] = found[0]["dag_run_id"]
        return len(runs) == len(SPECS)

    wait_for(created, 300, "the scheduler creates the DAGs' runs", poll=2)
    for dag_id, run_id in runs.items():
        log(f"scheduled run {dag_id}: {dep.wait_for_run(dag_id, run_id)}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m dev.deployment.soak", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, required=True, help="DAG runs to draw (each with 1-3 faults)")
    parser.add_argument("--seed", type=int, required=True, help="random.Random(seed) draws the DAGs and faults")
    parser.add_argument("--work-dir", type=Path, default=Path(".soak"), help="Airflow home, logs, cache")
    parser.add_argument("--dags-folder", type=Path, default=Path("example_dags"), help="the example DAGs")
    parser.add_argument("--max-minutes", type=float, default=None, help="draw no new run after this long")
    parser.add_argument("--plan", action="store_true", help="print the drawn plan and exit (no deployment)")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error(f"--runs: {args.runs} is not a positive number of runs")
    plan = draw_plan(args.seed, args.runs)
    today = datetime.now(timezone.utc).date()
    days = run_days(plan, today)
    print(f"plan (seed {args.seed}):")
    for n, (dag_id, faults) in enumerate(plan, start=1):
        print(f"  {n:>3} {dag_id:<38} {', '.join(f'{f.kind} {f.params}' for f in faults)}")
    if args.plan:
        return 0
    started = time.monotonic()
    work: Path = args.work_dir.resolve()
    if work.exists():
        shutil.rmtree(work)
    dep = Deployment(work=work, dags_folder=args.dags_folder.resolve(), executor="celery", proxy_s3=True)

    def terminate(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, terminate)
    signal.signal(signal.SIGHUP, terminate)
    records: list[checks.RunRecord] = []
    error = ""
    try:
        dep.start()
        dep.wait_for_dags()
        settle(dep)
        first = leftovers(dep)
        if not first.counts.clean:
            log(f"before the soak: {'; '.join(first.problems)}")
        for n, ((dag_id, faults), day) in enumerate(zip(plan, days, strict=True), start=1):
            if args.max_minutes is not None and time.monotonic() - started > args.max_minutes * 60:
                log(f"--max-minutes {args.max_minutes} reached: {len(records)} of {args.runs} runs done")
                break
            try:
                records.append(run_one(dep, n, dag_id, faults, day))
            except (CheckFailed, KeyError, ValueError, OSError) as exc:  # this run is unverified; go on
                log(f"run {n}: not verified: {type(exc).__name__}: {exc}")
                unverified = checks.Verdict(problems=[f"not verified: {type(exc).__name__}: {exc}"[:300]])
                records.append(
                    checks.RunRecord(n, dag_id, f"soak-{n:03d}", [f.kind for f in faults], [], "?", False, False, unverified, 0.0)
                )
    except CheckFailed as exc:
        error = f"ERROR: {exc}"
    except KeyboardInterrupt as exc:
        error = f"interrupted ({exc})"
    finally:
        print(f"\nLogs: {work / 'logs'}/<component>.log; tasks: {dep.task_logs}")
        log("stopping everything")
        dep.stop()
    print()
    print(checks.table(records))
    if error:
        print(error)
    print(f"total time: {time.monotonic() - started:.0f} s")
    print(checks.json_line(records, args.seed))
    return 0 if checks.passed(records) and not error else 1


if __name__ == "__main__":
    sys.exit(main())
