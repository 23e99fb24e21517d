"""Benchmark: what the provider's modules add to DAG parsing, over ``airflow.sdk`` and the S3Hook.

A DAG file that uses the provider imports ``airflow.sdk`` and, through the provider, the amazon
provider's ``S3Hook`` anyway; what is ours is the rest. For each example DAG this finds the
provider modules the file imports (its ``from airflow_provider_exports... import`` lines), then,
``--runs`` times, in a fresh ``python -X importtime`` process: imports the baseline
(``import airflow.sdk`` and ``S3Hook``), writes a marker, imports those provider modules, and
sums the cumulative import time of everything imported after the marker (our modules and
whatever they pull in). One warm-up process first, so bytecode is compiled. Medians are
reported, with the heaviest modules of the median run and the top-level packages our modules
added to ``sys.modules`` (none of httpx, boto3, pyarrow or a database driver may appear).

    python benchmarks/imports.py            # 7 runs per example DAG
    python benchmarks/imports.py --json     # one JSON line per target, then the report
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
EXAMPLE_DAGS = REPO / "example_dags"
PACKAGE = "airflow_provider_exports"
BASELINE = "import airflow.sdk\nfrom airflow.providers.amazon.aws.hooks.s3 import S3Hook\n"
MARKER = "-- provider imports --"
#: top-level packages that must not be imported because of our modules when a DAG is parsed
HEAVY = ("httpx", "boto3", "botocore", "pyarrow", "psycopg", "psycopg2", "asyncpg", "pymysql", "sqlite3")
TARGET_MS = 100.0

_PROBE = """\
import os, sys, json
{baseline}
before = set(sys.modules)
os.write(2, b"{marker}\\n")
{imports}
added = sorted({{m.split(".")[0] for m in set(sys.modules) - before}})
print(json.dumps({{"added_packages": added}}))
"""


def provider_modules(dag_file: Path) -> list[str]:
    """The provider modules a DAG file imports, in the order it imports them."""
    found: list[str] = []
    for node in ast.walk(ast.parse(dag_file.read_text(), str(dag_file))):
        names: list[str] = []
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        found += [n for n in names if (n == PACKAGE or n.startswith(PACKAGE + ".")) and n not in found]
    return found


def probe_source(modules: list[str]) -> str:
    return _PROBE.format(baseline=BASELINE, marker=MARKER, imports="\n".join(f"import {m}" for m in modules))


def parse_importtime(stderr: str) -> tuple[float, list[tuple[str, float, float]]]:
    """The milliseconds imported after the marker (sum of the outermost entries' cumulative
    times) and every module imported then: ``(name, self ms, cumulative ms)``."""
    lines = stderr.split(MARKER, 1)[1].splitlines() if MARKER in stderr else []
    entries: list[tuple[int, str, float, float]] = []
    for line in lines:
        if not line.startswith("import time:") or "|" not in line:
            continue
        self_us, cum_us, name = line[len("import time:") :].split("|", 2)
        try:
            depth = (len(name) - len(name.lstrip(" ")) - 1) // 2
            entries.append((depth, name.strip(), int(self_us) / 1000, int(cum_us) / 1000))
        except ValueError:  # the header line
            continue
    if not entries:
        return 0.0, []
    outer = min(d for d, *_ in entries)
    total = sum(cum for d, _, _, cum in entries if d == outer)
    return total, [(n, s, c) for _, n, s, c in entries]


def run_probe(modules: list[str], env: dict[str, str]) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", probe_source(modules)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"importing {modules} failed:\n{proc.stderr[-3000:]}")
    total, entries = parse_importtime(proc.stderr)
    added = json.loads(proc.stdout.strip().splitlines()[-1])["added_packages"]
    return {"ms": total, "entries": entries, "added_packages": added}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=7, help="fresh processes per DAG; medians (default 7)")
    parser.add_argument("--top", type=int, default=8, help="heaviest modules shown per DAG (default 8)")
    parser.add_argument("--json", action="store_true", help="one JSON line per target, then the report")
    args = parser.parse_args(argv)

    home = Path(tempfile.mkdtemp(prefix="exports-imports-home-"))
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "PYTHONPATH": str(REPO),
    }
    report: dict[str, Any] = {"runs": args.runs, "baseline": BASELINE.strip().split("\n"), "dags": {}}
    for dag_file in sorted(EXAMPLE_DAGS.glob("*.py")):
        modules = provider_modules(dag_file)
        run_probe(modules, env)  # warm-up: bytecode compiled, files in the page cache
        runs = [run_probe(modules, env) for _ in range(args.runs)]
        runs.sort(key=lambda r: r["ms"])
        median = runs[len(runs) // 2]
        ours = [e for e in median["entries"] if e[0].startswith(PACKAGE)]
        report["dags"][dag_file.stem] = {
            "modules": modules,
            "median_ms": statistics.median(r["ms"] for r in runs),
            "min_ms": runs[0]["ms"],
            "max_ms": runs[-1]["ms"],
            "heavy_added": sorted({p for r in runs for p in r["added_packages"] if p in HEAVY}),
            "added_packages": median["added_packages"],
            "heaviest_self_ms": sorted(
                (
                    {"module": n, "self_ms": round(s, 2), "cumulative_ms": round(c, 2)}
                    for n, s, c in median["entries"]
                ),
                key=lambda e: -e["self_ms"],
            )[: args.top],
            "provider_self_ms": round(sum(s for _, s, _ in ours), 2),
        }
    targets = [
        {
            "target": f"imports_{name}",
            "measured_ms": round(d["median_ms"], 1),
            "target_ms": TARGET_MS,
            "met": d["median_ms"] <= TARGET_MS and not d["heavy_added"],
            "heavy_added": d["heavy_added"],
        }
        for name, d in report["dags"].items()
    ]
    report["targets"] = targets
    if args.json:
        for t in targets:
            print(json.dumps(t))
        print(json.dumps(report))
        return 0
    print(f"Import time over `{'; '.join(report['baseline'])}`, medians of {args.runs} fresh processes")
    print(f"{'example DAG':32s} {'median ms':>10s} {'min':>7s} {'max':>7s}  heavy packages added")
    for name, d in report["dags"].items():
        print(
            f"{name:32s} {d['median_ms']:10.1f} {d['min_ms']:7.1f} {d['max_ms']:7.1f}  "
            f"{', '.join(d['heavy_added']) or 'none'}"
        )
    for name, d in report["dags"].items():
        print(f"\n{name}: packages added {', '.join(d['added_packages'])}; heaviest (self ms):")
        for e in d["heaviest_self_ms"]:
            print(f"  {e['self_ms']:7.2f}  {e['module']}")
    print()
    for t in targets:
        print(
            f"{t['target']:40s} {t['measured_ms']:7.1f} ms  (target <= {TARGET_MS:.0f} ms) "
            f"{'met' if t['met'] else 'MISSED'}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
