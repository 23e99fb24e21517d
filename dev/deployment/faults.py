"""The faults the deployment check injects, each in runs of its own, and what each must leave:
the run succeeds, one copy lands, nothing is asked of a vendor twice, no credential is stored."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any

from dev.deployment.processes import CheckFailed, Component, log, process_tree, wait_for
from dev.deployment.services import BASE_JOB_SECONDS, DAG_IDS, Deployment

SITECORE_FILES = "/sitecore-cdp-exports/*"
AEP_JOBS = "/data/core/ups/export/jobs"
CORDIAL_CREATES = ("/v2/audiencetrendsexport", "/v2/contactexports")


@dataclass
class Result:
    fault: str
    expected: str
    observed: str
    passed: bool
    seconds: float = 0.0


def _sitecore_prefix(day: date) -> str:
    return f"raw/sitecore/daily_loyalty_members/ds={day.isoformat()}/"


def _aep_prefix(day: date) -> str:
    return f"raw/aep/profiles/ds={day.isoformat()}/"


def scheduled_runs(dep: Deployment) -> tuple[Result, dict[str, str]]:
    """Unpause the example DAGs: the scheduler creates each one's latest run; wait for them."""
    t0 = time.monotonic()
    for dag_id in DAG_IDS:
        dep.api("PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": False})
    runs: dict[str, str] = {}

    def created() -> bool:
        for dag_id in DAG_IDS:
            found = dep.api("GET", f"/api/v2/dags/{dag_id}/dagRuns?limit=5")["dag_runs"]
            if found:
                runs[dag_id] = found[0]["dag_run_id"]
        return len(runs) == len(DAG_IDS)

    wait_for(created, 300, "the scheduler creates the example DAGs' runs", poll=2)
    states = {dag_id: dep.wait_for_run(dag_id, run_id) for dag_id, run_id in runs.items()}
    ok = all(state == "success" for state in states.values())
    observed = ", ".join(f"{d.split('_')[0]} {s}" for d, s in sorted(states.items()))
    return Result("none: scheduled runs", "3 runs succeed", observed, ok, time.monotonic() - t0), runs


def worker_kill(dep: Deployment, day: date) -> Result:
    """SIGKILL the worker (its whole process tree) while the Sitecore files stream into S3."""
    t0 = time.monotonic()
    dag_id, run_id = "sitecore_cdp_audience_export", "fault-worker-kill"
    sitecore = dep.sandbox.sitecore
    # The first try's three downloads crawl (about 30 s); the retry's go at full speed.
    sitecore.faults.throttle(SITECORE_FILES, bytes_per_second=4096, times=3, method="GET")
    seen_before = len(sitecore.requests_to(SITECORE_FILES, "GET"))
    dep.trigger(dag_id, run_id, day)
    ti = dep.wait_for_task(dag_id, run_id, "land", ("running",))
    wait_for(
        lambda: len(sitecore.requests_to(SITECORE_FILES, "GET")) >= seen_before + 3,
        60,
        "the transfer's downloads are in flight",
        poll=0.2,
    )
    time.sleep(2)  # some bytes in, no file complete
    committed_before_kill = dep.manifest(_sitecore_prefix(day)) is not None
    owner = _owner(dep, int(ti["pid"]))
    if owner is None or not owner.name.startswith("worker"):
        raise CheckFailed(f"no Celery worker runs the task's process {ti['pid']} (owner: {owner})")
    killed = owner.name
    log(
        f"kill -9 {owner.name} (pid {owner.proc.pid if owner.proc else '?'} and its tree), running land try 1"
    )
    owner.kill()
    owner.start()  # the machine comes back; the retry may land on either worker
    state = dep.wait_for_run(dag_id, run_id, timeout=600)
    tis = dep.task_instances(dag_id, run_id)
    land_try = tis.get("land", {}).get("try_number")
    copy_ok, copy_detail = dep.one_copy(_sitecore_prefix(day))
    manifest = dep.manifest(_sitecore_prefix(day)) or {}
    expected_files = sitecore.expected_files(manifest["job_ref"]) if manifest.get("job_ref") else []
    manifest_ok = sorted((f["name"], f["bytes"], f["sha256"]) for f in manifest.get("files", [])) == sorted(
        (name, size, sha) for name, size, sha, _ in expected_files
    )
    rows = dep.warehouse_count("loyalty_members")
    expected_rows = sum(r for *_, r in expected_files)
    ok = (
        not committed_before_kill
        and state == "success"
        and (land_try or 0) >= 2
        and copy_ok
        and manifest_ok
        and rows == expected_rows
    )
    observed = (
        f"killed {killed} {'AFTER' if committed_before_kill else 'before'} the manifest; run {state}, land try {land_try}; {copy_detail}; manifest "
        f"{'= job files' if manifest_ok else 'WRONG'}; loyalty_members {rows} rows;"
        f" {dep.open_uploads(_sitecore_prefix(day))} multipart uploads left open"
    )
    return Result(
        "worker killed mid-transfer",
        f"land retried; one copy of {len(expected_files)} files, manifest = job, {expected_rows} rows",
        observed,
        ok,
        time.monotonic() - t0,
    )


def _owner(dep: Deployment, pid: int) -> Component | None:
    """The component whose process tree holds ``pid``."""
    for component in dep.components.values():
        if component.proc is not None and pid in process_tree(component.proc.pid):
            return component
    return None


def triggerer_restart(dep: Deployment, day: date) -> Result:
    """Kill the triggerer while the Cordial and AEP waits are deferred; start a new one."""
    t0 = time.monotonic()
    cordial, adobe = dep.sandbox.cordial, dep.sandbox.adobe
    cordial.job_seconds = 20.0  # Scheduled 20 s, then Processing 20 s
    adobe.job_seconds = 20.0  # NEW 20 s, then PROCESSING 20 s
    posts_before = sum(len(cordial.requests_to(p, "POST")) for p in CORDIAL_CREATES)
    aep_before = len(adobe.requests_to(AEP_JOBS, "POST"))
    cordial_jobs_before = len(cordial.job_ids())
    runs = {
        "cordial_audience_trends": dep.trigger("cordial_audience_trends", "fault-triggerer-restart", day),
        "adobe_profile_export": dep.trigger("adobe_profile_export", "fault-triggerer-restart", day),
    }
    waits = {
        "cordial_audience_trends": ("export_trends", "export_members"),
        "adobe_profile_export": ("export_profiles",),
    }
    for dag_id, tasks in waits.items():
        for task in tasks:
            dep.wait_for_task(dag_id, runs[dag_id], task, ("deferred",))
    cordial.job_seconds = adobe.job_seconds = BASE_JOB_SECONDS
    triggers, leaked = dep.trigger_table_leaks()
    holders_before, old_job = dep.triggerer_ids()
    log(f"kill -9 triggerer (job {old_job}) with 3 deferred waits; starting a new one")
    dep.components["triggerer"].restart()
    moved: dict[str, Any] = {}

    def taken_over() -> bool:
        holders, newest = dep.triggerer_ids()
        moved.update(holders=holders, newest=newest)
        return newest not in (None, old_job) and (not holders or holders == [newest])

    wait_for(taken_over, 120, "a new triggerer holds the triggers", poll=1)
    states = {dag_id: dep.wait_for_run(dag_id, run_id, timeout=600) for dag_id, run_id in runs.items()}
    posts = sum(len(cordial.requests_to(p, "POST")) for p in CORDIAL_CREATES) - posts_before
    aep_posts = len(adobe.requests_to(AEP_JOBS, "POST")) - aep_before
    cordial_jobs = len(cordial.job_ids()) - cordial_jobs_before
    tries = {
        f"{t}": dep.task_instances(d, runs[d]).get(t, {}).get("try_number")
        for d, ts in waits.items()
        for t in ts
    }
    copy_ok, copy_detail = dep.one_copy(_aep_prefix(day))
    ok = (
        all(s == "success" for s in states.values())
        and posts == 2
        and cordial_jobs == 2
        and aep_posts == 1
        and copy_ok
        and triggers >= 3
        and not leaked
    )
    observed = (
        f"{triggers} triggers in the table, {'credentials ' + str(leaked) if leaked else 'no credential'}"
        f" in their kwargs; triggers moved from {holders_before} to {moved.get('holders') or '[] (fired)'}; runs "
        + ", ".join(f"{d.split('_')[0]} {s}" for d, s in states.items())
        + f"; export POSTs: Cordial {posts} ({cordial_jobs} jobs), AEP {aep_posts};"
        + f" tries {tries}; AEP {copy_detail}"
    )
    return Result(
        "triggerer restarted, waits deferred",
        "no credential in the trigger table; waits resume in the new triggerer, runs succeed,"
        " Cordial 2 POSTs, AEP 1 POST",
        observed,
        ok,
        time.monotonic() - t0,
    )


def scheduler_restart(dep: Deployment, day: date) -> Result:
    """Kill the scheduler while a Sitecore transfer runs; start a new one; the run completes."""
    t0 = time.monotonic()
    dag_id, run_id = "sitecore_cdp_audience_export", "fault-scheduler-restart"
    dep.sandbox.sitecore.faults.throttle(SITECORE_FILES, bytes_per_second=8192, times=3, method="GET")
    dep.trigger(dag_id, run_id, day)
    dep.wait_for_task(dag_id, run_id, "land", ("running",))
    log("kill -9 scheduler with land running; starting a new one")
    dep.components["scheduler"].restart()
    state = dep.wait_for_run(dag_id, run_id, timeout=600)
    tis = dep.task_instances(dag_id, run_id)
    copy_ok, copy_detail = dep.one_copy(_sitecore_prefix(day))
    ok = state == "success" and copy_ok
    tries = ", ".join(f"{t} try {ti['try_number']}" for t, ti in sorted(tis.items()))
    return Result(
        "scheduler restarted mid-run",
        "the run completes, one copy",
        f"run {state} ({tries}); {copy_detail}",
        ok,
        time.monotonic() - t0,
    )


def clear_aep(dep: Deployment, day: date) -> Result:
    """Clear the AEP export task while its job runs: the trigger's on_kill cancels the job."""
    t0 = time.monotonic()
    dag_id, run_id = "adobe_profile_export", "fault-clear-aep"
    adobe = dep.sandbox.adobe
    adobe.job_seconds = 30.0
    dep.trigger(dag_id, run_id, day)
    dep.wait_for_task(dag_id, run_id, "export_profiles", ("deferred",))
    adobe.job_seconds = BASE_JOB_SECONDS  # the job the rerun creates
    job_id = dep.xcom(dag_id, run_id, "export_profiles", "job_id")
    # Deferred is not enough: only a trigger the triggerer runs can be cancelled (a cleared task
    # whose trigger no triggerer had picked up yet reattaches to the job on its rerun instead).
    wait_for(
        lambda: bool(adobe.requests_to(f"{AEP_JOBS}/{job_id}", "GET")),
        120,
        f"the triggerer polls AEP job {job_id}",
        poll=0.5,
    )
    log(f"clearing export_profiles while AEP job {job_id} runs")
    dep.api(
        "POST",
        f"/api/v2/dags/{dag_id}/clearTaskInstances",
        {"dry_run": False, "dag_run_id": run_id, "task_ids": ["export_profiles"], "only_failed": False},
    )
    deletes = f"{AEP_JOBS}/{job_id}"
    cancelled = False
    with contextlib.suppress(CheckFailed):
        wait_for(lambda: bool(adobe.requests_to(deletes, "DELETE")), 60, f"DELETE {deletes}", poll=0.5)
        cancelled = adobe.job_cancelled(int(job_id))
    state = dep.wait_for_run(dag_id, run_id, timeout=600)
    new_job = dep.xcom(dag_id, run_id, "export_profiles", "job_id")
    copy_ok, copy_detail = dep.one_copy(_aep_prefix(day))
    manifest = dep.manifest(_aep_prefix(day)) or {}
    ok = (
        cancelled
        and state == "success"
        and copy_ok
        and str(manifest.get("job_ref")) == str(new_job) != str(job_id)
    )
    observed = (
        f"job {job_id}: DELETE sent {len(adobe.requests_to(deletes, 'DELETE'))}x, "
        f"{'cancelled' if cancelled else 'NOT cancelled'} ({adobe.job_status(int(job_id))});"
        f" rerun: job {new_job}, run {state}; manifest job {manifest.get('job_ref')}; {copy_detail}"
    )
    return Result(
        "task cleared while its AEP job runs",
        "the job is cancelled at Adobe; the rerun's new job lands, one copy",
        observed,
        ok,
        time.monotonic() - t0,
    )


FAULTS: dict[str, Callable[[Deployment, date], Result]] = {
    "worker-kill": worker_kill,
    "triggerer-restart": triggerer_restart,
    "scheduler-restart": scheduler_restart,
    "clear-aep": clear_aep,
}
