"""Opening and building a document index by backend name: `BACKENDS` is the one place that knows
which module implements which backend ("module:attribute", imported only when used), so adding a
backend is one line there."""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from entity_linking.io import InputError, read_records
from indexes._base import INDEX_INFO, DocumentIndex, read_index_info


@dataclass(frozen=True)
class Backend:
    """Where one backend's pieces live, each "module:attribute" (imported on first use)."""

    index: str
    """Its `DocumentIndex` class: `Class(folder)`, or for a server backend
    `Class.open(url, index, config=...)` (a folder's `index.json` then says where: `url`, `index`,
    `config`)."""
    build: str
    """`build(corpus, linked_dir, out, *, passages, passage_words, on_error, progress, fields)`,
    a server backend's with `es_url`, `es_index`, `config`, `shards`, `replicas`, `workers`,
    `executor`, `ray_workers` too; returns the index description."""
    phrases: str
    """The phrase-counting view on an opened index: `Class(index, aliases, field=...)` for a
    server backend, `Class(index, aliases, progress=...)` for a folder."""
    server: bool = False
    """True when the index lives on a server (the `--es-*` options), not in a folder."""


# backend name -> its pieces, imported on first use (one line each). The infini-gram backend is
# reached only by `open_phrase_index(infini_gram=FOLDER)`: its folders are written by infini-gram's
# own indexer and carry no `index.json`.
BACKENDS = {
    "embedded": Backend("indexes.embedded:EmbeddedIndex", "indexes.embedded:build_embedded",
                        "indexes._phrase_index:EmbeddedPhraseCounts"),
    "elasticsearch": Backend("indexes.elastic:ElasticsearchIndex", "indexes.elastic:build_elasticsearch",
                             "indexes.elastic:PhraseCounts", server=True),
}
INFINIGRAM = "indexes.infinigram:InfiniGramIndex"


def _load(spec: str) -> Any:
    module, _, attribute = spec.partition(":")
    return getattr(importlib.import_module(module), attribute)


def _names() -> str:
    return " or ".join(BACKENDS)


def _open_server(backend: str, url: str, index: str, config: Any, **options: Any) -> DocumentIndex:
    return _load(BACKENDS[backend].index).open(url, index, config=config, **options)


def open_index(path: str | os.PathLike | None = None, *, es_url: str | None = None,
               es_index: str | None = None, es_config: str | os.PathLike | None = None) -> DocumentIndex:
    """Open an index: a folder written by `build_index` (any backend), or an Elasticsearch
    index given by `es_url` and `es_index` (credentials from the environment or `es_config`).

    Opening the embedded backend reads no postings: it takes milliseconds at any size.
    """
    if es_url is not None or es_index is not None:
        if not (es_url and es_index):
            raise InputError("give both --es-url and --es-index to use an Elasticsearch index")
        return _open_server("elasticsearch", es_url, es_index, es_config)
    if path is None:
        raise InputError("no index given: pass an index folder (--index DIR) or --es-url and --es-index")
    info = read_index_info(path)
    backend = info["backend"]
    if backend not in BACKENDS:
        raise InputError(f"{Path(path) / INDEX_INFO}: unknown backend {backend!r} (expected {_names()}); "
                         "rebuild the index with `ltprobe index`")
    if BACKENDS[backend].server:
        return _open_server(backend, es_url or info["url"], es_index or info["index"], es_config or info.get("config"))
    return _load(BACKENDS[backend].index)(path)


def build_index(corpus: str | os.PathLike, linked_dir: str | os.PathLike | None,
                out: str | os.PathLike | None, *, backend: str = "embedded",
                passages: str | os.PathLike | None = None, passage_words: int = 100,
                es_url: str | None = None, es_index: str | None = None,
                es_config: str | os.PathLike | None = None, es_shards: int = 1,
                es_replicas: int = 0, es_workers: int = 2, on_error: str = "fail",
                executor: str = "local", workers: int | None = None,
                progress: bool = True, text_field: str | None = None, id_field: str | None = None,
                split: str | None = None, counts_only: bool = False) -> dict[str, Any]:
    """Index a linked corpus: per-document entity sets (for counts), document text (for
    `get_text`) and passages of about `passage_words` words (for BM25 search).

    `corpus` is any corpus the common reader takes (a file, folder or glob of
    `.jsonl[.gz|.zst]` and `.parquet`, `hf:NAME[:CONFIG]`, an object-store URL; see
    `entity_linking.corpus._reader`), read with `text_field`, `id_field` and `split` (default: those
    the linked folder was made with, else `text`, `id`, `train`), so ids match the linked
    shards; `linked_dir` the folder written by `ltprobe link-corpus` (read with
    `entity_linking.iter_linked`, in corpus order). `passages`, when given, is a separate
    retrieval collection (any such corpus with `id` and `text`) that is split into passages
    instead of the corpus documents. `counts_only` (embedded): the entity sets alone, no text
    and no passages, for counting a corpus too large to keep twice. With `backend="elasticsearch"` the
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
    if backend not in BACKENDS:
        raise InputError(f"unknown backend {backend!r}: choose {_names()}")
    spec = BACKENDS[backend]
    options: dict[str, Any] = {"passages": passages, "passage_words": passage_words, "on_error": on_error,
                               "progress": progress, "fields": fields}
    if counts_only:
        if spec.server:
            raise InputError(f"--counts-only is for the embedded backend; the {backend} index keeps the text")
        if passages is not None:
            raise InputError("--counts-only writes no passages: leave out --passages "
                             "(or build the retrieval index separately)")
        options["counts_only"] = True
    if spec.server:
        if not (es_url and es_index):
            raise InputError(f"--backend {backend} needs --es-url URL and --es-index NAME")
        options.update(es_url=es_url, es_index=es_index, config=es_config, shards=es_shards,
                       replicas=es_replicas, workers=es_workers, executor=executor, ray_workers=workers)
    else:
        if executor == "ray":
            raise InputError("--executor ray bulk-loads into Elasticsearch (--backend elasticsearch); "
                             f"the {backend} index is written by one process")
        if out is None:
            raise InputError(f"the {backend} backend needs an output folder (--out INDEX_DIR)")
    return _load(spec.build)(corpus, linked_dir, out, **options)


def open_phrase_index(aliases: dict[str, list[str]], *, infini_gram: str | None = None,
                      index: str | None = None, es_url: str | None = None, es_index: str | None = None,
                      es_config: str | None = None, text_field: str = "text", tokenizer: str = "bytes",
                      token_dtype: str | None = None, max_occurrences: int = 100_000,
                      max_check_docs: int = 10_000, max_diff_tokens: int | None = None) -> Any:
    """A phrase-counting view (the `DocumentIndex` interface) on whichever index is given."""
    if infini_gram:
        return _load(INFINIGRAM)(infini_gram, aliases, tokenizer=tokenizer, token_dtype=token_dtype,
                                 max_occurrences=max_occurrences, max_check_docs=max_check_docs,
                                 max_diff_tokens=max_diff_tokens)
    if max_diff_tokens is not None:
        raise InputError("--max-diff-tokens is the infini-gram engine's window mode (with --infini-gram)")
    if es_url or es_index:
        if not (es_url and es_index):
            raise InputError("give both --es-url and --es-index to count phrases on Elasticsearch")
        opened = _open_server("elasticsearch", es_url, es_index, es_config, require_ltprobe=False)
    elif not index:
        raise InputError("--phrases needs an index: --index DIR, --es-url/--es-index, or --infini-gram DIR")
    else:
        opened = open_index(index)
    spec = BACKENDS[opened.backend]
    options = {"field": text_field} if spec.server else {"progress": True}
    return _load(spec.phrases)(opened, aliases, **options)


def load_aliases(kb: str) -> dict[str, list[str]]:
    """Entity id -> [name, *aliases] from a kb.jsonl."""
    aliases: dict[str, list[str]] = {}
    for _, record in read_records(kb, required={"id": str}):
        names = [record.get("name")] + list(record.get("aliases") or [])
        aliases[record["id"]] = list(dict.fromkeys(n for n in names if isinstance(n, str) and n))
    return aliases
