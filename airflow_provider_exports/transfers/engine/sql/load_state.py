"""What the SQL sink knows of a load so far: the column types, the stage or the created table, the
rows. Copied at each file's savepoint and restored when that file starts again."""

from __future__ import annotations

from dataclasses import dataclass, field

from airflow_provider_exports.transfers.engine.sql.types import TypeTracker


@dataclass
class LoadState:
    """See the module docstring."""

    tracker: TypeTracker
    stage_exists: bool = False
    stage_columns: list[str] = field(default_factory=list)  # data columns of the stage
    seen: list[str] = field(default_factory=list)  # data columns the export brought, in order
    #: the columns the load made (those of a table it created, or those it added) and their types
    made: dict[str, str] = field(default_factory=dict)
    added: list[str] = field(default_factory=list)  # columns added to an existing table, in order
    rows: int = 0
    ordinal: int = 0
    #: every row in the stage was counted by the database (else the stage is counted at commit)
    confirmed: bool = True
