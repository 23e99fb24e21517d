"""Where Cordial delivers an export, with its credentials taken from Airflow connections.

A destination object holds references only (bucket, path, connection ids), so what Airflow renders,
serializes, logs or shows is free of secrets. The request's ``destination`` object is built at run
time by :meth:`CordialDestination.request`: keys and passwords are read from the connections there,
handed to ``mask_secret`` at once, and go into the request body only. A DAG literal never carries a
secret: there is no argument to put one in.

Types and fields: C-V2 ``DestinationObject`` (vendor-apis README §2.3). ``AWS`` is Cordial's name for
"keep the file for download in the Cordial UI"; no API can fetch such a file (README §2.5).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import MISSING, dataclass
from dataclasses import fields as dataclass_fields
from typing import Any, ClassVar

from airflow_provider_exports.exceptions import ExportConfigError
from airflow_provider_exports.hooks.cordial import check_destination
from airflow_provider_exports.utils.templating import is_template

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

    def request(self) -> dict[str, Any]:
        """The request's ``destination`` object, secrets included (masked): for the request body only."""
        self.check()
        return dict(check_destination({"type": self.type, **self._fields()}))

    def _fields(self) -> dict[str, Any]:
        return {key: getattr(self, name) for name, key in self.request_keys.items()}

    def reference(self) -> dict[str, Any]:
        """Where the file goes, JSON-able and without a secret (for XCom and the transfer)."""
        return {"type": self.type, **{name: getattr(self, name) for name in self.template_fields}}


@dataclass(kw_only=True, eq=False)
class CordialS3Destination(CordialDestination):
    """Cordial writes the file to ``s3://<bucket>/<path>/``.

    :param bucket: the bucket. (templated)
    :param path: the folder in the bucket (Cordial requires one). (templated)
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
        return {"type": self.type, "bucket": self.bucket, "path": self.path, "region": self.region}


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
        if conn.port:
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

    :param sftp_conn_id: the SFTP connection: host, port, login and password. (templated)
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

    :param ftp_conn_id: the FTP connection: host, port, login and password. (templated)
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
