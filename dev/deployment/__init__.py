"""A real Airflow deployment on this machine, the example DAGs run through it, and faults under it.

``python -m dev.deployment`` (what ``bash .ci/deployment`` runs, from the repository root) starts,
all on loopback: two private PostgreSQL clusters (Airflow's metadata database; the ``warehouse``
the DAGs load into), Redis (the Celery broker), moto (S3), the vendor sandbox (in this process, so the
checks can read what the vendors saw), and Airflow's api-server, scheduler, DAG processor,
triggerer and two Celery workers as separate processes. It unpauses the example DAGs so the
scheduler runs them, prints each run's task states, what landed and where the logs are, then
injects faults, each in runs of its own, and checks that nothing was lost or doubled
(``--executor local``: LocalExecutor, no Redis and no workers, every fault but ``worker-kill``):

- ``worker-kill``: the Celery worker running a Sitecore transfer is killed (``SIGKILL``, its whole
  process tree) while the files stream in (the sandbox throttles the downloads);
- ``triggerer-restart``: the triggerer is killed and started again while the Cordial and AEP export
  waits are deferred;
- ``scheduler-restart``: the scheduler is killed and started again while a run is in flight (under
  LocalExecutor its running tasks die with it and are retried);
- ``clear-aep``: the AEP export task is cleared while its job runs at Adobe.

It prints a results table and exits non-zero when a check fails. Everything it started is stopped
on the way out (also on Ctrl-C or SIGTERM); logs stay under ``--work-dir``.

The example DAGs are not changed for this: a cluster policy (``airflow_local_settings.py``, the
way a platform team tunes DAGs it does not own) shortens their retry delays and poll intervals,
as the demo does, because the sandbox's jobs take seconds rather than minutes.
"""
