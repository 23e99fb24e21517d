"""Where a transfer lands: S3, a SQL table, any object store; one dataclass of operator arguments
each, the same for every vendor, that makes the engine's sink (staged, for a fan-out group, into
S3 and SQL).

The sinks are imported when a task runs, never when its DAG is parsed.
"""

from __future__ import annotations

import re
import sys
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, cast

from airflow_provider_exports.exceptions import ExportConfigError
from airflow_provider_exports.transfers._parts import Destination, given
from airflow_provider_exports.transfers.engine.object_store_sink import (
    DEFAULT_BLOCK_SIZE,
    ObjectStoreSink,
    check_destination,
)
from airflow_provider_exports.transfers.engine.sql.modes import check_load_mode, check_on_schema_change

if TYPE_CHECKING:
    from types import FrameType

    from airflow_provider_exports.transfers.engine import S3Sink, SqlSink


@dataclass(kw_only=True)
class S3Destination(Destination):
    """S3 through the amazon provider's S3Hook (:class:`~.engine.s3_sink.S3Sink`): the files land in
    the run's directory under the prefix through multipart uploads that complete only when every
    file is whole; ``_manifest.json`` (the job and every file with its SHA-256) is written last, and
    a rerun for the same job skips. The task returns a summary: keys, bytes, manifest key.

    :param s3_bucket: destination bucket. (templated)
    :param s3_key_prefix: destination key prefix, e.g. ``raw/sitecore/{{ ds }}/``. (templated)
    :param aws_conn_id: the AWS connection. (templated)
    :param part_size: multipart part size in bytes (at least 5 MiB).
    :param max_part_concurrency: parts uploaded at once.
    :param s3_extra_args: extra upload arguments (``ServerSideEncryption``, ``SSEKMSKeyId``...).
    """

    kind: ClassVar[str] = "s3"
    template_fields: ClassVar[tuple[str, ...]] = ("s3_bucket", "s3_key_prefix", "aws_conn_id")

    s3_bucket: str
    s3_key_prefix: str = ""
    aws_conn_id: str | None = "aws_default"
    part_size: int = 8 * 1024 * 1024
    max_part_concurrency: int = 4
    s3_extra_args: Mapping[str, Any] | None = None

    @classmethod
    def check(cls, arguments: Mapping[str, Any]) -> None:
        bucket = arguments["s3_bucket"]
        if not bucket or (given(bucket) and "/" in bucket):
            raise ExportConfigError("s3_bucket", f"{bucket!r}: give a bucket name, without s3:// or a key")

    def sink(
        self, *, allow_empty: bool, group: Mapping[str, Any] | None = None, decompress: bool = False
    ) -> S3Sink:
        """Staged for a ``group``: its files complete under the run's directory, no manifest."""
        settings: dict[str, Any] = {
            "aws_conn_id": self.aws_conn_id,
            "part_size": self.part_size,
            "max_concurrency": self.max_part_concurrency,
            "decompress": decompress,
            "extra_args": self.s3_extra_args,
            "allow_empty": allow_empty,
            "bucket_argument": "s3_bucket",
        }
        if group is None:
            from airflow_provider_exports.transfers.engine.s3_sink import S3Sink

            return S3Sink(self.s3_bucket, self.s3_key_prefix, **settings)
        from airflow_provider_exports.transfers.engine.s3_staging import S3StagingSink

        return S3StagingSink(self.s3_bucket, self.s3_key_prefix, run_id=group["run_id"], **settings)


#: a name part that needs no quotes in SQL, whatever the dialect (PostgreSQL folds unquoted names to
#: lower case, so an upper-case letter needs them there)
_PLAIN_NAME = re.compile(r"[a-z_][a-z0-9_]*")
_OWN_PACKAGES = ("airflow_provider_exports", "airflow")


def warn_if_quoting_needed(name: str, argument: str) -> None:
    """Warn (when the DAG is parsed) about a table name that queries will have to quote: the load
    quotes every part of it, so the table exists exactly as written, spaces and case included."""
    parts = [part for part in str(name).split(".") if not _PLAIN_NAME.fullmatch(part)]
    if not parts:
        return
    part = parts[0]
    if part[:1].isdigit():
        why = "it starts with a digit"
    elif re.fullmatch(r"[A-Za-z0-9_]+", part):
        why = "it has upper-case letters, which PostgreSQL keeps only when they are quoted"
    else:
        why = "it has characters other than letters, digits and underscores"
    quoted = ".".join(f'"{p}"' for p in str(name).split("."))
    # Attributed to the DAG file's line (what Airflow lists among the file's warnings): the first
    # caller outside this provider and Airflow (the operator's constructor runs through both).
    level, frame = 1, cast("FrameType | None", sys._getframe())
    while frame is not None and frame.f_globals.get("__name__", "").partition(".")[0] in _OWN_PACKAGES:
        frame, level = frame.f_back, level + 1
    warnings.warn(
        f"{argument}={name!r}: {part!r} needs quoting in SQL ({why}). The load quotes it, so the table "
        f"is {quoted} and every query must quote it the same way; lower-case letters, digits and "
        "underscores need no quotes",
        UserWarning,
        stacklevel=level,
    )


@dataclass(kw_only=True)
class SqlDestination(Destination):
    """A table of any SQL warehouse, through the connection's common-sql ``DbApiHook`` (PostgreSQL
    through ``COPY``; :class:`~.engine.sql.sink.SqlSink`): one transaction, the job's manifest row
    included, so a failure leaves the table as it was and a rerun of the job skips. Every row names
    the file it came from in ``_source_file`` (a table the load creates has the column; an existing
    table without it is loaded as before).

    :param conn_id: the warehouse connection (any DbApiHook: postgres, sqlite...). (templated)
    :param table: destination table, optionally ``schema.table``. (templated)
    :param mode: ``replace`` (the table's rows give way to the job's, in one transaction; the
        table itself, its indexes and grants stay), ``append`` or ``merge`` (by ``key_columns``,
        last row wins).
    :param key_columns: the columns identifying a row, for ``merge``.
    :param create_table: create a missing table from the data's columns.
    :param on_schema_change: what a field the existing table has no column for does (dbt's word):
        ``append_new_columns`` (the default: a nullable column, typed from its values as a new
        table's would be, added in the load's transaction), ``fail``, or ``ignore`` (its values
        dropped, said once per column).
    :param column_types: SQL types for a table the load creates or columns it adds, overriding the
        ones read from the data (or fixed by the vendor's file format), by column (e.g.
        ``{"zip": "TEXT"}``).
    :param batch_size: rows per insert batch.
    """

    kind: ClassVar[str] = "sql"
    template_fields: ClassVar[tuple[str, ...]] = ("conn_id", "table")

    conn_id: str
    table: str
    mode: str = "append"
    key_columns: Sequence[str] = ()
    create_table: bool = True
    on_schema_change: str = "append_new_columns"
    column_types: Mapping[str, str] | None = None
    batch_size: int = 10_000

    @classmethod
    def check(cls, arguments: Mapping[str, Any]) -> None:
        check_load_mode(arguments["mode"], arguments["key_columns"])
        check_on_schema_change(arguments["on_schema_change"])
        if given(arguments["table"]):
            warn_if_quoting_needed(arguments["table"], "table")

    def sink(
        self,
        *,
        allow_empty: bool,
        group: Mapping[str, Any] | None = None,
        known_types: Mapping[str, str] | None = None,
        **options: Any,
    ) -> SqlSink:
        """With the vendor's own ``SqlSink`` options (file format, attribute columns...); staged for
        a ``group``: its files into its own staging table.

        :param known_types: column types the vendor's file format fixes; ``column_types`` adds to
            them and wins.
        """
        settings: dict[str, Any] = {
            "conn_id": self.conn_id,
            "mode": self.mode,
            "key_columns": self.key_columns,
            "create_table": self.create_table,
            "on_schema_change": self.on_schema_change,
            "column_types": {**(known_types or {}), **(self.column_types or {})},
            "batch_size": self.batch_size,
            "allow_empty": allow_empty,
            **options,
        }
        if group is None:
            from airflow_provider_exports.transfers.engine.sql import SqlSink

            return SqlSink(self.table, **settings)
        from airflow_provider_exports.transfers.engine.sql.staging import SqlStagingSink

        return SqlStagingSink(self.table, run_id=group["run_id"], group=int(group["group"]), **settings)


@dataclass(kw_only=True)
class ObjectStorageDestination(Destination):
    """Any store Airflow's ``ObjectStoragePath`` knows (``gs://``, ``abfs://``, ``file://``...)
    (:class:`~.engine.object_store_sink.ObjectStoreSink`): the files land in the run's directory,
    ``_manifest.json`` is written last, and a rerun for the same job skips. S3 has its own, faster,
    destination.

    :param destination: the root URI, e.g. ``gs://lake/raw/sitecore/ds={{ ds }}/``. (templated)
    :param destination_conn_id: the store's Airflow connection (``google_cloud_default``,
        ``wasb_default``, ``aws_default``...); none for a local path. (templated)
    :param block_size: bytes the store's writer buffers per part.
    """

    kind: ClassVar[str] = "object_storage"
    template_fields: ClassVar[tuple[str, ...]] = ("destination", "destination_conn_id")

    destination: str
    destination_conn_id: str | None = None
    block_size: int = DEFAULT_BLOCK_SIZE

    @classmethod
    def check(cls, arguments: Mapping[str, Any]) -> None:
        if isinstance(arguments["destination"], str) and given(arguments["destination"]):
            check_destination(arguments["destination"])

    def sink(
        self, *, allow_empty: bool, group: Mapping[str, Any] | None = None, decompress: bool = False
    ) -> ObjectStoreSink:
        if group is not None:
            raise ExportConfigError("group", "a fan-out stages into S3 or SQL, not into object storage")
        return ObjectStoreSink(
            self.destination,
            conn_id=self.destination_conn_id,
            decompress=decompress,
            allow_empty=allow_empty,
            block_size=self.block_size,
        )
