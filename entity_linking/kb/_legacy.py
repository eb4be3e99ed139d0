"""The knowledge base as it was before format 2 (pyahocorasick automaton, entities.jsonl): kept
only as the baseline of `ltprobe bench kb`, which builds and loads it side by side with today's
format. Nothing else imports it. Its loader refuses any pickled value (see `_refuse`).

One change from the code it copies: pyahocorasick's STORE_INTS keeps values as 32-bit signed
integers, so the packed values of format 1 (entity index << 15) were cut for entities past
index 65,535, and a knowledge base of more than 65,536 entities linked wrong entities or
failed. Here the automaton stores the key's number and the packed values sit in
`values.npy` (int64), so the baseline links correctly at 2M entities; the extra list lookup
per match costs it a little time.

The original docstring follows.

The knowledge base: entities, their aliases, and the alias automaton that linking searches.

A `KnowledgeBase` is built from the contract's `kb.jsonl`, from TSV/CSV alias tables, from
PopQA-style rows or from a streamed Wikidata JSON dump, and saved to a folder that loads in
seconds (`KnowledgeBase.load`). The alias automaton (pyahocorasick, C memory, no Python
objects per node) is what worker processes share after a fork instead of each building or
unpickling its own copy.

Saved folder (format 1):

- `kb.json` — format name and version, counts;
- `entities.jsonl` — one entity a line (`id`, `name`, `aliases`, `type`, `description`,
  `prior`), in index order;
- `automaton.bin` — the alias automaton (keys are normalized alias variants with a space on
  each side, values packed integers, see `_pack`);
- `groups.npz` — the candidate lists of ambiguous keys (CSR: `offsets`, `members`);
- `shapes.json` — the punctuation of aliases whose keys hold punctuation ("Springfield,
  Illinois"), so that a match across sentence punctuation can be refused.
"""

from __future__ import annotations

import bz2
import csv
import json
import math
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from entity_linking._normalize import alias_variants, is_cased, normalize
from entity_linking.io import InputError, OnError, SkipCounter, _open_binary, read_records, write_json

FORMAT = "ltprobe-kb"
VERSION = 1
MAX_KEY_CHARS = 4000

# Words too common to say anything about which entity is meant (context scoring ignores them).
STOPWORDS = frozenset(
    "a an the of in on at to for from by with and or but as is was are were be been being it its "
    "this that these those he she they his her their him them who whom which what when where "
    "s t also has had have not no than then there here into over under about after before".split())


@dataclass
class Entity:
    """One entity of the knowledge base."""

    id: str
    """Stable identifier (a Wikidata QID, a URI, or the world's id)."""
    name: str
    """Canonical name; always matched as an alias too."""
    aliases: list[str] = field(default_factory=list)
    """Other names the entity goes by (the name is not repeated here)."""
    type: str = ""
    """Coarse type ("person", "city", ...); its words count as context for disambiguation."""
    description: str = ""
    """Short description; its words near a mention count as context for disambiguation."""
    prior: float = 0.0
    """Popularity prior (any non-negative scale: mention counts, page views, sitelinks)."""

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "aliases": self.aliases, "type": self.type,
                "description": self.description, "prior": self.prior}


def _pack(payload: int, ambiguous: bool, key_len: int, cased: bool, punctuated: bool = False) -> int:
    """Automaton value: entity index or ambiguous-group index, whether the key came from
    punctuation followed by a space (then the text's punctuation is checked, see
    `KnowledgeBase.punctuation_ok`), key length and a case flag."""
    return (((payload << 1) | ambiguous) << 14) | (punctuated << 13) | (key_len << 1) | cased


PAYLOAD_SHIFT = 14
PUNCTUATED = 1 << 13
_PUNCT = re.compile(r"[^\w\s]+")
_SAME_PUNCT = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'", "`": "'", "\u00b4": "'",
                             "\u2010": "-", "\u2011": "-", "\u2012": "-", "\u2013": "-"})


def punctuation_shape(text: str) -> tuple[str, ...]:
    """The punctuation between the words of a name: "Springfield, Illinois" -> (",",)."""
    return tuple(_PUNCT.findall(text.translate(_SAME_PUNCT)))


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
        self._automaton = None
        self._values: list[int] = []
        self._groups: list[tuple[int, ...]] | None = None
        self._group_arrays = None
        self._shapes: dict[str, set[tuple[str, ...]]] = {}
        self._punctuation_cache: dict[str, bool] = {}
        self._df: dict[str, int] | None = None
        self._context_cache: dict[int, dict[str, float]] = {}
        for entity in entities:
            self.add(entity)

    # -- building ---------------------------------------------------------------------------

    def add(self, entity: Entity) -> None:
        """Add an entity; raises `ValueError` (with a reason) on a duplicate id or empty alias."""
        if entity.id in self.index:
            raise ValueError(f"duplicate entity id {entity.id!r}")
        if not isinstance(entity.prior, (int, float)) or isinstance(entity.prior, bool) \
                or not math.isfinite(entity.prior) or entity.prior < 0:
            raise ValueError(f"prior of {entity.id!r} must be a non-negative number, got {entity.prior!r}")
        names = [entity.name, *entity.aliases]
        for alias in names:
            if not isinstance(alias, str) or not alias_variants(alias):
                raise ValueError(f"entity {entity.id!r} has an empty alias {alias!r} "
                                 "(aliases need at least one letter or digit)")
            if len(alias) > MAX_KEY_CHARS - 10:
                raise ValueError(f"entity {entity.id!r} has an alias longer than {MAX_KEY_CHARS - 10} characters")
        self.index[entity.id] = len(self.ids)
        self.ids.append(entity.id)
        self.names.append(entity.name)
        self.aliases.append([a for a in dict.fromkeys(entity.aliases) if a != entity.name])
        self.types.append(entity.type or "")
        self.descriptions.append(entity.description or "")
        self.priors.append(float(entity.prior))
        self._automaton = None
        self._df = None
        self._context_cache.clear()

    @classmethod
    def from_records(cls, records: Iterable[dict[str, Any]], *, source: str = "<memory>") -> KnowledgeBase:
        """Build from in-memory dicts shaped like `kb.jsonl` records."""
        kb = cls(source=source)
        for n, record in enumerate(records, 1):
            try:
                kb.add(_entity_from_record(record))
            except ValueError as exc:
                raise InputError(f"{source}:{n}: {exc}") from None
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
        kb = cls(source=str(path))
        skips = skips if skips is not None else SkipCounter()
        for lineno, record in read_records(path, on_error=on_error, skips=skips,
                                           required={"id": (str, int), "name": str}):
            try:
                kb.add(_entity_from_record(record))
            except ValueError as exc:
                skips.bad_record(f"{path}:{lineno}: {exc}", on_error)
        if not len(kb):
            raise InputError(f"{path}: no entities")
        return kb

    @classmethod
    def from_table(cls, path: str | os.PathLike, columns: dict[str, str] | None = None, *,
                   delimiter: str | None = None, alias_separator: str = "|",
                   on_error: OnError = "fail", skips: SkipCounter | None = None) -> KnowledgeBase:
        """Build from a TSV/CSV alias table with a header row.

        `columns` maps entity fields to column names: `id` and `name` are required, `aliases`,
        `alias`, `prior`, `type` and `description` optional (default: the same names). An
        `aliases` cell is a JSON list or a `alias_separator`-separated string; an `alias` cell
        is one alias. Rows that repeat an id add their aliases to that entity (one row per
        alias is a common table shape); the first row's name, type and description win and
        the largest prior is kept. The delimiter is a tab for `.tsv`, a comma otherwise,
        unless given.
        """
        columns = {**{k: k for k in ("id", "name", "aliases", "alias", "prior", "type", "description")},
                   **(columns or {})}
        path = Path(path)
        if not path.exists():
            raise InputError(f"{path}: no such file")
        skips = skips if skips is not None else SkipCounter()
        if delimiter is None:
            delimiter = "\t" if ".tsv" in path.suffixes else ","
        merged: dict[str, Entity] = {}
        with _open_text_lines(path) as handle:
            reader = csv.DictReader(handle, delimiter=delimiter)
            header = reader.fieldnames or []
            for needed in ("id", "name"):
                if columns[needed] not in header:
                    raise InputError(f"{path}:1: no column {columns[needed]!r} for the entity {needed} "
                                     f"(columns: {', '.join(header)}); map it with --columns {needed}=COLUMN")
            for row in reader:
                lineno = reader.line_num
                try:
                    entity = _entity_from_row(row, columns, alias_separator)
                    _merge(merged, entity)
                except ValueError as exc:
                    skips.bad_record(f"{path}:{lineno}: {exc}", on_error)
        return cls._from_merged(merged, path)

    @classmethod
    def from_popqa(cls, path: str | os.PathLike, *, on_error: OnError = "fail",
                   skips: SkipCounter | None = None) -> KnowledgeBase:
        """Build from PopQA-style rows (TSV with `s_uri subj s_aliases s_pop`, `o_uri obj o_aliases
        o_pop`, alias columns as JSON lists; `.jsonl` records with those fields work too).

        Subjects and objects both become entities, id = the Wikidata QID at the end of the URI;
        the prior is the page-view count (`s_pop`/`o_pop`; the largest seen).
        """
        path = Path(path)
        if not path.exists():
            raise InputError(f"{path}: no such file")
        skips = skips if skips is not None else SkipCounter()
        merged: dict[str, Entity] = {}

        def rows() -> Iterator[tuple[int, dict[str, Any]]]:
            if ".jsonl" in path.suffixes or path.suffix == ".json":
                yield from read_records(path, on_error=on_error, skips=skips)
                return
            with _open_text_lines(path) as handle:
                reader = csv.DictReader(handle, delimiter="\t" if ".tsv" in path.suffixes else ",")
                for row in reader:
                    yield reader.line_num, row

        for lineno, row in rows():
            try:
                for side, name in (("s", "subj"), ("o", "obj")):
                    uri = row.get(f"{side}_uri")
                    if not uri or not row.get(name):
                        raise ValueError(f"missing {side}_uri or {name}")
                    aliases = row.get(f"{side}_aliases") or []
                    if isinstance(aliases, str):
                        aliases = json.loads(aliases) if aliases.strip() else []
                    pop = row.get(f"{side}_pop")
                    _merge(merged, Entity(id=str(uri).rstrip("/").rsplit("/", 1)[-1], name=str(row[name]),
                                          aliases=[str(a) for a in aliases if str(a).strip()],
                                          prior=float(pop) if pop not in (None, "") else 0.0))
            except (ValueError, TypeError) as exc:
                skips.bad_record(f"{path}:{lineno}: {exc}", on_error)
        return cls._from_merged(merged, path)

    @classmethod
    def from_wikidata(cls, path: str | os.PathLike, *, language: str = "en", limit: int | None = None,
                      min_sitelinks: int = 0, on_error: OnError = "fail",
                      skips: SkipCounter | None = None, progress: bool = True) -> KnowledgeBase:
        """Stream a Wikidata JSON dump (`.json`, `.json.gz`, `.json.bz2`; one entity a line
        between `[` and `]`) without loading it into memory.

        Keeps entities with a label in `language`: name = label, aliases = that language's
        aliases, description = its description, type = the QID of the first "instance of"
        (P31) value, prior = the number of sitelinks. Entities with fewer than
        `min_sitelinks` are left out; `limit` stops after that many entities.
        """
        from entity_linking.logs import progress_bar

        path = Path(path)
        if not path.exists():
            raise InputError(f"{path}: no such file")
        skips = skips if skips is not None else SkipCounter()
        kb = cls(source=str(path))
        opener = (lambda p: bz2.open(p, "rb")) if path.suffix == ".bz2" else _open_binary
        bar = progress_bar(desc="wikidata", unit=" lines", enabled=progress)
        with opener(path) as handle:
            lineno = 0
            while True:
                try:
                    raw = handle.readline()
                except (EOFError, OSError) as exc:
                    skips.bad_record(f"{path}:{lineno + 1}: file is truncated or corrupt ({exc})", on_error)
                    break
                if not raw:
                    break
                lineno += 1
                bar.update()
                line = raw.strip().rstrip(b",")
                if line in (b"[", b"]", b""):
                    continue
                try:
                    item = json.loads(line)
                    entity = _entity_from_wikidata(item, language)
                    if entity is None or len(item.get("sitelinks") or {}) < min_sitelinks:
                        continue
                    kb.add(entity)
                except (ValueError, TypeError, AttributeError) as exc:
                    skips.bad_record(f"{path}:{lineno}: {exc}", on_error)
                    continue
                if limit is not None and len(kb) >= limit:
                    break
        bar.close()
        return kb

    @classmethod
    def _from_merged(cls, merged: dict[str, Entity], path: Path) -> KnowledgeBase:
        if not merged:
            raise InputError(f"{path}: no entities")
        return cls(merged.values(), source=str(path))

    # -- saving and loading -----------------------------------------------------------------

    def save(self, directory: str | os.PathLike) -> Path:
        """Write the compact folder described in the module docstring; returns its path."""
        import numpy as np

        from entity_linking.io import atomic_write, write_jsonl

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        automaton = self.automaton
        write_jsonl(directory / "entities.jsonl", (self.entity(i).to_dict() for i in range(len(self))))
        tmp = directory / ".automaton.bin.tmp"
        automaton.save(str(tmp))
        with atomic_write(directory / "values.npy", "wb") as handle:
            np.save(handle, np.asarray(self._values, dtype=np.int64), allow_pickle=False)
        os.replace(tmp, directory / "automaton.bin")
        offsets, members = self._group_csr()
        with atomic_write(directory / "groups.npz", "wb") as handle:
            np.savez(handle, offsets=offsets, members=members)
        write_json(directory / "shapes.json", {k: sorted(map(list, v)) for k, v in self._shapes.items()})
        write_json(directory / "kb.json", {"format": FORMAT, "version": VERSION, **self.info()})
        return directory

    @classmethod
    def load(cls, path: str | os.PathLike, on_error: OnError = "fail") -> KnowledgeBase:
        """Open a folder written by `save` (fast: the automaton is read, not rebuilt) or a
        `kb.jsonl[.gz|.zst]` file."""
        import ahocorasick
        import numpy as np

        path = Path(path)
        if not path.exists():
            raise InputError(f"{path}: no such file or folder")
        if path.is_file():
            return cls.from_jsonl(path, on_error=on_error)
        meta_path = path / "kb.json"
        if not meta_path.exists():
            raise InputError(f"{path}: not a saved knowledge base (no kb.json); build one with `ltprobe kb build`")
        meta = json.loads(meta_path.read_text())
        if meta.get("format") != FORMAT or meta.get("version") != VERSION:
            raise InputError(f"{meta_path}: unsupported knowledge base format {meta.get('format')!r} "
                             f"version {meta.get('version')!r}; rebuild it with `ltprobe kb build`")
        kb = cls(source=str(path))
        for _, record in read_records(path / "entities.jsonl"):
            kb.index[record["id"]] = len(kb.ids)
            kb.ids.append(record["id"])
            kb.names.append(record["name"])
            kb.aliases.append(record["aliases"])
            kb.types.append(record["type"])
            kb.descriptions.append(record["description"])
            kb.priors.append(record["prior"])
        kb._automaton = ahocorasick.load(str(path / "automaton.bin"), _refuse)
        kb._values = np.load(path / "values.npy", allow_pickle=False).tolist()
        with np.load(path / "groups.npz", allow_pickle=False) as arrays:
            kb._group_arrays = (arrays["offsets"], arrays["members"])
        kb._groups = None
        shapes = json.loads((path / "shapes.json").read_text(encoding="utf-8"))
        kb._shapes = {k: {tuple(shape) for shape in v} for k, v in shapes.items()}
        return kb

    # -- lookup -----------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.ids)

    def __contains__(self, entity_id: object) -> bool:
        return entity_id in self.index

    def __getitem__(self, entity_id: str) -> Entity:
        try:
            return self.entity(self.index[entity_id])
        except KeyError:
            raise KeyError(f"no entity {entity_id!r} in the knowledge base") from None

    def get(self, entity_id: str) -> Entity | None:
        """The entity with this id, or None."""
        i = self.index.get(entity_id)
        return None if i is None else self.entity(i)

    def entity(self, i: int) -> Entity:
        """The entity at index `i` (the order of insertion)."""
        return Entity(id=self.ids[i], name=self.names[i], aliases=list(self.aliases[i]),
                      type=self.types[i], description=self.descriptions[i], prior=self.priors[i])

    def __iter__(self) -> Iterator[Entity]:
        return (self.entity(i) for i in range(len(self)))

    def candidates(self, alias: str) -> list[str]:
        """Ids of the entities that `alias` (any case or punctuation variant) may refer to."""
        variants = alias_variants(alias)
        if not variants:
            return []
        value = self.automaton.get(f" {variants[0]} ", None)
        value = None if value is None else self._values[value]
        if value is None:
            return []
        return [self.ids[i] for i in self._candidates(value)]

    def info(self) -> dict[str, Any]:
        """Counts: entities, aliases, automaton keys, ambiguous keys."""
        automaton = self.automaton
        offsets, _ = self._group_csr()
        return {"entities": len(self), "aliases": sum(1 + len(a) for a in self.aliases),
                "keys": len(automaton), "ambiguous_keys": int(len(offsets) - 1), "source": self.source}

    # -- what the linker uses ---------------------------------------------------------------

    @property
    def automaton(self):
        """The pyahocorasick automaton over all alias variants (built on first use)."""
        if self._automaton is None:
            self._build_automaton()
        return self._automaton

    @property
    def matcher(self) -> _AutomatonMatcher:
        """The automaton behind format 1's `Linker.find`/`key_value`, as today's `Linker` calls it."""
        return _AutomatonMatcher(self.automaton, self._values)

    def _build_automaton(self) -> None:
        import ahocorasick

        keys: dict[str, list] = {}  # variant -> [entity indices, all contributing aliases cased]
        shapes: dict[str, set[tuple[str, ...]]] = {}
        for i in range(len(self.ids)):
            for alias in (self.names[i], *self.aliases[i]):
                cased = is_cased(alias)
                for variant in alias_variants(alias):
                    if "  " in variant:
                        shapes.setdefault(variant, set()).add(punctuation_shape(alias))
                    slot = keys.get(variant)
                    if slot is None:
                        keys[variant] = [[i], cased]
                    else:
                        if slot[0][-1] != i and i not in slot[0]:
                            slot[0].append(i)
                        slot[1] = slot[1] and cased
        automaton = ahocorasick.Automaton(ahocorasick.STORE_INTS)
        values: list[int] = []
        groups: list[tuple[int, ...]] = []
        # in sorted order: each trie node's children are then allocated together and in order,
        # which makes the automaton's scan of a text about a tenth faster (memory locality)
        for variant in sorted(keys):
            members, cased = keys[variant]
            key = f" {variant} "
            punctuated = variant in shapes
            if len(members) == 1:
                value = _pack(members[0], False, len(key), cased, punctuated)
            else:
                value = _pack(len(groups), True, len(key), cased, punctuated)
                groups.append(tuple(members))
            automaton.add_word(key, len(values))
            values.append(value)
        automaton.make_automaton()
        self._automaton = automaton
        self._values = values
        self._groups = groups
        self._group_arrays = None
        self._shapes = shapes
        self._punctuation_cache = {}

    def _group_csr(self):
        import numpy as np

        if self._group_arrays is None:
            if self._groups is None:
                self._build_automaton()
            groups = self._groups or []
            offsets = np.zeros(len(groups) + 1, dtype=np.int64)
            np.cumsum([len(g) for g in groups], out=offsets[1:])
            members = np.fromiter((m for g in groups for m in g), dtype=np.int32, count=int(offsets[-1]))
            self._group_arrays = (offsets, members)
        return self._group_arrays

    def _group(self, g: int) -> tuple[int, ...]:
        if self._groups is not None:
            return self._groups[g]
        offsets, members = self._group_arrays
        return tuple(members[offsets[g]:offsets[g + 1]].tolist())

    def _candidates(self, value: int) -> tuple[int, ...]:
        payload = value >> PAYLOAD_SHIFT
        if payload & 1:
            return self._group(payload >> 1)
        return (payload >> 1,)

    def punctuation_ok(self, span_text: str, key: str) -> bool:
        """Whether a span whose key came from punctuation ("springfield  illinois") has the
        alias's punctuation: "Springfield, Illinois" matches, "Springfield. Illinois" (two
        sentences) does not."""
        cache = self._punctuation_cache
        ok = cache.get(span_text)
        if ok is None:
            if len(cache) > 200_000:
                cache.clear()
            ok = cache[span_text] = punctuation_shape(span_text) in self._shapes.get(key, ())
        return ok

    def document_frequencies(self) -> dict[str, int]:
        """How many entities' type+description contain each word (for context weights)."""
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
            self._context_cache[i] = words
        return words

    def prepare(self) -> KnowledgeBase:
        """Build everything lazily built (automaton, word statistics) now, e.g. before forking
        worker processes so that they share it instead of each building it."""
        self.automaton  # noqa: B018
        self._group_csr()
        self.document_frequencies()
        return self


class _AutomatonMatcher:
    """Format 1's candidate search (the code of `Linker.find` before format 2)."""

    def __init__(self, automaton, values):
        self.automaton = automaton
        self.values = values

    def find(self, norm: str) -> list[tuple[int, int, int]]:
        # the key " alias " ends at `last` in the padded text: the alias occupies
        # [last - key_len + 1, last - 1) of the unpadded text
        values = self.values
        return [(last - ((value >> 1) & 0xFFF) + 1, last - 1, value)
                for last, value in ((last, values[k]) for last, k in self.automaton.iter(f" {norm} "))]

    def get(self, key: str, default=None):
        k = self.automaton.get(f" {key} ", None)
        return default if k is None else self.values[k]


def _refuse(data: bytes):
    raise ValueError("the automaton file holds pickled values: refused")


def _words(*texts: str) -> set[str]:
    return {w for t in texts if t for w in normalize(t).split() if w not in STOPWORDS and len(w) > 1}


def _entity_from_record(record: dict[str, Any]) -> Entity:
    aliases = record.get("aliases") or []
    if not isinstance(aliases, list) or not all(isinstance(a, str) for a in aliases):
        raise ValueError("field 'aliases' must be a list of strings")
    for name in ("type", "description"):
        if record.get(name) is not None and not isinstance(record[name], str):
            raise ValueError(f"field {name!r} must be a string")
    prior = record.get("prior", 0.0)
    if prior is None:
        prior = 0.0
    if not isinstance(record.get("id"), (str, int)) or isinstance(record.get("id"), bool) or str(record["id"]) == "":
        raise ValueError("field 'id' must be a non-empty string")
    if not isinstance(record.get("name"), str):
        raise ValueError("field 'name' must be a string")
    return Entity(id=str(record["id"]), name=record["name"], aliases=aliases,
                  type=record.get("type") or "", description=record.get("description") or "",
                  prior=prior)


def _entity_from_row(row: dict[str, str], columns: dict[str, str], separator: str) -> Entity:
    entity_id = (row.get(columns["id"]) or "").strip()
    name = (row.get(columns["name"]) or "").strip()
    if not entity_id:
        raise ValueError(f"empty id (column {columns['id']!r})")
    if not name:
        raise ValueError(f"empty name (column {columns['name']!r})")
    aliases: list[str] = []
    cell = (row.get(columns["aliases"]) or "").strip()
    if cell:
        if cell.startswith("["):
            parsed = json.loads(cell)
            if not isinstance(parsed, list):
                raise ValueError("aliases cell is not a JSON list")
            aliases += [str(a) for a in parsed]
        else:
            aliases += [a.strip() for a in cell.split(separator)]
    one = (row.get(columns["alias"]) or "").strip() if columns["alias"] in row else ""
    if one:
        aliases.append(one)
    prior_cell = (row.get(columns["prior"]) or "").strip()
    try:
        prior = float(prior_cell) if prior_cell else 0.0
    except ValueError:
        raise ValueError(f"prior {prior_cell!r} is not a number") from None
    return Entity(id=entity_id, name=name, aliases=aliases, type=(row.get(columns["type"]) or "").strip(),
                  description=(row.get(columns["description"]) or "").strip(), prior=prior)


def _merge(merged: dict[str, Entity], entity: Entity) -> None:
    for alias in (entity.name, *entity.aliases):
        if not alias_variants(alias):
            raise ValueError(f"entity {entity.id!r} has an empty alias {alias!r}")
    if entity.prior < 0 or not math.isfinite(entity.prior):
        raise ValueError(f"prior of {entity.id!r} must be a non-negative number")
    old = merged.get(entity.id)
    if old is None:
        merged[entity.id] = entity
        return
    for alias in (entity.name, *entity.aliases):
        if alias != old.name and alias not in old.aliases:
            old.aliases.append(alias)
    old.prior = max(old.prior, entity.prior)
    old.type = old.type or entity.type
    old.description = old.description or entity.description


def _entity_from_wikidata(item: dict[str, Any], language: str) -> Entity | None:
    if not isinstance(item, dict) or "id" not in item:
        raise ValueError("not a Wikidata entity object")
    label = (item.get("labels") or {}).get(language, {}).get("value")
    if not label or not alias_variants(label):
        return None
    aliases = [a.get("value") for a in (item.get("aliases") or {}).get(language, [])]
    aliases = [a for a in aliases if isinstance(a, str) and alias_variants(a)]
    description = (item.get("descriptions") or {}).get(language, {}).get("value", "")
    type_id = ""
    for claim in (item.get("claims") or {}).get("P31", [])[:1]:
        value = ((claim.get("mainsnak") or {}).get("datavalue") or {}).get("value")
        if isinstance(value, dict):
            type_id = value.get("id", "")
    return Entity(id=item["id"], name=label, aliases=aliases, type=type_id, description=description,
                  prior=float(len(item.get("sitelinks") or {})))


class _open_text_lines:
    """Context manager: a text handle (utf-8, `.gz`/`.zst` by suffix) for the csv module, with
    decoding errors reported as `FILE: reason`."""

    def __init__(self, path: Path):
        self.path = path

    def __enter__(self):
        import io

        self._binary = _open_binary(self.path)
        raw = self._binary.__enter__()
        return io.TextIOWrapper(raw, encoding="utf-8", newline="")

    def __exit__(self, kind, exc, tb):
        self._binary.__exit__(kind, exc, tb)
        if isinstance(exc, UnicodeDecodeError):
            raise InputError(f"{self.path}: not valid UTF-8 ({exc.reason} at byte {exc.start})") from None
        if isinstance(exc, csv.Error):
            raise InputError(f"{self.path}: malformed table ({exc})") from None
        return False


