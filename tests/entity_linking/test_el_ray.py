"""The Ray Data executor (local mode) writes byte-identical shards to the local executor."""

from __future__ import annotations

import gzip
import json

import pytest

from entity_linking import KnowledgeBase, link_corpus


def _shards(out):
    return {p.name: p.read_bytes() for p in sorted(out.glob("shard-*.jsonl"))}


@pytest.mark.slow
def test_ray_executor_matches_local_on_the_world(ray_local, tiny_world, tmp_path):
    kb = KnowledgeBase.from_jsonl(tiny_world / "kb.jsonl")
    kb.save(tmp_path / "kb")
    # the corpus as two files, one compressed, with a bad record and id-less records
    lines = (tiny_world / "corpus.jsonl").read_text(encoding="utf-8").splitlines()
    half = len(lines) // 2
    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / "a.jsonl").write_text("\n".join(lines[:half]) + "\n{broken\n", encoding="utf-8")
    second = [json.dumps({"text": json.loads(line)["text"]}) for line in lines[half:]]
    (tmp_path / "corpus" / "b.jsonl.gz").write_bytes(gzip.compress(("\n".join(second) + "\n").encode()))
    common = dict(shard_size=400, on_error="skip", progress=False)
    local = link_corpus(tmp_path / "corpus", tmp_path / "kb", tmp_path / "local", workers=2, **common)
    ray = link_corpus(tmp_path / "corpus", tmp_path / "kb", tmp_path / "ray", executor="ray", workers=2, **common)
    assert _shards(tmp_path / "local") == _shards(tmp_path / "ray")
    assert len(_shards(tmp_path / "ray")) == len(local["shards"]) > 1
    for key in ("records_read", "documents_linked", "skipped", "entity_links"):
        assert local[key] == ray[key], key
    assert ray["skipped"] == 1 and ray["executor"] == "ray"
    assert ray["records_linked_this_run"] == ray["records_read"] == len(lines) + 1

    # Resuming: a re-run links only the shards without a manifest, on both executors (records
    # of complete shards are dropped before the linking actors; records are placed across files)
    before = _shards(tmp_path / "ray")
    for out, first in ((tmp_path / "local", local), (tmp_path / "ray", ray)):
        for k in (1, 3):  # as if the job had stopped with these shards unfinished
            (out / f"shard-0000{k}.jsonl").unlink()
            (out / f"shard-0000{k}.json").unlink()
        (out / "manifest.json").write_text(json.dumps({**first, "complete": False}))
        executor = "ray" if out.name == "ray" else "local"
        again = link_corpus(tmp_path / "corpus", tmp_path / "kb", out, executor=executor, workers=2, **common)
        assert _shards(out) == before
        assert again["records_linked_this_run"] == 2 * 400, executor
        for key in ("records_read", "documents_linked", "skipped", "entity_links", "shards"):
            assert again[key] == first[key], (executor, key)


@pytest.mark.slow
def test_ray_executor_parquet_and_hf(ray_local, kb, tmp_path):
    import datasets
    import pyarrow as pa
    import pyarrow.parquet as pq

    texts = ["John Smith, a chemist, was born in Springfield, Illinois.", "Zoë O'Brien works for Acme Labs.", ""]
    pq.write_table(pa.table({"text": texts}), tmp_path / "c.parquet")
    datasets.Dataset.from_dict({"text": texts}).save_to_disk(str(tmp_path / "hf"))
    for corpus in (tmp_path / "c.parquet", tmp_path / "hf"):
        local = tmp_path / f"local-{corpus.name}"
        remote = tmp_path / f"ray-{corpus.name}"
        link_corpus(corpus, kb, local, workers=1, on_error="skip", progress=False)
        manifest = link_corpus(corpus, kb, remote, executor="ray", workers=2, on_error="skip", progress=False)
        assert _shards(local) == _shards(remote) and manifest["skipped"] == 1


@pytest.mark.slow
def test_ray_executor_truncated_gzip(ray_local, kb, tmp_path):
    from entity_linking import InputError

    lines = [json.dumps({"id": f"d{i}", "text": "Zoë O'Brien works for Acme Labs."}) for i in range(3000)]
    data = gzip.compress(("\n".join(lines) + "\n").encode())
    (tmp_path / "c.jsonl.gz").write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError) as local_error:
        link_corpus(tmp_path / "c.jsonl.gz", kb, tmp_path / "l", workers=1, progress=False)
    with pytest.raises(InputError) as ray_error:
        link_corpus(tmp_path / "c.jsonl.gz", kb, tmp_path / "r", executor="ray", workers=2, progress=False)
    assert str(ray_error.value) == str(local_error.value)
    assert "file is truncated or corrupt" in str(ray_error.value)
    local = link_corpus(tmp_path / "c.jsonl.gz", kb, tmp_path / "l2", workers=1, on_error="skip", progress=False)
    ray = link_corpus(tmp_path / "c.jsonl.gz", kb, tmp_path / "r2", executor="ray", workers=2, on_error="skip",
                      progress=False)
    assert _shards(tmp_path / "l2") == _shards(tmp_path / "r2") and local["skipped"] == ray["skipped"] == 1

