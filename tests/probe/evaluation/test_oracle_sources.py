"""The oracle setting on real QA-set formats (issue 16 item 5): a set that carries the passage
stating the fact (a SQuAD-style `context`, TriviaQA `rc` evidence) gives the oracle its gold
passage (`passage_source: gold`); one without (TriviaQA `*.nocontext`, NQ-open, PopQA) gets a
labelled pseudo-oracle, and the summary never mixes the two in one curve.

The QA files are written here in each set's published schema; the TriviaQA copy is a local data
set folder with the hub's two configs, read as `FOLDER:rc` and `FOLDER:unfiltered.nocontext`
with the preset. The index is a real embedded index; the model the tiny test model.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from probe.analysis import summarize
from probe.data import load_qa
from probe.evaluation import evaluate_settings, evidence_passages, oracle_passages

FILLER = " ".join(f"word{i}" for i in range(230))  # an article's other paragraphs


def _trivia_row(qid: str, question: str, answer: str, wiki: list[str], web: list[str]) -> dict:
    return {"question": question, "question_id": qid, "question_source": "http://www.quizballs.com/",
            "entity_pages": {"doc_source": ["TagMe"] * len(wiki), "filename": [f"{qid}.txt"] * len(wiki),
                             "title": ["Page"] * len(wiki), "wiki_context": wiki},
            "search_results": {"description": [""] * len(web), "filename": [f"{qid}w.txt"] * len(web),
                               "rank": list(range(len(web))), "title": ["Web"] * len(web),
                               "url": ["http://example.org"] * len(web), "search_context": web},
            "answer": {"aliases": [answer], "normalized_aliases": [answer.lower()], "matched_wiki_entity_name": "",
                       "normalized_matched_wiki_entity_name": "", "normalized_value": answer.lower(),
                       "type": "WikipediaEntity", "value": answer}}


def _write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def qa_sets(tmp_path_factory) -> dict[str, list[dict]]:
    """Records of each QA set as `load_qa` reads them from its published schema."""
    root = tmp_path_factory.mktemp("qa_sets")
    statement = "Ferdinand Zell was born in the town of Korvalis in the year of the great flood."
    rc = [
        # the evidence states the fact deep inside a long article, and on a web page
        _trivia_row("tc_1", "In which town was Ferdinand Zell born?", "Korvalis",
                    [f"{FILLER} {statement} {FILLER}"], [f"Zell biography. {statement}"]),
        # evidence that never names the answer: no gold passage
        _trivia_row("tc_2", "Which river runs through Ostrava?", "Oder", [f"Ostrava is a city. {FILLER}"], []),
        _trivia_row("tc_3", "Who painted the Blue Mill?", "Hanna Ost",
                    ["The Blue Mill was painted by Hanna Ost in 1901."], []),
    ]
    tqa = root / "trivia_qa"
    for config, rows in (("rc", rc), ("unfiltered.nocontext", [
            _trivia_row(r["question_id"], r["question"], r["answer"]["value"], [], []) for r in rc])):
        _write_jsonl(tqa / config / "validation.jsonl", rows)
    (tqa / "README.md").write_text(
        "---\nconfigs:\n- config_name: rc\n  data_files:\n  - split: validation\n    path: rc/validation.jsonl\n"
        "- config_name: unfiltered.nocontext\n  data_files:\n  - split: validation\n"
        "    path: unfiltered.nocontext/validation.jsonl\n---\n", encoding="utf-8")
    squad = _write_jsonl(root / "squad.jsonl", [
        {"id": "sq_1", "title": "Korvalis", "question": "Which town lies on the Vell?",
         "context": "Korvalis is a town on the river Vell, known for its mills.",
         "answers": {"text": ["Korvalis"], "answer_start": [0]}}])
    nq = _write_jsonl(root / "nq.jsonl", [{"question": "who painted the blue mill", "answer": ["Hanna Ost"]}])
    popqa = _write_jsonl(root / "popqa.jsonl", [
        {"id": 7, "subj": "Hanna Ost", "prop": "occupation", "obj": "painter", "s_pop": 120,
         "question": "What is Hanna Ost's occupation?", "possible_answers": '["painter", "artist"]'}])
    return {"rc": load_qa(f"{tqa}:rc", preset="trivia_qa", split="validation"),
            "nocontext": load_qa(f"{tqa}:unfiltered.nocontext", preset="trivia_qa", split="validation"),
            "squad": load_qa(squad, mapping={"answers": "answers.text"}),
            "nq_open": load_qa(nq, preset="nq_open"), "popqa": load_qa(popqa, preset="popqa")}


@pytest.fixture(scope="module")
def index(tmp_path_factory):
    """A retrieval collection that states every fact (what a pseudo-oracle can find)."""
    from indexes import build_index, open_index

    root = tmp_path_factory.mktemp("oracle_index")
    corpus = _write_jsonl(root / "wiki.jsonl", [
        {"id": "w1", "text": "Ferdinand Zell, born in Korvalis, was a clockmaker."},
        {"id": "w2", "text": "The Oder river runs through Ostrava and Wroclaw."},
        {"id": "w3", "text": "Hanna Ost, a painter, painted the Blue Mill."},
        {"id": "w4", "text": "Korvalis lies on the Vell."}])
    build_index(corpus, None, root / "index", progress=False)
    with open_index(root / "index") as opened:
        yield opened


def test_gold_passages_come_from_context_and_evidence_only(qa_sets):
    rc = {r["id"]: r for r in qa_sets["rc"]}
    (gold,) = rc["tc_1"]["gold_passages"][:1]
    assert "Korvalis" in gold and len(gold.split()) < 150  # a passage of the article, not the article
    assert len(rc["tc_1"]["gold_passages"]) == 2  # the Wikipedia paragraph and the web page's
    assert "gold_passages" not in rc["tc_2"]  # its evidence does not state the answer
    assert rc["tc_3"]["gold_passages"] == ["The Blue Mill was painted by Hanna Ost in 1901."]
    assert all("entity_pages" not in r and "search_results" not in r for r in qa_sets["rc"])  # not kept
    assert all("gold_passage" not in r and "gold_passages" not in r for r in qa_sets["nocontext"])
    (squad,) = qa_sets["squad"]
    assert squad["gold_passage"] == "Korvalis is a town on the river Vell, known for its mills."
    assert "context" not in squad
    for name in ("nq_open", "popqa"):
        assert all("gold_passage" not in r and "gold_passages" not in r for r in qa_sets[name])
    # most question words first, at most k, none without an answer
    docs = ["Korvalis. Other words.", "Ferdinand Zell was born in Korvalis.", "Nothing here."]
    assert evidence_passages("Where was Ferdinand Zell born?", ["Korvalis"], docs, k=1) == [docs[1]]
    assert evidence_passages("Where was Ferdinand Zell born?", ["Korvalis"], docs) == docs[1::-1]
    assert evidence_passages("Q?", ["Korvalis"], ["none of it"]) == []


def test_oracle_sources_per_qa_set(qa_sets, index):
    expected = {"rc": {"tc_1": "gold", "tc_2": "search", "tc_3": "gold"},
                "nocontext": {"tc_1": "search", "tc_2": "search", "tc_3": "search"},
                "squad": {"sq_1": "gold"}, "nq_open": {"search"}, "popqa": {"7": "search"}}
    for name, records in qa_sets.items():
        stats: dict[str, int] = {}
        passages = oracle_passages(index, records, None, k=1, stats=stats, progress=False)
        sources = {qid: [p.source for p in found] for qid, found in passages.items()}
        if name == "nq_open":
            assert [s for found in sources.values() for s in found] == ["search"]
        else:
            assert {qid: found[0] for qid, found in sources.items()} == expected[name], name
        for record in records:  # every oracle passage holds an answer
            for p in passages[str(record["id"])]:
                assert any(a.lower() in p.text.lower() for a in record["answers"])
    rc_passages = oracle_passages(index, qa_sets["rc"], None, k=1, progress=False)
    assert rc_passages["tc_1"][0].text == qa_sets["rc"][0]["gold_passages"][0]


def test_gold_and_pseudo_oracle_never_share_a_curve(qa_sets, index, hf_generator):
    # TriviaQA rc: two questions with a gold passage, one with a pseudo-oracle passage.
    qa = qa_sets["rc"] + qa_sets["squad"]
    passages = {"oracle": oracle_passages(index, qa, None, k=1, progress=False)}
    predictions = evaluate_settings(qa, hf_generator, ["closed_book", "oracle"], passages=passages, shots=0,
                                    pool_size=0, max_tokens=4, progress=False)
    sources = {p["id"]: p.get("passage_source") for p in predictions if p["setting"] == "oracle"}
    assert sources == {"tc_1": "gold", "tc_2": "search", "tc_3": "gold", "sq_1": "gold"}
    oracle_prompts = {p["id"]: p["prompt"] for p in predictions if p["setting"] == "oracle"}
    assert qa[0]["gold_passages"][0] in oracle_prompts["tc_1"]
    counts = [{"id": r["id"], "count": c, "status": "ok"} for r, c in zip(qa, (0, 5, 40, 300))]
    entry = summarize(predictions, counts, min_bucket=1, n_boot=20)["settings"]["oracle"]
    assert entry["passage_source"] == "gold" and entry["pseudo_oracle"] is False
    assert entry["n"] == 3 and sum(b["n"] for b in entry["buckets"]) == 3  # tc_2 is not in the curve
    assert entry["by_passage_source"]["search"]["n"] == 1 and entry["by_passage_source"]["gold"]["n"] == 3
    assert "1 question(s) with other passages" in entry["passage_source_note"]
    # A set without gold passages: one labelled pseudo-oracle curve.
    nocontext = qa_sets["nocontext"]
    passages = {"oracle": oracle_passages(index, nocontext, None, k=1, progress=False)}
    predictions = evaluate_settings(nocontext, hf_generator, ["oracle"], passages=passages, shots=0,
                                    pool_size=0, max_tokens=4, progress=False)
    entry = summarize(predictions, counts[:3], min_bucket=1, n_boot=20)["settings"]["oracle"]
    assert entry["passage_source"] == "search" and entry["pseudo_oracle"] is True and entry["n"] == 3
