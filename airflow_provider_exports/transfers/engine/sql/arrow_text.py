"""Arrow values written as text column-wise (pyarrow compute, in C++), exactly as the row path writes
them in Python, for the SQL sink's bulk path (PostgreSQL ``COPY``):

- nested values as JSON text (:func:`arrow_json_text`: the columnar readers' nested Parquet values);
- every column as the text ``COPY ... (FORMAT csv)`` loads (:func:`copy_text`, :func:`encode_csv`).
  **Staged** (an undeclared JSON-lines column of a table this load creates, staged as text and
  cast at commit): as :func:`.types.json_as_text` writes it — ``true``/``false``, integers,
  floats as Python's ``repr``, strings unchanged. **Typed** (a column of an existing table, or
  with a declared type): as psycopg sends the Python value — ``t``/``f``, integers, floats as
  ``repr``, dates and timestamps as ``str()`` gives them (``2024-01-01 10:00:00+00:00``),
  ``bytea`` as ``\\x`` hex. NULL is an unquoted empty field, every other value is quoted, so
  ``""`` stays an empty string.

What the column-wise writers cannot match exactly raises :class:`NeedsPython`, and Python writes
that column (or those values) instead.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
from dataclasses import dataclass
from typing import Any

from airflow_provider_exports.transfers.engine.formats import nested_json_text
from airflow_provider_exports.transfers.engine.sql.types import (
    BOOL,
    DECIMAL,
    FLOAT,
    HUGEINT,
    INT,
    INT64_MAX,
    TEXT,
)


def arrow_json_text(array: Any) -> Any:
    """A nested Arrow array's values as JSON text (a string array, NULL kept), exactly as
    :func:`nested_json_text` writes them, computed column-wise in C++ (pyarrow compute); the few
    values that need Python (control characters, non-finite floats, binary, decimals, repeated map
    keys, a time zone other than UTC) are written by it."""
    import pyarrow as pa

    if isinstance(array, pa.ChunkedArray):
        return pa.chunked_array([arrow_json_text(c) for c in array.chunks], type=pa.string())
    try:
        text = _json_values(array)
    except NeedsPython:
        text = pa.array(nested_json_text(array), type=pa.string())
    import pyarrow.compute as pc

    return pc.if_else(array.is_valid(), text, pa.scalar(None, pa.string()))


class NeedsPython(Exception):
    """A value the column-wise JSON writer leaves to Python."""


def float_text(array: Any, *, json_style: bool = False) -> Any:
    """Floats as Python's ``repr`` writes them (JSON's ``json.dumps`` with ``json_style``: ``NaN``,
    ``Infinity``); NULL kept. pyarrow's own text is kept where it is the same, the rest is
    written by Python."""
    import pyarrow as pa
    import pyarrow.compute as pc

    array = pc.cast(array, pa.float64())
    text = pc.cast(array, pa.string())
    # pyarrow writes shortest round-trip digits like repr, but switches to exponents sooner and
    # drops ".0"; its fixed-notation text with a point and at most 4 leading zeros is repr's
    odd = pc.or_(
        pc.invert(pc.match_substring(text, ".")),
        pc.or_(pc.match_substring(text, "e"), pc.match_substring_regex(text, r"^-?0\.0000")),
    )
    odd = pc.fill_null(odd, False)
    if not pc.any(odd).as_py():
        return text
    values = pc.filter(array, odd).to_pylist()
    fixed = [json.dumps(v) for v in values] if json_style else [repr(v) for v in values]
    return pc.replace_with_mask(text, odd, pa.array(fixed, pa.string()))


def _json_string(array: Any) -> Any:
    """Strings as JSON string literals (``json.dumps(ensure_ascii=False)``)."""
    import re

    import pyarrow as pa
    import pyarrow.compute as pc

    array = pc.cast(array, pa.string())
    data = array.buffers()[2]
    raw = memoryview(data) if data is not None else b""
    # one scan of the bytes in C (a control character anywhere in the buffer sends it to Python)
    if re.search(rb"[\x00-\x1f]", raw):
        raise NeedsPython
    if re.search(rb'[\\"]', raw):
        array = pc.replace_substring(pc.replace_substring(array, "\\", "\\\\"), '"', '\\"')
    return pc.binary_join_element_wise('"', array, '"', "")


def _json_values(array: Any) -> Any:
    """JSON text of every slot of ``array`` (a NULL slot's text is ``null``)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    t = array.type
    T = pa.types
    null = pa.scalar("null", pa.string())
    if T.is_dictionary(t):
        return _json_values(array.dictionary_decode())
    if T.is_null(t):
        return pa.array(["null"] * len(array), type=pa.string())
    if T.is_boolean(t):
        text = pc.if_else(array, "true", "false")
    elif T.is_integer(t):
        text = pc.cast(array, pa.string())
    elif T.is_floating(t):
        text = float_text(array, json_style=True)
    elif T.is_string(t) or T.is_large_string(t):
        text = _json_string(array)
    elif T.is_date(t):
        text = pc.binary_join_element_wise('"', pc.cast(pc.cast(array, pa.date32()), pa.string()), '"', "")
    elif T.is_timestamp(t):
        text = iso_timestamp_text(array)
    elif T.is_struct(t):
        parts: list[Any] = ["{"]
        for i, (f, child) in enumerate(zip(t, array.flatten(), strict=True)):
            parts.append(("," if i else "") + json.dumps(f.name, ensure_ascii=False) + ":")
            parts.append(_json_values(child))
        parts.append("}")
        text = pc.binary_join_element_wise(*parts, "") if len(parts) > 2 else pa.array(["{}"] * len(array))
    elif T.is_map(t):
        text = _json_map(array)
    elif T.is_list(t) or T.is_large_list(t) or T.is_fixed_size_list(t):
        if T.is_fixed_size_list(t):
            array = pc.cast(array, pa.list_(t.value_type))
        offsets = pc.subtract(array.offsets, array.offsets[0])
        values = _json_values(_spanned(array, array.values))
        items = pa.ListArray.from_arrays(offsets, values, mask=array.is_null())
        text = pc.binary_join_element_wise("[", pc.binary_join(items, ","), "]", "")
    else:
        raise NeedsPython  # binary, decimals, times, unions: rare; Python writes them
    if array.null_count:
        text = pc.if_else(array.is_valid(), text, null)
    return text


def _spanned(array: Any, values: Any) -> Any:
    """The ``values`` (a list or map array's child) its offsets span (``flatten`` skips those under NULL)."""
    start, end = array.offsets[0].as_py(), array.offsets[-1].as_py()
    return values.slice(start, end - start)


def _json_map(array: Any) -> Any:
    """Maps as JSON objects (string keys, none repeated within a map; else Python writes them)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    t = array.type
    if not (pa.types.is_string(t.key_type) or pa.types.is_large_string(t.key_type)):
        raise NeedsPython
    keys, items = _spanned(array, array.keys), _spanned(array, array.items)
    rebased = pc.subtract(array.offsets, array.offsets[0])
    if _repeats_a_key(rebased, keys):
        raise NeedsPython  # a repeated key: the pairs stay a list of [key, value]
    entries = pc.binary_join_element_wise(_json_string(keys), ":", _json_values(items), "")
    joined = pc.binary_join(pa.ListArray.from_arrays(rebased, entries, mask=array.is_null()), ",")
    return pc.binary_join_element_wise("{", joined, "}", "")


def iso_timestamp_text(array: Any, sep: str = "T", quote: str = '"') -> Any:
    """Timestamps as ``datetime.isoformat(sep)`` writes them, quoted (UTC or naive; else Python)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    tz = array.type.tz
    if array.type.unit == "ns" or tz not in (None, "UTC", "utc", "+00:00", "Etc/UTC"):
        raise NeedsPython
    micros = pc.cast(pc.cast(array, pa.timestamp("us", tz=tz)), pa.timestamp("us"))  # UTC wall time
    seconds = pc.floor_temporal(micros, unit="second")
    base = pc.utf8_replace_slice(pc.cast(pc.cast(seconds, pa.timestamp("s")), pa.string()), 10, 11, sep)
    frac = pc.subtract(pc.cast(micros, pa.int64()), pc.cast(seconds, pa.int64()))
    frac_text = pc.if_else(
        pc.equal(frac, 0),
        "",
        pc.binary_join_element_wise(".", pc.utf8_lpad(pc.cast(frac, pa.string()), 6, "0"), ""),
    )
    suffix = "" if tz is None else "+00:00"
    return pc.binary_join_element_wise(quote, base, frac_text, suffix + quote, "")


def _repeats_a_key(rebased: Any, keys: Any) -> bool:
    """Whether some map repeats a key: each entry is compared with the entries before it in its
    map (maps are short), or, for long maps, (map, key) pairs are counted."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if not len(keys):
        return False
    parents = pc.list_parent_indices(pa.ListArray.from_arrays(rebased, keys))
    longest = pc.max(pc.subtract(rebased.slice(1), rebased.slice(0, len(rebased) - 1))).as_py() or 0
    if longest > 32:
        return pa.table({"p": parents, "k": keys}).group_by(["p", "k"]).aggregate([]).num_rows != len(keys)
    for lag in range(1, longest):
        same = pc.and_(
            pc.equal(parents.slice(lag), parents.slice(0, len(parents) - lag)),
            pc.equal(keys.slice(lag), keys.slice(0, len(keys) - lag)),
        )
        if pc.any(same).as_py():
            return True
    return False


@dataclass
class CopyBatch:
    """Rows as ``COPY`` data, columns in the order of ``columns``: ``FORMAT csv``, or ``binary``
    tuples (:mod:`.pg_binary`: without the header and trailer, which each ``COPY`` adds once)."""

    columns: list[str]
    data: bytes | memoryview
    num_rows: int
    binary: bool = False


def json_kinds(array: Any) -> tuple[set[str], int]:
    """What a plain JSON-lines column shows the type tracker: its kinds and its largest integer
    magnitude (the columnar reader gives only int64, double, bool, string and null columns)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    t = array.type
    if array.null_count == len(array) or pa.types.is_null(t):
        return set(), 0
    if pa.types.is_integer(t):
        low, high = pc.min_max(array).values()
        return {INT}, max(abs(low.as_py()), abs(high.as_py()))
    if pa.types.is_floating(t):
        return {FLOAT}, 0
    if pa.types.is_boolean(t):
        return {BOOL}, 0
    return {TEXT}, 0


_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?")


def text_kinds(array: Any) -> tuple[set[str], int, int]:
    """What a CSV column (text) shows the type tracker, read column-wise as
    :meth:`.types.TypeTracker.observe` reads text values: its kinds, largest integer magnitude and
    digits. A number counts only when written canonically (no leading zero, no negative zero)."""
    import pyarrow.compute as pc

    texts = pc.drop_null(array)
    if not len(texts):
        return set(), 0, 0
    if not _NUMBER.fullmatch(texts[0].as_py()):  # one value that is no number: the column is text
        return {TEXT}, 0, 0
    longest = pc.max(pc.utf8_length(texts)).as_py()
    if pc.all(pc.match_substring_regex(texts, r"^(?:0|-?[1-9][0-9]*)$")).as_py():
        if longest < 16:  # at most 15 digits: below 2**53, within int64
            return {INT}, 0, 0
        long_ones = pc.filter(texts, pc.greater_equal(pc.utf8_length(texts), 16)).to_pylist()
        largest = max(abs(int(v)) for v in long_ones)
        return ({INT}, largest, 0) if largest <= INT64_MAX else ({HUGEINT}, largest, longest)
    number = pc.match_substring_regex(texts, r"^-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?$")
    negative_zero = pc.match_substring_regex(texts, r"^-0(?:\.0+)?$")
    if pc.all(pc.and_(number, pc.invert(negative_zero))).as_py():
        return {DECIMAL}, 0, longest
    return {TEXT}, 0, 0


def copy_text(array: Any, *, staged: bool) -> Any:
    """``array``'s values as the text ``COPY`` receives (see the module docstring); NULL kept."""
    import pyarrow as pa
    import pyarrow.compute as pc

    t = array.type
    T = pa.types
    if T.is_string(t) or T.is_large_string(t):
        return array
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    if T.is_dictionary(t):
        return copy_text(array.dictionary_decode(), staged=staged)
    if T.is_null(t):
        return pa.nulls(len(array), pa.string())
    if T.is_boolean(t):
        yes, no = ("true", "false") if staged else ("t", "f")
        return pc.if_else(array, yes, no)
    if T.is_floating(t):
        return float_text(array)
    if T.is_timestamp(t):
        with contextlib.suppress(NeedsPython):  # else Python writes it, below
            return iso_timestamp_text(array, sep=" ", quote="")
    if T.is_timestamp(t) or T.is_decimal(t):
        return pa.array([None if v is None else str(v) for v in array.to_pylist()], pa.string())
    if T.is_binary(t) or T.is_large_binary(t) or T.is_fixed_size_binary(t):
        return pa.array([None if v is None else "\\x" + v.hex() for v in array.to_pylist()], pa.string())
    return pc.cast(array, pa.string())  # integers, dates, times: their text is the same


def encode_csv(columns: list[Any], num_rows: int) -> bytes:
    """String columns as CSV rows (no header): NULL unquoted and empty, every value quoted."""
    import pyarrow as pa
    import pyarrow.csv as pcsv

    if not columns:
        return b""
    names = [f"c{i}" for i in range(len(columns))]
    table = pa.Table.from_arrays(columns, names=names)
    out = io.BytesIO()
    pcsv.write_csv(table, out, pcsv.WriteOptions(include_header=False, quoting_style="needed"))
    return out.getvalue()
