"""Benchmark: many deferred export waits in one triggerer-like process against the sandbox.

Starts the vendor sandbox in this process, then a second Python process — the triggerer — that
imports Airflow and the provider's triggers, starts one asyncio event loop and, once it idles,
runs ``--waits`` triggers in it, each as its own task driving ``trigger.run()`` to its event, as
Airflow's ``TriggerRunner`` does (without the supervisor and the database around it). The waits are
Sitecore CDP, Cordial and Adobe Experience Platform triggers mixed (40/30/30 %) over
``--connections`` Airflow connections (split the same way), each waiting for a job that finishes at a
random time in ``[--job-min, --job-max]`` seconds after seeding. It measures, in the triggerer:

  rss          peak RSS during the run minus RSS of the idle process (Airflow and the provider
               imported, the loop running, no trigger yet)
  tokens       token requests per connection (the sandbox has one credential per vendor, so
               connections of one vendor share a token: one per credential is the floor)
  rate         the most requests one connection sent within any 1 s window (client side: every
               request httpx sends, by the connection of the trigger that sent it)
  429s         answers 429 (with ``--storm``: every request answered 429 with ``Retry-After`` for
               that many seconds, from ``--storm-at`` on, through the sandbox's fault control)
  delay        seconds from a job's end to its wait's event (max and median)
  lag          the event loop's lag: how late a 50 ms ticker wakes up (max)

``--json`` prints one JSON line per target with the value measured and the target beside it.

    python benchmarks/triggerer.py                            # 1,000 waits, 10 connections, 10 s polls
    python benchmarks/triggerer.py --waits 200 --storm 20     # a 20 s rate-limit storm
"""

from __future__ import annotations

import argparse
import asyncio
import contextvars
import json
import math
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

VENDOR_SHARE = {"sitecore": 0.4, "cordial": 0.3, "adobe": 0.3}
TICK = 0.05
PREFIX = "@@bench "


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def split(total: int) -> dict[str, int]:
    """``total`` over the vendors by VENDOR_SHARE, at least one each."""
    counts = {v: max(1, int(total * share)) for v, share in VENDOR_SHARE.items()}
    counts["sitecore"] += total - sum(counts.values())
    return counts


# -- the parent: sandbox, connections, seeding, report ------------------------------------------


def seed(
    sandbox: Any, conn_ids: dict[str, list[str]], waits: dict[str, int], args: argparse.Namespace
) -> list:
    """Jobs at the sandbox and one trigger spec per wait: (vendor, conn id, kwargs, job end epoch)."""
    from airflow_provider_exports.hooks.cordial import CordialHook

    rng = random.Random(args.seed)
    specs: list[tuple[str, str, dict[str, Any], float]] = []
    now_iso = datetime.now(timezone.utc).isoformat()

    def offset() -> float:
        return rng.uniform(args.job_min, args.job_max)

    # Sitecore: about ten waits per export, as several DAGs wait for one export.
    exports = max(1, waits["sitecore"] // 10)
    ends: dict[str, float] = {}
    for i in range(exports):
        name = f"bench_export_{i}"
        sandbox.sitecore.add_export(name)
        seconds = offset()
        sandbox.sitecore.add_job(name, pending_seconds=seconds, rows=10)
        ends[name] = time.time() + seconds
    for i in range(waits["sitecore"]):
        name = f"bench_export_{i % exports}"
        conn = conn_ids["sitecore"][i % len(conn_ids["sitecore"])]
        kwargs = {
            "audience_export_ref": name,
            "finished_after": now_iso,
            "fail_statuses": ["FAILED"],
            "sitecore_cdp_conn_id": conn,
        }
        specs.append(("sitecore", conn, kwargs, ends[name]))

    sandbox.cordial.add_audience("bench")
    hook = CordialHook(conn_ids["cordial"][0])
    for i in range(waits["cordial"]):
        seconds = offset()
        sandbox.cordial.job_seconds = seconds / 2  # Scheduled, then Processing, then Done
        job_id = hook.create_audience_trends_export(
            name=f"bench-{i}",
            audiences=["bench"],
            selected_timeframe_start="2026-11-16",
            selected_timeframe_end="2026-11-22",
            destination={"type": "AWS"},
        )
        conn = conn_ids["cordial"][i % len(conn_ids["cordial"])]
        specs.append(("cordial", conn, {"job_id": job_id, "cordial_conn_id": conn}, time.time() + seconds))
    hook.close()

    for i in range(waits["adobe"]):
        seconds = offset()
        sandbox.adobe.job_seconds = seconds / 2  # NEW, then PROCESSING, then SUCCEEDED
        job_id = sandbox.adobe.add_job(segments=["bench"])
        conn = conn_ids["adobe"][i % len(conn_ids["adobe"])]
        specs.append(
            ("adobe", conn, {"export_job_id": str(job_id), "adobe_aep_conn_id": conn}, time.time() + seconds)
        )
    return specs


def read_message(stream: Any, kind: str) -> str:
    """The next protocol line of ``kind`` from the triggerer's stdout, skipping its log lines."""
    for line in stream:
        if line.startswith(f"{PREFIX}{kind} "):
            return line[len(PREFIX) + len(kind) + 1 :]
    raise RuntimeError(f"the triggerer process ended before {kind}")


def parent(args: argparse.Namespace) -> int:
    cache = Path(tempfile.mkdtemp(prefix="bench-triggerer-"))
    os.environ.update(
        {
            "AIRFLOW_HOME": str(cache / "airflow"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__UNIT_TEST_MODE": "True",
        }
    )
    from airflow_provider_exports_sandbox import Sandbox

    sandbox = Sandbox(cache_dir=cache).start()
    try:
        per_vendor = split(args.connections)
        waits = split(args.waits)
        conn_ids = {v: [f"bench_{v}_{i}" for i in range(n)] for v, n in per_vendor.items()}
        env = dict(os.environ)
        # A deployment has its bytecode cached; without it every first import compiles on the loop.
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        for vendor, ids in conn_ids.items():
            conn = json.dumps(getattr(sandbox, vendor).connection())
            for conn_id in ids:
                env[f"AIRFLOW_CONN_{conn_id.upper()}"] = conn
        os.environ.update(env)
        child = subprocess.Popen(
            [sys.executable, __file__, "--child", json.dumps(vars(args))],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            text=True,
        )
        assert child.stdin is not None and child.stdout is not None
        read_message(child.stdout, "READY")
        specs = seed(sandbox, conn_ids, waits, args)
        urls = {v: getattr(sandbox, v).url for v in conn_ids}
        child.stdin.write(json.dumps({"specs": specs, "urls": urls}) + "\n")
        child.stdin.flush()
        result = json.loads(read_message(child.stdout, "RESULT"))
        child.wait(timeout=60)
    finally:
        sandbox.stop()
    report(args, result, conn_ids)
    return 0


def report(args: argparse.Namespace, r: dict[str, Any], conn_ids: dict[str, list[str]]) -> None:
    from airflow_provider_exports.hooks._clients import ASYNC_REQUESTS_PER_SECOND

    cap = args.cap or ASYNC_REQUESTS_PER_SECOND
    connections = sum(len(v) for v in conn_ids.values())
    storm_429_bound = 2 * connections * (math.ceil(args.storm / args.retry_after) + 1) if args.storm else 0
    lines = [
        ("waits that ended in success", r["successes"], f"= {args.waits}", r["successes"] == args.waits),
        (
            "RSS growth over the idle triggerer (MB)",
            round(r["rss_growth_mb"], 1),
            "<= 200",
            r["rss_growth_mb"] <= 200,
        ),
        (
            "token requests, most for one connection",
            r["tokens_max_per_conn"],
            "<= 1",
            r["tokens_max_per_conn"] <= 1,
        ),
        (
            "token requests, all connections",
            r["tokens_total"],
            "<= 2 (OAuth credentials)",
            r["tokens_total"] <= 2,
        ),
        (
            "requests in any 1 s, most for one connection",
            r["rate_max"],
            f"<= {cap + 1:g} (cap {cap:g}/s)",
            r["rate_max"] <= cap + 1,
        ),
        ("429 answers", r["count_429"], f"<= {storm_429_bound}", r["count_429"] <= storm_429_bound),
        (
            "event after job end, max (s)",
            round(r["delay_max"], 2),
            f"<= {args.poll_interval:g} (poll interval)",
            r["delay_max"] <= args.poll_interval,
        ),
        ("event after job end, median (s)", round(r["delay_median"], 2), "-", True),
        ("event loop lag, max (s)", round(r["lag_max"], 3), "<= 0.1", r["lag_max"] <= 0.1),
        (
            "event loop lag from the loop's own CPU, max (s)",
            round(r["busy_lag_max"], 3),
            "<= 0.1",
            r["busy_lag_max"] <= 0.1,
        ),
        (
            "longest single callback on the loop, CPU (s)",
            round(r["longest_callback"], 3),
            "<= 0.1",
            r["longest_callback"] <= 0.1,
        ),
    ]
    if args.json:
        for name, value, target, met in lines:
            print(
                json.dumps(
                    {"benchmark": "triggerer", "measure": name, "value": value, "target": target, "met": met}
                )
            )
        print(
            json.dumps(
                {
                    "benchmark": "triggerer",
                    "measure": "context",
                    "value": {
                        k: r[k]
                        for k in (
                            "requests",
                            "idle_rss_mb",
                            "peak_rss_mb",
                            "cpu_seconds",
                            "wall_seconds",
                            "lag_p99",
                            "lags_over_100ms",
                        )
                    },
                    "args": vars(args),
                }
            )
        )
        return
    print(
        f"{args.waits} waits, {connections} connections, poll {args.poll_interval:g} s, jobs end "
        f"{args.job_min:g}-{args.job_max:g} s after seeding"
        + (
            f", a {args.storm:g} s storm of 429s (Retry-After {args.retry_after:g}) at {args.storm_at:g} s"
            if args.storm
            else ""
        )
    )
    for name, value, target, met in lines:
        print(f"  {name:<48} {value!s:>10}   target {target:<28} {'ok' if met else 'MISSED'}")
    print(
        f"  ({r['requests']} requests over {r['tcp_connects']} TCP connections of {r['clients_built']} clients; RSS idle {r['idle_rss_mb']:.0f} MB, peak {r['peak_rss_mb']:.0f} MB; "
        f"{r['cpu_seconds']:.1f} CPU s in {r['wall_seconds']:.1f} s; loop lag p99 {r['lag_p99'] * 1000:.0f} ms)"
    )
    print(f"  GC: longest collection {r['gc_max']:.3f} s CPU; full collections: {r['gc_gen2']}")
    if r["lags_over_100ms"]:
        print(
            f"  the 10 lags over 100 ms with the most loop CPU (s into the run, lag s, of it on the loop's CPU s): {r['lags_over_100ms']}"
        )


# -- the child: the triggerer ---------------------------------------------------------------------


CONN: contextvars.ContextVar[str] = contextvars.ContextVar("conn", default="-")


def child(raw: str) -> int:
    args = argparse.Namespace(**json.loads(raw))
    import airflow.sdk  # noqa: F401  (what a triggerer has loaded)
    import httpx

    from airflow_provider_exports.hooks._base import ExportsVendorHook
    from airflow_provider_exports.triggers.adobe_experience_platform import AdobeProfileExportJobTrigger
    from airflow_provider_exports.triggers.cordial import CordialJobTrigger
    from airflow_provider_exports.triggers.sitecore_cdp import SitecoreCDPExportTrigger

    if args.cap:
        ExportsVendorHook.max_requests_per_second = args.cap
    classes = {
        "sitecore": SitecoreCDPExportTrigger,
        "cordial": CordialJobTrigger,
        "adobe": AdobeProfileExportJobTrigger,
    }
    sent: list[tuple[str, float, str, int]] = []
    original_send = httpx.AsyncClient.send

    async def counting_send(self: httpx.AsyncClient, request: httpx.Request, **kwargs: Any) -> httpx.Response:
        at = time.monotonic()
        response = await original_send(self, request, **kwargs)
        sent.append((CONN.get(), at, request.method, response.status_code))
        return response

    httpx.AsyncClient.send = counting_send  # type: ignore[method-assign]
    built = [0]
    original_init = httpx.AsyncClient.__init__

    def counting_init(self: httpx.AsyncClient, *a: Any, **k: Any) -> None:
        built[0] += 1
        original_init(self, *a, **k)

    httpx.AsyncClient.__init__ = counting_init  # type: ignore[method-assign]
    import httpcore._backends.anyio as backend

    connects = [0]
    original_connect = backend.AnyIOBackend.connect_tcp

    async def counting_connect(self: Any, *a: Any, **k: Any) -> Any:
        connects[0] += 1
        return await original_connect(self, *a, **k)

    backend.AnyIOBackend.connect_tcp = counting_connect  # type: ignore[method-assign]
    # The longest single callback (a coroutine step), in CPU time: what blocks the loop, apart
    # from how many callbacks are ready at once and whether the OS runs the process at all.
    longest = [0.0]
    original_run = asyncio.events.Handle._run

    def timed_run(self: asyncio.events.Handle) -> None:
        before = time.thread_time()
        original_run(self)
        spent = time.thread_time() - before
        if spent > longest[0]:
            longest[0] = spent

    asyncio.events.Handle._run = timed_run  # type: ignore[method-assign]

    async def main() -> dict[str, Any]:
        lags: list[float] = []
        rss_samples: list[float] = []
        stop = asyncio.Event()

        lag_at: list[tuple[float, float]] = []

        busy_lags: list[float] = []

        async def ticker() -> None:
            # How late a 50 ms timer fires (wall), and how much of that the loop's own thread spent
            # on the CPU (busy): on a machine with more runnable processes than cores the OS may
            # not run the process at all for a while, which is lag no code of ours can cause.
            while not stop.is_set():
                before, cpu_before = time.monotonic(), time.thread_time()
                await asyncio.sleep(TICK)
                lag = time.monotonic() - before - TICK
                busy = max(0.0, min(lag, time.thread_time() - cpu_before))
                lags.append(lag)
                busy_lags.append(busy)
                if lag > 0.1:
                    lag_at.append((round(time.time() - started_wall, 1), round(lag, 3), round(busy, 3)))

        async def sampler() -> None:
            while not stop.is_set():
                rss_samples.append(rss_mb())
                await asyncio.sleep(0.25)

        import gc

        gc_times: list[tuple[int, float]] = []
        gc_start: list[float] = [0.0]

        def on_gc(phase: str, info: dict[str, Any]) -> None:
            if phase == "start":
                gc_start[0] = time.thread_time()
            else:
                gc_times.append((info["generation"], time.thread_time() - gc_start[0]))

        gc.callbacks.append(on_gc)
        if args.gc_freeze:  # what Airflow's DAG processor does after start; its triggerer does not
            gc.freeze()
        if os.environ.get("BENCH_SLOW_CALLBACKS"):  # name the callbacks that hold the loop
            loop = asyncio.get_running_loop()
            loop.set_debug(True)
            loop.slow_callback_duration = float(os.environ["BENCH_SLOW_CALLBACKS"])
        started_wall = time.time()
        ticking = asyncio.create_task(ticker())
        await asyncio.sleep(2)  # idle: Airflow and the provider imported, the loop running
        idle = statistics.median([rss_mb() for _ in range(5)])
        lags.clear()
        longest[0] = 0.0
        busy_lags.clear()
        lag_at.clear()
        print(f"{PREFIX}READY -", flush=True)
        line = await asyncio.to_thread(sys.stdin.readline)
        plan = json.loads(line)
        sampling = asyncio.create_task(sampler())
        started_wall, cpu0 = time.time(), time.process_time()

        async def wait(vendor: str, conn: str, kwargs: dict[str, Any], end: float) -> tuple[str, float]:
            CONN.set(conn)
            trigger = classes[vendor](**kwargs, poll_interval=args.poll_interval, deadline=time.time() + 3600)
            async for event in trigger.run():
                return str(event.payload.get("status")), time.time() - end
            return "none", math.inf

        async def storm() -> None:
            import urllib.request

            def control(method: str, url: str, body: dict[str, Any] | None = None) -> None:
                data = json.dumps(body).encode() if body is not None else None
                request = urllib.request.Request(
                    url + "/_sandbox/faults",
                    data=data,
                    method=method,
                    headers={"Content-Type": "application/json"},
                )
                urllib.request.urlopen(request, timeout=10).close()

            await asyncio.sleep(args.storm_at)
            spec = {
                "kind": "rate_limit",
                "path_glob": "*",
                "times": None,
                "retry_after": f"{args.retry_after:g}",
            }
            for url in plan["urls"].values():
                await asyncio.to_thread(control, "POST", url, spec)
            await asyncio.sleep(args.storm)
            for url in plan["urls"].values():
                await asyncio.to_thread(control, "DELETE", url)

        storming = asyncio.create_task(storm()) if args.storm else None
        outcomes = await asyncio.gather(*(wait(*spec) for spec in plan["specs"]))
        if storming is not None:
            await storming
        stop.set()
        await asyncio.gather(ticking, sampling)

        per_conn: dict[str, list[float]] = defaultdict(list)
        tokens: dict[str, int] = defaultdict(int)
        for conn, at, method, _status in sent:
            per_conn[conn].append(at)
            if method == "POST":  # the triggers only read: a POST is a token request
                tokens[conn] += 1
        rate_max = 0
        for times in per_conn.values():
            times.sort()
            j = 0
            for i, t in enumerate(times):
                while times[j] <= t - 1.0:
                    j += 1
                rate_max = max(rate_max, i - j + 1)
        delays = [d for status, d in outcomes if status == "success"]
        lags.sort()
        return {
            "successes": sum(1 for status, _ in outcomes if status == "success"),
            "idle_rss_mb": idle,
            "peak_rss_mb": max(rss_samples),
            "rss_growth_mb": max(rss_samples) - idle,
            "tokens_max_per_conn": max(tokens.values(), default=0),
            "tokens_total": sum(tokens.values()),
            "rate_max": rate_max,
            "count_429": sum(1 for *_, status in sent if status == 429),
            "requests": len(sent),
            "clients_built": built[0],
            "tcp_connects": connects[0],
            "delay_max": max(delays, default=math.inf),
            "delay_median": statistics.median(delays) if delays else math.inf,
            "lag_max": lags[-1] if lags else 0.0,
            "busy_lag_max": max(busy_lags, default=0.0),
            "gc_max": max((t for _, t in gc_times), default=0.0),
            "longest_callback": longest[0],
            "gc_gen2": [round(t, 3) for g, t in gc_times if g == 2][:10],
            "lag_p99": lags[int(len(lags) * 0.99)] if lags else 0.0,
            "lags_over_100ms": sorted(lag_at, key=lambda x: -x[2])[:10],
            "cpu_seconds": time.process_time() - cpu0,
            "wall_seconds": time.time() - started_wall,
        }

    if os.environ.get("BENCH_PROFILE"):  # where the triggerer's CPU goes: python -m pstats FILE
        import cProfile

        profiler = cProfile.Profile(time.thread_time)  # CPU time: a busy machine preempts anywhere
        result = profiler.runcall(asyncio.run, main())
        profiler.dump_stats(os.environ["BENCH_PROFILE"])
    else:
        result = asyncio.run(main())
    print(f"{PREFIX}RESULT {json.dumps(result)}", flush=True)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--waits", type=int, default=1000)
    parser.add_argument("--connections", type=int, default=10)
    parser.add_argument("--poll-interval", type=float, default=10.0)
    parser.add_argument(
        "--job-min", type=float, default=10.0, help="seconds after seeding the first job ends"
    )
    parser.add_argument("--job-max", type=float, default=60.0, help="seconds after seeding the last job ends")
    parser.add_argument(
        "--cap", type=float, default=None, help="requests/s per connection (default: the hooks')"
    )
    parser.add_argument("--storm", type=float, default=0.0, help="seconds of 429s for every request")
    parser.add_argument("--storm-at", type=float, default=15.0, help="when the storm starts, after seeding")
    parser.add_argument("--retry-after", type=float, default=1.0, help="the storm's Retry-After")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--gc-freeze",
        action="store_true",
        help="gc.freeze() the started process (full collections skip its heap)",
    )
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.child)
    return parent(args)


if __name__ == "__main__":
    sys.exit(main())
