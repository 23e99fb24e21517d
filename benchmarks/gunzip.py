"""Benchmark: zlib, ISA-L (``isal``) and zlib-ng inflating an export file the way the engine does.

The engine inflates gzip as chunks pass, at most 1 MiB out per call (a gzip bomb stays small:
``engine/streams.py``). This runs that loop over the sandbox's Sitecore guests as gzipped JSON
lines (1M rows, built once into the benchmarks' cache) with each library, alternating, ``--runs``
times, and prints the medians and each library's ratio to zlib. It chose the library the engine
uses (ISA-L).

    python benchmarks/gunzip.py [--rows 1000000] [--runs 5] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import zlib
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def inflate(module: Any, chunks: list[bytes]) -> tuple[float, int]:
    """Seconds to inflate ``chunks`` with ``module``'s ``decompressobj``, and the bytes out."""
    t0 = time.perf_counter()
    out = 0
    d = module.decompressobj(wbits=31)
    for chunk in chunks:
        data = chunk
        while data:
            out += len(d.decompress(data, 1 << 20))
            data = d.unconsumed_tail
    return time.perf_counter() - t0, out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--cache-dir", type=Path, default=Path(tempfile.gettempdir()) / "exports-bench-cache")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    from isal import isal_zlib
    from zlib_ng import zlib_ng

    sys.path[:0] = [str(REPO / "sandbox"), str(REPO / "benchmarks")]
    from sql_load import guests_jsonl_gz

    path = guests_jsonl_gz(args.cache_dir, args.rows)
    raw = path.read_bytes()
    chunks = [raw[i : i + (1 << 20)] for i in range(0, len(raw), 1 << 20)]
    libraries = {"zlib": zlib, "isal": isal_zlib, "zlib-ng": zlib_ng}
    seconds: dict[str, list[float]] = {name: [] for name in libraries}
    sizes = set()
    for _ in range(args.runs):
        for name, module in libraries.items():
            took, size = inflate(module, chunks)
            seconds[name].append(took)
            sizes.add(size)
    if len(sizes) != 1:
        raise RuntimeError(f"the libraries inflated to different sizes: {sorted(sizes)}")
    base = statistics.median(seconds["zlib"])
    for name in libraries:
        median = statistics.median(seconds[name])
        mib_s = len(raw) / median / (1 << 20)
        line = {
            "library": name,
            "seconds": round(median, 3),
            "over_zlib": round(median / base, 3),
            "compressed_mib_per_s": round(mib_s, 1),
            "bytes_out": max(sizes),
        }
        print(
            json.dumps(line)
            if args.json
            else f"{name:8s} {median:6.3f} s  {median / base:5.2f} x zlib  {mib_s:6.1f} MiB/s in"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
