"""Alias-phrase counts on an infini-gram suffix-array index (Liu et al. 2024), document level.

The infini-gram engine counts occurrences of token sequences, and its AND query counts
occurrences inside a window of tokens (`max_diff_tokens`), approximately above a clause
frequency. A relevant-document count needs documents instead. This backend gets them from the
index files themselves:

1. for each of an entity's names and aliases, the word with the fewest hits is looked up in
   its case variants (`case_variants`, tokenized with the index's tokenizer, with and without
   a leading space for subword tokenizers) with the engine's `find`, which returns a range of
   the suffix array per shard;
2. those suffix-array entries (byte offsets into `tokenized.N`) are read from `table.N` and
   mapped to documents through `offset.N` (a sorted array of document starts);
3. every hit is checked against the shared phrase definition (`indexes._phrases.phrase_at`
   on the decoded text around it: the whole name, word for word, whatever separates its
   words), so "cat" in "category" or "Ada" in "Ada's" do not count on a byte-level index, and
   "São-Paulo" or "SÃO\nPaulo" do count for "São Paulo", as they do for Elasticsearch;
4. a pair's count is the size of the intersection of the two document sets; where one side
   has more hits than `max_occurrences` (the per-pair cost cap), the other side's documents
   are read and scanned for it instead (at most `max_check_docs` of them); beyond both caps
   the count is the engine's own window AND count and the record says `"approx": true`.

Window mode (`max_diff_tokens=N`) reports the engine's own semantics instead: occurrences of
any phrase (`q_count`, `a_count`) and co-occurrences of a phrase of each side within N tokens
(`count`), labelled `"mode": "window"`.

Index layout read here (infini-gram `indexing.py`, version 4): per shard `tokenized.N`
(documents, each preceded by a separator token 0xff..), `table.N` (the suffix array, `ratio`
bytes per entry), `offset.N` (uint64 start of each document), optionally `metadata.N` +
`metaoff.N` (one JSON line per document; its `metadata.id` is used as the document id, else
the global document number).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from entity_linking.io import InputError
from indexes._base import DocumentIndex, Passage
from indexes._phrases import (
    PhraseMatcher,
    case_variants,
    phrase_at,
    phrase_key,
    surface_segments,
    surface_words,
    words,
)

DEFAULT_MAX_OCCURRENCES = 100_000
"""Per-side cost cap: suffix-array hits read and checked for one entity."""

DEFAULT_MAX_CHECK_DOCS = 10_000
"""Documents read and scanned for the frequent side of a pair whose other side is capped."""

_CONTEXT = 24  # bytes/tokens of context read on each side of a hit for the word-boundary check


@dataclass
class _Shard:
    ds: np.ndarray
    sa: np.ndarray
    offsets: np.ndarray
    ratio: int
    base: int
    meta: np.ndarray | None = None
    meta_off: np.ndarray | None = None


@dataclass
class _Entity:
    hits: int
    """Raw suffix-array hits of all its spellings (before the word-boundary check)."""
    docs: np.ndarray | None = None
    """Sorted global document numbers holding a phrase (None: above the cost cap)."""
    keys: list[tuple[str, ...]] = field(default_factory=list)
    variants: list[list[int]] = field(default_factory=list)


class InfiniGramIndex(DocumentIndex):
    """Alias-phrase counts over a local infini-gram index folder (byte-level or tokenized).

    `aliases`: entity id -> names. `tokenizer`: `"bytes"` for a byte-level (`u8`) index, else a
    Hugging Face tokenizer name or local folder (the one the index was built with, e.g.
    `meta-llama/Llama-2-7b-hf` for the Pile, Dolma and RedPajama indexes). `max_diff_tokens`
    switches to the engine's window semantics.
    """

    backend = "infini-gram"

    def __init__(self, index_dir: str | os.PathLike, aliases: dict[str, list[str]], *,
                 tokenizer: str = "bytes", token_dtype: str | None = None,
                 eos_token_id: int | None = None, max_occurrences: int = DEFAULT_MAX_OCCURRENCES,
                 max_check_docs: int = DEFAULT_MAX_CHECK_DOCS, max_diff_tokens: int | None = None,
                 max_clause_freq: int = 50_000, approx_window: int = 100):
        self.path = Path(index_dir)
        if not self.path.is_dir():
            raise InputError(f"{self.path}: no such infini-gram index folder")
        names = sorted(self.path.glob("table.*"), key=lambda p: int(p.suffix[1:]) if p.suffix[1:].isdigit() else -1)
        names = [p for p in names if p.suffix[1:].isdigit()]
        if not names:
            raise InputError(f"{self.path}: not an infini-gram index (no table.N files); build one "
                             "with `python -m infini_gram.indexing` or download a prebuilt one")
        if max_occurrences < 1 or max_check_docs < 0:
            raise InputError("--max-occurrences must be at least 1 and --max-check-docs at least 0")
        if max_diff_tokens is not None and max_diff_tokens < 1:
            raise InputError(f"--max-diff-tokens must be at least 1, not {max_diff_tokens}")
        self.tokenizer_name = tokenizer
        self._tok: Any = None
        if tokenizer == "bytes":
            token_dtype = token_dtype or "u8"
            if token_dtype != "u8":
                raise InputError("--tokenizer bytes reads byte-level indexes (--token-dtype u8)")
            eos = 254 if eos_token_id is None else eos_token_id
            vocab = 255
        else:
            from transformers import AutoTokenizer

            try:
                self._tok = AutoTokenizer.from_pretrained(tokenizer, add_bos_token=False, add_eos_token=False)
            except Exception as exc:  # OSError, ValueError: unknown name, no network, ...
                raise InputError(f"cannot load tokenizer {tokenizer!r} ({type(exc).__name__}); give the "
                                 "tokenizer the index was built with (a name or a local folder)") from None
            token_dtype = token_dtype or ("u16" if len(self._tok) <= 65535 else "u32")
            eos = eos_token_id if eos_token_id is not None else (self._tok.eos_token_id or 0)
            vocab = 65535 if token_dtype == "u16" else 2**32 - 1
        self.token_dtype = token_dtype
        self._width = {"u8": 1, "u16": 2, "u32": 4}[token_dtype]
        self._np_dtype = {"u8": np.uint8, "u16": np.uint16, "u32": np.uint32}[token_dtype]
        from infini_gram.engine import InfiniGramEngine

        try:
            self.engine = InfiniGramEngine(index_dir=str(self.path), eos_token_id=eos, vocab_size=vocab,
                                           token_dtype=token_dtype, max_clause_freq=max_clause_freq,
                                           max_diff_tokens=max_diff_tokens or approx_window)
        except Exception as exc:  # the C++ engine raises RuntimeError on damaged folders
            raise InputError(f"{self.path}: the infini-gram engine cannot open it ({exc})") from None
        self._shards: list[_Shard] = []
        base = 0
        for table in names:
            n = table.suffix[1:]
            ds = np.memmap(self.path / f"tokenized.{n}", dtype=np.uint8, mode="r")
            sa = np.memmap(table, dtype=np.uint8, mode="r")
            offsets = np.fromfile(self.path / f"offset.{n}", dtype=np.uint64).astype(np.int64)
            tokens = len(ds) // self._width
            ratio = len(sa) // tokens if tokens else 1
            meta = meta_off = None
            if (self.path / f"metadata.{n}").exists() and (self.path / f"metaoff.{n}").exists():
                meta = np.memmap(self.path / f"metadata.{n}", dtype=np.uint8, mode="r")
                meta_off = np.fromfile(self.path / f"metaoff.{n}", dtype=np.uint64).astype(np.int64)
            self._shards.append(_Shard(ds, sa, offsets, ratio, base, meta, meta_off))
            base += len(offsets)
        self.n_docs = base
        self._bases = np.array([s.base for s in self._shards], dtype=np.int64)
        self.aliases = aliases
        self.max_occurrences = max_occurrences
        self.max_check_docs = max_check_docs
        self.max_diff_tokens = max_diff_tokens
        self.max_clause_freq = max_clause_freq
        self.approx_window = approx_window
        self._entities: dict[str, _Entity] = {}
        self._pairs: dict[tuple[str, str], tuple[int, bool]] = {}
        self._id_map: dict[str, int] | None = None

    # -- tokens and documents ---------------------------------------------------------------
    def _encode(self, text: str) -> list[list[int]]:
        if self._tok is None:
            return [list(text.encode("utf-8"))]
        out = [self._tok.encode(text, add_special_tokens=False)]
        spaced = self._tok.encode(" " + text, add_special_tokens=False)
        while spaced and not self._tok.decode(spaced[:1]).strip():
            spaced = spaced[1:]
        out.append(spaced)
        return [ids for ids in out if ids]

    def _decode(self, raw: bytes) -> str:
        if self._tok is None:
            return raw.decode("utf-8", errors="ignore")
        ids = np.frombuffer(raw[:len(raw) - len(raw) % self._width], dtype=self._np_dtype).tolist()
        return self._tok.decode(ids)

    def _doc_bounds(self, shard: _Shard, local: int) -> tuple[int, int]:
        start = int(shard.offsets[local]) + self._width  # skip the separator token
        end = int(shard.offsets[local + 1]) if local + 1 < len(shard.offsets) else len(shard.ds)
        return start, end

    def _locate(self, doc: int) -> tuple[_Shard, int]:
        s = int(np.searchsorted(self._bases, doc, side="right")) - 1
        return self._shards[s], doc - self._shards[s].base

    def doc_text(self, doc: int) -> str:
        """The text of global document number `doc`."""
        shard, local = self._locate(doc)
        start, end = self._doc_bounds(shard, local)
        return self._decode(bytes(shard.ds[start:end]))

    def doc_id(self, doc: int) -> str:
        """The document's `id` from the index's metadata, else its global number as a string."""
        shard, local = self._locate(doc)
        if shard.meta is not None and shard.meta_off is not None and local < len(shard.meta_off):
            start = int(shard.meta_off[local])
            end = int(shard.meta_off[local + 1]) if local + 1 < len(shard.meta_off) else len(shard.meta)
            try:
                record = json.loads(bytes(shard.meta[start:end]).decode("utf-8"))
                value = (record.get("metadata") or {}).get("id")
                if value is not None:
                    return str(value)
            except (ValueError, AttributeError):
                pass
        return str(doc)

    def _pointers(self, shard: _Shard, lo: int, hi: int) -> np.ndarray:
        raw = np.asarray(shard.sa[lo * shard.ratio:hi * shard.ratio]).reshape(-1, shard.ratio).astype(np.int64)
        ptrs = np.zeros(len(raw), dtype=np.int64)
        for k in range(shard.ratio):
            ptrs |= raw[:, k] << (8 * k)
        return ptrs

    def _hit_ok(self, shard: _Shard, local: int, ptr: int, length: int, key: tuple[str, ...],
                position: int, margin: int) -> bool:
        start, end = self._doc_bounds(shard, local)
        w = self._width
        a = max(start, ptr - margin * w)
        b = min(end, ptr + length + margin * w)
        if self._tok is None:
            prefix = bytes(shard.ds[a:ptr]).decode("utf-8", errors="ignore")
            needle = bytes(shard.ds[ptr:ptr + length]).decode("utf-8", errors="ignore")
            suffix = bytes(shard.ds[ptr + length:b]).decode("utf-8", errors="ignore")
            return phrase_at(prefix + needle + suffix, len(prefix), len(prefix) + len(needle), key, position)
        text = self._decode(bytes(shard.ds[a:b]))
        left = len(self._decode(bytes(shard.ds[a:ptr])))
        right = len(self._decode(bytes(shard.ds[a:ptr + length])))
        while left < right and text[left].isspace():
            left += 1
        return phrase_at(text, left, right, key, position)

    def _quick_check(self, shard: _Shard, ptrs: np.ndarray, local: np.ndarray, ids: list[int],
                     single_word: bool) -> tuple[np.ndarray, np.ndarray]:
        """Byte-level hits decided from the bytes next to them, vectorized: (kept, to check).
        An ASCII letter or digit next to an ASCII letter or digit of the hit joins them into one
        word (rejected); a one-word name between whitespace (or document edges) is a word
        (kept). Everything else goes to the exact check on decoded text (`phrase_at`)."""
        everything = np.arange(len(ptrs))
        if self._tok is not None or not len(ptrs):
            return everything[:0], everything
        ds = shard.ds
        starts = shard.offsets[local] + 1
        ends = np.where(local + 1 < len(shard.offsets),
                        shard.offsets[np.minimum(local + 1, len(shard.offsets) - 1)], len(ds))
        after_pos = ptrs + len(ids)
        before = np.where(ptrs - 1 >= starts, np.asarray(ds[np.maximum(ptrs - 1, 0)]), 32)
        after = np.where(after_pos < ends, np.asarray(ds[np.minimum(after_pos, len(ds) - 1)]), 32)

        def alnum(b: Any) -> Any:
            return ((b >= 48) & (b <= 57)) | ((b >= 65) & (b <= 90)) | ((b >= 97) & (b <= 122))

        def space(b: Any) -> Any:
            return (b == 32) | (b == 10) | (b == 9) | (b == 13)

        reject = np.zeros(len(ptrs), dtype=bool)
        if alnum(ids[0]):
            reject |= alnum(before)
        if alnum(ids[-1]):
            reject |= alnum(after)
        sure = ~reject & space(before) & space(after) if single_word else np.zeros(len(ptrs), dtype=bool)
        return everything[sure], everything[~reject & ~sure]

    # -- per-entity document sets ------------------------------------------------------------
    def _find(self, ids: list[int]) -> dict[str, Any]:
        result = self.engine.find(ids)
        if "error" in result:
            raise InputError(f"infini-gram refused a query: {result['error']}")
        return result

    def _entity(self, entity: str) -> _Entity:
        """Each name is looked up by its word with the fewest hits (in its case variants); every
        hit is kept when the whole name occurs around it (`phrase_at`)."""
        found = self._entities.get(entity)
        if found is not None:
            return found
        lookups = []  # (token ids, key, position of the looked-up word, margin, find result)
        phrases: dict[tuple[int, ...], list[int]] = {}
        hits = 0
        for name in self.aliases.get(entity, []):
            key = phrase_key(name)
            surface = surface_words(name)
            if not key or len(surface) != len(key):
                continue
            for spelling in case_variants(name):  # whole-phrase spellings: window AND clauses
                for ids in self._encode(spelling):
                    phrases[tuple(ids)] = ids
            # byte-level: any word of the name; subword: whitespace-separated pieces, where tokens line up
            pieces = list(enumerate(surface)) if self._tok is None else surface_segments(name)
            best = None
            for position, word in pieces:
                found_word = []
                total = 0
                n = len(words(word))
                for spelling in case_variants(word):
                    if tuple(words(spelling)) != key[position:position + n]:
                        continue
                    for ids in self._encode(spelling):
                        result = self._find(ids)
                        total += int(result["cnt"])
                        found_word.append((ids, result))
                if best is None or total < best[0]:
                    best = (total, position, found_word)
            total, position, found_word = best  # type: ignore[misc]
            margin = _CONTEXT + 4 * len(name.encode("utf-8"))
            seen: set[tuple[int, ...]] = set()
            for ids, result in found_word:
                if tuple(ids) not in seen:
                    seen.add(tuple(ids))
                    lookups.append((ids, key, position, margin, result))
                    hits += int(result["cnt"])
        info = _Entity(hits=hits, keys=list({k for _, k, _, _, _ in lookups}), variants=list(phrases.values()))
        if hits <= self.max_occurrences and self.max_diff_tokens is None:  # window mode needs no documents
            docs: list[np.ndarray] = []
            for ids, key, position, margin, result in lookups:
                length = len(ids) * self._width
                for shard, (lo, hi) in zip(self._shards, result["segment_by_shard"]):
                    if hi <= lo:
                        continue
                    ptrs = self._pointers(shard, int(lo), int(hi))
                    local = np.searchsorted(shard.offsets, ptrs, side="right") - 1
                    sure, unsure = self._quick_check(shard, ptrs, local, ids, len(key) == 1)
                    keep = [i for i in unsure
                            if self._hit_ok(shard, int(local[i]), int(ptrs[i]), length, key, position, margin)]
                    docs.append(local[sure] + shard.base)
                    docs.append(local[keep] + shard.base)
            info.docs = np.unique(np.concatenate(docs)) if docs else np.zeros(0, dtype=np.int64)
        if len(self._entities) > 200_000:
            self._entities.clear()
        self._entities[entity] = info
        return info

    def _cnf_clause(self, info: _Entity) -> list[list[int]]:
        return [list(v) for v in info.variants]

    # -- DocumentIndex ------------------------------------------------------------------------
    def doc_freq(self, entity: str) -> int:
        return self.doc_freqs([entity])[0]

    def doc_freqs(self, entities: Sequence[str]) -> list[int]:
        out = []
        for e in entities:
            info = self._entity(e)
            if self.max_diff_tokens is not None:  # the engine's count of any spelling of any name
                out.append(self._occurrences(info))
            elif info.docs is not None:
                out.append(int(len(info.docs)))
            else:
                out.append(info.hits)  # above the cap: hits of the looked-up words, an upper bound
        return out

    def _occurrences(self, info: _Entity) -> int:
        if not info.variants:
            return 0
        result = self.engine.count_cnf([self._cnf_clause(info)], max_clause_freq=self.max_clause_freq,
                                       max_diff_tokens=self.max_diff_tokens or self.approx_window)
        if "error" in result:
            raise InputError(f"infini-gram refused a query: {result['error']}")
        return int(result["count"])

    def entity_approx(self, entity: str) -> bool:
        """Whether the entity's count is not an exact document frequency."""
        return self.max_diff_tokens is None and self._entity(entity).docs is None

    def count_cooccurrence(self, pairs: Sequence[tuple[str, str]]) -> list[int]:
        return [self._pair(tuple(p))[0] for p in pairs]  # type: ignore[arg-type]

    def pair_approx(self, pair: Sequence[str]) -> bool:
        """Whether the pair's count is the engine's estimate (above the cost cap) or approximate
        in the engine's own sense (window mode)."""
        return self._pair(tuple(pair))[1]  # type: ignore[arg-type]

    def window_count(self, a: str, b: str, max_diff_tokens: int | None = None) -> tuple[int, bool]:
        """The engine's own AND count: occurrences of a phrase of `a` and one of `b` within
        `max_diff_tokens` tokens (0 when either side has no phrase)."""
        qa, qb = self._entity(a), self._entity(b)
        if not qa.variants or not qb.variants:
            return 0, False
        result = self.engine.count_cnf([self._cnf_clause(qa), self._cnf_clause(qb)],
                                       max_clause_freq=self.max_clause_freq,
                                       max_diff_tokens=max_diff_tokens or self.max_diff_tokens or self.approx_window)
        if "error" in result:
            raise InputError(f"infini-gram refused a query: {result['error']}")
        return int(result["count"]), bool(result["approx"])

    def _pair(self, pair: tuple[str, str]) -> tuple[int, bool]:
        found = self._pairs.get(pair)
        if found is not None:
            return found
        a, b = pair
        if self.max_diff_tokens is not None:
            result = self.window_count(a, b)
        elif a == b:
            info = self._entity(a)
            result = (int(len(info.docs)), False) if info.docs is not None else (info.hits, True)
        else:
            result = self._exact_pair(a, b)
        if len(self._pairs) > 1_000_000:
            self._pairs.clear()
        self._pairs[pair] = result
        return result

    def _exact_pair(self, a: str, b: str) -> tuple[int, bool]:
        x, y = self._entity(a), self._entity(b)
        if x.docs is not None and y.docs is not None:
            return int(len(np.intersect1d(x.docs, y.docs, assume_unique=True))), False
        rare, other = (x, b) if x.docs is not None else (y, a) if y.docs is not None else (None, None)
        if rare is not None and len(rare.docs) <= self.max_check_docs:  # type: ignore[arg-type]
            matcher = PhraseMatcher({other: self.aliases.get(other, [])})
            return sum(1 for d in rare.docs if matcher.match(self.doc_text(int(d)))), False  # type: ignore[union-attr]
        return self.window_count(a, b)[0], True

    def docs_with(self, entities: Sequence[str], limit: int | None = None) -> list[str]:
        if not entities:
            raise ValueError("docs_with needs at least one entity")
        infos = [self._entity(e) for e in entities]
        exact = [i.docs for i in infos if i.docs is not None]
        if not exact:
            raise InputError("every entity is above the cost cap (--max-occurrences); raise it to list documents")
        docs = exact[0]
        for other in exact[1:]:
            docs = np.intersect1d(docs, other, assume_unique=True)
        rest = {e: self.aliases.get(e, []) for e, i in zip(entities, infos) if i.docs is None}
        ids = []
        matcher = PhraseMatcher(rest) if rest else None
        for d in docs:
            if limit is not None and len(ids) >= limit:
                break
            if matcher is None or len(matcher.match(self.doc_text(int(d)))) == len(rest):
                ids.append(self.doc_id(int(d)))
        return ids

    def get_text(self, doc_id: str) -> str | None:
        """The text of a document by its id (a metadata `id`, or a document number). Ids other
        than numbers are mapped by reading all the index's metadata once: fine for small indexes."""
        if self._id_map is None and str(doc_id).isdigit() and int(doc_id) < self.n_docs \
                and self.doc_id(int(doc_id)) == str(doc_id):
            return self.doc_text(int(doc_id))
        if self._id_map is None:
            self._id_map = {self.doc_id(d): d for d in range(self.n_docs)}
        d = self._id_map.get(str(doc_id))
        return None if d is None else self.doc_text(d)

    def search_many(self, queries: Sequence[str], k: int) -> list[list[Passage]]:
        raise InputError("an infini-gram index has no BM25 passages; retrieve from an `ltprobe index`")

    def annotate(self, record: dict[str, Any], q: list[str], a: list[str]) -> None:
        """Add this backend's fields to a counts.jsonl record: `approx`, `q_count_approx`,
        `a_count_approx`, `mode` ("document" or "window") and `backend`."""
        record["backend"] = self.backend
        record["mode"] = "window" if self.max_diff_tokens is not None else "document"
        if self.max_diff_tokens is not None:
            record["max_diff_tokens"] = self.max_diff_tokens
        record["approx"] = bool(record.get("pair")) and self.pair_approx(record["pair"])
        record["q_count_approx"] = any(self.entity_approx(e) for e in q)
        record["a_count_approx"] = any(self.entity_approx(e) for e in a)

    def info(self) -> dict[str, Any]:
        return {"backend": self.backend, "path": str(self.path), "tokenizer": self.tokenizer_name,
                "token_dtype": self.token_dtype, "n_docs": self.n_docs, "shards": len(self._shards),
                "mode": "window" if self.max_diff_tokens is not None else "document",
                "max_occurrences": self.max_occurrences, "max_check_docs": self.max_check_docs}

    def close(self) -> None:
        self._entities.clear()
        self._pairs.clear()
        self._shards = []
