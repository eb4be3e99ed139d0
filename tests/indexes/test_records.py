"""The count record (issue 17): `counts.jsonl` lines read and written again byte for byte (a
backend's extra keys included), bad lines rejected with a reason, and `write_counts` writing
the same bytes as before the records (the expected file below was written by the dict-building
code they replaced, on the hand-made corpus of the contract tests)."""

from __future__ import annotations

import json
import re

import pytest

from entity_linking import InputError, LinkedQAPair
from indexes import Count, build_index, count_qa, iter_count_records, open_index, write_counts
from tests.indexes.ix_testdata import DOCS, QA, write_corpus

COUNT_LINES = [
    '{"id": "qa_00000", "count": 4, "q_count": 5, "a_count": 306, "pair": ["per_00001", "city_0002"], "status": "ok"}',
    '{"id": 7, "count": null, "q_count": null, "a_count": 7, "pair": null, "status": "no_q_entity"}',
    '{"id": "q3", "count": null, "q_count": 5, "a_count": null, "pair": null, "status": "no_a_entity"}',
    # infini-gram adds its own fields after the contract's
    '{"id": "q1", "count": 3, "q_count": 5, "a_count": 7, "pair": ["per_1", "city_é"], "status": "ok", '
    '"backend": "infini-gram", "mode": "document", "approx": true, "q_count_approx": false, "a_count_approx": false}',
]

QA_MORE = QA + [{"id": 7, "q_entities": ["Q1"], "a_entities": ["Q3"], "a_entity_votes": {"Q3": 2, "Q2": 2, "Q1": 5},
                 "q_mentions": [["Ada Lövelace", "Q1"]]}]

BEFORE = """\
{"id": "qa1", "count": 2, "q_count": 3, "a_count": 3, "pair": ["Q1", "Q2"], "status": "ok"}
{"id": "qa2", "count": 2, "q_count": 3, "a_count": 4, "pair": ["Q1", "Q3"], "status": "ok"}
{"id": "qa3", "count": null, "q_count": null, "a_count": 4, "pair": null, "status": "no_q_entity"}
{"id": "qa4", "count": null, "q_count": 3, "a_count": null, "pair": null, "status": "no_a_entity"}
{"id": "qa5", "count": 0, "q_count": 0, "a_count": 3, "pair": ["Q9", "Q1"], "status": "ok"}
{"id": "qa6", "count": 1, "q_count": 1, "a_count": 4, "pair": ["Q7", "Q3"], "status": "ok"}
{"id": 7, "count": 2, "q_count": 3, "a_count": 4, "pair": ["Q1", "Q3"], "status": "ok"}
"""
"""counts.jsonl for QA_MORE as written before the records."""


@pytest.mark.parametrize("line", COUNT_LINES)
def test_count_round_trips_a_real_line_byte_for_byte(line):
    count = Count.from_json(json.loads(line))
    assert json.dumps(count.to_json(), ensure_ascii=False) == line


def test_count_fields_are_typed():
    count = Count.from_json(json.loads(COUNT_LINES[3]))
    assert (count.count, count.pair, count.status) == (3, ["per_1", "city_é"], "ok")
    assert count.extra == {"backend": "infini-gram", "mode": "document", "approx": True,
                           "q_count_approx": False, "a_count_approx": False}


@pytest.mark.parametrize("change, reason", [
    ({"count": -1}, "field 'count' must be a count (an integer >= 0) or null"),
    ({"q_count": 2.5}, "field 'q_count' must be a count (an integer >= 0) or null"),
    ({"a_count": True}, "field 'a_count' must be a count (an integer >= 0) or null"),
    ({"pair": ["Q1"]}, "field 'pair' must be [question entity, answer entity] or null"),
    ({"status": "fine"}, "field 'status' must be one of ok, no_q_entity, no_a_entity, got 'fine'"),
    ({"id": None}, "field 'id' must be str/int, got NoneType"),
])
def test_count_rejects_a_bad_line_with_a_reason(change, reason):
    record = {**json.loads(COUNT_LINES[0]), **change}
    with pytest.raises(ValueError, match=f"^{re.escape(reason)}$"):
        Count.from_json(record)
    without = json.loads(COUNT_LINES[0])
    del without["a_count"]
    with pytest.raises(ValueError, match="^missing field 'a_count'$"):
        Count.from_json(without)


@pytest.fixture(scope="module")
def index(tmp_path_factory):
    folder = tmp_path_factory.mktemp("records_index")
    corpus, linked = write_corpus(folder / "corpus", DOCS)
    build_index(corpus, linked, folder / "index", progress=False)
    with open_index(folder / "index") as opened:
        yield opened


def test_write_counts_writes_the_same_bytes_as_before_the_records(index, tmp_path):
    qa_entities = tmp_path / "qa_entities.jsonl"
    qa_entities.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in QA_MORE), encoding="utf-8")
    summary = write_counts(index, qa_entities, tmp_path / "counts.jsonl", progress=False)
    assert (tmp_path / "counts.jsonl").read_text(encoding="utf-8") == BEFORE
    assert summary == {"ok": 5, "no_q_entity": 1, "no_a_entity": 1, "n": 7, "skipped": 0}
    for line in BEFORE.splitlines():
        assert json.dumps(Count.from_json(json.loads(line)).to_json(), ensure_ascii=False) == line


def test_counting_takes_records_or_their_dicts(index):
    records = [LinkedQAPair.from_json(r) for r in QA_MORE]
    typed = list(iter_count_records(index, records))
    assert all(isinstance(c, Count) for c in typed)
    assert [c.to_json() for c in typed] == count_qa(index, QA_MORE) == [json.loads(x) for x in BEFORE.splitlines()]


def test_a_bad_qa_entities_line_names_file_and_line(index, tmp_path):
    path = tmp_path / "qa_entities.jsonl"
    path.write_text(json.dumps(QA[0]) + "\n" + json.dumps({"id": "x", "q_entities": "Q1", "a_entities": []}) + "\n")
    with pytest.raises(InputError, match=r"qa_entities\.jsonl:2: field 'q_entities' must be a list of entity id strings$"):
        write_counts(index, path, tmp_path / "counts.jsonl", progress=False)
    assert write_counts(index, path, tmp_path / "counts.jsonl", on_error="skip", progress=False)["skipped"] == 1
