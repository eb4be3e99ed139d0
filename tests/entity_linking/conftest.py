"""A ten-entity knowledge base built in the test: shared names (two John Smiths, two cities
called Springfield), a qualifier alias ("Springfield, Illinois"), Unicode and apostrophes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.entity_linking.el_data import TEN


@pytest.fixture()
def kb_jsonl(tmp_path: Path) -> Path:
    path = tmp_path / "kb.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in TEN), encoding="utf-8")
    return path


@pytest.fixture()
def kb(kb_jsonl: Path):
    from entity_linking import KnowledgeBase

    return KnowledgeBase.from_jsonl(kb_jsonl)


@pytest.fixture()
def cli(monkeypatch):
    """`ltprobe` (probe.cli.main) with only this package's commands registered, so the tests do
    not depend on other packages' command modules; returns (status, stdout, stderr)."""
    import probe.cli

    monkeypatch.setattr(probe.cli, "_COMMAND_MODULES", ["probe.cli._link"])

    def run(capsys, *argv: str):
        status = probe.cli.main([str(a) for a in argv])
        out, err = capsys.readouterr()
        return status, out, err

    return run
