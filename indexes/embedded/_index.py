"""The embedded backend: an on-disk index folder, no server.

Chosen by measurement (docs/benchmarks.md, `ltprobe bench count`): a hybrid.
- Counts: one compressed roaring bitmap of document numbers per entity (`pyroaring`), the
  original study's per-entity document sets in a faster form. A pair count is one
  `intersection_cardinality`; tantivy conjunctive queries on an entity keyword field were
  about 10 times slower per count on the same data (`ltprobe bench count --compare-tantivy`,
  300,000 documents: 1,820 vs 18,154 counts/s on a shared machine).
- Text: documents' full text in a flat file with offsets (`get_text`, `ltprobe docs`).
- Retrieval: passages of about 100 words with our own exact BM25 (Lucene's formula) over a
  term -> passage inverted index of flat memory-mapped arrays, searched with MaxScore in
  numpy (issue 6: tantivy-py could not prune, docs/benchmarks.md); hits are read by passage
  number from a flat passage store.

Folder layout (format version `FORMAT_VERSION`):
`index.json`, `docs.*` (document ids, a `StringTable`), `entities.*` (entity ids),
`postings.bin` + `postings.off.npy` (per entity, in entity order: a serialized roaring bitmap,
or for entities in fewer than `RAW_POSTINGS_BELOW` documents a little-endian uint32 array),
`df.npy` (document frequency per entity), `text.bin` + `text.off.npy`, `passages/`
(`terms.*`: the vocabulary, a `StringTable` by term number; two postings lists per term,
list 2 t for its passages with tf >= 2 and 2 t + 1 for tf = 1: `postings.off.npy` (int64, the
start of each list, 2 n_terms + 1), `postings.docs.npy` (uint32 passage numbers, sorted within
a list), `postings.impact.npy` (float32 BM25 tf part of each posting), `postings.max_impact.npy`
(per list), `postings.bitmap_row.npy` (per list, its row in `postings.bitmap.npy` and
`postings.rank.npy`, or -1: lists of at least n / 32 passages have a bitmap over passage
numbers and per 64-bit word the count of bits before it); `bm25.json` (passages, average
length, k1, b);
`doc_ids.*`, `passage_ids.*`, `passage_text.*`: per passage number, `.bin` + `.off.npy`).
Version 1 kept the passages in tantivy's doc store, version 2 searched them with tantivy.
"""

from __future__ import annotations

import json
import mmap
import os
import shutil
import tempfile
import threading
import time
from array import array
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from entity_linking.faults import fault_point
from entity_linking.io import InputError, SkipCounter, disk_errors, remove_leftovers, write_json
from indexes._base import INDEX_INFO, DocumentIndex, Passage, check_version, read_index_info
from indexes._text import (
    iter_corpus,
    iter_texts,
    keep_token,
    query_terms,
    raw_tokens,
    reader_fields,
    split_passages,
)
from indexes.embedded._strings import StringTable, write_strings

FORMAT_VERSION = 3
"""Version of the embedded index folder layout; an index of another version is refused."""

_MAX_DOCS = 2**32 - 1  # document numbers are uint32 (roaring bitmaps)

RAW_POSTINGS_BELOW = 128
"""Entities in fewer documents keep a plain sorted uint32 array (4 bytes a document) instead
of a serialized roaring bitmap, whose per-container headers cost more for sparse sets."""


class _FlatWriter:
    """Strings appended to `NAME.bin`, with their n + 1 byte offsets in `NAME.off.npy`."""

    def __init__(self, folder: Path, name: str):
        self._path = folder / name
        self._file = open(folder / f"{name}.bin", "wb")
        self._offsets = array("Q", [0])

    def add(self, value: str) -> None:
        data = value.encode("utf-8")
        self._file.write(data)
        self._offsets.append(self._offsets[-1] + len(data))

    def close(self) -> None:
        self._file.close()
        np.save(f"{self._path}.off.npy", np.frombuffer(self._offsets, dtype=np.uint64))


class _FlatReader:
    """Read side of `_FlatWriter`: string number i, from memory maps."""

    def __init__(self, folder: Path, name: str):
        self._offsets = np.asarray(np.load(folder / f"{name}.off.npy", mmap_mode="r", allow_pickle=False))
        self._file = open(folder / f"{name}.bin", "rb")
        size = int(self._offsets[-1])
        self._data: mmap.mmap | bytes = (
            mmap.mmap(self._file.fileno(), 0, access=mmap.ACCESS_READ) if size else b"")

    def __getitem__(self, i: int) -> str:
        return self._data[int(self._offsets[i]):int(self._offsets[i + 1])].decode("utf-8")

    def close(self) -> None:
        if isinstance(self._data, mmap.mmap):
            self._data.close()
        self._file.close()


_STORE = ("doc_ids", "passage_ids", "passage_text")
"""The passage store: per passage number, its document id, passage id and text."""


_K1, _B = 1.2, 0.75
"""BM25 parameters (Lucene's defaults, also tantivy's and Elasticsearch's)."""

_BOUND_MARGIN = 1 + 1e-6
"""Upper bounds are raised by this factor so float rounding can never prune a passage."""

_THETA_MARGIN = 1 - 1e-9
_ONE = np.uint64(1)
_LOW_BITS = np.array([(1 << i) - 1 for i in range(64)], dtype=np.uint64)
"""`_LOW_BITS[i]`: the bits below bit i of a 64-bit word."""
"""A k-th score summed in another order than the final one is lowered by this factor."""

_BITMAP_FRACTION = 32
"""A postings list of at least 1/32 of the passages also gets a bitmap (`_write_bitmaps`)."""

if hasattr(np, "bitwise_count"):  # numpy >= 2
    _popcount = np.bitwise_count
else:
    _BYTE_BITS = np.array([i.bit_count() for i in range(256)], dtype=np.uint8)

    def _popcount(words: np.ndarray) -> np.ndarray:
        return _BYTE_BITS[words.view(np.uint8).reshape(-1, 8)].sum(axis=1, dtype=np.uint64)

_PROBE = 20
_PROBE_BEFORE = 4096
"""Lists longer than this are preceded by a probe (see `PassageSearcher._top`)."""
"""A probe scores the `_PROBE * k` best passages by partial score in full."""


class PassageWriter:
    """Writes a passages folder: a BM25 inverted index of the text and the passage store
    (`doc_ids.*`, `passage_ids.*`, `passage_text.*`) that hits are read from.

    Streaming: tokens are numbered as passages arrive (a dict from token to term number);
    every `flush_tokens` tokens the pending (term, passage) pairs are sorted with numpy into
    one chunk of postings with term frequencies, written to a temporary file. `commit` lays
    the chunks out term by term into the final arrays. Memory: the term dictionary, 4 bytes
    a passage and one chunk.
    """

    def __init__(self, folder: Path, *, flush_tokens: int = 1 << 22):
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self._chunk_dir = folder / ".chunks"
        self._chunk_dir.mkdir(exist_ok=True)
        self._n_chunks = 0
        self._store = [_FlatWriter(folder, name) for name in _STORE]
        self._numbers: dict[str, int] = {}
        self._keep = array("b")  # per term number: 1 if indexed, 0 for a stop word or long token
        self._pending: list[str] = []
        self._counts = array("I")  # raw tokens of each pending passage
        self._lengths = array("I")  # indexed tokens of each flushed passage
        self._flush_tokens = flush_tokens
        self.n = 0

    def add_document(self, doc_id: str, text: str, passage_words: int) -> None:
        """Split a document into passages and add them (passage ids `doc_id#0`, `doc_id#1`, ...)."""
        for i, passage in enumerate(split_passages(text, passage_words)):
            self.add_passage(doc_id, f"{doc_id}#{i}", passage)

    def add_passage(self, doc_id: str, passage_id: str, text: str) -> None:
        if self.n >= _MAX_DOCS:
            raise InputError(f"the embedded index holds at most {_MAX_DOCS} passages; "
                             "use --backend elasticsearch")
        tokens = raw_tokens(text)
        self._pending += tokens
        self._counts.append(len(tokens))
        for store, value in zip(self._store, (doc_id, passage_id, text)):
            store.add(value)
        self.n += 1
        if len(self._pending) >= self._flush_tokens:
            self._flush()

    def _flush(self) -> None:
        numbers, pending = self._numbers, self._pending
        for token in sorted(set(pending).difference(numbers)):  # new ones, in a fixed order
            numbers[token] = len(numbers)
            self._keep.append(keep_token(token))
        terms = np.fromiter(map(numbers.__getitem__, pending), dtype=np.uint32, count=len(pending))
        counts = np.frombuffer(self._counts, dtype=np.uint32)
        first = len(self._lengths)
        local = np.repeat(np.arange(len(counts), dtype=np.uint32), counts)
        kept = np.frombuffer(self._keep, dtype=np.int8).view(bool)[terms]
        terms, local = terms[kept], local[kept]
        self._lengths.frombytes(np.bincount(local, minlength=len(counts)).astype(np.uint32).tobytes())
        # key = term << 32 | passage: one sort groups a term's passages, in order, repeats adjacent
        keys = terms.astype(np.uint64)
        keys <<= np.uint64(32)
        keys |= local + np.uint64(first)
        keys.sort()
        if len(keys):
            starts = np.flatnonzero(np.concatenate(([True], keys[1:] != keys[:-1])))
            tf = np.diff(np.append(starts, len(keys)))
            keys = keys[starts]
            chunk = self._chunk_dir / str(self._n_chunks)
            np.save(f"{chunk}.terms.npy", (keys >> np.uint64(32)).astype(np.uint32))
            np.save(f"{chunk}.docs.npy", keys.astype(np.uint32))
            np.save(f"{chunk}.tf.npy", np.minimum(tf, 65535).astype(np.uint16))
            self._n_chunks += 1
        self._pending = []
        self._counts = array("I")

    def commit(self) -> None:
        """Write the inverted index (`terms.*`, `postings.*`, `bm25.json`) and close the store."""
        self._flush()
        for store in self._store:
            store.close()
        folder, n_terms, n = self.folder, len(self._numbers), self.n
        lengths = np.frombuffer(self._lengths, dtype=np.uint32)
        total = int(lengths.sum(dtype=np.uint64))
        avg_length = total / n if total else 1.0
        # BM25's length normalization per passage, then each posting's tf part (the impact)
        norm = _K1 * (1 - _B + _B * lengths / avg_length)
        chunks = [self._chunk_dir / str(i) for i in range(self._n_chunks)]
        # Each term's postings are two lists, tf >= 2 first, then tf = 1 (list 2 t + (tf == 1)),
        # each sorted by passage: the tf = 1 list's lower bound lets searches skip it (MaxScore).
        n_lists = 2 * n_terms
        df = np.zeros(n_lists, dtype=np.int64)
        for chunk in chunks:
            df += np.bincount(self._lists(chunk), minlength=n_lists)
        offsets = np.zeros(n_lists + 1, dtype=np.int64)
        np.cumsum(df, out=offsets[1:])
        n_postings = int(offsets[-1])
        docs = np.lib.format.open_memmap(folder / "postings.docs.npy", "w+", np.uint32, (n_postings,))
        impacts = np.lib.format.open_memmap(folder / "postings.impact.npy", "w+", np.float32, (n_postings,))
        cursor = offsets[:-1].copy()
        for chunk in chunks:  # chunks are in passage order, so each list's passages stay sorted
            lists = self._lists(chunk)
            order = np.argsort(lists, kind="stable")
            lists = lists[order]
            counts = np.bincount(lists, minlength=n_lists)
            rank = np.arange(len(lists), dtype=np.int64) - (np.cumsum(counts) - counts)[lists]
            at = cursor[lists] + rank
            passages = np.load(f"{chunk}.docs.npy", allow_pickle=False)[order]
            tf = np.load(f"{chunk}.tf.npy", allow_pickle=False)[order].astype(np.float64)
            docs[at] = passages
            impacts[at] = tf * (_K1 + 1) / (tf + norm[passages])
            cursor += counts
        max_impact = np.zeros(n_lists, dtype=np.float32)
        present = np.flatnonzero(df)
        if len(present):
            max_impact[present] = np.maximum.reduceat(impacts, offsets[present])
        self._write_bitmaps(docs, offsets, df)
        docs.flush()
        impacts.flush()
        del docs, impacts
        np.save(folder / "postings.off.npy", offsets)
        np.save(folder / "postings.max_impact.npy", max_impact)
        write_strings(folder, "terms", list(self._numbers))  # in number order
        write_json(folder / "bm25.json", {"n_passages": n, "avg_length": avg_length, "k1": _K1, "b": _B,
                                          "n_terms": n_terms, "n_postings": n_postings})
        shutil.rmtree(self._chunk_dir, ignore_errors=True)

    def _write_bitmaps(self, docs: np.ndarray, offsets: np.ndarray, df: np.ndarray) -> None:
        """Lists of at least n / 32 passages also get a bitmap over passage numbers (no larger
        than their 4-byte passage numbers) with the count of set bits before each 64-bit word,
        so that looking a candidate up is a few array reads instead of a binary search."""
        n, words = self.n, (self.n + 63) // 64
        big = np.flatnonzero(df * _BITMAP_FRACTION >= max(n, 1))
        rows = np.full(len(df), -1, dtype=np.int64)
        rows[big] = np.arange(len(big))
        bitmaps = np.lib.format.open_memmap(self.folder / "postings.bitmap.npy", "w+", "<u8", (len(big), words))
        ranks = np.lib.format.open_memmap(self.folder / "postings.rank.npy", "w+", np.uint32, (len(big), words))
        for row, v in enumerate(big.tolist()):
            present = np.zeros(words * 64, dtype=bool)
            present[docs[offsets[v]:offsets[v + 1]]] = True
            bits = np.packbits(present, bitorder="little").view("<u8")
            bitmaps[row] = bits
            np.cumsum(_popcount(bits[:-1]), out=ranks[row, 1:])
            ranks[row, 0] = 0
        bitmaps.flush()
        ranks.flush()
        np.save(self.folder / "postings.bitmap_row.npy", rows)

    @staticmethod
    def _lists(chunk: Path) -> np.ndarray:
        """The postings list number (2 term + (tf == 1)) of each posting of a chunk."""
        lists = np.load(f"{chunk}.terms.npy", allow_pickle=False).astype(np.int64) * 2
        lists += np.load(f"{chunk}.tf.npy", allow_pickle=False) == 1
        return lists


def default_search_threads() -> int:
    """Threads `search_many` uses by default: the CPUs this process may run on, at most 8."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return max(1, min(8, cpus))


_POPULATE_BELOW = 4 << 30
"""Postings files up to this size are mapped with MAP_POPULATE (see `_map_array`)."""


def _map_array(path: Path) -> np.ndarray:
    """A 1-d `.npy` file memory-mapped, read-only. Files below `_POPULATE_BELOW` bytes are
    mapped with MAP_POPULATE where the platform has it: the first queries would otherwise
    pay a page fault for each 4 KiB page they touch (measured: a third of their time)."""
    with open(path, "rb") as handle:
        fmt = np.lib.format
        version = fmt.read_magic(handle)
        read_header = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
        shape, _, dtype = read_header(handle)
        if dtype.hasobject:  # never unpickled: such a file is not ours
            raise ValueError(f"{path}: holds Python objects (pickle data), refused; rebuild the index "
                             "with `ltprobe index`")
        offset = handle.tell()
        count = int(np.prod(shape))
        if not count:
            return np.zeros(shape, dtype=dtype)
        size = os.fstat(handle.fileno()).st_size
        flags = mmap.MAP_SHARED
        if size < _POPULATE_BELOW:
            flags |= getattr(mmap, "MAP_POPULATE", 0)
        mapped = mmap.mmap(handle.fileno(), 0, flags=flags, prot=mmap.PROT_READ)
    return np.frombuffer(mapped, dtype=dtype, count=count, offset=offset)


class PassageSearcher:
    """Exact BM25 top-k search over a passages folder written by `PassageWriter`.

    The index is flat arrays (memory-mapped): per term two postings lists (tf >= 2, then
    tf = 1) of sorted passage numbers (`postings.docs.npy`) with their impacts, the BM25 tf
    part `tf (k1 + 1) / (tf + k1 (1 - b + b len / avg_len))` (`postings.impact.npy`), located
    by `postings.off.npy`; long lists also have a bitmap. A passage's score is the sum of
    `idf * impact` over the query's distinct terms, with Lucene's idf
    `ln(1 + (N - df + 0.5) / (df + 0.5))` (tantivy's and Elasticsearch's BM25, without their
    lossy length encoding). Ties are broken by passage number (lower first).

    Speed (issue 6, docs/benchmarks.md): `_top` is MaxScore vectorised with numpy, so a query
    reads its rare terms' postings in full and looks only candidates up in the others;
    queries run on `threads` threads.
    """

    def __init__(self, folder: Path, *, threads: int | None = None):
        if not (folder / "bm25.json").is_file():
            raise InputError(f"{folder}: no passage index in the expected layout; rebuild the index "
                             "with `ltprobe index`")
        meta = json.loads((folder / "bm25.json").read_text())
        self._n = int(meta["n_passages"])
        self._terms = StringTable(folder, "terms")
        self._offsets = np.load(folder / "postings.off.npy", allow_pickle=False)
        self._docs = _map_array(folder / "postings.docs.npy")
        self._impacts = _map_array(folder / "postings.impact.npy")
        self._max_impact = np.load(folder / "postings.max_impact.npy", allow_pickle=False)
        self._bitmap_row = np.load(folder / "postings.bitmap_row.npy", allow_pickle=False)
        # Read, not mapped: lookups touch them at random, and a first touch of each mapped page
        # costs a page fault (n / 8 + n / 16 bytes a long list).
        self._bitmaps = np.load(folder / "postings.bitmap.npy", allow_pickle=False)
        self._ranks = np.load(folder / "postings.rank.npy", allow_pickle=False)
        self._store = [_FlatReader(folder, name) for name in _STORE]
        self._local = threading.local()
        self.threads = default_search_threads() if threads is None else max(1, threads)
        self._pool: Any = None

    def _accumulator(self) -> np.ndarray:
        """This thread's score per passage (all zero between queries)."""
        acc = getattr(self._local, "acc", None)
        if acc is None:
            acc = self._local.acc = np.zeros(self._n, dtype=np.float64)
        return acc

    def _top(self, numbers: Sequence[int], k: int) -> list[tuple[float, int]]:
        """Top-k `(score, passage number)` for distinct term numbers, best first: exactly the
        top k of scoring every passage (tested against a brute-force scorer).

        MaxScore over the terms' postings lists (two a term: tf >= 2, tf = 1), taken in
        decreasing order of their bound `idf * max impact` (rare terms first). A passage's
        partial score is a lower bound of its score, so the k-th best of k passages' partial
        scores, `theta`, bounds the k-th best score from below; a passage whose partial score
        plus what the lists still to add can give (`rest`) is below `theta` cannot be in the
        top k. Essential lists (while `rest` reaches `theta`) are added to a per-passage
        accumulator in full; their passages are the candidates; the other lists are only
        looked up for the surviving candidates (bitmap and rank, or binary search), pruning
        after each. Before a long essential list, a probe raises `theta`: the best few
        passages so far get (a lower bound of) their full score. Every passage's lists are
        summed in the same order, so equal inputs give equal scores; ties fall to the passage
        number.
        """
        offsets, docs, impacts = self._offsets, self._docs, self._impacts
        terms = np.asarray(numbers, dtype=np.int64)
        df = offsets[2 * terms + 2] - offsets[2 * terms]
        idf = np.repeat(np.log1p((self._n - df + 0.5) / (df + 0.5)), 2)
        lists = np.stack([2 * terms, 2 * terms + 1], axis=1).ravel()  # each term's two lists
        starts, ends = offsets[lists], offsets[lists + 1]
        bounds = idf * self._max_impact[lists] * _BOUND_MARGIN
        order = [i for i in np.argsort(-bounds, kind="stable").tolist() if ends[i] > starts[i]]
        owner = [i // 2 for i in order]  # the query term of each list, in search order
        bounds_list = bounds[order].tolist()
        starts, ends, idf = starts[order].tolist(), ends[order].tolist(), idf[order]
        q = len(order)
        # rest[i]: the most that the lists from i on can add to a passage (one list of a term at most)
        rest_list = [0.0] * (q + 1)
        for i in range(q):
            best: dict[int, float] = {}
            for j in range(i, q):
                best[owner[j]] = max(best.get(owner[j], 0.0), bounds_list[j])
            rest_list[i] = sum(best.values())

        rows = self._bitmap_row[lists[order]].tolist() if q else []
        bitmaps, ranks = self._bitmaps, self._ranks

        def search(i: int, cand: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            """Where list i (one without a bitmap) holds a passage of `cand` (a mask), and its
            score there: a binary search."""
            found = docs[starts[i]:ends[i]]
            at = np.searchsorted(found, cand.astype(found.dtype))  # no conversion of the list
            np.minimum(at, len(found) - 1, out=at)
            hit = found[at] == cand
            return hit, idf[i] * impacts[starts[i] + at[hit]]

        starts_arr = np.asarray(starts, dtype=np.int64)
        idf_arr = np.asarray(idf)
        rows_arr = np.asarray(rows, dtype=np.int64)

        def lookup_rest(m: int, sample: np.ndarray) -> np.ndarray:
            """Part of what lists m, m + 1, ... add to each passage of a small `sample`: those
            with a bitmap, all at once (a lower bound, which is all a probe needs)."""
            with_bitmap = np.flatnonzero(rows_arr[m:] >= 0) + m
            if not len(with_bitmap):
                return np.zeros(len(sample))
            row = rows_arr[with_bitmap][:, None]
            word = (sample >> 6)[None, :]
            bits = bitmaps[row, word]
            shift = (sample & 63).astype(np.uint64)[None, :]
            hit = ((bits >> shift) & _ONE).astype(bool)
            at = ranks[row, word] + _popcount(bits & _LOW_BITS[shift])
            at = starts_arr[with_bitmap][:, None] + np.where(hit, at, 0).astype(np.int64)
            return np.where(hit, idf_arr[with_bitmap][:, None] * impacts[at], 0.0).sum(axis=0)

        acc = self._accumulator()
        theta = -np.inf
        touched = []
        m = 0
        probed = -1
        while m < q and rest_list[m] >= theta:
            if ends[m] - starts[m] > _PROBE_BEFORE and touched and probed < m:
                # Before a long list, a provisional k-th score: the full scores of the best few
                # passages by partial score (summed in another order than the final sum, hence
                # the margin). It may make this list and the next ones non-essential.
                probed = m
                seen = touched[-1] if len(touched) == 1 else np.concatenate(touched)
                few = _PROBE * k
                if len(seen) > few:  # about the best `few` by partial score (any passages would do)
                    partial = acc[seen]
                    step = max(1, len(seen) // (8 * few))
                    some = partial[::step]
                    top = max(1, few // step)
                    cut = np.partition(some, len(some) - top)[len(some) - top]
                    seen = seen[partial >= cut][:few]
                sample = np.unique(seen)
                if len(sample) >= k:
                    full = acc[sample] + lookup_rest(m, sample)
                    theta = max(theta, float(np.partition(full, len(full) - k)[len(full) - k]) * _THETA_MARGIN)
                continue
            found = docs[starts[m]:ends[m]].astype(np.intp)  # converted once, indexed four times
            acc[found] += idf[m] * impacts[starts[m]:ends[m]]
            touched.append(found)
            m += 1
        # The candidates: the essential lists' passages whose partial score plus what the other
        # lists can add reaches theta (a passage of list j cannot be in another list of j's
        # term). The accumulator is zeroed list by list, so a passage in lists of several terms
        # is taken once, from the first (all contributions are > 0).
        kept_cand, kept_scores = [], []
        for j, found in enumerate(touched):
            same_term = max((bounds_list[i] for i in range(m, q) if owner[i] == owner[j]), default=0.0)
            floor = theta - (rest_list[m] - same_term)
            partial = acc[found]
            acc[found] = 0.0
            keep = partial >= floor if floor > 0 else partial > 0
            kept_cand.append(found[keep])
            kept_scores.append(partial[keep])
        cand = np.concatenate(kept_cand) if len(kept_cand) > 1 else kept_cand[0]
        scores = np.concatenate(kept_scores) if len(kept_scores) > 1 else kept_scores[0]

        word = shift = low = None
        for i in range(m, q):
            if not len(cand):
                break
            if rows[i] >= 0:  # the bitmap says which candidates it holds; the rank, where
                if word is None:
                    word, shift = cand >> 6, (cand & 63).astype(np.uint64)
                    low = _LOW_BITS[shift]
                bits = bitmaps[rows[i]][word]
                at = np.flatnonzero((bits >> shift) & _ONE)
                if len(at):
                    rank = ranks[rows[i]][word[at]] + _popcount(bits[at] & low[at])
                    scores[at] += idf[i] * impacts[starts[i] + rank.astype(np.int64)]
            else:
                found = docs[starts[i]:ends[i]]
                if len(cand) * 8 > len(found):  # many candidates: scatter the list, gather
                    acc[found] = idf[i] * impacts[starts[i]:ends[i]]
                    scores += acc[cand]
                    acc[found] = 0.0
                else:  # few: binary search each candidate in the list
                    hit, add = search(i, cand)
                    scores[hit] += add
            if k <= len(scores) <= _PROBE_BEFORE:  # (a partition of many scores costs more than it saves)
                theta = max(theta, float(np.partition(scores, len(scores) - k)[len(scores) - k]))
            keep = scores + rest_list[i + 1] >= theta
            if not keep.all():
                cand, scores = cand[keep], scores[keep]
                if word is not None:
                    word, shift, low = word[keep], shift[keep], low[keep]

        if len(cand) > k:
            kth = np.partition(scores, len(scores) - k)[len(scores) - k]
            keep = scores >= kth
            cand, scores = cand[keep], scores[keep]
        best = np.lexsort((cand, -scores))[:k]
        return list(zip(scores[best].tolist(), cand[best].tolist()))

    def _run(self, number_lists: Sequence[list[int]], k: int) -> list[list[tuple[float, int]]]:
        return [self._top(numbers, k) if numbers else [] for numbers in number_lists]

    def search_many(self, queries: Sequence[str], k: int) -> list[list[Passage]]:
        if k <= 0 or not queries:
            return [[] for _ in queries]
        term_lists = [query_terms(q) for q in queries]
        distinct = list({t for terms in term_lists for t in terms})
        found = dict(zip(distinct, self._terms.find_many(distinct))) if distinct else {}
        offsets = self._offsets
        number_lists = [[n for n in (found[t] for t in terms)
                         if n is not None and offsets[2 * n + 2] > offsets[2 * n]]  # unknown terms score nothing
                        for terms in term_lists]
        if self.threads > 1 and len(queries) > 1:
            if self._pool is None:
                from concurrent.futures import ThreadPoolExecutor

                self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="ltprobe-search")
            size = max(1, min(16, -(-len(number_lists) // self.threads)))  # small chunks balance the load
            chunks = [number_lists[i:i + size] for i in range(0, len(number_lists), size)]
            hits = [h for part in self._pool.map(lambda c: self._run(c, k), chunks) for h in part]
        else:
            hits = self._run(number_lists, k)
        doc_ids, passage_ids, texts = self._store
        return [[Passage(doc_id=doc_ids[i], passage_id=passage_ids[i], text=texts[i], score=score)
                 for score, i in found_hits] for found_hits in hits]

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None
        for store in self._store:
            store.close()
        self._terms.close()


class EmbeddedWriter:
    """Builds an embedded index folder: add documents in corpus order, then `finish()`.

    Adding a document appends its entity ids to a pending list; every million mentions they
    are turned into entity numbers in one C-level pass (uint32, 4 bytes a mention), so memory
    stays about 4 bytes per mention plus the document ids while adding, and 12 while
    finishing. `finish` sorts (entity, document) keys once with numpy, drops repeats, and
    writes one posting list per entity.
    """

    _FLUSH = 1 << 20

    def __init__(self, folder: str | os.PathLike, *, with_text: bool = True):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self._doc_ids: list[str] = []
        self._mentions: list[str] = []
        self._numbers: dict[str, int] = {}
        self._codes = array("I")
        self._lengths = array("I")
        self._with_text = with_text
        self._text = open(self.folder / "text.bin", "wb") if with_text else None
        self._text_offsets = array("Q", [0])

    def add(self, doc_id: str, entities: Sequence[str], text: str | None = None) -> None:
        """Add one document (its entity ids are treated as a set)."""
        if len(self._doc_ids) >= _MAX_DOCS:
            raise InputError(f"the embedded index holds at most {_MAX_DOCS} documents; "
                             "split the corpus or use --backend elasticsearch")
        self._doc_ids.append(doc_id)
        self._mentions.extend(entities)
        self._lengths.append(len(entities))
        if len(self._mentions) >= self._FLUSH:
            self._number_mentions()
        if self._text is not None:
            data = (text or "").encode("utf-8")
            self._text.write(data)
            self._text_offsets.append(self._text_offsets[-1] + len(data))

    def add_many(self, doc_ids: Sequence[str], entity_lists: Sequence[Sequence[str]]) -> None:
        """Add documents without text, fast (the benchmark's and bulk loaders' path)."""
        if self._text is not None:
            raise ValueError("add_many is for indexes without text (with_text=False)")
        if len(self._doc_ids) + len(doc_ids) > _MAX_DOCS:
            raise InputError(f"the embedded index holds at most {_MAX_DOCS} documents")
        self._doc_ids.extend(doc_ids)
        mentions = self._mentions
        for entities in entity_lists:
            mentions.extend(entities)
            if len(mentions) >= self._FLUSH:
                self._number_mentions()
                mentions = self._mentions
        self._lengths.extend(map(len, entity_lists))

    def _number_mentions(self) -> None:
        numbers = self._numbers
        for entity in sorted(set(self._mentions).difference(numbers)):  # new ones, in a fixed order
            numbers[entity] = len(numbers)
        self._codes.extend(map(numbers.__getitem__, self._mentions))
        self._mentions = []

    def finish(self, extra_info: dict[str, Any] | None = None) -> dict[str, Any]:
        """Write the postings, id tables and `index.json`; return the index description."""
        folder = self.folder
        duplicates = write_strings(folder, "docs", self._doc_ids)
        if duplicates:
            raise InputError(f"document id {duplicates[0]!r} occurs more than once in the corpus "
                             f"({len(duplicates)} duplicated ids); document ids must be unique")
        self._number_mentions()
        entity_ids = list(self._numbers)  # in number order
        write_strings(folder, "entities", entity_ids)
        n_mentions = self._write_postings(entity_ids)
        if self._text is not None:
            self._text.close()
            np.save(folder / "text.off.npy", np.frombuffer(self._text_offsets, dtype=np.uint64))
        info = {
            "backend": "embedded", "version": FORMAT_VERSION,
            "n_docs": len(self._doc_ids), "n_entities": len(entity_ids),
            "n_mentions": n_mentions, "has_text": self._with_text,
            "raw_postings_below": RAW_POSTINGS_BELOW,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            **(extra_info or {}),
        }
        # Every file's size, checked on opening: a truncated or missing file is named at once
        # instead of giving a wrong count or a decoder's traceback later.
        info["files"] = {str(p.relative_to(folder)): p.stat().st_size
                         for p in sorted(folder.rglob("*")) if p.is_file() and p.name != INDEX_INFO}
        write_json(folder / INDEX_INFO, info)
        return info

    def _write_postings(self, entity_ids: list[str]) -> int:
        from pyroaring import BitMap

        keys = np.frombuffer(self._codes, dtype=np.uint32).astype(np.uint64)
        self._codes = array("I")
        # key = entity << 32 | document: one sort groups documents by entity, in order.
        keys <<= np.uint64(32)
        keys |= np.repeat(np.arange(len(self._doc_ids), dtype=np.uint64),
                          np.frombuffer(self._lengths, dtype=np.uint32))
        keys.sort()
        if len(keys):
            keep = np.empty(len(keys), dtype=bool)
            keep[0] = True
            np.not_equal(keys[1:], keys[:-1], out=keep[1:])  # an entity named twice in a document
            keys = keys[keep]
        df = np.bincount((keys >> np.uint64(32)).astype(np.int64), minlength=len(entity_ids)).astype(np.uint32)
        docs = array("I", keys.astype(np.uint32).tobytes())  # array.array: BitMap's fast path
        n_mentions = len(keys)
        del keys
        bounds = np.zeros(len(entity_ids) + 1, dtype=np.int64)
        np.cumsum(df, out=bounds[1:])
        bounds_list = bounds.tolist()
        chunks = []
        for e in range(len(entity_ids)):
            ids = docs[bounds_list[e]:bounds_list[e + 1]]
            if len(ids) < RAW_POSTINGS_BELOW:
                chunks.append(ids.tobytes())  # smaller and faster to load than a tiny bitmap
            else:
                bitmap = BitMap(ids)
                bitmap.run_optimize()
                chunks.append(bitmap.serialize())
        offsets = np.zeros(len(entity_ids) + 1, dtype=np.uint64)
        np.cumsum(np.fromiter(map(len, chunks), dtype=np.uint64, count=len(chunks)), out=offsets[1:])
        with open(self.folder / "postings.bin", "wb") as handle:
            handle.write(b"".join(chunks))
        np.save(self.folder / "postings.off.npy", offsets)
        np.save(self.folder / "df.npy", df)
        return n_mentions


def build_embedded(corpus: str | os.PathLike, linked_dir: str | os.PathLike | None,
                   out: str | os.PathLike, *, passages: str | os.PathLike | None = None,
                   passage_words: int = 100, on_error: str = "fail",
                   progress: bool = True, fields: dict[str, Any] | None = None,
                   counts_only: bool = False) -> dict[str, Any]:
    """Build the embedded index folder `out` (see `indexes.build_index`; `fields`: how to read
    the corpus, `indexes._text.reader_fields`). `counts_only`: entity sets and document ids
    alone, no text and no passages (about 2% of the size on a Pile-like corpus).

    The index is written to a temporary folder beside `out` and moved into place at the end,
    so an interrupted build never leaves a half-written index under the final name.
    """
    from entity_linking.logs import progress_bar

    out = Path(out)
    if out.exists() and any(out.iterdir()) and not (out / INDEX_INFO).exists():
        raise InputError(f"{out}: exists and is not an ltprobe index; choose another --out folder")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.{os.getpid()}.", dir=out.parent))
    started = time.perf_counter()
    skips = SkipCounter()
    try:
        writer = EmbeddedWriter(tmp, with_text=not counts_only)
        passage_writer = None if counts_only else PassageWriter(tmp / "passages")
        fields = fields or reader_fields(linked_dir)
        docs = iter_corpus(corpus, linked_dir, on_error=on_error, skips=skips, fields=fields)
        for doc_id, entities, text in progress_bar(docs, desc="index", unit=" docs", enabled=progress):
            writer.add(doc_id, entities, text)
            fault_point("index:doc")
            if passages is None and passage_writer is not None:
                passage_writer.add_document(doc_id, text, passage_words)
        if passage_writer is not None:
            if passages is not None:
                for doc_id, text in progress_bar(iter_texts(passages, on_error=on_error, skips=skips),
                                                 desc="passages", unit=" docs", enabled=progress):
                    passage_writer.add_document(doc_id, text, passage_words)
            passage_writer.commit()
        info = writer.finish({
            "n_passages": passage_writer.n if passage_writer is not None else 0, "passage_words": passage_words,
            "passages_from": None if counts_only else str(passages) if passages is not None else "corpus",
            "counts_only": counts_only,
            "corpus": str(corpus), "linked": str(linked_dir) if linked_dir is not None else None,
            "text_field": fields["text_field"], "id_field": fields["id_field"],
            "skipped_records": skips.skipped,
            "build_seconds": round(time.perf_counter() - started, 3),
        })
        fault_point("index:before-swap")
        old = None
        if out.exists():  # moved aside in one rename, so `out` is never a half-deleted index
            old = out.parent / f".{out.name}.{os.getpid()}.old"
            os.replace(out, old)
        fault_point("index:swapped-out")
        os.replace(tmp, out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except OSError as exc:
        try:
            with disk_errors(out):  # a failed write names no file: say which index it was (before
                raise exc           # the temporary folder is removed, while the disk is still full)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    remove_leftovers(out)
    if skips.skipped:
        info["skipped_summary"] = skips.summary()
    return info


class NumberedDocs:
    """The document ids of an index whose documents are numbered (an imported entity map,
    `index.json` `"doc_ids": "numbers"`): document n's id is `str(n)`; no table on disk."""

    def __init__(self, n_docs: int):
        self._n = n_docs

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, i: int) -> str:
        return str(i)

    def find(self, s: str) -> int | None:
        if not (s.isascii() and s.isdigit()) or (len(s) > 1 and s[0] == "0"):
            return None
        n = int(s)
        return n if n < self._n else None

    def find_many(self, strings: Sequence[str]) -> list[int | None]:
        return [self.find(s) for s in strings]

    def close(self) -> None:
        pass


class EmbeddedIndex(DocumentIndex):
    """Read side of the embedded index folder. Opening maps files; nothing is loaded."""

    backend = "embedded"

    def __init__(self, path: str | os.PathLike, *, cache_bitmaps: int = 65536,
                 search_threads: int | None = None):
        """`search_threads`: threads `search_many` runs queries on (default: the CPUs, at most 8)."""
        self.path = Path(path)
        self._info = read_index_info(self.path)
        if self._info.get("backend") != "embedded":
            raise InputError(f"{self.path}: a {self._info.get('backend')} index, not an embedded one")
        check_version(self._info, FORMAT_VERSION, str(self.path / INDEX_INFO))
        self._check_files()
        try:
            self._docs: StringTable | NumberedDocs = (
                NumberedDocs(int(self._info.get("n_docs", 0))) if self._info.get("doc_ids") == "numbers"
                else StringTable(self.path, "docs"))
            self._entities = StringTable(self.path, "entities")
            self._df = np.asarray(np.load(self.path / "df.npy", mmap_mode="r", allow_pickle=False))
            self._postings_off = np.asarray(np.load(self.path / "postings.off.npy", mmap_mode="r",
                                                    allow_pickle=False))
            self._postings_file = open(self.path / "postings.bin", "rb")
            size = int(self._postings_off[-1]) if len(self._postings_off) else 0
            self._postings: mmap.mmap | bytes = (
                mmap.mmap(self._postings_file.fileno(), 0, access=mmap.ACCESS_READ) if size else b"")
        except (OSError, ValueError) as exc:
            raise InputError(f"{self.path}: index files are missing or damaged ({exc}); "
                             f"rebuild it: {self.rebuild_command()}") from None
        self._text_off = self._text = self._text_file = None
        self._cache: dict[int, Any] = {}
        self._cache_limit = cache_bitmaps
        self._raw_below = int(self._info.get("raw_postings_below", 0))
        self._searcher: PassageSearcher | None = None
        self._search_threads = search_threads

    def rebuild_command(self) -> str:
        """The `ltprobe index` command line that builds this index again (from index.json)."""
        info = self._info
        parts = ["ltprobe index", "--corpus", str(info.get("corpus", "CORPUS"))]
        if info.get("linked"):
            parts += ["--linked", str(info["linked"])]
        if info.get("passages_from") not in (None, "corpus"):
            parts += ["--passages", str(info["passages_from"])]
        parts += ["--out", str(self.path)]
        return "`" + " ".join(parts) + "`"

    def _check_files(self) -> None:
        for name, size in (self._info.get("files") or {}).items():
            path = self.path / name
            try:
                actual = path.stat().st_size
            except OSError:
                raise InputError(f"{path}: missing from the index; rebuild it: {self.rebuild_command()}") from None
            if actual != size:
                raise InputError(f"{path}: {actual} bytes where the index wrote {size} (truncated or "
                                 f"damaged); rebuild it: {self.rebuild_command()}")

    def _damaged(self, what: str, exc: Exception) -> InputError:
        return InputError(f"{self.path / what}: damaged ({type(exc).__name__}: {exc}); "
                          f"rebuild the index: {self.rebuild_command()}")

    # -- counts ---------------------------------------------------------------------------
    def _bitmap(self, e: int) -> Any:
        bitmap = self._cache.get(e)
        if bitmap is None:
            from pyroaring import FrozenBitMap

            if len(self._cache) >= self._cache_limit:
                self._cache.clear()
            try:
                start, end = int(self._postings_off[e]), int(self._postings_off[e + 1])
                if not 0 <= start <= end <= len(self._postings):
                    raise ValueError(f"postings {start}..{end} outside the file")
                if int(self._df[e]) < self._raw_below:  # a short sorted uint32 array
                    ids = array("I")
                    ids.frombytes(self._postings[start:end])
                    bitmap = FrozenBitMap(ids)
                else:
                    bitmap = FrozenBitMap.deserialize(self._postings[start:end])
                if len(bitmap) != int(self._df[e]):
                    raise ValueError(f"entity {e}: {len(bitmap)} postings where df.npy says {int(self._df[e])}")
            except (ValueError, IndexError, OverflowError) as exc:
                raise self._damaged("postings.bin", exc) from None
            self._cache[e] = bitmap
        return bitmap

    def entity_numbers(self, entities: Sequence[str]) -> list[int | None]:
        return self._entities.find_many(list(entities))

    def doc_freq(self, entity: str) -> int:
        return self.doc_freqs([entity])[0]

    def doc_freqs(self, entities: Sequence[str]) -> list[int]:
        return [0 if e is None else int(self._df[e]) for e in self.entity_numbers(entities)]

    def count_cooccurrence(self, pairs: Sequence[tuple[str, str]]) -> list[int]:
        if not pairs:
            return []
        names = list({e for pair in pairs for e in pair})
        bitmaps = {name: self._bitmap(e) for name, e in zip(names, self.entity_numbers(names))
                   if e is not None}
        from pyroaring import FrozenBitMap

        empty = FrozenBitMap()  # stands in for entities the index has never seen
        counts = []
        for a, b in pairs:
            x, y = bitmaps.get(a, empty), bitmaps.get(b, empty)
            counts.append(len(x) if x is y else x.intersection_cardinality(y))
        return counts

    def docs_with(self, entities: Sequence[str], limit: int | None = None) -> list[str]:
        if not entities:
            raise ValueError("docs_with needs at least one entity")
        numbers = self.entity_numbers(entities)
        if any(e is None for e in numbers):
            return []
        bitmaps = sorted((self._bitmap(e) for e in numbers), key=len)  # type: ignore[arg-type]
        result = bitmaps[0]
        for other in bitmaps[1:]:
            result = result & other
        ids = []
        for d in result:
            if limit is not None and len(ids) >= limit:
                break
            ids.append(self._docs[d])
        return ids

    def doc_numbers(self, doc_ids: Sequence[str]) -> list[int | None]:
        """Each document's number: its position in the indexed corpus (None for unknown ids)."""
        return self._docs.find_many(list(doc_ids))

    # -- text -----------------------------------------------------------------------------
    def get_text(self, doc_id: str) -> str | None:
        if not self._info.get("has_text", True):
            return None
        d = self._docs.find(doc_id)
        if d is None:
            return None
        if self._text_off is None:
            self._text_off = np.asarray(np.load(self.path / "text.off.npy", mmap_mode="r", allow_pickle=False))
            self._text_file = open(self.path / "text.bin", "rb")
            size = int(self._text_off[-1])
            self._text = mmap.mmap(self._text_file.fileno(), 0, access=mmap.ACCESS_READ) if size else b""
        return self._text[int(self._text_off[d]):int(self._text_off[d + 1])].decode("utf-8")

    # -- retrieval ------------------------------------------------------------------------
    def _open_passages(self) -> PassageSearcher:
        if self._searcher is None:
            folder = self.path / "passages"
            if not folder.exists():
                raise InputError(f"{self.path}: this index has no passages to search (an imported entity "
                                 "map or a --counts-only index has none); build a retrieval index with "
                                 "`ltprobe index --corpus PASSAGES --out DIR` and give it as rag.index "
                                 "(ltprobe run)")
            self._searcher = PassageSearcher(folder, threads=self._search_threads)
        return self._searcher

    def search_many(self, queries: Sequence[str], k: int) -> list[list[Passage]]:
        return self._open_passages().search_many(queries, k)

    def info(self) -> dict[str, Any]:
        return dict(self._info)

    def disk_bytes(self, part: str = "counts") -> int:
        """Bytes on disk of the counting structures (`"counts"`) or of the whole folder (`"all"`)."""
        if part == "all":
            return sum(p.stat().st_size for p in self.path.rglob("*") if p.is_file())
        names = ["postings.bin", "postings.off.npy", "df.npy"] + [
            f"{t}.{s}" for t in ("docs", "entities") for s in ("bin", "off.npy", "hash.npy", "order.npy")]
        return sum((self.path / n).stat().st_size for n in names if (self.path / n).exists())

    def close(self) -> None:
        for closable in (self._docs, self._entities):
            closable.close()
        if isinstance(self._postings, mmap.mmap):
            self._postings.close()
        self._postings_file.close()
        if isinstance(self._text, mmap.mmap):
            self._text.close()
        if self._text_file is not None:
            self._text_file.close()
        self._cache.clear()
        if self._searcher is not None:
            self._searcher.close()
        self._searcher = None
