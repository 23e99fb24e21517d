"""The SQL destination of the engine: :class:`SqlSink` (:mod:`.sink`) and the pieces behind it.

Importing this package imports no database driver, and the sink only when one of its names is
first used (a DAG file's parse needs only :mod:`.modes`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow_provider_exports.utils.lazy import lazy_names

if TYPE_CHECKING:
    from airflow_provider_exports.transfers.engine.sql.dialects import resolve_db_hook
    from airflow_provider_exports.transfers.engine.sql.modes import MODES, Mode, check_load_mode
    from airflow_provider_exports.transfers.engine.sql.sink import SqlSink

_WHERE = {
    "MODES": "modes",
    "Mode": "modes",
    "check_load_mode": "modes",
    "SqlSink": "sink",
    "resolve_db_hook": "dialects",
}

__all__ = ["MODES", "Mode", "SqlSink", "check_load_mode", "resolve_db_hook"]


__getattr__ = lazy_names(__name__, _WHERE, globals())
