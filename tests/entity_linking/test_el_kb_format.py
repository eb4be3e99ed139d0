"""Knowledge-base folders (format 4): round trip, links identical to format 1, memory shared
with forked workers, corrupted and untrusted folders refused."""

from __future__ import annotations

import json
import os
import pickle
import re
import shutil

import numpy as np
import pytest

from entity_linking import InputError, KnowledgeBase, Linker
from tests.entity_linking.el_data import TEN

TRICKY = [
    {"id": "Q1", "name": "Zoë O'Brien", "aliases": ["Zoe OBrien", "Z. O’Brien"], "type": "person",
     "description": "astronomer born in Łódź", "prior": 3.0},
    {"id": "Q2", "name": "Zoë O'Brien", "aliases": [], "type": "person", "description": "painter born in Lyon",
     "prior": 1.0},
    {"id": "Q3", "name": "New York City", "aliases": ["NYC", "New York"], "type": "city",
     "description": "city in the United States", "prior": 10.0},
    {"id": "Q4", "name": "New York", "aliases": ["NY"], "type": "state", "description": "state of the United States",
     "prior": 4.0},
    {"id": "Q5", "name": "Springfield, Illinois", "aliases": ["Springfield"], "type": "city",
     "description": "capital of Illinois", "prior": 2.0},
    {"id": "Q6", "name": "Illinois", "aliases": [], "type": "state", "description": "state of the United States",
     "prior": 5.0},
    {"id": "Q7", "name": "Łódź", "aliases": ["Lodz"], "type": "city", "description": "city in Poland", "prior": 1.0},
    {"id": "Q8", "name": "Jean-Luc Picard", "aliases": ["St. Jean"], "type": "person",
     "description": "captain", "prior": 0.0},
    {"id": "Q9 with spaces ü", "name": "İstanbul", "aliases": ["Ⅻ Forum"], "type": "", "description": "",
     "prior": 0.5},
]
TEXTS = [
    "Zoë O'Brien, the astronomer, moved from Łódź to New York City; Z. O’Brien later visited NYC.",
    "The painter Zoë O'Brien was born in Lyon. Zoe OBrien painted New York.",
    "Springfield, Illinois is the capital. Springfield. Illinois is a state. Lodz and LODZ.",
    "Jean-Luc Picard and Jeanluc Picard and jean luc picard met St. Jean in İstanbul at the Ⅻ Forum.",
    "",
    "   ",
    "new york new york NEW YORK ny NY",
]


def _mentions(linker: Linker, texts) -> list:
    return [[(m.start, m.end, m.text, m.kb_id, m.score) for m in linker.link(t)] for t in texts]


def test_round_trip_unicode_apostrophes_shared_names(tmp_path):
    from entity_linking.kb import _legacy as _kb_legacy

    kb = KnowledgeBase.from_records(TRICKY)
    folder = KnowledgeBase.write(iter(kb), tmp_path / "kb", progress=False)
    loaded = KnowledgeBase.load(folder)
    assert len(loaded) == len(TRICKY)
    assert [e.to_dict() for e in loaded] == [e.to_dict() for e in kb]
    assert loaded["Q9 with spaces ü"].name == "İstanbul" and "Q9 with spaces ü" in loaded and "Q9" not in loaded
    assert loaded.get("nope") is None and loaded.get(7) is None
    with pytest.raises(KeyError):
        loaded["nope"]  # noqa: B018
    assert sorted(loaded.candidates("zoe o'brien")) == ["Q1", "Q2"]
    assert sorted(loaded.candidates("NEW YORK")) == ["Q3", "Q4"]
    assert loaded.info() == {**kb.info(), "source": kb.source}
    expected = _mentions(Linker(_kb_legacy.KnowledgeBase.from_records(TRICKY)), TEXTS)
    assert _mentions(Linker(loaded), TEXTS) == expected
    assert _mentions(Linker(kb), TEXTS) == expected
    assert any(m[3] == "Q5" for m in expected[2]) and any(m[3] == "Q7" for m in expected[2])
    # every file is a .npy array (opened without pickle) or the JSON metadata
    assert all(p.name == "kb.json" or p.name.endswith(".npy") for p in folder.iterdir())
    with pytest.raises(ValueError, match="read-only"):
        loaded.add(KnowledgeBase.from_records(TEN[:1]).entity(0))


def test_links_identical_to_format_1_on_generated_documents(tmp_path):
    from entity_linking._bench import generate
    from entity_linking.kb import _legacy as _kb_legacy

    records, documents = generate(6000, 150, seed=3)
    old = _kb_legacy.KnowledgeBase.from_records(records)
    old.save(tmp_path / "old")
    old = _kb_legacy.KnowledgeBase.load(tmp_path / "old")
    KnowledgeBase.from_records(records).save(tmp_path / "new")
    new = KnowledgeBase.load(tmp_path / "new")
    texts = [d["text"] for d in documents]
    a, b = _mentions(Linker(old), texts), _mentions(Linker(new), texts)
    assert a == b and sum(map(len, a)) > 1000
    assert [Linker(old).link_ids(t) for t in texts] == [Linker(new).link_ids(t) for t in texts]
    # the same number of alias keys and ambiguous keys as format 1's automaton
    assert {k: v for k, v in new.info().items() if k != "source"} == \
        {k: v for k, v in old.info().items() if k != "source"}


def _private_dirty_kb() -> int:
    with open("/proc/self/smaps_rollup") as handle:
        return int(re.search(r"Private_Dirty:\s+(\d+) kB", handle.read()).group(1))


@pytest.mark.skipif(not os.path.exists("/proc/self/smaps_rollup") or not hasattr(os, "fork"),
                    reason="needs Linux /proc and fork")
def test_forked_worker_shares_the_knowledge_base(tmp_path):
    """A worker forked after the load writes few pages of its own: the knowledge base is a
    read-only memory map (format 1's Python lists were dirtied by reference counting). The
    parent freezes its objects out of the garbage collector before forking, as `link-corpus`
    does, so that the worker's collections do not write to the test process's own heap."""
    import gc

    from entity_linking._bench import generate

    records, documents = generate(60000, 300, seed=1)
    KnowledgeBase.from_records(records).save(tmp_path / "kb")
    del records
    kb = KnowledgeBase.load(tmp_path / "kb").prepare()
    linker = Linker(kb)
    texts = [d["text"] for d in documents]
    linker.link_ids(texts[0])
    gc.collect()
    gc.freeze()
    kb_bytes = sum(p.stat().st_size for p in (tmp_path / "kb").iterdir())
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the worker
        try:
            os.close(read)
            before = _private_dirty_kb()
            for _ in range(3):
                for text in texts:
                    linker.link_ids(text)
            for i in range(0, len(kb), 7):  # touch every part of the entity arrays
                kb.ids[i], kb.aliases[i], kb.priors[i]  # noqa: B018
            gc.collect()
            os.write(write, json.dumps([before, _private_dirty_kb()]).encode())
        finally:
            os._exit(0)
    os.close(write)
    before, after = json.loads(os.read(read, 1000))
    os.waitpid(pid, 0)
    gc.unfreeze()
    grown_mb = (after - before) / 1024
    assert kb_bytes > 8 * 2**20  # a knowledge base big enough for the check to mean something
    assert grown_mb < 12, f"the forked worker dirtied {grown_mb:.1f} MB (knowledge base: {kb_bytes / 2**20:.0f} MB)"


def test_old_format_folder_refused_in_one_line(tmp_path, kb):
    from entity_linking.kb import _legacy as _kb_legacy

    _kb_legacy.KnowledgeBase.from_records(TEN).save(tmp_path / "old")
    with pytest.raises(InputError) as info:
        KnowledgeBase.load(tmp_path / "old")
    message = str(info.value)
    assert "\n" not in message and "version 1" in message and "ltprobe kb build" in message
    assert "kb.json" in message


@pytest.mark.parametrize("damage", ["truncate", "empty", "offsets", "index", "dtype", "missing", "meta", "rows", "length"])
def test_corrupted_folder_names_the_file_and_the_rebuild_command(tmp_path, kb, damage):
    folder = kb.save(tmp_path / "kb")
    target = {"truncate": "key_val.npy", "empty": "t_rows.npy", "offsets": "names.off.npy", "index": "group_mem.npy",
              "dtype": "priors.npy", "missing": "shape_keys.npy", "meta": "kb.json", "rows": "t_rows.npy",
              "length": "t_rows.npy"}[damage]
    path = folder / target
    if damage == "truncate":
        data = path.read_bytes()
        path.write_bytes(data[:len(data) - 9])
    elif damage == "empty":
        path.write_bytes(b"")
    elif damage == "offsets":
        off = np.load(path)
        off[2] = off[-1] + 100
        np.save(path, off)
    elif damage == "index":
        members = np.load(path)
        members[0] = 10**6
        np.save(path, members)
    elif damage == "dtype":
        np.save(path, np.load(path).astype(np.float32))
    elif damage == "missing":
        path.unlink()
    elif damage in ("rows", "length"):  # a used slot of the matcher's table names no key / a too long string
        rows = np.load(path)
        slot = int(np.flatnonzero(rows[1::2])[0])
        info = int(rows[2 * slot + 1])
        n_keys = len(np.load(folder / "key_off.npy")) - 1
        rows[2 * slot + 1] = (info & ~0xFFFFFFFF) | (n_keys + 7) if damage == "rows" else info | (4000 << 32)
        np.save(path, rows)
    else:
        path.write_text("{not json")
    with pytest.raises(InputError) as info:
        KnowledgeBase.load(folder)
    message = str(info.value)
    assert str(path) in message and "ltprobe kb build" in message and "\n" not in message


class _Payload:
    """Unpickling this creates a file: proof that the unpickler ran."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _object_npy(path, marker) -> None:
    array = np.empty(3, dtype=object)
    array[:] = [_Payload(str(marker)), 1, 2]
    np.save(path, array, allow_pickle=True)


def test_pickle_payload_in_kb_folder_never_runs(tmp_path, kb):
    folder = kb.save(tmp_path / "kb")
    marker = tmp_path / "pwned"
    for name in ("key_val.npy", "ids.off.npy"):
        copy = tmp_path / f"copy-{name}"
        shutil.copytree(folder, copy)
        _object_npy(copy / name, marker)
        meta = json.loads((copy / "kb.json").read_text())
        meta["arrays"][name.removesuffix(".npy")] = {"dtype": "|O", "shape": [3]}
        (copy / "kb.json").write_text(json.dumps(meta))
        with pytest.raises(InputError, match=re.escape(name)):
            KnowledgeBase.load(copy)
        assert not marker.exists()
    # a stray pickle file in the folder is never opened
    (folder / "entities.pkl").write_bytes(pickle.dumps(_Payload(str(marker))))
    assert len(KnowledgeBase.load(folder)) == len(kb)
    assert not marker.exists()


def test_format_1_automaton_with_pickled_values_is_refused(tmp_path):
    """The baseline loader kept for `bench kb` passes pyahocorasick a deserializer that refuses:
    an automaton file that carries pickled values (STORE_ANY) does not run them."""
    import ahocorasick

    from entity_linking.kb import _legacy as _kb_legacy

    _kb_legacy.KnowledgeBase.from_records(TEN).save(tmp_path / "old")
    marker = tmp_path / "pwned"
    automaton = ahocorasick.Automaton(ahocorasick.STORE_ANY)
    automaton.add_word(" john smith ", _Payload(str(marker)))
    automaton.make_automaton()
    automaton.save(str(tmp_path / "old" / "automaton.bin"), pickle.dumps)
    with pytest.raises(ValueError, match="refused"):
        _kb_legacy.KnowledgeBase.load(tmp_path / "old")
    assert not marker.exists()


def test_index_folder_with_pickled_array_never_runs(tmp_path, kb_jsonl):
    """Every `np.load` of the embedded index passes allow_pickle=False: an object array planted
    in an index folder is refused and its payload never runs."""
    from entity_linking import link_corpus
    from indexes import build_index, open_index

    corpus = tmp_path / "corpus.jsonl"
    texts = ["John Smith, the painter, left Paris.", "Zoë O'Brien visited Springfield, Illinois.", "Paris in May."]
    corpus.write_text("".join(json.dumps({"id": f"d{i}", "text": t}, ensure_ascii=False) + "\n"
                              for i, t in enumerate(texts)), encoding="utf-8")
    link_corpus(corpus, kb_jsonl, tmp_path / "linked", workers=1, progress=False)
    index_dir = tmp_path / "index"
    build_index(corpus, tmp_path / "linked", index_dir, passages=corpus)
    marker = tmp_path / "pwned"
    npys = sorted(index_dir.rglob("*.npy"))
    assert npys
    for npy in npys:
        original = npy.read_bytes()
        _object_npy(npy, marker)
        try:
            index = open_index(index_dir)
            index.doc_freqs(["C3", "P3"])
            index.count_cooccurrence([("C3", "P2")])
            index.search("Paris", k=2)
            index.get_text("d1")
            index.close()
        except Exception as exc:  # refused by numpy ("Object arrays cannot be loaded when allow_pickle=False",
            # "Array can't be memory-mapped: Python objects in dtype") or with a one-line error
            assert re.search("pickle|python objects", str(exc).lower()) or isinstance(exc, InputError), repr(exc)
        finally:
            npy.write_bytes(original)
        assert not marker.exists(), f"{npy.name}: the pickled payload ran"


def test_more_than_65536_entities(tmp_path):
    """Format 1 packed entity indices into pyahocorasick's 32-bit values and linked wrong
    entities past index 65,535; format 3's and 4's values are 64-bit."""
    n = 70_000
    from entity_linking import Entity

    entities = (Entity(id=f"E{i}", name=f"Name{i} Surname", aliases=[f"N{i}"]) for i in range(n))
    KnowledgeBase.write(entities, tmp_path / "kb", progress=False)
    kb = KnowledgeBase.load(tmp_path / "kb")
    linker = Linker(kb)
    text = "Name69999 Surname met N65536, Name3 Surname and N69998."
    assert [m.kb_id for m in linker.link(text)] == ["E69999", "E65536", "E3", "E69998"]


@pytest.mark.skipif(not os.path.exists("/proc/self/smaps_rollup"), reason="needs Linux /proc")
def test_bench_kb_small(tmp_path):
    from entity_linking.kb import bench_kb

    result = bench_kb(entities=3000, aliases=9000, docs=200, worker_docs=100, work_dir=str(tmp_path))
    assert result["links_identical"] is True and result["entities"] == 3000 and result["aliases"] == 9000
    for key in ("load_s", "worker_private_mb", "build_s", "docs_per_s_per_core", "baseline_load_s",
                "baseline_worker_private_mb", "baseline_build_s", "baseline_docs_per_s_per_core"):
        assert result[key] > 0, key
