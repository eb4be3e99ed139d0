"""`ltprobe eval`, `ltprobe bench eval` and `ltprobe bench generate` as a user runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from entity_linking.io import read_records, write_jsonl
from tests.paths import REPO


def ltprobe(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "probe.cli", *args], env=env, cwd=REPO, capture_output=True,
                          text=True, timeout=timeout)


def test_help_explains_the_commands():
    for command in (["eval"], ["rag"], ["bench", "eval"]):
        result = ltprobe(*command, "--help")
        assert result.returncode == 0 and len(result.stdout) > 600, command


def test_bad_input_is_one_line(tmp_path):
    qa = tmp_path / "qa.jsonl"
    qa.write_text('{"id": "1", "question": "Q?", "answers": ["a"]}\n{"id": "1", "question": "Q?", "answers": []}\n')
    result = ltprobe("eval", "--qa", str(qa), "--model", str(tmp_path / "no-model"), "--backend", "transformers",
                     "--out", str(tmp_path / "out"))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"ltprobe: error: {qa}:2: field 'answers' is an empty answer list"]
    result = ltprobe("eval", "--qa", str(qa), "--model", "m", "--out", str(tmp_path / "o"), "--shard", "3/2")
    assert result.returncode == 2 and "--shard '3/2'" in result.stderr


@pytest.mark.slow
def test_eval_writes_predictions_and_summary(tiny_world, tiny_model, tmp_path):
    counts = [{"id": r["id"], "count": r["count"], "status": "ok"} for _, r in read_records(tiny_world / "truth.jsonl")]
    counts[0] = {"id": counts[0]["id"], "count": None, "status": "no_a_entity"}
    write_jsonl(tmp_path / "counts.jsonl", counts)
    out = tmp_path / "out"
    result = ltprobe("eval", "--qa", str(tiny_world / "qa.jsonl"), "--model", str(tiny_model), "--backend",
                     "transformers", "--counts", str(tmp_path / "counts.jsonl"), "--shots", "2", "--n-boot", "100",
                     "--quiet", "--out", str(out))
    assert result.returncode == 0, result.stderr[-3000:]
    predictions = [r for _, r in read_records(out / "predictions.jsonl")]
    assert len(predictions) == len(counts) - 16  # the shot pool is not scored
    summary = json.loads((out / "summary.json").read_text())
    cb = summary["settings"]["closed_book"]
    assert set(cb) >= {"accuracy", "buckets", "slope_per_decade", "slope_ci", "spearman", "n_unlinked"}
    assert sum(b["n"] for b in cb["buckets"]) + cb["n_unlinked"] == len(predictions)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["packages"]["transformers"] and manifest["seeds"] == {"eval": 0}
    assert "closed_book: accuracy" in result.stdout


@pytest.mark.slow
def test_bench_eval_smoke(tiny_model):
    result = ltprobe("bench", "eval", "--model", str(tiny_model), "--prompts", "24", "--max-tokens", "8",
                     "--option", "enforce_eager=true")  # no torch.compile: a smoke run, not the figures
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert {"vllm_tokens_per_s", "transformers_tokens_per_s", "ratio", "same_answers"} <= set(figures)
    assert figures["same_answers"] == 1.0 and figures["prompts"] == 24
    assert "tokens per second" in result.stdout


@pytest.mark.slow
def test_bench_generate_smoke(tiny_model):
    result = ltprobe("bench", "generate", "--model", str(tiny_model), "--backend", "transformers",
                     "--candidates", "6")
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert figures["candidates"] == 6 and figures["engine_calls"]["batched"] == 2
    assert figures["max_score_difference"] < 1e-3
    assert "candidates scored per second" in result.stdout


def test_a_dead_server_is_one_line(tmp_path):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    qa = tmp_path / "qa.jsonl"
    qa.write_text("".join(f'{{"id": "{i}", "question": "Q{i}?", "answers": ["a"]}}\n' for i in range(8)))
    result = ltprobe("eval", "--qa", str(qa), "--model", "served", "--backend", "openai", "--base-url",
                     f"http://127.0.0.1:{port}/v1", "--option", "retries=1", "--option", "timeout=5",
                     "--quiet", "--out", str(tmp_path / "out"))
    assert result.returncode == 1
    (line,) = [x for x in result.stderr.strip().splitlines() if x.startswith("ltprobe: error:")]
    assert "failed 2 times in a row" in line and "rerun to resume" in line
    assert "Traceback" not in result.stderr
