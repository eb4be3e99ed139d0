"""Retrieval augmentation: passages for questions, oracle passages, retrieval quality, and
adaptive retrieval.

- `retrieve_passages(index, qa, k)`: BM25 top-k passages per question from an `indexes`
  index (`search_many`, batched).
- `oracle_passages(index, qa, qa_entities, k)`: the data set's gold passage(s) when a record
  has `gold_passage` / `gold_passages`; else the passages of documents linked to both the
  question entity and a salient answer entity (`index.docs_with`) that contain an answer
  alias, best question-term overlap first; else (no such document, e.g. a zero-count fact) the
  answer-bearing passages among the BM25 results for the question plus the answer. Each
  passage's `source` says which (`gold`, `linked`, `search`); the predictions carry it as
  `passage_source` and the summary never mixes sources in one oracle curve (issue 16).
- `recall_at_k`: share of questions with an answer alias in the top k passages, k in
  1, 3, 5, 10, 20, overall and per count bucket (Kandpal et al., figure 8).
- `retrieval_precision`: share of the top-k passages that contain an answer alias and (when
  names are given) the question entity's name; tells "the model copied a wrong passage" from
  "the right passage was not there".
- `adaptive_retrieval`: the count threshold below which retrieving helps, chosen on one split
  and reported on the rest against always and never retrieving (Mallen et al., 2023).
"""

from __future__ import annotations

import dataclasses
import math
import random
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from entity_linking.io import InputError, read_records
from probe.analysis import bucket_of, decade_edges, wilson_interval
from probe.evaluation._evaluate import passage_text
from probe.evaluation._scoring import contains_answer, normalize_answer

RECALL_KS = (1, 3, 5, 10, 20)


def _passage(doc_id: str, passage_id: str, text: str, score: float, source: str | None = None) -> Any:
    try:
        from indexes import Passage
    except ImportError:  # indexes not installed: a plain record with the same fields
        return {"doc_id": doc_id, "passage_id": passage_id, "text": text, "score": score, "source": source}
    return Passage(doc_id=doc_id, passage_id=passage_id, text=text, score=score, source=source)


def _labelled(passage: Any, source: str) -> Any:
    """A search result as an oracle passage from `source`."""
    if isinstance(passage, Mapping):
        return {**passage, "source": source}
    return dataclasses.replace(passage, source=source)


def retrieve_passages(index: Any, qa: Sequence[Mapping[str, Any]], k: int = 3, *, batch_size: int = 256,
                      progress: bool = True) -> dict[str, list[Any]]:
    """Top-`k` BM25 passages for each question (`index.search_many`), keyed by question id."""
    if k < 1:
        raise InputError(f"--k must be at least 1, not {k}")
    from entity_linking.logs import progress_bar

    result: dict[str, list[Any]] = {}
    with progress_bar(total=len(qa), unit="q", desc="retrieve", enabled=progress) as bar:
        for start in range(0, len(qa), batch_size):
            batch = qa[start:start + batch_size]
            for record, passages in zip(batch, index.search_many([r["question"] for r in batch], k)):
                result[str(record["id"])] = list(passages)
            bar.update(len(batch))
    return result


def _entity_table(qa_entities: str | Path | Iterable[Mapping[str, Any]] | Mapping[str, Any] | None) -> dict[str, Mapping[str, Any]]:
    if qa_entities is None:
        return {}
    if isinstance(qa_entities, (str, Path)):
        return {str(r["id"]): r for _, r in read_records(qa_entities)}
    if isinstance(qa_entities, Mapping):
        return {str(k): v for k, v in qa_entities.items()}
    return {str(r["id"]): r for r in qa_entities}


def question_entity_names(qa_entities: str | Path | Iterable[Mapping[str, Any]] | Mapping[str, Any]) -> dict[str, list[str]]:
    """The question entities' surface names per question id, from `q_mentions` of
    `qa_entities.jsonl` (for `retrieval_precision`)."""
    names: dict[str, list[str]] = {}
    for qid, record in _entity_table(qa_entities).items():
        mentions = record.get("q_mentions") or []
        found = [m[0] if isinstance(m, (list, tuple)) else m.get("text") for m in mentions]
        names[qid] = [n for n in dict.fromkeys(found) if isinstance(n, str) and n]
    return names


def _overlap(question: str, text: str) -> int:
    q = set(normalize_answer(question).split())
    return len(q & set(normalize_answer(text).split()))


def evidence_passages(question: str, answers: Sequence[str], documents: Iterable[str], *, k: int = 3,
                      words: int = 100) -> list[str]:
    """A QA set's gold passages from its evidence documents (TriviaQA's Wikipedia pages and web
    results): the documents' passages of about `words` words (`indexes.split_passages`) that
    contain an answer alias, most question words first (then in document order), at most `k`.
    Empty when no passage holds an answer: such evidence does not state the fact."""
    from indexes import split_passages

    found = [(-_overlap(question, piece), n, piece)
             for n, piece in enumerate(p for doc in documents for p in split_passages(doc, words))
             if contains_answer(piece, answers)]
    return [piece for _, _, piece in sorted(found)[:k]]


def oracle_passages(index: Any, qa: Sequence[Mapping[str, Any]],
                    qa_entities: str | Path | Iterable[Mapping[str, Any]] | Mapping[str, Any] | None = None,
                    k: int = 1, *, max_docs: int = 50, passage_words: int = 100, search_depth: int = 50,
                    stats: dict[str, int] | None = None, progress: bool = True,
                    search_index: Any = None) -> dict[str, list[Any]]:
    """Oracle passages per question id (see the module docstring for the order of sources).

    `qa_entities`: `qa_entities.jsonl` (path, records, or a dict by id) with `q_entities`
    and `a_entities`. `search_index`: where the last resort searches (default `index`; a
    separate retrieval index where `index` has no passages, e.g. an imported entity map).
    `stats`, when given, counts the source used: `gold`, `docs_with`, `search`, `none`.
    """
    from entity_linking.logs import progress_bar

    entities = _entity_table(qa_entities)
    try:
        from indexes import split_passages
    except ImportError:
        split_passages = None
    counters = {"gold": 0, "docs_with": 0, "search": 0, "none": 0}
    result: dict[str, list[Any]] = {}
    need_search: list[Mapping[str, Any]] = []
    for record in progress_bar(qa, unit="q", desc="oracle", enabled=progress):
        qid = str(record["id"])
        gold = record.get("gold_passages") or ([record["gold_passage"]] if record.get("gold_passage") else [])
        if gold:
            result[qid] = [_passage("gold", f"{qid}#gold{i}", passage_text(g), 0.0, "gold")
                           for i, g in enumerate(gold[:k])]
            counters["gold"] += 1
            continue
        links = entities.get(qid, {})
        candidates: dict[str, tuple[int, Any]] = {}
        for q in links.get("q_entities", []) or []:
            for a in links.get("a_entities", []) or []:
                for doc_id in index.docs_with([q, a], limit=max_docs):
                    text = index.get_text(doc_id) or ""
                    pieces = split_passages(text, passage_words) if split_passages else [text]
                    for i, piece in enumerate(pieces):
                        pid = f"{doc_id}#{i}"
                        if pid not in candidates and contains_answer(piece, record["answers"]):
                            candidates[pid] = (_overlap(record["question"], piece),
                                               _passage(doc_id, pid, piece, 0.0, "linked"))
        if candidates:
            ranked = sorted(candidates.items(), key=lambda kv: (-kv[1][0], kv[0]))[:k]
            result[qid] = [p for _, (score, p) in ranked]
            counters["docs_with"] += 1
        else:
            need_search.append(record)
    if need_search:
        queries = [f"{r['question']} {r['answers'][0]}" for r in need_search]
        searcher = search_index if search_index is not None else index
        for record, hits in zip(need_search, searcher.search_many(queries, search_depth)):
            good = [_labelled(p, "search") for p in hits if contains_answer(passage_text(p), record["answers"])][:k]
            result[str(record["id"])] = good
            counters["search" if good else "none"] += 1
    if stats is not None:
        stats.update(counters)
    return result


def _first_hit(passages: Sequence[Any], answers: Sequence[str]) -> int | None:
    for rank, p in enumerate(passages, 1):
        if contains_answer(passage_text(p), answers):
            return rank
    return None


def recall_at_k(passages: Mapping[str, Sequence[Any]], qa: Sequence[Mapping[str, Any]],
                counts: Iterable[Mapping[str, Any]] | None = None, ks: Sequence[int] = RECALL_KS) -> dict[str, Any]:
    """Share of questions with an answer alias in the top k passages, for each k, overall and
    per decade count bucket (linked questions only). Retrieve at least `max(ks)` passages;
    `k_available` says how deep the given lists were."""
    table = {str(c["id"]): c for c in counts or []}
    hits = {str(r["id"]): _first_hit(passages.get(str(r["id"]), []), r["answers"]) for r in qa}
    depth = max((len(v) for v in passages.values()), default=0)

    def shares(ids: Sequence[str]) -> dict[str, float | None]:
        return {str(k): (sum(1 for i in ids if hits[i] is not None and hits[i] <= k) / len(ids) if ids else None)
                for k in ks}

    ids = list(hits)
    result: dict[str, Any] = {"n": len(ids), "k_available": depth, "overall": shares(ids), "buckets": []}
    linked = {i: int(table[i]["count"]) for i in ids
              if i in table and table[i].get("status", "ok") == "ok" and table[i].get("count") is not None}
    if linked:
        for lo, hi in decade_edges(max(linked.values())):
            members = [i for i, c in linked.items() if bucket_of(c) == (lo, hi)]
            result["buckets"].append({"lo": lo, "hi": hi, "n": len(members), "recall": shares(members)})
    return result


def retrieval_precision(passages: Mapping[str, Sequence[Any]], qa: Sequence[Mapping[str, Any]], k: int = 3,
                        q_names: Mapping[str, Sequence[str]] | None = None) -> dict[str, Any]:
    """Share of the top-`k` passages containing an answer alias (`answer`), and, when
    `q_names` gives the question entity's names per question id, also one of those names
    (`answer_and_question_entity`); plus the share of questions with no such passage."""
    n_passages = with_answer = with_both = 0
    no_good = 0
    for r in qa:
        qid = str(r["id"])
        top = list(passages.get(qid, []))[:k]
        names = list((q_names or {}).get(qid, []))
        good = False
        for p in top:
            text = passage_text(p)
            n_passages += 1
            if contains_answer(text, r["answers"]):
                with_answer += 1
                if names and contains_answer(text, names):
                    with_both += 1
                    good = True
                elif not q_names:
                    good = True
        no_good += not good
    return {"k": k, "passages": n_passages,
            "answer": with_answer / n_passages if n_passages else None,
            "answer_and_question_entity": (with_both / n_passages if n_passages else None) if q_names else None,
            "questions_without_answer_passage": no_good / len(qa) if qa else None}


def adaptive_retrieval(closed_book: Sequence[Mapping[str, Any]], rag: Sequence[Mapping[str, Any]],
                       counts: Iterable[Mapping[str, Any]], *, fit_fraction: float = 0.5, seed: int = 0,
                       qa: Sequence[Mapping[str, Any]] | None = None, by_relation: bool = False) -> dict[str, Any]:
    """Retrieve only for questions whose count is below a threshold chosen on a fit split.

    Questions scored in both settings and linked (count known) are split at random
    (`fit_fraction` to fitting, with `seed`). On the fit split the threshold t maximising the
    accuracy of "rag if count < t else closed book" is chosen among all distinct counts (and
    +inf = always retrieve; 0 = never); ties go to the smaller t (fewer retrievals). On the
    report split: `adaptive`, `always` and `never` accuracy (with Wilson intervals) and the
    share of questions that retrieved. With `by_relation` (needs `qa` with `relation`), one
    threshold per relation, as PopQA does.
    """
    table = {str(c["id"]): c for c in counts}
    closed = {str(p["id"]): bool(p["correct"]) for p in closed_book}
    retrieved = {str(p["id"]): bool(p["correct"]) for p in rag}
    relation = {str(r["id"]): r.get("relation") for r in qa or []}
    if by_relation and qa is None:
        raise InputError("adaptive retrieval by relation needs the QA records (with a relation field)")
    ids = sorted(i for i in closed.keys() & retrieved.keys()
                 if i in table and table[i].get("status", "ok") == "ok" and table[i].get("count") is not None)
    random.Random(seed).shuffle(ids)
    cut = int(round(len(ids) * fit_fraction))
    fit, report = ids[:cut], ids[cut:]

    def choose(members: Sequence[str]) -> float:
        thresholds = sorted({0, *(int(table[i]["count"]) + 1 for i in members)}) + [math.inf]
        best, best_acc = 0.0, -1.0
        for t in thresholds:
            acc = sum(retrieved[i] if table[i]["count"] < t else closed[i] for i in members)
            if acc > best_acc:
                best, best_acc = t, acc
        return best

    groups = sorted({relation.get(i) for i in ids}, key=str) if by_relation else [None]
    thresholds = {g: choose([i for i in fit if not by_relation or relation.get(i) == g]) for g in groups}

    def use_rag(i: str) -> bool:
        return table[i]["count"] < thresholds[relation.get(i) if by_relation else None]

    def summary(values: list[bool]) -> dict[str, Any]:
        n = len(values)
        return {"accuracy": sum(values) / n if n else None, "ci": wilson_interval(sum(values), n)}

    return {
        "n_fit": len(fit), "n_report": len(report),
        "threshold": None if by_relation else _finite(thresholds[None]),
        "thresholds": {str(g): _finite(t) for g, t in thresholds.items()} if by_relation else None,
        "adaptive": summary([retrieved[i] if use_rag(i) else closed[i] for i in report]),
        "always": summary([retrieved[i] for i in report]),
        "never": summary([closed[i] for i in report]),
        "retrieved_share": (sum(use_rag(i) for i in report) / len(report)) if report else None,
    }


def adaptive_retrieval_by_relation(closed_book: Sequence[Mapping[str, Any]], rag: Sequence[Mapping[str, Any]],
                                   counts: Iterable[Mapping[str, Any]], qa: Sequence[Mapping[str, Any]], *,
                                   fit_fraction: float = 0.5, seed: int = 0) -> dict[str, Any] | None:
    """Adaptive retrieval as PopQA chose it (Mallen et al., 2023): one threshold per relation,
    on the relevant-document count (`count`) and, where the QA records carry PopQA's
    popularity (`pop`, from `s_pop`), on popularity (`popularity`); both reported, each as
    `adaptive_retrieval(..., by_relation=True)`. None when the QA records have no relation."""
    if not any(r.get("relation") for r in qa):
        return None
    counts = list(counts)
    result: dict[str, Any] = {"count": adaptive_retrieval(closed_book, rag, counts, fit_fraction=fit_fraction,
                                                          seed=seed, qa=qa, by_relation=True)}
    pops = [{"id": str(r["id"]), "count": r["pop"], "status": "ok"} for r in qa
            if isinstance(r.get("pop"), (int, float)) and not isinstance(r.get("pop"), bool)]
    result["popularity"] = adaptive_retrieval(closed_book, rag, pops, fit_fraction=fit_fraction, seed=seed,
                                              qa=qa, by_relation=True) if pops else None
    return result


def _finite(t: float) -> float | None:
    """Thresholds as JSON: +inf (always retrieve) becomes None."""
    return None if math.isinf(t) else float(t)


def retrieval_quality(passages: Mapping[str, Sequence[Any]], qa: Sequence[Mapping[str, Any]], k: int, *,
                      counts: Iterable[Mapping[str, Any]] | None = None,
                      qa_entities: str | Path | Iterable[Mapping[str, Any]] | None = None) -> dict[str, Any]:
    """The `retrieval` part of summary.json: recall@k overall and per count bucket, and the
    precision of the top-`k` passages that the prompts use."""
    names = question_entity_names(qa_entities) if qa_entities is not None else None
    return {"recall_at_k": recall_at_k(passages, qa, counts),
            "precision": retrieval_precision(passages, qa, k, names)}


def retrieve_settings(index: Any, qa: Sequence[Mapping[str, Any]], settings: Iterable[str], *, k: int = 3,
                      qa_entities: str | Path | Iterable[Mapping[str, Any]] | None = None,
                      oracle_stats: dict[str, int] | None = None, progress: bool = True,
                      search_index: Any = None) -> dict[str, dict[str, list[Any]]]:
    """The passages of each retrieval setting in `settings`, by setting and question id: for
    `rag` the top BM25 passages, deep enough for recall@20 (`max(k, max(RECALL_KS))`; prompts
    take the top `k`), for `oracle` `oracle_passages` (`oracle_stats` receives where they came
    from). `search_index`: the index BM25 searches (default `index`, which then also gives the
    oracle's linked documents). `evaluate_settings` takes the result; `retrieval_quality` reads
    the `rag` passages."""
    settings = set(settings)
    passages: dict[str, dict[str, list[Any]]] = {}
    if "rag" in settings:
        passages["rag"] = retrieve_passages(search_index if search_index is not None else index, qa,
                                            max(k, max(RECALL_KS)), progress=progress)
    if "oracle" in settings:
        passages["oracle"] = oracle_passages(index, qa, qa_entities, k, stats=oracle_stats, progress=progress,
                                             search_index=search_index)
    return passages
