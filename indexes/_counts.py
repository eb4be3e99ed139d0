"""Relevant-document counts of QA pairs (methods.md §1) and the way back to the documents.

The published heuristic (Kandpal et al.'s `count_relevant_docs.py`), exactly:
- Q = the question entities, less the stop-list (the original left out 184 countries);
- the answer candidates = the answer entities not in Q, each with its number of mentions
  (`a_entity_votes`: every answer mention counts); the *salient* answers A = those with the
  most mentions, ties kept. A record without `a_entity_votes` gives each `a_entities` one vote;
- `count` = the largest number of documents containing both q and a over (q, a) in Q x A, and
  `pair` the pair that gave it (the first in Q-then-A order on ties); `q_count` = the largest
  document frequency in Q; `a_count` = the largest over *all* answer candidates;
- an entity the index has never seen is in no document.

The stop-list acts on the question side only, as in the original (a question whose answer is
a country keeps it); `stoplist_sides="both"` also removes stop-listed answers. Where ltprobe
differs on purpose: a pair with no question entity (`no_q_entity`) or no answer entity
(`no_a_entity`) is reported with `count` null rather than silently counted as 0.
`load_stoplist("countries")` is the original's 184 countries (DBpedia URIs and Wikidata ids).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from itertools import islice
from pathlib import Path
from typing import Any

from entity_linking.io import InputError, SkipCounter, read_records, write_jsonl
from entity_linking.records import LinkedQAPair
from indexes._backends import open_index
from indexes._base import DocumentIndex
from indexes._records import Count

_BATCH = 5000  # QA pairs per batch of count queries (Elasticsearch sends them via _msearch)


STOPLISTS = {"countries": "countries.txt"}
"""Stop-lists shipped with ltprobe (`indexes/data/`), by name: `countries` is the 184 country
entities of the original study, as DBpedia URIs and Wikidata ids."""


def load_stoplist(path: str | os.PathLike) -> set[str]:
    """Entity ids to leave out of counts: one id a line; blank lines and `#` comment lines ignored.

    `path` is a file, or the name of a shipped stop-list (`countries`).
    """
    path = Path(path)
    if not path.exists() and str(path) in STOPLISTS:
        path = Path(__file__).resolve().parent / "data" / STOPLISTS[str(path)]
    if not path.exists():
        raise InputError(f"{path}: no such stop-list file (or a shipped one: {', '.join(STOPLISTS)})")
    ids = set()
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            line = line.strip()
            if line and not line.startswith("#"):
                ids.add(line)
    return ids


def read_qa_entities(path: str | os.PathLike, *, on_error: str = "fail",
                     skips: SkipCounter | None = None) -> Iterator[LinkedQAPair]:
    """The records of a `qa_entities.jsonl` file, checked (a bad line: `FILE:LINE: reason`)."""
    skips = skips if skips is not None else SkipCounter()
    for line, record in read_records(path, on_error=on_error, skips=skips):  # type: ignore[arg-type]
        try:
            yield LinkedQAPair.from_json(record)
        except ValueError as exc:
            skips.bad_record(f"{path}:{line}: {exc}", on_error)  # type: ignore[arg-type]


def linked(record: LinkedQAPair | dict[str, Any]) -> LinkedQAPair:
    """A QA entity record given as a `LinkedQAPair` or as its JSON dict (`ValueError` when malformed)."""
    return record if isinstance(record, LinkedQAPair) else LinkedQAPair.from_json(record)


def count_qa(index: DocumentIndex, qa_entities: Iterable[LinkedQAPair | dict[str, Any]] | str | os.PathLike, *,
             stoplist: Iterable[str] | str | os.PathLike | None = None,
             stoplist_sides: str = "question", progress: bool = False) -> list[dict[str, Any]]:
    """Count records (`counts.jsonl` lines, as dicts: `Count.to_json()`) for QA entity records,
    in input order.

    `qa_entities` is an iterable of `LinkedQAPair`s (or their JSON dicts, `{"id", "q_entities",
    "a_entities"[, "a_entity_votes"]}`; a malformed one is a `ValueError`) or the path of a
    `qa_entities.jsonl` file; `stoplist` a set of entity ids, the path of a stop-list file or a
    shipped stop-list's name (`countries`); `stoplist_sides` `"question"` (the original) or
    `"both"`.
    """
    return list(iter_counts(index, qa_entities, stoplist=stoplist, stoplist_sides=stoplist_sides,
                            progress=progress))


def iter_counts(index: DocumentIndex, qa_entities: Iterable[LinkedQAPair | dict[str, Any]] | str | os.PathLike, *,
                stoplist: Iterable[str] | str | os.PathLike | None = None,
                stoplist_sides: str = "question",
                on_error: str = "fail", skips: SkipCounter | None = None,
                progress: bool = False) -> Iterator[dict[str, Any]]:
    """Like `count_qa`, but yields records batch by batch (bounded memory for millions of pairs)."""
    for count in iter_count_records(index, qa_entities, stoplist=stoplist, stoplist_sides=stoplist_sides,
                                    on_error=on_error, skips=skips, progress=progress):
        yield count.to_json()


def iter_count_records(index: DocumentIndex,
                       qa_entities: Iterable[LinkedQAPair | dict[str, Any]] | str | os.PathLike, *,
                       stoplist: Iterable[str] | str | os.PathLike | None = None,
                       stoplist_sides: str = "question", on_error: str = "fail",
                       skips: SkipCounter | None = None, progress: bool = False) -> Iterator[Count]:
    """Like `iter_counts`, but yields typed `Count` records."""
    from entity_linking.logs import progress_bar

    if stoplist_sides not in ("question", "both"):
        raise InputError(f"stop-list sides must be 'question' or 'both', not {stoplist_sides!r}")

    if isinstance(qa_entities, (str, os.PathLike)):
        qa_entities = read_qa_entities(qa_entities, on_error=on_error, skips=skips)
    if isinstance(stoplist, (str, os.PathLike)):
        stoplist = load_stoplist(stoplist)
    stop = frozenset(stoplist or ())
    bar = progress_bar(desc="count", unit=" qa", enabled=progress)
    records = (linked(r) for r in qa_entities)
    try:
        while batch := list(islice(records, _BATCH)):
            yield from _count_batch(index, batch, stop, stoplist_sides == "both")
            bar.update(len(batch))
    finally:
        bar.close()


def answer_candidates(record: LinkedQAPair, q: Iterable[str]) -> dict[str, int]:
    """The answer entities of a QA entity record not in `q`, with their mention votes (in
    first-mention order): `a_entity_votes` when the record has them, else one vote per
    `a_entities` id."""
    in_q = set(q)
    return {e: n for e, n in record.answer_votes().items() if e not in in_q}


def _count_batch(index: DocumentIndex, batch: list[LinkedQAPair],
                 stop: frozenset[str], both_sides: bool = False) -> list[Count]:
    sides = []
    pairs: list[tuple[str, str]] = []
    singles: dict[str, int] = {}
    for record in batch:
        q = list(dict.fromkeys(e for e in record.q_entities if e not in stop))
        candidates = answer_candidates(record, q)
        if both_sides:
            candidates = {e: n for e, n in candidates.items() if e not in stop}
        top = max(candidates.values(), default=0)
        a = [e for e, n in candidates.items() if n == top]  # the salient answers, ties kept
        sides.append((q, a, list(candidates), len(pairs)))
        pairs.extend((qe, ae) for qe in q for ae in a)
        for e in q + list(candidates):
            singles.setdefault(e, 0)
    names = list(singles)
    for name, df in zip(names, index.doc_freqs(names)):
        singles[name] = df
    pair_counts = index.count_cooccurrence(pairs)
    annotate = getattr(index, "annotate", None)
    out = []
    for record, (q, a, every_a, start) in zip(batch, sides):
        result = Count(record.id, None, max(singles[e] for e in q) if q else None,
                       max(singles[e] for e in every_a) if every_a else None, None, "ok")
        if not q:
            result.status = "no_q_entity"
        elif not a:
            result.status = "no_a_entity"
        else:
            counts = pair_counts[start:start + len(q) * len(a)]
            best = max(range(len(counts)), key=counts.__getitem__)  # first maximum
            result.count = counts[best]
            result.pair = list(pairs[start + best])
        if annotate is not None:  # backends with more to say per record (infini-gram: approx)
            fields = result.to_json()
            annotate(fields, q, a)
            result.extra = {k: v for k, v in fields.items() if k not in Count.FIELDS}
        out.append(result)
    return out


def write_counts(index: DocumentIndex | str | os.PathLike, qa_entities: str | os.PathLike,
                 out: str | os.PathLike, *, stoplist: Iterable[str] | str | os.PathLike | None = None,
                 stoplist_sides: str = "question", on_error: str = "fail",
                 progress: bool = True) -> dict[str, Any]:
    """Write `counts.jsonl` for a `qa_entities.jsonl` file (atomically); return a summary.

    `index` is an open `DocumentIndex` or an index folder. The summary has the number of
    records per status, and `skipped` (records passed over with `on_error="skip"`).
    """
    own = not isinstance(index, DocumentIndex)
    opened = open_index(index) if own else index  # type: ignore[arg-type]
    skips = SkipCounter()
    summary: dict[str, Any] = {"ok": 0, "no_q_entity": 0, "no_a_entity": 0}
    try:
        def tally() -> Iterator[dict[str, Any]]:
            for record in iter_count_records(opened, qa_entities, stoplist=stoplist,
                                             stoplist_sides=stoplist_sides, on_error=on_error,
                                             skips=skips, progress=progress):
                summary[record.status] += 1
                yield record.to_json()

        summary["n"] = write_jsonl(out, tally())
    finally:
        if own:
            opened.close()
    summary["skipped"] = skips.skipped
    if skips.skipped:
        summary["skipped_summary"] = skips.summary()
    return summary


def find_qa_record(qa_entities: str | os.PathLike, qa_id: str) -> LinkedQAPair:
    """The record of `qa_id` in a `qa_entities.jsonl` file (ids compared as strings)."""
    for record in read_qa_entities(qa_entities, on_error="skip"):
        if str(record.id) == str(qa_id):
            return record
    raise InputError(f"{qa_entities}: no QA pair with id {qa_id!r}")


def relevant_docs(index: DocumentIndex, record: LinkedQAPair | dict[str, Any], *, limit: int | None = 10,
                  stoplist: Iterable[str] | str | os.PathLike | None = None,
                  stoplist_sides: str = "question") -> dict[str, Any]:
    """The relevant documents of one QA entity record: those containing the counted pair.

    Returns `{"id", "status", "pair", "count", "docs": [{"id", "text"}]}` with at most
    `limit` documents (in corpus order); `text` is the full document text (None when the index
    keeps no text for it).
    """
    counted = count_qa(index, [record], stoplist=stoplist, stoplist_sides=stoplist_sides)[0]
    docs = []
    if counted["status"] == "ok":
        for doc_id in index.docs_with(counted["pair"], limit=limit):
            docs.append({"id": doc_id, "text": index.get_text(doc_id)})
    return {"id": counted["id"], "status": counted["status"], "pair": counted["pair"],
            "count": counted["count"], "docs": docs}
