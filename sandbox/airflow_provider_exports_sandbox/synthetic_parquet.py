"""Deterministic synthetic XDM profile Parquet files for the Adobe Experience Platform sandbox.

An AEP profile export job writes Spark-produced, snappy-compressed Parquet part files into a
dataset batch (Adobe's Data Access tutorial and the aepp client show names such as
``part-00001-<uuid>.c000.snappy.parquet``). This module writes such files from a small,
hashable :class:`ProfileFileSpec`: the same spec always yields the same bytes, so a file is
built once into the sandbox cache and then served from disk.

Generation is vectorised with ``pyarrow.compute`` and written row group by row group, so memory
stays bounded by ``row_group_rows`` whatever the file size (GiB-sized files are fine). pyarrow is
imported inside the functions: importing this module costs nothing.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
from array import array
from dataclasses import asdict, dataclass, field
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pyarrow as pa

# Top-level XDM Individual Profile fields the synthetic rows carry. An export job's ``fields``
# (comma-separated dot paths) is projected onto these top-level names.
PROFILE_COLUMNS: tuple[str, ...] = (
    "identities",
    "identityMap",
    "personalEmail",
    "person",
    "homeAddress",
    "segmentMembership",
)

DEFAULT_ROW_GROUP_ROWS = 65_536
# 2024-01-01T00:00:00Z: a fixed epoch keeps the bytes independent of when a file is built.
_BASE_TIME_MS = 1_704_067_200_000
_THIRTY_DAYS_MS = 30 * 24 * 3600 * 1000
_GOLDEN = 0x9E3779B97F4A7C15
_MIX = 0xBF58476D1CE4E5B9

_FIRST_NAMES = (
    "Ada",
    "Alan",
    "Grace",
    "Linus",
    "Margaret",
    "Dennis",
    "Barbara",
    "Ken",
    "Frances",
    "Edsger",
    "Radia",
    "Donald",
    "Hedy",
    "Tim",
    "Katherine",
    "Guido",
    "Sophie",
    "John",
    "Anita",
    "Niklaus",
)
_LAST_NAMES = (
    "Lovelace",
    "Turing",
    "Hopper",
    "Torvalds",
    "Hamilton",
    "Ritchie",
    "Liskov",
    "Thompson",
    "Allen",
    "Dijkstra",
    "Perlman",
    "Knuth",
    "Lamarr",
    "Berners-Lee",
    "Johnson",
    "van Rossum",
    "Wilson",
    "McCarthy",
    "Borg",
    "Wirth",
)
_CITIES = (
    ("San Jose", "US", "95110"),
    ("London", "GB", "EC1A 1BB"),
    ("Paris", "FR", "75001"),
    ("Berlin", "DE", "10115"),
    ("Tokyo", "JP", "100-0001"),
    ("Sydney", "AU", "2000"),
    ("Toronto", "CA", "M5H 2N2"),
    ("Madrid", "ES", "28001"),
    ("Lehi", "US", "84043"),
    ("Bucharest", "RO", "010011"),
)


@dataclass(frozen=True)
class ProfileFileSpec:
    """Everything that determines the bytes of one synthetic profile Parquet file."""

    rows: int
    first_row: int = 0
    seed: str = "all-profiles"
    segments: tuple[str, ...] = ()
    segment_ns: str = "ups"
    statuses: tuple[str, ...] = ("realized", "existing")
    columns: tuple[str, ...] = PROFILE_COLUMNS
    row_group_rows: int = DEFAULT_ROW_GROUP_ROWS
    _version: int = field(default=1, repr=False)

    def cache_key(self) -> str:
        """A stable cache file name for this spec."""
        digest = hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:24]
        return f"adobe-aep/profiles-{digest}.snappy.parquet"


def project_columns(fields: str | None) -> tuple[str, ...]:
    """Map an export job's ``fields`` (``identities.id,personalEmail.address``) to top-level columns.

    Projection is top-level only: ``identities.id`` keeps the whole ``identities`` column. Unknown
    names are ignored; if nothing known remains, every column is kept (sandbox choice: Adobe does
    not document what an export with only unknown fields produces).
    """
    if not fields:
        return PROFILE_COLUMNS
    wanted = {part.strip().split(".", 1)[0] for part in fields.split(",") if part.strip()}
    kept = tuple(c for c in PROFILE_COLUMNS if c in wanted)
    return kept or PROFILE_COLUMNS


def profile_schema(columns: tuple[str, ...] = PROFILE_COLUMNS) -> pa.Schema:
    """The Arrow schema of the synthetic profile rows (a subset of XDM Individual Profile)."""
    import pyarrow as pa

    qualification = pa.struct(
        [("status", pa.string()), ("lastQualificationTime", pa.timestamp("ms", tz="UTC"))]
    )
    all_fields = {
        "identities": pa.list_(
            pa.struct(
                [
                    ("id", pa.string()),
                    ("namespace", pa.struct([("code", pa.string())])),
                    ("primary", pa.bool_()),
                ]
            )
        ),
        "identityMap": pa.map_(
            pa.string(), pa.list_(pa.struct([("id", pa.string()), ("primary", pa.bool_())]))
        ),
        "personalEmail": pa.struct([("address", pa.string()), ("status", pa.string())]),
        "person": pa.struct([("name", pa.struct([("firstName", pa.string()), ("lastName", pa.string())]))]),
        "homeAddress": pa.struct(
            [("city", pa.string()), ("countryCode", pa.string()), ("postalCode", pa.string())]
        ),
        "segmentMembership": pa.map_(pa.string(), pa.map_(pa.string(), qualification)),
    }
    return pa.schema([(name, all_fields[name]) for name in columns])


def write_profiles(spec: ProfileFileSpec, out: IO[bytes]) -> dict[str, int]:
    """Stream the Parquet file described by ``spec`` into ``out``; return ``{"rows": n}``.

    ``out`` needs only ``write`` (and optionally ``flush``).
    """
    import pyarrow.parquet as pq

    schema = profile_schema(spec.columns)
    step = max(1, spec.row_group_rows)
    with pq.ParquetWriter(_WriteOnly(out), schema, compression="snappy") as writer:
        # One row group per chunk; an empty file still gets its schema (and one empty group).
        for start in range(0, max(spec.rows, 1), step):
            n = min(step, spec.rows - start)
            writer.write_table(_chunk(spec, spec.first_row + start, n, schema), row_group_size=max(n, 1))
    return {"rows": spec.rows}


class _WriteOnly(io.RawIOBase):
    """A writable raw stream over any object with ``write``.

    pyarrow wants a complete file object (``closed``, ``writable``...); the cache's hashing
    writer only has ``write``/``flush``. Closing this adapter leaves the wrapped object open.
    """

    def __init__(self, target: Any) -> None:
        super().__init__()
        self._target = target

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        view = memoryview(data)
        self._target.write(view)
        return view.nbytes

    def flush(self) -> None:
        if hasattr(self._target, "flush"):
            self._target.flush()


def _seed_int(seed: str) -> int:
    return int.from_bytes(hashlib.sha256(seed.encode()).digest()[:8], "little")


@functools.lru_cache(maxsize=16)
def _arange(n: int) -> Any:
    """``0, 1, ..., n-1`` as int64, built once per length (row groups repeat the same lengths)."""
    import pyarrow as pa

    return pa.Array.from_buffers(pa.int64(), n, [None, pa.py_buffer(array("q", range(n)))])


def _ints(start: int, n: int, step: int = 1, typecode: str = "q") -> Any:
    """An Arrow integer array ``start, start+step, ...`` without a per-element Python loop."""
    import pyarrow as pa
    import pyarrow.compute as pc

    arrow_type = {"q": pa.int64(), "i": pa.int32(), "Q": pa.uint64()}[typecode]
    values = _arange(n)
    if step != 1:
        values = pc.multiply(values, pa.scalar(step, pa.int64()))
    if start:
        values = pc.add(values.cast(arrow_type), pa.scalar(start, arrow_type))
    return values.cast(arrow_type)


def _chunk(spec: ProfileFileSpec, first: int, n: int, schema: pa.Schema) -> pa.Table:
    import pyarrow as pa
    import pyarrow.compute as pc

    u64 = pa.uint64()
    idx = _ints(first, n, typecode="Q")
    seeded = pc.add(idx, pa.scalar(_seed_int(spec.seed), u64))
    h1 = pc.multiply(seeded, pa.scalar(_GOLDEN, u64))
    h1 = pc.bit_wise_xor(h1, pc.shift_right(h1, pa.scalar(31, u64)))
    h2 = pc.multiply(h1, pa.scalar(_MIX, u64))
    h2 = pc.bit_wise_xor(h2, pc.shift_right(h2, pa.scalar(29, u64)))

    def pick(values: tuple[str, ...], h: Any, shift: int) -> Any:
        pos = pc.shift_right(h, pa.scalar(shift, u64))
        return pc.take(pa.array(values), pc.cast(_mod(pos, len(values)), pa.int64()))

    idx_str = pc.cast(idx, pa.string())
    first_name = pick(_FIRST_NAMES, h1, 3)
    last_name = pick(_LAST_NAMES, h1, 17)
    ecid = pc.binary_join_element_wise(pc.cast(h1, pa.string()), pc.cast(h2, pa.string()), "")
    email = pc.binary_join_element_wise(
        pc.utf8_lower(first_name),
        ".",
        pc.replace_substring(pc.utf8_lower(last_name), " ", ""),
        ".",
        idx_str,
        "@example.com",
        "",
    )

    columns: dict[str, Any] = {}
    true_n = _const(pa.array([True]), n)
    false_n = _const(pa.array([False]), n)
    if "identities" in spec.columns:
        ids = _interleave(ecid, email)
        codes = _interleave(_const(pa.array(["ECID"]), n), _const(pa.array(["Email"]), n))
        primary = _interleave(true_n, false_n)
        items = pa.StructArray.from_arrays(
            [ids, pa.StructArray.from_arrays([codes], names=["code"]), primary],
            names=["id", "namespace", "primary"],
        )
        columns["identities"] = pa.ListArray.from_arrays(_ints(0, n + 1, 2, "i"), items)
    if "identityMap" in spec.columns:
        keys = _interleave(_const(pa.array(["ECID"]), n), _const(pa.array(["Email"]), n))
        entries = pa.StructArray.from_arrays(
            [_interleave(ecid, email), _interleave(true_n, false_n)], names=["id", "primary"]
        )
        per_key = pa.ListArray.from_arrays(_ints(0, 2 * n + 1, 1, "i"), entries)
        columns["identityMap"] = pa.MapArray.from_arrays(_ints(0, n + 1, 2, "i"), keys, per_key)
    if "personalEmail" in spec.columns:
        columns["personalEmail"] = pa.StructArray.from_arrays(
            [email, _const(pa.array(["active"]), n)], names=["address", "status"]
        )
    if "person" in spec.columns:
        name = pa.StructArray.from_arrays([first_name, last_name], names=["firstName", "lastName"])
        columns["person"] = pa.StructArray.from_arrays([name], names=["name"])
    if "homeAddress" in spec.columns:
        city_idx = pc.cast(_mod(pc.shift_right(h2, pa.scalar(7, u64)), len(_CITIES)), pa.int64())
        columns["homeAddress"] = pa.StructArray.from_arrays(
            [pc.take(pa.array([c[i] for c in _CITIES]), city_idx) for i in range(3)],
            names=["city", "countryCode", "postalCode"],
        )
    if "segmentMembership" in spec.columns:
        columns["segmentMembership"] = _segment_membership(spec, n, h2)
    return pa.Table.from_arrays([columns[name] for name in schema.names], schema=schema)


def _segment_membership(spec: ProfileFileSpec, n: int, h: Any) -> Any:
    import pyarrow as pa
    import pyarrow.compute as pc

    u64 = pa.uint64()
    segments = spec.segments or ("sandbox-all-profiles",)
    k = len(segments)
    statuses = spec.statuses or ("realized", "existing")
    # One entry per requested segment for every profile: the export filtered on these segments.
    seg_keys = pc.take(pa.array(segments), _mod_index(n * k, k))
    hk = pc.take(h, pc.divide(_ints(0, n * k, 1, "q"), pa.scalar(k, pa.int64())))
    hk = pc.multiply(pc.add(hk, _ints(0, n * k, 1, "Q")), pa.scalar(_GOLDEN, u64))
    status = pc.take(pa.array(statuses), pc.cast(_mod(hk, len(statuses)), pa.int64()))
    age = pc.cast(_mod(pc.shift_right(hk, pa.scalar(11, u64)), _THIRTY_DAYS_MS), pa.int64())
    when = pc.cast(pc.subtract(pa.scalar(_BASE_TIME_MS, pa.int64()), age), pa.timestamp("ms", tz="UTC"))
    qualification = pa.StructArray.from_arrays([status, when], names=["status", "lastQualificationTime"])
    inner = pa.MapArray.from_arrays(_ints(0, n + 1, k, "i"), seg_keys, qualification)
    outer_keys = _const(pa.array([spec.segment_ns]), n)
    return pa.MapArray.from_arrays(_ints(0, n + 1, 1, "i"), outer_keys, inner)


def _mod(values: Any, m: int) -> Any:
    import pyarrow as pa
    import pyarrow.compute as pc

    u64 = pa.uint64()
    q = pc.divide(values, pa.scalar(m, u64))
    return pc.subtract(values, pc.multiply(q, pa.scalar(m, u64)))


def _mod_index(total: int, m: int) -> Any:
    import pyarrow as pa

    return _mod(_ints(0, total, 1, "Q"), m).cast(pa.int64())


def _const(single: Any, n: int) -> Any:

    return single.take(_ints(0, n, 0, "q")) if n else single.slice(0, 0)


def _interleave(a: Any, b: Any) -> Any:
    """``[a0, b0, a1, b1, ...]`` for two equally long arrays."""
    import pyarrow as pa
    import pyarrow.compute as pc

    n = len(a)
    both = pa.concat_arrays([a, b])
    order = pc.add(
        pc.divide(_ints(0, 2 * n, 1, "q"), pa.scalar(2, pa.int64())),
        pc.multiply(_mod_index(2 * n, 2), pa.scalar(n, pa.int64())),
    )
    return pc.take(both, order)
