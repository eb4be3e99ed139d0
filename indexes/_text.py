"""Text handling shared by the backends: reading a linked corpus, passages, and tokenization.

One tokenizer serves indexing, querying and the BM25 reference of `ltprobe bench retrieve`,
so that the embedded index and the reference see exactly the same tokens: runs of Unicode
letters and digits (as tantivy's simple tokenizer: every other character separates tokens),
lower-cased, tokens of more than `MAX_TOKEN_CHARS` characters dropped, English stop words
(Lucene's list, as Elasticsearch's `_english_`) removed. Stop words are dropped because they
carry almost no BM25 weight but would make every query scan most of the postings.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from entity_linking.io import InputError, SkipCounter

MAX_TOKEN_CHARS = 40
"""Longer tokens (hashes, URLs run together, ...) are dropped."""

STOP_WORDS = frozenset({
    "a", "an", "and", "are", "as", "at", "be", "but", "by", "for", "if", "in", "into", "is", "it",
    "no", "not", "of", "on", "or", "such", "that", "the", "their", "then", "there", "these",
    "they", "this", "to", "was", "will", "with"})
"""English stop words (Lucene's list), removed from passages and queries."""

_WORD = re.compile(r"[^\W_]+")  # letters and digits: \w without the underscore


def raw_tokens(text: str) -> list[str]:
    """Lower-cased runs of letters and digits, before the length and stop-word filters (the
    indexer applies those per distinct token)."""
    found = _WORD.findall(text)
    if not found:
        return found
    # Split first, then lower-case (as tantivy: "İ" lower-cases to "i" + a combining mark,
    # which must stay inside its token); one `lower` call for all tokens is much faster.
    return " ".join(found).lower().split(" ")


def keep_token(token: str) -> bool:
    """Whether a lower-cased token is indexed (not too long, not a stop word)."""
    return len(token) <= MAX_TOKEN_CHARS and token not in STOP_WORDS


def tokenize(text: str) -> list[str]:
    """The index's tokens of `text`, in order (repeats kept)."""
    return [t for t in raw_tokens(text) if len(t) <= MAX_TOKEN_CHARS and t not in STOP_WORDS]


def query_terms(text: str) -> list[str]:
    """The distinct tokens of a query, in first-seen order (each term weighs once)."""
    return list(dict.fromkeys(tokenize(text)))


def split_passages(text: str, words: int = 100) -> list[str]:
    """Split a document into passages of about `words` words (whitespace-separated).

    The document is cut into `round(n / words)` pieces of near-equal length (at least one), so
    no passage is a short leftover; passage text is the words joined by single spaces. An
    empty document gives no passage.
    """
    tokens = text.split()
    if not tokens:
        return []
    n = max(1, round(len(tokens) / words))
    size, extra = divmod(len(tokens), n)
    passages, start = [], 0
    for i in range(n):
        end = start + size + (1 if i < extra else 0)
        passages.append(" ".join(tokens[start:end]))
        start = end
    return passages


def reader_fields(linked_dir: str | os.PathLike | None, text_field: str | None = None,
                  id_field: str | None = None, split: str | None = None) -> dict[str, Any]:
    """How to read the corpus: the fields given, else those the linked folder was made with
    (its manifest), else `text`/`id`/`train`; and the linker's document-length limit, so the
    index skips exactly the records the linker skipped."""
    linked: dict[str, Any] = {}
    if linked_dir is not None and (Path(linked_dir) / "manifest.json").exists():
        from entity_linking import read_manifest

        linked = read_manifest(linked_dir).get("config", {})
    from entity_linking.corpus import DEFAULT_MAX_DOC_CHARS

    return {"text_field": text_field or linked.get("text_field") or "text",
            "id_field": id_field or linked.get("id_field") or "id",
            "split": split or linked.get("split") or "train",
            "max_doc_chars": linked.get("max_doc_chars") or DEFAULT_MAX_DOC_CHARS}


def iter_texts(corpus: Any, *, on_error: str = "fail", skips: SkipCounter | None = None,
               fields: dict[str, Any] | None = None) -> Iterator[tuple[str, str]]:
    """Yield `(doc_id, text)` for each document of a corpus (any form the common reader
    `entity_linking.corpus._reader.Corpus` takes: files, folders, globs, Parquet, `hf:`, URLs);
    `fields` as `reader_fields` returns (default: `text`, `id`)."""
    from entity_linking.corpus import Corpus

    fields = fields or reader_fields(None)
    yield from Corpus(corpus, on_error=on_error, skips=skips, **fields).documents()  # type: ignore[arg-type]


def iter_linked_docs(linked_dir: str | os.PathLike) -> Iterator[tuple[str, list[str]]]:
    """`(doc_id, entity ids)` from a linked-corpus folder, through `entity_linking.iter_linked`."""
    linked_dir = Path(linked_dir)
    if not linked_dir.is_dir():
        raise InputError(f"{linked_dir}: no such folder; write it with `ltprobe link-corpus`")
    from entity_linking import iter_linked

    for doc_id, entities in iter_linked(linked_dir):
        yield str(doc_id), list(entities)


def iter_corpus(corpus: Any, linked_dir: str | os.PathLike | None, *,
                on_error: str = "fail", skips: SkipCounter | None = None,
                fields: dict[str, Any] | None = None) -> Iterator[tuple[str, list[str], str]]:
    """Yield `(doc_id, entities, text)`: the corpus text joined with its linked entities.

    The linked shards are in corpus order; a document id that differs between the two means
    they come from different corpora (or different `--on-error` choices), which is an error.
    Without `linked_dir` every document has no entities (a retrieval-only index).
    """
    texts = iter_texts(corpus, on_error=on_error, skips=skips, fields=fields or reader_fields(linked_dir))
    if linked_dir is None:
        for doc_id, text in texts:
            yield doc_id, [], text
        return
    linked = iter_linked_docs(linked_dir)
    n = 0
    for n, (doc_id, text) in enumerate(texts, 1):
        try:
            linked_id, entities = next(linked)
        except StopIteration:
            raise InputError(
                f"{linked_dir}: ends after {n - 1} documents but {corpus} has more (document "
                f"{doc_id!r}); re-run `ltprobe link-corpus` on this corpus") from None
        if linked_id != doc_id:
            raise InputError(
                f"{linked_dir}: document {n} is {linked_id!r} but {corpus} has {doc_id!r} there; "
                "the linked folder belongs to another corpus (or another --on-error choice): "
                "re-run `ltprobe link-corpus`")
        yield doc_id, entities, text
    extra = next(linked, None)
    if extra is not None:
        raise InputError(f"{linked_dir}: has more documents than {corpus} ({n}; next is "
                         f"{extra[0]!r}); re-run `ltprobe link-corpus` on this corpus")
