"""Retrieval augmentation on a real embedded index of the tiny world: retrieval, oracle
passages, recall@k, precision, and `ltprobe rag` end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from entity_linking.io import read_records, write_jsonl
from probe.evaluation import (
    contains_answer,
    evaluate,
    oracle_passages,
    question_entity_names,
    recall_at_k,
    retrieval_precision,
    retrieve_passages,
)
from probe.evaluation._evaluate import passage_text
from tests.paths import REPO


@pytest.fixture(scope="module")
def world_index(tiny_world, tmp_path_factory):
    """The tiny world linked (corpus and QA) and indexed with its encyclopedia as passages."""
    from entity_linking import link_corpus, link_qa
    from indexes import build_index

    folder = tmp_path_factory.mktemp("world_index")
    link_corpus(tiny_world / "corpus.jsonl", tiny_world / "kb.jsonl", folder / "linked", workers=1, progress=False)
    build_index(tiny_world / "corpus.jsonl", folder / "linked", folder / "index",
                passages=tiny_world / "encyclopedia.jsonl", progress=False)
    link_qa(tiny_world / "qa.jsonl", tiny_world / "kb.jsonl", folder / "qa_entities.jsonl", progress=False)
    counts = [{"id": r["id"], "count": r["count"], "status": "ok"} for _, r in read_records(tiny_world / "truth.jsonl")]
    write_jsonl(folder / "counts.jsonl", counts)
    return folder


@pytest.fixture(scope="module")
def index(world_index):
    from indexes import open_index

    opened = open_index(world_index / "index")
    yield opened
    opened.close()


def test_retrieve_and_recall_at_k(tiny_world, world_index, index):
    qa = [r for _, r in read_records(tiny_world / "qa.jsonl")]
    passages = retrieve_passages(index, qa, 20, progress=False)
    assert set(passages) == {r["id"] for r in qa}
    first = passages[qa[0]["id"]][0]
    assert first.doc_id and first.passage_id.startswith(f"{first.doc_id}#") and first.score > 0
    counts = [r for _, r in read_records(world_index / "counts.jsonl")]
    recall = recall_at_k(passages, qa, counts)
    values = [recall["overall"][str(k)] for k in (1, 3, 5, 10, 20)]
    assert values == sorted(values) and values[-1] > 0.5  # the encyclopedia states every fact
    assert recall["buckets"][0]["lo"] == 0 and sum(b["n"] for b in recall["buckets"]) == len(qa)
    # Recomputed by hand for k = 1.
    hits = sum(contains_answer(passages[r["id"]][0].text, r["answers"]) for r in qa)
    assert recall["overall"]["1"] == pytest.approx(hits / len(qa))
    names = question_entity_names(world_index / "qa_entities.jsonl")
    assert names[qa[0]["id"]] == [qa[0]["question"].removeprefix("In what city was ").removesuffix(" born?")]
    precision = retrieval_precision(passages, qa, 3, q_names=names)
    assert 0 < precision["answer"] <= 1 and precision["answer_and_question_entity"] <= precision["answer"]


def test_oracle_passages_contain_the_answer(tiny_world, world_index, index):
    world_qa = [r for _, r in read_records(tiny_world / "qa.jsonl")][:30]
    stats = {}
    oracle = oracle_passages(index, world_qa, world_index / "qa_entities.jsonl", k=2, stats=stats, progress=False)
    assert stats["gold"] == len(world_qa)  # the world's article, for every question
    assert all(oracle[r["id"]][0].text == r["gold_passage"] for r in world_qa)
    assert {p.source for r in world_qa for p in oracle[r["id"]]} == {"gold"}
    # Without gold passages: the pseudo-oracle from documents linked to both entities, or search.
    qa = [{k: v for k, v in r.items() if k != "gold_passage"} for r in world_qa]
    stats = {}
    oracle = oracle_passages(index, qa, world_index / "qa_entities.jsonl", k=2, stats=stats, progress=False)
    assert sum(stats.values()) == len(qa) and stats["docs_with"] > 0 and stats["gold"] == 0
    sources = [p.source for r in qa for p in oracle[r["id"]]]
    assert sources.count("linked") >= stats["docs_with"] and set(sources) <= {"linked", "search"}
    for r in qa:
        assert len(oracle[r["id"]]) <= 2
        assert all(contains_answer(passage_text(p), r["answers"]) for p in oracle[r["id"]])
    # A gold passage in the data set wins.
    gold = dict(qa[0], gold_passage="Gold text naming " + qa[0]["answers"][0])
    assert oracle_passages(index, [gold], None, k=1, progress=False)[gold["id"]][0].text.startswith("Gold text")


@pytest.mark.slow
def test_rag_prompts_and_shots_with_answer_passages(tiny_world, index, hf_generator):
    qa = [r for _, r in read_records(tiny_world / "qa.jsonl")][:40]
    passages = retrieve_passages(index, qa, 3, progress=False)
    preds = evaluate(qa, hf_generator, setting="rag", shots=2, pool_size=8, passages=passages, progress=False)
    for p in preds:
        assert p["prompt"].endswith("\nAnswer:") and p["n_passages"] == len(p["passage_ids"]) <= 3
        shots = p["prompt"].split("\n\n")[:-1]
        assert len(shots) == p["n_shots"]
        for shot in shots:  # each in-context example's passages contain its answer
            answer = shot.rsplit("Answer: ", 1)[1]
            assert answer in shot.rsplit("Question:", 1)[0]


@pytest.mark.slow
def test_rag_command_end_to_end(tiny_world, tiny_model, world_index, tmp_path):
    out = tmp_path / "rag"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run(
        [sys.executable, "-m", "probe.cli", "rag", "--qa", str(tiny_world / "qa.jsonl"), "--model", str(tiny_model),
         "--backend", "transformers", "--index", str(world_index / "index"), "--qa-entities",
         str(world_index / "qa_entities.jsonl"), "--counts", str(world_index / "counts.jsonl"), "--oracle",
         "--closed-book", "--closed-book-shots", "2", "--k", "2", "--n-boot", "100", "--limit", "48", "--quiet",
         "--out", str(out)],
        env=env, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    predictions = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    settings = {p["setting"] for p in predictions}
    assert settings == {"closed_book", "rag", "oracle"}
    n = {s: sum(p["setting"] == s for p in predictions) for s in settings}
    assert n["closed_book"] == n["rag"] == n["oracle"]  # the same questions in every setting
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["settings"]) == settings
    for s in summary["settings"].values():
        assert s["buckets"][0]["lo"] == 0 and s["buckets"][0]["hi"] == 1
    assert "count_dependence_reduction" in summary and "adaptive_retrieval" in summary
    retrieval = json.loads((out / "retrieval.json").read_text())
    assert set(retrieval["recall_at_k"]["overall"]) == {"1", "3", "5", "10", "20"}
    assert "recall@k" in result.stdout
