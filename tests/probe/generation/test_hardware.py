"""Threads, device and precision come from the machine; vLLM falls back to transformers."""

from __future__ import annotations

import json

import pytest

from entity_linking.io import InputError
from probe.generation import available_cores, resolve_backend, training_device, vllm_available
from probe.generation._hardware import cpu_supports_bf16, vllm_dtype
from probe.world import TRAIN_MARKER, TrainConfig, train_model
from probe.world._train import _resolve_precision


def test_precision_and_vllm_dtype_follow_the_cpu():
    native = cpu_supports_bf16()
    assert _resolve_precision("auto", "cpu") == ("bf16" if native else "fp32")
    assert vllm_dtype(on_gpu=False) == ("bfloat16" if native else "float32")
    assert vllm_dtype(on_gpu=True) == "auto"
    assert _resolve_precision("fp32", "cpu") == "fp32"
    with pytest.raises(InputError):
        _resolve_precision("fp16", "cpu")
    with pytest.raises(InputError):
        training_device("tpu")


def test_default_threads_are_every_core_and_do_not_change_the_cache_key(tiny_world, tmp_path, tiny_train_settings):
    settings = dict(tiny_train_settings, steps=3, vocab_size=300, threads=None)
    assert TrainConfig().threads is None
    out = train_model(tmp_path / "m", [tiny_world / "corpus.jsonl"], TrainConfig(**settings), progress=False)
    meta = json.loads((out / TRAIN_MARKER).read_text())
    assert meta["threads"] == available_cores() and meta["device"] == "cpu"
    weights = (out / "model.safetensors").stat().st_mtime_ns
    # Where it runs is not what it learns: other threads or an explicit device reuse the model.
    train_model(out, [tiny_world / "corpus.jsonl"], TrainConfig(**dict(settings, threads=1, device="cpu")),
                progress=False)
    assert (out / "model.safetensors").stat().st_mtime_ns == weights


def test_vllm_falls_back_to_transformers_with_a_notice(monkeypatch, caplog):
    monkeypatch.setenv("LTPROBE_VLLM", "none")
    assert not vllm_available()
    backend, options = resolve_backend("vllm", {"dtype": "auto", "max_model_len": 256, "enforce_eager": True})
    assert backend == "transformers"
    assert options == {"dtype": "bfloat16" if cpu_supports_bf16() else "float32", "max_context": 256}
    (notice,) = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert "evaluating with transformers instead" in notice and "enforce_eager" in notice
    assert resolve_backend("transformers", {"dtype": "float32"}) == ("transformers", {"dtype": "float32"})
    monkeypatch.delenv("LTPROBE_VLLM")
    with pytest.raises(InputError):
        resolve_backend("nope", {})


def test_a_vllm_config_switched_to_transformers_keeps_what_applies(caplog):
    # The demo config's options with `model.backend: transformers`: max_model_len becomes
    # max_context, enforce_eager is left out with a notice, transformers' own options pass.
    options = {"dtype": "float32", "max_model_len": 256, "enforce_eager": True, "batch_size": 8}
    assert resolve_backend("transformers", options) == (
        "transformers", {"dtype": "float32", "max_context": 256, "batch_size": 8})
    (notice,) = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert "enforce_eager" in notice and "do not apply" in notice


def test_no_bf16_makes_a_bf16_machine_run_as_one_without(monkeypatch):
    monkeypatch.setenv("LTPROBE_NO_BF16", "1")
    assert not cpu_supports_bf16()
    assert _resolve_precision("auto", "cpu") == "fp32" and vllm_dtype(on_gpu=False) == "float32"
