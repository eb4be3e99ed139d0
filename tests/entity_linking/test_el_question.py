"""Question linking for real knowledge bases (issue 16, item 8): the same tie-breaking and
context use in QA and corpus linking, every candidate of an ambiguous question mention kept
(the maximum over pairs chooses), a NIL threshold, common nouns and class items left out."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from entity_linking import KnowledgeBase, Linker, iter_linked, link_corpus, link_qa, link_qa_records
from tests.paths import REPO

# Two people of the same name with no prior to tell them apart (as many Wikidata pairs), the
# city of the answer, and a few Wikidata items with lower-case labels (class items).
NAMESAKES = [
    {"id": "Q2", "name": "John Smith", "type": "Q5", "description": "English footballer", "prior": 0.0},
    {"id": "Q1", "name": "John Smith", "type": "Q5", "description": "American politician", "prior": 0.0},
    {"id": "Q39121", "name": "Leeds", "type": "Q515", "description": "city in West Yorkshire, England", "prior": 0.0},
    {"id": "Q515", "name": "city", "aliases": ["town"], "type": "Q1907114", "description": "large human settlement"},
    {"id": "Q11424", "name": "film", "aliases": ["movie"],
     "description": "sequence of images that give the impression of movement"},
    {"id": "Q5", "name": "human", "aliases": ["person"], "description": "common name of Homo sapiens"},
    {"id": "Q822", "name": "Lebanon", "aliases": ["lb", "Lebanese Republic"], "type": "Q6256",
     "description": "country in Western Asia"},
    {"id": "Q208460", "name": "Nineteen Eighty-Four", "aliases": ["1984"], "description": "novel by George Orwell"},
]


def _write(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def _cooccurrence(linked_dir, qa_entities):
    docs: dict[str, set[str]] = {}
    for doc_id, entities in iter_linked(linked_dir):
        for e in entities:
            docs.setdefault(e, set()).add(doc_id)
    return max((len(docs.get(q, set()) & docs.get(a, set())), q) for q in qa_entities["q_entities"]
               for a in qa_entities["a_entities"])


def test_same_name_pair_cooccurs_in_question_and_corpus(tmp_path):
    """The corpus is linked with a knowledge-base folder built in the reverse order, the
    questions with the kb.jsonl: a tie (no prior, no context) goes to the same entity on both
    sides, and a corpus document whose context picks the other namesake still counts, because
    the question keeps both candidates and the maximum over pairs chooses (recorded in
    `q_candidates`; `pair`'s first entity says which)."""
    kb_jsonl = _write(tmp_path / "kb.jsonl", NAMESAKES)
    KnowledgeBase.from_records(list(reversed(NAMESAKES))).save(tmp_path / "kb_reversed")
    corpus = _write(tmp_path / "corpus.jsonl", [
        {"id": "d1", "text": "John Smith was born in Leeds."},  # no context: a tie
        {"id": "d2", "text": "The politician John Smith grew up in Leeds."},  # context: Q1
        {"id": "d3", "text": "The footballer John Smith played in Leeds."},  # context: Q2
        {"id": "d4", "text": "The footballer John Smith retired."},
    ])
    qa = _write(tmp_path / "qa.jsonl", [
        {"id": "q1", "question": "Where was John Smith born?", "answers": ["Leeds"]},
        {"id": "q2", "question": "Where did the footballer John Smith play?", "answers": ["Leeds"]},
    ])
    link_corpus(corpus, tmp_path / "kb_reversed", tmp_path / "linked", workers=1, progress=False)
    linked = dict(iter_linked(tmp_path / "linked"))
    assert linked == {"d1": ["Q1", "Q39121"], "d2": ["Q1", "Q39121"], "d3": ["Q2", "Q39121"], "d4": ["Q2"]}
    link_qa(qa, kb_jsonl, tmp_path / "qa_entities.jsonl", progress=False)
    rows = {r["id"]: r for r in map(json.loads, open(tmp_path / "qa_entities.jsonl"))}
    # q1: nothing in the question tells the namesakes apart: both kept, the tie's winner first
    assert rows["q1"]["q_entities"] == ["Q1", "Q2"] and rows["q1"]["a_entities"] == ["Q39121"]
    assert rows["q1"]["q_mentions"] == [["John Smith", "Q1"]]
    assert rows["q1"]["q_candidates"] == [["John Smith", ["Q1", "Q2"]]]
    assert _cooccurrence(tmp_path / "linked", rows["q1"]) == (2, "Q1")
    # q2: the question's context decides as the corpus's does; the other candidate is below NIL
    assert rows["q2"]["q_entities"] == ["Q2"] and rows["q2"]["q_candidates"] == []
    assert _cooccurrence(tmp_path / "linked", rows["q2"]) == (1, "Q2")
    # the counting stage reads only q_entities/a_entities: the maximum over pairs, and `pair`
    # says which namesake gave it
    from indexes import build_index, count_qa, open_index

    build_index(corpus, tmp_path / "linked", tmp_path / "index", progress=False)
    with open_index(tmp_path / "index") as index:
        counts = {c["id"]: c for c in count_qa(index, list(rows.values()))}
    assert (counts["q1"]["count"], counts["q1"]["pair"]) == (2, ["Q1", "Q39121"])
    assert (counts["q2"]["count"], counts["q2"]["pair"], counts["q2"]["q_count"]) == (1, ["Q2", "Q39121"], 2)
    # one candidate per question mention (the old behaviour) gives the same entity as the
    # corpus on a tie, whatever the knowledge base's order
    for records in (NAMESAKES, list(reversed(NAMESAKES))):
        one = link_qa_records([{"id": 1, "question": "Where was John Smith born?", "answers": ["Leeds"]}],
                              KnowledgeBase.from_records(records), question_candidates=False)
        assert one[0]["q_entities"] == ["Q1"]


def test_ties_do_not_depend_on_the_process(tmp_path):
    """Two namesakes with the same description words tie on context too; their summed context
    weights must not depend on the order in which a process iterates a set (hash seeds differ
    between the QA process and corpus workers): the smallest id wins in every process."""
    records = [{"id": f"Q{k}", "name": "Anna Berg", "description": "Swedish painter sculptor printmaker "
                "illustrator born Uppsala", "prior": 0.0} for k in (7, 3, 5)]
    records += [{"id": f"X{k}", "name": f"Other {k}", "description": w} for k, w in
                enumerate("painter sculptor printmaker illustrator born uppsala swedish".split())]
    _write(tmp_path / "kb.jsonl", records)
    text = "Anna Berg, the Swedish painter, sculptor, printmaker and illustrator born in Uppsala."
    code = ("import json, sys\nfrom entity_linking import KnowledgeBase, Linker\n"
            "L = Linker(KnowledgeBase.from_jsonl(sys.argv[1]))\n"
            "print(json.dumps([[m.kb_id, m.candidates] for m in L.link_question(sys.argv[2])]))\n")
    seen = set()
    for seed in ("1", "2", "3", "4"):
        env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(REPO)}
        done = subprocess.run([sys.executable, "-c", code, str(tmp_path / "kb.jsonl"), text],
                              capture_output=True, text=True, env=env, check=True)
        seen.add(done.stdout)
    assert len(seen) == 1
    ((best, candidates),) = json.loads(seen.pop())
    assert best == "Q3" and [c for c, _ in candidates] == ["Q3", "Q5", "Q7"]


def test_nil_threshold_bounds_the_candidates_kept():
    kb = KnowledgeBase.from_records([
        {"id": "Q90", "name": "Paris", "description": "capital of France", "prior": 300.0},
        {"id": "Q830149", "name": "Paris", "description": "city in Lamar County, Texas", "prior": 10.0},
        {"id": "Q167646", "name": "Paris", "description": "son of Priam in Greek mythology", "prior": 60.0},
    ])
    question = "Who founded Paris?"
    # shares 300/370, 60/370, 10/370: only Paris, France is at least the default 0.2
    assert [c for c, _ in Linker(kb).link_question(question)[0].candidates] == ["Q90"]
    assert [c for c, _ in Linker(kb, nil_threshold=0.1).link_question(question)[0].candidates] == ["Q90", "Q167646"]
    assert [c for c, _ in Linker(kb, nil_threshold=0.0).link_question(question)[0].candidates] == \
        ["Q90", "Q167646", "Q830149"]
    # a mention whose best candidate is below the threshold is not linked at all
    even = KnowledgeBase.from_records([{"id": f"Q{k}", "name": "Paris"} for k in range(6)])
    assert Linker(even).link_question(question) == [] and Linker(even).link(question) == []
    assert len(Linker(even, nil_threshold=0.1).link_question(question)[0].candidates) == 6


def test_common_nouns_and_class_items_are_not_question_entities():
    kb = KnowledgeBase.from_records(NAMESAKES)
    linker = Linker(kb)
    assert linker.class_items() == {kb.index[i] for i in ("Q515", "Q5")}  # types of other entities

    def q_entities(question, **options):
        return link_qa_records([{"id": 1, "question": question, "answers": []}], kb, **options)[0]["q_entities"]

    assert q_entities("Which city is the capital of Lebanon?") == ["Q822"]
    assert q_entities("Which city is the capital of Lebanon?", question_lowercase=True) == ["Q822"]  # a class
    assert q_entities("Which city is the capital of Lebanon?", question_lowercase=True, question_classes=True) \
        == ["Q515", "Q822"]
    assert q_entities("Which movie is set in Lebanon?", question_lowercase=True) == ["Q11424", "Q822"]
    assert q_entities("How many lb of rice does a movie crew eat in Leeds?") == ["Q39121"]
    assert q_entities("Name a City or a Person in the Lebanese Republic.") == ["Q822"]  # class items
    assert q_entities("Name a City or a Person in the Lebanese Republic.", question_classes=True) == \
        ["Q515", "Q5", "Q822"]
    assert q_entities("Who wrote 1984?") == ["Q208460"]  # digits are kept
    # a question all in lower case (Natural Questions): case says nothing, so only spans that
    # match a lower-case alias are common nouns
    assert q_entities("which city in lebanon was john smith born in", case="insensitive") == ["Q822", "Q1", "Q2"]
    assert q_entities("which city in lebanon was john smith born in") == []  # smart case: names need capitals
    # the answer side is unchanged: a lower-case answer alias still links
    out = link_qa_records([{"id": 1, "question": "What is the capital of Lebanon?", "answers": ["city"]}], kb)
    assert out[0]["a_entities"] == ["Q515"]
    # corpus linking is unchanged too
    assert linker.link_ids("A city in Lebanon") == ["Q515", "Q822"]


def test_generated_world_counts_stay_exact(tiny_world, tmp_path):
    """The controlled world has shared names too (people and cities): with the question rules
    and the default NIL threshold, linking its questions and its corpus and taking the maximum
    over pairs still gives every QA pair's true count."""
    from indexes import build_index, count_qa, open_index

    link_corpus(tiny_world / "corpus.jsonl", tiny_world / "kb.jsonl", tmp_path / "linked", workers=1, progress=False)
    link_qa(tiny_world / "qa.jsonl", tiny_world / "kb.jsonl", tmp_path / "qa_entities.jsonl", progress=False)
    build_index(tiny_world / "corpus.jsonl", tmp_path / "linked", tmp_path / "index", progress=False)
    truth = {r["id"]: r["count"] for r in map(json.loads, open(tiny_world / "truth.jsonl"))}
    with open_index(tmp_path / "index") as index:
        counts = count_qa(index, tmp_path / "qa_entities.jsonl")
    assert len(counts) == len(truth) > 50
    assert {c["id"]: c["count"] for c in counts} == truth
