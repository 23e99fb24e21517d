"""Run the vendor sandbox from a shell: ``python -m airflow_provider_exports.sandbox``.

Starts every vendor server, prints their URLs and the ``AIRFLOW_CONN_*`` exports that point
Airflow at them, and serves until Ctrl-C. ``--seed-demo`` adds a small set of exports, jobs and
audiences so a DAG has something to read right away.
"""

from __future__ import annotations

import argparse
import shlex
import signal
import sys
import threading
from pathlib import Path

from airflow_provider_exports.sandbox import Sandbox
from airflow_provider_exports.sandbox.demo import seed_demo


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m airflow_provider_exports.sandbox", description=__doc__)
    parser.add_argument(
        "--port-base", type=int, default=None, help="listen on N, N+1, N+2 (default: free ports)"
    )
    parser.add_argument("--cache-dir", type=Path, default=None, help="where synthetic files are cached")
    parser.add_argument(
        "--print-env", action="store_true", help="print only the `export AIRFLOW_CONN_...` lines on stdout"
    )
    parser.add_argument("--seed-demo", action="store_true", help="seed demo exports, jobs and audiences")
    args = parser.parse_args(argv)

    sb = Sandbox(cache_dir=args.cache_dir)
    sb.start(port_base=args.port_base)
    if args.seed_demo:
        seed_demo(sb)
    info = sys.stderr if args.print_env else sys.stdout
    for name, server in sb.servers.items():
        print(f"{server.vendor:<28} {server.url}   (sb.{name})", file=info)
    for key, value in sb.airflow_env().items():
        print(f"export {key}={shlex.quote(value)}", flush=True)
    print("Sandbox running; Ctrl-C to stop.", file=info, flush=True)

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        sb.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
