"""The SQL destination of the engine: :class:`SqlSink` and the pieces behind it.

``sink`` (modes, staging, the manifest row, locking; no dialect in it), ``types`` (the column
types of a table a load creates), ``dialect`` (what the sink needs from a database, and the generic
DB-API dialect), ``postgres`` and ``sqlite`` (their own ways). Importing this package imports no
database driver.
"""

from __future__ import annotations

from airflow_provider_exports.transfers.engine.sql.sink import (
    MODES,
    Mode,
    SqlSink,
    check_load_mode,
    resolve_db_hook,
)

__all__ = ["MODES", "Mode", "SqlSink", "check_load_mode", "resolve_db_hook"]
