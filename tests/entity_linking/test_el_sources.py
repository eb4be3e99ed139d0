"""The one corpus reader (`entity_linking.corpus._reader.Corpus`): every format and location, ids,
bad input, and the stages that use it (linking, the index, its command line)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from entity_linking import InputError, iter_linked, link_corpus
from entity_linking.corpus import Corpus
from entity_linking.io import SkipCounter
from tests.entity_linking.el_data import write_compressed

TEXTS = [
    "John Smith, a chemist, was born in Springfield, Illinois.",
    "Nothing to see here.",
    "Zoë O'Brien works for Acme Labs in Paris.",
    "John Smith the painter left Paris in May.",
    "We drove to Springfield, Oregon and back.",
]


def jsonl_bytes(records: list[dict]) -> bytes:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode()


def write(path: Path, records: list[dict]) -> Path:
    """Write records as .jsonl, .jsonl.gz, .jsonl.zst or .parquet, by the file name."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(records), path)
        return path
    data = jsonl_bytes(records)
    return write_compressed(path, data)


def docs(corpus, **kwargs) -> list[tuple[str, str]]:
    return list(Corpus(corpus, **kwargs).documents())


RECORDS = [{"id": f"d{i}", "text": t} for i, t in enumerate(TEXTS)]


@pytest.mark.parametrize("name", ["c.jsonl", "c.jsonl.gz", "c.jsonl.zst", "c.parquet", "c.ndjson"])
def test_every_file_format_gives_the_same_documents(tmp_path, name):
    assert docs(write(tmp_path / name, RECORDS)) == [(r["id"], r["text"]) for r in RECORDS]


def test_folder_recursive_sorted_with_relative_path_ids(tmp_path):
    root = tmp_path / "corpus"
    write(root / "b" / "x.jsonl.zst", [{"text": TEXTS[0]}])
    write(root / "a" / "x.jsonl.gz", [{"text": TEXTS[1]}, {"text": TEXTS[2]}])
    write(root / "c.parquet", [{"text": TEXTS[3]}])
    write(root / "a" / "y.jsonl", [{"id": 7, "text": TEXTS[4]}])
    write(root / ".hidden.jsonl", [{"text": "never read"}])       # hidden files and
    write(root / "meta.json", [{"text": "not a corpus file"}])    # .json files in folders are left out
    (root / "README.md").write_text("not a corpus file")
    got = docs(root)
    # same file names in two folders: the relative path keeps ids unambiguous
    assert got == [("a/x.jsonl.gz:1", TEXTS[1]), ("a/x.jsonl.gz:2", TEXTS[2]), ("7", TEXTS[4]),
                   ("b/x.jsonl.zst:1", TEXTS[0]), ("c.parquet:1", TEXTS[3])]
    # a glob: relative to its fixed part, in sorted order
    assert docs(str(root / "**" / "*.jsonl*")) == [("a/x.jsonl.gz:1", TEXTS[1]), ("a/x.jsonl.gz:2", TEXTS[2]),
                                                   ("7", TEXTS[4]), ("b/x.jsonl.zst:1", TEXTS[0])]
    assert docs(str(root / "a" / "*.jsonl")) == [("7", TEXTS[4])]
    with pytest.raises(InputError, match="matches no .jsonl"):
        docs(str(root / "*.txt"))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match="no .jsonl"):
        Corpus(empty)


def test_text_and_id_fields(tmp_path):
    path = write(tmp_path / "c.parquet", [{"body": t, "key": f"k{i}"} for i, t in enumerate(TEXTS)])
    assert docs(path, text_field="body", id_field="key")[0] == ("k0", TEXTS[0])
    with pytest.raises(InputError, match=r"c.parquet: no column 'text' \(columns: body, key\)"):
        docs(path)


def test_object_store_urls_through_fsspec(tmp_path):
    import fsspec

    # file:// (local) and memory:// (an object store in this process): a file, a prefix, a glob
    write(tmp_path / "s" / "a.jsonl.gz", RECORDS[:2])
    write(tmp_path / "s" / "b.parquet", RECORDS[2:])
    assert docs(f"file://{tmp_path / 's'}") == [(r["id"], r["text"]) for r in RECORDS]
    fs = fsspec.filesystem("memory")
    import zstandard

    fs.pipe("/bucket/pile/00.jsonl.zst", zstandard.ZstdCompressor().compress(jsonl_bytes([{"text": TEXTS[0]}])))
    fs.pipe("/bucket/pile/01.jsonl", jsonl_bytes([{"text": TEXTS[1]}, {"id": "x", "text": TEXTS[2]}]))
    fs.pipe("/bucket/pile/sub/02.parquet", (tmp_path / "s" / "b.parquet").read_bytes())
    try:
        assert docs("memory://bucket/pile/") == [("00.jsonl.zst:1", TEXTS[0]), ("01.jsonl:1", TEXTS[1]),
                                                 ("x", TEXTS[2]), ("d2", TEXTS[2]), ("d3", TEXTS[3]),
                                                 ("d4", TEXTS[4])]
        assert docs("memory://bucket/pile/01.jsonl") == [("01.jsonl:1", TEXTS[1]), ("x", TEXTS[2])]
        assert [d for d, _ in docs("memory://bucket/pile/*.jsonl*")] == ["00.jsonl.zst:1", "01.jsonl:1", "x"]
        with pytest.raises(InputError, match="no such file or folder"):
            Corpus("memory://bucket/nothing-here/")
    finally:
        fs.rm("/bucket", recursive=True)


def test_hugging_face_saved_dataset(tmp_path):
    import datasets

    datasets.Dataset.from_dict({"text": TEXTS}).save_to_disk(str(tmp_path / "hfset"))
    expected = [(f"hfset:{i}", t) for i, t in enumerate(TEXTS, 1)]
    assert docs(f"hf:{tmp_path / 'hfset'}") == expected
    assert docs(tmp_path / "hfset") == expected
    datasets.DatasetDict({"validation": datasets.Dataset.from_dict({"text": TEXTS[:2]})}).save_to_disk(
        str(tmp_path / "dd"))
    assert len(docs(tmp_path / "dd", split="validation")) == 2
    with pytest.raises(InputError, match="no split 'train'"):
        docs(tmp_path / "dd")


def test_bad_input_names_file_and_line_or_row(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(jsonl_bytes(RECORDS[:1]) + b"{broken\n" + jsonl_bytes([{"id": "e", "text": "  "}]))
    with pytest.raises(InputError, match=rf"^{bad.resolve()}:2: broken JSON"):
        docs(bad)
    skips = SkipCounter()
    assert docs(bad, on_error="skip", skips=skips) == [("d0", TEXTS[0])]
    assert skips.skipped == 2 and "bad.jsonl:3: empty document" in skips.examples[1]
    # Parquet: file and row
    pq = write(tmp_path / "p.parquet", [{"text": TEXTS[0]}, {"text": None}])
    with pytest.raises(InputError, match=rf"^{pq.resolve()}:2: missing field 'text'"):
        docs(pq)
    # a truncated compressed file: where it ends
    whole = gzip.compress(jsonl_bytes(RECORDS * 200))
    (tmp_path / "t.jsonl.gz").write_bytes(whole[: len(whole) // 2])
    with pytest.raises(InputError, match=r"t.jsonl.gz:\d+: file is truncated or corrupt"):
        docs(tmp_path / "t.jsonl.gz")
    (tmp_path / "junk.parquet").write_bytes(b"not parquet")
    with pytest.raises(InputError, match="junk.parquet: not a readable Parquet file"):
        docs(tmp_path / "junk.parquet", on_error="skip")  # an unusable file is an error even when skipping
    with pytest.raises(InputError, match="no such file or folder"):
        Corpus(tmp_path / "missing.jsonl")
    (tmp_path / "x.txt").write_text("hello")
    with pytest.raises(InputError, match="unknown corpus format"):
        Corpus(tmp_path / "x.txt")


def test_identity_changes_with_the_files(tmp_path):
    path = write(tmp_path / "c" / "a.jsonl", RECORDS)
    first = Corpus(tmp_path / "c").identity()
    assert first == Corpus(tmp_path / "c").identity()
    write(path, RECORDS[:2])
    assert Corpus(tmp_path / "c").identity() != first


def test_linking_a_mixed_folder_equals_one_file(kb, tmp_path):
    records = [{"id": f"d{i}", "text": TEXTS[i % 5]} for i in range(40)]
    write(tmp_path / "one.jsonl", records)
    write(tmp_path / "mixed" / "00.jsonl.gz", records[:10])
    write(tmp_path / "mixed" / "01.jsonl.zst", records[10:25])
    write(tmp_path / "mixed" / "02.parquet", records[25:])
    link_corpus(tmp_path / "one.jsonl", kb, tmp_path / "l1", workers=1, progress=False)
    link_corpus(tmp_path / "mixed", kb, tmp_path / "l2", workers=2, shard_size=7, progress=False)
    assert list(iter_linked(tmp_path / "l1")) == list(iter_linked(tmp_path / "l2"))


def test_index_reads_what_linking_read(kb, tmp_path, capsys):
    """`ltprobe index --corpus DIR` (a folder of shards, ids by relative path, a custom text
    field) gives the same documents as linking, so counts and `ltprobe docs` line up."""
    from probe.cli import main

    root = tmp_path / "corpus"
    write(root / "a" / "part.jsonl.gz", [{"body": t} for t in TEXTS[:3]])
    write(root / "b" / "part.parquet", [{"body": t} for t in TEXTS[3:]])
    assert main(["link-corpus", "--corpus", str(root), "--kb", str(tmp_path / "kb.jsonl"), "--out",
                 str(tmp_path / "linked"), "--text-field", "body", "--workers", "1", "--no-progress"]) == 0
    # the fields default to those the linked folder was made with
    assert main(["index", "--corpus", str(root), "--linked", str(tmp_path / "linked"),
                 "--out", str(tmp_path / "ix")]) == 0
    from indexes import open_index

    with open_index(tmp_path / "ix") as index:
        assert index.docs_with(["P1"]) == ["a/part.jsonl.gz:1"]
        assert index.get_text("b/part.parquet:2") == TEXTS[4]
        assert index.info()["n_docs"] == 5
    capsys.readouterr()
    # a corpus that is not the linked one: one line, exit 2
    assert main(["index", "--corpus", str(root / "a"), "--linked", str(tmp_path / "linked"),
                 "--out", str(tmp_path / "ix2")]) == 2
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]  # after the progress bar
    assert last.startswith("ltprobe: error: ") and "belongs to another corpus" in last and "Traceback" not in err
    assert main(["index", "--corpus", str(root), "--text-field", "text",
                 "--out", str(tmp_path / "ix3")]) == 2
    assert "missing field 'text'" in capsys.readouterr().err
