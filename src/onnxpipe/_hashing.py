"""MurmurHash3 (x86, 32-bit) in numpy, vectorised over values.

It agrees bit for bit with ONNX Runtime's ``com.microsoft.MurmurHash3`` kernel, which the graphs
exported by the ``hash`` and ``one_hot_hash_encoding`` transforms use, and :func:`murmur_round` is
ML.NET's ``Hashing.MurmurRound`` (the per-slot seeds of ordered hashing).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from onnxpipe.errors import InvalidArgumentError

__all__ = ["murmur3_32", "murmur_round"]

_C1 = np.uint32(0xCC9E2D51)
_C2 = np.uint32(0x1B873593)
_M5 = np.uint32(5)
_N1 = np.uint32(0xE6546B64)
_F1 = np.uint32(0x85EBCA6B)
_F2 = np.uint32(0xC2B2AE35)
_MAX_CHUNK_BYTES = 1 << 22  # bytes of padded strings hashed at once


def _rotl(x: np.ndarray, r: int) -> np.ndarray:
    return np.asarray((x << np.uint32(r)) | (x >> np.uint32(32 - r)), dtype=np.uint32)


def _mix_k(k: np.ndarray) -> np.ndarray:
    return np.asarray(_rotl(np.asarray(k * _C1, dtype=np.uint32), 15) * _C2, dtype=np.uint32)


def _fmix(h: np.ndarray) -> np.ndarray:
    h = h ^ (h >> np.uint32(16))
    h = np.asarray(h * _F1, dtype=np.uint32)
    h = h ^ (h >> np.uint32(13))
    h = np.asarray(h * _F2, dtype=np.uint32)
    return np.asarray(h ^ (h >> np.uint32(16)), dtype=np.uint32)


def _murmur_words(words: np.ndarray, seeds: np.ndarray) -> np.ndarray:
    """MurmurHash3 x86 32 of fixed-size keys given as little-endian uint32 words ``[n, w]``."""
    h = np.array(np.broadcast_to(seeds, (words.shape[0],)), dtype=np.uint32)
    for j in range(words.shape[1]):
        h = h ^ _mix_k(words[:, j])
        h = np.asarray(_rotl(h, 13) * _M5 + _N1, dtype=np.uint32)
    return _fmix(h ^ np.uint32(4 * words.shape[1]))


def _murmur_bytes(encoded: Sequence[bytes], seeds: np.ndarray) -> np.ndarray:
    """MurmurHash3 x86 32 of byte strings, vectorised over strings of similar length."""
    n = len(encoded)
    out = np.zeros(n, dtype=np.uint32)
    seeds = np.array(np.broadcast_to(seeds, (n,)), dtype=np.uint32)
    lengths = np.fromiter((len(b) for b in encoded), dtype=np.int64, count=n)
    order = np.argsort(lengths, kind="stable")
    start = 0
    while start < n:
        # Rows sorted by length; one chunk pads to its longest string (plus a zero word for the tail).
        stop = start + 1
        while stop < n and (stop - start + 1) * (lengths[order[stop]] + 4) <= _MAX_CHUNK_BYTES:
            stop += 1
        rows = order[start:stop]
        lens = lengths[rows]
        width = (int(lens.max()) // 4 + 1) * 4
        if len(rows) <= _FEW_ROWS and width > 64:
            # A few long strings: one numpy call per 4 bytes would cost ~20 us each (a minute for
            # 10 MB); the sequential chain is cheaper in Python ints.
            for i in rows:
                out[i] = _murmur_long(encoded[i], int(seeds[i]))
            start = stop
            continue
        buf = np.zeros((len(rows), width), dtype=np.uint8)
        buf[np.arange(width) < lens[:, None]] = np.frombuffer(b"".join(encoded[i] for i in rows), dtype=np.uint8)
        words = buf.view("<u4")
        nblocks = lens // 4
        h = seeds[rows].copy()
        for j in range(width // 4 - 1):
            mixed = np.asarray(_rotl(h ^ _mix_k(words[:, j]), 13) * _M5 + _N1, dtype=np.uint32)
            h = np.where(nblocks > j, mixed, h)
        tail = words[np.arange(len(rows)), nblocks]  # the zero padding clears bytes beyond the end
        h = np.where((lens & 3) > 0, h ^ _mix_k(tail), h)
        out[rows] = _fmix(h ^ lens.astype(np.uint32))
        start = stop
    return out


_FEW_ROWS = 16  # below this many strings per chunk, each long string is hashed on its own


def _murmur_long(data: bytes, seed: int) -> int:
    """MurmurHash3 x86 32 of one byte string: the word mixing vectorised, the chain in Python."""
    nblocks = len(data) // 4
    h = seed
    for k in _mix_k(np.frombuffer(data, dtype="<u4", count=nblocks)).tolist():
        h ^= k
        h = ((((h << 13) | (h >> 19)) & 0xFFFFFFFF) * 5 + 0xE6546B64) & 0xFFFFFFFF
    tail = data[nblocks * 4 :]
    if tail:
        h ^= int(_mix_k(np.frombuffer(tail.ljust(4, b"\0"), dtype="<u4"))[0])
    return int(_fmix(np.array([h ^ (len(data) & 0xFFFFFFFF)], dtype=np.uint32))[0])


def murmur3_32(values: np.ndarray | Sequence[Any], seed: int | np.ndarray = 0) -> np.ndarray:
    """MurmurHash3 x86 32-bit of each element, as ONNX Runtime's ``com.microsoft.MurmurHash3``
    computes it: strings hash their UTF-8 bytes, numbers their little-endian bytes (4 or 8).
    ``seed`` is one seed or one per element."""
    arr = np.asarray(values)
    flat = arr.reshape(-1)
    seeds = np.asarray(seed, dtype=np.uint64).astype(np.uint32).reshape(-1)
    if seeds.size not in (1, flat.size):
        raise InvalidArgumentError(f"murmur3_32: {seeds.size} seeds for {flat.size} values")
    if flat.dtype.kind in "OUS":
        encoded = [v.encode("utf-8") if isinstance(v, str) else bytes(v) for v in flat.tolist()]
        return _murmur_bytes(encoded, seeds).reshape(arr.shape)
    if flat.dtype.itemsize not in (4, 8):
        raise InvalidArgumentError(f"murmur3_32 hashes 4- and 8-byte numbers, got {flat.dtype}")
    little = flat.astype(flat.dtype.newbyteorder("<"), copy=False)
    words = np.ascontiguousarray(little).view("<u4").reshape(len(flat), -1)
    return _murmur_words(words, seeds).reshape(arr.shape)


def murmur_round(h: int, k: int) -> int:
    """One MurmurHash3 body round on 32-bit values (ML.NET's ``Hashing.MurmurRound``)."""
    k = (k * 0xCC9E2D51) & 0xFFFFFFFF
    k = ((k << 15) | (k >> 17)) & 0xFFFFFFFF
    k = (k * 0x1B873593) & 0xFFFFFFFF
    h ^= k
    h = ((h << 13) | (h >> 19)) & 0xFFFFFFFF
    return (h * 5 + 0xE6546B64) & 0xFFFFFFFF
