"""What the SQL sink knows of a load so far: the column types, the stage or the created table, the
rows. Copied at each file's savepoint (:class:`FileSavepoint`) and restored when that file starts
again."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

from airflow_provider_exports.exceptions import TransferError
from airflow_provider_exports.transfers.engine.sql.generic import Dialect
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


class FileSavepoint:
    """The savepoint before the file being loaded, with the load's state then: at most one is open
    (one name serves every file), so a file that starts again rolls back to its own start."""

    name = "exports_file"

    def __init__(self) -> None:
        self.file: str | None = None
        self.state: LoadState | None = None

    def open(self, d: Dialect, file: str, state: LoadState) -> None:
        self.release(d)  # the previous file is done
        self.file, self.state = file, copy.deepcopy(state)
        d.savepoint(self.name)

    def release(self, d: Dialect) -> None:
        if self.file is not None:
            d.release(self.name)
            self.file = self.state = None

    def restore(self, d: Dialect, file: str) -> LoadState:
        """Roll back to the savepoint before ``file``; the load's state then."""
        if self.file != file or self.state is None:
            raise TransferError(f"{file}: no savepoint was taken before it")
        d.rollback_to(self.name)
        state, self.file, self.state = self.state, None, None
        return state
