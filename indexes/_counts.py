"""Relevant-document counts of QA pairs (methods.md §1) and the way back to the documents.

For a QA pair with question entities Q and salient answer entities A (after the stop-list):
`count` is the largest number of documents containing both q and a over (q, a) in Q x A, and
`pair` the pair that gave it (the first in Q-then-A order on ties); `q_count` and `a_count` are
the largest single-entity document frequencies in Q and in A. A pair with no question entity
(`no_q_entity`) or no answer entity (`no_a_entity`) is reported with `count` null rather than
silently counted as 0.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from itertools import islice
from pathlib import Path
from typing import Any

from entity_linking.io import InputError, SkipCounter, read_records, write_jsonl
from indexes._base import DocumentIndex, open_index

_BATCH = 5000  # QA pairs per batch of count queries (Elasticsearch sends them via _msearch)


def load_stoplist(path: str | os.PathLike) -> set[str]:
    """Entity ids to leave out of counts: one id a line; blank lines and `#` comment lines ignored."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such stop-list file")
    ids = set()
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            line = line.strip()
            if line and not line.startswith("#"):
                ids.add(line)
    return ids


def _check_qa_entities(record: dict[str, Any]) -> None:
    for key in ("q_entities", "a_entities"):
        value = record.get(key)
        if not isinstance(value, list) or not all(isinstance(e, str) for e in value):
            raise ValueError(f"field {key!r} must be a list of entity id strings")


def read_qa_entities(path: str | os.PathLike, *, on_error: str = "fail",
                     skips: SkipCounter | None = None) -> Iterator[dict[str, Any]]:
    """Records of a `qa_entities.jsonl` file (`id`, `q_entities`, `a_entities`), checked."""
    for _, record in read_records(path, on_error=on_error, skips=skips,  # type: ignore[arg-type]
                                  required={"id": (str, int)}, check=_check_qa_entities):
        yield record


def count_qa(index: DocumentIndex, qa_entities: Iterable[dict[str, Any]] | str | os.PathLike, *,
             stoplist: Iterable[str] | str | os.PathLike | None = None,
             progress: bool = False) -> list[dict[str, Any]]:
    """Count records (`counts.jsonl` shape) for QA entity records, in input order.

    `qa_entities` is an iterable of `{"id", "q_entities", "a_entities"}` records or the path of
    such a JSONL file; `stoplist` a set of entity ids or the path of a stop-list file.
    """
    return list(iter_counts(index, qa_entities, stoplist=stoplist, progress=progress))


def iter_counts(index: DocumentIndex, qa_entities: Iterable[dict[str, Any]] | str | os.PathLike, *,
                stoplist: Iterable[str] | str | os.PathLike | None = None,
                on_error: str = "fail", skips: SkipCounter | None = None,
                progress: bool = False) -> Iterator[dict[str, Any]]:
    """Like `count_qa`, but yields records batch by batch (bounded memory for millions of pairs)."""
    from tqdm import tqdm

    if isinstance(qa_entities, (str, os.PathLike)):
        qa_entities = read_qa_entities(qa_entities, on_error=on_error, skips=skips)
    if isinstance(stoplist, (str, os.PathLike)):
        stoplist = load_stoplist(stoplist)
    stop = frozenset(stoplist or ())
    bar = tqdm(desc="count", unit=" qa", disable=not progress)
    records = iter(qa_entities)
    try:
        while batch := list(islice(records, _BATCH)):
            yield from _count_batch(index, batch, stop)
            bar.update(len(batch))
    finally:
        bar.close()


def _count_batch(index: DocumentIndex, batch: list[dict[str, Any]],
                 stop: frozenset[str]) -> list[dict[str, Any]]:
    sides = []
    pairs: list[tuple[str, str]] = []
    singles: dict[str, int] = {}
    for record in batch:
        q = list(dict.fromkeys(e for e in record.get("q_entities") or [] if e not in stop))
        a = list(dict.fromkeys(e for e in record.get("a_entities") or [] if e not in stop))
        sides.append((q, a, len(pairs)))
        pairs.extend((qe, ae) for qe in q for ae in a)
        for e in q + a:
            singles.setdefault(e, 0)
    names = list(singles)
    for name, df in zip(names, index.doc_freqs(names)):
        singles[name] = df
    pair_counts = index.count_cooccurrence(pairs)
    annotate = getattr(index, "annotate", None)
    out = []
    for record, (q, a, start) in zip(batch, sides):
        result: dict[str, Any] = {
            "id": record["id"], "count": None,
            "q_count": max(singles[e] for e in q) if q else None,
            "a_count": max(singles[e] for e in a) if a else None,
            "pair": None,
        }
        if not q:
            result["status"] = "no_q_entity"
        elif not a:
            result["status"] = "no_a_entity"
        else:
            counts = pair_counts[start:start + len(q) * len(a)]
            best = max(range(len(counts)), key=counts.__getitem__)  # first maximum
            result["count"] = counts[best]
            result["pair"] = list(pairs[start + best])
            result["status"] = "ok"
        if annotate is not None:  # backends with more to say per record (infini-gram: approx)
            annotate(result, q, a)
        out.append(result)
    return out


def write_counts(index: DocumentIndex | str | os.PathLike, qa_entities: str | os.PathLike,
                 out: str | os.PathLike, *, stoplist: Iterable[str] | str | os.PathLike | None = None,
                 on_error: str = "fail", progress: bool = True) -> dict[str, Any]:
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
            for record in iter_counts(opened, qa_entities, stoplist=stoplist, on_error=on_error,
                                      skips=skips, progress=progress):
                summary[record["status"]] += 1
                yield record

        summary["n"] = write_jsonl(out, tally())
    finally:
        if own:
            opened.close()
    summary["skipped"] = skips.skipped
    if skips.skipped:
        summary["skipped_summary"] = skips.summary()
    return summary


def find_qa_record(qa_entities: str | os.PathLike, qa_id: str) -> dict[str, Any]:
    """The record of `qa_id` in a `qa_entities.jsonl` file (ids compared as strings)."""
    for record in read_qa_entities(qa_entities, on_error="skip"):
        if str(record["id"]) == str(qa_id):
            return record
    raise InputError(f"{qa_entities}: no QA pair with id {qa_id!r}")


def relevant_docs(index: DocumentIndex, record: dict[str, Any], *, limit: int | None = 10,
                  stoplist: Iterable[str] | str | os.PathLike | None = None
                  ) -> dict[str, Any]:
    """The relevant documents of one QA entity record: those containing the counted pair.

    Returns `{"id", "status", "pair", "count", "docs": [{"id", "text"}]}` with at most
    `limit` documents (in corpus order); `text` is the full document text (None when the index
    keeps no text for it).
    """
    counted = count_qa(index, [record], stoplist=stoplist)[0]
    docs = []
    if counted["status"] == "ok":
        for doc_id in index.docs_with(counted["pair"], limit=limit):
            docs.append({"id": doc_id, "text": index.get_text(doc_id)})
    return {"id": counted["id"], "status": counted["status"], "pair": counted["pair"],
            "count": counted["count"], "docs": docs}
