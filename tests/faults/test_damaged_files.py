"""Truncated or damaged index and linked shards: one line naming the file and the command that
rebuilds it, never a traceback or a wrong count (real files, real `ltprobe` processes)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

LTPROBE = str(Path(sys.executable).parent / "ltprobe")
pytestmark = pytest.mark.slow  # about 20 `ltprobe` processes


def _ltprobe(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([LTPROBE, *map(str, args)], capture_output=True, text=True, timeout=600)


def _one_error_line(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("ltprobe: error:")]
    assert len(errors) == 1, result.stderr[-3000:]
    return errors[0]


@pytest.fixture(scope="module")
def built(tiny_world, tmp_path_factory) -> Path:
    """linked/, index/, qa_entities.jsonl and the good counts of the tiny world."""
    base = tmp_path_factory.mktemp("damaged")
    for args in (["link-corpus", "--corpus", tiny_world / "corpus.jsonl", "--kb", tiny_world / "kb.jsonl",
                  "--out", base / "linked", "--workers", "1"],
                 ["link-qa", "--qa", tiny_world / "qa.jsonl", "--kb", tiny_world / "kb.jsonl",
                  "--out", base / "qa_entities.jsonl"],
                 ["index", "--corpus", tiny_world / "corpus.jsonl", "--linked", base / "linked",
                  "--out", base / "index"],
                 ["count", "--index", base / "index", "--qa-entities", base / "qa_entities.jsonl",
                  "--out", base / "counts.jsonl"]):
        result = _ltprobe(*args)
        assert result.returncode == 0, result.stderr[-2000:]
    return base


def _truncate(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def _flip(path: Path, start: int = 8, step: int = 5) -> None:
    data = bytearray(path.read_bytes())
    for i in range(start, len(data), step):
        data[i] ^= 0xA5
    path.write_bytes(bytes(data))


INDEX_DAMAGE = [
    ("postings.bin", _truncate),
    ("docs.off.npy", _truncate),
    ("entities.bin", _truncate),
    ("df.npy", lambda p: p.unlink()),
    ("postings.bin", lambda p: _flip(p, start=0, step=3)),
    ("index.json", _truncate),
]


@pytest.mark.parametrize("name, damage", INDEX_DAMAGE, ids=[f"{n}-{d.__name__}" for n, d in INDEX_DAMAGE])
def test_damaged_index_names_the_file_and_the_rebuild_command(built, tmp_path, name, damage):
    index = tmp_path / "index"
    shutil.copytree(built / "index", index)
    damage(index / name)
    result = _ltprobe("count", "--index", index, "--qa-entities", built / "qa_entities.jsonl",
                      "--out", tmp_path / "counts.jsonl")
    if result.returncode == 0:  # a decoder that accepted the bytes must still give the right counts
        assert (tmp_path / "counts.jsonl").read_bytes() == (built / "counts.jsonl").read_bytes(), \
            f"{name}: damaged index gave wrong counts without an error"
        return
    line = _one_error_line(result)
    assert str(index) in line
    assert name in line or name == "index.json" or "index" in line
    assert "ltprobe index" in line or "rebuild" in line
    assert not (tmp_path / "counts.jsonl").exists()


@pytest.mark.parametrize("damage", ["truncate-mid-line", "truncate-at-line", "garbage", "missing"])
def test_damaged_linked_shard_names_it_and_says_how_to_relink(built, tiny_world, tmp_path, damage):
    linked = tmp_path / "linked"
    shutil.copytree(built / "linked", linked)
    shard = linked / "shard-00000.jsonl"
    data = shard.read_bytes()
    if damage == "truncate-mid-line":
        shard.write_bytes(data[: len(data) // 2])
    elif damage == "truncate-at-line":
        shard.write_bytes(data[: data.rindex(b"\n", 0, len(data) // 2) + 1])
    elif damage == "garbage":
        shard.write_bytes(data[:100] + b"\x00\xff garbage \n" + data[100:])
    else:
        shard.unlink()
    result = _ltprobe("index", "--corpus", tiny_world / "corpus.jsonl", "--linked", linked,
                      "--out", tmp_path / "index")
    line = _one_error_line(result)
    assert str(shard) in line
    assert "ltprobe link-corpus" in line and "shard-00000.json" in line
    assert not (tmp_path / "index").exists()
    # The advice works: delete the shard and its manifest, link again, same shard as before.
    shard.unlink(missing_ok=True)
    shard.with_suffix(".json").unlink()
    again = _ltprobe("link-corpus", "--corpus", tiny_world / "corpus.jsonl", "--kb", tiny_world / "kb.jsonl",
                     "--out", linked, "--workers", "1")
    assert again.returncode == 0, again.stderr[-2000:]
    assert shard.read_bytes() == (built / "linked" / "shard-00000.jsonl").read_bytes()


def test_damaged_linked_manifest_is_one_line(built, tiny_world, tmp_path):
    linked = tmp_path / "linked"
    shutil.copytree(built / "linked", linked)
    _truncate(linked / "manifest.json")
    result = _ltprobe("index", "--corpus", tiny_world / "corpus.jsonl", "--linked", linked,
                      "--out", tmp_path / "index")
    line = _one_error_line(result)
    assert str(linked / "manifest.json") in line


def test_index_records_every_file_size(built):
    info = json.loads((built / "index" / "index.json").read_text())
    on_disk = {str(p.relative_to(built / "index")): p.stat().st_size
               for p in (built / "index").rglob("*") if p.is_file() and p.name != "index.json"}
    assert info["files"] == on_disk
