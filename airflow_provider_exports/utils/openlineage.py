"""OpenLineage names of what the transfers read and write, and the ``OperatorLineage`` they report.

The OpenLineage provider (``apache-airflow-providers-openlineage``) is optional: this module imports
nothing of it at import time. An operator records plain references while it runs
(:class:`DatasetRef` for a vendor export or an object-store prefix, :class:`SqlTableRef` for a
table) and turns them into OpenLineage datasets only in ``get_openlineage_facets_on_complete``,
which Airflow calls only when the provider is installed. The names: docs/lineage.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from airflow.providers.openlineage.extractors import OperatorLineage

    from airflow_provider_exports.transfers.engine.sink import Sink


@dataclass(frozen=True)
class DatasetRef:
    """An OpenLineage dataset already named: ``namespace`` and ``name``."""

    namespace: str
    name: str


@dataclass(frozen=True)
class SqlTableRef:
    """A table behind an Airflow connection; named from the connection's hook when reported
    (that may ask the database for its default schema, so it is not done during the transfer)."""

    conn_id: str
    table: str


LineageRef = DatasetRef | SqlTableRef


def vendor_export(scheme: str, api_base_url: str, export: str, job: str) -> DatasetRef:
    """A vendor job in our own scheme: ``<scheme>://<api host>`` (a port kept) + ``<export>/<job>``."""
    return DatasetRef(f"{scheme}://{urlsplit(api_base_url).netloc or api_base_url}", f"{export}/{job}")


def s3_prefix(bucket: str, key: str) -> DatasetRef:
    """As the amazon provider names S3: ``s3://<bucket>`` + the key (no slashes around it)."""
    return DatasetRef(f"s3://{bucket}", key.strip("/") or "/")


def destination_ref(sink: Sink) -> LineageRef | None:
    """The dataset a sink writes, from its plain description (:meth:`~.Sink.describe`): its prefix
    (object stores) or its table (SQL); ``None`` for a destination of another kind."""
    where = sink.describe()
    kind = where.get("kind")
    if kind == "s3":
        return s3_prefix(str(where["bucket"]), str(where["prefix"]))
    if kind == "object_storage":  # ``<protocol>://<bucket>`` + the key; a local path: ``file`` + the path
        protocol, _, path = str(where["url"]).partition("://")
        bucket, _, key = path.partition("/")
        if protocol in ("file", "local") or not bucket:
            return DatasetRef("file", "/" + path.strip("/"))
        return DatasetRef(f"{protocol}://{bucket}", key.strip("/") or "/")
    if kind == "sql":
        conn_id = where.get("conn_id")
        return SqlTableRef(str(conn_id), str(where["table"])) if conn_id else None
    return None


def sql_table(ref: SqlTableRef) -> DatasetRef:
    """Name a table the way common-sql's OpenLineage support does for the connection's hook."""
    from airflow.providers.common.compat.sdk import BaseHook

    connection = BaseHook.get_connection(ref.conn_id)
    schema, _, table = ref.table.rpartition(".")
    if connection.conn_type == "sqlite":
        # common-sql gives SQLite no OpenLineage name: the database file is the namespace, and
        # SQLite calls its one schema "main".
        return DatasetRef(f"sqlite://{connection.host or ''}", f"{schema or 'main'}.{table}")
    hook: Any = connection.get_hook()
    database_info = getattr(hook, "get_openlineage_database_info", None)
    info = database_info(connection) if database_info is not None else None
    if info is None:  # a hook without OpenLineage support: its connection type and host:port
        from airflow.providers.common.sql.hooks.sql import DbApiHook

        authority = DbApiHook.get_openlineage_authority_part(connection)
        return DatasetRef(f"{connection.conn_type}://{authority}", ref.table)
    schema = schema or hook.get_openlineage_default_schema()
    parts = [p for p in (info.database, schema, table) if p]
    return DatasetRef(f"{info.scheme}://{info.authority}", ".".join(parts))


def operator_lineage(inputs: Sequence[LineageRef], outputs: Sequence[LineageRef]) -> OperatorLineage:
    """The ``OperatorLineage`` of a run (imports the OpenLineage provider: call it only from
    ``get_openlineage_facets_on_complete``)."""
    from airflow.providers.common.compat.openlineage.facet import Dataset
    from airflow.providers.openlineage.extractors import OperatorLineage

    def datasets(refs: Sequence[LineageRef]) -> list[Any]:
        named = (sql_table(r) if isinstance(r, SqlTableRef) else r for r in refs)
        return [Dataset(namespace=d.namespace, name=d.name) for d in named]

    return OperatorLineage(inputs=datasets(inputs), outputs=datasets(outputs))
