"""``python -m dev.deployment``: the deployment check's command line and its results table
(what it does: this package's docstring)."""

from __future__ import annotations

import argparse
import shutil
import signal
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import dev.deployment
from dev.deployment.faults import FAULTS, Result, scheduled_runs
from dev.deployment.processes import CheckFailed, log
from dev.deployment.services import Deployment


def results_table(results: list[Result]) -> str:
    lines = ["", "=" * 100, "Results", "=" * 100]
    for r in results:
        lines.append(f"[{'PASS' if r.passed else 'FAIL'}] {r.fault}  ({r.seconds:.0f} s)")
        lines.append(f"       expected: {r.expected}")
        lines.append(f"       observed: {r.observed}")
    passed = sum(r.passed for r in results)
    lines.append(f"checks: {passed} PASS, {len(results) - passed} FAIL")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m dev.deployment",
        description=dev.deployment.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--work-dir", type=Path, default=Path(".deployment"), help="Airflow home, logs, cache"
    )
    parser.add_argument("--dags-folder", type=Path, default=Path("example_dags"), help="the example DAGs")
    parser.add_argument(
        "--executor",
        choices=("celery", "local"),
        default="celery",
        help="celery: Redis + two Celery workers (default); local: LocalExecutor, no Redis, no workers",
    )
    parser.add_argument(
        "--faults",
        default=None,
        help=f"comma-separated, from {', '.join(FAULTS)}; '' for none (default: all the executor has;"
        " LocalExecutor has no worker to kill, and there killing the scheduler kills its running tasks too)",
    )
    args = parser.parse_args(argv)
    if args.faults is None:
        faults = [f for f in FAULTS if args.executor == "celery" or f != "worker-kill"]
    else:
        faults = [f for f in args.faults.split(",") if f]
    unknown = sorted(set(faults) - set(FAULTS))
    if unknown:
        parser.error(f"--faults: unknown {unknown}; use {', '.join(FAULTS)}")
    if args.executor == "local" and "worker-kill" in faults:
        parser.error("--faults worker-kill needs --executor celery (LocalExecutor has no worker to kill)")
    started = time.monotonic()
    work: Path = args.work_dir.resolve()
    if work.exists():
        shutil.rmtree(work)
    dep = Deployment(work=work, dags_folder=args.dags_folder.resolve(), executor=args.executor)

    def terminate(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, terminate)
    signal.signal(signal.SIGHUP, terminate)
    results: list[Result] = []
    try:
        dep.start()
        dep.wait_for_dags()
        first, runs = scheduled_runs(dep)
        results.append(first)
        print("\nScheduled runs (task states):")
        for dag_id, run_id in sorted(runs.items()):
            print("\n".join(dep.describe_run(dag_id, run_id)))
        yesterday = datetime.now(timezone.utc).date() - timedelta(days=1)
        fault_runs: list[tuple[str, str]] = []
        for n, name in enumerate(faults, start=1):
            log(f"fault {name}")
            try:
                result = FAULTS[name](dep, yesterday - timedelta(days=n))
            except CheckFailed as exc:
                result = Result(name, "(see the fault's docstring)", f"ERROR: {exc}", False)
            results.append(result)
            log(f"{name}: {'PASS' if result.passed else 'FAIL'} in {result.seconds:.0f} s")
        with dep.db() as cur:
            cur.execute("SELECT dag_id, run_id FROM dag_run WHERE run_id LIKE 'fault-%%' ORDER BY id")
            fault_runs = [(str(d), str(r)) for d, r in cur.fetchall()]
        if fault_runs:
            print("\nFault runs (task states):")
            for dag_id, run_id in fault_runs:
                print("\n".join(dep.describe_run(dag_id, run_id)))
        print("\nWhat landed:")
        print("\n".join(dep.landed_report()))
    except CheckFailed as exc:
        results.append(Result("deployment", "starts and runs", f"ERROR: {exc}", False))
    except KeyboardInterrupt as exc:
        results.append(Result("deployment", "runs to the end", f"interrupted ({exc})", False))
    finally:
        print("\nLogs:")
        print(f"  components: {work / 'logs'}/<name>.log ({', '.join(dep.components)}, db-migrate)")
        print(f"  tasks:      {dep.task_logs}/dag_id=<dag>/run_id=<run>/task_id=<task>/attempt=<n>.log")
        log("stopping everything")
        dep.stop()
    print(results_table(results))
    print(f"total time: {time.monotonic() - started:.0f} s")
    return 0 if results and all(r.passed for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
