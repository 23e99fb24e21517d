"""The SQL destination of the engine: :class:`SqlSink` and the pieces behind it.

``sink`` (modes, staging, locking; no dialect in it), ``modes`` (the load modes and their
parse-time check), ``types`` (the column types of a table a load creates), ``from_stage`` (the SQL
that moves staged rows into the table), ``manifest_table`` (one row per committed job);
``generic`` (what the sink needs from a database, and the generic DB-API dialect), ``postgres`` and
``sqlite`` (their own ways), ``dialect`` (which of them a connection gets); the bulk path:
``csv_passthrough`` and ``csv_records`` (CSV bytes into ``COPY``, counted), ``arrow_readers``,
``arrow_text`` and ``columnar`` (pyarrow blocks as ``COPY`` CSV). ``staging`` is the fan-out
form. Importing this package imports no database driver, and the sink only when one of its names
is first used (a DAG file's parse needs only ``modes``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow_provider_exports.utils.lazy import lazy_names

if TYPE_CHECKING:
    from airflow_provider_exports.transfers.engine.sql.modes import MODES, Mode, check_load_mode
    from airflow_provider_exports.transfers.engine.sql.sink import SqlSink, resolve_db_hook

_WHERE = {
    "MODES": "modes",
    "Mode": "modes",
    "check_load_mode": "modes",
    "SqlSink": "sink",
    "resolve_db_hook": "sink",
}

__all__ = ["MODES", "Mode", "SqlSink", "check_load_mode", "resolve_db_hook"]


__getattr__ = lazy_names(__name__, _WHERE, globals())
