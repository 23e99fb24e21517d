"""The streaming transfer engine under every transfer operator of the provider.

Sources (:class:`HttpSourceFile`) stream the output files of one vendor job; a sink
(:class:`S3Sink`, :class:`SqlSink`) stores them; :func:`run_transfer` moves them concurrently in
flat memory, checks sizes, hashes every byte (SHA-256), logs progress and commits all or nothing
with ``_manifest.json`` last. A vendor operator builds the sources from its hook, picks a sink
and returns ``run_transfer(...).to_dict()``.

Importing this package is cheap: boto3, the database drivers and pyarrow are imported only when
a sink or a reader needs them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow_provider_exports.utils.lazy import lazy_names

if TYPE_CHECKING:
    from airflow_provider_exports.transfers.engine.cancellation import Cancellation
    from airflow_provider_exports.transfers.engine.manifest import (
        CHECKSUM_ALGORITHM,
        MANIFEST_NAME,
        MANIFEST_VERSION,
        FileRecord,
    )
    from airflow_provider_exports.transfers.engine.runner import TransferSummary, run_transfer
    from airflow_provider_exports.transfers.engine.s3_sink import S3Sink
    from airflow_provider_exports.transfers.engine.sink import Sink, StoredFile, TransferContext
    from airflow_provider_exports.transfers.engine.sources import HttpSourceFile, OpenedStream, SourceFile
    from airflow_provider_exports.transfers.engine.sql import SqlSink, check_load_mode, resolve_db_hook

# Each name is imported from its module when first used, so a DAG file whose operators need only
# part of the engine (an S3 transfer, no SQL) does not pay for the rest when it is parsed.
_WHERE = {
    "CHECKSUM_ALGORITHM": "manifest",
    "MANIFEST_NAME": "manifest",
    "MANIFEST_VERSION": "manifest",
    "FileRecord": "manifest",
    "TransferSummary": "runner",
    "run_transfer": "runner",
    "S3Sink": "s3_sink",
    "Cancellation": "cancellation",
    "Sink": "sink",
    "StoredFile": "sink",
    "TransferContext": "sink",
    "HttpSourceFile": "sources",
    "OpenedStream": "sources",
    "SourceFile": "sources",
    "SqlSink": "sql",
    "check_load_mode": "sql",
    "resolve_db_hook": "sql",
}

__all__ = [
    "CHECKSUM_ALGORITHM",
    "MANIFEST_NAME",
    "MANIFEST_VERSION",
    "Cancellation",
    "FileRecord",
    "HttpSourceFile",
    "OpenedStream",
    "S3Sink",
    "Sink",
    "SourceFile",
    "SqlSink",
    "StoredFile",
    "TransferContext",
    "TransferSummary",
    "check_load_mode",
    "resolve_db_hook",
    "run_transfer",
]


__getattr__ = lazy_names(__name__, _WHERE, globals())
