"""Alias-phrase counts over the text an embedded index stores (`ltprobe count --index DIR --phrases`).

The same phrase definition as `match_phrase` on Elasticsearch and the infini-gram backend
(`indexes._phrases`). The stored documents are scanned once for all the entities a batch of
QA pairs asks about (one pass of `PhraseMatcher` per batch, entities already seen are cached),
so a pair count is one set intersection afterwards.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from entity_linking.io import InputError
from indexes._base import DocumentIndex, Passage
from indexes._phrases import PhraseMatcher


class EmbeddedPhraseCounts(DocumentIndex):
    """Phrase counts on an embedded index's stored text; `aliases`: entity id -> names."""

    backend = "embedded-phrases"

    def __init__(self, index: Any, aliases: dict[str, list[str]], *, progress: bool = False):
        if not index.info().get("has_text", True):
            raise InputError(f"{index.path}: this index keeps no document text; rebuild it with "
                             "`ltprobe index` (text is stored by default) to count phrases")
        self._index = index
        self._aliases = aliases
        self._docs: dict[str, np.ndarray] = {}
        self._progress = progress

    @property
    def n_docs(self) -> int:
        return len(self._index._docs)

    def _text(self, d: int) -> str:
        index = self._index
        if index._text_off is None:
            index.get_text(index._docs[0])  # maps the text files
        return index._text[int(index._text_off[d]):int(index._text_off[d + 1])].decode("utf-8")

    def _ensure(self, entities: Sequence[str]) -> None:
        missing = [e for e in dict.fromkeys(entities) if e not in self._docs]
        if not missing:
            return
        matcher = PhraseMatcher({e: self._aliases.get(e, []) for e in missing})
        found: dict[str, list[int]] = {e: [] for e in missing}
        if self.n_docs:
            from entity_linking.logs import progress_bar

            for d in progress_bar(range(self.n_docs), desc="phrase scan", unit=" docs",
                                  enabled=self._progress):
                for e in matcher.match(self._text(d)):
                    found[e].append(d)
        for e, docs in found.items():
            self._docs[e] = np.asarray(docs, dtype=np.int64)

    def doc_freq(self, entity: str) -> int:
        return self.doc_freqs([entity])[0]

    def doc_freqs(self, entities: Sequence[str]) -> list[int]:
        self._ensure(entities)
        return [int(len(self._docs[e])) for e in entities]

    def count_cooccurrence(self, pairs: Sequence[tuple[str, str]]) -> list[int]:
        self._ensure([e for p in pairs for e in p])
        return [int(len(np.intersect1d(self._docs[a], self._docs[b], assume_unique=True)))
                for a, b in pairs]

    def doc_numbers(self, entities: Sequence[str]) -> np.ndarray:
        """Document numbers (corpus order) holding a phrase of every entity."""
        self._ensure(entities)
        docs = self._docs[entities[0]]
        for e in entities[1:]:
            docs = np.intersect1d(docs, self._docs[e], assume_unique=True)
        return docs

    def docs_with(self, entities: Sequence[str], limit: int | None = None) -> list[str]:
        if not entities:
            raise ValueError("docs_with needs at least one entity")
        docs = self.doc_numbers(list(entities))
        return [self._index._docs[int(d)] for d in docs[:limit]]

    def get_text(self, doc_id: str) -> str | None:
        return self._index.get_text(doc_id)

    def search_many(self, queries: Sequence[str], k: int) -> list[list[Passage]]:
        return self._index.search_many(queries, k)

    def info(self) -> dict[str, Any]:
        return {**self._index.info(), "backend": self.backend}

    def close(self) -> None:
        self._docs.clear()
        self._index.close()
