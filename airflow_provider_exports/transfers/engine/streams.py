"""Byte streams of export files: gzip undone as the chunks pass (bounded against gzip bombs), and
an iterator of chunks read as a file.

Gzip is inflated by ISA-L (``isal``, zlib's API): 3-4 times as fast as zlib on export files
(``benchmarks/gunzip.py`` measures zlib, ISA-L and zlib-ng side by side).

:func:`re2_search` looks into a chunk with pyarrow's RE2, in place and without the GIL;
:func:`has_module` says whether an optional library (pyarrow, pgpq) is there to do so.

Every sink and reader takes a file as an iterator of byte chunks; these keep it that way: nothing
here holds more than a chunk (or ``out_size`` inflated bytes) at a time.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator
from typing import Any

from airflow_provider_exports.exceptions import TransferError
from airflow_provider_exports.utils import limits

_GZIP_MAGIC = b"\x1f\x8b"


def gunzip(chunks: Iterable[bytes], *, name: str = "the file") -> Iterator[bytes]:
    """Decompress a gzip stream (several members allowed) without inflating more than
    1 MiB at a time, so a small chunk of a very compressible file stays small.

    A gzip bomb stops: past :data:`limits.DECOMPRESSION_FLOOR` inflated bytes, the stream may
    inflate to at most :data:`limits.DECOMPRESSION_RATIO` times the compressed bytes consumed so
    far (:class:`LimitExceeded`, naming ``name``).
    """
    from isal import isal_zlib

    ratio = limits.DECOMPRESSION_RATIO.value
    d = isal_zlib.decompressobj(wbits=31)
    fed = False
    consumed = inflated = 0
    try:
        for chunk in chunks:
            data = chunk
            while data:
                fed = True
                out = d.decompress(data, 1 << 20)
                rest = d.unused_data if d.eof else d.unconsumed_tail
                consumed += len(data) - len(rest)
                if out:
                    inflated += len(out)
                    if inflated > limits.DECOMPRESSION_FLOOR and inflated > ratio * consumed:
                        raise limits.DECOMPRESSION_RATIO.exceeded(
                            name,
                            f"{consumed:,} compressed bytes inflated to {inflated:,} "
                            f"({inflated // max(consumed, 1):,} times as many; a gzip bomb?)",
                            ratio,
                        )
                    yield out
                if d.eof:
                    d, fed = isal_zlib.decompressobj(wbits=31), False
                data = rest
    except isal_zlib.error as exc:  # type: ignore[misc]  # isal's stub types it as an instance
        raise TransferError(f"{name} is not valid gzip: {exc}") from None
    if fed and not d.eof:
        raise TransferError(f"{name} ended before its gzip end marker (truncated, or not valid gzip)")


def maybe_gunzip(chunks: Iterable[bytes], *, name: str = "the file") -> Iterator[bytes]:
    """The stream, decompressed (:func:`gunzip`) if it starts with the gzip magic bytes, else unchanged."""
    it = iter(chunks)
    head = b""
    for chunk in it:
        head += chunk
        if len(head) >= 2:
            break
    if not head:
        return iter(())

    def rest() -> Iterator[bytes]:
        yield head
        yield from it

    return gunzip(rest(), name=name) if head[:2] == _GZIP_MAGIC else rest()


class ChunkReader(io.RawIOBase):
    """A read-only, non-seekable file over an iterator of byte chunks."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._it = iter(chunks)
        self._buf = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        while not self._buf:
            chunk = next(self._it, None)
            if chunk is None:
                return 0
            self._buf = memoryview(chunk)
        n = min(len(b), len(self._buf))
        b[:n] = self._buf[:n]
        self._buf = self._buf[n:]
        return n


def has_module(name: str) -> bool:
    """Whether the optional library ``name`` can be imported (found, not imported)."""
    import importlib.util

    return importlib.util.find_spec(name) is not None


def re2_search(data: bytes, pattern: str) -> bool:
    """Whether pyarrow's RE2, which lets go of the GIL, finds ``pattern`` in ``data`` (read in place,
    as one binary value: no copy)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    offsets = pa.array([0, len(data)], pa.int64()).buffers()[1]
    as_one_value = pa.Array.from_buffers(pa.large_binary(), 1, [None, offsets, pa.py_buffer(data)])
    return bool(pc.match_substring_regex(as_one_value, pattern)[0].as_py())
