"""The embedded backend: an on-disk index folder, no server.

Chosen by measurement (docs/benchmarks.md, `ltprobe bench count`): a hybrid.
- Counts: one compressed roaring bitmap of document numbers per entity (`pyroaring`), the
  original study's per-entity document sets in a faster form. A pair count is one
  `intersection_cardinality`; tantivy conjunctive queries on an entity keyword field were
  about 10 times slower per count on the same data (`ltprobe bench count --compare-tantivy`,
  300,000 documents: 1,820 vs 18,154 counts/s on a shared machine).
- Text: documents' full text in a flat file with offsets (`get_text`, `ltprobe docs`).
- Retrieval: passages of about 100 words in a tantivy index (BM25, Lucene's formula); hits
  are read by passage number from a flat passage store, not tantivy's doc store (issue 6).

Folder layout (format version `FORMAT_VERSION`):
`index.json`, `docs.*` (document ids, a `StringTable`), `entities.*` (entity ids),
`postings.bin` + `postings.off.npy` (per entity, in entity order: a serialized roaring bitmap,
or for entities in fewer than `RAW_POSTINGS_BELOW` documents a little-endian uint32 array),
`df.npy` (document frequency per entity), `text.bin` + `text.off.npy`, `passages/`
(`index/`: tantivy, the text indexed and a fast field `n`, the passage number;
`doc_ids.*`, `passage_ids.*`, `passage_text.*`: per passage number, `.bin` + `.off.npy`).
Version 1 kept the passages in tantivy's doc store.
"""

from __future__ import annotations

import mmap
import os
import shutil
import tempfile
import time
from array import array
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from entity_linking.io import InputError, SkipCounter, write_json
from indexes._base import (INDEX_INFO, DocumentIndex, Passage, check_version,
                           read_index_info)
from indexes._strings import StringTable, write_strings
from indexes._text import TOKENIZER_NAME, analyzer, iter_corpus, iter_texts, query_terms, split_passages

FORMAT_VERSION = 2
"""Version of the embedded index folder layout; an index of another version is refused."""

_MAX_DOCS = 2**32 - 1  # document numbers are uint32 (roaring bitmaps)

RAW_POSTINGS_BELOW = 128
"""Entities in fewer documents keep a plain sorted uint32 array (4 bytes a document) instead
of a serialized roaring bitmap, whose per-container headers cost more for sparse sets."""


def _passage_schema() -> Any:
    import tantivy

    builder = tantivy.SchemaBuilder()
    # Only what BM25 needs: the text is indexed, not stored; `n` (the passage number, a fast
    # field) leads back to the passage store, which is faster than tantivy's compressed doc store.
    builder.add_text_field("text", stored=False, tokenizer_name=TOKENIZER_NAME, index_option="freq")
    builder.add_unsigned_field("n", fast=True)
    return builder.build()


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
        self._offsets = np.asarray(np.load(folder / f"{name}.off.npy", mmap_mode="r"))
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


class PassageWriter:
    """Writes a passages folder: a tantivy index (`index/`) of the text, for BM25, and the
    passage store (`doc_ids.*`, `passage_ids.*`, `passage_text.*`) that hits are read from."""

    def __init__(self, folder: Path, *, heap_bytes: int = 256_000_000, threads: int = 0):
        import tantivy

        (folder / "index").mkdir(parents=True, exist_ok=True)
        self._tantivy = tantivy
        self._index = tantivy.Index(_passage_schema(), path=str(folder / "index"))
        self._index.register_tokenizer(TOKENIZER_NAME, analyzer())
        self._writer = self._index.writer(heap_bytes, threads)
        self._store = [_FlatWriter(folder, name) for name in _STORE]
        self.n = 0

    def add_document(self, doc_id: str, text: str, passage_words: int) -> None:
        """Split a document into passages and add them (passage ids `doc_id#0`, `doc_id#1`, ...)."""
        for i, passage in enumerate(split_passages(text, passage_words)):
            self.add_passage(doc_id, f"{doc_id}#{i}", passage)

    def add_passage(self, doc_id: str, passage_id: str, text: str) -> None:
        doc = self._tantivy.Document()
        doc.add_text("text", text)
        doc.add_unsigned("n", self.n)
        self._writer.add_document(doc)
        for store, value in zip(self._store, (doc_id, passage_id, text)):
            store.add(value)
        self.n += 1

    def commit(self) -> None:
        self._writer.commit()
        self._writer.wait_merging_threads()
        for store in self._store:
            store.close()


_K1 = 1.2
"""tantivy's BM25 k1 (fixed in tantivy; b = 0.75): a term scores below idf * (k1 + 1)."""


def default_search_threads() -> int:
    """Threads `search_many` uses by default: the CPUs this process may run on, at most 8."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return max(1, min(8, cpus))


class PassageSearcher:
    """BM25 top-k search over a passages folder written by `PassageWriter`.

    Speed (issue 6, docs/benchmarks.md): tantivy-py collects hits through a `MultiCollector`,
    which turns off tantivy's block-max WAND, so a plain disjunction scores every passage that
    contains any query term. `_top` instead runs a MaxScore-style search that gives the same
    top k (see there); queries run on `threads` threads (tantivy releases the GIL while it
    searches), and hits are read from the passage store by passage number.
    """

    def __init__(self, folder: Path, *, threads: int | None = None):
        import tantivy

        if not (folder / "index").is_dir():
            raise InputError(f"{folder}: no passage index in the expected layout; rebuild the index "
                             "with `ltprobe index`")
        self._tantivy = tantivy
        self._index = tantivy.Index.open(str(folder / "index"))
        self._index.register_tokenizer(TOKENIZER_NAME, analyzer())
        self._schema = self._index.schema
        self._searcher = self._index.searcher()
        self._n_docs = self._searcher.num_docs
        self._store = [_FlatReader(folder, name) for name in _STORE]
        self.threads = default_search_threads() if threads is None else max(1, threads)
        self._pool: Any = None

    def _term(self, term: str) -> Any:
        return self._tantivy.Query.term_query(self._schema, "text", term)

    def _disjunction(self, terms: Sequence[str]) -> Any:
        Query, Should = self._tantivy.Query, self._tantivy.Occur.Should
        return self._term(terms[0]) if len(terms) == 1 else Query.boolean_query(
            [(Should, self._term(t)) for t in terms])

    def _top(self, terms: Sequence[str], k: int) -> list[tuple[float, Any]]:
        """Top-k `(score, address)` of the disjunction of `terms`, each weighing once (BM25).

        MaxScore: with terms sorted rarest first, a passage that contains none of the first m
        ("essential") terms scores at most the sum of the others' bounds idf * (k1 + 1). So
        when the k-th best score among passages that contain an essential term exceeds that
        sum, those k are the top k of the full disjunction. The essential terms' passages are
        found by a disjunction and the other terms are added one by one as optional clauses
        (each a single term scorer that skips to the candidate, instead of a union that would
        walk its whole posting list). The first try takes m = 1; its k-th score is a lower
        bound on the true k-th score, which gives the m of the second try; when neither is
        conclusive (fewer than k candidates) the plain disjunction is run.
        """
        searcher, Query, Occur = self._searcher, self._tantivy.Query, self._tantivy.Occur
        dfs = [searcher.doc_freq("text", t) for t in terms]
        ranked = sorted((df, i) for i, df in enumerate(dfs) if df)  # unknown terms score nothing
        terms = [terms[i] for _, i in ranked]
        if len(terms) <= 1:
            return searcher.search(self._disjunction(terms), k, count=False).hits if terms else []
        n = self._n_docs
        # tantivy's idf and the tf part's supremum k1 + 1; the margin covers float32 scores.
        bounds = [np.log1p((n - df + 0.5) / (df + 0.5)) * (_K1 + 1) * 1.001 + 1e-4 for df, _ in ranked]
        # rest[m - 1]: the bound of a passage that contains none of terms[:m]
        rest = np.concatenate([np.cumsum(bounds[::-1])[::-1][1:], [0.0]]).tolist()
        m = 1
        for _ in range(2):
            query = self._disjunction(terms[:m])
            for term in terms[m:]:
                query = Query.boolean_query([(Occur.Must, query), (Occur.Should, self._term(term))])
            hits = searcher.search(query, k, count=False).hits
            if len(hits) < k:
                break
            kth = hits[-1][0]
            if kth > rest[m - 1]:
                return hits
            while m < len(terms) and rest[m - 1] >= kth:
                m += 1
            if m == len(terms):
                break
        return searcher.search(self._disjunction(terms), k, count=False).hits

    def _run(self, term_lists: Sequence[list[str]], k: int) -> list[list[tuple[float, int]]]:
        out = []
        for terms in term_lists:
            hits = self._top(terms, k) if terms else []
            numbers = self._searcher.fast_field_values("n", [address for _, address in hits]) if hits else []
            out.append([(float(score), int(number)) for (score, _), number in zip(hits, numbers)])
        return out

    def search_many(self, queries: Sequence[str], k: int) -> list[list[Passage]]:
        if k <= 0 or not queries:
            return [[] for _ in queries]
        term_lists = [query_terms(q) for q in queries]
        if self.threads > 1 and len(queries) > 1:
            if self._pool is None:
                from concurrent.futures import ThreadPoolExecutor

                self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="ltprobe-search")
            size = max(1, min(16, -(-len(term_lists) // self.threads)))  # small chunks balance the load
            chunks = [term_lists[i:i + size] for i in range(0, len(term_lists), size)]
            found = [hits for part in self._pool.map(lambda c: self._run(c, k), chunks) for hits in part]
        else:
            found = self._run(term_lists, k)
        doc_ids, passage_ids, texts = self._store
        return [[Passage(doc_id=doc_ids[i], passage_id=passage_ids[i], text=texts[i], score=score)
                 for score, i in hits] for hits in found]

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None
        for store in self._store:
            store.close()


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
                   progress: bool = True) -> dict[str, Any]:
    """Build the embedded index folder `out` (see `indexes.build_index`).

    The index is written to a temporary folder beside `out` and moved into place at the end,
    so an interrupted build never leaves a half-written index under the final name.
    """
    from tqdm import tqdm

    out = Path(out)
    if out.exists() and any(out.iterdir()) and not (out / INDEX_INFO).exists():
        raise InputError(f"{out}: exists and is not an ltprobe index; choose another --out folder")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    started = time.perf_counter()
    skips = SkipCounter()
    try:
        writer = EmbeddedWriter(tmp)
        passage_writer = PassageWriter(tmp / "passages")
        docs = iter_corpus(corpus, linked_dir, on_error=on_error, skips=skips)
        for doc_id, entities, text in tqdm(docs, desc="index", unit=" docs", disable=not progress):
            writer.add(doc_id, entities, text)
            if passages is None:
                passage_writer.add_document(doc_id, text, passage_words)
        if passages is not None:
            for doc_id, text in tqdm(iter_texts(passages, on_error=on_error, skips=skips),
                                     desc="passages", unit=" docs", disable=not progress):
                passage_writer.add_document(doc_id, text, passage_words)
        passage_writer.commit()
        info = writer.finish({
            "n_passages": passage_writer.n, "passage_words": passage_words,
            "passages_from": str(passages) if passages is not None else "corpus",
            "corpus": str(corpus), "linked": str(linked_dir) if linked_dir is not None else None,
            "skipped_records": skips.skipped,
            "build_seconds": round(time.perf_counter() - started, 3),
        })
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if skips.skipped:
        info["skipped_summary"] = skips.summary()
    return info


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
        try:
            self._docs = StringTable(self.path, "docs")
            self._entities = StringTable(self.path, "entities")
            self._df = np.asarray(np.load(self.path / "df.npy", mmap_mode="r"))
            self._postings_off = np.asarray(np.load(self.path / "postings.off.npy", mmap_mode="r"))
            self._postings_file = open(self.path / "postings.bin", "rb")
            size = int(self._postings_off[-1]) if len(self._postings_off) else 0
            self._postings: mmap.mmap | bytes = (
                mmap.mmap(self._postings_file.fileno(), 0, access=mmap.ACCESS_READ) if size else b"")
        except (OSError, ValueError) as exc:
            raise InputError(f"{self.path}: index files are missing or damaged ({exc}); "
                             "rebuild it with `ltprobe index`") from None
        self._text_off = self._text = self._text_file = None
        self._cache: dict[int, Any] = {}
        self._cache_limit = cache_bitmaps
        self._raw_below = int(self._info.get("raw_postings_below", 0))
        self._searcher: PassageSearcher | None = None
        self._search_threads = search_threads

    # -- counts ---------------------------------------------------------------------------
    def _bitmap(self, e: int) -> Any:
        bitmap = self._cache.get(e)
        if bitmap is None:
            from pyroaring import FrozenBitMap

            if len(self._cache) >= self._cache_limit:
                self._cache.clear()
            start, end = int(self._postings_off[e]), int(self._postings_off[e + 1])
            if int(self._df[e]) < self._raw_below:  # a short sorted uint32 array
                ids = array("I")
                ids.frombytes(self._postings[start:end])
                bitmap = FrozenBitMap(ids)
            else:
                bitmap = FrozenBitMap.deserialize(self._postings[start:end])
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

    # -- text -----------------------------------------------------------------------------
    def get_text(self, doc_id: str) -> str | None:
        if not self._info.get("has_text", True):
            return None
        d = self._docs.find(doc_id)
        if d is None:
            return None
        if self._text_off is None:
            self._text_off = np.asarray(np.load(self.path / "text.off.npy", mmap_mode="r"))
            self._text_file = open(self.path / "text.bin", "rb")
            size = int(self._text_off[-1])
            self._text = mmap.mmap(self._text_file.fileno(), 0, access=mmap.ACCESS_READ) if size else b""
        return self._text[int(self._text_off[d]):int(self._text_off[d + 1])].decode("utf-8")

    # -- retrieval ------------------------------------------------------------------------
    def _open_passages(self) -> PassageSearcher:
        if self._searcher is None:
            folder = self.path / "passages"
            if not folder.exists():
                raise InputError(f"{self.path}: this index has no passages; rebuild it with "
                                 "`ltprobe index` to search it")
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
        return sum((self.path / n).stat().st_size for n in names)

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
