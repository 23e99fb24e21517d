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

**Destinations carry no secret.** A destination object holds references only (bucket, path,
connection ids), so what Airflow renders, serializes, logs or shows is free of secrets. The
request's ``destination`` object is built at run time by :meth:`CordialDestination.request`: keys
and passwords are read from the connections there, handed to ``mask_secret`` at once, and go into
the request body only. A DAG literal never carries a secret: there is no argument to put one in.
Types and fields: C-V2 ``DestinationObject`` (vendor-apis README §2.3); ``AWS`` is Cordial's name
for "keep the file for download in the Cordial UI", which no API can fetch (README §2.5).
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import MISSING, dataclass
from dataclasses import fields as dataclass_fields
from datetime import datetime, timedelta, timezone
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar

from airflow_provider_exports.exceptions import ExportConfigError, ExportJobMayExist, ExportsError
from airflow_provider_exports.hooks.cordial import (
    PATHS,
    VENDOR,
    CordialHook,
    audience_trends_body,
    check_account_id,
    check_date,
    check_destination,
    check_export_name,
    check_export_type,
    check_flag,
    check_lists,
    check_names,
    check_timeframe,
    contact_export_body,
    destination_path,
    job_id_of,
)
from airflow_provider_exports.operators._base import ExportJobOperator
from airflow_provider_exports.triggers.cordial import CordialJobTrigger
from airflow_provider_exports.utils.templating import is_template

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

# Vendor is silent on how long an export name may be: names are cut to this many characters
# (with a digest of the whole name, so two long names stay apart).
MAX_NAME_LENGTH = 100
# Vendor is silent on whose clock stamps a job's start: a job of this run may show a start up to
# this long before the run's own start.
CLOCK_SKEW = timedelta(minutes=5)


# S3's bucket naming rules: 3-63 characters of lowercase letters, digits, dots and dashes.
_S3_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")


def _mask(*secrets: str | None) -> None:
    from airflow.providers.common.compat.sdk import mask_secret

    for secret in secrets:
        if secret:
            mask_secret(secret)


def _connection(conn_id: str) -> Any:
    from airflow.providers.common.compat.sdk import BaseHook

    return BaseHook.get_connection(conn_id)


@dataclass(kw_only=True, eq=False)
class CordialDestination:
    """Where Cordial writes an export's file (Cordial's ``destination`` object).

    Subclasses name their Cordial type and their fields: all references, never secrets, all
    templated; those without a default must not be empty, checked when literal at parse time and
    again once rendered. They build the request object at run time.
    """

    type: ClassVar[str]
    #: the request's key of each field that goes into the request as it is
    request_keys: ClassVar[Mapping[str, str]] = {}

    def __post_init__(self) -> None:
        self.check()

    @property
    def template_fields(self) -> tuple[str, ...]:
        return tuple(f.name for f in dataclass_fields(self))

    def check(self) -> None:
        """Refuse empty required fields that are not templates (rendered ones are checked too)."""
        for f in dataclass_fields(self):
            value = getattr(self, f.name)
            if f.default is not MISSING or is_template(value):
                continue
            if not isinstance(value, str) or not value.strip():
                raise ExportConfigError(
                    f"destination.{f.name}", f"is required for a {type(self).__name__}, got {value!r}"
                )
            if f.name == "path":
                destination_path(self.type, value)

    def request(self) -> dict[str, Any]:
        """The request's ``destination`` object, secrets included (masked): for the request body only."""
        self.check()
        return check_destination({"type": self.type, **self._fields()})

    def _fields(self) -> dict[str, Any]:
        return {key: getattr(self, name) for name, key in self.request_keys.items()}

    def reference(self) -> dict[str, Any]:
        """Where the file goes, JSON-able and without a secret (for XCom and the transfer); its
        ``path`` is the one sent, so Cordial writes to ``delivered_key(path, file name)``."""
        fields = {name: getattr(self, name) for name in self.template_fields}
        if "path" in fields:
            fields["path"] = destination_path(self.type, fields["path"])
        return {"type": self.type, **fields}


@dataclass(kw_only=True, eq=False)
class CordialS3Destination(CordialDestination):
    """Cordial writes the file to ``s3://<bucket>/<path>/``.

    :param bucket: the bucket. (templated)
    :param path: the folder in the bucket (Cordial requires one), sent without its leading and
        trailing slashes: Cordial writes ``<path>/<file name>``. (templated)
    :param region: the bucket's region; default: the AWS connection's ``region_name``. (templated)
    :param aws_conn_id: the AWS connection whose access key (login) and secret (password) Cordial
        writes with; ``None`` when the Cordial account has an IAM role for the bucket, and the
        request then carries no keys. Only the connection's own keys are sent, never credentials
        the worker would find elsewhere. (templated)
    """

    type = "S3"
    request_keys = {"bucket": "aws_bucket", "path": "path"}
    bucket: str
    path: str
    region: str | None = None
    aws_conn_id: str | None = None

    def check(self) -> None:
        super().check()
        if not is_template(self.bucket) and not _S3_BUCKET.fullmatch(self.bucket):
            raise ExportConfigError(
                "destination.bucket",
                f"{self.bucket!r} is not an S3 bucket name (3-63 lowercase letters, digits, dots, dashes)",
            )

    def _fields(self) -> dict[str, Any]:
        fields = super()._fields()
        region = self.region
        if self.aws_conn_id:
            from airflow.providers.amazon.aws.utils.connection_wrapper import AwsConnectionWrapper

            conn = AwsConnectionWrapper(_connection(self.aws_conn_id))
            key, secret = conn.aws_access_key_id, conn.aws_secret_access_key
            _mask(key, secret, conn.aws_session_token)
            if not key or not secret:
                raise ExportConfigError(
                    "destination.aws_conn_id",
                    f"connection {self.aws_conn_id!r} has no access key ID and secret for Cordial to "
                    "write with (login and password); set aws_conn_id=None if the Cordial account "
                    "has an IAM role for the bucket",
                )
            if conn.aws_session_token:
                raise ExportConfigError(
                    "destination.aws_conn_id",
                    f"connection {self.aws_conn_id!r} holds temporary credentials (a session token); "
                    "Cordial takes only an access key ID and secret",
                )
            fields.update(aws_access_key_id=key, aws_secret_access_key=secret)
            region = region or conn.region_name
        if not region:
            raise ExportConfigError(
                "destination.region", "is required: give region=, or region_name in the AWS connection"
            )
        fields["aws_region"] = region
        return fields

    def reference(self) -> dict[str, Any]:
        path = destination_path(self.type, self.path)
        return {"type": self.type, "bucket": self.bucket, "path": path, "region": self.region}


class _ServerDestination(CordialDestination):
    """FTP and SFTP: server, port, user name and password from one Airflow connection."""

    conn_attr: ClassVar[str]
    path: str

    def _server_fields(self, password_required: bool) -> dict[str, Any]:
        conn_id = getattr(self, self.conn_attr)
        conn = _connection(conn_id)
        _mask(conn.password)
        for field, value in (("host", conn.host), ("login", conn.login)):
            if not value:
                raise ExportConfigError(
                    f"destination.{self.conn_attr}", f"connection {conn_id!r} has no {field}"
                )
        fields: dict[str, Any] = {"server": conn.host, "username": conn.login, "path": self.path}
        if conn.port:  # else the protocol's default port (check_destination)
            fields["port"] = int(conn.port)
        if conn.password:
            fields["password"] = conn.password
        elif password_required:
            raise ExportConfigError(
                f"destination.{self.conn_attr}", f"connection {conn_id!r} has no password"
            )
        return fields


@dataclass(kw_only=True, eq=False)
class CordialSftpDestination(_ServerDestination):
    """Cordial uploads the file over SFTP.

    :param sftp_conn_id: the SFTP connection: host, port (default 22), login and password. (templated)
    :param path: the folder on the server. (templated)
    :param saved_key: the name of an SFTP key saved in Cordial, used instead of the connection's
        password. (templated)
    """

    type = "SFTP"
    conn_attr = "sftp_conn_id"
    sftp_conn_id: str
    path: str
    saved_key: str | None = None

    def _fields(self) -> dict[str, Any]:
        fields = self._server_fields(password_required=not self.saved_key)
        if self.saved_key:
            fields.pop("password", None)  # the saved key authenticates
            fields["savedKey"] = self.saved_key
        return fields


@dataclass(kw_only=True, eq=False)
class CordialFtpDestination(_ServerDestination):
    """Cordial uploads the file over FTP.

    :param ftp_conn_id: the FTP connection: host, port (default 21), login and password. (templated)
    :param path: the folder on the server. (templated)
    """

    type = "FTP"
    conn_attr = "ftp_conn_id"
    ftp_conn_id: str
    path: str

    def _fields(self) -> dict[str, Any]:
        return self._server_fields(password_required=True)


@dataclass(kw_only=True, eq=False)
class CordialGcsDestination(CordialDestination):
    """Cordial writes the file to ``gs://<bucket>/<path>/`` (with access granted in Cordial, no key).

    :param bucket: the bucket. (templated)
    :param path: the folder in the bucket. (templated)
    """

    type = "GCS"
    request_keys = {"bucket": "gcs_bucket", "path": "path"}
    bucket: str
    path: str


@dataclass(kw_only=True, eq=False)
class CordialAzureBlobDestination(CordialDestination):
    """Cordial writes the file to an Azure Blob Storage container (access granted in Cordial).

    :param account: the storage account. (templated)
    :param container: the container. (templated)
    :param path: the folder in the container. (templated)
    """

    type = "AZUREBLOB"
    request_keys = {"account": "account", "container": "container", "path": "path"}
    account: str
    container: str
    path: str


@dataclass(kw_only=True, eq=False)
class CordialUIDestination(CordialDestination):
    """Cordial keeps the file for download in its UI (30 days; Cordial's type ``AWS``).

    Cordial offers no API to download such a file: no transfer can load it.
    """

    type = "AWS"


DESTINATION_CLASSES: tuple[type[CordialDestination], ...] = (
    CordialS3Destination,
    CordialSftpDestination,
    CordialFtpDestination,
    CordialGcsDestination,
    CordialAzureBlobDestination,
    CordialUIDestination,
)


def check_destination_object(destination: Any) -> CordialDestination:
    """The ``destination`` argument: one of the destination classes (never a dict, which could
    carry a secret as a DAG literal)."""
    if not isinstance(destination, CordialDestination):
        allowed = ", ".join(f"{c.__name__} ({c.type})" for c in DESTINATION_CLASSES)
        raise ExportConfigError(
            "destination",
            f"{type(destination).__name__} is not allowed; use one of {allowed}. Keys and passwords "
            "come from Airflow connections, never from a literal",
        )
    destination.check()
    return destination


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
