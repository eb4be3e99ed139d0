"""The knowledge base: entities, their aliases, and the alias matcher that linking searches.

A `KnowledgeBase` is built from the contract's `kb.jsonl`, from TSV/CSV alias tables, from
PopQA-style rows or from a streamed Wikidata JSON dump (the readers of `entity_linking.kb._sources`,
by name: `from_source`), and saved to a folder that opens in a
second whatever its size (`KnowledgeBase.load`): every structure is a flat numpy array saved
as `.npy` and memory-mapped read-only, so worker processes share its pages (page cache)
instead of each holding a copy, and nothing in the folder can run code when it is opened (no
pickle; `allow_pickle=False`). `KnowledgeBase.write` builds a folder from a stream of
entities without keeping Python objects per entity (`ltprobe kb build` uses it).

Saved folder (format 4; `entity_linking.kb._store` has the structures):

- `kb.json` — format name and version, counts, array names, dtypes and shapes;
- entities: `ids`, `names`, `types`, `descriptions` and `aliases` (UTF-8 blob + offsets
  each: `<column>.blob.npy`, `<column>.off.npy`), `alias_start.npy` (entity -> first alias),
  `priors.npy`, and the id lookup table `id_tab.npy`, `id_hash.npy`;
- the alias matcher: the keys (normalized alias variants) and their packed values (`key_*`,
  see `_pack`), the table of keys and their word prefixes (`t_rows.npy`: one row of two
  64-bit words per slot);
- `group_off.npy`, `group_mem.npy` — the candidate lists of ambiguous keys (CSR), and
  `group_prior.npy` — each member's log prior share within its group (as `Linker` takes it);
- `shape_keys.npy`, `shape_off.npy`, `shape_blob.npy` — the punctuation of aliases whose keys
  hold punctuation ("Springfield, Illinois"), so that a match across sentence punctuation can
  be refused;
- `df_*.npy` — the words of types and descriptions with their document frequencies (context
  weights), `word_weight.npy` — each word's weight, and `ctx_off.npy`, `ctx_word.npy` — each
  entity's context words as word indices (CSR, sorted): what disambiguation reads per
  candidate, so that a mention's candidates are scored in one kernel call (`contexts`).

A folder of format 1 (pickle-era pyahocorasick automaton), format 2 (the same arrays, but the
table as five parallel arrays `t_hash`, `t_rep`, `t_len`, `t_full`, `t_ext`) or format 3 (no
context arrays) is refused with a one-line error that says to rebuild it with `ltprobe kb build`.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from entity_linking._normalize import alias_variants, is_cased, normalize, punctuation_shape
from entity_linking.io import InputError, OnError, SkipCounter, write_json
from entity_linking.kb._entity import Entity
from entity_linking.kb._sources import read_entities

logger = logging.getLogger(__name__)

FORMAT = "ltprobe-kb"
VERSION = 4
MAX_KEY_CHARS = 4000

# Words too common to say anything about which entity is meant (context scoring ignores them).
STOPWORDS = frozenset(
    "a an the of in on at to for from by with and or but as is was are were be been being it its "
    "this that these those he she they his her their him them who whom which what when where "
    "s t also has had have not no than then there here into over under about after before".split())


def _pack(payload: int, ambiguous: bool, key_len: int, cased: bool, punctuated: bool = False) -> int:
    """Automaton value: entity index or ambiguous-group index, whether the key came from
    punctuation followed by a space (then the text's punctuation is checked, see
    `KnowledgeBase.punctuation_ok`), key length and a case flag."""
    return (((payload << 1) | ambiguous) << 14) | (punctuated << 13) | (key_len << 1) | cased


PAYLOAD_SHIFT = 14
PUNCTUATED = 1 << 13


class KnowledgeBase:
    """Entities with aliases, and the alias automaton used by `Linker`.

    `len(kb)` is the number of entities; `kb[entity_id]` returns an `Entity`; `entity_id in kb`
    tests membership. Build with one of the `from_*` constructors, save with `save(dir)`,
    reopen with `KnowledgeBase.load(path)`.
    """

    def __init__(self, entities: Iterable[Entity] = (), *, source: str = "<memory>"):
        self.ids: list[str] = []
        self.names: list[str] = []
        self.aliases: list[list[str]] = []
        self.types: list[str] = []
        self.descriptions: list[str] = []
        self.priors: list[float] = []
        self.index: dict[str, int] = {}
        self.source = source
        self._meta: dict[str, Any] | None = None  # kb.json of a loaded folder
        self._index: dict[str, Any] | None = None  # the matcher's arrays (see `_KeyCollector.finish`)
        self._matcher = None
        self._shape_cache: dict[int, frozenset] = {}
        self._shape_column = None  # the shapes of punctuated keys as strings (`_shapes_of`)
        self._punctuation_cache: dict[str, bool] = {}
        self._df = None
        self._context_cache: dict[int, dict[str, float]] = {}
        self._context: tuple | None = None  # the arrays of `contexts` (see `_context_arrays`)
        for entity in entities:
            self.add(entity)

    # -- building ---------------------------------------------------------------------------

    def add(self, entity: Entity) -> None:
        """Add an entity; raises `ValueError` (with a reason) on a duplicate id or empty alias."""
        if self._meta is not None:
            raise ValueError(f"{self.source}: a loaded knowledge base is read-only; build a new one")
        if entity.id in self.index:
            raise ValueError(f"duplicate entity id {entity.id!r}")
        _check_entity(entity)
        self.index[entity.id] = len(self.ids)
        self.ids.append(entity.id)
        self.names.append(entity.name)
        self.aliases.append([a for a in dict.fromkeys(entity.aliases) if a != entity.name])
        self.types.append(entity.type or "")
        self.descriptions.append(entity.description or "")
        self.priors.append(float(entity.prior))
        self._index = None
        self._matcher = None
        self._df = None
        self._context = None
        self._context_cache.clear()
        self._shape_cache.clear()

    @classmethod
    def from_records(cls, records: Iterable[dict[str, Any]], *, source: str = "<memory>") -> KnowledgeBase:
        """Build from in-memory dicts shaped like `kb.jsonl` records."""
        from entity_linking.kb._sources.jsonl import entity_from_record

        kb = cls(source=source)
        for n, record in enumerate(records, 1):
            try:
                kb.add(entity_from_record(record))
            except ValueError as exc:
                raise InputError(f"{source}:{n}: {exc}") from None
        return kb

    @classmethod
    def from_source(cls, source: str, path: str | os.PathLike, *, on_error: OnError = "fail",
                    skips: SkipCounter | None = None, **options: Any) -> KnowledgeBase:
        """Build from `path` read as `source` ("jsonl", "table", "popqa", "wikidata", or "auto"
        to guess it; the readers of `entity_linking.kb._sources`), with that reader's `options`.

        A bad record or entity (a duplicate id, an empty alias, a negative prior) is refused
        with `FILE:LINE: reason`, or skipped and counted with `on_error="skip"`; an input
        without entities is refused.
        """
        skips = skips if skips is not None else SkipCounter()
        kb = cls(source=str(path))
        for where, entity in read_entities(source, path, on_error=on_error, skips=skips, **options):
            try:
                kb.add(entity)
            except ValueError as exc:
                skips.bad_record(f"{where}: {exc}", on_error)
        if not len(kb):
            raise InputError(f"{path}: no entities")
        return kb

    @classmethod
    def from_jsonl(cls, path: str | os.PathLike, on_error: OnError = "fail",
                   skips: SkipCounter | None = None) -> KnowledgeBase:
        """Read the contract's `kb.jsonl` (`.gz`/`.zst` too).

        Each line: `{"id": str, "name": str, "aliases": [str], "prior": float, "type": str,
        "description": str}`; only `id` and `name` are required. A duplicate id, an empty alias
        or a negative prior is refused with `FILE:LINE: reason` (or skipped and counted with
        `on_error="skip"`).
        """
        return cls.from_source("jsonl", path, on_error=on_error, skips=skips)

    @classmethod
    def from_table(cls, path: str | os.PathLike, columns: dict[str, str] | None = None, *,
                   delimiter: str | None = None, alias_separator: str = "|",
                   on_error: OnError = "fail", skips: SkipCounter | None = None) -> KnowledgeBase:
        """Build from a TSV/CSV alias table with a header row (see
        `entity_linking.kb._sources.table.table_entities`: `columns` maps entity fields to
        column names; rows that repeat an id merge)."""
        return cls.from_source("table", path, columns=columns, delimiter=delimiter,
                               alias_separator=alias_separator, on_error=on_error, skips=skips)

    @classmethod
    def from_popqa(cls, path: str | os.PathLike, *, on_error: OnError = "fail",
                   skips: SkipCounter | None = None) -> KnowledgeBase:
        """Build from PopQA-style rows: subjects and objects as entities (see
        `entity_linking.kb._sources.popqa.popqa_entities`)."""
        return cls.from_source("popqa", path, on_error=on_error, skips=skips)

    @classmethod
    def from_wikidata(cls, path: str | os.PathLike, *, language: str = "en", limit: int | None = None,
                      min_sitelinks: int = 0, on_error: OnError = "fail",
                      skips: SkipCounter | None = None, progress: bool = True) -> KnowledgeBase:
        """Stream a Wikidata JSON dump (`.json`, `.json.gz`, `.json.bz2`) without loading it into
        memory: entities with a label in `language`, at least `min_sitelinks` sitelinks, at most
        `limit` of them (see `entity_linking.kb._sources.wikidata.wikidata_entities`)."""
        return cls.from_source("wikidata", path, language=language, limit=limit, min_sitelinks=min_sitelinks,
                               on_error=on_error, skips=skips, progress=progress)

    # -- saving and loading -----------------------------------------------------------------

    def save(self, directory: str | os.PathLike, progress: bool = False) -> Path:
        """Write the folder described in the module docstring; returns its path."""
        return KnowledgeBase.write(iter(self), directory, source=self.source, progress=progress)

    @staticmethod
    def write(entities: Iterable[Entity | tuple[str, Entity]], directory: str | os.PathLike, *,
              source: str = "<memory>", progress: bool = True, on_error: OnError = "fail",
              skips: SkipCounter | None = None) -> Path:
        """Build a knowledge-base folder from a stream of entities (or `(where, entity)` pairs,
        `where` naming the record in errors: "FILE:LINE") without holding Python objects per
        entity: the strings go into flat byte buffers as they come, the alias keys into flat
        arrays that are de-duplicated and indexed at the end (numba kernels). A bad entity (a
        duplicate id, an empty alias, a negative prior) raises `InputError("WHERE: reason")`, or
        is skipped and counted with `on_error="skip"`. Returns the folder."""
        from entity_linking.logs import progress_bar

        skips = skips if skips is not None else SkipCounter()
        writer = _Writer(source)
        bar = progress_bar(desc="kb build", unit=" entities", enabled=progress, mininterval=1.0)
        n = 0
        for item in entities:
            where, entity = item if isinstance(item, tuple) else (f"{source}:{n + 1}", item)
            n += 1
            try:
                writer.add(entity)
            except ValueError as exc:
                skips.bad_record(f"{where}: {exc}", on_error)
            bar.update()
        bar.close()
        if not writer.count:
            raise InputError(f"{source}: no entities")
        return writer.finish(Path(directory), progress=progress)

    @classmethod
    def load(cls, path: str | os.PathLike, on_error: OnError = "fail") -> KnowledgeBase:
        """Open a folder written by `save`/`write` (memory-mapped, read-only: about a second
        at any size) or read a `kb.jsonl[.gz|.zst]` file."""
        path = Path(path)
        if not path.exists():
            raise InputError(f"{path}: no such file or folder")
        if path.is_file():
            return cls.from_jsonl(path, on_error=on_error)
        meta_path = path / "kb.json"
        if not meta_path.exists():
            raise InputError(f"{path}: not a saved knowledge base (no kb.json); build one with `ltprobe kb build`")
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            raise InputError(f"{meta_path}: corrupt ({exc}); {_REBUILD}") from None
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise InputError(f"{meta_path}: not an ltprobe knowledge base; {_REBUILD}")
        if meta.get("version") != VERSION:
            raise InputError(f"{meta_path}: knowledge base format version {meta.get('version')!r}, this ltprobe "
                             f"reads version {VERSION}; {_REBUILD}")
        arrays = _open_arrays(path, meta)
        kb = cls(source=str(path))
        kb._meta = meta
        kb.ids = _StringColumn(arrays["ids.blob"], arrays["ids.off"])
        kb.names = _StringColumn(arrays["names.blob"], arrays["names.off"])
        kb.types = _StringColumn(arrays["types.blob"], arrays["types.off"])
        kb.descriptions = _StringColumn(arrays["descriptions.blob"], arrays["descriptions.off"])
        kb.aliases = _AliasLists(_StringColumn(arrays["aliases.blob"], arrays["aliases.off"]), arrays["alias_start"])
        kb.priors = arrays["priors"]
        kb.index = _IdIndex(kb.ids, arrays["id_tab"], arrays["id_hash"])
        kb._index = {k: v for k, v in arrays.items() if k.split(".")[0] in _MATCHER_ARRAYS}
        kb._df = _DfTable(_StringColumn(arrays["df_words.blob"], arrays["df_words.off"]), arrays["df_tab"],
                          arrays["df_hash"], arrays["df_count"])
        kb._context = tuple(arrays[name] for name in _CONTEXT_ARRAYS)
        return kb

    # -- lookup -----------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.ids)

    def __contains__(self, entity_id: object) -> bool:
        return entity_id in self.index

    def __getitem__(self, entity_id: str) -> Entity:
        i = self.index.get(entity_id)
        if i is None:
            raise KeyError(f"no entity {entity_id!r} in the knowledge base")
        return self.entity(i)

    def get(self, entity_id: str) -> Entity | None:
        """The entity with this id, or None."""
        i = self.index.get(entity_id)
        return None if i is None else self.entity(i)

    def entity(self, i: int) -> Entity:
        """The entity at index `i` (the order of insertion)."""
        return Entity(id=self.ids[i], name=self.names[i], aliases=list(self.aliases[i]),
                      type=self.types[i], description=self.descriptions[i], prior=float(self.priors[i]))

    def __iter__(self) -> Iterator[Entity]:
        return (self.entity(i) for i in range(len(self)))

    def candidates(self, alias: str) -> list[str]:
        """Ids of the entities that `alias` (any case or punctuation variant) may refer to."""
        variants = alias_variants(alias)
        if not variants:
            return []
        value = self.matcher.get(variants[0])
        if value is None:
            return []
        return [self.ids[i] for i in self._candidates(value)]

    def info(self) -> dict[str, Any]:
        """Counts: entities, aliases, alias keys, ambiguous keys."""
        index = self._arrays()
        return {"entities": len(self), "aliases": len(self) + _alias_count(self.aliases),
                "keys": int(len(index["key_off"]) - 1), "ambiguous_keys": int(len(index["group_off"]) - 1),
                "source": self.source if self._meta is None else self._meta.get("source", self.source)}

    # -- what the linker uses ---------------------------------------------------------------

    @property
    def matcher(self):
        """The alias matcher (`entity_linking.kb._store.KeyMatcher`; built on first use)."""
        if self._matcher is None:
            from entity_linking.kb._store import KeyMatcher

            self._matcher = KeyMatcher(self._arrays())
        return self._matcher

    automaton = matcher  # the name of format 1, kept for callers

    def _arrays(self) -> dict[str, Any]:
        if self._index is None:
            collector = _KeyCollector()
            for i in range(len(self.ids)):
                collector.add(i, self.names[i], self.aliases[i])
            self._index = collector.finish(self.priors)
            self._shape_column = None
            self._shape_cache.clear()
            self._punctuation_cache = {}
        return self._index

    def _context_arrays(self) -> tuple:
        """What `contexts` reads: the groups (`group_off`, `group_mem`, `group_prior`), each
        entity's context words (`ctx_off`, `ctx_word`), the words (`df_words` blob and offsets)
        and their weights (`word_weight`); stored in a folder, built on first use in memory."""
        if self._context is None:
            collector = _ContextCollector()
            for i in range(len(self.ids)):
                collector.add(self.types[i], self.descriptions[i])
            words = collector.finish()
            self._context = tuple({**self._arrays(), **words}[name] for name in _CONTEXT_ARRAYS)
        return self._context

    def contexts(self, norm: str, starts: list[int], ends: list[int], groups: list[int], width: int,
                 prior_weight: float) -> tuple:
        """Candidates, prior terms and context scores of ambiguous mentions, all of one text in
        one kernel call (`entity_linking.kb._kernels.contexts`): mention `k` spans characters
        `starts[k]:ends[k]` of the normalized text `norm` and has the candidate group `groups[k]`;
        context words count within `width` characters on either side. Returns numpy arrays
        `(off, candidates, priors, context)`, mention `k`'s in `[off[k]:off[k + 1]]`: the same
        floats as `Linker` computes from `context_words` and the priors."""
        import numpy as np

        from entity_linking.kb._store import kernels

        raw = norm.encode("utf-8")
        return kernels()["contexts"](np.frombuffer(raw, np.uint8), len(raw) == len(norm),
                                     np.array(starts, np.int64), np.array(ends, np.int64),
                                     np.array(groups, np.int64), int(width), float(prior_weight),
                                     *self._context_arrays())

    def link_spans(self, text: str, norm: str, min_chars: int, smart: bool, qualifiers: bool, width: int,
                   prior_weight: float) -> tuple:
        """`Linker`'s rules up to disambiguation in one kernel call (see
        `entity_linking.kb._store.KeyMatcher.link_spans`)."""
        return self.matcher.link_spans(text, norm, min_chars, smart, qualifiers, width, prior_weight,
                                       self._context_arrays())

    def _group(self, g: int) -> tuple[int, ...]:
        index = self._arrays()
        offsets, members = index["group_off"], index["group_mem"]
        return tuple(members[offsets[g]:offsets[g + 1]].tolist())

    def _candidates(self, value: int) -> tuple[int, ...]:
        payload = value >> PAYLOAD_SHIFT
        if payload & 1:
            return self._group(payload >> 1)
        return (payload >> 1,)

    def _shapes_of(self, key: str) -> frozenset:
        """The punctuation shapes of the aliases behind a key (empty when it has none)."""
        import numpy as np

        matcher = self.matcher
        index = self._arrays()
        keys = index["shape_keys"]
        # the matcher's scan has just looked the key up (the fast path); else look it up
        at = matcher.shape_at.get(key)
        if at is None:
            k = matcher.index(key)
            at = int(np.searchsorted(keys, k))
            if k < 0 or at >= len(keys) or keys[at] != k:
                at = -1
        shapes = self._shape_cache.get(at)
        if shapes is None:
            shapes = frozenset()
            if at >= 0:
                column = self._shape_column
                if column is None:
                    from entity_linking.kb._store import StringColumn

                    column = self._shape_column = StringColumn(index["shape_blob"], index["shape_off"])
                shapes = frozenset(_decode_shape(p) for p in column.get_unchecked(at).split(_SHAPES_SEP))
            if len(self._shape_cache) > 100_000:
                self._shape_cache.clear()
            self._shape_cache[at] = shapes
        return shapes

    def punctuation_ok(self, span_text: str, key: str) -> bool:
        """Whether a span whose key came from punctuation ("springfield  illinois") has the
        alias's punctuation: "Springfield, Illinois" matches, "Springfield. Illinois" (two
        sentences) does not."""
        cache = self._punctuation_cache
        ok = cache.get(span_text)
        if ok is None:
            if len(cache) > 200_000:
                cache.clear()
            ok = cache[span_text] = punctuation_shape(span_text) in self._shapes_of(key)
        return ok

    def document_frequencies(self):
        """How many entities' type+description contain each word (for context weights): a dict,
        or a read-only mapping with `get` for a loaded folder."""
        if self._df is None:
            df: dict[str, int] = {}
            for i in range(len(self.ids)):
                for word in _words(self.types[i], self.descriptions[i]):
                    df[word] = df.get(word, 0) + 1
            self._df = df
        return self._df

    def context_words(self, i: int) -> dict[str, float]:
        """Words of entity `i`'s type and description with their weights (inverse document
        frequency over all entities' descriptions; stop words left out)."""
        words = self._context_cache.get(i)
        if words is None:
            df = self.document_frequencies()
            n = len(self.ids) + 1
            words = {w: math.log(n / df.get(w, 1)) + 1.0 for w in _words(self.types[i], self.descriptions[i])}
            if len(self._context_cache) > 1_000_000:
                self._context_cache.clear()
            self._context_cache[i] = words
        return words

    def prepare(self) -> KnowledgeBase:
        """Build everything lazily built (alias matcher, word statistics, compiled kernels) now,
        e.g. before forking worker processes so that they share it instead of each building it."""
        from entity_linking.kb._store import kernels

        kernels()
        self.matcher  # noqa: B018
        self.document_frequencies()
        self._context_arrays()
        return self


_REBUILD = "rebuild it with `ltprobe kb build INPUT --out FOLDER`"
_MATCHER_ARRAYS = ("key_blob", "key_off", "key_val", "t_rows",
                   "group_off", "group_mem", "group_prior", "shape_keys", "shape_off", "shape_blob")
_CONTEXT_ARRAYS = ("group_off", "group_mem", "group_prior", "ctx_off", "ctx_word", "df_words.blob", "df_words.off",
                   "word_weight")
_SHAPES_SEP = "\x1e"
_SHAPE_SEP = "\x1f"


def _encode_shapes(shapes: Iterable[tuple[str, ...]]) -> str:
    return _SHAPES_SEP.join(sorted(_SHAPE_SEP.join(shape) if shape else "" for shape in shapes))


def _decode_shape(piece: str) -> tuple[str, ...]:
    return tuple(piece.split(_SHAPE_SEP)) if piece else ()


def _alias_count(aliases) -> int:
    if isinstance(aliases, _AliasLists):
        return len(aliases.column)
    return sum(len(a) for a in aliases)


def _check_entity(entity: Entity) -> None:
    if not isinstance(entity.prior, (int, float)) or isinstance(entity.prior, bool) \
            or not math.isfinite(entity.prior) or entity.prior < 0:
        raise ValueError(f"prior of {entity.id!r} must be a non-negative number, got {entity.prior!r}")
    for alias in (entity.name, *entity.aliases):
        if not isinstance(alias, str) or not alias_variants(alias):
            raise ValueError(f"entity {entity.id!r} has an empty alias {alias!r} "
                             "(aliases need at least one letter or digit)")
        if len(alias) > MAX_KEY_CHARS - 10:
            raise ValueError(f"entity {entity.id!r} has an alias longer than {MAX_KEY_CHARS - 10} characters")


class _StringColumn:
    """Lazy import shim: `entity_linking.kb._store.StringColumn` (numpy is imported on use)."""

    def __new__(cls, blob, offsets):
        from entity_linking.kb._store import StringColumn

        return StringColumn(blob, offsets)


class _AliasLists:
    """`kb.aliases` of a loaded folder: `aliases[i]` is entity i's list of aliases."""

    __slots__ = ("column", "start", "_start")

    def __init__(self, column, start):
        self.column = column
        self.start = start
        self._start = memoryview(start).cast("B").cast("q") if len(start) else memoryview(b"").cast("q")

    def __len__(self) -> int:
        return len(self.start) - 1

    def __getitem__(self, i: int) -> list[str]:
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(i)
        column = self.column
        return [column[k] for k in range(self._start[i], self._start[i + 1])]

    def __iter__(self):
        return (self[i] for i in range(len(self)))


class _IdIndex:
    """`kb.index` of a loaded folder: entity id -> index, through the id hash table."""

    __slots__ = ("table",)

    def __init__(self, ids, tab, tab_hash):
        from entity_linking.kb._store import StringTable

        self.table = StringTable(ids, tab, tab_hash)

    def get(self, entity_id: object, default=None):
        if not isinstance(entity_id, str):
            return default
        i = self.table.index(entity_id)
        return default if i < 0 else i

    def __contains__(self, entity_id: object) -> bool:
        return self.get(entity_id) is not None

    def __getitem__(self, entity_id: str) -> int:
        i = self.get(entity_id)
        if i is None:
            raise KeyError(entity_id)
        return i

    def __len__(self) -> int:
        return len(self.table.column)


class _DfTable:
    """Document frequencies of a loaded folder: word -> count, read-only."""

    __slots__ = ("table", "counts", "_cache")

    def __init__(self, words, tab, tab_hash, counts):
        from entity_linking.kb._store import StringTable

        self.table = StringTable(words, tab, tab_hash)
        self.counts = counts
        self._cache: dict[str, int] = {}

    def get(self, word: str, default=None):
        count = self._cache.get(word)
        if count is None:
            i = self.table.index(word)
            count = -1 if i < 0 else int(self.counts[i])
            if len(self._cache) > 500_000:
                self._cache.clear()
            self._cache[word] = count
        return default if count < 0 else count

    def __getitem__(self, word: str) -> int:
        count = self.get(word)
        if count is None:
            raise KeyError(word)
        return count

    def __contains__(self, word: object) -> bool:
        return isinstance(word, str) and self.get(word) is not None

    def __len__(self) -> int:
        return len(self.counts)


class _KeyCollector:
    """Collects the alias variants of entity after entity into flat buffers, then builds the
    matcher's arrays (`finish`): keys de-duplicated, ambiguous keys as candidate groups."""

    def __init__(self):
        from array import array

        self.blob = bytearray()
        self.off = array("q", [0])
        self.entity = array("q")
        self.cased = array("b")
        self.shapes: dict[int, set] = {}  # occurrence -> shapes, for keys with punctuation

    def add(self, i: int, name: str, aliases: Iterable[str]) -> None:
        blob, off, entity, cased_flags = self.blob, self.off, self.entity, self.cased
        for alias in (name, *aliases):
            cased = is_cased(alias)
            shape = None
            for variant in alias_variants(alias):
                if "  " in variant:
                    if shape is None:
                        shape = punctuation_shape(alias)
                    self.shapes[len(entity)] = shape
                blob += variant.encode("utf-8")
                off.append(len(blob))
                entity.append(i)
                cased_flags.append(cased)

    def finish(self, priors) -> dict[str, Any]:
        """The matcher's arrays; `priors` (float64, one per entity) give each ambiguous group's
        prior terms (`group_prior`)."""
        import numpy as np

        from entity_linking.kb._store import kernels, table_size

        k = kernels()
        blob = np.frombuffer(self.blob, np.uint8)
        off = np.frombuffer(self.off, np.int64)
        entity = np.frombuffer(self.entity, np.int64)
        cased = np.frombuffer(self.cased, np.int8)
        n_occ = len(entity)
        uid, leaders, _, _ = k["dedupe"](blob, off, table_size(n_occ))
        n_keys = len(leaders)
        key_blob, key_off = k["gather"](blob, off, leaders)
        # a key is cased when every alias behind it is
        not_cased = np.bincount(uid, weights=(cased == 0), minlength=n_keys) if n_occ else np.zeros(0)
        key_cased = (not_cased == 0).astype(np.int64)
        # candidates of each key: distinct entities in ascending order
        order = np.lexsort((entity, uid))
        pairs_uid, pairs_ent = uid[order], entity[order]
        keep = np.ones(len(order), bool)
        keep[1:] = (pairs_uid[1:] != pairs_uid[:-1]) | (pairs_ent[1:] != pairs_ent[:-1])
        pairs_uid, pairs_ent = pairs_uid[keep], pairs_ent[keep]
        counts = np.bincount(pairs_uid, minlength=n_keys)
        starts = np.zeros(n_keys + 1, np.int64)
        np.cumsum(counts, out=starts[1:])
        ambiguous = counts > 1
        group_of = np.cumsum(ambiguous) - 1
        group_off = np.zeros(int(ambiguous.sum()) + 1, np.int64)
        np.cumsum(counts[ambiguous], out=group_off[1:])
        group_mem = pairs_ent[np.repeat(ambiguous, counts)].astype(np.int32)
        payload = np.where(ambiguous, group_of, pairs_ent[starts[:-1]] if n_keys else 0).astype(np.int64)
        key_len = k["char_lengths"](key_blob, key_off) + 2
        punctuated = np.zeros(n_keys, np.int64)
        shapes: dict[int, set] = {}
        for occurrence, shape in self.shapes.items():
            key = int(uid[occurrence])
            shapes.setdefault(key, set()).add(shape)
        if shapes:
            punctuated[list(shapes)] = 1
        key_val = (((payload << 1) | ambiguous) << PAYLOAD_SHIFT) | (punctuated << 13) | (key_len << 1) | key_cased
        shape_keys = np.array(sorted(shapes), dtype=np.int64)
        encoded = [_encode_shapes(shapes[key]).encode("utf-8") for key in shape_keys.tolist()]
        shape_off = np.zeros(len(encoded) + 1, np.int64)
        np.cumsum([len(e) for e in encoded], out=shape_off[1:])
        shape_blob = np.frombuffer(b"".join(encoded), np.uint8).copy()
        # the table of keys and their word prefixes (a word end inside a key: a space after a
        # non-space)
        prefixes = int(np.count_nonzero((key_blob[1:] == 32) & (key_blob[:-1] != 32))) if len(key_blob) else 0
        t_rows = k["prefix_table"](key_blob, key_off, table_size(n_keys + prefixes))
        # log prior share of each group member: the logarithms in Python (`math.log`, as the
        # linker's per-group path takes them), so that both paths give the same floats
        shares = k["group_shares"](group_off, group_mem, np.asarray(priors, np.float64))
        group_prior = np.array([math.log(x) for x in shares.tolist()], dtype=np.float64)
        return {"key_blob": key_blob, "key_off": key_off, "key_val": key_val, "t_rows": t_rows,
                "group_off": group_off, "group_mem": group_mem, "group_prior": group_prior,
                "shape_keys": shape_keys, "shape_off": shape_off, "shape_blob": shape_blob}


class _ContextCollector:
    """Collects the context words (`_words` of type and description) of entity after entity,
    then builds the word list with document frequencies (`df_*`) and each entity's words as
    word indices (`ctx_off`, `ctx_word`: CSR, ascending, which is the words' sorted order)
    with each word's weight (`word_weight`: `log((entities + 1) / df) + 1`, as
    `KnowledgeBase.context_words` gives it)."""

    def __init__(self):
        from array import array

        self.ids: dict[str, int] = {}  # word -> index in first-seen order
        self.count = array("q")
        self.off = array("q", [0])
        self.words = array("q")

    def add(self, type_: str, description: str) -> None:
        ids, count, words = self.ids, self.count, self.words
        for word in _words(type_, description):
            w = ids.get(word)
            if w is None:
                w = ids[word] = len(ids)
                count.append(0)
            count[w] += 1
            words.append(w)
        self.off.append(len(words))

    def finish(self) -> dict[str, Any]:
        import numpy as np

        from entity_linking.kb._store import StringColumn

        n = len(self.off) - 1
        words = sorted(self.ids)
        rank = np.empty(len(words), np.int64)  # first-seen index -> sorted index
        rank[np.fromiter((self.ids[w] for w in words), np.int64, len(words))] = np.arange(len(words))
        counts = np.frombuffer(self.count, np.int64)
        df_count = np.empty(len(words), np.int64)
        df_count[rank] = counts
        ctx_off = np.frombuffer(self.off, np.int64).copy()
        ctx_word = rank[np.frombuffer(self.words, np.int64)]
        owner = np.repeat(np.arange(n, dtype=np.int64), np.diff(ctx_off))
        ctx_word = ctx_word[np.lexsort((ctx_word, owner))].astype(np.int32)
        # the weights in Python floats (math.log), one per distinct frequency
        weight = {d: math.log((n + 1) / d) + 1.0 for d in set(df_count.tolist())}
        word_weight = np.array([weight[d] for d in df_count.tolist()], dtype=np.float64)
        blob, off = StringColumn.build(words)
        self.ids = {}
        return {"df_words.blob": blob, "df_words.off": off, "df_count": df_count, "ctx_off": ctx_off,
                "ctx_word": ctx_word, "word_weight": word_weight}


class _Writer:
    """The streaming builder behind `KnowledgeBase.write`."""

    def __init__(self, source: str):
        from array import array

        self.source = source
        self.count = 0
        self.ids: set[str] = set()
        self.columns = {name: (bytearray(), array("q", [0])) for name in
                        ("ids", "names", "types", "descriptions", "aliases")}
        self.alias_start = array("q", [0])
        self.priors = array("d")
        self.context = _ContextCollector()
        self.keys = _KeyCollector()

    def _put(self, column: str, text: str) -> None:
        blob, off = self.columns[column]
        blob += text.encode("utf-8")
        off.append(len(blob))

    def add(self, entity: Entity) -> None:
        if entity.id in self.ids:
            raise ValueError(f"duplicate entity id {entity.id!r}")
        _check_entity(entity)
        self.ids.add(entity.id)
        aliases = [a for a in dict.fromkeys(entity.aliases) if a != entity.name]
        self._put("ids", entity.id)
        self._put("names", entity.name)
        self._put("types", entity.type or "")
        self._put("descriptions", entity.description or "")
        for alias in aliases:
            self._put("aliases", alias)
        self.alias_start.append(self.alias_start[-1] + len(aliases))
        self.priors.append(float(entity.prior))
        self.context.add(entity.type or "", entity.description or "")
        self.keys.add(self.count, entity.name, aliases)
        self.count += 1

    def finish(self, directory: Path, progress: bool = False) -> Path:
        import shutil

        import numpy as np

        from entity_linking.kb._store import StringTable

        log = logger.info if progress else logger.debug
        self.ids = set()  # no longer needed: free it before the big allocations
        arrays: dict[str, Any] = {}
        for name, (blob, off) in self.columns.items():
            arrays[f"{name}.blob"] = np.frombuffer(blob, np.uint8)
            arrays[f"{name}.off"] = np.frombuffer(off, np.int64)
        arrays["alias_start"] = np.frombuffer(self.alias_start, np.int64)
        arrays["priors"] = np.frombuffer(self.priors, np.float64)
        _, arrays["id_tab"], arrays["id_hash"] = StringTable.build(arrays["ids.blob"], arrays["ids.off"])
        arrays.update(self.context.finish())
        _, arrays["df_tab"], arrays["df_hash"] = StringTable.build(arrays["df_words.blob"], arrays["df_words.off"])
        self.context = None
        log(f"kb build: indexing {len(self.keys.entity):,} alias keys")
        arrays.update(self.keys.finish(arrays["priors"]))
        self.keys = None
        # everything goes into a fresh folder beside the target, which replaces it at the end
        directory = Path(directory)
        directory.parent.mkdir(parents=True, exist_ok=True)
        tmp = directory.parent / f".{directory.name}.building-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        try:
            files = {}
            for name, array in arrays.items():
                np.save(tmp / f"{name}.npy", np.ascontiguousarray(array), allow_pickle=False)
                files[name] = {"dtype": array.dtype.str, "shape": list(array.shape)}
            info = {"entities": self.count, "aliases": self.count + int(len(arrays["aliases.off"]) - 1),
                    "keys": int(len(arrays["key_off"]) - 1), "ambiguous_keys": int(len(arrays["group_off"]) - 1),
                    "source": self.source}
            write_json(tmp / "kb.json", {"format": FORMAT, "version": VERSION, **info, "arrays": files})
            if directory.exists():
                old = directory.parent / f".{directory.name}.old-{os.getpid()}"
                os.replace(directory, old)
                os.replace(tmp, directory)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(tmp, directory)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return directory


def _open_arrays(path: Path, meta: dict[str, Any]) -> dict[str, Any]:
    """Memory-map every array `kb.json` lists (no pickle) and check that they fit together, so
    that a truncated or corrupted folder is refused with the file's name instead of linking
    wrongly or crashing."""
    import numpy as np

    files = meta.get("arrays")
    if not isinstance(files, dict):
        raise InputError(f"{path / 'kb.json'}: no array list; {_REBUILD}")
    arrays: dict[str, Any] = {}
    for name in _ARRAY_NAMES:
        file = path / f"{name}.npy"
        spec = files.get(name)
        if not isinstance(spec, dict):
            raise InputError(f"{path / 'kb.json'}: does not list {name}.npy; {_REBUILD}")
        if not file.exists():
            raise InputError(f"{file}: missing; {_REBUILD}")
        try:
            # a plain ndarray view of the map: numba types it on its fast path (np.memmap is slow)
            array = np.asarray(np.load(file, mmap_mode="r", allow_pickle=False))
        except (ValueError, OSError, EOFError) as exc:
            raise InputError(f"{file}: corrupt or truncated ({exc}); {_REBUILD}") from None
        if array.dtype.str != spec.get("dtype") or list(array.shape) != spec.get("shape") or array.ndim != 1 \
                or array.dtype.hasobject:
            raise InputError(f"{file}: holds {array.dtype.str} {list(array.shape)}, kb.json says "
                             f"{spec.get('dtype')} {spec.get('shape')}; {_REBUILD}")
        if array.size == 0:
            array = np.zeros(0, array.dtype)  # a zero-length memory map is not possible
        arrays[name] = array
    _check_arrays(path, arrays)
    return arrays


_ARRAY_NAMES = tuple(f"{c}.{part}" for c in ("ids", "names", "types", "descriptions", "aliases", "df_words")
                     for part in ("blob", "off")) + (
    "alias_start", "priors", "id_tab", "id_hash", "df_count", "df_tab", "df_hash", "ctx_off", "ctx_word",
    "word_weight") + _MATCHER_ARRAYS


def _check_arrays(path: Path, a: dict[str, Any]) -> None:
    """Sizes, offsets and indices within range (vectorized; well under a second at 2M entities)."""
    import numpy as np

    def bad(name: str, reason: str):
        raise InputError(f"{path / (name + '.npy')}: {reason}; {_REBUILD}")

    def offsets(name: str, n: int, end: int) -> None:
        off = a[name]
        if len(off) != n + 1 or off[0] != 0 or off[-1] != end or (n and np.any(off[1:] < off[:-1])):
            bad(name, "offsets do not fit their data (corrupt)")

    def indices(name: str, low: int, high: int) -> None:
        x = a[name]
        if len(x) and (x.min() < low or x.max() >= high):
            bad(name, "index out of range (corrupt)")

    n = len(a["ids.off"]) - 1
    for column in ("ids", "names", "types", "descriptions"):
        offsets(f"{column}.off", n, len(a[f"{column}.blob"]))
    n_aliases = len(a["aliases.off"]) - 1
    offsets("aliases.off", n_aliases, len(a["aliases.blob"]))
    offsets("alias_start", n, n_aliases)
    if len(a["priors"]) != n:
        bad("priors", "one prior per entity expected")
    n_words = len(a["df_words.off"]) - 1
    offsets("df_words.off", n_words, len(a["df_words.blob"]))
    if len(a["df_count"]) != n_words:
        bad("df_count", "one count per word expected")
    if len(a["word_weight"]) != n_words:
        bad("word_weight", "one weight per word expected")
    offsets("ctx_off", n, len(a["ctx_word"]))
    indices("ctx_word", 0, n_words)
    n_keys = len(a["key_off"]) - 1
    offsets("key_off", n_keys, len(a["key_blob"]))
    if len(a["key_val"]) != n_keys:
        bad("key_val", "one value per key expected")
    for tab, hashes, count in (("id_tab", "id_hash", n), ("df_tab", "df_hash", n_words)):
        size = len(a[tab])
        if size < count or size & (size - 1) or len(a[hashes]) != size:
            bad(tab, "not a hash table of the right size")
        indices(tab, -1, count)
    rows = a["t_rows"]
    size = len(rows) // 2
    if size <= n_keys or size & (size - 1) or len(rows) != 2 * size:
        bad("t_rows", "not a hash table of the right size")
    # every used slot names a key, and its string is no longer than that key (a full key's is
    # exactly as long): the scan reads key bytes at these places without bounds checks
    from entity_linking.kb._store import kernels

    if kernels()["check_rows"](rows, a["key_off"]) >= 0:
        bad("t_rows", "a slot names no key or is longer than its key (corrupt)")
    n_groups = len(a["group_off"]) - 1
    offsets("group_off", n_groups, len(a["group_mem"]))
    indices("group_mem", 0, n)
    if len(a["group_prior"]) != len(a["group_mem"]):
        bad("group_prior", "one prior term per group member expected")
    payload = a["key_val"] >> PAYLOAD_SHIFT
    amb = (payload & 1) == 1
    if n_keys and (np.any((payload >> 1)[amb] >= n_groups) or np.any((payload >> 1)[~amb] >= n)
                   or np.any(a["key_val"] < 0)):
        bad("key_val", "a value names no entity or group (corrupt)")
    offsets("shape_off", len(a["shape_keys"]), len(a["shape_blob"]))
    indices("shape_keys", 0, max(n_keys, 1))


def _words(*texts: str) -> set[str]:
    return {w for t in texts if t for w in normalize(t).split() if w not in STOPWORDS and len(w) > 1}

