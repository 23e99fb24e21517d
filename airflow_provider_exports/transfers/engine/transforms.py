"""Batch transforms: reshape a file's rows as they stream, one batch at a time, before a sink loads
them (:class:`Unpivot`: wide rows to long ones, as Cordial's audience trends need)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from airflow_provider_exports.exceptions import TransferError
from airflow_provider_exports.transfers.engine.formats import Batch


@dataclass(frozen=True)
class Unpivot:
    """A batch transform from wide rows to long ones, as the rows stream (one batch at a time).

    A wide row ``(id, v1, v2, ...)`` under the header ``(first, h1, h2, ...)`` becomes the rows
    ``(id, h1, v1), (id, h2, v2), ...`` with the columns ``(id_column, name_column, value_column)``:
    a table keeps one shape however many wide columns a file has.

    :param id_column: the name the first column gets.
    :param name_column: the column that holds the other columns' headers.
    :param value_column: the column that holds their values.
    :param read_name: checks (and may rewrite) a header before it becomes a value; raises
        ``TransferError`` for one it refuses.
    :param max_rows: long rows per batch at most (a wide batch of many columns is split).
    """

    id_column: str
    name_column: str
    value_column: str
    read_name: Callable[[str], str] | None = None
    max_rows: int = 10_000

    def __call__(self, batches: Iterable[Batch]) -> Iterator[Batch]:
        columns = [self.id_column, self.name_column, self.value_column]
        header: list[str] | None = None
        names: list[str] = []
        rows: list[tuple[Any, ...]] = []
        for batch in batches:
            if batch.columns != header:
                if len(batch.columns) < 2:
                    raise TransferError(
                        f"a wide file needs an id column and at least one more, got {batch.columns!r}"
                    )
                header = list(batch.columns)
                names = [self.read_name(h) if self.read_name else h for h in header[1:]]
            for row in batch.rows:
                key = row[0]
                rows.extend((key, name, value) for name, value in zip(names, row[1:], strict=True))
                if len(rows) >= self.max_rows:
                    yield Batch(columns, rows)
                    rows = []
        if rows:
            yield Batch(columns, rows)
