"""Fault tests: real `ltprobe` processes killed, starved of disk, or fed broken files; real
servers killed."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def world_qa(tiny_world: Path) -> list[dict]:
    """The first 40 QA pairs of the tiny world."""
    from entity_linking.io import read_records

    return [r for _, r in read_records(tiny_world / "qa.jsonl")][:40]
