"""Test data and helpers of the index tests (a module name unique across the test tree)."""

from __future__ import annotations

import json
import os
import re
import uuid
from pathlib import Path

# A hand-made corpus with known entity sets: d5 has no entities, d6 repeats one, "Q7" is
# only in d4, and text words are chosen so that BM25 queries have one clear best passage.
DOCS = [
    ("d1", ["Q1", "Q2"], "Ada Lovelace wrote the first program for the analytical engine of Charles Babbage."),
    ("d2", ["Q2", "Q3"], "Charles Babbage designed the difference engine in London."),
    ("d3", ["Q1", "Q3"], "Ada Lovelace lived in London and studied mathematics with Mary Somerville."),
    ("d4", ["Q1", "Q2", "Q3", "Q7"], "In London, Ada Lovelace and Charles Babbage discussed punched cards "
                                     "borrowed from the Jacquard loom."),
    ("d5", [], "A quiet chapter about gardening, tomatoes and compost heaps."),
    ("d6", ["Q3", "Q3"], "London bridges and the river Thames."),
]
QA = [
    {"id": "qa1", "q_entities": ["Q1"], "a_entities": ["Q2"]},
    {"id": "qa2", "q_entities": ["Q1", "Q2"], "a_entities": ["Q3"]},
    {"id": "qa3", "q_entities": [], "a_entities": ["Q3"]},
    {"id": "qa4", "q_entities": ["Q2"], "a_entities": []},
    {"id": "qa5", "q_entities": ["Q9"], "a_entities": ["Q1"]},
    {"id": "qa6", "q_entities": ["Q7"], "a_entities": ["Q3", "Q2"]},
]


def write_corpus(folder: Path, docs: list[tuple[str, list[str], str]], *, shard_size: int = 4) -> tuple[Path, Path]:
    """Write `corpus.jsonl` and a linked folder of shards in the design's shape; return both paths."""
    folder.mkdir(parents=True, exist_ok=True)
    corpus = folder / "corpus.jsonl"
    with open(corpus, "w", encoding="utf-8") as handle:
        for doc_id, _, text in docs:
            handle.write(json.dumps({"id": doc_id, "text": text}) + "\n")
    return corpus, write_linked(folder / "linked", [(d, e) for d, e, _ in docs], shard_size=shard_size)


def write_linked(linked: Path, docs: list[tuple[str, list[str]]], *, shard_size: int = 4) -> Path:
    """A linked-corpus folder in the shape `ltprobe link-corpus` writes (shards + manifest.json),
    for corpora whose links are known (hand-made, or a generated world's gold links)."""
    linked.mkdir(parents=True, exist_ok=True)
    shards = []
    for n, start in enumerate(range(0, len(docs), shard_size)):
        shards.append(f"shard-{n:05d}.jsonl")
        with open(linked / shards[-1], "w", encoding="utf-8") as handle:
            for doc_id, entities in docs[start:start + shard_size]:
                handle.write(json.dumps({"id": doc_id, "entities": list(dict.fromkeys(entities))}) + "\n")
    (linked / "manifest.json").write_text(json.dumps(
        {"format": "ltprobe-linked", "version": 1, "complete": True, "shards": shards}))
    return linked


def truth_doc_sets(docs: list[tuple[str, list[str], str]]) -> dict[str, list[str]]:
    """Entity -> ids of the documents linked to it, in corpus order (counted by hand)."""
    sets: dict[str, list[str]] = {}
    for doc_id, entities, _ in docs:
        for e in dict.fromkeys(entities):
            sets.setdefault(e, []).append(doc_id)
    return sets


def alias_linker(aliases: dict[str, list[str]]):
    """A tiny real linker for test corpora: whole-word, case-sensitive alias matches."""
    pattern = re.compile(r"\b(" + "|".join(sorted((re.escape(a) for names in aliases.values() for a in names),
                                                   key=len, reverse=True)) + r")\b")
    owner = {a: e for e, names in aliases.items() for a in names}

    def link(text: str) -> list[str]:
        return list(dict.fromkeys(owner[m.group(1)] for m in pattern.finditer(text)))

    return link


def es_url_for(target: str, request) -> str:
    """The URL of an Elasticsearch test target: the local noida-db server or $ES_URL."""
    if target == "noida":
        return request.getfixturevalue("noida_url")
    return os.environ["ES_URL"]


def new_index_name(prefix: str = "ltprobe-test") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def delete_es_indices(url: str, *names: str) -> None:
    from elasticsearch import Elasticsearch

    client = Elasticsearch(url, request_timeout=30)
    for name in names:
        client.options(ignore_status=404).indices.delete(index=name)
    client.close()
