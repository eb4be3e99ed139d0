"""The QA pair and linked QA pair records (issue 17): real lines (written by today's writers,
Unicode and extra keys included) read and written again byte for byte, bad lines rejected with a
reason, and `link_qa` writing exactly what the hand-built dicts it replaced wrote."""

from __future__ import annotations

import json

import pytest

from entity_linking import InputError, LinkedQAPair, QAPair, link_qa
from entity_linking._qa import _linker, link_qa_record

QA_LINES = [  # qa.jsonl of a generated world (`ltprobe world`, load_qa), as written before the records
    '{"id": "qa_00018", "question": "In what city was Søren Gallagher born?", "answers": ["Lake Dutusk", '
    '"Lake Dutusk, Saetrorkia"], "q_entity": "per_00007", "a_entity": "city_0004", "relation": "birth_city", '
    '"stated_docs": 1}',
    '{"id": "qa_00001", "question": "What is Rudolf Orlov\'s occupation?", "answers": ["biologist"], '
    '"q_entity": "per_00001", "a_entity": "occ_006", "relation": "occupation", "stated_docs": 3}',
    '{"id": 7, "question": "Où est né Zoë O\'Brien?", "answers": [], "zzz": {"nested": [1, null]}, "aaa": true}',
]

LINKED_LINES = [  # qa_entities.jsonl (`ltprobe link-qa`, `ltprobe import kandpal`)
    '{"id": "qa_00018", "q_entities": ["per_00007"], "a_entities": ["city_0004"], "a_entity_votes": '
    '{"city_0004": 2, "ctry_000": 1}, "q_mentions": [["Søren Gallagher", "per_00007"]]}',
    '{"id": "12", "q_entities": ["http://dbpedia.org/resource/Zürich"], "a_entities": [], "a_entity_votes": {}}',
    '{"id": 3, "q_entities": [], "a_entities": ["Q1", "Q2"], "source": "hand-made"}',
]


@pytest.mark.parametrize("line", QA_LINES)
def test_qa_pair_round_trips_a_real_line_byte_for_byte(line):
    record = QAPair.from_json(json.loads(line))
    assert json.dumps(record.to_json(), ensure_ascii=False) == line
    assert set(record.extra) == set(json.loads(line)) - {"id", "question", "answers"}


@pytest.mark.parametrize("line", LINKED_LINES)
def test_linked_qa_pair_round_trips_a_real_line_byte_for_byte(line):
    record = LinkedQAPair.from_json(json.loads(line))
    assert json.dumps(record.to_json(), ensure_ascii=False) == line


def test_records_keep_their_fields_typed():
    qa = QAPair.from_json(json.loads(QA_LINES[0]))
    assert (qa.id, qa.answers[1], qa.extra["relation"]) == ("qa_00018", "Lake Dutusk, Saetrorkia", "birth_city")
    linked = LinkedQAPair.from_json(json.loads(LINKED_LINES[0]))
    assert linked.q_mentions == [["Søren Gallagher", "per_00007"]]
    assert linked.answer_votes() == {"city_0004": 2, "ctry_000": 1}
    assert LinkedQAPair("x", [], ["a", "b"]).answer_votes() == {"a": 1, "b": 1}
    assert LinkedQAPair("x", ["q"], []).to_json() == {"id": "x", "q_entities": ["q"], "a_entities": []}


@pytest.mark.parametrize("record, reason", [
    ({"question": "Q?", "answers": []}, "missing field 'id'"),
    ({"id": True, "question": "Q?", "answers": []}, "field 'id' must be str/int, got bool"),
    ({"id": 1.5, "question": "Q?", "answers": []}, "field 'id' must be str/int, got float"),
    ({"id": "a", "answers": []}, "missing field 'question'"),
    ({"id": "a", "question": 3, "answers": []}, "field 'question' must be str, got int"),
    ({"id": "a", "question": "Q?", "answers": "Paris"}, "field 'answers' must be a list of strings"),
    ({"id": "a", "question": "Q?"}, "field 'answers' must be a list of strings"),
])
def test_qa_pair_rejects_a_bad_line_with_a_reason(record, reason):
    with pytest.raises(ValueError, match=f"^{reason}$"):
        QAPair.from_json(record)


@pytest.mark.parametrize("record, reason", [
    ({"id": "a", "a_entities": []}, "field 'q_entities' must be a list of entity id strings"),
    ({"id": "a", "q_entities": [1], "a_entities": []}, "field 'q_entities' must be a list of entity id strings"),
    ({"id": "a", "q_entities": [], "a_entities": "Q1"}, "field 'a_entities' must be a list of entity id strings"),
    ({"id": "a", "q_entities": [], "a_entities": [], "a_entity_votes": {"Q1": 0}},
     "field 'a_entity_votes' must map entity ids to positive mention counts"),
    ({"id": "a", "q_entities": [], "a_entities": [], "a_entity_votes": {"Q1": True}},
     "field 'a_entity_votes' must map entity ids to positive mention counts"),
    ({"id": "a", "q_entities": [], "a_entities": [], "q_mentions": [["only text"]]},
     r"field 'q_mentions' must be a list of \[text, entity id\] pairs"),
])
def test_linked_qa_pair_rejects_a_bad_line_with_a_reason(record, reason):
    with pytest.raises(ValueError, match=f"^{reason}$"):
        LinkedQAPair.from_json(record)


def test_link_qa_writes_what_the_hand_built_records_wrote(kb, tmp_path):
    rows = [
        {"id": "q1", "question": "Where did John Smith the painter live?", "answers": ["Paris"], "extra": 1},
        {"id": 2, "question": "Which company employs Zoë O'Brien?", "answers": ["Acme Labs", "Acme Laboratories"]},
        {"id": "q3", "question": "Which city in Oregon did we visit?", "answers": ["Springfield"]},
        {"id": "q4", "question": "Name nothing.", "answers": []},
    ]
    qa = tmp_path / "qa.jsonl"
    qa.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    link_qa(qa, kb, tmp_path / "qa_entities.jsonl", progress=False)
    linker = _linker(kb, {})
    # the writer before the records: a dict built by hand, one JSON line each
    before = "".join(json.dumps({"id": r["id"], **link_qa_record(linker, r["question"], r["answers"])},
                                ensure_ascii=False) + "\n" for r in rows)
    written = (tmp_path / "qa_entities.jsonl").read_text(encoding="utf-8")
    assert written == before
    for line in written.splitlines():  # and each line reads back into a record that writes it again
        assert json.dumps(LinkedQAPair.from_json(json.loads(line)).to_json(), ensure_ascii=False) == line


def test_link_qa_reports_a_bad_qa_line_with_file_and_line(kb, tmp_path):
    qa = tmp_path / "qa.jsonl"
    qa.write_text('{"id": "a", "question": "Who is Zoë O\'Brien?", "answers": ["Zoë"]}\n'
                  '{"id": "b", "question": 3, "answers": []}\n', encoding="utf-8")
    with pytest.raises(InputError, match=r"qa\.jsonl:2: field 'question' must be str, got int$"):
        link_qa(qa, kb, tmp_path / "out.jsonl", progress=False)
    stats = link_qa(qa, kb, tmp_path / "out.jsonl", on_error="skip", progress=False)
    assert stats["questions"] == 1 and stats["skipped"] == 1
