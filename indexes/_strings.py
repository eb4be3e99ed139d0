"""An on-disk table of strings (document or entity ids), opened with memory maps.

Lookups need no load step, which is what lets an index open in milliseconds at any size:
`hash.npy` holds a 64-bit hash of every string in sorted order and `order.npy` the string's
position; a lookup is a binary search plus a comparison with the stored bytes, so a hash
collision can never return a wrong string.
"""

from __future__ import annotations

import mmap
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np


def string_hash(data: bytes) -> int:
    """64-bit hash of a UTF-8 string: CRC-32 and Adler-32 side by side (fast, C-implemented)."""
    return (zlib.crc32(data) << 32) | zlib.adler32(data)


def write_strings(folder: Path, name: str, strings: Sequence[str]) -> list[str]:
    """Write `strings` as table `name` in `folder`; return the strings that occur more than once."""
    encoded = [s.encode("utf-8") for s in strings]
    lengths = np.fromiter((len(b) for b in encoded), dtype=np.uint64, count=len(encoded))
    offsets = np.zeros(len(encoded) + 1, dtype=np.uint64)
    np.cumsum(lengths, out=offsets[1:])
    with open(folder / f"{name}.bin", "wb") as handle:
        handle.write(b"".join(encoded))
    hashes = np.fromiter((string_hash(b) for b in encoded), dtype=np.uint64, count=len(encoded))
    order = np.argsort(hashes, kind="stable").astype(np.uint32)
    sorted_hashes = hashes[order]
    np.save(folder / f"{name}.off.npy", offsets)
    np.save(folder / f"{name}.hash.npy", sorted_hashes)
    np.save(folder / f"{name}.order.npy", order)
    duplicates = []
    same = np.flatnonzero(sorted_hashes[1:] == sorted_hashes[:-1])
    for i in same:  # equal hashes: a duplicate string, or (rarely) a collision of two strings
        a, b = encoded[order[i]], encoded[order[i + 1]]
        if a == b:
            duplicates.append(a.decode("utf-8"))
    return duplicates


class StringTable:
    """Read side of `write_strings`: `table[i]` is the i-th string, `table.find(s)` its position."""

    def __init__(self, folder: Path, name: str):
        self._offsets = np.load(folder / f"{name}.off.npy", mmap_mode="r")
        self._hashes = np.load(folder / f"{name}.hash.npy", mmap_mode="r")
        self._order = np.load(folder / f"{name}.order.npy", mmap_mode="r")
        self._file = open(folder / f"{name}.bin", "rb")
        size = int(self._offsets[-1])
        self._blob: mmap.mmap | bytes = (
            mmap.mmap(self._file.fileno(), 0, access=mmap.ACCESS_READ) if size else b"")

    def __len__(self) -> int:
        return len(self._offsets) - 1

    def raw(self, i: int) -> bytes:
        return self._blob[int(self._offsets[i]):int(self._offsets[i + 1])]

    def __getitem__(self, i: int) -> str:
        return self.raw(i).decode("utf-8")

    def find(self, s: str) -> int | None:
        """Position of `s`, or None."""
        return self.find_many([s])[0]

    def find_many(self, strings: Sequence[str]) -> list[int | None]:
        """Positions of many strings at once (one vectorized binary search)."""
        if not strings or not len(self):
            return [None] * len(strings)
        encoded = [s.encode("utf-8") for s in strings]
        wanted = np.fromiter((string_hash(b) for b in encoded), dtype=np.uint64, count=len(encoded))
        starts = np.searchsorted(self._hashes, wanted)
        found: list[int | None] = []
        n = len(self._hashes)
        for data, h, i in zip(encoded, wanted.tolist(), starts.tolist()):
            hit = None
            while i < n and int(self._hashes[i]) == h:
                j = int(self._order[i])
                if self.raw(j) == data:
                    hit = j
                    break
                i += 1
            found.append(hit)
        return found

    def close(self) -> None:
        if isinstance(self._blob, mmap.mmap):
            self._blob.close()
        self._file.close()
