"""Create a Cordial export job (audience trends, or an audience's contacts), never twice, and wait for it.

Cordial *pushes* an export's file to the destination the request names (S3, SFTP, FTP, GCS, Azure
Blob, or ``AWS``: kept for download in Cordial's UI); there is no download API. The operators
create the job, push its ``jobId`` to XCom (key ``job_id``) before waiting, and return a small
reference for the transfer that loads the delivered file (``CordialS3ToSqlOperator``): the job id,
its name, what it exports and where it was delivered, never a secret.

**No job is created twice.** A job's name defaults to one unique per run (the DAG id, task id and
logical date, reduced to letters, digits and dashes). Before creating, the operator looks for a job
of that name started in this DAG run, or not started yet, and reattaches to it: a try that follows
a worker that died after its request reached Cordial finds the job instead of creating another.
When a create request ran but its answer does not name the job (an empty 200, a 5xx, a connection
lost before the answer), the job is looked up by name; if it is not found the task fails with
:class:`ExportJobMayExist`, which is never retried.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta, timezone
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar

from airflow_provider_exports.exceptions import ExportJobMayExist, ExportsError
from airflow_provider_exports.hooks.cordial import (
    PATHS,
    VENDOR,
    CordialHook,
    audience_trends_body,
    check_account_id,
    check_date,
    check_export_name,
    check_export_type,
    check_flag,
    check_lists,
    check_names,
    check_timeframe,
    contact_export_body,
    job_id_of,
)
from airflow_provider_exports.operators._base import ExportJobOperator
from airflow_provider_exports.operators._cordial_destinations import (
    CordialAzureBlobDestination,
    CordialDestination,
    CordialFtpDestination,
    CordialGcsDestination,
    CordialS3Destination,
    CordialSftpDestination,
    CordialUIDestination,
    check_destination_object,
)
from airflow_provider_exports.triggers.cordial import CordialJobTrigger
from airflow_provider_exports.utils.templating import is_template

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

__all__ = [
    "CordialAzureBlobDestination",
    "CordialCreateAudienceTrendsExportOperator",
    "CordialCreateContactExportOperator",
    "CordialDestination",
    "CordialFtpDestination",
    "CordialGcsDestination",
    "CordialS3Destination",
    "CordialSftpDestination",
    "CordialUIDestination",
]

# Vendor is silent on how long an export name may be: names are cut to this many characters
# (with a digest of the whole name, so two long names stay apart).
MAX_NAME_LENGTH = 100
# Vendor is silent on whose clock stamps a job's start: a job of this run may show a start up to
# this long before the run's own start.
CLOCK_SKEW = timedelta(minutes=5)


def default_job_name(context: Context) -> str:
    """``<dag id>-<task id>-<logical date>`` (the run id when there is no logical date), with a map
    index when mapped, reduced to letters, digits and dashes: the same in every try of the run."""
    ti = context["ti"]
    dag_run = context["dag_run"]
    when = dag_run.logical_date
    run = when.astimezone(timezone.utc).strftime("%Y%m%dT%H%M%SZ") if when else dag_run.run_id
    map_index = getattr(ti, "map_index", -1)
    raw = f"{ti.dag_id}-{ti.task_id}-{run}" + (
        f"-{map_index}" if map_index is not None and map_index >= 0 else ""
    )
    name = re.sub(r"[^A-Za-z0-9]+", "-", raw).strip("-")
    if len(name) > MAX_NAME_LENGTH:
        digest = hashlib.sha256(raw.encode()).hexdigest()[:8]
        name = f"{name[: MAX_NAME_LENGTH - 9].rstrip('-')}-{digest}"
    return name


def run_started(context: Context) -> datetime:
    """When this DAG run started (Airflow sets it again when a finished run is cleared), less
    :data:`CLOCK_SKEW`: the jobs of this run started after it."""
    started = getattr(context["dag_run"], "start_date", None) or getattr(context["ti"], "start_date", None)
    return (started or datetime.now(timezone.utc) - timedelta(days=1)) - CLOCK_SKEW


class _CordialCreateExportOperator(ExportJobOperator):
    """Create one Cordial export job, or reattach to this run's, wait for it, and hand on where it
    delivers (see the module docstring).

    :param destination: where Cordial delivers the file: a :class:`CordialS3Destination`,
        :class:`CordialSftpDestination`, :class:`CordialFtpDestination`,
        :class:`CordialGcsDestination`, :class:`CordialAzureBlobDestination` or
        :class:`CordialUIDestination`; keys and passwords come from Airflow connections. (templated)
    :param name: the job's name (letters, digits and dashes), also the delivered file's name;
        default: one unique per run (see the module docstring). (templated)
    :param cordial_conn_id: the Cordial connection. (templated)
    :param wait_for_completion: wait until the job is ``Done`` (default) or ``Failed`` (the task
        then fails with the job's result, never retried).
    :param deferrable: wait in the triggerer instead of holding a worker slot (default:
        ``[operators] default_deferrable``).
    :param poll_interval: seconds between two pokes at the job (default 60).
    :param timeout: seconds the wait may last (default 7 days); it ends there even while a call is
        being retried. Cordial cannot stop a job, so the job runs on; a retry reattaches to it.
    """

    vendor = VENDOR
    #: what it exports: the key of its create call's path in the hook's ``PATHS``
    kind: ClassVar[str]
    #: the hook module's function that builds and checks the create call's body
    build_body: ClassVar[Callable[..., dict[str, Any]]]
    #: the body's arguments but ``name`` and ``destination``: the operator's attributes of these names
    body_fields: ClassVar[tuple[str, ...]]
    #: what the delivered file is, for the transfer
    export_type: str
    compress: bool
    show_header: bool
    template_fields: Sequence[str] = ("name", "destination", "cordial_conn_id")
    # the live client is shared, not copied, when Airflow copies the task
    shallow_copy_attrs: Sequence[str] = ("hook",)
    #: pauses before each look-up by name after a create answer that does not name the job
    uncertain_lookup_delays: Sequence[float] = (0.0, 5.0, 15.0)

    def __init__(
        self,
        *,
        destination: CordialDestination,
        name: str | None = None,
        cordial_conn_id: str = CordialHook.default_conn_name,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.destination = destination
        self.name = name
        self.cordial_conn_id = cordial_conn_id
        check_destination_object(destination)
        if name is not None and not is_template(name):
            check_export_name(name)

    @cached_property
    def hook(self) -> CordialHook:
        return CordialHook(self.cordial_conn_id)

    def request_body(self, name: str, destination: dict[str, Any]) -> dict[str, Any]:
        """The create call's body from the rendered fields, checked as the hook checks it."""
        arguments = {field: getattr(self, field) for field in self.body_fields}
        return self.build_body(name=name, destination=destination, **arguments)

    # -- creating or reattaching

    def job_name(self, context: Context) -> str:
        return check_export_name(self.name) if self.name else default_job_name(context)

    def _find(self, name: str, started_since: datetime) -> str | None:
        """The id of this run's job called ``name``, if Cordial has one."""
        jobs = self.hook.find_jobs_by_name(name, started_since=started_since)
        if not jobs:
            return None
        job_id = job_id_of(jobs[0])
        if job_id is None:
            raise ExportsError(
                f"Cordial lists a job named {name!r} but gives no id to follow it by: {jobs[0]!r}"
            )
        if len(jobs) > 1:
            self.log.warning("%d Cordial jobs are named %s; following %s", len(jobs), name, job_id)
        return job_id

    def find_job(self, context: Context) -> str | None:
        # Every rendered value is checked before the first request.
        name = self.job_name(context)
        check_destination_object(self.destination)
        self.request_body(name, {"type": "AWS"})
        return self._find(name, run_started(context))

    def create_job(self, context: Context) -> str:
        name = self.job_name(context)
        try:
            return self.hook.create_job(PATHS[self.kind], self.request_body(name, self.destination.request()))
        except ExportJobMayExist as exc:
            self.log.warning(
                "The create call's answer does not name the job (%s); looking %s up by name", exc.answer, name
            )
            since = run_started(context)
            for delay in self.uncertain_lookup_delays:
                time.sleep(delay)
                found = self._find(name, since)
                if found is not None:
                    self.log.info("Cordial job %s is the one this call created: following it", found)
                    return found
            raise ExportJobMayExist(VENDOR, name, exc.answer, looked_up=True) from exc

    def make_trigger(self, job_id: str, deadline: float) -> CordialJobTrigger:
        return CordialJobTrigger(
            job_id=job_id,
            cordial_conn_id=self.cordial_conn_id,
            poll_interval=self.poll_interval,
            deadline=deadline,
        )

    def task_result(self, context: Context, job_id: str | None, summary: Any) -> dict[str, Any]:
        """The job, what it exports and where it delivers (no secret), and the file once ``Done``."""
        return {
            "vendor": VENDOR,
            "job_id": str(summary["job_id"]) if summary else job_id,
            "name": self.job_name(context),
            "export": self.kind,
            "destination": self.destination.reference(),
            "export_type": check_export_type(self.export_type),
            "compress": self.compress,
            "show_header": self.show_header,
            "file_name": (summary or {}).get("file_name"),
        }


class CordialCreateAudienceTrendsExportOperator(_CordialCreateExportOperator):
    """Create an audience-trends export: daily population counts of saved audiences, as a CSV with
    a row per audience and a column per day, delivered to ``destination``.

    Every audience needs trend analytics enabled in Cordial.

    :param audiences: the saved audiences' names. (templated)
    :param selected_timeframe_start: the first day, ISO-8601 (e.g. ``{{ data_interval_start | ds }}``).
        (templated)
    :param selected_timeframe_end: the last day, not before the first. (templated)

    See :class:`_CordialCreateExportOperator` for ``destination``, ``name``, ``cordial_conn_id``,
    ``wait_for_completion``, ``deferrable``, ``poll_interval`` and ``timeout``.
    """

    kind = "audience_trends"
    build_body = staticmethod(audience_trends_body)
    body_fields = ("audiences", "selected_timeframe_start", "selected_timeframe_end")
    template_fields: Sequence[str] = ("name", *body_fields, "destination", "cordial_conn_id")
    # Cordial's only trends file: a CSV with a header row, not compressed
    export_type = "csv"
    compress = False
    show_header = True

    def __init__(
        self,
        *,
        audiences: Sequence[str] | str,
        selected_timeframe_start: str,
        selected_timeframe_end: str,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.audiences = audiences
        self.selected_timeframe_start = selected_timeframe_start
        self.selected_timeframe_end = selected_timeframe_end
        if not is_template(audiences):
            check_names(audiences, "audiences", "audience name")
        start, end = selected_timeframe_start, selected_timeframe_end
        if not is_template(start):
            check_date(start, "selected_timeframe_start")
        if not is_template(end):
            check_date(end, "selected_timeframe_end")
        if not is_template(start) and not is_template(end):
            check_timeframe(start, end)



class CordialCreateContactExportOperator(_CordialCreateExportOperator):
    """Create a contact export: the members of an audience (or of the account, or of lists), as
    CSV or JSON, delivered to ``destination``.

    :param fields: the contact fields (attribute keys) to export, e.g. ``["email", "first_name"]``.
        (templated)
    :param account_id: the Cordial account ID (Cordial's spec requires it). (templated)
    :param audience_key: a saved audience's name; only its members are exported. (templated)
    :param lists: list IDs (integers); each becomes a column, 1 for a member of the list, else 0.
        (templated)
    :param export_type: ``csv`` (default) or ``json``.
    :param compress: gzip the file (Cordial adds ``.gz`` to its name).
    :param show_header: a header row of column names in a CSV (Cordial's own default is off;
        here it is on, so the file can be loaded by name).

    See :class:`_CordialCreateExportOperator` for ``destination``, ``name``, ``cordial_conn_id``,
    ``wait_for_completion``, ``deferrable``, ``poll_interval`` and ``timeout``.
    """

    kind = "contacts"
    build_body = staticmethod(contact_export_body)
    body_fields = ("fields", "account_id", "audience_key", "lists", "export_type", "compress", "show_header")
    template_fields: Sequence[str] = (
        "name",
        "fields",
        "account_id",
        "audience_key",
        "lists",
        "destination",
        "cordial_conn_id",
    )

    def __init__(
        self,
        *,
        fields: Sequence[str] | str,
        account_id: int | str,
        audience_key: str | None = None,
        lists: Sequence[int] | str | None = None,
        export_type: str = "csv",
        compress: bool = False,
        show_header: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.fields = fields
        self.account_id = account_id
        self.audience_key = audience_key
        self.lists = lists
        self.export_type = export_type
        self.compress = compress
        self.show_header = show_header
        if not is_template(fields):
            check_names(fields, "fields", "contact field")
        if not is_template(account_id):
            check_account_id(account_id)
        if not is_template(lists):
            check_lists(lists)
        check_export_type(export_type)
        check_flag(compress, "compress")
        check_flag(show_header, "show_header")
