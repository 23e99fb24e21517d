"""The time window a DAG run covers, with or without a data interval.

Airflow 3 triggers manual runs (``airflow dags trigger``, the UI, the REST API) with no logical date
by default: such a run has no ``data_interval_start``, ``ds`` or ``logical_date`` in its context,
and templates that use them fail. :func:`run_window` gives every run a window: a run with a data
interval keeps it unchanged (scheduled runs); a run without one covers from the end of the last
successful run that had a data interval (``None`` when there is none) to its ``run_after``.

Templates reach it through the macro ``run_window()`` (add :data:`MACROS` to the DAG's
``user_defined_macros``): ``{{ run_window().start }}``, ``{{ run_window().end }}`` and
``{{ run_window().ds }}`` (the logical date's day, else ``run_after``'s).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from jinja2 import pass_context

if TYPE_CHECKING:
    from collections.abc import Mapping

    from jinja2.runtime import Context as JinjaContext

__all__ = ["MACROS", "RunWindow", "run_window"]


@dataclass(frozen=True)
class RunWindow:
    """``start`` (``None``: since ever) to ``end``; ``ds`` is the run's day, ``YYYY-MM-DD``."""

    start: datetime | None
    end: datetime | None
    ds: str


def _utc(value: datetime | None) -> datetime | None:
    return None if value is None else value.astimezone(timezone.utc)


def _last_successful_run_end(dag_id: str, before: datetime) -> datetime | None:
    """The data interval end of the DAG's last successful run with a logical date before ``before``.

    Asked through the task's channel to Airflow (the Task SDK's ``ti.get_previous_dagrun`` asks the
    same, but only for a run that has a logical date itself). Runs without one are not found: the
    execution API orders runs by logical date.
    """
    from airflow.sdk.execution_time import task_runner
    from airflow.sdk.execution_time.comms import GetPreviousDagRun

    response = task_runner.SUPERVISOR_COMMS.send(
        msg=GetPreviousDagRun(dag_id=dag_id, logical_date=before, state="success")
    )
    previous = getattr(response, "dag_run", None)
    if previous is None:
        return None
    return _utc(previous.data_interval_end or previous.logical_date)


def run_window(context: Mapping[str, Any] | JinjaContext) -> RunWindow:
    """The window of the running task's DAG run (see the module docstring)."""
    # Airflow puts the data interval (and ds) in the context exactly when the run has a logical date.
    if "data_interval_start" in context:
        return RunWindow(
            start=_utc(context["data_interval_start"]),
            end=_utc(context.get("data_interval_end")),
            ds=str(context.get("ds")),
        )
    dag_run = context["dag_run"]
    run_after = _utc(dag_run.run_after) or datetime.now(timezone.utc)
    return RunWindow(
        start=_last_successful_run_end(dag_run.dag_id, run_after),
        end=run_after,
        ds=f"{run_after:%Y-%m-%d}",
    )


@pass_context
def _run_window_macro(jinja_context: JinjaContext) -> RunWindow:
    return run_window(jinja_context)


#: ``user_defined_macros`` for a DAG whose templates use ``run_window()``.
MACROS: dict[str, Any] = {"run_window": _run_window_macro}
