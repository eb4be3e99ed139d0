"""Bulk ingestion into Elasticsearch from Ray workers (Ray local mode, noida-db on 127.0.0.1):
the same documents, passages, skips and counts as the single-process ingestion and the
embedded index on the generated world."""

from __future__ import annotations

import json

import pytest

from entity_linking.io import InputError
from indexes import build_index, count_qa, open_index
from tests.indexes.ix_testdata import delete_es_indices, new_index_name, write_linked

pytestmark = pytest.mark.slow


@pytest.fixture
def names(noida_url):
    made = [new_index_name(), new_index_name()]
    yield made
    delete_es_indices(noida_url, *made, *(f"{n}-passages" for n in made))


def _docs(url, index):
    from elasticsearch import Elasticsearch

    client = Elasticsearch(url, request_timeout=30)
    hits = client.search(index=index, size=10_000, query={"match_all": {}})["hits"]["hits"]
    count = client.count(index=f"{index}-passages")["count"]
    client.close()
    return sorted((h["_id"], json.dumps(h["_source"], sort_keys=True)) for h in hits), count


def test_ray_ingestion_matches_one_process_and_embedded(ray_local, noida_url, names, tiny_world, tmp_path,
                                                        monkeypatch):
    from indexes.elastic import _ray as _elastic_ray

    monkeypatch.setattr(_elastic_ray, "BLOCK", 300)  # several blocks, so both actors index some
    lines = (tiny_world / "corpus.jsonl").read_text(encoding="utf-8").splitlines()
    docs = [json.loads(line) for line in lines]
    # a bad record and a blank line among the documents: skipped alike by both paths
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("\n".join(lines[:7] + ["{broken", ""] + lines[7:]) + "\n", encoding="utf-8")
    linked = write_linked(tmp_path / "linked", [(d["id"], d["entities"]) for d in docs], shard_size=500)
    common = dict(on_error="skip", progress=False)
    build_index(corpus, linked, tmp_path / "embedded", **common)
    es = dict(backend="elasticsearch", es_url=noida_url, **common)
    one = build_index(corpus, linked, tmp_path / "one", es_index=names[0], **common | es)
    many = build_index(corpus, linked, tmp_path / "ray", es_index=names[1], executor="ray", workers=2,
                       **common | es)
    for key in ("n_docs", "n_mentions", "n_passages", "skipped_records", "failed"):
        assert one[key] == many[key], key
    assert many["n_docs"] == len(docs) and many["skipped_records"] == 1
    assert many["executor"] == "ray" and many["ray_workers"] == 2
    single, ray_docs = _docs(noida_url, names[0]), _docs(noida_url, names[1])
    assert single == ray_docs and len(ray_docs[0]) == len(docs) and ray_docs[1] == many["n_passages"]
    qa = [json.loads(line) for line in (tiny_world / "qa.jsonl").read_text().splitlines()]
    records = [{"id": q["id"], "q_entities": [q["q_entity"]], "a_entities": [q["a_entity"]]} for q in qa]
    results = []
    for folder in ("embedded", "one", "ray"):
        with open_index(tmp_path / folder) as index:
            results.append(count_qa(index, records))
    assert results[0] == results[1] == results[2]
    truth = {r["id"]: r["count"] for r in map(json.loads, (tiny_world / "truth.jsonl").read_text().splitlines())}
    assert {r["id"]: r["count"] for r in results[2]} == truth


def test_ray_ingestion_errors_and_command_line(ray_local, noida_url, names, tmp_path, capsys):
    from tests.indexes.ix_testdata import DOCS, write_corpus

    from probe.cli import main

    corpus, linked = write_corpus(tmp_path / "c", DOCS)
    encyclopedia = tmp_path / "enc.jsonl"
    encyclopedia.write_text("".join(json.dumps({"id": f"e{i}", "text": " ".join(["word"] * 150)}) + "\n"
                                    for i in range(3)) + "not json\n")
    errors = []
    for executor in ("local", "ray"):  # a bad record: the same error from the reader as in one process
        with pytest.raises(InputError, match=r"enc.jsonl:4: ") as info:
            build_index(corpus, linked, None, backend="elasticsearch", es_url=noida_url, es_index=names[0],
                        passages=encyclopedia, executor=executor, workers=2, progress=False)
        errors.append(str(info.value))
    assert errors[0] == errors[1]
    assert main(["index", "--corpus", str(corpus), "--linked", str(linked), "--out", str(tmp_path / "ix"),
                 "--backend", "elasticsearch", "--es-url", noida_url, "--es-index", names[1],
                 "--passages", str(encyclopedia), "--on-error", "skip", "--executor", "ray",
                 "--workers", "2"]) == 0
    info = json.loads((tmp_path / "ix" / "index.json").read_text())
    assert info["n_docs"] == len(DOCS) and info["n_passages"] == 6 and info["skipped_records"] == 1
    with open_index(tmp_path / "ix") as index:
        assert index.count_cooccurrence([("Q1", "Q2"), ("Q3", "Q7")]) == [2, 1]
        assert index.search("word", 5)[0].doc_id.startswith("e")
    capsys.readouterr()
    assert main(["index", "--corpus", str(corpus), "--out", str(tmp_path / "e"), "--executor", "ray"]) == 2
    assert "--executor ray bulk-loads into Elasticsearch" in capsys.readouterr().err


def test_ray_ingestion_names_the_failed_ids(ray_local, noida_url, names, tmp_path):
    from elasticsearch import Elasticsearch
    from tests.indexes.ix_testdata import write_corpus

    corpus, linked = write_corpus(tmp_path / "c", [("1", ["Q1"], "one"), ("2", ["Q1", "Q2"], "two"),
                                                   ("x3", ["Q2"], "three")])
    client = Elasticsearch(noida_url, request_timeout=30)
    # an index whose doc_id field only takes numbers: the worker's bulk request rejects "x3" only
    client.indices.create(index=names[0], mappings={
        "_meta": {"ltprobe_format": 1, "kind": "documents"},
        "properties": {"doc_id": {"type": "long"}, "entities": {"type": "keyword"}, "seq": {"type": "long"},
                       "text": {"type": "text"}}})
    with pytest.raises(InputError) as info:
        build_index(corpus, linked, tmp_path / "ix", backend="elasticsearch", es_url=noida_url,
                    es_index=names[0], executor="ray", workers=2, progress=False)
    assert str(info.value).startswith(f"1 documents failed to index into '{names[0]}'")
    assert (tmp_path / "ix" / "failed_ids.txt").read_text().startswith("x3\t")
    client.indices.refresh(index=names[0])
    assert client.count(index=names[0])["count"] == 2
    client.close()
