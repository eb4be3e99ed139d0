"""Fixtures of the evaluation tests: the QA pairs of the shared tiny world, and a transformers
generator on the shared tiny model (both real; see tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from entity_linking.io import read_records


@pytest.fixture(scope="session")
def world_qa(tiny_world: Path) -> list[dict]:
    """The first 40 QA pairs of the tiny world."""
    return [r for _, r in read_records(tiny_world / "qa.jsonl")][:40]


@pytest.fixture(scope="session")
def hf_generator(tiny_model: Path):
    """transformers on the tiny model, float32 (the reference of the backend tests)."""
    from probe.generation import get_generator

    generator = get_generator("transformers", str(tiny_model), batch_size=16)
    yield generator
    generator.close()


@pytest.fixture(scope="session")
def closed_book_prompts(world_qa) -> list[str]:
    """30 two-shot closed-book prompts over the tiny world's questions."""
    from probe.evaluation import Shot, build_prompt, load_format

    fmt = load_format("qa")
    return [build_prompt(fmt, r["question"], [Shot(s["question"], s["answers"][0]) for s in world_qa[i + 1:i + 3]])
            for i, r in enumerate(world_qa[:30])]
