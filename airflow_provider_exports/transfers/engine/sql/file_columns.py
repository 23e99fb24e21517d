"""The columns a load adds to every row of a file: the file's name (:data:`SOURCE_FILE`) and its
attributes (``attribute_columns``, e.g. Sitecore's ``_delta``), each one value for the whole file."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from airflow_provider_exports.exceptions import TransferRefused
from airflow_provider_exports.transfers.engine.formats import Batch
from airflow_provider_exports.transfers.engine.sql.arrow_readers import ArrowBatch

#: the column that names, in every row a load writes, the file the row came from (its name as the
#: engine and the manifest report it: never a URL), so a row can be traced, and undone, by file
SOURCE_FILE = "_source_file"


def with_constants(batches: Iterable[Any], constants: Mapping[str, Any], file: str) -> Iterator[Any]:
    """The same batches with a column per constant (as text) appended to every row; a file that
    brings a column of one of these names itself is refused."""
    names = list(constants)
    values = tuple(None if v is None else str(v) for v in constants.values())
    for batch in batches:
        check_constant_names(file, batch.columns, names)
        if isinstance(batch, ArrowBatch) and batch.raw is not None:  # a field more on every line
            suffix = b"".join(
                b"," + (b"" if v is None else b'"' + v.encode().replace(b'"', b'""') + b'"') for v in values
            )
            raw = batch.raw.replace(b"\n", suffix + b"\n")
            yield dataclasses.replace(batch, columns=[*batch.columns, *names], raw=raw)
            continue
        if isinstance(batch, ArrowBatch):
            import pyarrow as pa

            table = batch.table
            for name, value in zip(names, values, strict=True):
                table = table.append_column(name, pa.repeat(pa.scalar(value, pa.string()), table.num_rows))
            yield dataclasses.replace(batch, columns=[*batch.columns, *names], table=table)
            continue
        yield Batch([*batch.columns, *names], [(*row, *values) for row in batch.rows], batch.types)


def check_constant_names(file: str, columns: Sequence[str], constants: Sequence[str]) -> None:
    """Refuse a file whose own ``columns`` include a column the load adds (its name, its attributes)."""
    clash = [c for c in constants if c in columns]
    if clash:
        raise TransferRefused(
            f"{file} has a column {', '.join(repr(c) for c in clash)}, a name the loader gives the "
            "name or the attributes of the file each row came from"
        )
