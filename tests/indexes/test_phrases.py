"""Alias-phrase counts: the one phrase definition, the infini-gram backend against a brute-force
scan (local byte-level indexes built with infini-gram's own indexer), its cost cap and window
mode, the embedded backend's --phrases, and the three backends agreeing on one corpus."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytest.importorskip("infini_gram")

from indexes import build_index, count_qa, open_index  # noqa: E402
from indexes._phrases import case_variants, occurs_at, phrase_at, words  # noqa: E402
from indexes.infinigram import InfiniGramIndex, build_infinigram_index
from indexes.infinigram._build import phrase_corpus, write_jsonl_plain
from tests.paths import REPO


def brute_force(docs: list[dict], aliases: dict[str, list[str]]) -> dict[str, set[int]]:
    """Document numbers per entity by the definition, the slow way: every word n-gram of every
    document compared with every alias."""
    keys = {e: [tuple(words(n)) for n in names if words(n)] for e, names in aliases.items()}
    found: dict[str, set[int]] = {e: set() for e in aliases}
    for d, doc in enumerate(docs):
        ws = words(doc["text"])
        for e, phrases in keys.items():
            if any(tuple(ws[i:i + len(k)]) == k for k in phrases for i in range(len(ws) - len(k) + 1)):
                found[e].add(d)
    return found


def test_words_follow_the_standard_tokenizer():
    # Lucene/Elasticsearch standard tokenizer + lowercase (checked against an ES-API server too)
    text = "O'Brien's Zoë 3.14 U.S.A. a_b 北京 Jean-Paul x.org 1,000 a.1 Jones' book カタカナ ひら"
    assert words(text) == ["o'brien's", "zoë", "3.14", "u.s.a", "a_b", "北", "京", "jean", "paul",
                           "x.org", "1,000", "a", "1", "jones", "book", "カタカナ", "ひ", "ら"]
    assert occurs_at("the cat sat", 4, 7, ("cat",))
    assert not occurs_at("the category", 4, 7, ("cat",))
    assert not occurs_at("Ada's notes", 0, 3, ("ada",))
    assert not occurs_at("Mr O'Brien", 5, 10, ("brien",))
    assert occurs_at("Jean-Paul Sartre", 0, 16, ("jean", "paul", "sartre"))
    key = ("jean", "paul", "sartre")
    assert phrase_at("by Jean-Paul Sartre.", 8, 12, key, 1)  # "Paul", any separator before it
    assert phrase_at("by JEAN PAUL\nSartre.", 3, 12, key, 0)  # "JEAN PAUL", two words
    assert not phrase_at("by Jean-Paul Sartres.", 8, 12, key, 1)
    assert not phrase_at("by Jean-Pauline Sartre.", 8, 12, key, 1)
    assert case_variants("São Paulo") == ["São Paulo", "são paulo", "SÃO PAULO"]


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ig")
    docs, aliases = phrase_corpus(600, 60, seed=3)
    corpus = folder / "corpus.jsonl"
    write_jsonl_plain(corpus, docs)
    index_dir = build_infinigram_index(corpus, folder / "index")
    return folder, docs, aliases, index_dir


def test_infinigram_document_counts_equal_a_brute_force_scan(generated):
    _, docs, aliases, index_dir = generated
    truth = brute_force(docs, aliases)
    ids = list(aliases)
    with InfiniGramIndex(index_dir, aliases) as index:
        assert index.n_docs == len(docs)
        assert index.doc_freqs(ids) == [len(truth[e]) for e in ids]
        pairs = [(a, b) for i, a in enumerate(ids) for b in ids[i + 1:i + 8]]
        assert index.count_cooccurrence(pairs) == [len(truth[a] & truth[b]) for a, b in pairs]
        assert not any(index.pair_approx(p) for p in pairs)
        # the hard cases are present and handled: names inside words, possessives, shared names
        assert truth["cat"] and truth["brien"] != truth["obrien"]
        assert truth["paris_city"] <= truth["paris_hilton"]
        assert index.docs_with(["ada", "cat"]) == [docs[d]["id"] for d in sorted(truth["ada"] & truth["cat"])]
        assert index.get_text("doc5") == docs[5]["text"]


def test_cost_cap_scans_documents_then_falls_back_to_the_engine_estimate(generated):
    _, docs, aliases, index_dir = generated
    truth = brute_force(docs, aliases)
    by_size = sorted(aliases, key=lambda e: len(truth[e]))
    rare = next(e for e in by_size if len(truth[e]) >= 2)
    big, big2 = by_size[-1], by_size[-2]
    cap = len(truth[rare]) * 2 + 5  # the rare entity's hits fit, the frequent ones' do not
    assert len(truth[big2]) > cap
    with InfiniGramIndex(index_dir, aliases, max_occurrences=cap) as index:
        # one side above the cap: the rarer side's documents are scanned, still exact
        assert index.count_cooccurrence([(rare, big)]) == [len(truth[rare] & truth[big])]
        assert not index.pair_approx((rare, big))
        # both above the cap: the engine's window AND estimate, flagged
        [estimate] = index.count_cooccurrence([(big, big2)])
        assert index.pair_approx((big, big2))
        assert estimate == index.window_count(big, big2)[0]
        rows = count_qa(index, [{"id": "q", "q_entities": [big], "a_entities": [big2]}])
        assert rows[0]["approx"] is True and rows[0]["q_count_approx"] is True
        assert rows[0]["mode"] == "document" and rows[0]["count"] == estimate
    with InfiniGramIndex(index_dir, aliases, max_occurrences=cap, max_check_docs=0) as index:
        assert index.pair_approx((rare, big))  # no document scans allowed


def test_window_mode_is_the_engines_own_and(generated):
    _, docs, aliases, index_dir = generated
    with InfiniGramIndex(index_dir, aliases, max_diff_tokens=5) as index:
        rows = count_qa(index, [{"id": "q", "q_entities": ["ada"], "a_entities": ["cat"]}])
        expected = index.engine.count_cnf(
            [[list(v.encode()) for n in aliases["ada"] for v in case_variants(n)],
             [list(v.encode()) for n in aliases["cat"] for v in case_variants(n)]], max_diff_tokens=5)
        assert rows[0]["count"] == expected["count"]
        assert rows[0]["mode"] == "window" and rows[0]["max_diff_tokens"] == 5
        occurrences = index.engine.count_cnf(
            [[list(v.encode()) for n in aliases["cat"] for v in case_variants(n)]])["count"]
        assert rows[0]["a_count"] == occurrences  # occurrences, "category" included: the engine's own
        assert occurrences > len(brute_force(docs, {"cat": aliases["cat"]})["cat"])


def test_three_backends_count_the_same_documents(generated, noida_url, tmp_path):
    """Embedded --phrases, Elasticsearch match_phrase (an ES-API server) and infini-gram: equal."""
    from elasticsearch import Elasticsearch
    from elasticsearch.helpers import bulk
    from tests.indexes.ix_testdata import delete_es_indices, new_index_name

    from indexes import open_phrase_index

    folder, docs, aliases, index_dir = generated
    build_index(folder / "corpus.jsonl", None, tmp_path / "embedded", progress=False)
    name = new_index_name()
    client = Elasticsearch(noida_url)
    client.indices.create(index=name, mappings={"properties": {"text": {"type": "text"}}})
    bulk(client, ({"_index": name, "_id": d["id"], "_source": {"text": d["text"]}} for d in docs), refresh=True)
    client.close()
    ids = list(aliases)[:24]  # the hard names come first; the ES-API server answers ~15 phrase queries/s
    records = [{"id": f"q{i}", "q_entities": [a], "a_entities": [b, ids[(i * 7) % len(ids)]]}
               for i, (a, b) in enumerate(zip(ids, ids[1:] + ids[:1]))]
    truth = brute_force(docs, aliases)
    try:
        results = {}
        for kind, kwargs in (("embedded", {"index": str(tmp_path / "embedded")}),
                             ("es", {"es_url": noida_url, "es_index": name}),
                             ("infini-gram", {"infini_gram": str(index_dir)})):
            with open_phrase_index(aliases, **kwargs) as index:
                results[kind] = [{k: r[k] for k in ("id", "count", "q_count", "a_count", "pair", "status")}
                                 for r in count_qa(index, records)]
        assert results["embedded"] == results["es"] == results["infini-gram"]
        assert [r["q_count"] for r in results["embedded"]] == [len(truth[r["q_entities"][0]]) for r in records]
    finally:
        delete_es_indices(noida_url, name)


def test_count_cli_writes_the_contract_shape_plus_approx(generated, tmp_path):
    folder, _, aliases, index_dir = generated
    kb = tmp_path / "kb.jsonl"
    write_jsonl_plain(kb, [{"id": e, "name": names[0], "aliases": names[1:]} for e, names in aliases.items()])
    qa = tmp_path / "qa_entities.jsonl"
    write_jsonl_plain(qa, [{"id": "1", "q_entities": ["ada"], "a_entities": ["cat"]},
                           {"id": "2", "q_entities": [], "a_entities": ["cat"]}])
    out = tmp_path / "counts.jsonl"
    env = {"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-m", "probe.cli", "count", "--infini-gram", str(index_dir),
                           "--kb", str(kb), "--qa-entities", str(qa), "--out", str(out)],
                          capture_output=True, text=True, env=env, cwd=REPO)
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert {"id", "count", "q_count", "a_count", "pair", "status", "approx", "mode"} <= set(rows[0])
    assert rows[0]["status"] == "ok" and rows[0]["approx"] is False and rows[1]["status"] == "no_q_entity"
    done = subprocess.run([sys.executable, "-m", "probe.cli", "count", "--infini-gram", str(tmp_path),
                           "--kb", str(kb), "--qa-entities", str(qa), "--out", str(out)],
                          capture_output=True, text=True, env=env, cwd=REPO)
    assert done.returncode != 0 and "not an infini-gram index" in done.stderr
    assert "Traceback" not in done.stderr


def test_embedded_phrases_and_the_comparison_report(tmp_path):
    """Linked counts vs phrase counts on one corpus: a pronoun mention only linking counts, a
    shared name only phrases count; the report shows both, with the documents behind them."""
    from tests.indexes.ix_testdata import write_corpus

    docs = [
        ("d1", ["marie", "warsaw"], "Marie Curie was born in Warsaw."),
        ("d2", ["marie", "warsaw"], "She was born in Warsaw, the capital."),  # pronoun: linked only
        ("d3", ["pierre", "warsaw"], "Pierre Curie visited Warsaw; Curie liked it."),  # 'Curie': phrase only
        ("d4", ["marie", "paris"], "Marie Curie moved to Paris."),
        ("d5", ["paris"], "Paris is large."),
    ]
    corpus, linked = write_corpus(tmp_path / "c", docs)
    build_index(corpus, linked, tmp_path / "index", progress=False)
    kb = tmp_path / "kb.jsonl"
    write_jsonl_plain(kb, [{"id": "marie", "name": "Marie Curie", "aliases": ["Curie"]},
                           {"id": "pierre", "name": "Pierre Curie", "aliases": []},
                           {"id": "warsaw", "name": "Warsaw", "aliases": []},
                           {"id": "paris", "name": "Paris", "aliases": []}])
    qa = tmp_path / "qa_entities.jsonl"
    write_jsonl_plain(qa, [{"id": "1", "q_entities": ["marie"], "a_entities": ["warsaw"]},
                           {"id": "2", "q_entities": ["marie"], "a_entities": ["paris"]},
                           {"id": "3", "q_entities": ["pierre"], "a_entities": ["warsaw"]}])
    questions = tmp_path / "qa.jsonl"
    write_jsonl_plain(questions, [{"id": "1", "question": "Where was Marie Curie born?", "answers": ["Warsaw"]},
                                  {"id": "2", "question": "Where did Marie Curie move?", "answers": ["Paris"]},
                                  {"id": "3", "question": "Which city did Pierre Curie visit?", "answers": ["Warsaw"]}])
    env = {"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}

    def cli(*args):
        done = subprocess.run([sys.executable, "-m", "probe.cli", *map(str, args)], capture_output=True,
                              text=True, env=env, cwd=REPO)
        assert done.returncode == 0, done.stderr
        return done.stdout

    cli("count", "--index", tmp_path / "index", "--qa-entities", qa, "--out", tmp_path / "linked.jsonl")
    cli("count", "--index", tmp_path / "index", "--phrases", "--kb", kb, "--qa-entities", qa,
        "--out", tmp_path / "phrases.jsonl")
    linked_rows = [json.loads(line) for line in (tmp_path / "linked.jsonl").read_text().splitlines()]
    phrase_rows = [json.loads(line) for line in (tmp_path / "phrases.jsonl").read_text().splitlines()]
    assert [r["count"] for r in linked_rows] == [2, 1, 1]
    assert [r["count"] for r in phrase_rows] == [2, 1, 1]  # d2 lost (pronoun), d3 gained ('Curie')
    with open_index(tmp_path / "index") as index:
        from indexes import EmbeddedPhraseCounts, load_aliases

        view = EmbeddedPhraseCounts(open_index(tmp_path / "index"), load_aliases(str(kb)))
        assert view.docs_with(["marie", "warsaw"]) == ["d1", "d3"]
        assert index.docs_with(["marie", "warsaw"]) == ["d1", "d2"]
        view.close()
    last = cli("compare-counts", tmp_path / "linked.jsonl", tmp_path / "phrases.jsonl", "--out", tmp_path / "cmp",
               "--qa", questions, "--index", tmp_path / "index", "--kb", kb, "--label-a", "linked",
               "--label-b", "phrases").strip().splitlines()[-1]
    summary = json.loads(last)
    assert summary["n_both"] == 3 and summary["equal"] == 3 and summary["spearman"] == 1.0
    report = (tmp_path / "cmp" / "report.md").read_text()
    assert "Where was Marie Curie born?" in report
    assert "[d2] She was born in Warsaw" in report and "[d3] Pierre Curie visited Warsaw" in report
    assert (tmp_path / "cmp" / "scatter.png").stat().st_size > 1000
    assert "<img src=\"scatter.png\"" in (tmp_path / "cmp" / "report.html").read_text()


def test_subword_token_index_counts_equal_a_brute_force_scan(generated, tmp_path):
    """A u16 index tokenized with a byte-level BPE trained here (offline), as the prebuilt
    Llama/GPT-2/OLMo indexes are tokenized: names looked up with and without a leading space."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from indexes.infinigram._build import build_tokenized_index

    _, docs, aliases, _ = generated
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator((d["text"] for d in docs), trainers.BpeTrainer(
        vocab_size=600, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False))
    PreTrainedTokenizerFast(tokenizer_object=bpe).save_pretrained(tmp_path / "tok")
    index_dir = build_tokenized_index(docs, tmp_path / "index", tmp_path / "tok")
    truth = brute_force(docs, aliases)
    ids = list(aliases)
    with InfiniGramIndex(index_dir, aliases, tokenizer=str(tmp_path / "tok")) as index:
        assert index.token_dtype == "u16" and index.n_docs == len(docs)
        assert index.doc_freqs(ids) == [len(truth[e]) for e in ids]
        pairs = [(a, b) for i, a in enumerate(ids) for b in ids[i + 1:i + 5]]
        assert index.count_cooccurrence(pairs) == [len(truth[a] & truth[b]) for a, b in pairs]
        assert index.get_text("doc7") == docs[7]["text"]


def test_bench_count_infini_gram_prints_one_json_line(tmp_path):
    env = {"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-m", "probe.cli", "bench", "count", "--backend", "infini-gram",
                           "--docs", "400", "--qa", "40", "--entities", "40", "--dir", str(tmp_path)],
                          capture_output=True, text=True, env=env, cwd=REPO)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["docs"] == 400 and result["counts_per_s"] > 0 and result["engine_window_counts_per_s"] > 0
    assert result["approx_pairs"] == 0 and 0 < result["qa_pairs"] <= 40
