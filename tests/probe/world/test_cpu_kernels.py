"""fp32 training on an x86-64 CPU is pinned to torch's AVX2 kernels (`TrainConfig.cpu_kernels`),
so every CPU with AVX2 trains the same model, bit for bit, at any thread count. Each training
runs in a fresh process, as `ltprobe train` does: torch chooses its kernels once per process."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from entity_linking.io import InputError
from probe.world import TRAIN_MARKER
from probe.generation import cpu_flags
from probe.world._train import _pin_cpu_kernels
from tests.paths import REPO


def _train(out: Path, world: Path, *args: str, env: dict[str, str] | None = None) -> tuple[str, dict]:
    clean = {k: v for k, v in os.environ.items() if k != "ATEN_CPU_CAPABILITY"}
    subprocess.run([sys.executable, "-m", "probe.cli", "train", "--quiet", "--texts", str(world / "corpus.jsonl"),
                    "--out", str(out), "--steps", "6", "--batch-size", "4", "--seq-len", "64", "--vocab-size", "300",
                    "--hidden-size", "64", "--heads", "1", "--layers", "1", "--precision", "fp32", "--device", "cpu",
                    *args], env={**clean, **(env or {})}, cwd=REPO, check=True, timeout=600, capture_output=True)
    weights = hashlib.sha256((out / "model.safetensors").read_bytes()).hexdigest()
    return weights, json.loads((out / TRAIN_MARKER).read_text())


@pytest.mark.skipif("avx2" not in cpu_flags(), reason="needs an x86-64 CPU with AVX2")
def test_every_avx2_cpu_and_thread_count_trains_the_same_model(tiny_world, tmp_path):
    pinned, meta = _train(tmp_path / "pinned", tiny_world, "--threads", "1")
    assert meta["cpu_kernels_used"] == "AVX2"
    # A CPU with AVX2 and nothing wider (torch told so) on two threads: the same bytes.
    avx2_only, meta = _train(tmp_path / "avx2", tiny_world, "--threads", "2", env={"ATEN_CPU_CAPABILITY": "avx2"})
    assert avx2_only == pinned and meta["cpu_kernels_used"] == "AVX2"
    if "avx512f" in cpu_flags():  # here the pin is what makes them equal
        native, meta = _train(tmp_path / "native", tiny_world, "--threads", "1", "--cpu-kernels", "native")
        assert meta["cpu_kernels_used"] == "AVX512" and native != pinned


def test_a_process_that_already_ran_torch_says_its_model_is_tied_to_its_kernels(caplog, monkeypatch):
    import torch

    from probe.world import _train

    monkeypatch.setattr(_train, "_WARNED_KERNELS", set())
    torch.ones(4).sum()  # torch has chosen its CPU kernels in this process
    used = _pin_cpu_kernels("avx2", "cpu", "fp32")
    assert used == torch.backends.cpu.get_cpu_capability()
    pinning = "avx2" in cpu_flags() and "ATEN_CPU_CAPABILITY" not in os.environ
    assert ("already chose its CPU kernels" in caplog.text) == (pinning and used != "AVX2")
    caplog.clear()  # a notebook that trains again: said once per process
    assert _pin_cpu_kernels("avx2", "cpu", "fp32") == used and "already chose" not in caplog.text
    assert "ATEN_CPU_CAPABILITY" not in os.environ or not pinning  # removed again after torch read it
    assert _pin_cpu_kernels("avx2", "cuda", "fp32") is None  # a GPU: nothing to pin
    with pytest.raises(InputError):
        _pin_cpu_kernels("sse", "cpu", "fp32")


@pytest.mark.slow
@pytest.mark.skipif("avx2" not in cpu_flags(), reason="needs an x86-64 CPU with AVX2")
def test_bench_train_smoke():
    result = subprocess.run([sys.executable, "-m", "probe.cli", "bench", "train", "--steps", "3", "--threads", "1,2",
                             "--repeats", "1"], cwd=REPO, capture_output=True, text=True, timeout=900,
                            env={k: v for k, v in os.environ.items() if k != "ATEN_CPU_CAPABILITY"})
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert figures["pinned_kernels"] == "AVX2" and figures["same_model_pinned"] is True
    assert figures["native_model_differs"] == (figures["native_kernels"] != "AVX2")
    assert figures["avx2_steps_per_s"] > 0 and figures["native_steps_per_s"] > 0
    assert "model sha256" in result.stdout
