"""An on-disk table of strings (document or entity ids), opened with memory maps.

Lookups need no load step, which is what lets an index open in milliseconds at any size:
`hash.npy` holds a 64-bit hash (FNV-1a over code points, vectorized) of every string in
sorted order and `order.npy` the string's position; a lookup is a binary search plus a comparison with the stored bytes, so a hash
collision can never return a wrong string.
"""

from __future__ import annotations

import mmap
from collections.abc import Sequence
from pathlib import Path

import numpy as np

_FNV_OFFSET = np.uint64(0xCBF29CE484222325)
_FNV_PRIME = np.uint64(0x100000001B3)
_CHUNK_ROWS = 1 << 18
_MAX_VECTOR_WIDTH = 512


def _fnv_python(s: str) -> int:
    h = int(_FNV_OFFSET)
    for ch in s.rstrip("\x00"):  # as numpy's str arrays, which drop trailing NULs
        h = ((h ^ ord(ch)) * int(_FNV_PRIME)) & 0xFFFFFFFFFFFFFFFF
    return h


def hash_strings(strings: Sequence[str]) -> np.ndarray:
    """64-bit FNV-1a hashes of strings (over code points), vectorized with numpy."""
    out = np.empty(len(strings), dtype=np.uint64)
    for start in range(0, len(strings), _CHUNK_ROWS):
        part = list(strings[start:start + _CHUNK_ROWS])
        if max(map(len, part), default=0) > _MAX_VECTOR_WIDTH:  # rare very long ids
            out[start:start + len(part)] = [_fnv_python(s) for s in part]
            continue
        arr = np.array(part, dtype=str)
        width = arr.dtype.itemsize // 4
        points = arr.view(np.uint32).reshape(len(part), width).astype(np.uint64)
        lengths = np.char.str_len(arr)
        h = np.full(len(part), _FNV_OFFSET, dtype=np.uint64)
        with np.errstate(over="ignore"):
            for col in range(width):
                stepped = (h ^ points[:, col]) * _FNV_PRIME
                np.copyto(h, stepped, where=lengths > col)
        out[start:start + len(part)] = h
    return out


def _encode_all(strings: Sequence[str]) -> tuple[bytes, np.ndarray]:
    """UTF-8 bytes of all strings back to back, and the n + 1 offsets."""
    blob = "".join(strings).encode("utf-8")
    lengths = np.fromiter(map(len, strings), dtype=np.uint64, count=len(strings))
    if len(blob) != int(lengths.sum()):  # some non-ASCII: byte lengths differ from char lengths
        encoded = [s.encode("utf-8") for s in strings]
        lengths = np.fromiter(map(len, encoded), dtype=np.uint64, count=len(encoded))
    offsets = np.zeros(len(strings) + 1, dtype=np.uint64)
    np.cumsum(lengths, out=offsets[1:])
    return blob, offsets


def write_strings(folder: Path, name: str, strings: Sequence[str]) -> list[str]:
    """Write `strings` as table `name` in `folder`; return the strings that occur more than once."""
    blob, offsets = _encode_all(strings)
    with open(folder / f"{name}.bin", "wb") as handle:
        handle.write(blob)
    hashes = hash_strings(strings)
    order = np.argsort(hashes, kind="stable").astype(np.uint32)
    sorted_hashes = hashes[order]
    np.save(folder / f"{name}.off.npy", offsets)
    np.save(folder / f"{name}.hash.npy", sorted_hashes)
    np.save(folder / f"{name}.order.npy", order)
    duplicates = []
    for i in np.flatnonzero(sorted_hashes[1:] == sorted_hashes[:-1]).tolist():
        # equal hashes: a duplicate string, or (rarely) two strings that collide
        if strings[order[i]] == strings[order[i + 1]]:
            duplicates.append(strings[order[i]])
    return duplicates


class StringTable:
    """Read side of `write_strings`: `table[i]` is the i-th string, `table.find(s)` its position."""

    def __init__(self, folder: Path, name: str):
        # Plain ndarray views of the memory maps: element access without np.memmap's overhead.
        self._offsets = np.asarray(np.load(folder / f"{name}.off.npy", mmap_mode="r", allow_pickle=False))
        self._hashes = np.asarray(np.load(folder / f"{name}.hash.npy", mmap_mode="r", allow_pickle=False))
        self._order = np.asarray(np.load(folder / f"{name}.order.npy", mmap_mode="r", allow_pickle=False))
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
        wanted = hash_strings(strings)
        n = len(self._hashes)
        starts = np.searchsorted(self._hashes, wanted)
        at = np.minimum(starts, n - 1)
        hit = self._hashes[at] == wanted
        candidates = self._order[at].astype(np.int64)
        begins = self._offsets[candidates].tolist()
        ends = self._offsets[candidates + 1].tolist()
        blob = self._blob
        found: list[int | None] = []
        rows = zip(strings, hit.tolist(), candidates.tolist(), begins, ends, starts.tolist(), wanted.tolist())
        for s, ok, j, b, e, i, h in rows:
            if not ok:
                found.append(None)
                continue
            data = s.encode("utf-8")
            if blob[b:e] == data:
                found.append(j)
                continue
            found.append(None)  # a hash collision with another string: look at the rest of the run
            i += 1
            while i < n and int(self._hashes[i]) == h:
                k = int(self._order[i])
                if self.raw(k) == data:
                    found[-1] = k
                    break
                i += 1
        return found

    def close(self) -> None:
        if isinstance(self._blob, mmap.mmap):
            self._blob.close()
        self._file.close()
