"""Flat, memory-mappable structures behind `KnowledgeBase` (format 4), and their kernels.

Everything is a numpy array of plain numbers, saved as `.npy` and opened with
`np.load(..., mmap_mode="r", allow_pickle=False)`: nothing in a knowledge-base folder can run
code, opening it reads no more than a few headers, and worker processes share the pages
through the page cache instead of holding copies.

- Strings (`StringColumn`): one UTF-8 blob (`uint8`) and offsets (`int64`, n + 1).
- String lookup (`StringTable`): an open-addressing hash table (`int64` slot -> string index,
  `uint64` slot -> hash; FNV-1a over the UTF-8 bytes, linear probing) whose hits are checked
  byte by byte against the strings, so a lookup is exact.
- The alias matcher (`KeyMatcher`): the alias keys (normalized alias variants, see
  `entity_linking._normalize`) with their packed values, and a hash table of every key *and
  every word prefix of a key* ("new york" for "new york city"). A scan starts at each word of
  the normalized text and extends word by word while the text so far is a prefix of some key,
  reporting each extension that is a key: the same spans, in the same order, as the
  Aho-Corasick automaton of format 1 found with the keys padded by spaces. The table is one
  `uint64` array of two-word rows (hash, then key, length and flags; see
  `_kernels.prefix_table`), so a probe reads one cache line, and the scan first reads every
  word's home slot in a loop without dependencies between words, so that the processor
  overlaps their cache misses.

`KeyMatcher.link_spans` runs the scan and `Linker`'s rules up to the choice among an ambiguous
mention's candidates in one kernel call per text; what the rules need to know of a character
(`str.islower`, `str.isspace`, `punctuation_shape`) comes from `CharProps`, a table filled from
those Python functions on first sight of each character, so the kernel decides as Python does.

The kernels (`entity_linking.kb._kernels`) are compiled with numba on first use and cached.
"""

from __future__ import annotations

import numpy as np

_KERNELS: dict = {}
_PUNCTUATED = 1 << 13  # see `entity_linking.kb._kb._pack`


def kernels() -> dict:
    """The compiled kernels (`entity_linking.kb._kernels`, imported on first call)."""
    if not _KERNELS:
        from entity_linking.kb import _kernels as k

        _KERNELS.update(fnv=k.fnv, dedupe=k.dedupe, lookup=k.lookup, prefix_table=k.prefix_table, scan=k.scan,
                        key_lookup=k.key_lookup, gather=k.gather, char_lengths=k.char_lengths,
                        check_rows=k.check_rows, group_shares=k.group_shares, contexts=k.contexts,
                        link_spans=k.link_spans)
    return _KERNELS


def table_size(n: int) -> int:
    """A power of two at least twice `n` (load factor <= 0.5)."""
    size = 8
    while size < 2 * n:
        size *= 2
    return size


class StringColumn:
    """A read-only sequence of strings over a UTF-8 blob and offsets (arrays or memory maps)."""

    __slots__ = ("blob", "offsets", "_blob", "_off", "_n")

    def __init__(self, blob: np.ndarray, offsets: np.ndarray):
        self.blob = blob
        self.offsets = offsets
        # memoryviews index in C without numpy scalars: a string costs well under a microsecond
        self._blob = memoryview(blob) if len(blob) else memoryview(b"")
        self._off = memoryview(offsets).cast("B").cast("q") if len(offsets) else memoryview(b"").cast("q")
        self._n = len(offsets) - 1

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(self._n))]
        if i < 0:
            i += self._n
        if not 0 <= i < self._n:
            raise IndexError(i)
        return self.get_unchecked(i)

    def get_unchecked(self, i: int) -> str:
        """`self[i]` for an index known to be in range (`0 <= i < len(self)`), e.g. an entity
        index from the knowledge base's own arrays (checked when the folder was opened)."""
        off = self._off
        return str(self._blob[off[i]:off[i + 1]], "utf-8")

    def __iter__(self):
        return (self[i] for i in range(self._n))

    @staticmethod
    def build(strings) -> tuple[np.ndarray, np.ndarray]:
        """(blob, offsets) of a list of strings."""
        encoded = [s.encode("utf-8") for s in strings]
        offsets = np.zeros(len(encoded) + 1, np.int64)
        np.cumsum([len(b) for b in encoded], out=offsets[1:])
        return np.frombuffer(b"".join(encoded), np.uint8).copy(), offsets


class StringTable:
    """Exact lookup of a string's index in a `StringColumn` through a hash table."""

    __slots__ = ("column", "tab", "tab_hash")

    def __init__(self, column: StringColumn, tab: np.ndarray, tab_hash: np.ndarray):
        self.column = column
        self.tab = tab
        self.tab_hash = tab_hash

    def index(self, s: str) -> int:
        """The index of `s`, or -1."""
        query = np.frombuffer(s.encode("utf-8"), np.uint8)
        return int(kernels()["lookup"](self.column.blob, self.column.offsets, self.tab, self.tab_hash, query))

    @staticmethod
    def build(blob: np.ndarray, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(uid per string, table, table hashes); uid[i] != i means string i repeats an earlier one."""
        uid, _, tab, tab_hash = kernels()["dedupe"](blob, offsets, table_size(len(offsets) - 1))
        return uid, tab, tab_hash


class KeyMatcher:
    """The alias keys, their packed values and the prefix table; `find` scans a text."""

    ARRAYS = ("key_blob", "key_off", "key_val", "t_rows", "shape_keys", "shape_off", "shape_blob")

    def __init__(self, arrays: dict[str, np.ndarray]):
        for name in self.ARRAYS:
            setattr(self, name, arrays[name])
        self._out = np.empty((256, 4), np.int64)
        self._chosen = np.empty((256, 3), np.int64)
        self._dropped = np.empty((256, 3), np.int64)
        self._final = np.empty((512, 3), np.int64)
        self._scan = None
        self._link_spans = None
        self.shape_at: dict[str, int] = {}
        """Punctuated keys found by `find` -> their position in `shape_keys` (bounded): the
        linker checks the punctuation of exactly these spans next (`KnowledgeBase._shapes_of`)."""

    def arrays(self) -> dict[str, np.ndarray]:
        return {name: getattr(self, name) for name in self.ARRAYS}

    def __len__(self) -> int:
        return len(self.key_off) - 1

    def find(self, norm: str) -> list:
        """Candidate spans `[start, end, value]` of a normalized text, sorted by end, longer first."""
        scan = self._scan
        if scan is None:
            scan = self._scan = kernels()["scan"]
        raw = norm.encode("utf-8")
        text = np.frombuffer(raw, np.uint8)
        out = self._out
        if len(out) < len(raw) // 4 + 16:
            out = self._out = np.empty((len(raw) // 4 + 16, 4), np.int64)
        while True:
            count = scan(text, self.key_blob, self.key_off, self.key_val, self.t_rows, self.shape_keys,
                         len(raw) == len(norm), out)
            if count >= 0:
                break
            out = self._out = np.empty((2 * len(out), 4), np.int64)
        spans = out[:count, :3].tolist()
        shape_at = None
        for i, span in enumerate(spans):
            if span[2] & _PUNCTUATED:
                if shape_at is None:
                    shape_at = self.shape_at
                    if len(shape_at) > 100_000:
                        shape_at.clear()
                shape_at[norm[span[0]:span[1]]] = int(out[i, 3])
        return spans

    def link_spans(self, text: str, norm: str, min_chars: int, smart: bool, qualifiers: bool, width: int,
                   prior_weight: float, context_arrays: tuple) -> tuple:
        """`Linker`'s rules up to disambiguation over `norm` (the normalized `text`) in one
        kernel (`_kernels.link_spans`): returns the mentions, rows `[start, end, entity index or
        -1 - group]` in text order, and for those with a group, in order, `contexts`' lists
        `(off, candidates, priors, context)` (see `KnowledgeBase.contexts`, whose arrays are
        `context_arrays`)."""
        global _CHAR_PROPS
        run = self._link_spans
        if run is None:
            run = self._link_spans = kernels()["link_spans"]
        props = _CHAR_PROPS
        if props is None:
            props = _CHAR_PROPS = CharProps()
        raw = norm.encode("utf-8")
        orig = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), np.uint32)
        n = len(raw)
        if len(self._out) < n // 4 + 16:
            self._out = np.empty((n // 4 + 16, 4), np.int64)
        while True:
            out = self._out
            if len(self._chosen) < len(out):
                self._chosen = np.empty((len(out), 3), np.int64)
                self._dropped = np.empty((len(out), 3), np.int64)
                self._final = np.empty((2 * len(out), 3), np.int64)
            count, off, candidates, priors, context = run(
                orig, np.frombuffer(raw, np.uint8), self.key_blob, self.key_off, self.key_val, self.t_rows,
                self.shape_keys, self.shape_off, self.shape_blob, props.table, min_chars, smart, qualifiers, width,
                prior_weight, *context_arrays, out, self._chosen, self._dropped, self._final, props.missing(len(orig)))
            if count >= 0:
                return (self._final[:count].tolist(), off.tolist(), candidates.tolist(), priors.tolist(),
                        context.tolist())
            if count == -2:
                props.fill(int(off[0]))
            else:
                self._out = np.empty((2 * len(out), 4), np.int64)

    def get(self, key: str, default=None):
        """The packed value of a key (a normalized alias variant, no padding), or `default`."""
        k = self.index(key)
        return default if k < 0 else int(self.key_val[k])

    def index(self, key: str) -> int:
        """Index of a key, or -1."""
        query = np.frombuffer(key.encode("utf-8"), np.uint8)
        return int(kernels()["key_lookup"](self.key_off, self.key_blob, self.t_rows, query))


class CharProps:
    """What the kernels need to know of a character to apply `Linker.resolve`'s rules as the
    Python code does (`str.islower`, `punctuation_shape`), one `int32` per code point, filled
    on first sight of a character (bits: see `_kernels.KNOWN`): a table of every code point,
    whose untouched pages take no memory."""

    def __init__(self):
        self.table = np.zeros(0x110000, np.int32)
        self._missing = np.zeros(64, np.uint32)
        self.fill(np.arange(128, dtype=np.uint32))

    def missing(self, n: int) -> np.ndarray:
        """The buffer the kernel lists unknown characters in (at least `n` long)."""
        if len(self._missing) < n:
            self._missing = np.zeros(n, np.uint32)
        return self._missing

    def fill(self, codes) -> None:
        """Learn the characters `codes` (an array, or the count of those in `missing`)."""
        from entity_linking._normalize import punctuation_shape
        from entity_linking.kb import _kernels as k

        if isinstance(codes, int):
            codes = self._missing[:codes]
        for code in set(codes.tolist()):
            c = chr(code)
            shape = punctuation_shape(c)
            value = int(k.KNOWN)
            if shape:
                value |= int(k.PUNCT) | ord(shape[0])
            if c.islower():
                value |= int(k.LOWER)
            if not ("a" + c).islower():  # upper or title case: a span with it is not lower case
                value |= int(k.NOT_LOWER)
            if c.isspace():
                value |= int(k.SPACE)
            self.table[code] = value


_CHAR_PROPS: CharProps | None = None  # one per process, made on first use
