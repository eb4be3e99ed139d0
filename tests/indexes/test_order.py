"""Counts by training step (issue 19): the order `ltprobe train` writes, and counts along it
equal a brute-force walk over that order with the linked corpus."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from entity_linking.io import InputError, read_records

LTPROBE = str(Path(sys.executable).parent / "ltprobe")


@pytest.fixture(scope="module")
def trained(tiny_world, tiny_train_settings, tmp_path_factory):
    """(model folder with checkpoints, linked folder, index folder, qa_entities) on the tiny world."""
    from entity_linking import link_corpus, link_qa
    from indexes import build_index
    from probe.world import TrainConfig, train_model, world_training_files

    base = tmp_path_factory.mktemp("order")
    settings = {**tiny_train_settings, "steps": 12, "seq_len": 256, "save_steps": [4, 8]}  # no document split
    model = train_model(base / "model", world_training_files(tiny_world),
                        TrainConfig(**settings), progress=False)
    link_qa(tiny_world / "qa.jsonl", tiny_world / "kb.jsonl", base / "qa_entities.jsonl")
    link_corpus(tiny_world / "corpus.jsonl", tiny_world / "kb.jsonl", base / "linked", workers=1)
    build_index(tiny_world / "corpus.jsonl", base / "linked", base / "index")
    return model, base / "linked", base / "index", base / "qa_entities.jsonl"


def _brute_force(order_path: Path, linked: Path, qa_entities: Path, steps: list[int]) -> dict[str, list[int]]:
    """Walk the order step by step; a document counts for a QA pair when its linked entities
    hold one of the pair's (question, answer) entity pairs (maximum over pairs, as counts)."""
    from entity_linking import iter_linked

    data = np.load(order_path)
    ids, positions, offsets = data["ids"], data["positions"], data["step_offsets"]
    entities = {doc_id: set(ents) for doc_id, ents in iter_linked(linked)}
    result = {}
    for _, record in read_records(qa_entities):
        if not record["q_entities"] or not record["a_entities"]:
            continue
        pairs = [(q, a) for q in record["q_entities"] for a in record["a_entities"]]
        row = []
        for s in steps:
            trained_on = {str(ids[p]) for p in positions[:offsets[min(s, len(offsets) - 1)]]}
            row.append(max(sum(1 for d in trained_on if q in entities.get(d, ()) and a in entities.get(d, ()))
                           for q, a in pairs))
        result[str(record["id"])] = row
    return result


def test_train_writes_order_and_checkpoints(trained, tiny_world, tiny_train_settings):
    model, *_ = trained
    data = np.load(model / "train_order.npz")
    assert len(data["step_offsets"]) == 13 and data["step_offsets"][0] == 0
    assert data["step_offsets"][-1] == len(data["positions"])
    assert list(data["files"]) == ["corpus.jsonl", "reading.jsonl", "drill.jsonl"]
    # Every step's documents, tokenized, account for exactly the tokens that step trained on
    # (the tiny world's documents fit a row, so no document is split).
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model)
    texts = {}
    for name in ("corpus.jsonl", "reading.jsonl", "drill.jsonl"):
        for _, r in read_records(tiny_world / name):
            texts[str(r["id"])] = r["text"]
    ids = data["ids"]
    for s in range(12):
        docs = [str(ids[p]) for p in data["positions"][data["step_offsets"][s]:data["step_offsets"][s + 1]]]
        lengths = [len(ids_) + 1 for ids_ in tok([texts[d] for d in docs], add_special_tokens=False)["input_ids"]]
        assert max(lengths) <= 256 and sum(lengths) == data["step_tokens"][s]
    for step in (4, 8):
        folder = model / "checkpoints" / f"step-{step}"
        assert json.loads((folder / "ltprobe_checkpoint.json").read_text())["step"] == step
        assert (folder / "model.safetensors").exists() and (folder / "tokenizer.json").exists()
    assert not (model / "checkpoints" / "step-12").exists()  # the last step is the model folder


def test_counts_by_step_equal_a_brute_force_walk(trained, tmp_path):
    model, linked, index, qa_entities = trained
    steps = [0, 1, 4, 8, 12, 50]
    out = tmp_path / "by_step.jsonl"
    result = subprocess.run([LTPROBE, "count", "--index", str(index), "--qa-entities", str(qa_entities),
                             "--order", str(model / "train_order.npz"), "--steps", ",".join(map(str, steps)),
                             "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    records = {r["id"]: r for _, r in read_records(out)}
    expected = _brute_force(model / "train_order.npz", linked, qa_entities, steps)
    assert expected and {k for k, r in records.items() if r["status"] == "ok"} == set(expected)
    for qa_id, row in expected.items():
        assert records[qa_id]["seen"] == row, qa_id
        assert records[qa_id]["steps"] == steps
        assert records[qa_id]["seen"][0] == 0 and records[qa_id]["seen"][-1] <= records[qa_id]["count"]
        assert all(e >= s for e, s in zip(records[qa_id]["exposures"], records[qa_id]["seen"]))
    assert any(row[-1] > row[2] for row in expected.values())  # counts grow along training


def test_npy_order_of_document_numbers(trained, tmp_path):
    """The same order as document numbers of the index (as Pythia/OLMo publish theirs) gives the same counts."""
    from indexes import count_by_step, load_order, open_index

    model, _, index_dir, qa_entities = trained
    own = load_order(model)
    with open_index(index_dir) as index:
        numbers = index.doc_numbers([str(i) for i in own.ids])
        # reading documents are not in the index: leave them out of the .npy, one step = its documents
        keep = np.array([numbers[p] is not None for p in own.positions])
        per_step = np.diff(own.step_offsets)
        positions = np.array([numbers[p] for p in own.positions[keep]], dtype=np.int64)
        # rebuild with a fixed number of documents per step: the first 5 steps' corpus documents, 7 per step
        npy = tmp_path / "order.npy"
        np.save(npy, positions[:35])
        by_numbers = {r["id"]: r for r in count_by_step(index, qa_entities, load_order(npy, docs_per_step=7), [2, 5])}
        with pytest.raises(InputError, match="docs-per-step"):
            load_order(npy)
    assert per_step.sum() == len(own.positions)
    ids = [str(own.ids[p]) for p in own.positions[keep]][:35]
    from entity_linking import iter_linked

    entities = {d: set(e) for d, e in iter_linked(trained[1])}
    for _, record in read_records(qa_entities):
        r = by_numbers[record["id"]]
        if r["status"] != "ok":
            continue
        q, a = r["pair"]
        for s, seen in zip([2, 5], r["seen"]):
            assert seen >= len({d for d in ids[:7 * s] if q in entities[d] and a in entities[d]})


def test_bad_orders_are_input_errors(tmp_path):
    from indexes import load_order, parse_steps

    with pytest.raises(InputError, match="no such"):
        load_order(tmp_path / "none.npz")
    np.save(tmp_path / "bad.npy", np.zeros((2, 2), dtype=np.int64))
    with pytest.raises(InputError, match="1-d"):
        load_order(tmp_path / "bad.npy", docs_per_step=2)
    with pytest.raises(InputError, match="--steps"):
        parse_steps("a,b")
    assert parse_steps("30, 10,10") == [10, 30]


def test_packing_reports_each_rows_documents():
    """`_pack(members=...)`: per row, the documents whose tokens it holds (dropped ones left out)."""
    import random

    from probe.world._train import _pack

    docs = [[10 + i] * n for i, n in enumerate([3, 5, 2, 9, 4, 1, 6])]  # doc i's tokens are all 10 + i
    for keep in (None, [True, False, True, True, False, True, True]):
        members: list[list[int]] = []
        rows = _pack(docs, 8, 0, random.Random(3), keep, members)
        assert len(members) == len(rows)
        for row, inside in zip(rows, members):
            assert sorted(inside) == sorted({t - 10 for t in row if t != 0})
            assert keep is None or all(keep[i] for i in inside)
