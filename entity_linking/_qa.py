"""Linking QA pairs: question entities and salient answer entities (methods.md §1).

- Question entities: the entities linked in the question alone (`Linker.link_question`): for
  an ambiguous mention every candidate at or above the NIL threshold (the chosen one first), so
  that counting's maximum over (question, answer) pairs picks the one that goes with the
  answer; common nouns and class items left out (see `entity_linking._linker`).
- Answer entities: link `question + "\\n" + "\\n".join(answers)` (the question is context
  for disambiguating the answer aliases) and keep the mentions that start after the question;
  entities that are also question entities are dropped.
- Salient answer entities: those with the most answer mentions (every mention votes, as in
  the original study; ties: all kept).

`qa_entities.jsonl` records: `{"id", "q_entities", "a_entities", "a_entity_votes": {id: n},
"q_mentions": [[text, id], ...], "q_candidates": [[text, [id, ...]], ...]}`; `a_entity_votes`
counts the mentions of every entity linked in the answers, question entities included
(`ltprobe count` drops those left in the question after its stop-list, as the original did);
`q_mentions` pairs each question mention with its best candidate; `q_candidates` lists the
mentions that kept several candidates, with all of them (best first); every one of them is in
`q_entities`, and `counts.jsonl`'s `pair` says which one the count came from.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from typing import Any

from entity_linking.io import InputError, OnError, SkipCounter, read_records, write_jsonl
from entity_linking.records import LinkedQAPair, QAPair


def link_qa_record(linker: Any, question: str, answers: list[str]) -> dict[str, Any]:
    """Link one QA pair; returns `q_entities`, `a_entities` (salient), `a_entity_votes`,
    `q_mentions` and `q_candidates` (the fields of a `LinkedQAPair` but its id)."""
    q_mentions = linker.link_question(question)
    q_entities = list(dict.fromkeys(e for m in q_mentions for e, _ in m.candidates))
    votes: dict[str, int] = {}
    if answers:
        text = question + "\n" + "\n".join(answers)
        # every answer mention votes, as in the original study (methods.md §5); question
        # entities vote too, so that counting with a question-side stop-list can restore them
        for m in linker.link(text):
            if m.start >= len(question) + 1:
                votes[m.kb_id] = votes.get(m.kb_id, 0) + 1
    exclude = set(q_entities)
    answer_votes = {e: n for e, n in votes.items() if e not in exclude}
    top = max(answer_votes.values(), default=0)
    return {"q_entities": q_entities, "a_entities": [e for e, n in answer_votes.items() if n == top],
            "a_entity_votes": votes, "q_mentions": [[m.text, m.kb_id] for m in q_mentions],
            "q_candidates": [[m.text, [e for e, _ in m.candidates]] for m in q_mentions if len(m.candidates) > 1]}


def link_qa_records(records: Iterable[dict[str, Any]], kb: Any, **linker_options: Any) -> list[dict[str, Any]]:
    """Link in-memory QA records (`{"id", "question", "answers"}`); returns the
    `qa_entities.jsonl` records."""
    linker = _linker(kb, linker_options)
    return [LinkedQAPair(r["id"], **link_qa_record(linker, r["question"], list(r.get("answers") or []))).to_json()
            for r in records]


def link_qa(qa_path: str | os.PathLike, kb: Any, out_path: str | os.PathLike, *, on_error: OnError = "fail",
            linker_options: dict[str, Any] | None = None, progress: bool = True) -> dict[str, Any]:
    """Link the QA pairs of `qa_path` (`{"id", "question", "answers": [..]}` per line) and
    write `out_path` (`qa_entities.jsonl`, atomically). `kb`: a `KnowledgeBase`, a saved KB
    folder or a kb.jsonl. Returns stats: questions, with_q_entity, with_a_entity, skipped,
    seconds."""
    from entity_linking.logs import progress_bar

    started = time.perf_counter()
    linker = _linker(kb, linker_options or {})
    skips = SkipCounter()
    stats = {"questions": 0, "with_q_entity": 0, "with_a_entity": 0}

    def rows():
        records = read_records(qa_path, on_error=on_error, skips=skips)
        for line, record in progress_bar(records, desc="linking QA", unit=" questions", enabled=progress):
            try:
                qa = QAPair.from_json(record)
            except ValueError as exc:
                skips.bad_record(f"{qa_path}:{line}: {exc}", on_error)
                continue
            out = LinkedQAPair(qa.id, **link_qa_record(linker, qa.question, qa.answers))
            stats["questions"] += 1
            stats["with_q_entity"] += bool(out.q_entities)
            stats["with_a_entity"] += bool(out.a_entities)
            yield out.to_json()

    write_jsonl(out_path, rows())
    if not stats["questions"]:
        from pathlib import Path

        Path(out_path).unlink(missing_ok=True)
        raise InputError(f"{qa_path}: no QA pairs" + (f" ({skips.summary()})" if skips.skipped else ""))
    stats.update(skipped=skips.skipped, skip_summary=skips.summary(),
                 seconds=round(time.perf_counter() - started, 3))
    return stats


def _linker(kb: Any, options: dict[str, Any]):
    from entity_linking._linker import Linker
    from entity_linking.kb import KnowledgeBase

    if isinstance(kb, Linker):
        return kb
    if not isinstance(kb, KnowledgeBase):
        kb = KnowledgeBase.load(kb)
    return Linker(kb, **options)
