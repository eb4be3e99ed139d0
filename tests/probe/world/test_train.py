"""Training the CPU model: it trains, it is cached, and the folder loads in transformers and vLLM."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time

import pytest

from entity_linking.io import InputError
from probe.generation._hardware import cpu_supports_bf16
from probe.world import TRAIN_MARKER, TrainConfig, train_model, world_training_files
from probe.world._train import _pack


@pytest.fixture
def mini(tiny_train_settings) -> dict:
    """A three-step training, for tests of caching and input handling."""
    return dict(tiny_train_settings, steps=3, vocab_size=300)


def test_tiny_model_folder(tiny_model):
    for name in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
                 "generation_config.json", TRAIN_MARKER):
        assert (tiny_model / name).exists(), name
    meta = json.loads((tiny_model / TRAIN_MARKER).read_text())
    assert meta["precision"] == ("bf16" if cpu_supports_bf16() else "fp32")
    assert meta["tokens_seen"] > 0 and meta["tokens_per_second"] > 0
    config = json.loads((tiny_model / "config.json").read_text())
    assert config["hidden_size"] // config["num_attention_heads"] == 64


@pytest.mark.slow
def test_tiny_model_learns_something(tiny_model):
    # Thirty steps lower the loss well below a uniform guess over the vocabulary (ln 512 = 6.2).
    meta = json.loads((tiny_model / TRAIN_MARKER).read_text())
    assert meta["final_loss"] < 5.5


def test_loads_and_generates_in_transformers(tiny_model):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model)
    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    assert tok.eos_token and tok.pad_token and tok.pad_token_id != tok.eos_token_id
    # A prefix space: a word tokenizes the same at the start of a text and after a space.
    assert tok("Passage", add_special_tokens=False).input_ids == tok(" Passage", add_special_tokens=False).input_ids
    inputs = tok("Q: What is", return_tensors="pt", add_special_tokens=False)
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=5, do_sample=False, pad_token_id=tok.pad_token_id)
    assert out.shape[1] > inputs.input_ids.shape[1]


def test_cached_rerun_skips_training(tiny_world, tiny_model, tiny_train_settings):
    weights = tiny_model / "model.safetensors"
    before = weights.stat().st_mtime_ns
    started = time.time()
    again = train_model(tiny_model, world_training_files(tiny_world),
                        TrainConfig(**tiny_train_settings), progress=False)
    assert again == tiny_model and time.time() - started < 5
    assert weights.stat().st_mtime_ns == before


def test_changed_config_or_input_retrains(tiny_world, tmp_path, mini):
    files = world_training_files(tiny_world)
    out = train_model(tmp_path / "m", files, TrainConfig(**mini), progress=False)
    first = json.loads((out / TRAIN_MARKER).read_text())
    train_model(out, files, TrainConfig(**{**mini, "steps": 4}), progress=False)
    second = json.loads((out / TRAIN_MARKER).read_text())
    assert first["config"]["steps"] == 3 and second["config"]["steps"] == 4
    # A different input file (one file alone: the mix does not apply) retrains too.
    train_model(out, files[:1], TrainConfig(**{**mini, "steps": 4}), progress=False)
    third = json.loads((out / TRAIN_MARKER).read_text())
    assert third["inputs_sha256"] != second["inputs_sha256"] and len(third["rows"]) == 1


def test_progress_lines_in_the_log_without_a_bar(tiny_world, tmp_path, mini, caplog):
    # A batch job has no terminal: a line every tenth of the run says how far training is.
    with caplog.at_level("INFO", logger="probe.world._train"):
        train_model(tmp_path / "m", [tiny_world / "corpus.jsonl"], TrainConfig(**{**mini, "steps": 20}),
                    progress=False)
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("train: step ")]
    assert [line.split(",")[0] for line in lines] == [f"train: step {s}/20" for s in range(2, 20, 2)]
    assert all("steps/s" in line and "s left" in line for line in lines)


def test_bad_inputs_are_input_errors(tiny_world, tmp_path, mini):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "fine"}\n{"body": "no text field"}\n')
    with pytest.raises(InputError, match=r"bad.jsonl:2: missing field 'text'"):
        train_model(tmp_path / "m", [bad], TrainConfig(**mini), progress=False)
    with pytest.raises(InputError, match="no such file"):
        train_model(tmp_path / "m", [tmp_path / "missing.jsonl"], TrainConfig(**mini), progress=False)
    two = [tiny_world / "corpus.jsonl", tiny_world / "reading.jsonl"]  # the default mix has three shares
    with pytest.raises(InputError, match="share"):
        train_model(tmp_path / "m", two, TrainConfig(**mini), progress=False)
    with pytest.raises(InputError, match="divisible"):
        train_model(tmp_path / "m", two[:1], TrainConfig(**{**mini, "heads": 3}), progress=False)


def test_skip_bad_records(tmp_path, tiny_world, mini):
    mixed = tmp_path / "mixed.jsonl"
    lines = (tiny_world / "corpus.jsonl").read_text().splitlines()[:200]
    mixed.write_text("\n".join(lines[:100] + ["not json"] + lines[100:]) + "\n")
    out = train_model(tmp_path / "m", [mixed], TrainConfig(**mini), on_error="skip", progress=False)
    assert (out / TRAIN_MARKER).exists()


def test_packing_keeps_documents_whole():
    import random

    docs = [[1] * 10, [2] * 30, [3] * 50, [4] * 70, [5] * 5]
    rows = _pack(docs, 64, eos=0, rng=random.Random(0))
    assert all(len(r) <= 64 for r in rows)
    # Every document shorter than a row lies inside one row, followed by eos.
    for doc in docs[:3] + docs[4:]:
        assert any(any(r[i:i + len(doc) + 1] == doc + [0] for i in range(len(r))) for r in rows)
    assert sum(len(r) for r in rows) == sum(len(d) + 1 for d in docs)


def test_packing_with_a_drop_keeps_every_other_document_in_place():
    import random

    rng = random.Random(1)
    docs = [[i + 2] * rng.randrange(1, 200) for i in range(40)]  # document i is tokens i + 2
    keep = [i % 3 != 0 for i in range(40)]
    full = _pack(docs, 64, eos=1, rng=random.Random(0))
    dropped = _pack(docs, 64, eos=1, rng=random.Random(0), keep=keep)
    assert len(dropped) == len(full)  # same rows, so the same row is drawn at every step

    def kept_tokens(row):
        return [t for t in row if t != 1 and keep[t - 2]]

    for whole, reduced in zip(full, dropped):
        assert [t for t in reduced if t != 1] == kept_tokens(whole)
        assert reduced  # a row emptied by the drop holds a lone eos
    assert not any(t != 1 and not keep[t - 2] for row in dropped for t in row)


def test_drop_is_part_of_the_cache_key(tiny_world, tmp_path, mini):
    files = world_training_files(tiny_world)
    out = train_model(tmp_path / "m", files, TrainConfig(**mini), progress=False)
    plain = json.loads((out / TRAIN_MARKER).read_text())
    assert plain["dropped_sha256"] is None and plain["dropped"] == 0
    ids = [json.loads(line)["id"] for line in (tiny_world / "corpus.jsonl").read_text().splitlines()[:25]]
    train_model(out, files, TrainConfig(**mini), drop=ids, progress=False)
    reduced = json.loads((out / TRAIN_MARKER).read_text())
    assert reduced["dropped"] == 25 and reduced["dropped_sha256"] and reduced["rows"] == plain["rows"]
    # Back to no drop: trained again, not taken from the cache.
    train_model(out, files, TrainConfig(**mini), progress=False)
    assert json.loads((out / TRAIN_MARKER).read_text())["dropped"] == 0


def test_schedule_and_mix():
    from probe.world._train import _lr_at, _shares_at

    config = TrainConfig(steps=100)
    assert _lr_at(0, config) < _lr_at(2, config) <= config.lr
    assert abs(_lr_at(99, config) - config.lr * config.min_lr_ratio) < 1e-4
    assert _shares_at(5, config, 3, [1, 1, 1]) == [0.35, 0.65, 0.0]  # corpus, reading, drill
    assert _shares_at(50, config, 3, [1, 1, 1]) == [0.6, 0.4, 0.0]
    config.mix = [[0.2, 0.25, 0.45, 0.30], [1.0, 0.75, 0.25, 0.0]]
    assert _shares_at(5, config, 3, [1, 1, 0]) == [0.25, 0.45, 0.0]  # an empty file gets no share
    assert _shares_at(50, config, 1, [1]) == [1.0]


def test_a_mix_phase_drawing_only_from_empty_files_is_refused(tiny_world, tmp_path, mini):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    files = [tiny_world / "corpus.jsonl", empty]
    config = TrainConfig(**{**mini, "mix": [[0.5, 0.0, 1.0], [1.0, 1.0, 0.0]]})
    with pytest.raises(InputError, match="no text"):
        train_model(tmp_path / "m", files, config, progress=False)
    config.mix = [[0.5, 0.5, 0.5], [1.0, 1.0, 0.0]]  # the empty file's share goes to the other
    out = train_model(tmp_path / "m", files, config, progress=False)
    assert json.loads((out / TRAIN_MARKER).read_text())["rows"][1] == 0


@pytest.mark.slow
def test_loads_in_vllm(tiny_model, tmp_path):
    # vLLM starts worker processes: run it in a script of its own, not in the pytest process.
    script = tmp_path / "load_vllm.py"
    script.write_text(textwrap.dedent("""
        import json, sys
        if __name__ == "__main__":
            from vllm import LLM, SamplingParams
            llm = LLM(model=sys.argv[1], dtype="float32", max_model_len=256, enforce_eager=True, seed=0)
            outs = llm.generate(["Q: What is", "Passage: x\\nQuestion: y\\nAnswer:"],
                                SamplingParams(temperature=0, max_tokens=6))
            print("RESULT " + json.dumps([list(o.outputs[0].token_ids) for o in outs]))
    """))
    env = dict(os.environ, HF_HUB_OFFLINE="1", VLLM_CPU_KVCACHE_SPACE="1",
               VLLM_CACHE_ROOT=os.environ.get("VLLM_CACHE_ROOT", "/tmp/vllm-cache"))
    proc = subprocess.run([sys.executable, str(script), str(tiny_model)], capture_output=True, text=True,
                          env=env, timeout=600)
    lines = [l for l in proc.stdout.splitlines() if l.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stderr[-3000:]
    vllm_ids = json.loads(lines[-1][len("RESULT "):])

    # Greedy decoding in vLLM matches transformers on the same float32 weights.
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model)
    model = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32)
    for prompt, ids in zip(["Q: What is", "Passage: x\nQuestion: y\nAnswer:"], vllm_ids):
        inputs = tok(prompt, return_tensors="pt", add_special_tokens=False)
        with torch.no_grad():
            out = model.generate(**inputs, max_new_tokens=len(ids), do_sample=False,
                                 pad_token_id=tok.pad_token_id)
        assert out[0, inputs.input_ids.shape[1]:].tolist()[:len(ids)] == ids


def test_train_config_sizes_follow_the_hidden_size():
    from probe.world import TrainConfig, train_config

    assert train_config() == TrainConfig()
    config = train_config(hidden_size=256, steps=10, threads=None)
    assert (config.hidden_size, config.heads, config.intermediate_size, config.steps) == (256, 4, 1024, 10)
    assert train_config(hidden_size=128, heads=1).heads == 1
    assert train_config(layers=2).heads == TrainConfig().heads


def test_an_empty_file_without_a_share_changes_nothing(tiny_world, tmp_path, mini):
    # A world without drill people trains exactly as before the drill file existed.
    two = [tiny_world / "corpus.jsonl", tiny_world / "reading.jsonl"]
    empty = tmp_path / "drill.jsonl"
    empty.write_text("")
    a = train_model(tmp_path / "a", two, TrainConfig(**{**mini, "mix": [[0.3, 0.35, 0.65], [1.0, 0.6, 0.4]]}),
                    progress=False)
    b = train_model(tmp_path / "b", [*two, empty], TrainConfig(**mini), progress=False)  # the default mix
    assert (a / "model.safetensors").read_bytes() == (b / "model.safetensors").read_bytes()


def test_train_command_mix(tiny_world, tmp_path, capsys):
    from probe.cli import main

    files = [str(tiny_world / "corpus.jsonl"), str(tiny_world / "reading.jsonl")]
    args = ["train", "--texts", *files, "--steps", "3", "--hidden-size", "64", "--layers", "1",
            "--vocab-size", "300", "--seq-len", "64", "--batch-size", "4"]
    assert main([*args, "--out", str(tmp_path / "sized")]) == 0  # two files, no --mix: by their sizes
    assert main([*args, "--out", str(tmp_path / "mixed"), "--mix", "[[0.5, 0.9, 0.1], [1.0, 0.5, 0.5]]"]) == 0
    assert json.loads((tmp_path / "mixed" / TRAIN_MARKER).read_text())["config"]["mix"] == [[0.5, 0.9, 0.1],
                                                                                          [1.0, 0.5, 0.5]]
    for bad in ("[[0.5, 1]", '[["a", 1, 2]]'):  # one line, exit status 2, nothing trained
        assert main([*args, "--out", str(tmp_path / "bad"), "--mix", bad]) == 2
        assert "--mix: " in capsys.readouterr().err and not (tmp_path / "bad" / TRAIN_MARKER).exists()
