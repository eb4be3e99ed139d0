"""Knowledge bases: kb.jsonl, alias tables, PopQA rows, Wikidata dumps; saving and loading."""

from __future__ import annotations

import bz2
import gzip
import json

import pytest

from entity_linking import InputError, KnowledgeBase, Linker
from tests.entity_linking.el_data import TEN
from tests.paths import SHARED_DATA


def test_from_jsonl_lookup(kb):
    assert len(kb) == 10
    assert "P1" in kb and "nope" not in kb
    p3 = kb["P3"]
    assert (p3.name, p3.aliases, p3.type, p3.prior) == ("Zoë O'Brien", ["Zoe OBrien"], "person", 0.1)
    assert "astronomer" in p3.description
    assert kb.get("nope") is None
    assert sorted(kb.candidates("john smith")) == ["P1", "P2"]
    assert kb.candidates("SPRINGFIELD, illinois") == ["C1"]
    assert kb.candidates("Zoe O’Brien") == ["P3"]  # accent and apostrophe variants
    info = kb.info()
    assert info["entities"] == 10 and info["ambiguous_keys"] == 2  # "john smith", "springfield"


def test_duplicate_id_refused_with_line(tmp_path):
    path = tmp_path / "kb.jsonl"
    rows = [TEN[0], TEN[2], {**TEN[3], "id": "P1"}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(InputError, match=r"kb.jsonl:3: duplicate entity id 'P1'"):
        KnowledgeBase.from_jsonl(path)
    kb = KnowledgeBase.from_jsonl(path, on_error="skip")
    assert len(kb) == 2


@pytest.mark.parametrize("alias", ["", "   ", "!!!"])
def test_empty_alias_refused_with_line(tmp_path, alias):
    path = tmp_path / "kb.jsonl"
    path.write_text(json.dumps(TEN[0]) + "\n" + json.dumps({**TEN[2], "aliases": ["ok", alias]}) + "\n")
    with pytest.raises(InputError, match=r"kb.jsonl:2: entity 'P3' has an empty alias"):
        KnowledgeBase.from_jsonl(path)


def test_bad_records_refused(tmp_path):
    path = tmp_path / "kb.jsonl"
    path.write_text(json.dumps(TEN[0]) + "\n{broken\n" + json.dumps({**TEN[2], "prior": -1}) + "\n")
    with pytest.raises(InputError, match=r"kb.jsonl:2: broken JSON"):
        KnowledgeBase.from_jsonl(path)
    path.write_text(json.dumps(TEN[0]) + "\n" + json.dumps({**TEN[2], "prior": -1}) + "\n")
    with pytest.raises(InputError, match=r"kb.jsonl:2: prior of 'P3' must be a non-negative number"):
        KnowledgeBase.from_jsonl(path)


def test_save_load_round_trip(kb, tmp_path):
    text = "John Smith, the painter, left Paris for Springfield, Oregon in May."
    before = Linker(kb).link(text)
    kb.save(tmp_path / "kbdir")
    files = {p.name for p in (tmp_path / "kbdir").iterdir()}
    assert {"kb.json", "ids.blob.npy", "key_val.npy", "t_rows.npy", "group_off.npy"} <= files
    assert all(name == "kb.json" or name.endswith(".npy") for name in files)  # no pickle, no automaton dump
    loaded = KnowledgeBase.load(tmp_path / "kbdir")
    assert len(loaded) == 10 and loaded["C2"].aliases == ["Springfield, Oregon"]
    assert Linker(loaded).link(text) == before
    assert [m.kb_id for m in before] == ["P2", "C3", "C2", "S2", "M1"]
    assert len(KnowledgeBase.load(tmp_path / "kb.jsonl")) == 10  # the fixture's file: a kb.jsonl loads too


def test_load_errors(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        KnowledgeBase.load(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="not a saved knowledge base"):
        KnowledgeBase.load(tmp_path / "empty")


def test_from_table_with_column_mapping(tmp_path):
    path = tmp_path / "aliases.tsv"
    path.write_text("qid\tlabel\talt\tviews\n"
                    "Q1\tSpringfield\tSpringfield, IL|Springfield, Illinois\t90\n"
                    "Q2\tSpringfield\tSpringfield, OR\t40\n"
                    "Q1\tSpringfield\tCapital of Illinois\t120\n", encoding="utf-8")
    kb = KnowledgeBase.from_table(path, {"id": "qid", "name": "label", "aliases": "alt", "prior": "views"})
    assert len(kb) == 2
    assert kb["Q1"].aliases == ["Springfield, IL", "Springfield, Illinois", "Capital of Illinois"]
    assert kb["Q1"].prior == 120
    assert kb.candidates("capital of illinois") == ["Q1"]
    csv_path = tmp_path / "aliases.csv"
    csv_path.write_text('id,name,aliases\nQ7,Zoë,"[""Zoe"", ""Zoey""]"\n', encoding="utf-8")
    assert KnowledgeBase.from_table(csv_path)["Q7"].aliases == ["Zoe", "Zoey"]
    with pytest.raises(InputError, match=r"no column 'name'"):
        KnowledgeBase.from_table(path, {"id": "qid"})
    bad = tmp_path / "bad.tsv"
    bad.write_text("id\tname\talias\nQ1\tA\t\nQ2\t?!\t\n")
    with pytest.raises(InputError, match=r"bad.tsv:3: entity 'Q2' has an empty alias"):
        KnowledgeBase.from_table(bad)


def test_from_popqa_schema_example():
    path = SHARED_DATA / "popqa_schema_example.tsv"
    if not path.exists():
        pytest.skip("shared data not available")
    kb = KnowledgeBase.from_popqa(path)
    subject, occupation = kb["Q5543720"], kb["Q82955"]
    assert subject.name == "George Rankin" and "George James Rankin" in subject.aliases
    assert occupation.name == "politician" and "political leader" in occupation.aliases
    assert (subject.prior, occupation.prior) == (142.0, 25692.0)
    assert Linker(kb).link("George James Rankin was a political figure.")[0].kb_id == "Q5543720"


def _wikidata_entity(qid, label, aliases=(), description="", sitelinks=0, p31=None):
    item = {"type": "item", "id": qid, "labels": {"en": {"language": "en", "value": label}} if label else {},
            "aliases": {"en": [{"language": "en", "value": a} for a in aliases]},
            "descriptions": {"en": {"language": "en", "value": description}},
            "sitelinks": {f"site{i}": {} for i in range(sitelinks)}, "claims": {}}
    if p31:
        item["claims"]["P31"] = [{"mainsnak": {"datavalue": {"value": {"id": p31}}}}]
    return json.dumps(item)


@pytest.mark.parametrize("suffix", [".json", ".json.gz", ".json.bz2"])
def test_from_wikidata_dump_streamed(tmp_path, suffix):
    lines = ["[",
             _wikidata_entity("Q90", "Paris", ["City of Light"], "capital of France", 300, "Q515") + ",",
             _wikidata_entity("Q167646", "Paris", [], "Trojan prince in Greek mythology", 60, "Q5") + ",",
             _wikidata_entity("Q1", None, ["no english label"]) + ",",
             _wikidata_entity("Q42", "Douglas Adams", ["Douglas Noël Adams"], "English writer", 150, "Q5"),
             "]"]
    data = ("\n".join(lines) + "\n").encode()
    path = tmp_path / f"dump{suffix}"
    opener = {".json": open, ".json.gz": gzip.open, ".json.bz2": bz2.open}[suffix]
    with opener(path, "wb") as handle:
        handle.write(data)
    kb = KnowledgeBase.from_wikidata(path, progress=False)
    assert [e.id for e in kb] == ["Q90", "Q167646", "Q42"]
    assert kb["Q90"].prior == 300 and kb["Q90"].type == "Q515"
    linker = Linker(kb)
    assert linker.link("The City of Light, capital of France.")[0].kb_id == "Q90"
    assert linker.link("In Greek mythology the Trojan prince Paris took Helen.")[0].kb_id == "Q167646"
    assert linker.link("Paris is large.")[0].kb_id == "Q90"  # no context: the prior decides
    assert len(KnowledgeBase.from_wikidata(path, min_sitelinks=100, progress=False)) == 2


def test_wikidata_broken_line(tmp_path):
    path = tmp_path / "dump.json"
    path.write_text("[\n" + _wikidata_entity("Q90", "Paris") + ",\n{oops,\n]\n")
    with pytest.raises(InputError, match=r"dump.json:3:"):
        KnowledgeBase.from_wikidata(path, progress=False)
    assert len(KnowledgeBase.from_wikidata(path, on_error="skip", progress=False)) == 1


def test_kb_cli_build_and_info(tmp_path, kb_jsonl, cli, capsys):
    status, _, err = cli(capsys, "kb", "build", kb_jsonl, "--out", tmp_path / "kbdir")
    assert status == 0 and "10 entities" in err
    status, out, _ = cli(capsys, "kb", "info", tmp_path / "kbdir")
    assert status == 0 and json.loads(out)["entities"] == 10
    table = tmp_path / "t.tsv"
    table.write_text("qid\tlabel\nQ1\tAcme\n")
    status, _, err = cli(capsys, "kb", "build", table, "--columns", "id=qid,name=label", "--out", tmp_path / "k2")
    assert status == 0, err
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(TEN[0]) + "\n" + json.dumps(TEN[0]) + "\n")
    status, _, err = cli(capsys, "kb", "build", bad, "--out", tmp_path / "k3")
    assert status == 2 and err.strip().count("\n") == 0 and "bad.jsonl:2: duplicate entity id" in err
    assert "Traceback" not in err
