"""QA linking (methods.md §1): question entities, answer entities with the question as context,
entities of the question dropped, salient answer entities with ties kept."""

from __future__ import annotations

import json

import pytest

from entity_linking import InputError, KnowledgeBase, link_qa, link_qa_records
from tests.paths import SHARED_DATA


def test_question_context_disambiguates_answers(kb):
    records = [
        # "Springfield" alone is ambiguous; the question's "Oregon" picks the Oregon one
        {"id": 1, "question": "Which city in Oregon did we visit?", "answers": ["Springfield"]},
        {"id": 2, "question": "Where was the chemist John Smith born?",
         "answers": ["Springfield", "Springfield, Illinois"]},
        {"id": 3, "question": "Who works for Acme Labs?", "answers": ["Zoë O'Brien", "Zoe OBrien"]},
    ]
    out = link_qa_records(records, kb)
    assert out[0]["q_entities"] == ["S2"] and out[0]["a_entities"] == ["C2"]
    assert out[1]["q_entities"] == ["P1"]
    # C1 is linked in both aliases; Illinois (the qualifier) only in one: C1 is salient
    assert out[1]["a_entity_votes"] == {"C1": 2, "S1": 1} and out[1]["a_entities"] == ["C1"]
    assert out[2]["q_entities"] == ["O1"] and out[2]["a_entities"] == ["P3"]
    assert out[2]["q_mentions"] == [["Acme Labs", "O1"]]


def test_question_entities_dropped_and_ties_kept(kb):
    out = link_qa_records([
        {"id": "a", "question": "Is Paris near Oregon?", "answers": ["Paris", "Oregon or Illinois"]},
        {"id": "b", "question": "Name a place.", "answers": ["Paris", "Illinois"]},
        {"id": "c", "question": "Name nothing.", "answers": ["nothing at all"]},
    ], kb)
    assert out[0]["q_entities"] == ["C3", "S2"] and out[0]["a_entities"] == ["S1"]
    assert out[1]["a_entities"] == ["C3", "S1"]  # one vote each: both kept
    assert out[2]["a_entities"] == [] and out[2]["q_entities"] == []


def test_link_qa_file_and_cli(kb_jsonl, tmp_path, cli, capsys):
    qa = tmp_path / "qa.jsonl"
    qa.write_text("\n".join(json.dumps(r) for r in [
        {"id": "q1", "question": "Where did John Smith the painter live?", "answers": ["Paris"]},
        {"id": "q2", "question": "Which company employs Zoë O'Brien?", "answers": ["Acme Labs", "Acme Laboratories"]},
    ]) + "\n")
    stats = link_qa(qa, kb_jsonl, tmp_path / "qa_entities.jsonl", progress=False)
    assert stats["questions"] == 2 and stats["with_a_entity"] == 2
    rows = [json.loads(line) for line in open(tmp_path / "qa_entities.jsonl")]
    assert [(r["id"], r["q_entities"], r["a_entities"]) for r in rows] == [("q1", ["P2"], ["C3"]), ("q2", ["P3"], ["O1"])]
    status, _, err = cli(capsys, "link-qa", "--qa", qa, "--kb", kb_jsonl, "--out", tmp_path / "cli.jsonl")
    assert status == 0 and "linked 2 QA pairs" in err
    assert (tmp_path / "cli.jsonl").read_text() == (tmp_path / "qa_entities.jsonl").read_text()
    bad = tmp_path / "bad.jsonl"
    bad.write_text(qa.read_text() + json.dumps({"id": "q3", "question": "Q?", "answers": "Paris"}) + "\n")
    status, _, err = cli(capsys, "link-qa", "--qa", bad, "--kb", kb_jsonl, "--out", tmp_path / "x.jsonl")
    assert status == 2 and f"{bad}:3: field 'answers' must be a list of strings" in err
    status, _, err = cli(capsys, "link-qa", "--qa", bad, "--kb", kb_jsonl, "--out", tmp_path / "x.jsonl",
                         "--on-error", "skip")
    assert status == 0 and "skipped 1 bad record(s)" in err
    with pytest.raises(InputError, match="no QA pairs"):
        (tmp_path / "empty.jsonl").write_text("\n")
        link_qa(tmp_path / "empty.jsonl", kb_jsonl, tmp_path / "e.jsonl", progress=False)


def test_tiny_world_qa(tiny_world, tmp_path):
    kb = KnowledgeBase.from_jsonl(tiny_world / "kb.jsonl")
    link_qa(tiny_world / "qa.jsonl", kb, tmp_path / "qa_entities.jsonl", progress=False)
    gold = {r["id"]: r for r in map(json.loads, open(tiny_world / "qa.jsonl"))}
    rows = [json.loads(line) for line in open(tmp_path / "qa_entities.jsonl")]
    assert len(rows) == len(gold) > 50
    for row in rows:
        assert row["q_entities"] == [gold[row["id"]]["q_entity"]], row
        assert row["a_entities"] == [gold[row["id"]]["a_entity"]], row


def test_mintaka_question_entities():
    """Real questions (Mintaka dev) with gold question entities: a KB of the gold entities and
    the answers, then the gold entities must be linked in the questions. Gold mentions written
    without a capital ("movie", "actor": common nouns and class items) are left out of question
    entities on purpose (docs/benchmarks.md) and of this check."""
    path = SHARED_DATA / "real" / "mintaka" / "mintaka_dev.json"
    if not path.exists():
        pytest.skip("shared data not available")
    data = json.loads(path.read_text(encoding="utf-8"))
    entities: dict[str, dict] = {}

    def add(qid, label, mention=None):
        if not qid or not label or not any(c.isalnum() for c in label):
            return
        e = entities.setdefault(qid, {"id": qid, "name": label, "aliases": [], "prior": 0.0})
        e["prior"] += 1
        if mention and mention != label and any(c.isalnum() for c in mention) and mention not in e["aliases"]:
            e["aliases"].append(mention)

    for item in data:
        for q in item["questionEntity"]:
            if q["entityType"] == "entity":
                add(q["name"], q.get("label"), q.get("mention"))
        for a in item["answer"].get("answer") or []:
            if isinstance(a, dict):
                add(a.get("name"), a.get("label"))
    kb = KnowledgeBase.from_records(entities.values())
    records = [{"id": item["id"], "question": item["question"],
                "answers": [a["label"] for a in item["answer"].get("answer") or [] if isinstance(a, dict) and a.get("label")]}
               for item in data]
    out = {r["id"]: r for r in link_qa_records(records, kb, case="insensitive")}
    gold_q = found_q = gold_a = found_a = 0
    for item in data:
        got = out[item["id"]]
        for q in item["questionEntity"]:
            if q["entityType"] == "entity" and q["name"] in entities \
                    and any(c.isupper() or c.isdigit() for c in q["mention"]):
                gold_q += 1
                found_q += q["name"] in got["q_entities"]
        answers = [a["name"] for a in item["answer"].get("answer") or [] if isinstance(a, dict) and a.get("name") in entities]
        if len(answers) == 1 and answers[0] not in got["q_entities"]:
            gold_a += 1
            found_a += answers[0] in got["a_entity_votes"]
    print(f"mintaka: question entities {found_q}/{gold_q}, answer entities {found_a}/{gold_a}")
    assert gold_q > 1000 and found_q / gold_q >= 0.93
    assert gold_a > 300 and found_a / gold_a >= 0.95


def test_every_answer_mention_votes(kb):
    """As the original study: each mention counts (not each alias line), and entities of the
    question keep their votes in `a_entity_votes` while staying out of `a_entities`."""
    out = link_qa_records([
        # Illinois twice on one line, Paris once: Illinois is salient by mentions
        {"id": "m", "question": "Name a place.", "answers": ["Illinois or Illinois", "Paris"]},
        {"id": "q", "question": "Is Paris near Oregon?", "answers": ["Paris", "Paris", "Illinois"]},
    ], kb)
    assert out[0]["a_entity_votes"] == {"S1": 2, "C3": 1} and out[0]["a_entities"] == ["S1"]
    assert out[1]["a_entity_votes"] == {"C3": 2, "S1": 1} and out[1]["a_entities"] == ["S1"]
