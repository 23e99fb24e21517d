"""Schema drift: what a load into an existing table does with a field the table has no column for
(``on_schema_change``, dbt's word for it), and with a value its column cannot hold.

- ``append_new_columns`` (the default): the field becomes a nullable column, typed as the same values
  would type it in a table the load creates (:class:`.types.TypeTracker`), added in the load's
  transaction: before the rows that bring it, when rows go straight into the table
  (:func:`.created_table.shape_table`, which also widens it for later values); at commit, from the
  stage, for ``merge`` and a fanned-out load (:func:`.from_stage.add_columns`).
- ``fail``: the load is refused, naming the fields.
- ``ignore``: the field's values are dropped, said once per column in the task log.

A value of a field the table has a column for goes in as the database reads it for the column's
type. One it cannot read (text into ``BIGINT``) fails the load with the column, its type, the kind
of the value and its row in the file (:class:`.generic.ValueRefused`, made a
:class:`~airflow_provider_exports.exceptions.TransferRefused` by the sink); the value itself is not
shown (it is the export's data). PostgreSQL refuses such a value in ``COPY``; SQLite, which would
keep it as text among the numbers, is checked before the rows go (:meth:`.sqlite.SqliteDialect.misfit`).
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Sequence
from typing import Any

from airflow_provider_exports.exceptions import TransferRefused
from airflow_provider_exports.transfers.engine.formats import Batch
from airflow_provider_exports.transfers.engine.sql.arrow_readers import ArrowBatch
from airflow_provider_exports.transfers.engine.sql.file_columns import check_constant_names
from airflow_provider_exports.transfers.engine.sql.from_stage import ORDINAL
from airflow_provider_exports.transfers.engine.sql.generic import ValueRefused
from airflow_provider_exports.transfers.engine.sql.modes import check_on_schema_change

log = logging.getLogger(__name__)

_INTEGER = re.compile(r"0|-?[1-9][0-9]*")
_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?")


def refusal(file: str, table: str, sql_type: str | None, refused: ValueRefused) -> TransferRefused:
    """The error for a value ``table``'s column (of ``sql_type``) cannot hold, at its row of ``file``."""
    where = f"{file}, row {refused.row:,}" if refused.row is not None else f"{file} (a row of it)"
    column = f"column {refused.column!r} of {table} is" if refused.column else f"a column of {table} is"
    return TransferRefused(
        f"{where}: {column} {sql_type or 'of its own type'}, and the "
        f"value there is {value_kind(refused.value)}, which it cannot hold; nothing of the load "
        "is committed (a value is never cast to fit: change the column's type, or the export)"
    )


def value_kind(value: Any) -> str:
    """What ``value`` is, in words, for an error that must not show it (a CSV field is text that
    may read as a number)."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a floating-point number"
    if isinstance(value, (bytes, bytearray, memoryview)):
        return "bytes"
    text = str(value)
    if "\x00" in text:
        return "text with a NUL character (\\u0000)"
    if _INTEGER.fullmatch(text):
        return "an integer"
    if _NUMBER.fullmatch(text):
        return "a decimal number"
    if text in ("true", "false"):
        return "a boolean"
    return "text" if text else "an empty string"


class SchemaDrift:
    """One load's policy for the fields of an existing table's files (see the module docstring).

    :param table: the table, for messages.
    :param policy: ``append_new_columns``, ``fail`` or ``ignore``.
    """

    def __init__(self, table: str, policy: str) -> None:
        check_on_schema_change(policy)
        self.table, self.policy = table, policy
        self.target: Sequence[str] | None = None
        self.marker: str | None = None
        self._dropped: set[str] = set()

    def start(self, target: Sequence[str] | None, marker: str | None) -> None:
        """A load begins: ``target`` is the table's columns (``None``: the load creates it);
        ``marker`` a column that only marks the rows ``merge`` removes (never a column to add)."""
        self.target, self.marker, self._dropped = target, marker, set()

    @property
    def appends(self) -> bool:
        """Whether fields the existing table lacks become its columns in this load."""
        return self.target is not None and self.policy == "append_new_columns"

    def new(self, columns: Sequence[str]) -> list[str]:
        """The ``columns`` the existing table has none for (none when the load creates it)."""
        if self.target is None:
            return []
        return [c for c in columns if c not in self.target and c != ORDINAL and c != self.marker]

    def check(self, columns: Sequence[str]) -> None:
        """Refuse ``columns`` the table has none for, under ``fail``."""
        new = self.new(columns)
        if new and self.policy == "fail":
            raise TransferRefused(
                f"{self.table} has no column {', '.join(repr(c) for c in new)} and on_schema_change "
                "is 'fail'; add it to the table, or let the load add it (on_schema_change="
                "'append_new_columns') or drop its values ('ignore')"
            )

    def passes(self, file: str, columns: Sequence[str], constants: Sequence[str]) -> bool:
        """Whether a CSV file's bytes may go as they are into the existing table: its own
        ``columns`` and the ``constants`` the load adds are all the table's (else its values are
        read); refused under ``fail``, or when the file brings a column the load adds itself."""
        check_constant_names(file, columns, constants)
        every = [*columns, *constants]
        self.check(every)
        return not self.new(every)

    def loadable(self, columns: Sequence[str]) -> list[str]:
        """``columns`` without those ``ignore`` drops."""
        dropped = self.new(columns) if self.policy == "ignore" else []
        return [c for c in columns if c not in dropped]

    def kept(self, batch: Any) -> Any:
        """``batch`` without the columns ``ignore`` drops (each said once in the task log)."""
        if self.policy != "ignore":
            return batch
        new = self.new(batch.columns)
        if not new:
            return batch
        for column in new:
            if column not in self._dropped:
                self._dropped.add(column)
                log.warning(
                    "%s has no column %r: its values are dropped (on_schema_change='ignore')", self.table, column
                )
        keep = [i for i, c in enumerate(batch.columns) if c not in new]
        columns = [batch.columns[i] for i in keep]
        types = None if batch.types is None else {c: t for c, t in batch.types.items() if c in columns}
        if isinstance(batch, ArrowBatch):
            assert batch.raw is None, "raw CSV blocks go only into a table the load creates"
            numbers = {c: m for c, m in batch.json_numbers.items() if c in columns}
            table = batch.table.select(keep)
            return dataclasses.replace(batch, columns=columns, table=table, types=types, json_numbers=numbers)
        return Batch(columns, [tuple(row[i] for i in keep) for row in batch.rows], types)
