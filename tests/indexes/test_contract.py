"""The document-index contract, run unchanged against every backend (see conftest.backend_index)."""

from __future__ import annotations

from itertools import product

from indexes import Passage, count_qa, relevant_docs
from tests.indexes.ix_testdata import DOCS, QA, truth_doc_sets

TRUTH = truth_doc_sets(DOCS)
ENTITIES = sorted(TRUTH) + ["Q404"]


def test_doc_freq_matches_hand_count(backend_index):
    for entity in ENTITIES:
        assert backend_index.doc_freq(entity) == len(TRUTH.get(entity, [])), entity
    assert backend_index.doc_freqs(["Q3", "Q404", "Q1"]) == [4, 0, 3]


def test_pair_counts_match_hand_count(backend_index):
    pairs = list(product(ENTITIES, ENTITIES))
    expected = [len(set(TRUTH.get(a, [])) & set(TRUTH.get(b, []))) for a, b in pairs]
    assert backend_index.count_cooccurrence(pairs) == expected
    assert backend_index.count_cooccurrence([]) == []


def test_docs_with_in_corpus_order(backend_index):
    assert backend_index.docs_with(["Q3"]) == ["d2", "d3", "d4", "d6"]
    assert backend_index.docs_with(["Q1", "Q2"]) == ["d1", "d4"]
    assert backend_index.docs_with(["Q3"], limit=2) == ["d2", "d3"]
    assert backend_index.docs_with(["Q1", "Q404"]) == []


def test_get_text_maps_ids_back_to_text(backend_index):
    for doc_id, _, text in DOCS:
        assert backend_index.get_text(doc_id) == text
    assert backend_index.get_text("no-such-doc") is None


def test_bm25_search_finds_the_passage(backend_index):
    hits = backend_index.search("Who invented the Jacquard loom punched cards?", 3)
    assert hits and isinstance(hits[0], Passage)
    assert hits[0].doc_id == "d4" and hits[0].passage_id == "d4#0"
    assert "Jacquard" in hits[0].text
    assert len(hits) <= 3 and all(a.score >= b.score for a, b in zip(hits, hits[1:]))
    many = backend_index.search_many(["tomatoes compost", "Thames river", "zzzz unknownword"], 2)
    assert [h[0].doc_id for h in many[:2]] == ["d5", "d6"]
    assert many[2] == []


def test_count_qa_semantics(backend_index):
    rows = {r["id"]: r for r in count_qa(backend_index, QA)}
    assert rows["qa1"] == {"id": "qa1", "count": 2, "q_count": 3, "a_count": 3, "pair": ["Q1", "Q2"],
                           "status": "ok"}
    # max over pairs: (Q1, Q3) -> 2 (d3, d4), (Q2, Q3) -> 2 (d2, d4); the first maximum wins
    assert rows["qa2"]["count"] == 2 and rows["qa2"]["pair"] == ["Q1", "Q3"]
    assert rows["qa2"]["q_count"] == 3 and rows["qa2"]["a_count"] == 4
    assert rows["qa3"] == {"id": "qa3", "count": None, "q_count": None, "a_count": 4, "pair": None,
                           "status": "no_q_entity"}
    assert rows["qa4"]["status"] == "no_a_entity" and rows["qa4"]["count"] is None
    assert rows["qa4"]["q_count"] == 3 and rows["qa4"]["a_count"] is None
    assert rows["qa5"]["status"] == "ok" and rows["qa5"]["count"] == 0 and rows["qa5"]["q_count"] == 0
    assert rows["qa6"]["count"] == 1 and rows["qa6"]["pair"] == ["Q7", "Q3"]


def test_stoplist_drops_question_entities_first(backend_index):
    """As the original study: the stop-list removes question entities; answers stay."""
    rows = {r["id"]: r for r in count_qa(backend_index, QA, stoplist={"Q3", "Q1"})}
    assert rows["qa1"]["status"] == "no_q_entity"
    # Q1 left the question side; the answer Q3 stays: (Q2, Q3) -> d2, d4
    assert rows["qa2"]["pair"] == ["Q2", "Q3"] and rows["qa2"]["count"] == 2
    assert rows["qa2"]["q_count"] == 3 and rows["qa2"]["a_count"] == 4
    assert rows["qa6"]["pair"] == ["Q7", "Q3"] and rows["qa6"]["count"] == 1


def test_stoplist_on_both_sides(backend_index):
    rows = {r["id"]: r for r in count_qa(backend_index, QA, stoplist={"Q3", "Q1"}, stoplist_sides="both")}
    assert rows["qa2"]["status"] == "no_a_entity"  # Q3 was the only answer entity
    assert rows["qa1"]["status"] == "no_q_entity"
    assert rows["qa6"]["pair"] == ["Q7", "Q2"] and rows["qa6"]["count"] == 1


def test_mention_votes_pick_salient_answers_and_a_count_spans_all(backend_index):
    """Salient answers: the most mentions (ties kept); a_count over every answer entity."""
    records = [
        # Q2 has 2 mentions, Q3 1: only Q2 is salient, but a_count is Q3's 4 documents
        {"id": "v1", "q_entities": ["Q1"], "a_entities": ["Q2"], "a_entity_votes": {"Q3": 1, "Q2": 2}},
        # a tie: both salient; (Q7, Q3) = 1 first, (Q7, Q2) = 1
        {"id": "v2", "q_entities": ["Q7"], "a_entities": ["Q3", "Q2"], "a_entity_votes": {"Q3": 1, "Q2": 1}},
        # the answer mention of the question entity Q1 is dropped unless a stop-list removes Q1
        {"id": "v3", "q_entities": ["Q1", "Q2"], "a_entities": ["Q3"], "a_entity_votes": {"Q1": 3, "Q3": 1}},
    ]
    rows = {r["id"]: r for r in count_qa(backend_index, records)}
    assert rows["v1"]["pair"] == ["Q1", "Q2"] and rows["v1"]["count"] == 2 and rows["v1"]["a_count"] == 4
    assert rows["v2"]["pair"] == ["Q7", "Q3"] and rows["v2"]["a_count"] == 4
    assert rows["v3"]["pair"] == ["Q1", "Q3"] and rows["v3"]["count"] == 2 and rows["v3"]["a_count"] == 4
    stopped = {r["id"]: r for r in count_qa(backend_index, records, stoplist={"Q1"})}
    # Q1 is no longer a question entity, so its 3 answer mentions make it the salient answer
    assert stopped["v3"]["pair"] == ["Q2", "Q1"] and stopped["v3"]["count"] == 2


def test_relevant_docs_are_the_counted_documents(backend_index):
    result = relevant_docs(backend_index, QA[0], limit=10)
    assert result["pair"] == ["Q1", "Q2"] and result["count"] == 2
    assert [d["id"] for d in result["docs"]] == ["d1", "d4"]
    assert result["docs"][0]["text"].startswith("Ada Lovelace wrote")
    assert relevant_docs(backend_index, QA[2])["docs"] == []
