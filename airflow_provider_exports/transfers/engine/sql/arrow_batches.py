"""Columnar blocks (:class:`.arrow_readers.ArrowBatch`) as ``COPY`` data for the SQL sink: the
type tracker shown the values of every column whose type is not settled, then the block encoded as
binary ``COPY`` where every column allows it (:mod:`.pg_binary`), else as CSV text
(:mod:`.arrow_text`); a CSV block that can go as it came (``raw``) goes so."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from airflow_provider_exports.transfers.engine.sql import pg_binary
from airflow_provider_exports.transfers.engine.sql.arrow_readers import ArrowBatch
from airflow_provider_exports.transfers.engine.sql.arrow_text import (
    CopyBatch,
    copy_text,
    encode_csv,
    json_kinds,
    text_kinds,
)
from airflow_provider_exports.transfers.engine.sql.from_stage import ORDINAL
from airflow_provider_exports.transfers.engine.sql.types import FLOAT, INT, TypeTracker


def copy_batch(
    batch: ArrowBatch,
    tracker: TypeTracker,
    file: str,
    *,
    observe: Callable[[str], bool],
    binary_types: Callable[[Sequence[str]], list[str] | None],
    not_binary: set[Any],
    ordinal: int | None,
) -> CopyBatch:
    """``batch`` (of ``file``) as ``COPY`` data.

    :param observe: whether a column's values vote on its type (``tracker``): the load makes it.
    :param binary_types: the SQL types the columns go into, where a binary ``COPY`` may take them.
    :param not_binary: shapes (SQL types, Arrow types, staged) that went as text: not tried again.
    :param ordinal: ``merge``: the number of the batch's first row (a last column numbers them).
    """
    import pyarrow as pa

    if batch.raw is not None:  # CSV as COPY reads it: only the columns parsed need a look
        for name, array in zip(batch.table.column_names, batch.table.columns, strict=True):
            if not tracker.is_text(name):
                tracker.observe_kinds(name, file, *text_kinds(array))
        return CopyBatch(list(batch.columns), batch.raw, batch.num_rows)
    columns, arrays, staged = list(batch.columns), list(batch.table.columns), []
    for name, array in zip(columns, arrays, strict=True):
        undeclared = False
        if observe(name) and tracker.declared(name) is None:
            kinds: set[str] = set()
            max_abs_int = digits = 0
            if name in batch.json_numbers:  # integers among fractions, as JSON wrote them
                kinds, max_abs_int = {INT, FLOAT}, batch.json_numbers[name]
            elif not tracker.is_text(name):  # a column of text stays text: no value need be read
                kinds, max_abs_int, digits = text_kinds(array) if batch.from_text else (*json_kinds(array), 0)
            undeclared = tracker.observe_kinds(name, file, kinds, max_abs_int, digits)
        staged.append(undeclared)
    n = batch.num_rows
    types = binary_types(columns) if ordinal is None else None
    shape = None if types is None else (tuple(types), tuple(str(a.type) for a in arrays), tuple(staged))
    if types is not None and shape not in not_binary:
        data = pg_binary.encode(arrays, types, staged)
        if data is not None:
            return CopyBatch(columns, data, n, binary=True)
        not_binary.add(shape)
    texts = [copy_text(array, staged=s) for array, s in zip(arrays, staged, strict=True)]
    if ordinal is not None:
        texts.append(pa.array(range(ordinal, ordinal + n), pa.int64()).cast(pa.string()))
        columns.append(ORDINAL)
    return CopyBatch(columns, encode_csv(texts, n), n)
