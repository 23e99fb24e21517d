"""The soak's fault catalogue: what each kind does to a run, which DAGs it applies to, and the
seeded draw of a whole soak's plan (a DAG and its faults per run) before anything starts, so the
same seed gives the same faults in the same order whatever the timing.

Each fault is real: a vendor fault is armed in the sandbox's fault plan before the run is
triggered (and counts as injected once a request consumed it); a process fault waits until the
run is where the fault bites (a transfer streaming, a wait deferred, a load running) and then
strikes, and counts as injected only if it struck.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from dev.deployment.faults import _owner
from dev.deployment.processes import CheckFailed, log, wait_for
from dev.deployment.services import BASE_JOB_SECONDS, Deployment


@dataclass(frozen=True)
class DagSpec:
    """What the soak knows of an example DAG: its vendor, destinations and tasks."""

    dag_id: str
    vendor: str
    prefix: str  # the S3 prefix of its run, with {ds}
    tables: tuple[tuple[str, str], ...]  # (table, mode)
    jobs: int  # vendor export jobs one run creates
    downloads: tuple[str, ...] = ()  # tasks streaming files from the vendor
    loads: tuple[str, ...] = ()  # tasks writing the warehouse
    waits: tuple[str, ...] = ()  # deferred waits on a vendor job
    clear: str = ""  # the task a user clears while it runs


SPECS: dict[str, DagSpec] = {
    s.dag_id: s
    for s in (
        DagSpec(
            "sitecore_cdp_audience_export", "sitecore", "raw/sitecore/daily_loyalty_members/ds={ds}/",
            (("loyalty_members", "replace"),), 0, ("land", "load"), ("load",), (), "land",
        ),
        DagSpec(
            "sitecore_cdp_audience_export_fan_out", "sitecore",
            "raw/sitecore/daily_loyalty_members_fan_out/ds={ds}/", (("loyalty_members_fan_out", "replace"),),
            0, ("land_files", "load_files"), ("load_files", "commit_load"), (), "land_files",
        ),
        DagSpec(
            "cordial_audience_trends", "cordial", "raw/cordial/ds={ds}/",
            (("cordial_audience_trends", "merge"), ("cordial_loyal_members", "replace")), 2,
            (), ("load_trends", "load_members"), ("export_trends", "export_members"), "export_trends",
        ),
        DagSpec(
            "cordial_audience_trends_fan_out", "cordial", "raw/cordial_fan_out/ds={ds}/",
            (("cordial_audience_trends_fan_out", "merge"),), 1,
            (), ("load_files", "commit_load"), ("export_trends",), "export_trends",
        ),
        DagSpec(
            "adobe_profile_export", "adobe", "raw/aep/profiles/ds={ds}/", (("aep_profiles", "replace"),), 1,
            ("land", "load"), ("load",), ("export_profiles",), "export_profiles",
        ),
        DagSpec(
            "adobe_profile_export_fan_out", "adobe", "raw/aep/profiles_fan_out/ds={ds}/",
            (("aep_profiles_fan_out", "append"),), 1,
            ("land_files", "load_files"), ("load_files", "commit_load"), ("export_profiles",), "export_profiles",
        ),
    )
}  # fmt: skip

#: per vendor: its API paths, its file downloads (where it has any)
API_GLOBS = {"sitecore": "/v2/audienceExports/*", "cordial": "/v2/*", "adobe": "/data/*"}
FILE_GLOBS = {"sitecore": "/sitecore-cdp-exports/*", "adobe": "/data/foundation/export/files/*"}
#: how long each status of a Cordial or AEP job lasts while a fault waits for a deferred wait
LONG_JOB_SECONDS = 20.0
#: the Sitecore job of a run whose faults need S3 parts: two files of 10 MiB, which the provider
#: (8 MiB parts) writes with multipart uploads; the others' files (about 100 KB) are one PutObject
MULTIPART_JOB: dict[str, Any] = {"target_bytes": 20 * 1024 * 1024, "target_files": 2}
#: the job's file size the slow link is sized for: a file takes about 6 s at the throttled rate
SMALL_FILE_BYTES = 100_000


@dataclass
class Fault:
    """One drawn fault: its kind and the parameters the seed gave it."""

    kind: str
    params: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        return self.kind


@dataclass
class RunContext:
    """One run under faults: where it is, and what a fault armed (to check, then undo)."""

    dep: Deployment
    spec: DagSpec
    run_id: str
    prefix: str = ""  # the run's S3 prefix
    file_bytes: int = SMALL_FILE_BYTES  # about the size of each of the vendor's files this run
    armed: list[Any] = field(default_factory=list)  # the sandbox Fault objects of vendor faults
    s3_armed: list[Any] = field(default_factory=list)  # the proxy's S3Fault objects

    @property
    def server(self) -> Any:
        return getattr(self.dep.sandbox, self.spec.vendor)

    def task_states(self) -> dict[tuple[str, int], tuple[str | None, int | None]]:
        """Every task instance of the run, mapped ones too: (task, map index) -> (state, pid)."""
        with self.dep.db() as cur:
            cur.execute(
                "SELECT task_id, map_index, state, pid FROM task_instance WHERE dag_id = %s AND run_id = %s",
                (self.spec.dag_id, self.run_id),
            )
            return {(str(t), int(m)): (s, p) for t, m, s, p in cur.fetchall()}

    def wait_until(self, tasks: tuple[str, ...], states: tuple[str, ...], timeout: float = 240) -> tuple[str, int, int | None] | None:
        """The first of ``tasks`` in one of ``states`` (its task id, map index, pid), or ``None``
        once the run has ended or ``timeout`` passed: the moment for the fault is gone."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for (task, index), (state, pid) in sorted(self.task_states().items()):
                if task in tasks and state in states:
                    return task, index, pid
            if self.dep.run_state(self.spec.dag_id, self.run_id) in ("success", "failed"):
                return None
            time.sleep(0.3)
        return None


# -- vendor faults: armed before the run, injected once a request consumed them


def _arm_rate_limit(ctx: RunContext, p: dict[str, Any]) -> None:
    ctx.armed.append(ctx.server.faults.rate_limit(API_GLOBS[ctx.spec.vendor], times=p["times"], retry_after=p["retry_after"]))


def _arm_server_error(ctx: RunContext, p: dict[str, Any]) -> None:
    ctx.armed.append(ctx.server.faults.server_error(API_GLOBS[ctx.spec.vendor], times=p["times"], status=p["status"]))


def _arm_slow(ctx: RunContext, p: dict[str, Any]) -> None:
    ctx.armed.append(ctx.server.faults.slow(API_GLOBS[ctx.spec.vendor], p["seconds"], times=p["times"]))


def _arm_drop(ctx: RunContext, p: dict[str, Any]) -> None:
    glob = FILE_GLOBS[ctx.spec.vendor]
    ctx.armed.append(ctx.server.faults.drop_connection(glob, p["after_bytes"], times=p["times"], method="GET"))


def _throttle(ctx: RunContext, times: int) -> None:
    """Slow the vendor's file downloads (a slow link) so a process fault strikes mid-transfer;
    not a fault of its own, and not counted as one. A file takes about 6 s, whatever its size."""
    if ctx.spec.vendor in FILE_GLOBS:
        rate = max(16384, ctx.file_bytes // 6)
        ctx.server.faults.throttle(FILE_GLOBS[ctx.spec.vendor], bytes_per_second=rate, times=times, method="GET")


def _long_jobs(ctx: RunContext) -> None:
    if ctx.spec.vendor in ("cordial", "adobe"):
        ctx.server.job_seconds = LONG_JOB_SECONDS


# -- process and user faults: strike once the run is where they bite; True if they struck


def _when(ctx: RunContext, tasks: Any, states: tuple[str, ...], p: dict[str, Any]) -> Any:
    """Wait until one of ``tasks`` is in one of ``states``, then the fault's ``after_seconds``:
    where it was found (task, map index, pid), or ``None`` if the run never got there."""
    found = ctx.wait_until(tasks, states)
    if found is not None:
        time.sleep(p["after_seconds"])
    return found


def _strike_url_expiry(ctx: RunContext, p: dict[str, Any]) -> bool:
    server, glob = ctx.server, FILE_GLOBS[ctx.spec.vendor]
    seen = len(server.requests_to(glob, "GET"))
    if ctx.wait_until(ctx.spec.downloads, ("running",)) is None:
        return False
    try:
        wait_for(lambda: len(server.requests_to(glob, "GET")) > seen, 60, "a download starts", poll=0.2)
    except CheckFailed:
        return False
    time.sleep(p["after_seconds"])
    log(f"{ctx.run_id}: every presigned URL {ctx.spec.vendor} issued expires now")
    server.faults.expire_urls()
    return True


def _strike_token_revoked(ctx: RunContext, p: dict[str, Any]) -> bool:
    if _when(ctx, ctx.spec.downloads, ("running",), p) is None:
        return False
    log(f"{ctx.run_id}: every {ctx.spec.vendor} token is revoked now")
    ctx.server.faults.expire_tokens()
    return True


def _strike_worker_kill(ctx: RunContext, p: dict[str, Any]) -> bool:
    found = _when(ctx, ctx.spec.downloads, ("running",), p)
    if found is None:
        return False
    task, index, pid = found
    state, pid = ctx.task_states().get((task, index), (None, None))
    owner = _owner(ctx.dep, int(pid)) if state == "running" and pid else None
    if owner is None or not owner.name.startswith("worker"):
        return False
    log(f"{ctx.run_id}: kill -9 {owner.name} running {task}[{index}]")
    owner.kill()
    owner.start()
    return True


def _strike_triggerer_restart(ctx: RunContext, p: dict[str, Any]) -> bool:
    found = _when(ctx, ctx.spec.waits, ("deferred",), p)
    if found is None:
        return False
    log(f"{ctx.run_id}: kill -9 the triggerer with {found[0]} deferred; starting a new one")
    ctx.dep.components["triggerer"].restart()
    return True


def _strike_scheduler_restart(ctx: RunContext, p: dict[str, Any]) -> bool:
    tasks = ctx.spec.downloads + ctx.spec.loads + ctx.spec.waits
    found = _when(ctx, tasks, ("running", "deferred"), p)
    if found is None:
        return False
    log(f"{ctx.run_id}: kill -9 the scheduler with {found[0]} in flight; starting a new one")
    ctx.dep.components["scheduler"].restart()
    return True


def _strike_clear(ctx: RunContext, p: dict[str, Any]) -> bool:
    task = ctx.spec.clear
    if _when(ctx, (task,), ("running", "deferred"), p) is None:
        return False
    log(f"{ctx.run_id}: a user clears {task} while it runs")
    ctx.dep.api(
        "POST",
        f"/api/v2/dags/{ctx.spec.dag_id}/clearTaskInstances",
        {"dry_run": False, "dag_run_id": ctx.run_id, "task_ids": [task], "only_failed": False},
    )
    return True


def _strike_warehouse_restart(ctx: RunContext, p: dict[str, Any]) -> bool:
    found = _when(ctx, ctx.spec.loads, ("running",), p)
    if found is None:
        return False
    log(f"{ctx.run_id}: the warehouse PostgreSQL restarts (-m immediate) while {found[0]} runs")
    assert ctx.dep.warehouse is not None
    ctx.dep.warehouse.restart("immediate")
    return True


def _s3_fault(ctx: RunContext, operation: str, key_glob: str, p: dict[str, Any], after_forwarding: bool) -> None:
    from dev.deployment.s3_faults import S3Fault

    proxy = ctx.dep.s3_proxy
    assert proxy is not None, "the soak's deployment puts aws_default behind the S3 fault proxy"
    fault = S3Fault(operation, key_glob, status=p["status"], times=p["times"], after_forwarding=after_forwarding)
    ctx.s3_armed.append(proxy.add(fault))


def _arm_s3_put(ctx: RunContext, p: dict[str, Any]) -> None:
    """A file's PutObject into the run directory answered 5xx instead of S3 (it is not written)."""
    _s3_fault(ctx, "PutObject", ctx.prefix + "run-*", p, after_forwarding=False)


def _arm_s3_part(ctx: RunContext, p: dict[str, Any]) -> None:
    """A part of a file's multipart upload answered 5xx instead of S3 (the part is not stored)."""
    _s3_fault(ctx, "UploadPart", ctx.prefix + "run-*", p, after_forwarding=False)


def _arm_s3_complete(ctx: RunContext, p: dict[str, Any]) -> None:
    """A file's CompleteMultipartUpload answered 5xx: before S3 completed it, or after (the answer
    lost, and the request sent again finds the upload complete)."""
    _s3_fault(ctx, "CompleteMultipartUpload", ctx.prefix + "run-*", p, after_forwarding=p["answer_lost"])


def _arm_s3_commit_lost(ctx: RunContext, p: dict[str, Any]) -> None:
    """The manifest's PutObject (the commit) written by S3, its answer a 5xx: did it commit?"""
    _s3_fault(ctx, "PutObject", ctx.prefix + "_manifest.json", p, after_forwarding=True)


@dataclass(frozen=True)
class Kind:
    """A fault kind: what it applies to, how its parameters are drawn, how it is done."""

    applies: Callable[[DagSpec], bool]
    draw: Callable[[random.Random], dict[str, Any]]
    arm: Callable[[RunContext, dict[str, Any]], None] | None = None
    strike: Callable[[RunContext, dict[str, Any]], bool] | None = None
    prepare: Callable[[RunContext], None] | None = None  # slow links or long jobs, before the trigger
    multipart: bool = False  # the run's Sitecore job is MULTIPART_JOB, files S3 takes in parts


def _long_jobs_and_slow_links(ctx: RunContext) -> None:
    _long_jobs(ctx)
    _throttle(ctx, 3)


def _everywhere(spec: DagSpec) -> bool:
    return True


def _manifested(spec: DagSpec) -> bool:
    """The DAGs whose transfer writes S3 itself (through ``aws_default``): not Cordial's, which
    Cordial delivers."""
    return spec.vendor != "cordial"


def _multipart(spec: DagSpec) -> bool:
    """The DAGs whose files can be large enough for S3 parts: Sitecore's (the soak sizes the job)."""
    return spec.vendor == "sitecore"


def _downloads(spec: DagSpec) -> bool:
    return bool(spec.downloads)


def _after(rng: random.Random) -> dict[str, Any]:
    return {"after_seconds": rng.choice([0.5, 1.0, 2.0, 3.0])}


CATALOGUE: dict[str, Kind] = {
    "rate-limit-storm": Kind(
        _everywhere, lambda r: {"times": r.randint(3, 8), "retry_after": str(r.choice([1, 2]))}, arm=_arm_rate_limit
    ),
    "server-error-burst": Kind(
        _everywhere, lambda r: {"times": r.randint(2, 5), "status": r.choice([500, 502, 503, 504])}, arm=_arm_server_error
    ),
    "slow-answers": Kind(_everywhere, lambda r: {"times": r.randint(1, 3), "seconds": r.choice([2.0, 5.0, 8.0])}, arm=_arm_slow),
    "drop-mid-body": Kind(
        _downloads, lambda r: {"times": r.randint(1, 3), "after_bytes": r.randint(1_000, 60_000)}, arm=_arm_drop
    ),
    "url-expiry": Kind(
        lambda s: s.vendor == "sitecore", _after, strike=_strike_url_expiry, prepare=lambda c: _throttle(c, 3)
    ),
    "token-revoked": Kind(_downloads, _after, strike=_strike_token_revoked, prepare=lambda c: _throttle(c, 2)),
    "worker-kill": Kind(_downloads, _after, strike=_strike_worker_kill, prepare=lambda c: _throttle(c, 3)),
    "triggerer-restart": Kind(lambda s: bool(s.waits), _after, strike=_strike_triggerer_restart, prepare=_long_jobs),
    "scheduler-restart": Kind(_everywhere, _after, strike=_strike_scheduler_restart, prepare=lambda c: _throttle(c, 2)),
    "clear-running": Kind(_everywhere, _after, strike=_strike_clear, prepare=_long_jobs_and_slow_links),
    "s3-put-5xx": Kind(
        _manifested, lambda r: {"times": r.randint(1, 4), "status": r.choice([500, 503])}, arm=_arm_s3_put
    ),
    "s3-part-5xx": Kind(
        _multipart, lambda r: {"times": r.randint(1, 3), "status": r.choice([500, 503])}, arm=_arm_s3_part, multipart=True
    ),
    "s3-complete-5xx": Kind(
        _multipart, lambda r: {"times": r.randint(1, 2), "status": r.choice([500, 503]), "answer_lost": r.choice([False, True])},
        arm=_arm_s3_complete, multipart=True,
    ),
    "s3-commit-answer-lost": Kind(
        _manifested, lambda r: {"times": r.randint(1, 2), "status": r.choice([500, 503])}, arm=_arm_s3_commit_lost
    ),
    "warehouse-restart": Kind(_everywhere, _after, strike=_strike_warehouse_restart, prepare=lambda c: _throttle(c, 6)),
}  # fmt: skip


def draw_plan(seed: int, runs: int, dags: list[str] | None = None) -> list[tuple[str, list[Fault]]]:
    """The whole soak, drawn up front from ``random.Random(seed)``: per run a DAG and one to three
    faults that apply to it (kinds in catalogue order, so a plan reads the same every time)."""
    rng = random.Random(seed)
    names = sorted(dags or SPECS)
    plan = []
    for _ in range(runs):
        dag_id = rng.choice(names)
        kinds = [k for k, kind in CATALOGUE.items() if kind.applies(SPECS[dag_id])]
        chosen = rng.sample(kinds, rng.choice([1, 1, 2, 2, 3]))
        chosen.sort(key=list(CATALOGUE).index)
        plan.append((dag_id, [Fault(k, CATALOGUE[k].draw(rng)) for k in chosen]))
    return plan


def needs_parts(faults: list[Fault]) -> bool:
    """Whether the run's vendor files must be large enough for S3 parts (:data:`MULTIPART_JOB`)."""
    return any(CATALOGUE[f.kind].multipart for f in faults)


def arm(ctx: RunContext, faults: list[Fault]) -> None:
    """Before the trigger: slow links and long jobs the process faults need, and the vendor faults."""
    for fault in faults:
        kind = CATALOGUE[fault.kind]
        if kind.prepare is not None:
            kind.prepare(ctx)
        if kind.arm is not None:
            kind.arm(ctx, fault.params)


def strike(ctx: RunContext, faults: list[Fault]) -> list[str]:
    """After the trigger: the process faults in order; the kinds that struck."""
    struck = []
    for fault in faults:
        kind = CATALOGUE[fault.kind]
        if kind.strike is not None and kind.strike(ctx, fault.params):
            struck.append(fault.kind)
    return struck


def disarm(ctx: RunContext, faults: list[Fault]) -> list[str]:
    """After the run: the vendor faults a request consumed (injected), then every fault and
    setting undone, so the next run (or this run's retry) starts clean."""
    active = {id(f) for f in ctx.server.faults.active}
    injected = []
    armed, s3_armed = iter(ctx.armed), iter(ctx.s3_armed)
    for fault in faults:
        if CATALOGUE[fault.kind].arm is None:
            continue
        if fault.kind.startswith("s3-"):
            if next(s3_armed).hits:
                injected.append(fault.kind)
            continue
        planted = next(armed)
        if id(planted) not in active or planted.times != fault.params.get("times"):
            injected.append(fault.kind)
    ctx.server.faults.clear()
    if ctx.dep.s3_proxy is not None:
        ctx.dep.s3_proxy.clear()
    if ctx.spec.vendor in ("cordial", "adobe"):
        ctx.server.job_seconds = BASE_JOB_SECONDS
    return injected
