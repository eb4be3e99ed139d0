"""Error attribution (issue 19) on a tiny hand-made world where a frequent distractor is
planted: a person stated once born in their city but mentioned in many documents with another."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from entity_linking.io import read_records, write_jsonl

LTPROBE = str(Path(sys.executable).parent / "ltprobe")

KB = [
    {"id": "P1", "name": "Alma Vortig", "aliases": [], "prior": 1.0, "type": "person"},
    {"id": "P2", "name": "Ivo Stenhart", "aliases": [], "prior": 1.0, "type": "person"},
    {"id": "C1", "name": "Brenmoor", "aliases": [], "prior": 1.0, "type": "city"},
    {"id": "C2", "name": "Castelwick", "aliases": [], "prior": 1.0, "type": "city"},
    {"id": "C3", "name": "Dunrava", "aliases": [], "prior": 1.0, "type": "city"},
]


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    from entity_linking import link_corpus, link_qa
    from indexes import build_index, write_counts

    d = tmp_path_factory.mktemp("planted")
    write_jsonl(d / "kb.jsonl", KB)
    docs = ([f"Alma Vortig was born in Brenmoor, record {i}." for i in range(2)]         # gold: 2
            + [f"Alma Vortig spent summer {i} in Castelwick." for i in range(9)]         # distractor: 9
            + [f"Ivo Stenhart was born in Dunrava, note {i}." for i in range(30)]         # gold: 30
            + ["Ivo Stenhart once wrote to Castelwick."]                                 # a rare wrong answer: 1
            + [f"Brenmoor and Dunrava trade wool, year {i}." for i in range(3)])
    write_jsonl(d / "corpus.jsonl", [{"id": f"d{i}", "text": t} for i, t in enumerate(docs)])
    write_jsonl(d / "qa.jsonl", [
        {"id": "q1", "question": "In what city was Alma Vortig born?", "answers": ["Brenmoor"]},
        {"id": "q2", "question": "In what city was Ivo Stenhart born?", "answers": ["Dunrava"]},
        {"id": "q3", "question": "Where was Alma Vortig born?", "answers": ["Brenmoor"]},
    ])
    write_jsonl(d / "predictions.jsonl", [
        {"id": "q1", "setting": "closed_book", "model": "m", "completion": "Castelwick", "correct": False},
        {"id": "q2", "setting": "closed_book", "model": "m", "completion": "Castelwick", "correct": False},
        {"id": "q3", "setting": "closed_book", "model": "m", "completion": "a place", "correct": False},
        {"id": "q1", "setting": "rag", "model": "m", "completion": "Brenmoor", "correct": True},
    ])
    link_qa(d / "qa.jsonl", d / "kb.jsonl", d / "qa_entities.jsonl", progress=False)
    link_corpus(d / "corpus.jsonl", d / "kb.jsonl", d / "linked", workers=1)
    build_index(d / "corpus.jsonl", d / "linked", d / "index")
    write_counts(d / "index", d / "qa_entities.jsonl", d / "counts.jsonl", progress=False)
    return d


def _run(*args: str) -> str:
    result = subprocess.run([LTPROBE, *args], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_planted_distractor_is_found(planted):
    d = planted
    out = _run("attribute", "--predictions", str(d / "predictions.jsonl"), "--qa", str(d / "qa.jsonl"),
               "--qa-entities", str(d / "qa_entities.jsonl"), "--counts", str(d / "counts.jsonl"),
               "--index", str(d / "index"), "--kb", str(d / "kb.jsonl"), "--out", str(d / "errors.jsonl"))
    errors = {r["id"]: r for _, r in read_records(d / "errors.jsonl")}
    assert set(errors) == {"q1", "q2", "q3"}  # wrong answers only
    assert errors["q1"]["status"] == "ok" and errors["q1"]["pred_pair"] == ["P1", "C2"]
    assert (errors["q1"]["pred_count"], errors["q1"]["gold_count"], errors["q1"]["more_frequent"]) == (9, 2, True)
    assert (errors["q2"]["pred_count"], errors["q2"]["gold_count"], errors["q2"]["more_frequent"]) == (1, 30, False)
    assert errors["q3"]["status"] == "unlinked" and errors["q3"]["more_frequent"] is None

    summary = json.loads(out.strip().splitlines()[-1])["settings"]["closed_book"]
    assert summary["n_errors"] == 3 and summary["n_attributed"] == 2 and summary["share_more_frequent"] == 0.5
    by_bucket = {(b["lo"], b["hi"]): b for b in summary["buckets"]}
    assert by_bucket[(1, 10)]["share"] == 1.0 and by_bucket[(10, 100)]["share"] == 0.0

    shown = _run("docs", "q1", "--index", str(d / "index"), "--qa-entities", str(d / "qa_entities.jsonl"),
                 "--errors", str(d / "errors.jsonl"), "--json")
    result = json.loads(shown)
    assert result["pred_count"] == 9 and len(result["docs"]) == 9
    assert all("Castelwick" in doc["text"] and "Alma Vortig" in doc["text"] for doc in result["docs"])
    text = _run("docs", "q1", "--index", str(d / "index"), "--qa-entities", str(d / "qa_entities.jsonl"),
                "--errors", str(d / "errors.jsonl"))
    assert "more frequent" in text and "spent summer" in text


def test_summary_of_a_run_folder_gets_error_attribution(planted):
    from probe.analysis import add_learning_views

    counts = [r for _, r in read_records(planted / "counts.jsonl")]
    predictions = [r for _, r in read_records(planted / "predictions.jsonl")]
    summary = {"settings": {"closed_book": {}}}
    add_learning_views(summary, predictions, counts, primary="m", errors=planted / "errors.jsonl",
                       counts_by_step=planted / "missing.jsonl")
    assert summary["error_attribution"]["settings"]["closed_book"]["share_more_frequent"] == 0.5
    assert "learning" not in summary
