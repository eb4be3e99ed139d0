"""The document index interface shared by every backend (`indexes._backends` opens and builds by name).

A document index answers three kinds of questions about a corpus whose documents were linked
to entities: how many documents contain an entity or a pair of entities (the relevant-document
counts of Kandpal et al.), which documents those are (the way back from counts to text), and
which passages best match a query (BM25, for retrieval augmentation).
"""

from __future__ import annotations

import json
import os
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from entity_linking.io import InputError

INDEX_INFO = "index.json"
"""The file in every index folder that names its backend and format version."""


@dataclass(frozen=True)
class Passage:
    """One retrieved passage: a piece of about 100 words of a document, with its BM25 score."""

    doc_id: str
    """Id of the document the passage was cut from (the corpus or passages record's `id`)."""
    passage_id: str
    """`"<doc_id>#<n>"`, n counting the document's passages from 0."""
    text: str
    """The passage text (words joined by single spaces)."""
    score: float
    """The BM25 score of the passage for the query (higher is better)."""
    source: str | None = None
    """Where an oracle passage came from (`gold`, `linked`, `search`; see
    `probe.evaluation.oracle_passages`); None for a plain retrieval result."""


class DocumentIndex(ABC):
    """What every backend answers. Entity ids are strings; an unknown entity counts 0."""

    backend: str = ""
    """`"embedded"` or `"elasticsearch"`."""

    @abstractmethod
    def doc_freq(self, entity: str) -> int:
        """Number of documents linked to `entity` (0 when the index has never seen it)."""

    @abstractmethod
    def count_cooccurrence(self, pairs: Sequence[tuple[str, str]]) -> list[int]:
        """For each `(a, b)`, the number of documents linked to both; a batch in, a list out."""

    @abstractmethod
    def docs_with(self, entities: Sequence[str], limit: int | None = None) -> list[str]:
        """Ids of the documents linked to every entity in `entities`, in corpus order."""

    @abstractmethod
    def get_text(self, doc_id: str) -> str | None:
        """The full text of a document, or None when the id is not in the index."""

    @abstractmethod
    def search_many(self, queries: Sequence[str], k: int) -> list[list[Passage]]:
        """Top-`k` passages by BM25 for each query, best first."""

    def search(self, query: str, k: int = 10) -> list[Passage]:
        """Top-`k` passages by BM25 for one query, best first."""
        return self.search_many([query], k)[0]

    def doc_freqs(self, entities: Sequence[str]) -> list[int]:
        """`doc_freq` of each entity; backends override this with a batched query."""
        return [self.doc_freq(e) for e in entities]

    def info(self) -> dict[str, Any]:
        """What the index holds (backend, sizes), as written to `index.json`."""
        return {"backend": self.backend}

    def close(self) -> None:
        """Release files and connections. Using the index afterwards is an error."""

    def __enter__(self) -> DocumentIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_index_info(path: str | os.PathLike) -> dict[str, Any]:
    """Read `PATH/index.json`, with an actionable error when the folder is not an index."""
    info_path = Path(path) / INDEX_INFO
    if not info_path.exists():
        raise InputError(
            f"{path}: not an ltprobe index (no {INDEX_INFO}); build one with `ltprobe index`")
    try:
        info = json.loads(info_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"{info_path}: unreadable index description ({exc}); rebuild the index") from None
    if not isinstance(info, dict) or "backend" not in info:
        raise InputError(f"{info_path}: no 'backend' field; rebuild the index with `ltprobe index`")
    return info


def check_version(info: dict[str, Any], expected: int, where: str) -> None:
    """Refuse an index written in another format version, saying what to do."""
    version = info.get("version")
    if version != expected:
        raise InputError(
            f"{where}: index format version {version!r} is not the version this ltprobe reads "
            f"({expected}); rebuild it with `ltprobe index`")
