"""`ltprobe index`, `count`, `docs` and the two benchmarks, through the real command line."""

from __future__ import annotations

import json

import pytest

from probe.cli import main
from tests.indexes.ix_testdata import DOCS, QA, write_corpus
from tests.paths import SHARED


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli")
    corpus, linked = write_corpus(folder / "c", DOCS)
    qa = folder / "qa_entities.jsonl"
    qa.write_text("".join(json.dumps(r) + "\n" for r in QA))
    assert main(["index", "--corpus", str(corpus), "--linked", str(linked), "--out", str(folder / "ix")]) == 0
    return folder


def test_count_writes_the_contract_shape(built, capsys):
    out = built / "counts.jsonl"
    assert main(["count", "--index", str(built / "ix"), "--qa-entities", str(built / "qa_entities.jsonl"),
                 "--out", str(out)]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in rows] == [q["id"] for q in QA]
    assert all(set(r) == {"id", "count", "q_count", "a_count", "pair", "status"} for r in rows)
    assert rows[0]["count"] == 2 and rows[2]["status"] == "no_q_entity"
    assert "wrote 6 counts" in capsys.readouterr().err


def test_docs_prints_ids_and_text(built, capsys):
    args = ["docs", "qa1", "--index", str(built / "ix"), "--qa-entities", str(built / "qa_entities.jsonl")]
    assert main(args + ["--chars", "20"]) == 0
    printed = capsys.readouterr().out
    assert "2 documents contain both Q1 and Q2" in printed
    assert "[d1]\nAda Lovelace wrote t ..." in printed and "[d4]" in printed
    assert main(args + ["--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert [d["id"] for d in result["docs"]] == ["d1", "d4"]
    assert main(["docs", "qa3"] + args[2:]) == 0
    assert "no_q_entity" in capsys.readouterr().out
    assert main(["docs", "nope"] + args[2:]) == 2
    assert "no QA pair with id 'nope'" in capsys.readouterr().err


def test_counts_only_index_from_the_command_line(built, tmp_path, capsys):
    corpus, linked = write_corpus(tmp_path / "c", DOCS)
    assert main(["index", "--corpus", str(corpus), "--linked", str(linked), "--out", str(tmp_path / "ix"),
                 "--counts-only"]) == 0
    assert "and 0 passages" in capsys.readouterr().err
    for ix in (built / "ix", tmp_path / "ix"):
        assert main(["count", "--index", str(ix), "--qa-entities", str(built / "qa_entities.jsonl"),
                     "--out", str(ix.parent / f"{ix.parent.name}.counts.jsonl")]) == 0
    assert (built / f"{built.name}.counts.jsonl").read_text() == (tmp_path / f"{tmp_path.name}.counts.jsonl").read_text()
    args = ["docs", "qa1", "--index", str(tmp_path / "ix"), "--qa-entities", str(built / "qa_entities.jsonl")]
    assert main(args + ["--json"]) == 0
    assert [d["id"] for d in json.loads(capsys.readouterr().out)["docs"]] == ["d1", "d4"]  # ids, no text


def test_user_errors_are_one_line_with_exit_2(built, tmp_path, capsys):
    bad = tmp_path / "qa.jsonl"
    bad.write_text(json.dumps(QA[0]) + "\n" + '{"id": "x", "q_entities": "Q1", "a_entities": []}\n')
    args = ["count", "--index", str(built / "ix"), "--qa-entities", str(bad), "--out", str(tmp_path / "c.jsonl")]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]  # after any progress bar
    assert err == f"ltprobe: error: {bad}:2: field 'q_entities' must be a list of entity id strings"
    assert not (tmp_path / "c.jsonl").exists()
    assert main(args + ["--on-error", "skip"]) == 0
    assert "skipped 1 bad record" in capsys.readouterr().err
    assert len((tmp_path / "c.jsonl").read_text().splitlines()) == 1
    assert main(["count", "--index", str(tmp_path), "--qa-entities", str(bad), "--out", "x"]) == 2
    assert "not an ltprobe index" in capsys.readouterr().err
    assert main(["count", "--qa-entities", str(bad), "--out", "x"]) == 2
    assert "no index given" in capsys.readouterr().err


def test_stoplist_of_the_original_study(tmp_path):
    """The 184 countries the original study left out, as a stop-list file of DBpedia URIs."""
    stoplist = SHARED / "data" / "country_entities_dbpedia_uris.txt"
    if not stoplist.exists():
        pytest.skip("shared data not present")
    france, curie = "http://dbpedia.org/resource/France", "http://dbpedia.org/resource/Marie_Curie"
    paris = "http://dbpedia.org/resource/Paris"
    docs = [("a", [curie, france, paris], "Marie Curie worked in Paris, France."),
            ("b", [curie, france], "Curie became a French citizen."), ("c", [france], "France.")]
    corpus, linked = write_corpus(tmp_path / "c", docs)
    qa = tmp_path / "qa.jsonl"
    qa.write_text(json.dumps({"id": "1", "q_entities": [curie], "a_entities": [france, paris]}) + "\n"
                  + json.dumps({"id": "2", "q_entities": [curie], "a_entities": [france]}) + "\n")
    assert main(["index", "--corpus", str(corpus), "--linked", str(linked), "--out", str(tmp_path / "ix")]) == 0
    # the original removes countries from the question side only: France stays an answer
    for extra, expected in (([], [(2, "ok"), (2, "ok")]),
                            (["--stoplist", str(stoplist)], [(2, "ok"), (2, "ok")]),
                            (["--stoplist", "countries"], [(2, "ok"), (2, "ok")]),
                            (["--stoplist", "countries", "--stoplist-sides", "both"],
                             [(1, "ok"), (None, "no_a_entity")])):
        assert main(["count", "--index", str(tmp_path / "ix"), "--qa-entities", str(qa),
                     "--out", str(tmp_path / "counts.jsonl"), *extra]) == 0
        rows = [json.loads(line) for line in (tmp_path / "counts.jsonl").read_text().splitlines()]
        assert [(r["count"], r["status"]) for r in rows] == expected


@pytest.mark.parametrize("command", ["index", "count", "docs"])
def test_help_explains(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([command, "--help"])
    assert exit_.value.code == 0
    assert "usage: ltprobe " + command in capsys.readouterr().out


def _last_json(text: str) -> dict:
    return json.loads(text.strip().splitlines()[-1])


def test_bench_count_smoke(capsys):
    assert main(["bench", "count", "--docs", "3000", "--qa", "300"]) == 0
    out = capsys.readouterr().out
    result = _last_json(out)
    for key in ("counts_per_s", "baseline_counts_per_s", "ratio", "index_docs_per_s", "bytes_per_mention"):
        assert result[key] > 0, key
    assert result["counts_agree"] is True and result["n_docs"] == 3000
    assert "numpy baseline" in out.splitlines()[0]


def test_bench_retrieve_smoke(capsys):
    assert main(["bench", "retrieve", "--passages", "2000", "--queries", "50", "--reference-passages", "1000"]) == 0
    out = capsys.readouterr().out
    result = _last_json(out)
    assert result["queries_per_s"] > 0 and result["n_passages"] == 2000
    assert result["top10_overlap_vs_reference"] >= 0.9
    assert "bm25s reference" in out.splitlines()[0]


@pytest.mark.parametrize("command", ["index", "count"])
def test_help_says_how_to_set_the_elasticsearch_retries(command, capsys, tmp_path, monkeypatch):
    """The retry keys of the Elasticsearch config file are in the help, with an example that the
    client reads as the help says."""
    import re

    from indexes.elastic import _client

    with pytest.raises(SystemExit):
        main([command, "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for key in ("retries", "retry_backoff", "request_timeout", "--es-config"):
        assert key in text, key
    example = re.search(r"a file es\.yaml holding `([^`]+)`", text).group(1)
    (tmp_path / "es.yaml").write_text(example)
    for var in ("ES_API_KEY", "ES_USERNAME", "ES_PASSWORD", "ES_CA_CERTS", "ES_VERIFY_CERTS"):
        monkeypatch.delenv(var, raising=False)
    assert _client._config(tmp_path / "es.yaml") == {"retries": 10, "retry_backoff": 1.0, "request_timeout": 120.0}
