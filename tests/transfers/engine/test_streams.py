"""Byte streams: gzip undone as it streams, and the bound on what it inflates."""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Iterator

import pytest

from airflow_provider_exports.exceptions import LimitExceeded, TransferError
from airflow_provider_exports.transfers.engine.streams import gunzip, maybe_gunzip
from airflow_provider_exports.utils import limits


def _chunks(data: bytes, size: int = 7) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def test_gunzip_handles_several_members_and_small_chunks():
    data = gzip.compress(b"hello ") + gzip.compress(b"world\n")
    assert b"".join(gunzip(_chunks(data, 3))) == b"hello world\n"


def test_gunzip_bounds_each_output_piece():
    bomb = gzip.compress(b"\0" * (8 << 20))
    assert max(len(piece) for piece in gunzip([bomb])) <= 1 << 20


def test_gunzip_notices_a_truncated_file():
    data = gzip.compress(b"x" * 10_000)
    with pytest.raises(TransferError, match="truncated"):
        b"".join(gunzip([data[:-12]]))
    with pytest.raises(TransferError, match="not valid gzip"):
        b"".join(gunzip([b"\x1f\x8b\x08garbage-garbage"]))


MIB = 1 << 20


def _gzip_of_zeros(inflated: int) -> Iterator[bytes]:
    """A gzip stream of ``inflated`` zero bytes (1 GiB is about 1 MiB of it), compressed as it is
    read: the test never holds the inflated bytes, nor all of the compressed ones."""
    packer = zlib.compressobj(6, zlib.DEFLATED, 31)
    zeros = bytes(MIB)
    for _ in range(inflated // MIB):
        if out := packer.compress(zeros):
            yield out
    yield packer.flush()


def test_a_gzip_bomb_stops_past_the_floor_at_the_ratio():
    inflated = 0
    with pytest.raises(LimitExceeded) as refused:
        for piece in gunzip(_gzip_of_zeros(1 << 30)):
            inflated += len(piece)

    assert refused.value.limit == "max_decompression_ratio" and refused.value.value == 250
    assert "AIRFLOW__EXPORTS__MAX_DECOMPRESSION_RATIO" in str(refused.value)
    # it stopped within a piece of the floor, not at 1 GiB
    assert inflated <= limits.DECOMPRESSION_FLOOR + MIB


def test_a_gzip_bomb_stops_behind_maybe_gunzip_too_and_is_named():
    with pytest.raises(LimitExceeded, match=r"^part-00000\.json\.gz: .* compressed bytes inflated to"):
        for _ in maybe_gunzip(_gzip_of_zeros(1 << 30), name="part-00000.json.gz"):
            pass


def test_a_raised_decompression_ratio_lets_a_very_compressible_file_through(monkeypatch):
    monkeypatch.setenv("AIRFLOW__EXPORTS__MAX_DECOMPRESSION_RATIO", "5000")  # zeros inflate ~1030 times
    assert sum(map(len, gunzip(_gzip_of_zeros(limits.DECOMPRESSION_FLOOR + 8 * MIB)))) == (
        limits.DECOMPRESSION_FLOOR + 8 * MIB
    )


def test_maybe_gunzip_passes_plain_bytes_through():
    assert b"".join(maybe_gunzip([b"a", b"bc"])) == b"abc"
    assert b"".join(maybe_gunzip(_chunks(gzip.compress(b"abc"), 1))) == b"abc"
    assert list(maybe_gunzip([])) == []
