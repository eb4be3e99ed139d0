"""Corpus linking: formats, ids, shards and manifests, workers, resuming, bad input, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from entity_linking import InputError, KnowledgeBase, iter_linked, link_corpus, read_manifest
from tests.entity_linking.el_data import write_compressed

TEXTS = [
    "John Smith, a chemist, was born in Springfield, Illinois.",
    "Nothing to see here.",
    "Zoë O'Brien works for Acme Labs in Paris.",
    "John Smith the painter left Paris in May.",
    "We drove to Springfield, Oregon and back.",
]
EXPECTED = [["P1", "C1", "S1"], [], ["P3", "O1", "C3"], ["P2", "C3", "M1"], ["C2", "S2"]]


def write_corpus(path: Path, n: int = 50, ids: bool = True) -> Path:
    lines = []
    for i in range(n):
        record = {"text": TEXTS[i % len(TEXTS)]}
        if ids:
            record = {"id": f"doc{i}", **record}
        lines.append(json.dumps(record, ensure_ascii=False))
    data = ("\n".join(lines) + "\n").encode()
    return write_compressed(path, data)


def shard_bytes(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(out.glob("shard-*.jsonl"))}


def test_jsonl_shards_manifests_and_iter_linked(kb, tmp_path):
    corpus = write_corpus(tmp_path / "corpus.jsonl", 50)
    manifest = link_corpus(corpus, kb, tmp_path / "out", workers=1, shard_size=20, progress=False)
    assert manifest["complete"] and manifest["shards"] == ["shard-00000.jsonl", "shard-00001.jsonl", "shard-00002.jsonl"]
    assert (manifest["records_read"], manifest["documents_linked"], manifest["skipped"]) == (50, 50, 0)
    shard = json.loads((tmp_path / "out" / "shard-00001.json").read_text())
    assert shard["records"] == 20 and shard["documents"] == 20 and shard["docs_per_s"] > 0
    linked = list(iter_linked(tmp_path / "out"))
    assert [doc_id for doc_id, _ in linked] == [f"doc{i}" for i in range(50)]
    assert [entities for _, entities in linked][:5] == EXPECTED
    assert read_manifest(tmp_path / "out")["config"]["kb"]["entities"] == 10


def test_workers_give_identical_shards(kb, tmp_path):
    corpus = write_corpus(tmp_path / "corpus.jsonl", 300)
    link_corpus(corpus, kb, tmp_path / "one", workers=1, shard_size=100, batch_size=7, progress=False)
    link_corpus(corpus, kb, tmp_path / "two", workers=2, shard_size=100, batch_size=7, progress=False)
    assert shard_bytes(tmp_path / "one") == shard_bytes(tmp_path / "two")
    assert len(shard_bytes(tmp_path / "one")) == 3


def test_default_ids_are_file_and_line(kb, tmp_path):
    corpus = tmp_path / "c.jsonl"
    corpus.write_text(json.dumps({"text": TEXTS[0]}) + "\n\n" + json.dumps({"text": TEXTS[2], "id": 7}) + "\n")
    link_corpus(corpus, kb, tmp_path / "out", workers=1, progress=False)
    assert [d for d, _ in iter_linked(tmp_path / "out")] == ["c.jsonl:1", "7"]


@pytest.mark.parametrize("name", ["corpus.jsonl.gz", "corpus.jsonl.zst"])
def test_compressed_jsonl(kb, tmp_path, name):
    corpus = write_corpus(tmp_path / name, 10)
    link_corpus(corpus, kb, tmp_path / "out", workers=1, progress=False)
    assert [e for _, e in iter_linked(tmp_path / "out")][:5] == EXPECTED


def test_parquet_folder_and_hf_dataset(kb, tmp_path):
    import datasets
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"body": TEXTS, "doc": [f"p{i}" for i in range(5)]}), tmp_path / "c.parquet")
    link_corpus(tmp_path / "c.parquet", kb, tmp_path / "pq", workers=1, text_field="body", id_field="doc",
                progress=False)
    assert list(iter_linked(tmp_path / "pq")) == [(f"p{i}", e) for i, e in enumerate(EXPECTED)]
    # without an id column: "<file name>:<row>"
    pq.write_table(pa.table({"text": TEXTS}), tmp_path / "noid.parquet")
    link_corpus(tmp_path / "noid.parquet", kb, tmp_path / "pq2", workers=1, progress=False)
    assert [d for d, _ in iter_linked(tmp_path / "pq2")] == [f"noid.parquet:{i}" for i in range(1, 6)]
    # a folder of files, in name order
    folder = tmp_path / "folder"
    folder.mkdir()
    write_corpus(folder / "a.jsonl", 2)
    write_corpus(folder / "b.jsonl.gz", 3, ids=False)
    link_corpus(folder, kb, tmp_path / "dir", workers=1, progress=False)
    assert [d for d, _ in iter_linked(tmp_path / "dir")] == ["doc0", "doc1", "b.jsonl.gz:1", "b.jsonl.gz:2", "b.jsonl.gz:3"]
    # a Hugging Face dataset saved to disk (the same reader streams hub datasets: hf:NAME)
    datasets.Dataset.from_dict({"text": TEXTS}).save_to_disk(str(tmp_path / "hf"))
    link_corpus(tmp_path / "hf", kb, tmp_path / "hfout", workers=2, progress=False)
    assert list(iter_linked(tmp_path / "hfout")) == [(f"hf:{i}", e) for i, e in enumerate(EXPECTED, 1)]
    with pytest.raises(InputError, match="no column 'text'"):
        link_corpus(tmp_path / "c.parquet", kb, tmp_path / "pq3", workers=1, progress=False)


def test_resume_after_a_crash(kb, tmp_path):
    corpus = write_corpus(tmp_path / "corpus.jsonl", 60)
    out = tmp_path / "out"
    link_corpus(corpus, kb, out, workers=1, shard_size=20, progress=False)
    before = shard_bytes(out)
    first = (out / "shard-00000.jsonl").stat().st_mtime_ns
    # as after a crash in shard 1: its manifest never got written
    (out / "shard-00001.json").unlink()
    (out / "shard-00001.jsonl").unlink()
    manifest = link_corpus(corpus, kb, out, workers=2, shard_size=20, progress=False)
    assert shard_bytes(out) == before
    assert (out / "shard-00000.jsonl").stat().st_mtime_ns == first  # complete shards are not redone
    assert manifest["documents_linked"] == 60
    with pytest.raises(InputError, match="other settings"):
        link_corpus(corpus, kb, out, workers=1, shard_size=10, progress=False)


def test_complete_output_is_not_redone(kb, tmp_path, monkeypatch):
    corpus = write_corpus(tmp_path / "corpus.jsonl", 30)
    first = link_corpus(corpus, kb, tmp_path / "out", workers=1, shard_size=20, progress=False)
    mtime = (tmp_path / "out" / "shard-00000.jsonl").stat().st_mtime_ns
    monkeypatch.chdir(tmp_path)  # the same corpus named by a relative path is the same job
    again = link_corpus("corpus.jsonl", kb, "out", workers=1, shard_size=20, progress=False)
    assert again == first and (tmp_path / "out" / "shard-00000.jsonl").stat().st_mtime_ns == mtime


def test_incomplete_or_missing_output_refused(kb, tmp_path):
    with pytest.raises(InputError, match="not a linked corpus"):
        list(iter_linked(tmp_path))
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"text": TEXTS[0]}) + "\n{broken\n")
    with pytest.raises(InputError):
        link_corpus(bad, kb, tmp_path / "out", workers=1, progress=False)
    with pytest.raises(InputError, match="incomplete"):
        list(iter_linked(tmp_path / "out"))


def _bad_corpus(path: Path, kind: str) -> tuple[Path, int]:
    """A corpus with good documents around one bad record; returns (path, bad line)."""
    good = [json.dumps({"id": f"g{i}", "text": TEXTS[i]}).encode() for i in range(3)]
    bad = {
        "non_utf8": b'{"id": "b", "text": "caf\xe9"}',
        "broken_json": b'{"id": "b", "text": "unterminated}',
        "missing_text": b'{"id": "b", "body": "no text field"}',
        "non_string_text": b'{"id": "b", "text": ["a", "list"]}',
        "empty_document": b'{"id": "b", "text": "   "}',
        "huge_document": json.dumps({"id": "b", "text": "word " * 2_100_000}).encode(),  # 10.5 MB
    }[kind]
    path.write_bytes(b"\n".join([good[0], good[1], bad, good[2]]) + b"\n")
    return path, 3


REASONS = {"non_utf8": "not valid UTF-8", "broken_json": "broken JSON", "missing_text": "missing field 'text'",
           "non_string_text": "field 'text' must be a string", "empty_document": "empty document",
           "huge_document": "document too long"}


@pytest.mark.parametrize("kind", list(REASONS))
def test_bad_records_fail_or_skip(kb, tmp_path, kind):
    corpus, line = _bad_corpus(tmp_path / "c.jsonl", kind)
    with pytest.raises(InputError) as info:
        link_corpus(corpus, kb, tmp_path / "fail", workers=1, progress=False)
    assert str(info.value).startswith(f"{corpus}:{line}: {REASONS[kind]}")
    manifest = link_corpus(corpus, kb, tmp_path / "skip", workers=2, on_error="skip", progress=False)
    assert (manifest["records_read"], manifest["documents_linked"], manifest["skipped"]) == (4, 3, 1)
    assert REASONS[kind] in manifest["skip_examples"][0]
    assert [d for d, _ in iter_linked(tmp_path / "skip")] == ["g0", "g1", "g2"]


def test_truncated_gzip(kb, tmp_path):
    corpus = write_corpus(tmp_path / "c.jsonl.gz", 2000)
    data = corpus.read_bytes()
    corpus.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match=r"c.jsonl.gz:\d+: file is truncated or corrupt"):
        link_corpus(corpus, kb, tmp_path / "fail", workers=1, progress=False)
    manifest = link_corpus(corpus, kb, tmp_path / "skip", workers=1, on_error="skip", progress=False)
    assert manifest["skipped"] == 1 and 0 < manifest["documents_linked"] < 2000


def test_cli_link_corpus(kb_jsonl, tmp_path, cli, capsys):
    corpus, line = _bad_corpus(tmp_path / "c.jsonl", "broken_json")
    status, _, err = cli(capsys, "link-corpus", "--corpus", corpus, "--kb", kb_jsonl, "--out", tmp_path / "a",
                         "--no-progress")
    assert status == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(f"ltprobe: error: {corpus}:{line}: broken JSON (Unterminated string")
    status, _, err = cli(capsys, "link-corpus", "--corpus", corpus, "--kb", kb_jsonl, "--out", tmp_path / "b",
                         "--on-error", "skip", "--workers", "2", "--no-progress")
    assert status == 0 and "linked 3 documents" in err and f"skipped 1 bad record(s); first: {corpus}:3" in err
    status, _, err = cli(capsys, "link-corpus", "--corpus", tmp_path / "nope.jsonl", "--kb", kb_jsonl,
                         "--out", tmp_path / "c")
    assert status == 2 and "no such file" in err


def test_tiny_world_corpus_against_gold_links(tiny_world, tmp_path):
    """The controlled world: links must match the gold links (shared names, Unicode names,
    "City, Country" mentions)."""
    kb = KnowledgeBase.from_jsonl(tiny_world / "kb.jsonl")
    link_corpus(tiny_world / "corpus.jsonl", kb, tmp_path / "linked", workers=2, progress=False)
    gold = {r["id"]: set(r["entities"]) for r in map(json.loads, open(tiny_world / "corpus.jsonl"))}
    texts = {r["id"]: r["text"] for r in map(json.loads, open(tiny_world / "corpus.jsonl"))}
    tp = fp = fn = missing_from_text = 0
    for doc_id, entities in iter_linked(tmp_path / "linked"):
        pred = set(entities)
        tp += len(pred & gold[doc_id])
        fp += len(pred - gold[doc_id])
        for entity in gold[doc_id] - pred:
            e = kb[entity]
            if any(a.lower() in texts[doc_id].lower() for a in [e.name, *e.aliases]):
                fn += 1
            else:
                missing_from_text += 1  # a gold link whose entity the text never names
    assert fp == 0 and fn == 0, (fp, fn)
    assert tp > 1000
