"""Where a Cordial export was delivered when it is not S3: a folder on an SFTP or FTP server, in a
GCS bucket or in an Azure Blob container, read through Airflow's object storage (fsspec).

The job record's destination (the create operator's reference) says where the file went; the
transfer's ``delivery_conn_id`` says how to read it there (for SFTP and FTP it defaults to the
connection Cordial was given). S3 deliveries keep their own, faster, path (``_cordial.py``).

=========  ===================================  ======================================
type       read through                         Airflow connection (``delivery_conn_id``)
=========  ===================================  ======================================
SFTP       ``ObjectStoragePath("sftp://...")``  ``sftp`` (the SFTP provider, sshfs)
FTP        fsspec's ``FTPFileSystem``           ``ftp`` (host, port, login, password)
GCS        ``ObjectStoragePath("gs://...")``    ``google_cloud_platform`` (Google provider)
AZUREBLOB  ``ObjectStoragePath("abfs://...")``  ``wasb`` / ``adls`` (Azure provider)
=========  ===================================  ======================================
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_provider_exports.exceptions import ExportConfigError, TransferError
from airflow_provider_exports.transfers.engine.object_store_source import ObjectStoreSourceFile

if TYPE_CHECKING:
    from fsspec import AbstractFileSystem

#: the fields of the create operator's ``destination`` reference each delivery needs
DELIVERY_FIELDS: Mapping[str, tuple[str, ...]] = {
    "S3": ("bucket", "path"),
    "SFTP": ("path",),
    "FTP": ("path",),
    "GCS": ("bucket", "path"),
    "AZUREBLOB": ("account", "container", "path"),
}
#: the reference's field naming the connection Cordial was given: the default way to read
#: the file back
DESTINATION_CONN_FIELD: Mapping[str, str] = {"SFTP": "sftp_conn_id", "FTP": "ftp_conn_id"}


#: the provider whose object storage reads each delivery (``pip install`` name)
PROVIDERS: Mapping[str, str] = {
    "SFTP": "apache-airflow-providers-sftp[sshfs]>=6.0.0 (this provider's cordial-deliveries extra)",
    "GCS": "apache-airflow-providers-google",
    "AZUREBLOB": "apache-airflow-providers-microsoft-azure (this provider's cordial-azure extra)",
}


def check_delivery_conn_id(value: Any) -> None:
    """``delivery_conn_id``: ``None`` or a connection id."""
    if value is not None and (not isinstance(value, str) or not value.strip()):
        raise ExportConfigError(
            "delivery_conn_id",
            f"{value!r}: give the id of the Airflow connection that reads the delivered file",
        )


def delivery_conn(destination: Mapping[str, Any], delivery_conn_id: str | None) -> str:
    """The connection that reads a non-S3 delivery: ``delivery_conn_id``, else the one Cordial was
    given (SFTP, FTP)."""
    kind = str(destination["type"]).upper()
    conn_id = delivery_conn_id or destination.get(DESTINATION_CONN_FIELD.get(kind, ""))
    if not conn_id:
        raise ExportConfigError(
            "delivery_conn_id",
            f"the job delivered to {kind}: give the Airflow connection that reads it there "
            "(google_cloud_platform for GCS, wasb for Azure Blob Storage)",
        )
    return str(conn_id)


def _join(*parts: str) -> str:
    """Path parts joined by single slashes; a leading slash (an absolute server path) stays."""
    inner = [p.strip("/") for p in parts if p.strip("/")]
    return ("/" if parts and parts[0].startswith("/") else "") + "/".join(inner)


@dataclass
class Delivery:
    """The folder a Cordial job delivered into, on a store other than S3.

    :param kind: Cordial's destination type (``SFTP``, ``FTP``, ``GCS``, ``AZUREBLOB``).
    :param conn_id: the Airflow connection that reads the store.
    :param folder: the folder as the store's filesystem names it (``bucket/path``; on a server,
        the path Cordial was given: absolute, or relative to the login's home folder).
    :param url: the store's root for ``ObjectStoragePath`` and for logs and lineage, without
        credentials (``sftp://host``, ``gs://``, ``abfs://``); a bucket's or container's name is the
        first part of ``folder``.
    """

    kind: str
    conn_id: str
    folder: str
    url: str

    def connect(self) -> AbstractFileSystem:
        """The store's filesystem, made from the connection as it is now: what ``ObjectStoragePath``
        uses (the provider's filesystem for the scheme), without its cache of one store per
        connection id, which would keep a connection's old host or port for the process's life."""
        from airflow.providers.common.compat.sdk import BaseHook, mask_secret

        if self.kind == "FTP":
            # Airflow registers no object storage for ftp://: fsspec's own filesystem, from the connection
            from fsspec.implementations.ftp import FTPFileSystem

            conn = BaseHook.get_connection(self.conn_id)
            if conn.password:
                mask_secret(conn.password)
            return FTPFileSystem(
                host=conn.host, port=int(conn.port or 21), username=conn.login, password=conn.password
            )
        from airflow.sdk.io.fs import get_fs, has_fs

        scheme = self.url.partition(":")[0]
        if not has_fs(scheme):
            raise TransferError(
                f"the job delivered to {self.kind}, and Airflow can read {scheme}:// only with "
                f"{PROVIDERS[self.kind]} installed (its object storage for {scheme}://)"
            )
        return get_fs(scheme, self.conn_id)

    def path(self, name: str) -> str:
        return _join(self.folder, name)

    def location(self, path: str) -> str:
        """``path``'s address: ``gs://bucket/key``, ``sftp://host/path``."""
        return self.url + ("" if self.url.endswith("//") else "/") + path.lstrip("/")

    def inside(self, path: object) -> bool:
        """Whether ``path`` names a file in the delivery folder (or below it)."""
        prefix = (
            self.path("") + "/" if self.folder.strip("/") else ("/" if self.folder.startswith("/") else "")
        )
        return (
            isinstance(path, str)
            and path.startswith(prefix)
            and not any(p in ("", ".", "..") for p in path[len(prefix) :].split("/"))
        )

    def file(self, path: str, name: str, size: int | None) -> ObjectStoreSourceFile:
        return ObjectStoreSourceFile(self.connect, path, location=self.location(path), name=name, size=size)

    def find(self, name: str, job_id: str) -> ObjectStoreSourceFile:
        """The delivered file, with its size; :class:`TransferError` naming what the folder holds
        when it is not there."""
        fs = self.connect()
        fs.invalidate_cache()  # the filesystem object is shared in the process: no stale listing
        path = self.path(name)
        try:
            info = fs.info(path)
        except FileNotFoundError:
            try:
                near = sorted(str(p).rsplit("/", 1)[-1] for p in fs.ls(self.path(""), detail=False))[:10]
            except (FileNotFoundError, OSError):
                near = []
            raise TransferError(
                f"Cordial job {job_id} is Done but {self.location(path)} is not there; in "
                f"{self.location(self.path(''))} there are: {near or 'no files'}"
            ) from None
        size = info.get("size")
        return self.file(path, name, int(size) if size is not None else None)


def delivery(destination: Mapping[str, Any], delivery_conn_id: str | None) -> Delivery:
    """The :class:`Delivery` a (checked) non-S3 destination reference names."""
    from airflow.providers.common.compat.sdk import BaseHook

    kind = str(destination["type"]).upper()
    conn_id = delivery_conn(destination, delivery_conn_id)
    path = str(destination["path"])
    if kind in ("SFTP", "FTP"):
        # Vendor is silent on whether a server path is absolute (vendor-apis README §2.3): chosen:
        # the path as Cordial was given it, so a relative one is the login's home folder's, as on
        # the server Cordial logs into.
        host = BaseHook.get_connection(conn_id).host
        if not host:
            raise ExportConfigError("delivery_conn_id", f"connection {conn_id!r} has no host")
        return Delivery(kind, conn_id, path.rstrip("/") or "/", f"{kind.lower()}://{host}")
    if kind == "GCS":
        return Delivery(kind, conn_id, _join(str(destination["bucket"]), path), "gs://")
    # AZUREBLOB: adlfs names a blob ``container/path``; the account comes from the connection
    return Delivery(kind, conn_id, _join(str(destination["container"]), path), "abfs://")
