"""QA loaders: the presets on the real files in ../shared/data (directly and through
`datasets`), local formats with a field mapping, and FILE:LINE errors for bad records."""

import gzip
import json
import os
from pathlib import Path

import pytest

from entity_linking.io import InputError, SkipCounter
from probe.data import load_qa
from tests.paths import SHARED_DATA as DATA


def shared(path: str) -> Path:
    full = DATA / path
    if not full.exists():
        pytest.skip(f"shared data {path} is not here")
    return full


def test_popqa_preset_on_the_published_tsv_schema():
    (record,) = load_qa(shared("popqa_schema_example.tsv"), preset="popqa")
    assert record["id"] == "4222362"
    assert record["question"] == "What is George Rankin's occupation?"
    assert record["answers"] == ["politician", "political leader", "political figure", "polit.", "pol"]
    assert record["relation"] == "occupation" and record["pop"] == 142


def test_popqa_preset_through_datasets_from_a_local_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf-cache"))
    folder = tmp_path / "popqa"
    folder.mkdir()
    os.symlink(shared("popqa_schema_example.tsv"), folder / "test.tsv")  # a link, not a copy
    (record,) = load_qa(folder, preset="popqa")  # the folder's only split
    assert record["answers"][0] == "politician" and record["relation"] == "occupation"


def test_popqa_longtail_jsonl():
    records = load_qa(shared("real/selfrag_eval/popqa_longtail.jsonl"), preset="popqa")
    assert len(records) == 1399
    assert records[0]["answers"][:2] == ["politician", "political leader"]
    assert all(2 <= r["pop"] <= 99 for r in records)


def test_nq_open_preset_gives_stable_ids():
    path = shared("real/nq_open/NQ-open.dev.jsonl")
    records = load_qa(path, preset="nq_open")
    assert len(records) == 3610 and len({r["id"] for r in records}) == 3610
    assert records[0]["answers"] == ["14 December 1972 UTC", "December 1972"]
    assert records[0]["id"] == load_qa(path, preset="nq_open")[0]["id"]


def test_nq_open_through_datasets(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf-cache"))
    folder = tmp_path / "nq"
    folder.mkdir()
    os.symlink(shared("real/nq_open/NQ-open.dev.jsonl"), folder / "validation.jsonl")
    records = load_qa(folder, preset="nq_open", split="validation")
    assert len(records) == 3610 and records[1]["answers"] == ["Bobby Scott", "Bob Russell"]


def test_trivia_qa_preset_keeps_aliases():
    records = load_qa(shared("real/selfrag_eval/triviaqa_test.jsonl"), preset="trivia_qa")
    assert len(records) == 1000
    gagarin = next(r for r in records if r["id"] == "qw_2021")
    assert "Yuri Gagarin" in gagarin["answers"] and len(gagarin["answers"]) > 10


def test_trivia_qa_preset_on_the_hub_schema(tmp_path):
    # The hub's rows nest the aliases under `answer`; the preset adds the canonical value.
    path = tmp_path / "tqa.jsonl"
    path.write_text(json.dumps({"question_id": "tc_1", "question": "Capital of France?",
                                "answer": {"aliases": ["Paris", "Paree"], "value": "Paris, France"}}) + "\n")
    (record,) = load_qa(path, preset="trivia_qa")
    assert record["id"] == "tc_1" and record["answers"] == ["Paris", "Paree", "Paris, France"]


def test_entityquestions_json_array():
    records = load_qa(shared("real/entityquestions/dev/P19.dev.json"))
    assert records[0]["question"] == "Where was Michael Jack born?" and records[0]["answers"] == ["Folkestone"]


def test_mapping_csv_parquet_and_gzip(tmp_path):
    csv_path = tmp_path / "qa.csv"
    csv_path.write_text('qid,q,gold\n1,"Who wrote it?","[""Ann"", ""Anne""]"\n2,Where?,Oslo\n')
    records = load_qa(csv_path, mapping={"id": "qid", "question": "q", "answers": "gold"})
    assert records == [{"id": "1", "question": "Who wrote it?", "answers": ["Ann", "Anne"]},
                       {"id": "2", "question": "Where?", "answers": ["Oslo"]}]
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"id": ["a"], "question": ["Q?"], "answers": [["x", "y"]], "extra": [3]}),
                   tmp_path / "qa.parquet")
    assert load_qa(tmp_path / "qa.parquet") == [{"id": "a", "question": "Q?", "answers": ["x", "y"], "extra": 3}]
    with gzip.open(tmp_path / "qa.jsonl.gz", "wt") as handle:
        handle.write(json.dumps({"id": 7, "question": "Q?", "answer": {"aliases": ["z"]}}) + "\n")
    assert load_qa(tmp_path / "qa.jsonl.gz", mapping={"answers": "answer.aliases"})[0]["answers"] == ["z"]


@pytest.mark.parametrize("line, reason", [
    ({"id": "2", "question": "Q?", "answers": []}, "empty answer list"),
    ({"id": "1", "question": "Q2?", "answers": ["b"]}, "duplicate id '1' (first at"),
    ({"id": "2", "answers": ["b"]}, "missing field 'question'"),
    ({"id": "2", "question": "Q?"}, "missing field 'answers'"),
    ({"id": "2", "question": "Q?", "answers": [3]}, "must be a list of strings"),
])
def test_bad_records_name_file_and_line(tmp_path, line, reason):
    path = tmp_path / "qa.jsonl"
    path.write_text(json.dumps({"id": "1", "question": "Q?", "answers": ["a"]}) + "\n" + json.dumps(line) + "\n")
    with pytest.raises(InputError) as err:
        load_qa(path)
    assert str(err.value).startswith(f"{path}:2: ") and reason in str(err.value)
    skips = SkipCounter()
    assert [r["id"] for r in load_qa(path, on_error="skip", skips=skips)] == ["1"]
    assert skips.skipped == 1


def test_tsv_errors_give_the_line(tmp_path):
    path = tmp_path / "qa.tsv"
    path.write_text("id\tquestion\tanswers\n1\tQ?\t[\"a\"]\n2\t\t[\"b\"]\n")
    with pytest.raises(InputError, match=r"qa.tsv:3: field 'question' is empty"):
        load_qa(path)


def test_missing_file_and_unknown_preset(tmp_path):
    with pytest.raises(InputError, match="no such QA file"):
        load_qa(tmp_path / "nope.jsonl")
    with pytest.raises(InputError, match="unknown QA preset"):
        load_qa(tmp_path / "nope.jsonl", preset="squad")
