"""Shared session fixtures: a tiny controlled world and a tiny model trained on it.

Both are real: `tiny_world` is `probe.generate_world` with 60 people; `tiny_model` is
`probe.train_model` on that world for a few dozen steps (hidden size 128 with 2 heads, so the
head size is 64, which vLLM's CPU attention supports). The model knows next to nothing; it is
for tests of plumbing (loading in transformers and vLLM, generation, log-probabilities), not of
accuracy. Training takes seconds and happens once per test session, on first use.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.paths import REPO

# Nothing may come from a model hub; vLLM's caches stay out of the home folder.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
os.environ.setdefault("VLLM_CACHE_ROOT", "/tmp/vllm-cache")

"""The project's shared folder (real test data under `SHARED / "data"`)."""

TINY_WORLD = dict(seed=7, people=60, reading_docs=300)
"""The tiny world's WorldConfig fields (60 people, ~1,500 documents)."""

TINY_TRAIN = dict(steps=30, batch_size=8, seq_len=64, vocab_size=512, hidden_size=128, layers=2, heads=2,
                  intermediate_size=256, max_position_embeddings=512, threads=1, seed=0)
"""The tiny model's TrainConfig fields: about 0.4M parameters, seconds on one thread (one thread
also keeps it fast on a busy machine, where two OpenMP threads can be ten times slower)."""


@pytest.fixture(scope="session")
def tiny_world_settings() -> dict:
    """A copy of the WorldConfig fields `tiny_world` was generated with."""
    return dict(TINY_WORLD)


@pytest.fixture(scope="session")
def tiny_train_settings() -> dict:
    """A copy of the TrainConfig fields `tiny_model` was trained with."""
    return dict(TINY_TRAIN)


@pytest.fixture(scope="session")
def tiny_world(tmp_path_factory) -> Path:
    """Folder of a generated world of 60 people: corpus.jsonl, reading.jsonl,
    encyclopedia.jsonl, kb.jsonl, qa.jsonl, truth.jsonl, world.json."""
    from probe.world import WorldConfig, generate_world

    return generate_world(tmp_path_factory.mktemp("tiny_world"), WorldConfig(**TINY_WORLD))


@pytest.fixture(scope="session")
def tiny_model(tiny_world, tmp_path_factory) -> Path:
    """Folder of a tiny Llama model and tokenizer trained on `tiny_world` (loads in
    transformers and vLLM; max_model_len up to 512)."""
    from probe.world import TrainConfig, train_model, world_training_files

    return train_model(tmp_path_factory.mktemp("tiny_model"),
                       world_training_files(tiny_world),
                       TrainConfig(**TINY_TRAIN), progress=False)


@pytest.fixture(scope="session")
def tiny_model_small(tiny_world, tmp_path_factory) -> Path:
    """A smaller model than `tiny_model` (one layer, hidden size 64 with one head of 64, about
    74k parameters), trained the same way on the same world in a few seconds: the second size
    of the scaling tests."""
    from probe.world import TrainConfig, train_model, world_training_files

    settings = {**TINY_TRAIN, "hidden_size": 64, "heads": 1, "layers": 1, "intermediate_size": 128}
    return train_model(tmp_path_factory.mktemp("tiny_model_small"),
                       world_training_files(tiny_world),
                       TrainConfig(**settings), progress=False)




@pytest.fixture(scope="session")
def small_run(tmp_path_factory) -> Path:
    """Folder of a whole `ltprobe run configs/smoke.yaml` (world, training, linking, index,
    counts, vLLM evaluation in three settings, summary, report), run once per session through
    the console script, as a user would."""
    import subprocess
    import sys

    out = tmp_path_factory.mktemp("small_run") / "run"
    result = subprocess.run([str(Path(sys.executable).parent / "ltprobe"), "run",
                             str(REPO / "configs" / "smoke.yaml"), "--out", str(out)],
                            capture_output=True, text=True, timeout=1800)
    assert result.returncode == 0, result.stderr[-3000:]
    return out


@pytest.fixture(scope="module")
def ray_local():
    """Ray in local mode on two CPUs (the tests that use it skip where Ray is not installed)."""
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray
    ray.shutdown()
