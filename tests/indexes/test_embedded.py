"""The embedded backend: building, refusing bad input, opening fast, exact counts on real data."""

from __future__ import annotations

import gzip
import itertools
import json
import math
import time

import pytest

from entity_linking.io import InputError
from indexes import build_index, count_qa, open_index, split_passages
from indexes.embedded import write_strings
from indexes.embedded._strings import StringTable
from tests.indexes.ix_testdata import DOCS, alias_linker, write_corpus, write_linked
from tests.paths import SHARED


def test_split_passages_about_n_words():
    assert split_passages("") == []
    assert split_passages("one two three", 100) == ["one two three"]
    words = [f"w{i}" for i in range(260)]
    parts = split_passages(" ".join(words), 100)
    assert len(parts) == 3 and [len(p.split()) for p in parts] == [87, 87, 86]
    assert " ".join(parts).split() == words  # nothing lost, order kept
    assert [len(p.split()) for p in split_passages(" ".join(words[:140]), 100)] == [140]


def test_passages_keep_their_document_id(tmp_path):
    long_text = " ".join(f"alpha{i}" for i in range(250)) + " zebracorn"
    corpus, linked = write_corpus(tmp_path / "c", [("long", ["Q1"], long_text), ("short", [], "tiny text")])
    build_index(corpus, linked, tmp_path / "ix", passage_words=100, progress=False)
    with open_index(tmp_path / "ix") as index:
        hit = index.search("zebracorn", 5)
        assert [(p.doc_id, p.passage_id) for p in hit] == [("long", "long#2")]  # 251 words: 3 passages
        assert index.info()["n_passages"] == 4


def test_separate_passage_collection(tmp_path):
    corpus, linked = write_corpus(tmp_path / "c", DOCS)
    encyclopedia = tmp_path / "encyclopedia.jsonl"
    encyclopedia.write_text(json.dumps({"id": "enc_1", "text": "Mary Somerville was a Scottish scientist."}) + "\n")
    build_index(corpus, linked, tmp_path / "ix", passages=encyclopedia, progress=False)
    with open_index(tmp_path / "ix") as index:
        assert [p.doc_id for p in index.search("Scottish scientist Somerville", 5)] == ["enc_1"]
        assert index.doc_freq("Q1") == 3  # counts still come from the corpus
        assert index.get_text("d2").startswith("Charles Babbage")


def test_gzip_corpus_and_opening_in_milliseconds(tmp_path):
    corpus, linked = write_corpus(tmp_path / "c", DOCS)
    gz = tmp_path / "corpus.jsonl.gz"
    gz.write_bytes(gzip.compress(corpus.read_bytes()))
    build_index(gz, linked, tmp_path / "ix", progress=False)
    started = time.perf_counter()
    index = open_index(tmp_path / "ix")
    assert time.perf_counter() - started < 0.5  # maps files; reads no postings
    assert index.count_cooccurrence([("Q1", "Q2")]) == [2]
    index.close()


def test_rebuild_replaces_the_index(tmp_path):
    corpus, linked = write_corpus(tmp_path / "c", DOCS)
    build_index(corpus, linked, tmp_path / "ix", progress=False)
    corpus2, linked2 = write_corpus(tmp_path / "c2", DOCS[:2])
    build_index(corpus2, linked2, tmp_path / "ix", progress=False)
    with open_index(tmp_path / "ix") as index:
        assert index.doc_freq("Q3") == 1 and index.get_text("d4") is None
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".ix.")]  # no temp folder left


def test_refuses_a_folder_that_is_not_an_index(tmp_path):
    corpus, linked = write_corpus(tmp_path / "c", DOCS)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(InputError, match="not an ltprobe index"):
        build_index(corpus, linked, tmp_path / "mine", progress=False)
    assert (tmp_path / "mine" / "notes.txt").exists()
    with pytest.raises(InputError, match="not an ltprobe index"):
        open_index(tmp_path / "mine")


def test_incompatible_version_is_refused(tmp_path):
    corpus, linked = write_corpus(tmp_path / "c", DOCS)
    build_index(corpus, linked, tmp_path / "ix", progress=False)
    info_path = tmp_path / "ix" / "index.json"
    info = json.loads(info_path.read_text())
    info["version"] = 99
    info_path.write_text(json.dumps(info))
    with pytest.raises(InputError, match=r"format version 99 .* rebuild it with `ltprobe index`"):
        open_index(tmp_path / "ix")


def test_duplicate_document_ids_are_refused(tmp_path):
    docs = DOCS[:2] + [("d1", ["Q9"], "again")]
    corpus, linked = write_corpus(tmp_path / "c", docs)
    with pytest.raises(InputError, match="'d1' occurs more than once"):
        build_index(corpus, linked, tmp_path / "ix", progress=False)
    assert not (tmp_path / "ix").exists()


def test_linked_folder_of_another_corpus_is_refused(tmp_path):
    corpus, _ = write_corpus(tmp_path / "c", DOCS)
    other = write_linked(tmp_path / "other", [("x1", ["Q1"])] + [(d, e) for d, e, _ in DOCS[1:]])
    with pytest.raises(InputError, match="belongs to another corpus"):
        build_index(corpus, other, tmp_path / "ix", progress=False)
    short = write_linked(tmp_path / "short", [(d, e) for d, e, _ in DOCS[:3]])
    with pytest.raises(InputError, match="ends after 3 documents"):
        build_index(corpus, short, tmp_path / "ix", progress=False)


def test_bad_corpus_record_fail_or_skip(tmp_path):
    corpus, linked = write_corpus(tmp_path / "c", DOCS)
    lines = corpus.read_text().splitlines()
    lines.insert(2, '{"id": "broken", "text": ')
    corpus.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError, match=r"corpus.jsonl:3: broken JSON"):
        build_index(corpus, linked, tmp_path / "ix", progress=False)
    info = build_index(corpus, linked, tmp_path / "ix", on_error="skip", progress=False)
    assert info["skipped_records"] == 1 and info["n_docs"] == len(DOCS)


def test_documents_without_id_get_file_and_line(tmp_path):
    corpus = tmp_path / "plain.jsonl"
    corpus.write_text('{"text": "first"}\n\n{"text": "second"}\n')
    linked = write_linked(tmp_path / "linked", [("plain.jsonl:1", ["Q1"]), ("plain.jsonl:3", ["Q1"])])
    build_index(corpus, linked, tmp_path / "ix", progress=False)
    with open_index(tmp_path / "ix") as index:
        assert index.docs_with(["Q1"]) == ["plain.jsonl:1", "plain.jsonl:3"]
        assert index.get_text("plain.jsonl:3") == "second"


def test_string_table_lookup_survives_hash_collisions(tmp_path, monkeypatch):
    import indexes.embedded._strings as strings

    words = ["Q1", "Q22", "Q333", "née", "Zürich", "x" * 700, ""]
    write_strings(tmp_path, "t", words)
    table = StringTable(tmp_path, "t")
    assert table.find_many(words + ["Q4", "nee"]) == list(range(len(words))) + [None, None]
    assert [table[i] for i in range(len(words))] == words
    table.close()
    # Every string hashing alike: the lookup must still compare the stored strings.
    monkeypatch.setattr(strings, "hash_strings", lambda s: __import__("numpy").zeros(len(s), dtype="uint64"))
    write_strings(tmp_path, "c", words)
    table = StringTable(tmp_path, "c")
    assert table.find_many(["Zürich", "Q1", "nope"]) == [4, 0, None]
    table.close()


def test_counts_equal_the_worlds_true_counts(tiny_world, tmp_path):
    """On the generated world, with its gold links as the linked corpus, every count is the
    world's true count (truth.jsonl): the index counts exactly what it should."""
    docs = [json.loads(line) for line in (tiny_world / "corpus.jsonl").read_text().splitlines()]
    linked = write_linked(tmp_path / "linked", [(d["id"], d["entities"]) for d in docs], shard_size=500)
    build_index(tiny_world / "corpus.jsonl", linked, tmp_path / "ix", progress=False)
    qa = [json.loads(line) for line in (tiny_world / "qa.jsonl").read_text().splitlines()]
    truth = {r["id"]: r["count"] for r in map(json.loads, (tiny_world / "truth.jsonl").read_text().splitlines())}
    records = [{"id": q["id"], "q_entities": [q["q_entity"]], "a_entities": [q["a_entity"]]} for q in qa]
    with open_index(tmp_path / "ix") as index:
        counts = count_qa(index, records)
    assert {c["id"]: c["count"] for c in counts} == truth
    assert any(c["count"] == 0 for c in counts) and max(c["count"] for c in counts) > 10


def test_counts_only_index_counts_the_same_in_a_fraction_of_the_space(tiny_world, tmp_path):
    docs = [json.loads(line) for line in (tiny_world / "corpus.jsonl").read_text().splitlines()]
    linked = write_linked(tmp_path / "linked", [(d["id"], d["entities"]) for d in docs], shard_size=500)
    full = build_index(tiny_world / "corpus.jsonl", linked, tmp_path / "full", progress=False)
    slim = build_index(tiny_world / "corpus.jsonl", linked, tmp_path / "slim", progress=False, counts_only=True)
    assert slim["counts_only"] and not slim["has_text"] and slim["n_passages"] == 0 and full["n_passages"] > 0
    assert not (tmp_path / "slim" / "text.bin").exists() and not (tmp_path / "slim" / "passages").exists()
    size = {name: sum(p.stat().st_size for p in (tmp_path / name).rglob("*") if p.is_file()) for name in ("full", "slim")}
    assert size["slim"] < size["full"] / 4

    qa = [json.loads(line) for line in (tiny_world / "qa.jsonl").read_text().splitlines()]
    records = [{"id": q["id"], "q_entities": [q["q_entity"]], "a_entities": [q["a_entity"]]} for q in qa]
    with open_index(tmp_path / "full") as a, open_index(tmp_path / "slim") as b:
        assert count_qa(a, records) == count_qa(b, records)
        assert b.get_text(docs[0]["id"]) is None and a.get_text(docs[0]["id"]) == docs[0]["text"]
        with pytest.raises(InputError, match="no passages to search .* --counts-only .* rag.index"):
            b.search_many(["who"], 1)
    with pytest.raises(InputError, match="--counts-only writes no passages"):
        build_index(tiny_world / "corpus.jsonl", linked, tmp_path / "x", passages=tiny_world / "encyclopedia.jsonl",
                    progress=False, counts_only=True)
    with pytest.raises(InputError, match="--counts-only is for the embedded backend"):
        build_index(tiny_world / "corpus.jsonl", linked, None, backend="elasticsearch", es_url="http://127.0.0.1:9",
                    es_index="x", progress=False, counts_only=True)


def _lama_corpus(limit: int = 400):
    path = SHARED / "data" / "real" / "lama_google_re" / "place_of_birth_test.jsonl"
    if not path.exists():
        pytest.skip("shared data not present (../shared/data/real/lama_google_re)")
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()[:limit]]
    aliases: dict[str, list[str]] = {}
    for row in rows:
        aliases.setdefault(row["sub"], []).append(row["sub_label"])
        aliases.setdefault(row["obj"], []).extend([row["obj_label"], *[a for a in row["obj_aliases"] if len(a) > 3]])
    link = alias_linker({e: list(dict.fromkeys(a)) for e, a in aliases.items()})
    docs = []
    for n, row in enumerate(rows):
        for m, evidence in enumerate(row["evidences"]):
            text = evidence["snippet"]
            docs.append((f"{n}.{m}", link(text), text))
    qa = [{"id": str(n), "q_entities": [row["sub"]], "a_entities": [row["obj"]]} for n, row in enumerate(rows)]
    return docs, qa


def lama_truth(docs, qa):
    sets = {}
    for doc_id, entities, _ in docs:
        for e in entities:
            sets.setdefault(e, set()).add(doc_id)
    return {r["id"]: len(sets.get(r["q_entities"][0], set()) & sets.get(r["a_entities"][0], set())) for r in qa}


def test_real_wikipedia_snippets_count_exactly(tmp_path):
    """Google-RE snippets (real Wikipedia text) linked with an alias table: pair counts equal
    a count by hand, and `docs_with` returns the snippets that name both."""
    docs, qa = _lama_corpus()
    corpus, linked = write_corpus(tmp_path / "c", docs, shard_size=128)
    build_index(corpus, linked, tmp_path / "ix", progress=False)
    truth = lama_truth(docs, qa)
    with open_index(tmp_path / "ix") as index:
        counts = count_qa(index, qa)
        assert {c["id"]: c["count"] for c in counts} == truth
        assert sum(truth.values()) > 100
        some = next(c for c in counts if c["count"])
        for doc_id in index.docs_with(some["pair"]):
            assert doc_id in {d for d, e, _ in docs if set(some["pair"]) <= set(e)}


def test_entity_numbering_in_chunks_gives_the_same_counts(tmp_path, monkeypatch):
    from tests.indexes.ix_testdata import QA

    from indexes.embedded import EmbeddedWriter

    corpus, linked = write_corpus(tmp_path / "c", DOCS)
    build_index(corpus, linked, tmp_path / "one", progress=False)
    monkeypatch.setattr(EmbeddedWriter, "_FLUSH", 3)  # number the mentions every 3
    build_index(corpus, linked, tmp_path / "chunked", progress=False)
    with open_index(tmp_path / "one") as one, open_index(tmp_path / "chunked") as chunked:
        assert count_qa(one, QA) == count_qa(chunked, QA)
        assert chunked.docs_with(["Q3"]) == ["d2", "d3", "d4", "d6"]


def _brute_force_top(passages: list[str], queries: list[str], k: int) -> list[list[tuple[int, float]]]:
    """Exhaustive BM25 (Lucene's idf, k1 = 1.2, b = 0.75) in plain Python: every passage
    scored for every query, ties broken by passage number."""
    from collections import Counter

    from indexes import tokenize
    from indexes._text import query_terms

    docs = [Counter(tokenize(p)) for p in passages]
    lengths = [sum(d.values()) for d in docs]
    n, avg = len(docs), sum(lengths) / len(docs)
    df = Counter(term for d in docs for term in d)
    tops = []
    for query in queries:
        scored = []
        for number, (counts, length) in enumerate(zip(docs, lengths)):
            score = 0.0
            for term in query_terms(query):
                tf = counts.get(term, 0)
                if tf:
                    idf = math.log(1 + (n - df[term] + 0.5) / (df[term] + 0.5))
                    score += idf * tf * 2.2 / (tf + 1.2 * (0.25 + 0.75 * length / avg))
            if score > 0:
                scored.append((number, score))
        scored.sort(key=lambda pair: (-pair[1], pair[0]))
        tops.append(scored[:k])
    return tops


@pytest.mark.parametrize("bitmaps, probe_before", [("some", 4096), ("all", 8), ("none", 8)])
def test_maxscore_search_equals_brute_force_bm25(tmp_path, monkeypatch, bitmaps, probe_before):
    """`search_many` (MaxScore, on several threads, postings written in several chunks) returns
    exactly the exhaustive BM25 top k: the same passages in the same order, ties included;
    with the default bitmaps, with every list or none looked up by bitmap, and with probes."""
    import numpy as np

    import indexes.embedded._index as embedded
    from indexes._bench import generate_passages, make_queries
    from indexes.embedded import PassageSearcher, PassageWriter

    monkeypatch.setattr(embedded, "_BITMAP_FRACTION", {"some": 32, "all": 10**9, "none": 0}[bitmaps])
    monkeypatch.setattr(embedded, "_PROBE_BEFORE", probe_before)

    passages, _ = generate_passages(600, seed=3, words=30, vocab=400)
    passages += passages[:40]  # exact duplicates: equal scores, so ties decide the order
    passages += ["Ünïcode ÉCOLE straße", "", "the of and", "x" * 41 + " rare_word rare"]
    writer = PassageWriter(tmp_path / "passages", flush_tokens=1000)
    for i, text in enumerate(passages):
        writer.add_passage(f"p{i}", f"p{i}#0", text)
    writer.commit()
    assert not (tmp_path / "passages" / ".chunks").exists()
    rows = np.load(tmp_path / "passages" / "postings.bitmap_row.npy")
    offsets = np.load(tmp_path / "passages" / "postings.off.npy")
    nonempty = rows[np.diff(offsets) > 0]
    assert {"some": 0 < (nonempty >= 0).sum() < len(nonempty), "all": (nonempty >= 0).all(),
            "none": (nonempty < 0).all()}[bitmaps]
    queries = make_queries(passages, 80, seed=3)
    queries += ["", "what is it?", "zzzz " + queries[0], "école STRASSE straße", "rare", "x" * 41]
    threaded = PassageSearcher(tmp_path / "passages", threads=4)
    alone = PassageSearcher(tmp_path / "passages", threads=1)
    for k in (1, 10, 50):
        many = threaded.search_many(queries, k)
        assert many == [alone.search_many([q], k)[0] for q in queries]
        ties = 0
        for query, hits, expected in zip(queries, many, _brute_force_top(passages, queries, k)):
            assert [h.doc_id for h in hits] == [f"p{n}" for n, _ in expected], query
            assert [h.score for h in hits] == pytest.approx([s for _, s in expected], rel=1e-6)
            assert all(h.text == passages[int(h.doc_id[1:])] for h in hits)
            ties += sum(a.score == b.score for a, b in itertools.pairwise(hits))
        assert ties or k == 1  # the duplicated passages tie
    assert many[-6] == many[-5] == many[-1] == [] and many[-4]  # no term, unknown, too long
    assert [h.doc_id for h in many[-3]] == ["p640"] and [h.doc_id for h in many[-2]] == ["p643"]
    assert threaded.search_many(queries[:2], 0) == [[], []]
    threaded.close()
    alone.close()


def test_version_1_index_is_refused(tmp_path):
    corpus, linked = write_corpus(tmp_path / "c", DOCS)
    build_index(corpus, linked, tmp_path / "ix", progress=False)
    info_path = tmp_path / "ix" / "index.json"
    info = json.loads(info_path.read_text())
    assert info["version"] == 3
    for old in (1, 2):  # passages in tantivy's doc store; passages searched with tantivy
        info_path.write_text(json.dumps({**info, "version": old}))
        with pytest.raises(InputError, match=rf"format version {old} is not the version this ltprobe reads \(3\)"):
            open_index(tmp_path / "ix")
