"""The Elasticsearch backend against a real ES-API server (noida-db on 127.0.0.1, or ES_URL):
faults, re-runs, versions, credentials, phrase counting, and identical counts to the embedded
backend on the generated world."""

from __future__ import annotations

import json
import socket
import time

import pytest

from entity_linking.io import InputError
from indexes import ElasticsearchIndex, PhraseCounts, build_index, count_qa, open_index
from indexes.elastic._client import _config, connect, safe_url
from tests.indexes.ix_testdata import DOCS, write_corpus, write_linked


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # nothing listens there once the socket is closed


def test_unreachable_server_retries_then_one_clear_error(monkeypatch):
    monkeypatch.setenv("ES_PASSWORD", "s3cret-pw")
    monkeypatch.setenv("ES_USERNAME", "elastic")
    url = f"http://127.0.0.1:{_closed_port()}"
    started = time.perf_counter()
    with pytest.raises(InputError) as info:
        ElasticsearchIndex.open(url, "corpus", attempts=3, backoff=0.05)
    assert time.perf_counter() - started >= 0.15  # waited 0.05 + 0.1 between the attempts
    message = str(info.value)
    assert message.startswith(f"cannot reach Elasticsearch at {url} after 3 attempts")
    assert "s3cret-pw" not in message and "\n" not in message


def test_server_lost_mid_way_is_one_clear_error():
    from elasticsearch import Elasticsearch

    url = f"http://127.0.0.1:{_closed_port()}"
    index = ElasticsearchIndex(Elasticsearch(url, max_retries=2, retry_on_timeout=True), url, "corpus")
    with pytest.raises(InputError, match=f"Elasticsearch at {url} stopped answering .* re-run"):
        index.count_cooccurrence([("Q1", "Q2")])
    with pytest.raises(InputError, match="stopped answering"):
        index.search("who", 3)
    index.close()


def test_credentials_never_in_the_url():
    with pytest.raises(InputError, match="must not contain credentials"):
        connect("https://elastic:pw@localhost:9200")
    assert safe_url("https://elastic:pw@example.org:9200/") == "https://example.org:9200/"
    with pytest.raises(InputError, match="expected http"):
        connect("localhost:9200")


def test_credentials_from_environment_or_config_file(tmp_path, monkeypatch):
    for var in ("ES_API_KEY", "ES_USERNAME", "ES_PASSWORD", "ES_CA_CERTS", "ES_VERIFY_CERTS", "LTPROBE_ES_CONFIG"):
        monkeypatch.delenv(var, raising=False)
    config = tmp_path / "es.yaml"
    config.write_text("username: reader\npassword: from-file\nverify_certs: false\nca_certs: /etc/ca.pem\n")
    assert _config(config) == {"username": "reader", "password": "from-file", "verify_certs": False,
                               "ca_certs": "/etc/ca.pem"}
    monkeypatch.setenv("LTPROBE_ES_CONFIG", str(config))
    monkeypatch.setenv("ES_API_KEY", "key-from-env")
    monkeypatch.setenv("ES_VERIFY_CERTS", "true")
    settings = _config(None)
    assert settings["api_key"] == "key-from-env" and settings["verify_certs"] is True
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(InputError, match="not a readable config file"):
        _config(tmp_path / "bad.json")


@pytest.fixture(params=[pytest.param("noida", marks=pytest.mark.slow), "es_url"])
def es_url(request):
    import os

    from tests.indexes.ix_testdata import es_url_for

    if request.param == "es_url" and not os.environ.get("ES_URL"):
        pytest.skip("set ES_URL to run against a real Elasticsearch cluster")
    return es_url_for(request.param, request)


@pytest.fixture
def es_name(es_url):
    from tests.indexes.ix_testdata import delete_es_indices, new_index_name

    name = new_index_name()
    yield name
    delete_es_indices(es_url, name, f"{name}-passages", f"{name}-text")


def _client(url):
    from elasticsearch import Elasticsearch

    return Elasticsearch(url, request_timeout=30)


def test_partial_bulk_failure_names_the_failed_ids(es_url, es_name, tmp_path):
    docs = [("1", ["Q1"], "one"), ("2", ["Q1", "Q2"], "two"), ("x3", ["Q2"], "three")]
    corpus, linked = write_corpus(tmp_path / "c", docs)
    client = _client(es_url)
    # An index whose doc_id field only takes numbers: the document "x3" is rejected, the rest not.
    client.indices.create(index=es_name, mappings={
        "_meta": {"ltprobe_format": 1, "kind": "documents"},
        "properties": {"doc_id": {"type": "long"}, "entities": {"type": "keyword"}, "seq": {"type": "long"},
                       "text": {"type": "text"}}})
    with pytest.raises(InputError) as info:
        build_index(corpus, linked, tmp_path / "ix", backend="elasticsearch", es_url=es_url,
                    es_index=es_name, progress=False)
    message = str(info.value)
    assert message.startswith(f"1 documents failed to index into '{es_name}'") and "x3" in message
    assert "re-run the same command" in message
    assert (tmp_path / "ix" / "failed_ids.txt").read_text().startswith("x3\t")
    assert not (tmp_path / "ix" / "index.json").exists()
    client.indices.refresh(index=es_name)
    assert client.count(index=es_name)["count"] == 2
    client.close()


def test_rerun_completes_the_index_without_duplicates(es_url, es_name, tmp_path):
    corpus, linked = write_corpus(tmp_path / "c", DOCS)
    kwargs = dict(backend="elasticsearch", es_url=es_url, es_index=es_name, progress=False)
    build_index(corpus, linked, tmp_path / "ix", **kwargs)
    client = _client(es_url)
    client.delete(index=es_name, id="d4", refresh=True)  # as if its bulk item had failed
    assert client.count(index=es_name)["count"] == len(DOCS) - 1
    info = build_index(corpus, linked, tmp_path / "ix", **kwargs)
    client.indices.refresh(index=es_name)
    assert client.count(index=es_name)["count"] == len(DOCS) == info["n_docs"]
    client.close()
    with open_index(tmp_path / "ix") as index:
        assert index.count_cooccurrence([("Q1", "Q2"), ("Q3", "Q7")]) == [2, 1]
        assert index.doc_freq("Q3") == 4


def test_index_of_another_version_or_tool_is_refused(es_url, es_name):
    client = _client(es_url)
    client.indices.create(index=es_name, mappings={"_meta": {"ltprobe_format": 99},
                                                   "properties": {"entities": {"type": "keyword"}}})
    client.indices.create(index=f"{es_name}-text", mappings={"properties": {"text": {"type": "text"}}})
    client.close()
    with pytest.raises(InputError, match=f"'{es_name}' .* has ltprobe format 99"):
        open_index(es_url=es_url, es_index=es_name)
    with pytest.raises(InputError, match="not written by ltprobe.*--phrases"):
        open_index(es_url=es_url, es_index=f"{es_name}-text")
    with pytest.raises(InputError, match="no index 'nope-"):
        open_index(es_url=es_url, es_index=f"nope-{es_name}")


def test_phrase_counts_on_an_existing_text_index(es_url, es_name):
    """WIMBD-style counting on a corpus index written by another tool: any alias, as a phrase."""
    from elasticsearch.helpers import bulk

    texts = {
        "a": "Ada Lovelace met Charles Babbage in London.",
        "b": "Lady Lovelace wrote notes; Babbage read them.",
        "c": "Charles Dickens lived in London.",
        "d": "Lovelace Ada is not the same phrase; London.",
        "e": "The analytical engine of Babbage.",
    }
    name = f"{es_name}-text"
    client = _client(es_url)
    client.indices.create(index=name, mappings={"properties": {"body": {"type": "text"}}})
    bulk(client, ({"_index": name, "_id": k, "_source": {"body": v}} for k, v in texts.items()), refresh=True)
    client.close()
    aliases = {"ada": ["Ada Lovelace", "Lady Lovelace"], "babbage": ["Charles Babbage", "Babbage"],
               "london": ["London"], "nobody": []}
    index = PhraseCounts(ElasticsearchIndex.open(es_url, name, require_ltprobe=False), aliases, field="body")

    def contains(text, entity):
        words = " ".join(text.lower().replace(".", " ").replace(";", " ").split())
        return any(f" {a.lower()} " in f" {words} " for a in aliases[entity])

    by_hand = {e: {k for k, t in texts.items() if contains(t, e)} for e in aliases}
    assert by_hand["ada"] == {"a", "b"}
    assert index.doc_freqs(list(aliases)) == [len(by_hand[e]) for e in aliases]
    pairs = [("ada", "babbage"), ("ada", "london"), ("babbage", "london"), ("ada", "nobody")]
    assert index.count_cooccurrence(pairs) == [len(by_hand[a] & by_hand[b]) for a, b in pairs]
    rows = count_qa(index, [{"id": "q", "q_entities": ["ada"], "a_entities": ["london", "babbage"]}])
    assert rows[0]["count"] == 2 and rows[0]["pair"] == ["ada", "babbage"] and rows[0]["a_count"] == 3
    assert sorted(index.docs_with(["ada", "babbage"])) == ["a", "b"]
    assert index.get_text("c") == texts["c"]
    index.close()


def test_both_backends_count_the_world_identically(tiny_world, es_url, es_name, tmp_path):
    docs = [json.loads(line) for line in (tiny_world / "corpus.jsonl").read_text().splitlines()]
    linked = write_linked(tmp_path / "linked", [(d["id"], d["entities"]) for d in docs], shard_size=1000)
    corpus = tiny_world / "corpus.jsonl"
    build_index(corpus, linked, tmp_path / "embedded", progress=False)
    build_index(corpus, linked, tmp_path / "es", backend="elasticsearch", es_url=es_url, es_index=es_name,
                passages=tiny_world / "encyclopedia.jsonl", es_workers=2, progress=False)
    qa = [json.loads(line) for line in (tiny_world / "qa.jsonl").read_text().splitlines()]
    records = [{"id": q["id"], "q_entities": [q["q_entity"]], "a_entities": [q["a_entity"], "ctry_001"]}
               for q in qa]
    with open_index(tmp_path / "embedded") as embedded, open_index(tmp_path / "es") as es:
        ours = count_qa(embedded, records, stoplist={"ctry_001"}, stoplist_sides="both")
        theirs = count_qa(es, records, stoplist={"ctry_001"}, stoplist_sides="both")
        assert ours == theirs
        truth = {r["id"]: r["count"] for r in map(json.loads, (tiny_world / "truth.jsonl").read_text().splitlines())}
        assert {r["id"]: r["count"] for r in theirs} == truth
        person = qa[0]["question"].split(" was ")[-1].replace(" born?", "")
        hits = es.search(f"Where was {person} born?", 3)
        assert hits and hits[0].doc_id.startswith("enc_")


def test_command_line_with_elasticsearch(es_url, es_name, tmp_path, capsys):
    from tests.indexes.ix_testdata import QA

    from probe.cli import main

    corpus, linked = write_corpus(tmp_path / "c", DOCS)
    qa = tmp_path / "qa_entities.jsonl"
    qa.write_text("".join(json.dumps(r) + "\n" for r in QA))
    assert main(["index", "--corpus", str(corpus), "--linked", str(linked), "--out", str(tmp_path / "ix"),
                 "--backend", "elasticsearch", "--es-url", es_url, "--es-index", es_name,
                 "--es-shards", "2", "--es-workers", "2"]) == 0
    assert json.loads((tmp_path / "ix" / "index.json").read_text())["shards"] == 2
    outputs = []
    for source in (["--index", str(tmp_path / "ix")], ["--es-url", es_url, "--es-index", es_name]):
        out = tmp_path / "counts.jsonl"
        assert main(["count", *source, "--qa-entities", str(qa), "--out", str(out)]) == 0
        outputs.append(out.read_text())
    assert outputs[0] == outputs[1] and json.loads(outputs[0].splitlines()[0])["count"] == 2
    capsys.readouterr()
    assert main(["docs", "qa1", "--es-url", es_url, "--es-index", es_name, "--qa-entities", str(qa)]) == 0
    assert "[d4]" in capsys.readouterr().out
    assert main(["count", "--es-url", es_url, "--qa-entities", str(qa), "--out", str(tmp_path / "x")]) == 2
    assert "give both --es-url and --es-index" in capsys.readouterr().err
