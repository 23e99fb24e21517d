"""What every job sensor shares, in a real ``dag.test()`` against the sandbox: a wait in poke mode
stops at once on SIGTERM (Airflow 3 calls ``on_kill`` and lets the task go on, so a poke sensor
would sleep out its interval and be SIGKILLed), and its retry waits again."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

from airflow.sdk import DAG

from airflow_provider_exports.sensors.sitecore_cdp import SitecoreCDPExportSensor
from airflow_provider_exports_sandbox.testing import failed_tries

EXPORT = "daily_loyalty_members"
REPORTS = f"/v2/audienceExports/definitions/{EXPORT}/reports"
T0 = datetime(2026, 11, 1, tzinfo=timezone.utc)
#: what Airflow's supervisor waits after SIGTERM before it sends SIGKILL
GRACE_SECONDS = 5.0


def test_sigterm_stops_a_poke_wait_at_once_and_its_retry_waits_again(sandbox, run_dag, sigterm_when):
    sandbox.sitecore.add_export(EXPORT)  # no job yet: the sensor waits
    ended_at: list[float] = []
    with DAG("stop_a_poke_wait", schedule=None, start_date=T0) as dag:
        SitecoreCDPExportSensor(
            task_id="wait_for_export",
            audience_export_ref=EXPORT,
            finished_after=T0,
            mode="poke",
            poke_interval=60,
            timeout=90,
            retries=1,
            retry_delay=timedelta(0),
            on_retry_callback=lambda context: ended_at.append(time.monotonic()),
        )
    # The job appears once the first try is told to stop; the retry finds it at its first poke.
    sent_at = sigterm_when(
        lambda: sandbox.sitecore.requests_to(REPORTS, "GET"),
        then=lambda: sandbox.sitecore.add_job(EXPORT, rows=10, end_time=T0 + timedelta(hours=1)),
    )

    run = run_dag(dag, logical_date=T0)

    assert sent_at and ended_at and ended_at[0] - sent_at[0] < GRACE_SECONDS
    (stopped,) = failed_tries(run)
    assert (stopped.task_id, stopped.try_number) == ("wait_for_export", 1)
    assert "stopped on SIGTERM" in stopped.error
    assert run.state == "success"
    assert len(sandbox.sitecore.requests_to(REPORTS, "GET")) == 2
