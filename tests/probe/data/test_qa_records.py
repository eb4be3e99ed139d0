"""`load_qa` builds `QAPair` records (issue 17) and writes the bytes it wrote before them: the
expected lines below were written by the dict-building code the record replaced."""

from __future__ import annotations

import json

from entity_linking import QAPair, write_jsonl
from probe.data import load_qa

BEFORE = """\
{"id": "1", "question": "Où est né Zoë?", "answers": ["Zürich", "Zurich"], "popularity": "12", "relation": "birth"}
{"id": "2", "question": "Who?", "answers": ["Ada"], "popularity": "", "relation": "person"}
{"id": "f", "question": "Who wrote Faust?", "answers": ["Goethe", "J. W. von Goethe"], "zeta": [1], "alpha": {"é": null}}
"""


def test_load_qa_writes_the_same_qa_jsonl_as_before_the_record(tmp_path):
    (tmp_path / "qa.csv").write_text('qid,q,ans,relation,pop\n1,Où est né Zoë?,"[""Zürich"", ""Zurich""]",birth,12\n'
                                     '2,Who?,Ada,person,\n', encoding="utf-8")
    (tmp_path / "qa.jsonl").write_text(json.dumps(
        {"question": " Who wrote Faust? ", "answers": ["Goethe", " Goethe", "J. W. von Goethe"], "zeta": [1], "id": "f",
         "alpha": {"é": None}}, ensure_ascii=False) + "\n", encoding="utf-8")
    records = load_qa(tmp_path / "qa.csv", mapping={"id": "qid", "question": "q", "answers": "ans",
                                                     "popularity": "pop"}) + load_qa(tmp_path / "qa.jsonl")
    write_jsonl(tmp_path / "out.jsonl", records)
    assert (tmp_path / "out.jsonl").read_text(encoding="utf-8") == BEFORE
    pairs = [QAPair.from_json(r) for r in records]
    assert [p.to_json() for p in pairs] == records
    assert pairs[2].extra == {"zeta": [1], "alpha": {"é": None}}
