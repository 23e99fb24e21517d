"""Run the vendor sandbox from a shell: ``python -m airflow_provider_exports_sandbox``.

Starts every vendor server, prints their URLs and the ``AIRFLOW_CONN_*`` exports that point
Airflow at them, and serves until Ctrl-C or SIGTERM. ``--seed-demo`` adds a small set of exports,
jobs and audiences so a DAG has something to read right away. ``--services`` also starts a local S3
(moto, with the bucket ``lake``) and an SQLite warehouse and prints their connections too
(``aws_default``, ``cordial_delivery``, ``warehouse``), so the example DAGs (whose bucket is
``lake`` unless the ``exports_bucket`` variable says otherwise) run against this process alone.
"""

from __future__ import annotations

import argparse
import shlex
import signal
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

from airflow_provider_exports_sandbox import Sandbox
from airflow_provider_exports_sandbox.demo import BUCKET, seed_demo, services_env


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m airflow_provider_exports_sandbox", description=__doc__)
    parser.add_argument(
        "--port-base", type=int, default=None, help="listen on N, N+1, N+2 (default: free ports)"
    )
    parser.add_argument("--cache-dir", type=Path, default=None, help="where synthetic files are cached")
    parser.add_argument(
        "--print-env", action="store_true", help="print only the `export AIRFLOW_CONN_...` lines on stdout"
    )
    parser.add_argument("--seed-demo", action="store_true", help="seed demo exports, jobs and audiences")
    parser.add_argument(
        "--services", action="store_true", help="also start a local S3 (moto) and an SQLite warehouse"
    )
    parser.add_argument(
        "--warehouse", type=Path, default=None, help="the SQLite warehouse file (default: in a temp dir)"
    )
    args = parser.parse_args(argv)

    sb = Sandbox(cache_dir=args.cache_dir)
    moto: Any = None
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        sb.start(port_base=args.port_base)
        if args.seed_demo:
            seed_demo(sb)
        env = sb.airflow_env()
        info = sys.stderr if args.print_env else sys.stdout
        for name, server in sb.servers.items():
            print(f"{server.vendor:<28} {server.url}   (sb.{name})", file=info)
        if args.services:
            from airflow_provider_exports_sandbox.local_services import MotoServer

            moto = MotoServer().start()
            moto.client().create_bucket(Bucket=BUCKET)
            warehouse = args.warehouse or Path(tempfile.mkdtemp(prefix="exports-sandbox-")) / "warehouse.db"
            env.update(services_env(sb, moto, warehouse.resolve()))
            print(f"{'local S3 (moto)':<28} {moto.endpoint_url}   (bucket {BUCKET})", file=info)
            print(f"{'warehouse (SQLite)':<28} {warehouse.resolve()}", file=info)
        for key, value in env.items():
            print(f"export {key}={shlex.quote(value)}", flush=True)
        print("Sandbox running; Ctrl-C to stop.", file=info, flush=True)
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        if moto is not None:
            moto.stop()
        sb.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
