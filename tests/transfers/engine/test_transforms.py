"""Batch transforms: wide rows to long ones as they stream."""

from __future__ import annotations

import pytest

from airflow_provider_exports.exceptions import TransferError
from airflow_provider_exports.transfers.engine.formats import Batch
from airflow_provider_exports.transfers.engine.transforms import Unpivot


def test_unpivot_turns_wide_rows_long_batch_by_batch():
    def read_day(header: str) -> str:
        if header == "bad":
            raise TransferError("not a day")
        return header.upper()

    unpivot = Unpivot("id", "name", "value", read_name=read_day, max_rows=3)
    batches = [
        Batch(["key", "a", "b"], [("x", 1, 2), ("y", 3, None)]),
        Batch(["key", "a", "b"], [("z", 5, 6)]),
    ]
    out = list(unpivot(batches))
    assert [b.columns for b in out] == [["id", "name", "value"]] * 2
    assert [len(b.rows) for b in out] == [4, 2]  # a batch ends once it holds max_rows or more
    assert [r for b in out for r in b.rows] == [
        ("x", "A", 1),
        ("x", "B", 2),
        ("y", "A", 3),
        ("y", "B", None),
        ("z", "A", 5),
        ("z", "B", 6),
    ]
    with pytest.raises(TransferError, match="not a day"):
        list(unpivot([Batch(["key", "bad"], [("x", 1)])]))
    with pytest.raises(TransferError, match="at least one more"):
        list(unpivot([Batch(["key"], [("x",)])]))
