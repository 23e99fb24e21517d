"""What every vendor → destination transfer operator shares.

:class:`VendorTransferOperator` runs one transfer: the vendor part says which files and which job
(:meth:`VendorTransferOperator.plan`), the destination part which sink; the engine moves them, all
or nothing, and ``on_kill`` stops it (uploads aborted, a load rolled back). :class:`ToS3Mixin` and
:class:`ToSqlMixin` are the destination parts: their arguments, checks and sink, the same for every
vendor.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, cast

from airflow.providers.common.compat.sdk import BaseOperator

from airflow_provider_exports.exceptions import ExportConfigError
from airflow_provider_exports.transfers.engine.sink import Cancellation, Sink
from airflow_provider_exports.transfers.engine.sql.modes import check_load_mode
from airflow_provider_exports.utils.openlineage import LineageRef, destination_ref
from airflow_provider_exports.utils.templating import is_template

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context
    from airflow.providers.openlineage.extractors import OperatorLineage

    from airflow_provider_exports.transfers.engine import S3Sink, SourceFile
    from airflow_provider_exports.transfers.engine.sql import SqlSink


@dataclass
class TransferPlan:
    """One job's files and where they go: what :meth:`VendorTransferOperator.plan` returns."""

    files: Sequence[SourceFile]
    sink: Sink
    export_ref: str
    job_ref: str
    job_details: Mapping[str, Any] = field(default_factory=dict)
    #: what the job is, named for OpenLineage (``utils/openlineage.py``)
    inputs: Sequence[LineageRef] = ()


class VendorTransferOperator(BaseOperator, ABC):
    """Move the output files of one vendor job into a sink, all or nothing; return a summary.

    :param overwrite: move the job again even when its manifest is already at the destination.
    :param max_concurrent_files: files moved at once.
    :param allow_empty: commit a job without any data (it replaces what the destination had);
        by default such a job fails and the destination keeps what it had.
    """

    vendor: ClassVar[str]
    # live clients and the run's stop signal are shared, not copied, when Airflow copies the task
    shallow_copy_attrs: Sequence[str] = ("hook", "_cancellation")

    def __init__(
        self,
        *,
        overwrite: bool = False,
        max_concurrent_files: int = 4,
        allow_empty: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.overwrite = overwrite
        self.max_concurrent_files = max_concurrent_files
        self.allow_empty = allow_empty
        # made in execute (an Event cannot be deep-copied, and Airflow copies operators)
        self._cancellation: Cancellation | None = None

    @abstractmethod
    def plan(self, context: Context) -> TransferPlan:
        """Find the job, list its files (sources fetch their URLs at run time) and make the sink."""

    def close(self) -> None:
        """Release the vendor's clients (after the run, whatever its end)."""

    def make_sink(self, context: Context, output: Any) -> Sink:
        """The destination (from :class:`ToS3Mixin` or :class:`ToSqlMixin`)."""
        raise NotImplementedError

    def execute(self, context: Context) -> dict[str, Any]:
        self._cancellation = Cancellation()
        try:
            plan = self.plan(context)
            self._lineage = (list(plan.inputs), destination_ref(plan.sink))
            from airflow_provider_exports.transfers.engine.runner import run_transfer

            summary = run_transfer(
                plan.files,
                plan.sink,
                vendor=self.vendor,
                export_ref=plan.export_ref,
                job_ref=plan.job_ref,
                overwrite=self.overwrite,
                max_concurrent_files=self.max_concurrent_files,
                log=cast("logging.Logger", self.log),  # Airflow's task logger speaks the same methods
                cancellation=self._cancellation,
                job_details=plan.job_details,
            )
        finally:
            self.close()
        return summary.to_dict()

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> OperatorLineage | None:
        """The vendor job read and the prefix or table written (only called with the OpenLineage
        provider installed; it is imported here, never at module import)."""
        from airflow_provider_exports.utils.openlineage import operator_lineage

        inputs, output = getattr(self, "_lineage", None) or ([], None)
        return operator_lineage(inputs, [output] if output is not None else [])

    def on_kill(self) -> None:
        # Stop our own transfer, which aborts its uploads or rolls its load back.
        if self._cancellation is not None:
            self._cancellation.cancel_soon("the task was killed")


class ToS3Mixin(VendorTransferOperator):
    """The S3 destination: ``s3_bucket``, ``s3_key_prefix``, ``aws_conn_id`` (templated), ``part_size``,
    ``max_part_concurrency``, ``s3_extra_args``; see :class:`S3Sink`."""

    S3_TEMPLATE_FIELDS: ClassVar[tuple[str, ...]] = ("s3_bucket", "s3_key_prefix", "aws_conn_id")

    def __init__(
        self,
        *,
        s3_bucket: str,
        s3_key_prefix: str = "",
        aws_conn_id: str | None = "aws_default",
        part_size: int = 8 * 1024 * 1024,
        max_part_concurrency: int = 4,
        s3_extra_args: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.s3_bucket = s3_bucket
        self.s3_key_prefix = s3_key_prefix
        self.aws_conn_id = aws_conn_id
        self.part_size = part_size
        self.max_part_concurrency = max_part_concurrency
        self.s3_extra_args = s3_extra_args
        if not s3_bucket or (not is_template(s3_bucket) and "/" in s3_bucket):
            raise ExportConfigError("s3_bucket", f"{s3_bucket!r}: give a bucket name, without s3:// or a key")

    def s3_sink(self, *, decompress: bool = False) -> S3Sink:
        from airflow_provider_exports.transfers.engine.s3_sink import S3Sink

        return S3Sink(self.s3_bucket, self.s3_key_prefix, **self.s3_settings(decompress))

    def s3_settings(self, decompress: bool) -> dict[str, Any]:
        """The sink's settings beside its bucket and prefix."""
        return {
            "aws_conn_id": self.aws_conn_id,
            "part_size": self.part_size,
            "max_concurrency": self.max_part_concurrency,
            "decompress": decompress,
            "extra_args": self.s3_extra_args,
            "allow_empty": self.allow_empty,
        }


class ToSqlMixin(VendorTransferOperator):
    """The SQL destination: ``conn_id``, ``table`` (templated), ``mode``, ``key_columns``,
    ``create_table``, ``column_types``, ``batch_size``; see :class:`SqlSink`."""

    SQL_TEMPLATE_FIELDS: ClassVar[tuple[str, ...]] = ("conn_id", "table")

    def __init__(
        self,
        *,
        conn_id: str,
        table: str,
        mode: str = "append",
        key_columns: Sequence[str] = (),
        create_table: bool = True,
        column_types: Mapping[str, str] | None = None,
        batch_size: int = 10_000,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.conn_id = conn_id
        self.table = table
        self.mode = mode
        self.key_columns = key_columns
        self.create_table = create_table
        self.column_types = column_types
        self.batch_size = batch_size
        check_load_mode(mode, key_columns)

    def sql_sink(self, *, known_types: Mapping[str, str] | None = None, **options: Any) -> SqlSink:
        """The sink, with the vendor's own ``SqlSink`` options (file format, attribute columns...).

        :param known_types: column types the vendor's file format fixes; ``column_types`` adds to
            them and wins.
        """
        from airflow_provider_exports.transfers.engine.sql import SqlSink

        return SqlSink(self.table, **self.sql_settings(known_types, options))

    def sql_settings(self, known_types: Mapping[str, str] | None, options: Mapping[str, Any]) -> dict[str, Any]:
        """The sink's settings beside its table."""
        return {
            "conn_id": self.conn_id,
            "mode": self.mode,
            "key_columns": self.key_columns,
            "create_table": self.create_table,
            "column_types": {**(known_types or {}), **(self.column_types or {})},
            "batch_size": self.batch_size,
            "allow_empty": self.allow_empty,
            **options,
        }
