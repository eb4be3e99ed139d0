"""`evaluate` on a real model (transformers backend): records, shots, shards, context overflow,
and resuming after a crash from the completion cache."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from entity_linking.io import InputError
from probe.evaluation import evaluate, parse_shard
from probe.evaluation._evaluate import CompletionCache, in_shard, shot_pool_ids
from probe.generation import TransformersGenerator
from tests.paths import REPO

pytestmark = pytest.mark.slow  # trains the shared tiny model on first use



def test_predictions_have_the_contract_fields(world_qa, hf_generator):
    stats = {}
    preds = evaluate(world_qa, hf_generator, shots=3, pool_size=8, progress=False, stats=stats)
    pool = set(shot_pool_ids(world_qa, 8))
    assert len(preds) == len(world_qa) - 8 and not pool & {p["id"] for p in preds}  # pool never scored
    for p in preds:
        assert {"id", "setting", "model", "prompt", "completion", "correct", "em", "contains"} <= set(p)
        assert p["setting"] == "closed_book" and p["prompt"].endswith("\nA:") and p["prompt"].count("Q: ") == 4
        assert p["completion"] == p["completion"].strip() and "\n" not in p["completion"]
    assert stats["generated"] == len(preds) and stats["cached"] == 0 and stats["truncated_prompts"] == 0
    # Shots depend on (seed, id) only: the same question gets the same prompt in any order.
    again = evaluate(list(reversed(world_qa)), hf_generator, shots=3, pool_size=8, progress=False)
    assert {p["id"]: p["prompt"] for p in again} == {p["id"]: p["prompt"] for p in preds}


def test_cloze_format_reads_each_pairs_cloze_field(world_qa, hf_generator):
    preds = evaluate(world_qa, hf_generator, shots=2, pool_size=8, prompt_format="cloze", progress=False)
    by_id = {r["id"]: r for r in world_qa}
    for p in preds:
        assert p["prompt"].endswith(by_id[p["id"]]["cloze"]) and "Q: " not in p["prompt"]
        assert p["prompt"].count(".\n") == 2 and ". " not in p["completion"] and "\n" not in p["completion"]
    # A QA set without the field (not a generated world) is refused before anything is generated.
    without = [{k: v for k, v in r.items() if k != "cloze"} if i == 5 else r for i, r in enumerate(world_qa)]
    before = hf_generator.generated_tokens
    with pytest.raises(InputError, match=r"'cloze' field, which 1 of 40 pairs lack \(first: "):
        evaluate(without, hf_generator, prompt_format="cloze", progress=False)
    assert hf_generator.generated_tokens == before


def test_shards_partition_the_questions(world_qa, hf_generator):
    assert parse_shard("1/3") == (1, 3)
    ids = [r["id"] for r in world_qa]
    parts = [{i for i in ids if in_shard(i, (s, 3))} for s in range(3)]
    assert set().union(*parts) == set(ids) and sum(map(len, parts)) == len(ids)
    shard = evaluate(world_qa, hf_generator, shots=0, shard="1/3", progress=False)
    assert {p["id"] for p in shard} == parts[1] - set(shot_pool_ids(world_qa, 10))


def test_prompts_longer_than_the_context_lose_shots_not_the_batch(world_qa, hf_generator):
    limit = hf_generator.max_context
    try:
        hf_generator.max_context = 16 + 40  # room for a question alone (16 tokens are the answer's)
        stats = {}
        preds = evaluate(world_qa, hf_generator, shots=4, progress=False, stats=stats)
    finally:
        hf_generator.max_context = limit
    assert stats["truncated_prompts"] > 0
    assert all(p["n_shots"] < 4 for p in preds if p.get("dropped"))
    fits = [n <= 40 for n in hf_generator.count_tokens([p["prompt"] for p in preds if "error" not in p])]
    assert all(fits)
    assert all(p["completion"] == "" and not p["correct"] for p in preds if "error" in p)


class _Crashing(TransformersGenerator):
    """The real generator, failing on its third batch (a job killed mid-run)."""

    calls = 0

    def generate(self, prompts, max_tokens, stop=None):
        type(self).calls += 1
        if type(self).calls == 3:
            raise RuntimeError("killed")
        return super().generate(prompts, max_tokens, stop)


def test_resume_after_a_crash_loses_and_duplicates_nothing(world_qa, tiny_model, hf_generator, tmp_path):
    reference = evaluate(world_qa, hf_generator, shots=2, progress=False)
    crashing = _Crashing(str(tiny_model))
    with pytest.raises(RuntimeError, match="killed"):
        evaluate(world_qa, crashing, shots=2, cache_dir=tmp_path, chunk_size=5, progress=False)
    lines = (tmp_path / "completions.jsonl").read_text().splitlines()
    assert len(lines) == 10  # two chunks of five made it to disk
    stats = {}
    resumed = evaluate(world_qa, crashing, shots=2, cache_dir=tmp_path, chunk_size=5, progress=False, stats=stats)
    assert stats["cached"] == 10 and stats["generated"] == len(reference) - 10
    assert resumed == reference
    keys = [json.loads(line)["key"] for line in (tmp_path / "completions.jsonl").read_text().splitlines()]
    assert len(keys) == len(set(keys)) == len(reference)


def test_cache_survives_a_torn_last_line(tmp_path):
    cache = CompletionCache(tmp_path)
    cache.add([("a", "x")])
    with open(tmp_path / "completions.jsonl", "a") as handle:
        handle.write('{"key": "b", "compl')  # killed while writing
    cache = CompletionCache(tmp_path)
    assert cache.entries == {"a": "x"}
    cache.add([("b", "y")])
    assert CompletionCache(tmp_path).entries == {"a": "x", "b": "y"}


def _ltprobe(*args, env=None):
    return [sys.executable, "-m", "probe.cli", *args]


def test_killed_eval_command_resumes_to_the_same_predictions(tiny_world, tiny_model, hf_generator, tmp_path):
    """SIGKILL a real `ltprobe eval` mid-job; the rerun gives what an uninterrupted run gives."""
    from entity_linking.io import read_records

    env = {**os.environ, "PYTHONPATH": str(REPO)}
    common = ["eval", "--qa", str(tiny_world / "qa.jsonl"), "--limit", "48", "--model", str(tiny_model),
              "--backend", "transformers", "--shots", "2", "--chunk-size", "4", "--quiet"]
    qa = [r for _, r in read_records(tiny_world / "qa.jsonl")][:48]
    uninterrupted = evaluate(qa, hf_generator, shots=2, progress=False)
    out = tmp_path / "killed"
    proc = subprocess.Popen(_ltprobe(*common, "--out", str(out)), env=env, cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    cache = out / "cache" / "completions.jsonl"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        if cache.exists() and len(cache.read_text().splitlines()) >= 8:
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.05)
    proc.wait(60)
    assert proc.returncode == -signal.SIGKILL, "the job finished before it could be killed"
    assert not (out / "predictions.jsonl").exists()
    rerun = subprocess.run(_ltprobe(*common, "--out", str(out)), env=env, cwd=REPO, capture_output=True,
                           text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    read = lambda p: [json.loads(line) for line in p.read_text().splitlines()]  # noqa: E731
    assert read(out / "predictions.jsonl") == uninterrupted
    keys = [e["key"] for e in read(cache)]
    assert len(keys) == len(set(keys))
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["settings"][0]["cached"] >= 8 and manifest["git_commit"] is not None
