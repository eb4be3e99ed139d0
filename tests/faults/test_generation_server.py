"""Generation-server faults: an OpenAI-compatible server (tests/faults/fake_openai_server.py: a
real HTTP server process on 127.0.0.1 backed by the tiny transformers model) killed in the
middle of an evaluation, then restarted; and killed for good.

A vLLM server is the real thing, but starting it several times costs minutes on the shared CPU
machine; the client under test (`OpenAIGenerator`: retries with exponential backoff, the
completion cache) is the same either way. `test_vllm_server.py` runs the same faults once
against a real vLLM server (two server starts).
"""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from probe.evaluation import evaluate
from probe.generation import GenerationError, OpenAIGenerator
from tests.paths import REPO

pytestmark = pytest.mark.slow

SERVER = Path(__file__).with_name("fake_openai_server.py")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(model: Path, port: int, die_after: int = 0) -> subprocess.Popen:
    import os

    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen([sys.executable, str(SERVER), str(model), str(port), "--die-after", str(die_after)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    line = proc.stdout.readline()
    assert line.strip() == "ready", proc.stderr.read()[-2000:]
    return proc


def _client(port: int, model: Path, **options) -> OpenAIGenerator:
    return OpenAIGenerator("tiny", base_url=f"http://127.0.0.1:{port}/v1", tokenizer=str(model),
                           concurrency=1, batch_size=4, **options)


@pytest.fixture(scope="module")
def reference(tiny_model, world_qa, tmp_path_factory):
    """Predictions through a server that never fails."""
    port = _free_port()
    proc = _start(tiny_model, port)
    try:
        client = _client(port, tiny_model, retries=2, timeout=60)
        predictions = evaluate(world_qa, client, shots=2, progress=False)
        client.close()
    finally:
        proc.kill()
        proc.wait()
    return predictions


def test_server_killed_mid_evaluation_and_restarted_gives_the_same_predictions(
        tiny_model, world_qa, reference, tmp_path):
    port = _free_port()
    first = _start(tiny_model, port, die_after=4)  # dies on its 4th request: 12 prompts answered
    restarted: list[subprocess.Popen] = []

    def restart_when_dead():
        first.wait()
        time.sleep(2.0)  # the client meanwhile meets refused connections and backs off
        restarted.append(_start(tiny_model, port))

    watcher = threading.Thread(target=restart_when_dead, daemon=True)
    watcher.start()
    try:
        client = _client(port, tiny_model, retries=8, timeout=60)
        started = time.monotonic()
        got = evaluate(world_qa, client, shots=2, cache_dir=tmp_path, chunk_size=8, progress=False)
        client.close()
        assert first.returncode == -9 and restarted, "the server was never killed and restarted"
        assert [(p["id"], p["completion"]) for p in got] == [(p["id"], p["completion"]) for p in reference]
        assert time.monotonic() - started < 300
    finally:
        watcher.join(timeout=120)
        for proc in [first, *restarted]:
            proc.kill()
            proc.wait()


def test_server_that_never_comes_back_fails_clearly_in_bounded_time_and_resumes_from_cache(
        tiny_model, world_qa, reference, tmp_path):
    port = _free_port()
    proc = _start(tiny_model, port, die_after=4)
    try:
        client = _client(port, tiny_model, retries=3, timeout=10)
        started = time.monotonic()
        with pytest.raises(GenerationError) as info:
            evaluate(world_qa, client, shots=2, cache_dir=tmp_path, chunk_size=8, progress=False)
        took = time.monotonic() - started
        client.close()
        message = str(info.value)
        assert "\n" not in message and "failed 4 times in a row" in message and "rerun to resume" in message
        assert took < 120, took  # backoff 0.5 + 1 + 2 s (with jitter) after the answered requests
        cached = (tmp_path / "completions.jsonl").read_text().splitlines()
        assert len(cached) == 8  # the first chunk of 8 prompts was answered and kept
    finally:
        proc.kill()
        proc.wait()
    # The server comes back: the rerun generates only what is missing and matches the reference.
    proc = _start(tiny_model, port)
    try:
        client = _client(port, tiny_model, retries=2, timeout=60)
        got = evaluate(world_qa, client, shots=2, cache_dir=tmp_path, chunk_size=8, progress=False)
        client.close()
    finally:
        proc.kill()
        proc.wait()
    assert [(p["id"], p["completion"]) for p in got] == [(p["id"], p["completion"]) for p in reference]
    assert len((tmp_path / "completions.jsonl").read_text().splitlines()) == len(
        {p["prompt"] for p in reference})
