"""The document index interface shared by every backend, and opening/building by backend name.

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


def open_index(path: str | os.PathLike | None = None, *, es_url: str | None = None,
               es_index: str | None = None, es_config: str | os.PathLike | None = None) -> DocumentIndex:
    """Open an index: a folder written by `build_index` (either backend), or an Elasticsearch
    index given by `es_url` and `es_index` (credentials from the environment or `es_config`).

    Opening the embedded backend reads no postings: it takes milliseconds at any size.
    """
    if es_url is not None or es_index is not None:
        if not (es_url and es_index):
            raise InputError("give both --es-url and --es-index to use an Elasticsearch index")
        from indexes._elastic import ElasticsearchIndex

        return ElasticsearchIndex.open(es_url, es_index, config=es_config)
    if path is None:
        raise InputError("no index given: pass an index folder (--index DIR) or --es-url and --es-index")
    info = read_index_info(path)
    backend = info["backend"]
    if backend == "embedded":
        from indexes._embedded import EmbeddedIndex

        return EmbeddedIndex(path)
    if backend == "elasticsearch":
        from indexes._elastic import ElasticsearchIndex

        return ElasticsearchIndex.open(es_url or info["url"], es_index or info["index"],
                                       config=es_config or info.get("config"))
    raise InputError(f"{Path(path) / INDEX_INFO}: unknown backend {backend!r} (expected embedded "
                     "or elasticsearch); rebuild the index with `ltprobe index`")


def build_index(corpus: str | os.PathLike, linked_dir: str | os.PathLike | None,
                out: str | os.PathLike | None, *, backend: str = "embedded",
                passages: str | os.PathLike | None = None, passage_words: int = 100,
                es_url: str | None = None, es_index: str | None = None,
                es_config: str | os.PathLike | None = None, es_shards: int = 1,
                es_replicas: int = 0, es_workers: int = 2, on_error: str = "fail",
                executor: str = "local", workers: int | None = None,
                progress: bool = True, text_field: str | None = None, id_field: str | None = None,
                split: str | None = None) -> dict[str, Any]:
    """Index a linked corpus: per-document entity sets (for counts), document text (for
    `get_text`) and passages of about `passage_words` words (for BM25 search).

    `corpus` is any corpus the common reader takes (a file, folder or glob of
    `.jsonl[.gz|.zst]` and `.parquet`, `hf:NAME[:CONFIG]`, an object-store URL; see
    `entity_linking._sources`), read with `text_field`, `id_field` and `split` (default: those
    the linked folder was made with, else `text`, `id`, `train`), so ids match the linked
    shards; `linked_dir` the folder written by `ltprobe link-corpus` (read with
    `entity_linking.iter_linked`, in corpus order). `passages`, when given, is a separate
    retrieval collection (any such corpus with `id` and `text`) that is split into passages
    instead of the corpus documents. With `backend="elasticsearch"` the
    documents go to `es_index` (and passages to `<es_index>-passages`) on `es_url`; `out`, if
    given, then receives an `index.json` that points there. `executor="ray"` (Elasticsearch
    only) sends the bulk requests from `workers` Ray actors (default: one per core; a cluster
    when `RAY_ADDRESS` is set), each with `es_workers` bulk streams. Returns the index
    description.
    """
    if passage_words < 1:
        raise InputError(f"--passage-words must be at least 1, not {passage_words}")
    from indexes._text import reader_fields

    fields = reader_fields(linked_dir, text_field, id_field, split)
    if executor not in ("local", "ray"):
        raise InputError(f"unknown executor {executor!r}: choose local or ray")
    if backend == "embedded":
        if executor == "ray":
            raise InputError("--executor ray bulk-loads into Elasticsearch (--backend elasticsearch); "
                             "the embedded index is written by one process")
        if out is None:
            raise InputError("the embedded backend needs an output folder (--out INDEX_DIR)")
        from indexes._embedded import build_embedded

        return build_embedded(corpus, linked_dir, out, passages=passages,
                              passage_words=passage_words, on_error=on_error, progress=progress,
                              fields=fields)
    if backend == "elasticsearch":
        if not (es_url and es_index):
            raise InputError("--backend elasticsearch needs --es-url URL and --es-index NAME")
        from indexes._elastic import build_elasticsearch

        return build_elasticsearch(corpus, linked_dir, out, es_url=es_url, es_index=es_index,
                                   config=es_config, shards=es_shards, replicas=es_replicas,
                                   workers=es_workers, passages=passages,
                                   passage_words=passage_words, on_error=on_error,
                                   executor=executor, ray_workers=workers, progress=progress,
                                   fields=fields)
    raise InputError(f"unknown backend {backend!r}: choose embedded or elasticsearch")
